//! [`SimFile`]: an open file description of the simulated disk, with its flock and its
//! process's record locks.
//!
//! # flock (open-file-description locks)
//!
//! The inode's flock table is keyed by open-file-description id: two handles conflict even in
//! one thread. A request in the mode already held succeeds at once. A request in the other mode
//! first drops the held lock and wakes waiters, then asks for the new one, exactly as Linux's
//! `flock_lock_inode` does: a conversion that fails (`WouldBlock`, `TimedOut`) leaves the handle
//! with **no** lock. Blocked requests wait on the inode's condition variable through
//! [`store::sync::SyncFamily::wait_timeout`], so a time-out is wall time under `StdSync` (each
//! wake-up restarts it), a scheduler choice under shuttle, and never under loom.
//!
//! # Record locks (fcntl)
//!
//! One lock per (inode, process); a process's own locks never conflict; conflicts with another
//! process fail at once with `WouldBlock`. Closing any handle of the inode opened by the process
//! drops all of the process's record locks on it (the POSIX close rule).

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use store::sync::SyncFamily;
use store::world::{LockMode, LockWait, Metadata, OpenOptions, WorldFile};

use crate::durable::Change;
use crate::gate::OpKind;
use crate::inode::{Content, Inode, InodeState, OfdId, debug_check_locks};
use crate::path::{bad_descriptor, file_error};
use crate::world::SimWorld;

/// An open file description of a [`SimWorld`]. Dropping it closes it: its flock and its
/// process's record locks on the file are released.
pub struct SimFile<S: SyncFamily> {
    /// The process that opened it, and its disk.
    world: SimWorld<S>,
    /// The file (or directory) itself; keeps it alive after an unlink.
    inode: Arc<Inode<S>>,
    /// This open file description's id within the inode.
    ofd: OfdId,
    /// Opened for reading.
    read: bool,
    /// Opened for writing.
    write: bool,
    /// The path it was opened by, kept for traces only (set when opened while tracing).
    path: Option<PathBuf>,
}

impl<S: SyncFamily> SimFile<S> {
    /// A handle for open file description `ofd` of `inode`, opened by `world`'s process.
    pub(crate) fn new(
        world: SimWorld<S>,
        inode: Arc<Inode<S>>,
        ofd: OfdId,
        options: OpenOptions,
        path: Option<PathBuf>,
    ) -> Self {
        SimFile {
            world,
            inode,
            ofd,
            read: options.read,
            write: options.write,
            path,
        }
    }

    /// Runs a handle operation through the disk's gate (see [`SimWorld::gated`]).
    fn gated<R>(
        &self,
        op: OpKind,
        detail: impl FnOnce() -> String,
        run: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        let path = self.path.as_deref().unwrap_or(Path::new(""));
        self.world.gated(op, false, path, detail, run)
    }

    /// The inode number of the open file.
    pub fn ino(&self) -> u64 {
        self.inode.ino
    }

    /// The process id of the process that opened this handle.
    pub fn pid(&self) -> u32 {
        self.world.process.pid
    }

    /// The bytes of a regular file, for reading.
    fn data<'a>(&self, state: &'a InodeState<S>) -> io::Result<&'a Vec<u8>> {
        match &state.content {
            Content::File(data) if self.read => Ok(data),
            Content::File(_) => Err(bad_descriptor("not open for reading")),
            Content::Dir(_) => Err(file_error(ErrorKind::IsADirectory, "is a directory")),
        }
    }

    /// The bytes of a regular file, for writing.
    fn data_mut<'a>(&self, state: &'a mut InodeState<S>) -> io::Result<&'a mut Vec<u8>> {
        match &mut state.content {
            Content::File(data) if self.write => Ok(data),
            _ => Err(bad_descriptor("not open for writing")),
        }
    }

    /// Waits for the flock in `mode` to become compatible, then takes it.
    fn acquire_flock(
        &self,
        mut state: S::Guard<'_, InodeState<S>>,
        mode: LockMode,
        wait: LockWait,
    ) -> io::Result<()> {
        let pid = self.world.process.pid;
        loop {
            if state.flock_compatible(self.ofd, mode) {
                state.flocks.insert(self.ofd, (pid, mode));
                debug_check_locks(&state);
                return Ok(());
            }
            let LockWait::Timeout(timeout) = wait else {
                return Err(file_error(
                    ErrorKind::WouldBlock,
                    "flock: resource temporarily unavailable",
                ));
            };
            let (guard, timed_out) = self.inode.flock_released.wait_timeout(state, timeout);
            state = guard;
            if timed_out && !state.flock_compatible(self.ofd, mode) {
                return Err(file_error(ErrorKind::TimedOut, "flock: timed out"));
            }
        }
    }
}

/// Converts a file offset to a buffer index (`InvalidInput` if it does not fit).
fn index(offset: u64) -> io::Result<usize> {
    usize::try_from(offset).map_err(|_| file_error(ErrorKind::InvalidInput, "offset too large"))
}

impl<S: SyncFamily> WorldFile for SimFile<S> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        let detail = move || format!("{len} bytes at {offset}");
        self.gated(OpKind::Read, detail, || self.read_at_inner(offset, buf))
    }

    fn read_to_end(&self) -> io::Result<Vec<u8>> {
        self.gated(
            OpKind::Read,
            || "to end".to_owned(),
            || {
                let state = self.inode.state.lock();
                self.data(&state).cloned()
            },
        )
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let detail = || format!("{} bytes at {offset}", data.len());
        self.gated(OpKind::Write, detail, || self.write_at_inner(offset, data))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.gated(
            OpKind::SetLen,
            || format!("to {len}"),
            || self.set_len_inner(len),
        )
    }

    fn sync_all(&self) -> io::Result<()> {
        let path = self.path.as_deref().unwrap_or(Path::new(""));
        // A failed fsync loses the unsynced writes for good (Linux marks the pages clean).
        let lose_writes = || self.world.disk.durable().drop_data(self.inode.ino);
        self.world.gated_or(
            OpKind::SyncAll,
            false,
            path,
            String::new,
            lose_writes,
            || self.sync_all_inner(),
        )
    }

    fn metadata(&self) -> io::Result<Metadata> {
        self.gated(OpKind::Metadata, String::new, || {
            Ok(self
                .inode
                .state
                .lock()
                .metadata(self.inode.ino, self.inode.kind))
        })
    }

    fn lock(&self, mode: LockMode, wait: LockWait) -> io::Result<()> {
        let detail = || lock_detail(mode, wait);
        self.gated(OpKind::Lock, detail, || self.lock_inner(mode, wait))
    }

    fn unlock(&self) -> io::Result<()> {
        self.gated(OpKind::Unlock, String::new, || self.unlock_inner())
    }

    fn record_lock(&self, mode: Option<LockMode>) -> io::Result<()> {
        let detail = || match mode {
            Some(LockMode::Shared) => "shared".to_owned(),
            Some(LockMode::Exclusive) => "exclusive".to_owned(),
            None => "release".to_owned(),
        };
        self.gated(OpKind::RecordLock, detail, || self.record_lock_inner(mode))
    }
}

/// The trace detail of a flock request.
fn lock_detail(mode: LockMode, wait: LockWait) -> String {
    let mode = match mode {
        LockMode::Shared => "shared",
        LockMode::Exclusive => "exclusive",
    };
    match wait {
        LockWait::NonBlocking => format!("{mode}, no wait"),
        LockWait::Timeout(timeout) => format!("{mode}, wait {} s", timeout.as_secs_f64()),
    }
}

/// The operations of [`WorldFile`] past the gate.
impl<S: SyncFamily> SimFile<S> {
    fn read_at_inner(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let state = self.inode.state.lock();
        let data = self.data(&state)?;
        let start = index(offset)?.min(data.len());
        let count = buf.len().min(data.len() - start);
        buf[..count].copy_from_slice(&data[start..start + count]);
        Ok(count)
    }

    fn write_at_inner(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if !self.write {
            return Err(bad_descriptor("not open for writing"));
        }
        if data.is_empty() {
            return Ok(());
        }
        let start = index(offset)?;
        let end = start
            .checked_add(data.len())
            .ok_or_else(|| file_error(ErrorKind::InvalidInput, "offset too large"))?;
        let now = self.world.disk.now();
        let mut state = self.inode.state.lock();
        let bytes = self.data_mut(&mut state)?;
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        bytes[start..end].copy_from_slice(data);
        state.mtime = now;
        let change = Change::Write {
            ino: self.inode.ino,
            offset,
            data: data.to_vec(),
            mtime: now,
        };
        self.world.disk.durable().log(change);
        Ok(())
    }

    fn set_len_inner(&self, len: u64) -> io::Result<()> {
        if !self.write {
            return Err(file_error(
                ErrorKind::InvalidInput,
                "set_len: not open for writing",
            ));
        }
        let len = index(len)?;
        let now = self.world.disk.now();
        let mut state = self.inode.state.lock();
        self.data_mut(&mut state)?.resize(len, 0);
        state.mtime = now;
        let change = Change::SetLen {
            ino: self.inode.ino,
            len: len as u64,
            mtime: now,
        };
        self.world.disk.durable().log(change);
        Ok(())
    }

    fn sync_all_inner(&self) -> io::Result<()> {
        self.world
            .disk
            .durable()
            .sync_inode(self.inode.ino, self.inode.is_dir());
        self.world.disk.stats.lock().sync_all += 1;
        Ok(())
    }

    fn lock_inner(&self, mode: LockMode, wait: LockWait) -> io::Result<()> {
        let mut state = self.inode.state.lock();
        match state.flocks.get(&self.ofd) {
            Some((_, held)) if *held == mode => return Ok(()),
            Some(_) => {
                // Linux converts by unlocking first; waiters may now get in ahead of us.
                state.flocks.remove(&self.ofd);
                self.inode.flock_released.notify_all();
            }
            None => {}
        }
        self.acquire_flock(state, mode, wait)?;
        self.world.process.register_lock(&self.inode);
        Ok(())
    }

    fn unlock_inner(&self) -> io::Result<()> {
        let released = self.inode.state.lock().flocks.remove(&self.ofd).is_some();
        if released {
            self.inode.flock_released.notify_all();
        }
        Ok(())
    }

    fn record_lock_inner(&self, mode: Option<LockMode>) -> io::Result<()> {
        let pid = self.world.process.pid;
        let Some(mode) = mode else {
            self.inode.state.lock().record_locks.remove(&pid);
            return Ok(());
        };
        let allowed = match mode {
            LockMode::Shared => self.read,
            LockMode::Exclusive => self.write,
        };
        if !allowed {
            return Err(bad_descriptor(
                "record lock mode needs read (shared) or write (exclusive) access",
            ));
        }
        {
            let mut state = self.inode.state.lock();
            if !state.record_lock_compatible(pid, mode) {
                return Err(file_error(
                    ErrorKind::WouldBlock,
                    "record lock: resource temporarily unavailable",
                ));
            }
            state.record_locks.insert(pid, mode);
            debug_check_locks(&state);
        }
        self.world.process.register_lock(&self.inode);
        Ok(())
    }
}

impl<S: SyncFamily> Drop for SimFile<S> {
    /// `close`: drops this description's flock and all of the process's record locks on the file.
    fn drop(&mut self) {
        let released = {
            let mut state = self.inode.state.lock();
            state.record_locks.remove(&self.world.process.pid);
            state.flocks.remove(&self.ofd).is_some()
        };
        if released {
            self.inode.flock_released.notify_all();
        }
    }
}
