//! The datastore: snapshots in groups over one chunk store, with every lock of the locking table.
//!
//! Layout: `<base>/<type>/<id>/<time>/` holds a snapshot's index files, blobs and manifest
//! (`index.json.blob`); `<base>/.chunks/` is the chunk store; `<base>/.lock` the process
//! locker's file; lock files live in the lock directory (`<base>/.locks/` unless configured),
//! never inside the directories they protect.
//!
//! # Locking
//!
//! See `LOCKING.md` (also [`crate::locking`]). In short: the group lock (exclusive,
//! non-blocking) admits one writer per group; the snapshot lock is exclusive for creating,
//! destroying and protecting a snapshot and shared for using it; the manifest lock (exclusive,
//! bounded wait) serialises manifest read-modify-write. Every guard is a value; functions that
//! need a lock held take its guard.
//!
//! # Invariants
//!
//! * **I6:** a snapshot held shared (reader, verify, backup base) cannot be destroyed: forget
//!   needs the exclusive snapshot lock and does not wait for it.
//! * **I7:** after the backup, a manifest changes only through [`Datastore::update_manifest`],
//!   under the manifest lock, by atomic replace, and only in its `unprotected` part.
//! * **I10:** a protected snapshot is never removed; the check happens under the exclusive
//!   snapshot lock, the same lock protection changes under.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::backup_info::{BackupDir, BackupGroup, BackupId, BackupTime, BackupType, NameError};
use crate::blob::BlobError;
use crate::chunk_store::{ChunkStore, ChunkStoreConfig, ChunkStoreError, SyncLevel};
use crate::digest::Digest;
use crate::index::IndexError;
use crate::locks::{LockError, LockGuard, ProcessLocker, lock_file};
use crate::manifest::{MANIFEST_BLOB_NAME, Manifest, ManifestError};
use crate::publish::IoError;
use crate::sync::Mutex;
use crate::world::{FileKind, LockMode, LockWait, World};

pub mod backup;
pub mod gc;
pub mod prune;
pub mod reader;
pub mod verify;

/// Name of the marker file that protects a snapshot from forget and prune.
pub const PROTECTED_MARKER: &str = ".protected";

/// How long [`Datastore::update_manifest`] and forget wait for the manifest lock by default.
pub const MANIFEST_LOCK_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);

/// Settings of a datastore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatastoreConfig {
    /// The chunk store's settings (fan-out, sync level, reverted fixes).
    pub chunk_store: ChunkStoreConfig,
    /// Where lock files live; `None` means `<base>/.locks`. Every process using the datastore
    /// must use the same directory.
    pub lock_dir: Option<PathBuf>,
    /// Bounded wait for the manifest lock.
    pub manifest_lock_timeout: Duration,
}

impl DatastoreConfig {
    /// Defaults around a chunk-store configuration.
    pub fn new(chunk_store: ChunkStoreConfig) -> DatastoreConfig {
        DatastoreConfig {
            chunk_store,
            lock_dir: None,
            manifest_lock_timeout: MANIFEST_LOCK_TIMEOUT_DEFAULT,
        }
    }
}

/// The inode numbers of a group's owner and notes files ([`Datastore::group_files`]).
pub(crate) type GroupFiles = [Option<u64>; 2];

/// The manifest's record of an index and what the index holds ([`Error::IndexMismatch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexMismatch {
    /// The checksum the manifest records.
    pub expected: Digest,
    /// The data size the manifest records.
    pub expected_size: u64,
    /// The index's checksum.
    pub actual: Digest,
    /// The index's data size.
    pub actual_size: u64,
}

impl std::fmt::Display for IndexMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "checksum {} of {} data bytes, the manifest records {} of {}",
            self.actual, self.actual_size, self.expected, self.expected_size
        )
    }
}

/// Errors of datastore operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A lock was not taken: contention ([`LockError::is_contention`]) or I/O.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The chunk store failed.
    #[error(transparent)]
    ChunkStore(#[from] ChunkStoreError),
    /// A manifest could not be read, parsed or written.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A name (type, id, time) is invalid.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The world failed an operation.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The snapshot does not exist.
    #[error("snapshot {0} does not exist")]
    SnapshotNotFound(BackupDir),
    /// The snapshot is protected.
    #[error("cannot remove protected snapshot {0}")]
    Protected(BackupDir),
    /// An `update_manifest` closure changed more than the `unprotected` section.
    #[error("manifest update of {0} changed protected fields; only `unprotected` may change")]
    ProtectedManifestFields(BackupDir),
    /// A manifest was to be stored under the manifest lock of another snapshot.
    #[error("the manifest of {manifest} cannot be stored under the manifest lock of {locked}")]
    ManifestLockMismatch {
        /// The snapshot the manifest names.
        manifest: BackupDir,
        /// The snapshot whose manifest lock is held.
        locked: BackupDir,
    },
    /// An index file could not be read, parsed or written.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A blob could not be decoded.
    #[error(transparent)]
    Blob(#[from] BlobError),

    // -- backup and reader sessions (datastore/backup.rs, datastore/reader.rs) --
    /// The snapshot directory of a new backup already exists.
    #[error("backup directory {0} already exists")]
    SnapshotExists(BackupDir),
    /// A group belongs to another owner.
    #[error("backup group {group} is owned by {owner:?}, not {requested:?}")]
    OwnerMismatch {
        /// The group.
        group: BackupGroup,
        /// Its recorded owner.
        owner: String,
        /// Who asked.
        requested: String,
    },
    /// A new backup's time is not newer than its group's last finished snapshot.
    #[error("backup time of {dir} is not newer than the last finished snapshot {base}")]
    BackupTimeNotNewer {
        /// The new snapshot.
        dir: BackupDir,
        /// The group's newest finished snapshot.
        base: BackupDir,
    },
    /// The base snapshot vanished while a backup used it; finishing could lose chunks.
    #[error("base snapshot {base} was removed during the backup of {dir}, cannot finish")]
    BaseVanished {
        /// The snapshot being written.
        dir: BackupDir,
        /// Its base.
        base: BackupDir,
    },
    /// A session was used against its protocol (unknown chunk, open writer, bad archive name,
    /// manifest not matching the written files, ...).
    #[error("backup protocol error in {dir}: {reason}")]
    Protocol {
        /// The snapshot of the session.
        dir: BackupDir,
        /// What was wrong.
        reason: String,
    },
    /// A reader asked for a chunk not referenced by an index it downloaded.
    #[error("chunk {digest} of {dir} was not announced by a downloaded index")]
    ChunkNotAllowed {
        /// The snapshot of the reader session.
        dir: BackupDir,
        /// The chunk.
        digest: Digest,
    },
    /// An owner name is empty or contains control characters (it is stored as one line).
    #[error("invalid owner name {0:?}: must be non-empty and free of control characters")]
    InvalidOwner(String),
    /// A group has no recorded owner (missing or empty `owner` file); an administrator must
    /// set one with `set_group_owner` before it takes new backups.
    #[error("backup group {0} has no recorded owner")]
    NoOwner(BackupGroup),
    /// The backup group does not exist.
    #[error("backup group {0} does not exist")]
    GroupNotFound(BackupGroup),
    /// A reader asked for a file that the snapshot's manifest does not list.
    #[error("{name:?} is not a file of snapshot {dir}")]
    NotInManifest {
        /// The snapshot of the reader session.
        dir: BackupDir,
        /// The file asked for.
        name: String,
    },

    /// An index does not match the checksum and size its manifest records (swapped, replaced
    /// or damaged after the backup): reading it would give another archive's data.
    #[error("index {name} of {dir} does not match its manifest entry: {found}")]
    IndexMismatch {
        /// The snapshot.
        dir: BackupDir,
        /// The index file.
        name: String,
        /// What the manifest records and what the index holds.
        found: Box<IndexMismatch>,
    },

    // -- garbage collection (datastore/gc.rs) --
    /// Another GC holds the GC mutex or the process locker.
    #[error("garbage collection already running or locked")]
    GcRunning,
    /// The filesystem does not honour explicit access-time updates; GC would delete live chunks.
    #[error("access-time safety check failed: {0}")]
    AtimeCheckFailed(String),
    /// The GC cutoff is outside [`gc::GC_CUTOFF_MIN`] ..= [`gc::GC_CUTOFF_MAX`].
    #[error("garbage collection cutoff {cutoff:?} is outside 1 min ..= 2880 min")]
    GcCutoffOutOfRange {
        /// The cutoff asked for.
        cutoff: Duration,
    },
    /// A group's newest snapshot kept vanishing while GC marked it, even under the group lock.
    #[error(
        "garbage collection gave up on group {group}: its newest snapshot still vanished after {relists} relists"
    )]
    GcGroupUnstable {
        /// The group.
        group: BackupGroup,
        /// How many times it was listed again.
        relists: u32,
    },
    /// The GC status file exists but is not a valid status.
    #[error("garbage collection status {} is corrupt: {source}", path.display())]
    GcStatusCorrupt {
        /// The status file.
        path: PathBuf,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    // -- prune (datastore/prune.rs) --

    // -- verify (datastore/verify.rs) --
}

impl Error {
    /// Is this lock contention (busy, timed out, lock file replaced)?
    pub fn is_contention(&self) -> bool {
        matches!(self, Error::GcRunning) || matches!(self, Error::Lock(err) if err.is_contention())
    }

    fn io<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> Error + 'p {
        move |source| Error::Io(IoError::new(op, path, source))
    }
}

/// Proof that a group's exclusive lock is held.
#[must_use = "the group lock is released when the guard is dropped"]
#[derive(Debug)]
pub struct GroupLock<W: World> {
    group: BackupGroup,
    /// Holds the flock for as long as this value lives.
    _guard: LockGuard<W>,
}

/// Proof that a snapshot's lock is held (shared or exclusive).
#[must_use = "the snapshot lock is released when the guard is dropped"]
#[derive(Debug)]
pub struct SnapshotLock<W: World> {
    dir: BackupDir,
    guard: LockGuard<W>,
}

/// Proof that a snapshot's manifest lock is held.
#[must_use = "the manifest lock is released when the guard is dropped"]
#[derive(Debug)]
pub struct ManifestLock<W: World> {
    dir: BackupDir,
    guard: LockGuard<W>,
}

impl<W: World> GroupLock<W> {
    /// The locked group.
    pub fn group(&self) -> &BackupGroup {
        &self.group
    }
}

impl<W: World> SnapshotLock<W> {
    /// The locked snapshot.
    pub fn dir(&self) -> &BackupDir {
        &self.dir
    }

    /// Shared or exclusive.
    pub fn mode(&self) -> LockMode {
        self.guard.mode()
    }
}

impl<W: World> ManifestLock<W> {
    /// The snapshot whose manifest is locked.
    pub fn dir(&self) -> &BackupDir {
        &self.dir
    }
}

/// One snapshot as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Its name.
    pub dir: BackupDir,
    /// Whether its manifest exists (a snapshot is finished iff it does).
    pub finished: bool,
    /// Whether it carries the protection marker.
    pub protected: bool,
}

struct Inner<W: World> {
    world: W,
    base: PathBuf,
    lock_dir: PathBuf,
    config: DatastoreConfig,
    chunk_store: ChunkStore<W>,
    process_locker: Arc<ProcessLocker<W>>,
    gc_mutex: Mutex<W::Sync, ()>,
}

/// A datastore. Cheap to clone; clones share the chunk store and the process locker.
///
/// Open a datastore once per process and share the value. A second `open` of the same path in
/// one process shares the first one's process locker (a per-process registry of the world,
/// [`World::process_shared`]), so GC still sees every writer of the process and no second file
/// handle can drop the first one's record locks (race B13). It does get its own chunk-store
/// mutex, so inserts and sweeps through two instances are not serialised with each other: keep
/// one instance.
pub struct Datastore<W: World> {
    inner: Arc<Inner<W>>,
}

impl<W: World> Clone for Datastore<W> {
    fn clone(&self) -> Self {
        Datastore {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<W: World> Datastore<W> {
    /// Creates a datastore (and its chunk store) at `base`.
    pub fn create(world: W, base: &Path, config: DatastoreConfig) -> Result<Datastore<W>, Error> {
        let chunk_store = ChunkStore::create(world.clone(), base, config.chunk_store)?;
        Ok(Datastore::assemble(world, base, config, chunk_store))
    }

    /// Opens an existing datastore.
    pub fn open(world: W, base: &Path, config: DatastoreConfig) -> Result<Datastore<W>, Error> {
        let chunk_store = ChunkStore::open(world.clone(), base, config.chunk_store)?;
        Ok(Datastore::assemble(world, base, config, chunk_store))
    }

    fn assemble(
        world: W,
        base: &Path,
        config: DatastoreConfig,
        chunk_store: ChunkStore<W>,
    ) -> Datastore<W> {
        let lock_dir = config
            .lock_dir
            .clone()
            .unwrap_or_else(|| base.join(".locks"));
        let process_locker =
            ProcessLocker::for_datastore(&world, &base.join(".lock"), &config.chunk_store);
        let inner = Inner {
            world,
            base: base.to_owned(),
            lock_dir,
            config,
            chunk_store,
            process_locker,
            gc_mutex: Mutex::new(()),
        };
        Datastore {
            inner: Arc::new(inner),
        }
    }

    /// The world.
    pub fn world(&self) -> &W {
        &self.inner.world
    }

    /// The base directory.
    pub fn base(&self) -> &Path {
        &self.inner.base
    }

    /// The settings.
    pub fn config(&self) -> &DatastoreConfig {
        &self.inner.config
    }

    /// The chunk store.
    pub fn chunk_store(&self) -> &ChunkStore<W> {
        &self.inner.chunk_store
    }

    /// The process locker (one per datastore instance).
    pub fn process_locker(&self) -> &Arc<ProcessLocker<W>> {
        &self.inner.process_locker
    }

    /// The mutex that admits one GC run per datastore instance at a time.
    pub fn gc_mutex(&self) -> &Mutex<W::Sync, ()> {
        &self.inner.gc_mutex
    }

    /// `<base>/<type>/<id>`.
    pub fn group_path(&self, group: &BackupGroup) -> PathBuf {
        self.inner.base.join(group.relative_path())
    }

    /// `<base>/<type>/<id>/<time>`.
    pub fn snapshot_path(&self, dir: &BackupDir) -> PathBuf {
        self.inner.base.join(dir.relative_path())
    }

    fn lock_path(&self, kind: &str, parts: &[&str]) -> PathBuf {
        self.inner
            .lock_dir
            .join(format!("{kind}-{}", parts.join("-")))
    }

    fn group_lock_path(&self, group: &BackupGroup) -> PathBuf {
        self.lock_path("group", &[group.ty.as_str(), group.id.as_str()])
    }

    fn snapshot_lock_path(&self, kind: &str, dir: &BackupDir) -> PathBuf {
        let time = dir.time.to_string();
        self.lock_path(kind, &[dir.group.ty.as_str(), dir.group.id.as_str(), &time])
    }

    /// Takes a group's exclusive lock without waiting.
    pub fn lock_group(&self, group: &BackupGroup) -> Result<GroupLock<W>, Error> {
        let path = self.group_lock_path(group);
        let what = format!("backup group {group}");
        let guard = lock_file(
            self.world(),
            &path,
            &what,
            LockMode::Exclusive,
            LockWait::NonBlocking,
        )?;
        Ok(GroupLock {
            group: group.clone(),
            _guard: guard,
        })
    }

    /// Takes a snapshot's lock in `mode` without waiting. The snapshot need not exist: callers
    /// that need it re-check after locking.
    pub fn lock_snapshot(&self, dir: &BackupDir, mode: LockMode) -> Result<SnapshotLock<W>, Error> {
        let path = self.snapshot_lock_path("snapshot", dir);
        let what = format!("snapshot {dir}");
        let guard = lock_file(self.world(), &path, &what, mode, LockWait::NonBlocking)?;
        Ok(SnapshotLock {
            dir: dir.clone(),
            guard,
        })
    }

    /// Takes a snapshot's manifest lock, waiting at most the configured timeout.
    pub fn lock_manifest(&self, dir: &BackupDir) -> Result<ManifestLock<W>, Error> {
        let path = self.snapshot_lock_path("manifest", dir);
        let what = format!("manifest of {dir}");
        let wait = LockWait::Timeout(self.inner.config.manifest_lock_timeout);
        let guard = lock_file(self.world(), &path, &what, LockMode::Exclusive, wait)?;
        Ok(ManifestLock {
            dir: dir.clone(),
            guard,
        })
    }

    /// Every backup group, sorted by type (vm, ct, host) and id. Directories whose names are not valid types
    /// or ids are ignored; hidden entries (`.chunks`, `.locks`, `.lock`) too.
    pub fn list_groups(&self) -> Result<Vec<BackupGroup>, Error> {
        let mut groups = Vec::new();
        for ty in [BackupType::Ct, BackupType::Host, BackupType::Vm] {
            let type_dir = self.inner.base.join(ty.as_str());
            for entry in self.list_dir_or_empty(&type_dir)? {
                let Some(name) = entry.name_str() else {
                    continue;
                };
                if entry.kind != FileKind::Dir {
                    continue;
                }
                if let Ok(id) = BackupId::parse(name) {
                    groups.push(BackupGroup::new(ty, id));
                }
            }
        }
        groups.sort();
        Ok(groups)
    }

    fn list_dir_or_empty(&self, dir: &Path) -> Result<Vec<crate::world::DirEntry>, Error> {
        match self.world().read_dir(dir) {
            Ok(entries) => Ok(entries),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(err) => Err(Error::io("readdir", dir)(err)),
        }
    }

    /// A group's snapshots, oldest first, listed without any lock (the listing may be stale by
    /// the time it is used). A vanished group lists as empty.
    pub fn list_snapshots(&self, group: &BackupGroup) -> Result<Vec<SnapshotInfo>, Error> {
        let group_dir = self.group_path(group);
        let mut snapshots = Vec::new();
        for entry in self.list_dir_or_empty(&group_dir)? {
            let Some(name) = entry.name_str() else {
                continue;
            };
            if entry.kind != FileKind::Dir {
                continue;
            }
            let Ok(time) = BackupTime::parse(name) else {
                continue;
            };
            let dir = BackupDir::new(group.clone(), time);
            let path = group_dir.join(name);
            let finished = self.exists(&path.join(MANIFEST_BLOB_NAME))?;
            let protected = self.exists(&path.join(PROTECTED_MARKER))?;
            snapshots.push(SnapshotInfo {
                dir,
                finished,
                protected,
            });
        }
        snapshots.sort_by_key(|info| info.dir.time);
        Ok(snapshots)
    }

    fn exists(&self, path: &Path) -> Result<bool, Error> {
        Ok(self
            .world()
            .try_metadata(path)
            .map_err(Error::io("stat", path))?
            .is_some())
    }

    /// Does the snapshot directory exist?
    pub fn snapshot_exists(&self, dir: &BackupDir) -> Result<bool, Error> {
        self.exists(&self.snapshot_path(dir))
    }

    /// Reads a snapshot's manifest (no lock: it is only ever replaced atomically).
    pub fn load_manifest(&self, dir: &BackupDir) -> Result<Manifest, Error> {
        Ok(Manifest::load_from_dir(
            self.world(),
            &self.snapshot_path(dir),
        )?)
    }

    /// The only way to change a finished snapshot's manifest: under the manifest lock, load it,
    /// let `change` edit it, check that only `unprotected` changed, and replace it atomically.
    /// Returns the stored manifest.
    pub fn update_manifest(
        &self,
        dir: &BackupDir,
        change: impl FnOnce(&mut Manifest),
    ) -> Result<Manifest, Error> {
        if crate::reverted!(self.config().chunk_store.regressions, B7ManifestWithoutLock) {
            return self.rewrite_manifest(dir, change);
        }
        let lock = self.lock_manifest(dir)?;
        self.update_manifest_locked(&lock, change)
    }

    /// [`Datastore::update_manifest`] with the manifest lock already held.
    pub fn update_manifest_locked(
        &self,
        lock: &ManifestLock<W>,
        change: impl FnOnce(&mut Manifest),
    ) -> Result<Manifest, Error> {
        self.rewrite_manifest(&lock.dir, change)
    }

    /// Publishes `manifest` as the manifest of the snapshot whose manifest lock is held (a
    /// snapshot written outside a backup session, e.g. by a pull), at the configured sync level
    /// (temporary file and rename, see [`crate::publish`]). The manifest must name the locked
    /// snapshot. A finished snapshot's manifest changes only through
    /// [`Datastore::update_manifest`], which keeps its protected fields.
    pub fn store_manifest_locked(
        &self,
        lock: &ManifestLock<W>,
        manifest: &Manifest,
    ) -> Result<(), Error> {
        let named = manifest.backup_dir();
        if named != lock.dir {
            return Err(Error::ManifestLockMismatch {
                manifest: named,
                locked: lock.dir.clone(),
            });
        }
        let path = self.snapshot_path(&lock.dir);
        manifest.store(
            self.world(),
            &path,
            self.inner.config.chunk_store.sync_level,
        )?;
        Ok(())
    }

    /// The read-modify-write of a manifest; callers hold its manifest lock (race B7).
    fn rewrite_manifest(
        &self,
        dir: &BackupDir,
        change: impl FnOnce(&mut Manifest),
    ) -> Result<Manifest, Error> {
        let path = self.snapshot_path(dir);
        let before = Manifest::load_from_dir(self.world(), &path)?;
        let mut after = before.clone();
        change(&mut after);
        let mut protected_after = after.clone();
        protected_after.unprotected = before.unprotected.clone();
        if protected_after != before {
            return Err(Error::ProtectedManifestFields(dir.clone()));
        }
        after.store(
            self.world(),
            &path,
            self.inner.config.chunk_store.sync_level,
        )?;
        Ok(after)
    }

    /// Sets or clears a snapshot's protection, under its exclusive snapshot lock.
    pub fn set_protection(&self, dir: &BackupDir, protected: bool) -> Result<(), Error> {
        let _lock = self.lock_snapshot(dir, LockMode::Exclusive)?;
        let snapshot = self.snapshot_path(dir);
        if !self.exists(&snapshot)? {
            return Err(Error::SnapshotNotFound(dir.clone()));
        }
        let marker = snapshot.join(PROTECTED_MARKER);
        let result = if protected {
            self.world()
                .open(&marker, crate::world::OpenOptions::create_keep())
                .map(drop)
        } else {
            match self.world().remove_file(&marker) {
                Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            }
        };
        result.map_err(Error::io("update protection", &marker))?;
        if crate::reverted!(
            self.config().chunk_store.regressions,
            ProtectionWithoutDirSync
        ) {
            return Ok(());
        }
        // The marker is a directory entry: durable once its directory is.
        self.sync_dir(&snapshot)
    }

    /// At the durable sync levels, fsyncs `dir` so that the entries created, renamed or removed
    /// in it survive a crash. An error is returned as is and never retried.
    pub(crate) fn sync_dir(&self, dir: &Path) -> Result<(), Error> {
        if self.inner.config.chunk_store.sync_level == SyncLevel::None {
            return Ok(());
        }
        self.world().fsync_dir(dir).map_err(Error::io("fsync", dir))
    }

    /// Forget: destroys a snapshot.
    ///
    /// Exclusive snapshot lock (without waiting: a reader, verify or running backup makes this
    /// fail busy) → manifest lock (bounded wait) → refuse if protected → remove the directory →
    /// remove both lock files while still holding them → if the group is now empty, remove it
    /// under a try of the group lock (skipped if somebody holds it).
    pub fn forget_snapshot(&self, dir: &BackupDir) -> Result<(), Error> {
        let snapshot_lock = self.lock_snapshot(dir, LockMode::Exclusive)?;
        let manifest_lock = match self.lock_manifest(dir) {
            Ok(lock) => Some(lock),
            // Race B8: going on without the lock while an update may be writing in the directory.
            Err(_)
                if crate::reverted!(
                    self.config().chunk_store.regressions,
                    B8ForgetIgnoresManifestLock
                ) =>
            {
                None
            }
            Err(err) => return Err(err),
        };
        let path = self.snapshot_path(dir);
        if !self.exists(&path)? {
            return Err(Error::SnapshotNotFound(dir.clone()));
        }
        if self.exists(&path.join(PROTECTED_MARKER))? {
            return Err(Error::Protected(dir.clone()));
        }
        // What the group holds besides its snapshots before this removal: the group is this
        // forget's to remove only if nobody writes its owner or notes meanwhile.
        let before = if crate::reverted!(
            self.config().chunk_store.regressions,
            GroupRemovalIgnoresNewerWrites
        ) {
            None
        } else {
            Some(self.group_files(&dir.group)?)
        };
        self.remove_snapshot_dir(&path)?;
        if let Some(manifest_lock) = manifest_lock {
            manifest_lock.guard.remove(self.world())?;
        }
        snapshot_lock.guard.remove(self.world())?;
        self.remove_group_if_empty(&dir.group, before.as_ref())
    }

    /// The inode numbers of a group's owner and notes files (`None` for one that is
    /// missing): they are only ever replaced by a rename, so a write gives a new inode.
    pub(crate) fn group_files(&self, group: &BackupGroup) -> Result<GroupFiles, Error> {
        let group_dir = self.group_path(group);
        let mut inodes = [None; 2];
        for (slot, name) in inodes
            .iter_mut()
            .zip([backup::OWNER_FILE_NAME, backup::GROUP_NOTES_FILE_NAME])
        {
            let path = group_dir.join(name);
            *slot = self
                .world()
                .try_metadata(&path)
                .map_err(Error::io("stat", &path))?
                .map(|meta| meta.ino);
        }
        Ok(inodes)
    }

    /// Removes a snapshot directory, the manifest first: from the first unlink on the snapshot
    /// no longer counts as finished, so nobody sees a finished snapshot with files missing.
    ///
    /// At the durable sync levels the manifest's removal is made durable (fsync of the
    /// snapshot directory) before any other file goes, so that no crash can keep the removal of
    /// an index but not that of the manifest; and the directory's removal is made durable
    /// (fsync of the group directory) before this returns, so that a GC that runs afterwards
    /// and sweeps the snapshot's chunks can never meet the snapshot again after a crash.
    fn remove_snapshot_dir(&self, path: &Path) -> Result<(), Error> {
        let manifest = path.join(MANIFEST_BLOB_NAME);
        match self.world().remove_file(&manifest) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                return Err(Error::io("unlink", &manifest)(err));
            }
            _ => {}
        }
        let unsynced =
            crate::reverted!(self.config().chunk_store.regressions, ForgetWithoutDirSync);
        if !unsynced {
            self.sync_dir(path)?;
        }
        for entry in self
            .world()
            .read_dir(path)
            .map_err(Error::io("readdir", path))?
        {
            let file = path.join(&entry.name);
            match self.world().remove_file(&file) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => {
                    return Err(Error::io("unlink", &file)(err));
                }
                _ => {}
            }
        }
        self.world()
            .remove_dir(path)
            .map_err(Error::io("rmdir", path))?;
        match path.parent() {
            Some(group_dir) if !unsynced => self.sync_dir(group_dir),
            _ => Ok(()),
        }
    }

    pub(crate) fn remove_group_if_empty(
        &self,
        group: &BackupGroup,
        before: Option<&GroupFiles>,
    ) -> Result<(), Error> {
        let group_lock = match self.lock_group(group) {
            Ok(lock) => lock,
            // A backup (or another remover) holds the group: it is not ours to remove.
            Err(err) if err.is_contention() => return Ok(()),
            Err(err) => return Err(err),
        };
        // Its owner or notes were written after this removal began (`before`: the group's
        // files then): the group is the writer's now (in the serial order the write came
        // after this forget), not ours to remove with what was just written.
        self.remove_group_locked_unless_written(&group_lock, before)
    }

    /// [`Datastore::remove_group_locked`], except that an emptied group whose owner or notes
    /// differ from `before` is left in place.
    fn remove_group_locked_unless_written(
        &self,
        group_lock: &GroupLock<W>,
        before: Option<&GroupFiles>,
    ) -> Result<(), Error> {
        let group_dir = self.group_path(&group_lock.group);
        let entries = self.list_dir_or_empty(&group_dir)?;
        if entries.iter().any(|entry| entry.kind == FileKind::Dir) {
            return Ok(());
        }
        if let Some(before) = before
            && self.group_files(&group_lock.group)? != *before
        {
            return Ok(());
        }
        self.remove_listed_group(group_lock, &group_dir, &entries)
    }

    /// Removes a group's directory if it holds no snapshot, then its lock file (still held).
    pub fn remove_group_locked(&self, group_lock: &GroupLock<W>) -> Result<(), Error> {
        self.remove_group_locked_unless_written(group_lock, None)
    }

    /// Removes the files `entries` of the group directory, the directory, then the group's
    /// lock file (still held).
    fn remove_listed_group(
        &self,
        group_lock: &GroupLock<W>,
        group_dir: &Path,
        entries: &[crate::world::DirEntry],
    ) -> Result<(), Error> {
        for entry in entries {
            let file = group_dir.join(&entry.name);
            self.world()
                .remove_file(&file)
                .map_err(Error::io("unlink", &file))?;
        }
        match self.world().remove_dir(group_dir) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                return Err(Error::io("rmdir", group_dir)(err));
            }
            _ => {}
        }
        let path = self.group_lock_path(&group_lock.group);
        match self.world().remove_file(&path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                Err(Error::io("unlink", &path)(err))
            }
            _ => Ok(()),
        }
    }
}
