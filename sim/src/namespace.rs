//! Path walking and the directory operations of the simulated disk.
//!
//! # Walking
//!
//! A path is resolved from the root one component at a time: lock the directory, clone the
//! child's `Arc`, unlock, go on. Like Linux's path walk, a resolution is atomic per component,
//! not as a whole. The last step of an operation on an existing object is hand-over-hand: the
//! child is locked while its parent is still locked, so `metadata`, `touch_atime`, `read_dir`
//! and `open` act on the object the name designates at that instant.
//!
//! # Lock order (deadlock freedom)
//!
//! * Operations hold at most one directory lock, or a parent and then one of its children
//!   (hand-over-hand, `open`, `remove_dir`, a rename replacing a directory).
//! * A rename within one directory locks it once.
//! * A rename across two directories first takes the disk's rename lock (one at a time, like
//!   Linux's `s_vfs_rename_mutex`), which freezes directory ancestry, re-resolves both parents,
//!   then locks an ancestor before its descendant (unrelated directories by inode number), and
//!   only then a replaced target directory. Renaming a directory into itself (`InvalidInput`)
//!   or onto one of its ancestors (`DirectoryNotEmpty`) is refused before that last lock, so
//!   the parent-before-child order always holds.
//!
//! # Removed directories
//!
//! A directory removed by `rmdir` or replaced by `rename` is marked removed under its own lock.
//! A process that resolved it earlier can no longer create entries in it or list it
//! (`NotFound`), as on Linux.

use std::ffi::OsStr;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use store::sync::SyncFamily;
use store::world::{DirEntry, FileKind, OpenOptions};

use crate::durable::Change;
use crate::inode::{Inode, InodeState, OfdId};
use crate::path::{components, error, listing_key};
use crate::world::Disk;

/// `ErrorKind` and message for "a path component is missing".
fn not_found(path: &Path) -> io::Error {
    error(ErrorKind::NotFound, "no such file or directory", path)
}

/// Is `inode` one of `chain`?
fn in_chain<S: SyncFamily>(chain: &[Arc<Inode<S>>], inode: &Arc<Inode<S>>) -> bool {
    chain.iter().any(|member| Arc::ptr_eq(member, inode))
}

impl<S: SyncFamily> Disk<S> {
    /// Looks `name` up in directory `dir` (locking it for the lookup only).
    fn lookup(&self, dir: &Arc<Inode<S>>, name: &OsStr, path: &Path) -> io::Result<Arc<Inode<S>>> {
        if !dir.is_dir() {
            return Err(error(ErrorKind::NotADirectory, "not a directory", path));
        }
        let state = dir.state.lock();
        state
            .entries()
            .and_then(|entries| entries.get(name))
            .cloned()
            .ok_or_else(|| not_found(path))
    }

    /// Every directory from the root down to the one `names` designates (root first).
    fn walk_chain(&self, names: &[&OsStr], path: &Path) -> io::Result<Vec<Arc<Inode<S>>>> {
        let mut chain = vec![Arc::clone(&self.root)];
        for name in names {
            let next = self.lookup(chain.last().unwrap_or(&self.root), name, path)?;
            chain.push(next);
        }
        match chain.last() {
            Some(last) if !last.is_dir() => {
                Err(error(ErrorKind::NotADirectory, "not a directory", path))
            }
            _ => Ok(chain),
        }
    }

    /// The directory `names` designates.
    fn walk_dir(&self, names: &[&OsStr], path: &Path) -> io::Result<Arc<Inode<S>>> {
        let mut current = Arc::clone(&self.root);
        for name in names {
            current = self.lookup(&current, name, path)?;
        }
        if !current.is_dir() {
            return Err(error(ErrorKind::NotADirectory, "not a directory", path));
        }
        Ok(current)
    }

    /// Runs `f` on the object at `path` with the object locked (its parent was still locked
    /// when the lock was taken).
    pub(crate) fn with_object<R>(
        &self,
        path: &Path,
        f: impl FnOnce(&Arc<Inode<S>>, &mut InodeState<S>) -> io::Result<R>,
    ) -> io::Result<R> {
        let names = components(path)?;
        let Some((name, dirs)) = names.split_last() else {
            let mut state = self.root.state.lock();
            return f(&self.root, &mut state);
        };
        let parent = self.walk_dir(dirs, path)?;
        let parent_state = parent.state.lock();
        let child = parent_state
            .entries()
            .and_then(|entries| entries.get(*name))
            .cloned()
            .ok_or_else(|| not_found(path))?;
        let mut state = child.state.lock();
        drop(parent_state);
        f(&child, &mut state)
    }

    /// Checks that `path` is a directory that still exists (for `fsync_dir`); its inode number.
    pub(crate) fn check_live_dir(&self, path: &Path) -> io::Result<u64> {
        self.with_object(path, |inode, state| {
            if !inode.is_dir() {
                Err(error(ErrorKind::NotADirectory, "not a directory", path))
            } else if state.removed {
                Err(not_found(path))
            } else {
                Ok(inode.ino)
            }
        })
    }

    /// Logs the new entry `name` of `dir` for the new inode `inode` (parent lock held).
    fn log_link(&self, dir: &Inode<S>, name: &OsStr, inode: &Inode<S>, now: i64) {
        let mut durable = self.durable();
        durable.born(inode.ino, inode.kind, now);
        durable.log(Change::Link {
            dir: dir.ino,
            name: name.to_os_string(),
            ino: inode.ino,
        });
    }

    /// Logs the removal of entry `name` of `dir` (parent lock held).
    fn log_unlink(&self, dir: &Inode<S>, name: &OsStr) {
        self.durable().log(Change::Unlink {
            dir: dir.ino,
            name: name.to_os_string(),
        });
    }

    /// `mkdir`.
    pub(crate) fn create_dir(&self, path: &Path) -> io::Result<()> {
        let names = components(path)?;
        let Some((name, dirs)) = names.split_last() else {
            return Err(error(ErrorKind::AlreadyExists, "file exists", path));
        };
        let parent = self.walk_dir(dirs, path)?;
        let now = self.now();
        let mut state = parent.state.lock();
        if state.removed {
            return Err(not_found(path));
        }
        let entries = state.entries_mut().ok_or_else(|| not_found(path))?;
        if entries.contains_key(*name) {
            return Err(error(ErrorKind::AlreadyExists, "file exists", path));
        }
        let inode = Inode::new(self.allocate_ino(), FileKind::Dir, now);
        self.log_link(&parent, name, &inode, now);
        entries.insert(name.to_os_string(), inode);
        Ok(())
    }

    /// `create_dir_all`, with std's algorithm (so its errors are std's): try the directory;
    /// if its parent is missing, create the parent and try again; an existing directory is
    /// success.
    pub(crate) fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let names = components(path)?;
        self.create_dir_all_names(&names)
    }

    fn create_dir_all_names(&self, names: &[&OsStr]) -> io::Result<()> {
        let Some((_, dirs)) = names.split_last() else {
            return Ok(());
        };
        let prefix: PathBuf = std::iter::once(OsStr::new("/"))
            .chain(names.iter().copied())
            .collect();
        match self.create_dir(&prefix) {
            Ok(()) => return Ok(()),
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => return self.unless_dir(&prefix, err),
        }
        self.create_dir_all_names(dirs)?;
        match self.create_dir(&prefix) {
            Ok(()) => Ok(()),
            Err(err) => self.unless_dir(&prefix, err),
        }
    }

    /// `Ok` if `path` is a directory, else `err`.
    fn unless_dir(&self, path: &Path, err: io::Error) -> io::Result<()> {
        match self.with_object(path, |inode, _| Ok(inode.is_dir())) {
            Ok(true) => Ok(()),
            _ => Err(err),
        }
    }

    /// `rmdir`.
    pub(crate) fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let names = components(path)?;
        let Some((name, dirs)) = names.split_last() else {
            return Err(error(
                ErrorKind::ResourceBusy,
                "cannot remove the root",
                path,
            ));
        };
        let parent = self.walk_dir(dirs, path)?;
        let mut parent_state = parent.state.lock();
        let entries = parent_state.entries_mut().ok_or_else(|| not_found(path))?;
        let child = entries.get(*name).cloned().ok_or_else(|| not_found(path))?;
        if !child.is_dir() {
            return Err(error(ErrorKind::NotADirectory, "not a directory", path));
        }
        mark_removed(&child, path)?;
        entries.remove(*name);
        self.log_unlink(&parent, name);
        Ok(())
    }

    /// `unlink`.
    pub(crate) fn remove_file(&self, path: &Path) -> io::Result<()> {
        let names = components(path)?;
        let Some((name, dirs)) = names.split_last() else {
            return Err(error(ErrorKind::IsADirectory, "is a directory", path));
        };
        let parent = self.walk_dir(dirs, path)?;
        let mut parent_state = parent.state.lock();
        let entries = parent_state.entries_mut().ok_or_else(|| not_found(path))?;
        match entries.get(*name) {
            None => Err(not_found(path)),
            Some(child) if child.is_dir() => {
                Err(error(ErrorKind::IsADirectory, "is a directory", path))
            }
            Some(_) => {
                // The inode lives on in open handles; it becomes unreachable by name.
                entries.remove(*name);
                self.log_unlink(&parent, name);
                Ok(())
            }
        }
    }

    /// `rename(2)`.
    pub(crate) fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let from_names = components(from)?;
        let to_names = components(to)?;
        let (Some((from_name, from_dirs)), Some((to_name, to_dirs))) =
            (from_names.split_last(), to_names.split_last())
        else {
            return Err(error(
                ErrorKind::ResourceBusy,
                "cannot rename the root",
                from,
            ));
        };
        if from_names == to_names {
            // Renaming an existing object onto itself does nothing.
            return self.with_object(from, |_, _| Ok(()));
        }
        let names = RenameNames {
            from_name,
            to_name,
            from,
            to,
        };
        let source_dir = self.walk_dir(from_dirs, from)?;
        let target_dir = self.walk_dir(to_dirs, to)?;
        if Arc::ptr_eq(&source_dir, &target_dir) {
            return self.rename_in_dir(&source_dir, &mut source_dir.state.lock(), &names);
        }
        let _one_at_a_time = self.rename_lock.lock();
        let source_chain = self.walk_chain(from_dirs, from)?;
        let target_chain = self.walk_chain(to_dirs, to)?;
        self.rename_across(&source_chain, &target_chain, &names)
    }

    /// Logs a rename of `source` (the directory locks are held).
    fn log_rename(
        &self,
        from_dir: &Inode<S>,
        to_dir: &Inode<S>,
        names: &RenameNames<'_>,
        source: &Inode<S>,
    ) {
        self.durable().log(Change::Rename {
            from_dir: from_dir.ino,
            from_name: names.from_name.to_os_string(),
            to_dir: to_dir.ino,
            to_name: names.to_name.to_os_string(),
            ino: source.ino,
        });
    }

    /// Lists a directory in the seed's order.
    pub(crate) fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        self.with_object(path, |inode, state| {
            let entries = state
                .entries()
                .ok_or_else(|| error(ErrorKind::NotADirectory, "not a directory", path))?;
            if state.removed {
                return Err(not_found(path));
            }
            let mut listing: Vec<(u64, DirEntry)> = entries
                .iter()
                .map(|(name, child)| {
                    let key = listing_key(self.seed, inode.ino, name);
                    (
                        key,
                        DirEntry {
                            name: name.clone(),
                            kind: child.kind,
                        },
                    )
                })
                .collect();
            listing.sort();
            Ok(listing.into_iter().map(|(_, entry)| entry).collect())
        })
    }

    /// `open(2)`: finds or creates the inode and hands out an open-file-description id.
    pub(crate) fn open_inode(
        &self,
        path: &Path,
        options: OpenOptions,
    ) -> io::Result<(Arc<Inode<S>>, OfdId)> {
        check_options(options, path)?;
        let creating = options.create || options.create_new;
        let now = if creating || options.truncate {
            self.now()
        } else {
            0
        };
        let names = components(path)?;
        let Some((name, dirs)) = names.split_last() else {
            let mut state = self.root.state.lock();
            check_existing(&self.root, options, path)?;
            return Ok((Arc::clone(&self.root), state.allocate_ofd()));
        };
        let parent = self.walk_dir(dirs, path)?;
        let mut parent_state = parent.state.lock();
        let (inode, created) = match parent_state.entries().and_then(|e| e.get(*name)).cloned() {
            Some(existing) => (existing, false),
            None if !creating => return Err(not_found(path)),
            None if parent_state.removed => return Err(not_found(path)),
            None => {
                let inode = Inode::new(self.allocate_ino(), FileKind::File, now);
                let entries = parent_state.entries_mut().ok_or_else(|| not_found(path))?;
                entries.insert(name.to_os_string(), Arc::clone(&inode));
                self.log_link(&parent, name, &inode, now);
                (inode, true)
            }
        };
        if !created {
            check_existing(&inode, options, path)?;
        }
        let mut state = inode.state.lock();
        drop(parent_state);
        if options.truncate && !created && inode.kind == FileKind::File {
            truncate(&mut state, now);
            self.durable().log(Change::SetLen {
                ino: inode.ino,
                len: 0,
                mtime: now,
            });
        }
        let ofd = state.allocate_ofd();
        drop(state);
        Ok((inode, ofd))
    }
}

/// Rejects the option combinations std rejects (`InvalidInput`).
fn check_options(options: OpenOptions, path: &Path) -> io::Result<()> {
    let needs_write = options.create || options.create_new || options.truncate;
    if !options.write && (!options.read || needs_write) {
        return Err(error(ErrorKind::InvalidInput, "invalid open options", path));
    }
    Ok(())
}

/// The checks of `open` on an object that already exists.
fn check_existing<S: SyncFamily>(
    inode: &Inode<S>,
    options: OpenOptions,
    path: &Path,
) -> io::Result<()> {
    if options.create_new {
        return Err(error(ErrorKind::AlreadyExists, "file exists", path));
    }
    if inode.is_dir() && (options.write || options.create) {
        return Err(error(ErrorKind::IsADirectory, "is a directory", path));
    }
    Ok(())
}

/// `O_TRUNC` of an existing file.
fn truncate<S: SyncFamily>(state: &mut InodeState<S>, now: i64) {
    if let crate::inode::Content::File(data) = &mut state.content {
        data.clear();
        state.mtime = now;
    }
}

/// Marks directory `dir` removed, if it is empty (`rmdir`, or replacement by `rename`).
fn mark_removed<S: SyncFamily>(dir: &Inode<S>, path: &Path) -> io::Result<()> {
    let mut state = dir.state.lock();
    if state.entries().is_some_and(|entries| !entries.is_empty()) {
        return Err(error(
            ErrorKind::DirectoryNotEmpty,
            "directory not empty",
            path,
        ));
    }
    state.removed = true;
    Ok(())
}

/// The names of one rename.
struct RenameNames<'a> {
    from_name: &'a OsStr,
    to_name: &'a OsStr,
    from: &'a Path,
    to: &'a Path,
}

/// Checks that `source` may replace `target`; a replaced directory is marked removed.
fn check_replace<S: SyncFamily>(source: &Inode<S>, target: &Inode<S>, to: &Path) -> io::Result<()> {
    if std::ptr::eq(source, target) {
        // The same object under both names (possible only when a concurrent rename made two
        // paths meet): nothing to replace.
        return Ok(());
    }
    match (source.is_dir(), target.is_dir()) {
        (false, true) => Err(error(ErrorKind::IsADirectory, "is a directory", to)),
        (true, false) => Err(error(ErrorKind::NotADirectory, "not a directory", to)),
        (true, true) => mark_removed(target, to),
        (false, false) => Ok(()),
    }
}

impl<S: SyncFamily> Disk<S> {
    /// A rename within one (locked) directory.
    fn rename_in_dir(
        &self,
        dir_inode: &Inode<S>,
        dir: &mut InodeState<S>,
        names: &RenameNames<'_>,
    ) -> io::Result<()> {
        let entries = dir.entries_mut().ok_or_else(|| not_found(names.from))?;
        let source = entries
            .get(names.from_name)
            .cloned()
            .ok_or_else(|| not_found(names.from))?;
        if let Some(target) = entries.get(names.to_name) {
            check_replace(&source, target, names.to)?;
        }
        entries.remove(names.from_name);
        self.log_rename(dir_inode, dir_inode, names, &source);
        entries.insert(names.to_name.to_os_string(), source);
        Ok(())
    }

    /// A rename between two directories, given their ancestor chains (the rename lock is held).
    fn rename_across(
        &self,
        source_chain: &[Arc<Inode<S>>],
        target_chain: &[Arc<Inode<S>>],
        names: &RenameNames<'_>,
    ) -> io::Result<()> {
        let (Some(source_dir), Some(target_dir)) = (source_chain.last(), target_chain.last())
        else {
            return Err(not_found(names.from));
        };
        if Arc::ptr_eq(source_dir, target_dir) {
            return self.rename_in_dir(source_dir, &mut source_dir.state.lock(), names);
        }
        let source_first = if in_chain(target_chain, source_dir) {
            true
        } else if in_chain(source_chain, target_dir) {
            false
        } else {
            source_dir.ino < target_dir.ino
        };
        let (mut source_state, mut target_state) = if source_first {
            let source_state = source_dir.state.lock();
            (source_state, target_dir.state.lock())
        } else {
            let target_state = target_dir.state.lock();
            (source_dir.state.lock(), target_state)
        };
        if target_state.removed {
            return Err(not_found(names.to));
        }
        let source = source_state
            .entries()
            .and_then(|entries| entries.get(names.from_name))
            .cloned()
            .ok_or_else(|| not_found(names.from))?;
        if in_chain(target_chain, &source) {
            return Err(error(
                ErrorKind::InvalidInput,
                "cannot move a directory into itself",
                names.to,
            ));
        }
        let target_entries = target_state
            .entries_mut()
            .ok_or_else(|| not_found(names.to))?;
        if let Some(target) = target_entries.get(names.to_name) {
            if in_chain(source_chain, target) {
                return Err(error(
                    ErrorKind::DirectoryNotEmpty,
                    "directory not empty",
                    names.to,
                ));
            }
            check_replace(&source, target, names.to)?;
        }
        self.log_rename(source_dir, target_dir, names, &source);
        target_entries.insert(names.to_name.to_os_string(), source);
        if let Some(entries) = source_state.entries_mut() {
            entries.remove(names.from_name);
        }
        Ok(())
    }
}
