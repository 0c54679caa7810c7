//! Reader sessions: restoring from a finished snapshot.
//!
//! [`Datastore::open_reader`] opens a [`ReaderSession`] on one snapshot:
//!
//! 1. The snapshot directory must exist ([`Error::SnapshotNotFound`]).
//! 2. **Shared snapshot lock**, without waiting, held for the whole session: while a reader
//!    runs, the snapshot can be neither forgotten nor pruned (invariant I6, race B5), and no
//!    backup can be writing it (a running backup holds it exclusively, so the reader fails
//!    busy). Other readers, verify and a backup using the snapshot as its base share the lock.
//! 3. Existence is checked again: a lock file is created on demand, so the lock can be granted
//!    on a snapshot that a forget removed between step 1 and step 2.
//! 4. The manifest is loaded (no lock needed: it is only ever replaced atomically). An
//!    unfinished snapshot has none and cannot be read.
//!
//! The session then serves the files the manifest lists (and the manifest itself). Downloading
//! or opening an index registers every digest in it as *allowed*; [`ReaderSession::read_chunk`]
//! serves only allowed chunks ([`Error::ChunkNotAllowed`]). Since the snapshot exists for the
//! whole session, its indexes exist during every GC's mark phase, so the chunks served are
//! never swept from under the reader.

use std::collections::BTreeSet;

use crate::backup_info::BackupDir;
use crate::digest::Digest;
use crate::index::{ArchiveKind, IndexError, IndexFile};
use crate::manifest::{MANIFEST_BLOB_NAME, Manifest};
use crate::world::{LockMode, World};

use super::{Datastore, Error, IndexMismatch, SnapshotLock};

/// An open restore of one finished snapshot, holding its shared snapshot lock until dropped.
#[must_use = "the snapshot stays locked (shared) for as long as the session lives"]
pub struct ReaderSession<W: World> {
    store: Datastore<W>,
    dir: BackupDir,
    manifest: Manifest,
    allowed: BTreeSet<Digest>,
    /// `None` only with the fix of race B5 reverted.
    _lock: Option<SnapshotLock<W>>,
}

impl<W: World> std::fmt::Debug for ReaderSession<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderSession")
            .field("dir", &self.dir)
            .field("allowed_chunks", &self.allowed.len())
            .finish()
    }
}

impl<W: World> Datastore<W> {
    /// Opens a reader session on the snapshot `dir`; see the [module documentation](self).
    pub fn open_reader(&self, dir: &BackupDir) -> Result<ReaderSession<W>, Error> {
        if !self.snapshot_exists(dir)? {
            return Err(Error::SnapshotNotFound(dir.clone()));
        }
        // Race B17 reverted: an exclusive lock; race B5 reverted: no lock at all.
        let mode = if crate::reverted!(
            self.config().chunk_store.regressions,
            B17ReaderTakesExclusiveLock
        ) {
            LockMode::Exclusive
        } else {
            LockMode::Shared
        };
        let lock = if crate::reverted!(self.config().chunk_store.regressions, B5ReadersTakeNoLock) {
            None
        } else {
            Some(self.lock_snapshot(dir, mode)?)
        };
        if !self.snapshot_exists(dir)? {
            return Err(Error::SnapshotNotFound(dir.clone()));
        }
        let manifest = self.load_manifest(dir)?;
        Ok(ReaderSession {
            store: self.clone(),
            dir: dir.clone(),
            manifest,
            allowed: BTreeSet::new(),
            _lock: lock,
        })
    }
}

impl<W: World> ReaderSession<W> {
    /// The snapshot being read.
    pub fn dir(&self) -> &BackupDir {
        &self.dir
    }

    /// The snapshot's manifest, as loaded when the session opened.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Is `digest` announced by an index downloaded in this session?
    pub fn is_allowed(&self, digest: &Digest) -> bool {
        self.allowed.contains(digest)
    }

    /// The bytes of the snapshot file `name`, which must be the manifest or a file it lists
    /// ([`Error::NotInManifest`]). If it is an index, it must parse, and every digest in it
    /// becomes readable through [`ReaderSession::read_chunk`].
    pub fn download(&mut self, name: &str) -> Result<Vec<u8>, Error> {
        let path = self.listed_path(name)?;
        let bytes = self
            .store
            .world()
            .read_file(&path)
            .map_err(Error::io("read", &path))?;
        if ArchiveKind::from_name(name).is_some_and(|kind| kind.is_index()) {
            let index = IndexFile::parse(&bytes)?;
            self.check_listed(name, &index)?;
            self.allow(&index);
        }
        Ok(bytes)
    }

    /// Opens the index `name` (listed in the manifest and matching the checksum and size the
    /// manifest records), registers its digests as allowed and returns it parsed. A name that is not an index is [`IndexError::BadArchiveName`].
    pub fn open_index(&mut self, name: &str) -> Result<IndexFile, Error> {
        if !ArchiveKind::from_name(name).is_some_and(|kind| kind.is_index()) {
            let name = name.to_owned();
            return Err(IndexError::BadArchiveName {
                name,
                expected: "index",
            }
            .into());
        }
        let path = self.listed_path(name)?;
        let index = IndexFile::open(self.store.world(), &path)?;
        self.check_listed(name, &index)?;
        self.allow(&index);
        Ok(index)
    }

    /// The index matches the checksum and size the manifest records for `name`
    /// ([`Error::IndexMismatch`]).
    fn check_listed(&self, name: &str, index: &IndexFile) -> Result<(), Error> {
        let Some(file) = self.manifest.file(name) else {
            return Ok(());
        };
        let (actual, actual_size) = index.compute_csum();
        if actual == file.csum && actual_size == file.size {
            return Ok(());
        }
        Err(Error::IndexMismatch {
            dir: self.dir.clone(),
            name: name.to_owned(),
            found: Box::new(IndexMismatch {
                expected: file.csum,
                expected_size: file.size,
                actual,
                actual_size,
            }),
        })
    }

    /// The plain data of the chunk `digest`, which an index downloaded in this session must
    /// reference ([`Error::ChunkNotAllowed`]); read and validated by the chunk store.
    pub fn read_chunk(&self, digest: &Digest) -> Result<Vec<u8>, Error> {
        if !self.allowed.contains(digest) {
            return Err(Error::ChunkNotAllowed {
                dir: self.dir.clone(),
                digest: *digest,
            });
        }
        Ok(self.store.chunk_store().load_chunk(digest)?.into_data())
    }

    fn listed_path(&self, name: &str) -> Result<std::path::PathBuf, Error> {
        if name != MANIFEST_BLOB_NAME && self.manifest.file(name).is_none() {
            return Err(Error::NotInManifest {
                dir: self.dir.clone(),
                name: name.to_owned(),
            });
        }
        Ok(self.store.snapshot_path(&self.dir).join(name))
    }

    fn allow(&mut self, index: &IndexFile) {
        self.allowed.extend(index.digests().iter().copied());
    }
}
