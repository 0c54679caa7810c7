//! File operations confined to a restore target: every path is resolved one component at a
//! time from the target's directory handle with `O_NOFOLLOW`, and every change is made with
//! an `*at` call on the parent's handle, so a symbolic link (or anything else) already in the
//! target is never followed and nothing outside the target is written, created, chmod'ed or
//! removed.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// What is at a name, by `fstatat` without following a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A directory.
    Directory,
    /// A regular file.
    Regular,
    /// A symbolic link.
    Symlink,
    /// A FIFO.
    Fifo,
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A socket or anything else.
    Other,
}

impl Found {
    /// Its name in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Found::Directory => "a directory",
            Found::Regular => "a file",
            Found::Symlink => "a symbolic link",
            Found::Fifo => "a FIFO",
            Found::Char => "a character device",
            Found::Block => "a block device",
            Found::Other => "a special file",
        }
    }

    fn of_mode(mode: libc::mode_t) -> Found {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => Found::Directory,
            libc::S_IFREG => Found::Regular,
            libc::S_IFLNK => Found::Symlink,
            libc::S_IFIFO => Found::Fifo,
            libc::S_IFCHR => Found::Char,
            libc::S_IFBLK => Found::Block,
            _ => Found::Other,
        }
    }
}

/// The components of a relative path in a stream: plain names only (`.` dropped); anything
/// absolute or with `..` is `None`.
pub fn plain_components(name: &Path) -> Option<Vec<CString>> {
    let mut parts = Vec::new();
    for part in name.components() {
        match part {
            Component::Normal(part) => parts.push(CString::new(part.as_bytes()).ok()?),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts)
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn c_text(text: &OsStr) -> io::Result<CString> {
    CString::new(text.as_bytes()).map_err(|_| io::Error::other("a name holds a NUL byte"))
}

/// An open directory beneath the root (or the root).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

impl Dir {
    /// The handle, to use as a file (fchmod, fchown, fsetxattr, futimens).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// The raw handle.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// `openat(name, O_DIRECTORY | O_NOFOLLOW)`.
    pub fn open_dir(&self, name: &CStr) -> io::Result<Dir> {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: a valid handle and a NUL-terminated name that outlives the call.
        let fd = unsafe { libc::openat(self.raw(), name.as_ptr(), flags) };
        check(fd)?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// What is at `name` (not following a link), or `None`.
    pub fn found(&self, name: &CStr) -> io::Result<Option<Found>> {
        // SAFETY: zeroed `stat` is a valid out-parameter.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a valid handle, a NUL-terminated name and a writable `stat`.
        let rc = unsafe {
            libc::fstatat(
                self.raw(),
                name.as_ptr(),
                &mut stat,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        match check(rc) {
            Ok(()) => Ok(Some(Found::of_mode(stat.st_mode))),
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// `mkdirat(name, 0700)`; an existing directory is fine.
    pub fn make_dir(&self, name: &CStr) -> io::Result<()> {
        // SAFETY: a valid handle and a NUL-terminated name.
        match check(unsafe { libc::mkdirat(self.raw(), name.as_ptr(), 0o700) }) {
            Err(err) if err.raw_os_error() == Some(libc::EEXIST) => match self.found(name)? {
                Some(Found::Directory) => Ok(()),
                _ => Err(err),
            },
            other => other,
        }
    }

    /// Creates a new regular file (`O_EXCL | O_NOFOLLOW`), mode 0600 until its metadata is set.
    pub fn create_file(&self, name: &CStr) -> io::Result<File> {
        let flags =
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: a valid handle and a NUL-terminated name.
        let fd = unsafe { libc::openat(self.raw(), name.as_ptr(), flags, 0o600 as libc::c_uint) };
        check(fd)?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// `symlinkat(target, name)`.
    pub fn symlink(&self, target: &Path, name: &CStr) -> io::Result<()> {
        let target = c_text(target.as_os_str())?;
        // SAFETY: NUL-terminated strings and a valid handle.
        check(unsafe { libc::symlinkat(target.as_ptr(), self.raw(), name.as_ptr()) })
    }

    /// `linkat(from_dir/from, self/name)` without following a link.
    pub fn hard_link(&self, from_dir: &Dir, from: &CStr, name: &CStr) -> io::Result<()> {
        // SAFETY: valid handles and NUL-terminated names.
        check(unsafe { libc::linkat(from_dir.raw(), from.as_ptr(), self.raw(), name.as_ptr(), 0) })
    }

    /// `mknodat(name, kind | mode, device)`.
    pub fn make_node(
        &self,
        name: &CStr,
        kind: libc::mode_t,
        mode: u32,
        device: (u32, u32),
    ) -> io::Result<()> {
        let device = libc::makedev(device.0, device.1);
        let mode = kind | (mode as libc::mode_t & 0o7777);
        // SAFETY: a valid handle and a NUL-terminated name.
        check(unsafe { libc::mknodat(self.raw(), name.as_ptr(), mode, device) })
    }

    /// Removes the non-directory `name`.
    pub fn unlink(&self, name: &CStr) -> io::Result<()> {
        // SAFETY: a valid handle and a NUL-terminated name.
        check(unsafe { libc::unlinkat(self.raw(), name.as_ptr(), 0) })
    }

    /// Removes `name` and, if it is a directory, everything in it, never following a link.
    pub fn remove_tree(&self, name: &CStr) -> io::Result<()> {
        if self.found(name)? != Some(Found::Directory) {
            return self.unlink(name);
        }
        let dir = self.open_dir(name)?;
        for child in dir.children()? {
            dir.remove_tree(&child)?;
        }
        // SAFETY: a valid handle and a NUL-terminated name.
        check(unsafe { libc::unlinkat(self.raw(), name.as_ptr(), libc::AT_REMOVEDIR) })
    }

    /// The names in this directory (not `.` or `..`).
    fn children(&self) -> io::Result<Vec<CString>> {
        // The magic link of an open handle names this very directory, whatever its path.
        let listing = std::fs::read_dir(self.proc_path())?;
        let mut names = Vec::new();
        for entry in listing {
            names.push(c_text(&entry?.file_name())?);
        }
        Ok(names)
    }

    /// `/proc/self/fd/<handle>`: a path that reaches this directory without resolving its
    /// name again.
    pub fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.raw()))
    }

    /// `fchownat(name, uid, gid, AT_SYMLINK_NOFOLLOW)`.
    pub fn chown(&self, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
        // SAFETY: a valid handle and a NUL-terminated name.
        check(unsafe {
            libc::fchownat(
                self.raw(),
                name.as_ptr(),
                uid,
                gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    }

    /// `fchmodat(name, mode)` of an entry this restore just made (never a link).
    pub fn chmod(&self, name: &CStr, mode: u32) -> io::Result<()> {
        // SAFETY: a valid handle and a NUL-terminated name.
        check(unsafe {
            libc::fchmodat(self.raw(), name.as_ptr(), mode as libc::mode_t & 0o7777, 0)
        })
    }

    /// Sets the mtime of `name` (not following a link); the atime is left alone.
    pub fn set_mtime(&self, name: &CStr, mtime: (i64, i64)) -> io::Result<()> {
        let times = mtime_times(mtime);
        // SAFETY: a valid handle, a NUL-terminated name and the two timespecs utimensat reads.
        check(unsafe {
            libc::utimensat(
                self.raw(),
                name.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    }

    /// Sets the extended attribute `attr` of the entry `name` (not following a link).
    pub fn set_xattr(&self, name: &CStr, attr: &OsStr, value: &[u8]) -> io::Result<()> {
        let path = self.proc_path().join(OsStr::from_bytes(name.to_bytes()));
        xattr::set(path, attr, value)
    }
}

/// The timespec pair of `utimensat`/`futimens` that sets the mtime only.
pub fn mtime_times((seconds, nanos): (i64, i64)) -> [libc::timespec; 2] {
    [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: seconds as libc::time_t,
            tv_nsec: nanos as libc::c_long,
        },
    ]
}

/// Sets the mtime of an open file or directory.
pub fn set_fd_mtime(fd: &impl AsRawFd, mtime: (i64, i64)) -> io::Result<()> {
    let times = mtime_times(mtime);
    // SAFETY: a valid handle and the two timespecs futimens reads.
    check(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) })
}

/// The restore target: a directory handle every path is resolved from.
#[derive(Debug)]
pub struct Root {
    dir: Dir,
}

impl Root {
    /// Opens `target`, creating it (and its parents) if missing. The target path itself is
    /// the user's: a symbolic link there is followed, as a user who names it means.
    pub fn open(target: &Path) -> io::Result<Root> {
        std::fs::create_dir_all(target)?;
        use std::os::unix::fs::OpenOptionsExt;
        let file = File::options()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(target)?;
        Ok(Root {
            dir: Dir { fd: file.into() },
        })
    }

    /// The directory holding the last of `parts`, opened component by component without
    /// following a link; with `create`, missing directories are made (mode 0700).
    /// `Ok(None)` for an empty `parts` (the root itself).
    pub fn parent_of(&self, parts: &[CString], create: bool) -> io::Result<Option<Dir>> {
        let Some((_, ancestors)) = parts.split_last() else {
            return Ok(None);
        };
        self.walk(ancestors, create).map(Some)
    }

    /// The directory `parts` (the root for none), opened without following a link.
    pub fn walk(&self, parts: &[CString], create: bool) -> io::Result<Dir> {
        let mut dir: Option<Dir> = None;
        for part in parts {
            let current = dir.as_ref().unwrap_or(&self.dir);
            let next = match current.open_dir(part) {
                Err(err) if create && err.raw_os_error() == Some(libc::ENOENT) => {
                    current.make_dir(part)?;
                    current.open_dir(part)
                }
                other => other,
            };
            let next = next.map_err(|err| match err.raw_os_error() {
                Some(libc::ELOOP) | Some(libc::ENOTDIR) => io::Error::other(format!(
                    "{:?} in the target is not a directory (a symbolic link or a file is in \
                     the way; it is not followed)",
                    OsStr::from_bytes(part.to_bytes())
                )),
                _ => err,
            })?;
            dir = Some(next);
        }
        match dir {
            Some(dir) => Ok(dir),
            None => Ok(Dir {
                fd: self.dir.fd.try_clone()?,
            }),
        }
    }
}
