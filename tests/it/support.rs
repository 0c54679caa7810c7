//! Test environments: the same test body on the real world (a tempdir) and the simulated world.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sim::SimWorld;
use store::backup_info::{BackupDir, BackupGroup, BackupTime};
use store::chunk_store::{ChunkStoreConfig, PrefixFanout, SyncLevel};
use store::datastore::{Datastore, DatastoreConfig};
use store::manifest::{MANIFEST_BLOB_NAME, Manifest};
use store::sync::StdSync;
use store::world::{OpenOptions, RealWorld, World, WorldFile};

/// A world plus what a generic test needs beyond the [`World`] trait.
pub trait Env {
    /// The world under test.
    type W: World;
    /// The world.
    fn world(&self) -> Self::W;
    /// A directory the test owns, inside the world.
    fn root(&self) -> &Path;
    /// Sets a file's access time to `atime` (seconds), bypassing the store.
    fn set_atime(&self, path: &Path, atime: i64);
}

/// The real filesystem, in a fresh temporary directory.
pub struct RealEnv {
    dir: tempfile::TempDir,
}

impl RealEnv {
    pub fn new() -> RealEnv {
        RealEnv {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }
}

impl Env for RealEnv {
    type W = RealWorld;

    fn world(&self) -> RealWorld {
        RealWorld::new()
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn set_atime(&self, path: &Path, atime: i64) {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(atime as u64);
        let file = std::fs::File::open(path).expect("open to set atime");
        file.set_times(std::fs::FileTimes::new().set_accessed(time))
            .expect("set atime");
    }
}

/// The simulated world on real threads, with a fixed seed.
pub struct SimEnv {
    world: SimWorld<StdSync>,
    root: PathBuf,
}

impl SimEnv {
    pub fn new() -> SimEnv {
        SimEnv::with_seed(1)
    }

    pub fn with_seed(seed: u64) -> SimEnv {
        let world = SimWorld::new(seed);
        let root = PathBuf::from("/test");
        world.create_dir_all(&root).expect("create the test root");
        SimEnv { world, root }
    }
}

impl Env for SimEnv {
    type W = SimWorld<StdSync>;

    fn world(&self) -> SimWorld<StdSync> {
        self.world.clone()
    }

    fn root(&self) -> &Path {
        &self.root
    }

    fn set_atime(&self, path: &Path, atime: i64) {
        let now = self.world.now();
        self.world.set_time(atime);
        self.world.touch_atime(path).expect("touch to set atime");
        self.world.set_time(now);
    }
}

impl Drop for SimEnv {
    /// Every test on the simulated world ends with the simulator's own consistency check.
    fn drop(&mut self) {
        if !std::thread::panicking()
            && let Err(inconsistency) = self.world.check_consistency()
        {
            panic!("{inconsistency}");
        }
    }
}

/// A datastore at `<root>/ds` with small fan-out, no syncing and a 50 ms manifest-lock wait.
pub fn new_datastore<E: Env>(env: &E) -> Datastore<E::W> {
    let chunk_store = ChunkStoreConfig::new(PrefixFanout::SMALL).with_sync_level(SyncLevel::None);
    let mut config = DatastoreConfig::new(chunk_store);
    config.manifest_lock_timeout = Duration::from_millis(50);
    Datastore::create(env.world(), &env.root().join("ds"), config).expect("create the datastore")
}

/// Writes `bytes` as the whole file at `path`, bypassing the store (planted content or damage).
pub fn overwrite(world: &impl World, path: &Path, bytes: &[u8]) {
    let file = world
        .open(path, OpenOptions::create_truncate())
        .expect("open for writing");
    file.write_at(0, bytes).expect("write");
}

/// Writes `manifest` as the manifest of `dir` by hand: no lock, no check that it names `dir`
/// (tests that plant a snapshot, or a foreign or damaged manifest).
pub fn plant_manifest<W: World>(store: &Datastore<W>, dir: &BackupDir, manifest: &Manifest) {
    let path = store.snapshot_path(dir).join(MANIFEST_BLOB_NAME);
    overwrite(
        store.world(),
        &path,
        &manifest.to_blob().expect("encode the manifest"),
    );
}

/// Creates a snapshot directory, finished (with an empty manifest) or not, bypassing the
/// backup path.
pub fn plant_snapshot<W: World>(store: &Datastore<W>, dir: &BackupDir, finished: bool) {
    let path = store.snapshot_path(dir);
    store.world().create_dir_all(&path).expect("mkdir snapshot");
    if finished {
        plant_manifest(store, dir, &Manifest::new(dir));
    }
}

/// The snapshot `<group>/<time>` from valid text.
pub fn snapshot(group: &str, time: &str) -> BackupDir {
    let group = BackupGroup::from_relative_path(group).expect("valid group");
    BackupDir::new(group, BackupTime::parse(time).expect("valid time"))
}

/// `both_worlds!(name)` turns the generic `fn name(env: &impl Env)` into two tests,
/// `name::real` and `name::sim`.
#[macro_export]
macro_rules! both_worlds {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn real() {
                    super::$name(&$crate::support::RealEnv::new());
                }

                #[test]
                fn sim() {
                    super::$name(&$crate::support::SimEnv::new());
                }
            }
        )*
    };
}

/// Which record lock another process would run into on `path` in the real world.
///
/// A process never sees its own record locks through `F_GETLK`, but open-file-description locks
/// conflict with them, so `F_OFD_GETLK` on a fresh descriptor reports this process's record lock
/// as another process would see it. The descriptor is deliberately never closed: closing any
/// descriptor of the file would drop this process's record locks on it, which is exactly the
/// rule under test.
pub fn real_record_lock_probe(path: &Path) -> std::io::Result<Option<store::world::LockMode>> {
    use std::os::fd::IntoRawFd;
    if !std::fs::symlink_metadata(path)?.is_file() {
        return Err(std::io::ErrorKind::IsADirectory.into());
    }
    let file = std::fs::OpenOptions::new().read(true).open(path)?;
    let fd = file.into_raw_fd();
    // SAFETY: an all-zero `flock` struct is a valid value; the fields we need are set below.
    let mut request: libc::flock = unsafe { std::mem::zeroed() };
    request.l_type = libc::F_WRLCK as libc::c_short;
    request.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: `fd` is open (never closed) and `request` is a valid flock struct with l_pid 0.
    let rc = unsafe { libc::fcntl(fd, libc::F_OFD_GETLK, &mut request) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(match i32::from(request.l_type) {
        libc::F_RDLCK => Some(store::world::LockMode::Shared),
        libc::F_WRLCK => Some(store::world::LockMode::Exclusive),
        _ => None,
    })
}
