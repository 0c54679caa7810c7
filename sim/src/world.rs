//! [`SimWorld`]: the simulated world of one process — a shared in-memory disk, a shared clock,
//! and this process's identity.
//!
//! # Shared state and scheduling points
//!
//! A [`Disk`] is shared (through `Arc`) by every simulated process made from one
//! [`SimWorld::new`]. Besides the inodes (see [`crate::inode`]), it has a few small leaf mutexes:
//! the clock, the id counters, the sync statistics and the cross-directory rename lock. All are
//! `S::Mutex`es, so under shuttle and loom every access is a visible scheduling point; the sim
//! uses no std lock, no std atomic and never calls `yield_now`.
//!
//! # Lock order
//!
//! Inode locks are taken parent before child (see [`crate::namespace`]). The leaf mutexes
//! (clock, ids, stats, a process's lock registry) are taken either with no inode lock held or
//! as the innermost lock, and nothing is locked while one of them is held.
//!
//! # Determinism
//!
//! Inode numbers, process ids, open-file-description ids and `unique_id`s come from counters;
//! the listing order of `read_dir` is a pinned hash of the seed; time moves only through
//! [`SimWorld::set_time`] and [`SimWorld::advance`]. Nothing depends on addresses, real time or
//! std's random hashers.
//!
//! # Where the sim is simpler than Linux
//!
//! * Reads never update atime (as with `noatime`); only creation and `touch_atime` set it.
//! * A directory's mtime is its creation time; entry changes do not update it.
//! * `..` path components are refused (`InvalidInput`) and a trailing slash is ignored.
//! * `fsync_dir` of a regular file is `NotADirectory` (Linux would fsync the file).
//! * There are no hard links, symbolic links, permissions or free-space limits; I/O errors
//!   exist only where a scenario injects them ([`SimWorld::fail_touch`]).
//! * Durability is not modelled yet: every change is at once visible and "durable"; the
//!   `sync` calls are only validated and counted ([`SimWorld::sim_stats`]).

use std::any::Any;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use store::sync::{Mutex, SyncFamily};
use store::world::{DirEntry, FileKind, Metadata, OpenOptions, SharedObject, World};

use crate::file::SimFile;
use crate::inode::{Inode, Pid, TouchFault};

/// The simulated clock's start: 2023-11-14T22:13:20Z.
pub const START_TIME: i64 = 1_700_000_000;

/// Counts of the durability calls made on a disk (by all its processes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// [`store::world::WorldFile::sync_all`] calls.
    pub sync_all: u64,
    /// [`World::fsync_dir`] calls that succeeded.
    pub fsync_dir: u64,
    /// [`World::syncfs`] calls that succeeded.
    pub syncfs: u64,
}

/// Counters that hand out identities.
struct Ids {
    next_ino: u64,
    next_pid: Pid,
    next_unique: u64,
}

/// The disk and clock shared by all processes of one simulated world.
pub(crate) struct Disk<S: SyncFamily> {
    /// Seed of the world: picks the `read_dir` order.
    pub(crate) seed: u64,
    /// The root directory.
    pub(crate) root: Arc<Inode<S>>,
    /// Simulated wall-clock time, seconds since the Unix epoch.
    clock: Mutex<S, i64>,
    /// Identity counters.
    ids: Mutex<S, Ids>,
    /// Durability-call statistics.
    pub(crate) stats: Mutex<S, SimStats>,
    /// Serialises cross-directory renames, so directory ancestry is stable while one runs
    /// (Linux's `s_vfs_rename_mutex`).
    pub(crate) rename_lock: Mutex<S, ()>,
}

impl<S: SyncFamily> Disk<S> {
    /// The simulated time.
    pub(crate) fn now(&self) -> i64 {
        *self.clock.lock()
    }

    /// A fresh inode number.
    pub(crate) fn allocate_ino(&self) -> u64 {
        let mut ids = self.ids.lock();
        let ino = ids.next_ino;
        ids.next_ino += 1;
        ino
    }
}

/// One simulated process: its id, the inodes on which it may hold locks, and its registry of
/// shared objects.
pub(crate) struct Process<S: SyncFamily> {
    /// The process id.
    pub(crate) pid: Pid,
    /// Inodes on which this process took a flock or record lock (possibly released since), by
    /// inode number, so [`SimWorld::kill_process`] can find them even once unlinked.
    locked: Mutex<S, BTreeMap<u64, Arc<Inode<S>>>>,
    /// The registry of [`World::process_shared`], by key (weak: users keep the objects alive).
    shared: Mutex<S, BTreeMap<PathBuf, Weak<dyn Any + Send + Sync>>>,
}

impl<S: SyncFamily> Process<S> {
    fn new(pid: Pid) -> Arc<Self> {
        Arc::new(Process { pid, locked: Mutex::new(BTreeMap::new()), shared: Mutex::new(BTreeMap::new()) })
    }

    /// Notes that this process took a lock on `inode`.
    pub(crate) fn register_lock(&self, inode: &Arc<Inode<S>>) {
        self.locked.lock().entry(inode.ino).or_insert_with(|| Arc::clone(inode));
    }
}

/// One process of a simulated world: an in-memory filesystem with flock and record-lock tables,
/// a clock that only the scenario moves, all generic over the sync family `S`
/// (`StdSync`, [`crate::ShuttleSync`], [`crate::LoomSync`]).
///
/// A clone is the same process; [`SimWorld::new_process`] makes another process on the same
/// disk and clock. Under shuttle and loom, create it inside the test closure.
pub struct SimWorld<S: SyncFamily> {
    pub(crate) disk: Arc<Disk<S>>,
    pub(crate) process: Arc<Process<S>>,
}

impl<S: SyncFamily> Clone for SimWorld<S> {
    fn clone(&self) -> Self {
        SimWorld { disk: Arc::clone(&self.disk), process: Arc::clone(&self.process) }
    }
}

impl<S: SyncFamily> SimWorld<S> {
    /// A fresh world: an empty disk holding only `/`, the clock at [`START_TIME`], and process 1.
    /// `seed` picks the order of `read_dir` listings.
    pub fn new(seed: u64) -> Self {
        let root = Inode::new(1, FileKind::Dir, START_TIME);
        let disk = Disk {
            seed,
            root,
            clock: Mutex::new(START_TIME),
            ids: Mutex::new(Ids { next_ino: 2, next_pid: 2, next_unique: 0 }),
            stats: Mutex::new(SimStats::default()),
            rename_lock: Mutex::new(()),
        };
        SimWorld { disk: Arc::new(disk), process: Process::new(1) }
    }

    /// Another simulated process (with a new pid) on the same disk and clock.
    pub fn new_process(&self) -> Self {
        let pid = {
            let mut ids = self.disk.ids.lock();
            let pid = ids.next_pid;
            ids.next_pid += 1;
            pid
        };
        SimWorld { disk: Arc::clone(&self.disk), process: Process::new(pid) }
    }

    /// This process's id (the first process is 1).
    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// The seed this world was made with.
    pub fn seed(&self) -> u64 {
        self.disk.seed
    }

    /// Sets the simulated clock to `time` (seconds since the Unix epoch; may go backwards).
    pub fn set_time(&self, time: i64) {
        *self.disk.clock.lock() = time;
    }

    /// Moves the simulated clock by `secs` (may be negative).
    pub fn advance(&self, secs: i64) {
        *self.disk.clock.lock() += secs;
    }

    /// Counts of the durability calls made so far on this disk, by all processes.
    pub fn sim_stats(&self) -> SimStats {
        *self.disk.stats.lock()
    }

    /// Fault injection: from now on, [`World::touch_atime`] of the file or directory that `path`
    /// names fails with `kind` (e.g. `StorageFull`, `PermissionDenied`, or `Other` for EIO),
    /// the next `times` calls or, with `None`, until [`SimWorld::clear_touch_fault`]. The rule
    /// belongs to the inode, on the shared disk: it holds for every process, follows the file
    /// through renames and ends with the inode (a new file at the path does not fail). Other
    /// operations on the file are unaffected. Arming it is one step of the schedule like any
    /// other file operation, so an actor can "fill the disk" at a point the explorer chooses.
    pub fn fail_touch(&self, path: &Path, kind: io::ErrorKind, times: Option<u32>) -> io::Result<()> {
        self.disk.with_object(path, |_, state| {
            state.touch_fault = Some(TouchFault { kind, remaining: times });
            Ok(())
        })
    }

    /// Ends a [`SimWorld::fail_touch`] rule on the inode `path` names.
    pub fn clear_touch_fault(&self, path: &Path) -> io::Result<()> {
        self.disk.with_object(path, |_, state| {
            state.touch_fault = None;
            Ok(())
        })
    }

    /// Simulates the death of this process: releases every flock held by its open file
    /// descriptions and every record lock it holds, and wakes blocked flock waiters.
    ///
    /// Call it once the process's threads have stopped using the world: its handles stay
    /// usable, and locks they take afterwards are held again (and released on drop as usual).
    pub fn kill_process(&self) {
        let locked = std::mem::take(&mut *self.process.locked.lock());
        for inode in locked.values() {
            let released = inode.state.lock().release_process(self.process.pid);
            if released {
                inode.flock_released.notify_all();
            }
        }
    }
}

impl<S: SyncFamily> World for SimWorld<S> {
    type Sync = S;
    type File = SimFile<S>;

    fn now(&self) -> i64 {
        self.disk.now()
    }

    fn sleep(&self, duration: Duration) {
        let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
        self.advance(i64::try_from(secs).unwrap_or(i64::MAX));
    }

    fn unique_id(&self) -> u64 {
        let mut ids = self.disk.ids.lock();
        let id = ids.next_unique;
        ids.next_unique += 1;
        id
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.disk.create_dir(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.disk.create_dir_all(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.disk.remove_dir(path)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.disk.remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.disk.rename(from, to)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        self.disk.read_dir(path)
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.disk.with_object(path, |inode, state| Ok(state.metadata(inode.ino, inode.kind)))
    }

    fn touch_atime(&self, path: &Path) -> io::Result<()> {
        let now = self.disk.now();
        self.disk.with_object(path, |_, state| {
            if let Some(fault) = &mut state.touch_fault {
                let kind = fault.kind;
                match &mut fault.remaining {
                    None => {}
                    Some(1) => state.touch_fault = None,
                    Some(remaining) => *remaining = remaining.saturating_sub(1),
                }
                return Err(io::Error::new(kind, "touch: injected fault"));
            }
            state.atime = now;
            Ok(())
        })
    }

    fn process_shared(&self, key: &Path, make: &mut dyn FnMut() -> SharedObject) -> SharedObject {
        let mut registry = self.process.shared.lock();
        registry.retain(|_, object| object.strong_count() > 0);
        if let Some(object) = registry.get(key).and_then(Weak::upgrade) {
            return object;
        }
        let object = make();
        registry.insert(key.to_owned(), Arc::downgrade(&object));
        object
    }

    fn open(&self, path: &Path, options: OpenOptions) -> io::Result<SimFile<S>> {
        let (inode, ofd) = self.disk.open_inode(path, options)?;
        Ok(SimFile::new(self.clone(), inode, ofd, options))
    }

    fn fsync_dir(&self, path: &Path) -> io::Result<()> {
        self.disk.check_live_dir(path)?;
        self.disk.stats.lock().fsync_dir += 1;
        Ok(())
    }

    fn syncfs(&self, path: &Path) -> io::Result<()> {
        self.disk.with_object(path, |_, _| Ok(()))?;
        self.disk.stats.lock().syncfs += 1;
        Ok(())
    }
}
