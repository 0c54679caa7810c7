//! Lock files (flock with the double-stat identity check) and the process locker.
//!
//! # Lock files
//!
//! Group, snapshot and manifest locks are flocks on files in the datastore's lock directory,
//! never inside the directories they protect (those get deleted, and a lock on a deleted inode
//! protects nothing: race B16). [`lock_file`] opens (creating) the file, takes the flock, and
//! then compares the inode of the open file with the inode the path names now. If they differ,
//! or the path is gone, another holder unlinked the lock file while this caller waited for the
//! old inode, and the lock is refused as [`LockError::Replaced`]. That check is what makes it
//! safe for a holder to unlink a lock file while still holding it (forget does), invariant I9.
//!
//! # Process locker
//!
//! [`ProcessLocker`] is the cross-process writer/GC lock on `<base>/.lock`: fcntl record locks,
//! shared for each backup session (stamped with its start time), exclusive for GC. Record locks
//! of one process never conflict with each other, so *within* a process GC and backups coexist
//! and GC instead learns the oldest writer's start time from [`ProcessLocker::oldest_shared_lock`].
//! Because closing any descriptor of `.lock` drops all of the process's record locks on it, a
//! process must have exactly one locker per datastore (race B13): datastores get theirs through
//! [`ProcessLocker::for_datastore`], which reuses the live locker of the same path from the
//! world's per-process registry ([`World::process_shared`]).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::chunk_store::ChunkStoreConfig;
use crate::publish::IoError;
#[cfg(feature = "regressions")]
use crate::regressions::Regressions;
use crate::sync::Mutex;
use crate::world::{LockMode, LockWait, OpenOptions, SharedObject, World, WorldFile};

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Somebody else holds a conflicting lock (non-blocking request).
    #[error("{what} is busy: locked by another operation ({})", path.display())]
    Busy {
        /// What was to be locked, e.g. "snapshot vm/100/2024-01-01T00:00:00Z".
        what: String,
        /// The lock file.
        path: PathBuf,
    },
    /// A bounded wait ran out.
    #[error("timed out waiting for the lock of {what} ({})", path.display())]
    TimedOut {
        /// What was to be locked.
        what: String,
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file was unlinked or replaced while this caller waited for it.
    #[error("the lock file of {what} was removed while waiting for it ({})", path.display())]
    Replaced {
        /// What was to be locked.
        what: String,
        /// The lock file.
        path: PathBuf,
    },
    /// The world failed an operation.
    #[error(transparent)]
    Io(#[from] IoError),
}

impl LockError {
    /// Is this contention (retrying later may succeed), rather than an I/O failure?
    pub fn is_contention(&self) -> bool {
        matches!(
            self,
            LockError::Busy { .. } | LockError::TimedOut { .. } | LockError::Replaced { .. }
        )
    }

    fn io<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> LockError + 'p {
        move |source| LockError::Io(IoError::new(op, path, source))
    }
}

/// A held flock on a lock file; dropping it closes the file and releases the lock.
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard<W: World> {
    /// The open lock file: its flock lives as long as this handle.
    _file: W::File,
    path: PathBuf,
    mode: LockMode,
}

impl<W: World> LockGuard<W> {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The mode held.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// Unlinks the lock file while still holding the lock, then releases it. Waiters on the old
    /// inode see [`LockError::Replaced`]; later lockers create a fresh file.
    pub fn remove(self, world: &W) -> Result<(), LockError> {
        match world.remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(LockError::io("unlink", &self.path)(err)),
        }
    }
}

impl<W: World> std::fmt::Debug for LockGuard<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .finish()
    }
}

/// Takes a flock on the lock file `path` (creating it and its directory), with the double-stat
/// identity check. `what` names the locked object in errors.
pub fn lock_file<W: World>(
    world: &W,
    path: &Path,
    what: &str,
    mode: LockMode,
    wait: LockWait,
) -> Result<LockGuard<W>, LockError> {
    lock_file_checked(world, path, what, mode, wait, true)
}

/// [`lock_file`] with some historical fixes reverted: with B16 reverted, the identity check is
/// skipped (race regression suite only).
#[cfg(feature = "regressions")]
pub fn lock_file_with_regressions<W: World>(
    world: &W,
    path: &Path,
    what: &str,
    mode: LockMode,
    wait: LockWait,
    regressions: Regressions,
) -> Result<LockGuard<W>, LockError> {
    let identity_check = !crate::reverted!(regressions, B16LockWithoutIdentityCheck);
    lock_file_checked(world, path, what, mode, wait, identity_check)
}

fn lock_file_checked<W: World>(
    world: &W,
    path: &Path,
    what: &str,
    mode: LockMode,
    wait: LockWait,
    identity_check: bool,
) -> Result<LockGuard<W>, LockError> {
    if let Some(parent) = path.parent() {
        world
            .create_dir_all(parent)
            .map_err(LockError::io("mkdir -p", parent))?;
    }
    let file = world
        .open(path, OpenOptions::create_keep())
        .map_err(LockError::io("open", path))?;
    match file.lock(mode, wait) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
            return Err(LockError::Busy {
                what: what.to_owned(),
                path: path.to_owned(),
            });
        }
        Err(err) if err.kind() == io::ErrorKind::TimedOut => {
            return Err(LockError::TimedOut {
                what: what.to_owned(),
                path: path.to_owned(),
            });
        }
        Err(err) => return Err(LockError::io("flock", path)(err)),
    }
    if !identity_check {
        return Ok(LockGuard {
            _file: file,
            path: path.to_owned(),
            mode,
        });
    }
    let held = file.metadata().map_err(LockError::io("fstat", path))?;
    let named = world
        .try_metadata(path)
        .map_err(LockError::io("stat", path))?;
    if named.map(|metadata| metadata.ino) != Some(held.ino) {
        return Err(LockError::Replaced {
            what: what.to_owned(),
            path: path.to_owned(),
        });
    }
    Ok(LockGuard {
        _file: file,
        path: path.to_owned(),
        mode,
    })
}

struct LockerState<F> {
    file: Option<F>,
    exclusive: bool,
    shared: BTreeMap<u64, i64>,
    next_guard_id: u64,
}

/// The cross-process lock between backup writers (shared) and GC (exclusive), on `<base>/.lock`.
pub struct ProcessLocker<W: World> {
    world: W,
    path: PathBuf,
    state: Mutex<W::Sync, LockerState<W::File>>,
    /// Historical fixes reverted (race regression suite only).
    #[cfg(feature = "regressions")]
    regressions: Regressions,
}

/// A backup session's shared hold on the process locker, stamped with its start time.
#[must_use = "the writer registration ends when the guard is dropped"]
pub struct SharedProcessGuard<W: World> {
    locker: Arc<ProcessLocker<W>>,
    id: u64,
}

/// GC's exclusive hold on the process locker.
#[must_use = "the exclusive lock is released when the guard is dropped"]
pub struct ExclusiveProcessGuard<W: World> {
    locker: Arc<ProcessLocker<W>>,
}

impl<W: World> ProcessLocker<W> {
    /// A locker on `path` (created on first use).
    ///
    /// This makes a new locker whatever exists: a process must not have two lockers of one file
    /// (race B13). Datastores get theirs through [`ProcessLocker::for_datastore`].
    pub fn new(world: W, path: &Path) -> Arc<ProcessLocker<W>> {
        let state = LockerState {
            file: None,
            exclusive: false,
            shared: BTreeMap::new(),
            next_guard_id: 0,
        };
        Arc::new(ProcessLocker {
            world,
            path: path.to_owned(),
            state: Mutex::new(state),
            #[cfg(feature = "regressions")]
            regressions: Regressions::none(),
        })
    }

    /// The locker on `path` of this process: the live one another open of the same datastore
    /// made (through [`World::process_shared`], keyed by `path`), or a new one, registered for
    /// later opens. This is the fix of race B13: a second locker in one process would not see
    /// the first one's writers (so its GC would sweep their fresh chunks), and closing its file
    /// would drop the first one's record locks.
    #[cfg_attr(not(feature = "regressions"), allow(unused_variables))]
    pub fn for_datastore(
        world: &W,
        path: &Path,
        config: &ChunkStoreConfig,
    ) -> Arc<ProcessLocker<W>> {
        let make = || {
            #[allow(unused_mut)]
            let mut locker = ProcessLocker::new(world.clone(), path);
            #[cfg(feature = "regressions")]
            if let Some(locker) = Arc::get_mut(&mut locker) {
                locker.regressions = config.regressions;
            }
            locker
        };
        if crate::reverted!(config.regressions, B13SecondProcessLocker) {
            return make();
        }
        let shared = world.process_shared(path, &mut || make() as SharedObject);
        // Another type registered under this key cannot happen for a lock path; if it did, a
        // locker of our own is the safe answer.
        Arc::downcast::<ProcessLocker<W>>(shared).unwrap_or_else(|_| make())
    }

    fn busy(&self) -> LockError {
        LockError::Busy {
            what: "the datastore's process lock".to_owned(),
            path: self.path.clone(),
        }
    }

    fn set_record_lock(
        &self,
        file: &mut Option<W::File>,
        mode: Option<LockMode>,
    ) -> Result<(), LockError> {
        let handle = match file {
            Some(handle) => handle,
            None => file.insert(
                self.world
                    .open(&self.path, OpenOptions::create_keep())
                    .map_err(LockError::io("open", &self.path))?,
            ),
        };
        match handle.record_lock(mode) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Err(self.busy()),
            Err(err) => Err(LockError::io("fcntl", &self.path)(err)),
        }
    }

    /// Registers a writer. Fails busy only if another *process* holds the exclusive lock.
    pub fn try_shared_lock(self: &Arc<Self>) -> Result<SharedProcessGuard<W>, LockError> {
        let mut state = self.state.lock();
        let state = &mut *state;
        if state.shared.is_empty() && !state.exclusive {
            self.set_record_lock(&mut state.file, Some(LockMode::Shared))?;
        }
        let id = state.next_guard_id;
        state.next_guard_id += 1;
        state.shared.insert(id, self.world.now());
        Ok(SharedProcessGuard {
            locker: Arc::clone(self),
            id,
        })
    }

    /// Takes the exclusive lock. Fails busy if this process already holds it, or if another
    /// process holds any lock on the file.
    pub fn try_exclusive_lock(self: &Arc<Self>) -> Result<ExclusiveProcessGuard<W>, LockError> {
        let mut state = self.state.lock();
        let state = &mut *state;
        if state.exclusive {
            return Err(self.busy());
        }
        self.set_record_lock(&mut state.file, Some(LockMode::Exclusive))?;
        state.exclusive = true;
        Ok(ExclusiveProcessGuard {
            locker: Arc::clone(self),
        })
    }

    /// Start time of the oldest live writer registered with this locker.
    pub fn oldest_shared_lock(&self) -> Option<i64> {
        self.state.lock().shared.values().copied().min()
    }

    /// Number of live writers registered with this locker.
    pub fn writer_count(&self) -> usize {
        self.state.lock().shared.len()
    }

    fn release_shared(&self, id: u64) {
        let mut state = self.state.lock();
        let state = &mut *state;
        if crate::reverted!(self.regressions, B10LockerKeepsReadLock) && state.shared.len() > 1 {
            // The old counter was reset only when it stood at one: with several writers it
            // never went down, and the record lock stayed.
            return;
        }
        state.shared.remove(&id);
        if state.shared.is_empty() && !state.exclusive {
            // Release failures cannot be reported from a drop; the lock dies with the process.
            let _ = self.set_record_lock(&mut state.file, None);
        }
    }

    fn release_exclusive(&self) {
        let mut state = self.state.lock();
        let state = &mut *state;
        state.exclusive = false;
        let keep = if state.shared.is_empty() {
            None
        } else {
            Some(LockMode::Shared)
        };
        // As above: a failed downgrade cannot be reported from a drop.
        let _ = self.set_record_lock(&mut state.file, keep);
    }
}

impl<W: World> SharedProcessGuard<W> {
    /// When this writer registered.
    pub fn start_time(&self) -> i64 {
        self.locker
            .state
            .lock()
            .shared
            .get(&self.id)
            .copied()
            .unwrap_or(i64::MIN)
    }
}

impl<W: World> Drop for SharedProcessGuard<W> {
    fn drop(&mut self) {
        self.locker.release_shared(self.id);
    }
}

impl<W: World> Drop for ExclusiveProcessGuard<W> {
    fn drop(&mut self) {
        self.locker.release_exclusive();
    }
}
