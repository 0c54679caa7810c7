//! The real world: `std::fs`, `std` file locks, fcntl record locks, `utimensat` and OS threads.
//!
//! This module is the only place in `store` that names `std::fs`, `std::sync`, `std::thread`
//! or `std::time` (beyond `Duration`), or makes a raw OS call. It also holds [`StdSync`], the
//! sync family of real threads. Locks:
//!
//! * flock: `std::fs::File::{try_lock, try_lock_shared, unlock}` (flock(2) semantics: per open
//!   file description). A bounded wait polls `try_lock*` with a short back-off until the
//!   deadline.
//! * record locks: `fcntl(F_SETLK)` on the whole file (per process).
//! * touch: `utimensat(AT_FDCWD, path, {UTIME_NOW, UTIME_OMIT}, AT_SYMLINK_NOFOLLOW)`.

use std::any::Any;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{
    DirEntry, FileKind, LockMode, LockWait, Metadata, OpenOptions, SharedObject, World, WorldFile,
};
use crate::sync::{JoinHandle, SyncFamily, ThreadResult};

/// The real filesystem, wall clock and OS threads.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealWorld;

impl RealWorld {
    /// The real world.
    pub fn new() -> Self {
        RealWorld
    }
}

/// Per-process counter behind [`World::unique_id`].
static UNIQUE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The registry behind [`World::process_shared`]: one per OS process, by canonical key.
static PROCESS_SHARED: Mutex<BTreeMap<PathBuf, Weak<dyn Any + Send + Sync>>> =
    Mutex::new(BTreeMap::new());

/// `key` with its directory resolved (the directory exists; the last component need not), so
/// two spellings of one path name one registry entry.
fn registry_key(key: &Path) -> PathBuf {
    match (key.parent(), key.file_name()) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => fs::canonicalize(parent)
            .map(|dir| dir.join(name))
            .unwrap_or_else(|_| key.to_owned()),
        _ => key.to_owned(),
    }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn kind_of(file_type: fs::FileType) -> FileKind {
    if file_type.is_file() {
        FileKind::File
    } else if file_type.is_dir() {
        FileKind::Dir
    } else {
        FileKind::Other
    }
}

fn convert_metadata(metadata: &fs::Metadata) -> Metadata {
    Metadata {
        kind: kind_of(metadata.file_type()),
        len: metadata.len(),
        atime: metadata.atime(),
        mtime: metadata.mtime(),
        ino: metadata.ino(),
    }
}

impl World for RealWorld {
    type Sync = StdSync;
    type File = RealFile;

    fn now(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => since.as_secs() as i64,
            Err(before) => -(before.duration().as_secs() as i64),
        }
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn process_shared(&self, key: &Path, make: &mut dyn FnMut() -> SharedObject) -> SharedObject {
        let key = registry_key(key);
        // The registry is only ever left consistent, so a poisoned lock is still usable.
        let mut registry = PROCESS_SHARED
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        registry.retain(|_, object| object.strong_count() > 0);
        if let Some(object) = registry.get(&key).and_then(Weak::upgrade) {
            return object;
        }
        let object = make();
        registry.insert(key, Arc::downgrade(&object));
        object
    }

    fn unique_id(&self) -> u64 {
        let counter = UNIQUE_COUNTER.fetch_add(1, Ordering::Relaxed);
        (u64::from(std::process::id()) << 32) ^ counter
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir(path)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            let kind = match entry.file_type() {
                Ok(file_type) => kind_of(file_type),
                // The entry vanished between readdir and lstat; it is no longer listed.
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            entries.push(DirEntry {
                name: entry.file_name(),
                kind,
            });
        }
        Ok(entries)
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        Ok(convert_metadata(&fs::symlink_metadata(path)?))
    }

    fn touch_atime(&self, path: &Path) -> io::Result<()> {
        let path = c_path(path)?;
        let times = [
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_NOW,
            },
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
        ];
        // SAFETY: `path` is a valid NUL-terminated string and `times` points to two timespecs,
        // as utimensat(2) requires; both outlive the call.
        let rc = unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                path.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn open(&self, path: &Path, options: OpenOptions) -> io::Result<RealFile> {
        let file = fs::OpenOptions::new()
            .read(options.read)
            .write(options.write)
            .create(options.create && !options.create_new)
            .create_new(options.create_new)
            .truncate(options.truncate)
            .open(path)?;
        Ok(RealFile { file })
    }

    fn fsync_dir(&self, path: &Path) -> io::Result<()> {
        fs::File::open(path)?.sync_all()
    }

    fn syncfs(&self, path: &Path) -> io::Result<()> {
        let file = fs::File::open(path)?;
        // SAFETY: the descriptor is open for the duration of the call.
        let rc = unsafe { libc::syncfs(file.as_raw_fd()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// An open file of the real world.
#[derive(Debug)]
pub struct RealFile {
    file: fs::File,
}

/// How often a bounded lock wait retries at most.
const LOCK_POLL_INTERVAL_MAX: Duration = Duration::from_millis(50);

impl RealFile {
    fn try_flock(&self, mode: LockMode) -> io::Result<()> {
        let result = match mode {
            LockMode::Shared => self.file.try_lock_shared(),
            LockMode::Exclusive => self.file.try_lock(),
        };
        result.map_err(|err| match err {
            fs::TryLockError::WouldBlock => io::Error::from(io::ErrorKind::WouldBlock),
            fs::TryLockError::Error(err) => err,
        })
    }

    fn fcntl_lock(&self, command: libc::c_int, lock_type: libc::c_int) -> io::Result<()> {
        // SAFETY: an all-zero `flock` struct is a valid value; the fields we need are set below.
        let mut request: libc::flock = unsafe { std::mem::zeroed() };
        request.l_type = lock_type as libc::c_short;
        request.l_whence = libc::SEEK_SET as libc::c_short;
        request.l_start = 0;
        request.l_len = 0;
        // SAFETY: the descriptor is open and `request` is a valid flock struct for F_SETLK.
        let rc = unsafe { libc::fcntl(self.file.as_raw_fd(), command, &mut request) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EACCES) => {
                Err(io::Error::from(io::ErrorKind::WouldBlock))
            }
            _ => Err(err),
        }
    }
}

impl WorldFile for RealFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        FileExt::read_at(&self.file, buf, offset)
    }

    fn read_to_end(&self) -> io::Result<Vec<u8>> {
        let mut data = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let read = FileExt::read_at(&self.file, &mut chunk, data.len() as u64)?;
            if read == 0 {
                return Ok(data);
            }
            data.extend_from_slice(&chunk[..read]);
        }
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        FileExt::write_all_at(&self.file, data, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn metadata(&self) -> io::Result<Metadata> {
        Ok(convert_metadata(&self.file.metadata()?))
    }

    fn lock(&self, mode: LockMode, wait: LockWait) -> io::Result<()> {
        let timeout = match wait {
            LockWait::NonBlocking => return self.try_flock(mode),
            LockWait::Timeout(timeout) => timeout,
        };
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            match self.try_flock(mode) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                other => return other,
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(io::Error::from(io::ErrorKind::TimedOut));
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(LOCK_POLL_INTERVAL_MAX);
        }
    }

    fn unlock(&self) -> io::Result<()> {
        self.file.unlock()
    }

    fn record_lock(&self, mode: Option<LockMode>) -> io::Result<()> {
        let lock_type = match mode {
            Some(LockMode::Shared) => libc::F_RDLCK,
            Some(LockMode::Exclusive) => libc::F_WRLCK,
            None => libc::F_UNLCK,
        };
        self.fcntl_lock(libc::F_SETLK, lock_type)
    }
}

/// The real runtime: `std::sync` and OS threads.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdSync;

impl<T: Send> JoinHandle<T> for std::thread::JoinHandle<T> {
    fn join(self) -> ThreadResult<T> {
        std::thread::JoinHandle::join(self)
    }
}

impl SyncFamily for StdSync {
    type Mutex<T: Send + 'static> = std::sync::Mutex<T>;
    type Guard<'a, T: Send + 'static>
        = std::sync::MutexGuard<'a, T>
    where
        T: 'a;
    type Condvar = std::sync::Condvar;
    type JoinHandle<T: Send + 'static> = std::thread::JoinHandle<T>;

    fn mutex<T: Send + 'static>(value: T) -> Self::Mutex<T> {
        std::sync::Mutex::new(value)
    }

    fn lock<'a, T: Send + 'static>(mutex: &'a Self::Mutex<T>) -> Self::Guard<'a, T> {
        mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn try_lock<'a, T: Send + 'static>(mutex: &'a Self::Mutex<T>) -> Option<Self::Guard<'a, T>> {
        match mutex.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    fn condvar() -> Self::Condvar {
        std::sync::Condvar::new()
    }

    fn wait<'a, T: Send + 'static>(
        condvar: &Self::Condvar,
        guard: Self::Guard<'a, T>,
    ) -> Self::Guard<'a, T> {
        condvar
            .wait(guard)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn wait_timeout<'a, T: Send + 'static>(
        condvar: &Self::Condvar,
        guard: Self::Guard<'a, T>,
        timeout: Duration,
    ) -> (Self::Guard<'a, T>, bool) {
        let (guard, result) = condvar
            .wait_timeout(guard, timeout)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (guard, result.timed_out())
    }

    fn notify_all(condvar: &Self::Condvar) {
        condvar.notify_all()
    }

    fn spawn<F, T>(f: F) -> Self::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        std::thread::spawn(f)
    }
}
