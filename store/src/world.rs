//! The world boundary: filesystem, advisory locks, clock and threads.
//!
//! Everything the store does to its environment goes through [`World`] and [`WorldFile`]. Two
//! implementations exist: [`RealWorld`] (std + the real filesystem, in [`real`]) and the
//! simulated world of the `sim` crate (an in-memory filesystem under shuttle, loom or real
//! threads). The store is generic over `W: World`, so the very same GC, forget, prune, verify and
//! manifest code runs on both.
//!
//! **Architecture Invariant:** outside [`real`], the `store` crate names no `std::fs`,
//! `std::sync` (beyond `Arc`), `std::thread` or `std::time` item (beyond `Duration`) and makes no OS call.
//!
//! # Errors
//!
//! Every operation fails with a [`std::io::Error`] whose [`ErrorKind`](std::io::ErrorKind) is the
//! one Linux would give, so store code handles both worlds identically:
//!
//! | situation | kind |
//! |---|---|
//! | a path component or the target is missing | `NotFound` |
//! | creating something that exists (`create_dir`, `create_new`) | `AlreadyExists` |
//! | a path component is a file, or `read_dir`/`remove_dir` of a file | `NotADirectory` |
//! | opening a directory for writing, `remove_file` of a directory | `IsADirectory` |
//! | `remove_dir` of a non-empty directory, `rename` onto one | `DirectoryNotEmpty` |
//! | a non-blocking lock that conflicts | `WouldBlock` |
//! | a bounded lock wait that ran out | `TimedOut` |
//!
//! # Durability
//!
//! * File data written with [`WorldFile::write_at`] is durable after [`WorldFile::sync_all`] of
//!   that file (or [`World::syncfs`]).
//! * A directory entry created, renamed or removed by `create_dir`, `open(create)`, `rename`,
//!   `remove_file` or `remove_dir` is durable after [`World::fsync_dir`] of its parent directory
//!   (or `syncfs`). `sync_all` of a file does not make its name durable.
//! * `rename` is atomic: a concurrent observer sees the old or the new target, never neither.
//!   After a crash it is either done or not done.
//! * Until a crash these rules are invisible: every operation is immediately visible to every
//!   thread and process of the world.

pub mod real;

use std::any::Any;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::sync::SyncFamily;

pub use real::RealWorld;

/// What kind of object a path names. Symbolic links are never followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// Anything else (symlink, device, socket, fifo).
    Other,
}

/// The result of a `stat` (`lstat`: links are not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// Kind of the object.
    pub kind: FileKind,
    /// Size in bytes (directories: unspecified).
    pub len: u64,
    /// Last access time, seconds since the Unix epoch.
    pub atime: i64,
    /// Last modification time, seconds since the Unix epoch.
    pub mtime: i64,
    /// Inode number; equal inode numbers on one filesystem mean the same object.
    pub ino: u64,
}

impl Metadata {
    /// Is this a regular file?
    pub fn is_file(&self) -> bool {
        self.kind == FileKind::File
    }

    /// Is this a directory?
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }
}

/// One entry of [`World::read_dir`] (never `.` or `..`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DirEntry {
    /// The entry's name within its directory.
    pub name: OsString,
    /// Kind of the entry, as `lstat` reports it.
    pub kind: FileKind,
}

impl DirEntry {
    /// The name as UTF-8, if it is.
    pub fn name_str(&self) -> Option<&str> {
        self.name.to_str()
    }

    /// The name as an `OsStr`.
    pub fn name(&self) -> &OsStr {
        &self.name
    }
}

/// How to open a file. Files are created with mode 0644.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenOptions {
    /// Allow reading.
    pub read: bool,
    /// Allow writing.
    pub write: bool,
    /// Create the file if it is missing.
    pub create: bool,
    /// Create the file, failing with `AlreadyExists` if it exists (implies `create`).
    pub create_new: bool,
    /// Truncate an existing file to length 0 (needs `write`).
    pub truncate: bool,
}

impl OpenOptions {
    /// Open an existing file for reading.
    pub fn read_only() -> Self {
        OpenOptions {
            read: true,
            ..Default::default()
        }
    }

    /// Create a new file for writing; fails with `AlreadyExists` if it exists.
    pub fn create_new() -> Self {
        OpenOptions {
            read: true,
            write: true,
            create_new: true,
            ..Default::default()
        }
    }

    /// Create or truncate a file for writing.
    pub fn create_truncate() -> Self {
        OpenOptions {
            read: true,
            write: true,
            create: true,
            truncate: true,
            ..Default::default()
        }
    }

    /// Open or create a file for reading and writing without truncating it (lock files).
    pub fn create_keep() -> Self {
        OpenOptions {
            read: true,
            write: true,
            create: true,
            ..Default::default()
        }
    }
}

/// Mode of an advisory lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    /// Many holders at once; excludes `Exclusive`.
    Shared,
    /// One holder; excludes everything else.
    Exclusive,
}

/// How long a lock request may wait for a conflicting holder to go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Fail at once with `WouldBlock`.
    NonBlocking,
    /// Wait at most this long, then fail with `TimedOut`.
    Timeout(Duration),
}

/// The environment the store runs in. Cheap to clone: a clone is the same world (and, in the
/// simulation, the same simulated process).
///
/// All paths are absolute or relative to the process's working directory (real world) or to the
/// root of the simulated disk. No method follows symbolic links in the last component.
pub trait World: Clone + Send + Sync + 'static {
    /// The thread and mutex primitives of this world.
    type Sync: SyncFamily;
    /// An open file description.
    type File: WorldFile;

    /// Wall-clock time in seconds since the Unix epoch. Used for atime cutoffs, snapshot times
    /// and lock stamps. The simulated clock moves only when a scenario moves it.
    fn now(&self) -> i64;

    /// Lets `duration` of this world's time pass before returning. The real world sleeps the
    /// calling thread; a simulated world moves its clock forward (rounded up to whole seconds)
    /// without blocking anybody.
    fn sleep(&self, duration: Duration);

    /// A number never returned before by this world (in this process), for temporary names.
    fn unique_id(&self) -> u64;

    /// `mkdir`: creates one directory. `AlreadyExists` if the path exists (as anything),
    /// `NotFound` if the parent is missing.
    fn create_dir(&self, path: &Path) -> io::Result<()>;

    /// Creates a directory and every missing parent; an existing directory is success.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;

    /// `rmdir`: removes an empty directory.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;

    /// `unlink`: removes a file (not a directory). Open handles stay valid and keep the data.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// `rename(2)`: atomically moves `from` to `to`, replacing a file at `to`. A directory may
    /// replace only an empty directory.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Lists a directory, without `.` and `..`, in an unspecified order (the simulation picks it
    /// from its seed). One call is one consistent listing of that directory.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;

    /// `lstat`.
    fn metadata(&self, path: &Path) -> io::Result<Metadata>;

    /// `utimensat(path, {UTIME_NOW, UTIME_OMIT}, AT_SYMLINK_NOFOLLOW)`: sets the access time to
    /// now and leaves the modification time alone. Atomic with respect to `metadata`.
    fn touch_atime(&self, path: &Path) -> io::Result<()>;

    /// Opens (and maybe creates) a file. Opening a directory for writing is `IsADirectory`.
    fn open(&self, path: &Path, options: OpenOptions) -> io::Result<Self::File>;

    /// `fsync` of a directory: makes the entries created, renamed or removed in it durable.
    fn fsync_dir(&self, path: &Path) -> io::Result<()>;

    /// `syncfs` of the filesystem holding `path`: everything written so far becomes durable.
    fn syncfs(&self, path: &Path) -> io::Result<()>;

    /// `lstat`, with `NotFound` mapped to `None`.
    fn try_metadata(&self, path: &Path) -> io::Result<Option<Metadata>> {
        match self.metadata(path) {
            Ok(metadata) => Ok(Some(metadata)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Reads a whole file.
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.open(path, OpenOptions::read_only())?.read_to_end()
    }

    /// The object registered under `key` in this process, if one is still alive; otherwise
    /// `make()`'s, registered under `key` for later callers of this process. The registry holds
    /// no strong reference: an object lives as long as its users keep it.
    ///
    /// The datastore keeps its process locker here, so that every open of one datastore in a
    /// process shares one locker (race B13). `RealWorld` has one registry per OS process,
    /// `SimWorld` one per simulated process. The default keeps no registry and always returns
    /// `make()`'s object: worlds that wrap another should forward to it.
    fn process_shared(&self, key: &Path, make: &mut dyn FnMut() -> SharedObject) -> SharedObject {
        let _ = key;
        make()
    }
}

/// An object of [`World::process_shared`]'s registry; callers downcast it to their type.
pub type SharedObject = Arc<dyn Any + Send + Sync>;

/// An open file description: a handle with its own advisory locks.
///
/// Dropping the handle closes it, which releases its flock and (record-lock rule) every record
/// lock its process holds on the same file.
pub trait WorldFile: Send + Sync + 'static {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at the end).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// Reads the whole file from offset 0.
    fn read_to_end(&self) -> io::Result<Vec<u8>>;

    /// Writes all of `data` at `offset`, growing the file (with zeros in any gap) as needed.
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;

    /// Truncates or zero-extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// `fsync`: makes this file's data and size durable (not its name; see
    /// [`World::fsync_dir`]).
    fn sync_all(&self) -> io::Result<()>;

    /// `fstat` of the open file (which may have been unlinked or replaced since).
    fn metadata(&self) -> io::Result<Metadata>;

    /// `flock`: takes or converts this handle's advisory lock. Locks belong to the open file
    /// description: a second handle of the same file, even in the same thread, conflicts with
    /// this one. Not reentrant across handles. Released by [`WorldFile::unlock`] or on drop.
    fn lock(&self, mode: LockMode, wait: LockWait) -> io::Result<()>;

    /// Releases this handle's flock, if any.
    fn unlock(&self) -> io::Result<()>;

    /// `fcntl(F_SETLK)` on the whole file: takes, converts (`Some`) or releases (`None`) this
    /// *process's* record lock. Never blocks: a conflict is `WouldBlock`. Record locks of one
    /// process never conflict with each other, and closing *any* handle of the file in that
    /// process releases all of that process's record locks on it.
    fn record_lock(&self, mode: Option<LockMode>) -> io::Result<()>;
}
