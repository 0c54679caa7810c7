//! Publishing a file atomically, and the I/O error every store error type carries.
//!
//! Every file of the store that readers may see (a chunk, an index, a blob, a manifest, the
//! owner and notes files, `.gc-status`) appears by [`publish_file`]: the bytes go to a
//! temporary file `<name>.tmp_<16 hex>` in the target's directory, which is renamed over the
//! target, so a reader sees the old file or the complete new one, never a part. With
//! [`Durability::FileAndDir`] the temporary file is fsynced before the rename and the directory
//! after it, so that the new file survives a crash once the call returns; an fsync error fails
//! the call and is never retried (Linux reports a writeback error once, then forgets the lost
//! data). Which operations need durability is the callers' rule (see the "Durability" section
//! of [`crate::datastore::backup`]): chunks, indexes and small files follow the sync level
//! `file`, the manifest every durable level.

use std::io;
use std::path::{Path, PathBuf};

use crate::world::{OpenOptions, World, WorldFile};

/// An operation of the world failed: which one, on which path, and the OS (or simulated)
/// error. Every error enum of the store has one `Io` variant holding this.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct IoError {
    /// The operation, e.g. `"stat"` or `"fsync"`.
    pub op: &'static str,
    /// The path it was applied to.
    pub path: PathBuf,
    /// The error.
    #[source]
    pub source: io::Error,
}

impl IoError {
    /// The error's kind.
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    /// The error of `op` on `path`.
    pub fn new(op: &'static str, path: &Path, source: io::Error) -> IoError {
        IoError {
            op,
            path: path.to_owned(),
            source,
        }
    }

    /// A converter for `map_err`: `world.stat(p).map_err(IoError::at("stat", p))?`.
    pub(crate) fn at<'p>(
        op: &'static str,
        path: &'p Path,
    ) -> impl FnOnce(io::Error) -> IoError + 'p {
        move |source| IoError::new(op, path, source)
    }
}

/// Whether [`publish_file`] makes the new file durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Write and rename only: atomic for readers, not across a power loss.
    RenameOnly,
    /// fsync of the temporary file before the rename and of the directory after it.
    FileAndDir,
}

impl Durability {
    /// `FileAndDir` if `durable`, else `RenameOnly`.
    pub fn when(durable: bool) -> Durability {
        if durable {
            Durability::FileAndDir
        } else {
            Durability::RenameOnly
        }
    }
}

/// How [`publish_file`] failed.
#[derive(Debug)]
pub(crate) enum PublishError {
    /// Before the rename: the target is untouched and the temporary file removed (best effort).
    NotPublished(IoError),
    /// The rename happened, but the directory's fsync failed: the new file is in place and
    /// readable, but its name may not survive a crash.
    NameNotDurable(IoError),
}

impl PublishError {
    pub(crate) fn into_io(self) -> IoError {
        match self {
            PublishError::NotPublished(err) | PublishError::NameNotDurable(err) => err,
        }
    }
}

impl From<PublishError> for IoError {
    fn from(err: PublishError) -> IoError {
        err.into_io()
    }
}

/// The name of a fresh temporary file for `name` in `dir`.
pub(crate) fn temp_path<W: World>(world: &W, dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.tmp_{:016x}", world.unique_id()))
}

/// Publishes `bytes` as `<dir>/<name>` (module docs). Returns the target's path.
pub(crate) fn publish_file<W: World>(
    world: &W,
    dir: &Path,
    name: &str,
    bytes: &[u8],
    durability: Durability,
) -> Result<PathBuf, PublishError> {
    let target = dir.join(name);
    let temp = temp_path(world, dir, name);
    let written = (|| {
        let file = world
            .open(&temp, OpenOptions::create_new())
            .map_err(IoError::at("create", &temp))?;
        file.write_at(0, bytes)
            .map_err(IoError::at("write", &temp))?;
        Ok(file)
    })();
    let file = match written {
        Ok(file) => file,
        Err(err) => {
            // Best effort: a leftover temporary file is no chunk or archive name, so nothing
            // reads it (GC's sweep removes stale chunk temporaries).
            let _ = world.remove_file(&temp);
            return Err(PublishError::NotPublished(err));
        }
    };
    match rename_into_place(world, file, &temp, &target, durability) {
        Err(err @ PublishError::NotPublished(_)) => {
            let _ = world.remove_file(&temp);
            Err(err)
        }
        other => other.map(|()| target),
    }
}

/// The second half of [`publish_file`], for a writer that filled its temporary `file` itself:
/// fsyncs it (if durable), closes it, renames `temp` to `target` and fsyncs the target's
/// directory (if durable). The caller removes `temp` on [`PublishError::NotPublished`].
pub(crate) fn rename_into_place<W: World>(
    world: &W,
    file: W::File,
    temp: &Path,
    target: &Path,
    durability: Durability,
) -> Result<(), PublishError> {
    let durable = durability == Durability::FileAndDir;
    if durable {
        file.sync_all()
            .map_err(|err| PublishError::NotPublished(IoError::at("fsync", temp)(err)))?;
    }
    drop(file);
    world
        .rename(temp, target)
        .map_err(|err| PublishError::NotPublished(IoError::at("rename", temp)(err)))?;
    if durable {
        let dir = target.parent().unwrap_or(Path::new(""));
        world
            .fsync_dir(dir)
            .map_err(|err| PublishError::NameNotDurable(IoError::at("fsync", dir)(err)))?;
    }
    Ok(())
}
