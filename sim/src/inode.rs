//! Inodes of the simulated disk.
//!
//! # Per-inode locks
//!
//! Every inode keeps its mutable state ([`InodeState`]) in its own `S::Mutex`, so operations on
//! unrelated files touch unrelated mutexes and loom's partial-order reduction can prune their
//! interleavings. The immutable parts (inode number, kind) sit outside the mutex and are read
//! without a scheduling point.
//!
//! A directory's state holds its entries as `Arc<Inode>`s, so an open handle or a path walk keeps
//! an inode alive after it has been unlinked (that is how unlinked-but-open files keep their
//! data).
//!
//! # Lock tables
//!
//! Each inode also carries its advisory locks:
//! * `flocks`: one entry per open file description (OFD) holding a `flock`, with the owning
//!   process, so a simulated process death can drop them;
//! * `record_locks`: one entry per process (fcntl semantics: a process's record locks never
//!   conflict with each other);
//! * a condition variable on which blocked `flock` requests wait; whoever releases a flock
//!   calls `notify_all`.
//!
//! # Durability
//!
//! Every change applies at once to the state below, which is the *volatile* state: what every
//! thread and process sees. What survives a crash is kept beside it, per disk, by module
//! `durable`: a durable image (per inode number: data, size, times, entries) and a log of the
//! changes not yet durable. Each operation logs its change while it still holds the locks of
//! the inodes it changed, so per file and per directory the log order is the order of effect,
//! and the per-inode locking (and loom's view of independent files) stays as it is: the
//! durability record's own mutex is a leaf that is invisible to the schedulers.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::Arc;

use store::sync::{Condvar, Mutex, SyncFamily};
use store::world::{FileKind, LockMode, Metadata};

/// A simulated process id.
pub(crate) type Pid = u32;

/// An open-file-description id, unique within one inode.
pub(crate) type OfdId = u64;

/// One file or directory of the simulated disk.
pub(crate) struct Inode<S: SyncFamily> {
    /// Inode number, unique on the disk and never reused.
    pub(crate) ino: u64,
    /// File or directory; fixed for the inode's life.
    pub(crate) kind: FileKind,
    /// Everything that changes, under this inode's own lock.
    pub(crate) state: Mutex<S, InodeState<S>>,
    /// Blocked `flock` requests on this inode wait here.
    pub(crate) flock_released: Condvar<S>,
}

/// The data or entries of an inode.
pub(crate) enum Content<S: SyncFamily> {
    /// A regular file's bytes.
    File(Vec<u8>),
    /// A directory's entries, by name (a `BTreeMap`: its order never depends on a hasher).
    Dir(BTreeMap<OsString, Arc<Inode<S>>>),
}

/// The mutable state of an inode.
pub(crate) struct InodeState<S: SyncFamily> {
    /// Data or entries.
    pub(crate) content: Content<S>,
    /// Last access time (seconds); set at creation and by `touch_atime` only.
    pub(crate) atime: i64,
    /// Last modification time (seconds); set at creation and by data changes.
    pub(crate) mtime: i64,
    /// A directory that was removed (`rmdir`, or replaced by `rename`): nothing may be created
    /// in it any more and it cannot be listed, as on Linux.
    pub(crate) removed: bool,
    /// Next open-file-description id handed out by `open` of this inode.
    pub(crate) next_ofd: OfdId,
    /// `flock`s held, by open file description: (owner process, mode).
    pub(crate) flocks: BTreeMap<OfdId, (Pid, LockMode)>,
    /// fcntl record locks held, by process.
    pub(crate) record_locks: BTreeMap<Pid, LockMode>,
    /// An injected failure of `touch_atime` on this inode (`SimWorld::fail_touch`).
    pub(crate) touch_fault: Option<TouchFault>,
}

/// An injected `touch_atime` failure: its error kind and how many more calls fail (`None`:
/// every call until cleared).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TouchFault {
    pub(crate) kind: std::io::ErrorKind,
    pub(crate) remaining: Option<u32>,
}

impl<S: SyncFamily> Inode<S> {
    /// A new file (empty) or directory (no entries) created at time `now`.
    pub(crate) fn new(ino: u64, kind: FileKind, now: i64) -> Arc<Self> {
        let content = match kind {
            FileKind::Dir => Content::Dir(BTreeMap::new()),
            _ => Content::File(Vec::new()),
        };
        let state = InodeState {
            content,
            atime: now,
            mtime: now,
            removed: false,
            next_ofd: 0,
            flocks: BTreeMap::new(),
            record_locks: BTreeMap::new(),
            touch_fault: None,
        };
        Arc::new(Inode {
            ino,
            kind,
            state: Mutex::new(state),
            flock_released: Condvar::new(),
        })
    }

    /// An inode restored from a crash image, with its content and times.
    pub(crate) fn restored(
        ino: u64,
        kind: FileKind,
        content: Content<S>,
        atime: i64,
        mtime: i64,
    ) -> Arc<Self> {
        let state = InodeState {
            content,
            atime,
            mtime,
            removed: false,
            next_ofd: 0,
            flocks: BTreeMap::new(),
            record_locks: BTreeMap::new(),
            touch_fault: None,
        };
        Arc::new(Inode {
            ino,
            kind,
            state: Mutex::new(state),
            flock_released: Condvar::new(),
        })
    }

    /// Is this a directory? (No lock needed: the kind never changes.)
    pub(crate) fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }
}

impl<S: SyncFamily> InodeState<S> {
    /// The `stat` of this inode.
    pub(crate) fn metadata(&self, ino: u64, kind: FileKind) -> Metadata {
        let len = match &self.content {
            Content::File(data) => data.len() as u64,
            Content::Dir(_) => 0,
        };
        Metadata {
            kind,
            len,
            atime: self.atime,
            mtime: self.mtime,
            ino,
        }
    }

    /// The entries of a directory, `None` for a file.
    pub(crate) fn entries(&self) -> Option<&BTreeMap<OsString, Arc<Inode<S>>>> {
        match &self.content {
            Content::Dir(entries) => Some(entries),
            Content::File(_) => None,
        }
    }

    /// The entries of a directory, mutably; `None` for a file.
    pub(crate) fn entries_mut(&mut self) -> Option<&mut BTreeMap<OsString, Arc<Inode<S>>>> {
        match &mut self.content {
            Content::Dir(entries) => Some(entries),
            Content::File(_) => None,
        }
    }

    /// Hands out a fresh open-file-description id.
    pub(crate) fn allocate_ofd(&mut self) -> OfdId {
        let ofd = self.next_ofd;
        self.next_ofd += 1;
        ofd
    }

    /// May open file description `ofd` take a flock in `mode` next to the other holders?
    pub(crate) fn flock_compatible(&self, ofd: OfdId, mode: LockMode) -> bool {
        self.flocks
            .iter()
            .filter(|(holder, _)| **holder != ofd)
            .all(|(_, (_, held))| mode == LockMode::Shared && *held == LockMode::Shared)
    }

    /// May process `pid` take a record lock in `mode` next to the other processes' locks?
    pub(crate) fn record_lock_compatible(&self, pid: Pid, mode: LockMode) -> bool {
        self.record_locks
            .iter()
            .filter(|(holder, _)| **holder != pid)
            .all(|(_, held)| mode == LockMode::Shared && *held == LockMode::Shared)
    }

    /// Drops every lock that process `pid` holds here (flocks of its OFDs and its record locks).
    /// Returns whether a flock was released, i.e. whether flock waiters must be woken.
    pub(crate) fn release_process(&mut self, pid: Pid) -> bool {
        self.record_locks.remove(&pid);
        let before = self.flocks.len();
        self.flocks.retain(|_, (owner, _)| *owner != pid);
        self.flocks.len() != before
    }
}

impl<S: SyncFamily> InodeState<S> {
    /// The lock-table invariants of one inode (module `selfcheck`); `next_pid` bounds the pids.
    pub(crate) fn check_locks(&self, next_pid: Pid) -> Result<(), String> {
        let flock_exclusive = self
            .flocks
            .values()
            .any(|(_, mode)| *mode == LockMode::Exclusive);
        if flock_exclusive && self.flocks.len() > 1 {
            return Err(format!("exclusive flock beside others: {:?}", self.flocks));
        }
        if let Some((ofd, _)) = self.flocks.iter().find(|(ofd, _)| **ofd >= self.next_ofd) {
            return Err(format!(
                "flock of open file description {ofd} never handed out"
            ));
        }
        let record_exclusive = self
            .record_locks
            .values()
            .any(|mode| *mode == LockMode::Exclusive);
        if record_exclusive && self.record_locks.len() > 1 {
            let locks = &self.record_locks;
            return Err(format!("exclusive record lock beside others: {locks:?}"));
        }
        let pids = self.flocks.values().map(|(pid, _)| pid);
        if let Some(pid) = pids
            .chain(self.record_locks.keys())
            .find(|pid| **pid >= next_pid)
        {
            return Err(format!("lock held by process {pid}, which does not exist"));
        }
        Ok(())
    }
}

/// Asserts [`InodeState::check_locks`] in debug builds, after a lock-table change (module
/// `selfcheck`). Process ids are not bounded here: reading the id counter would add a
/// scheduling point to every lock operation (`SimWorld::check_consistency` bounds them).
pub(crate) fn debug_check_locks<S: SyncFamily>(state: &InodeState<S>) {
    if cfg!(debug_assertions)
        && let Err(problem) = state.check_locks(Pid::MAX)
    {
        panic!("simulated world is inconsistent: {problem}");
    }
}
