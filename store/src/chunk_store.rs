//! The chunk store: content-addressed chunk files under `<base>/.chunks/<prefix>/<digest>`.
//!
//! A chunk is a [blob] whose name is the SHA-256 of its plain data. The prefix
//! directory is the first `n` hex digits of the digest; `n` is the store's [`PrefixFanout`]
//! (4 digits = 65,536 directories on real disks, 1 digit = 16 in simulated scenarios).
//!
//! # Locking
//!
//! One mutex per chunk store serialises every chunk state change: insert (stat → touch or
//! write), conditional touch, the rename of a corrupt chunk to `.bad`, and each single
//! stat → decide → unlink step of the sweep. It is held per chunk, never across chunks.
//! Functions that need it take its [`ChunkStoreGuard`] as a witness. At level `file` a leaf
//! lock under it guards the in-memory list of chunks whose directory fsync and removal both
//! failed (see "Durability"); it is never held while anything else is locked or done.
//!
//! # Invariants
//!
//! * **I3, per-chunk atomicity:** sweep's stat → unlink of a chunk is atomic with respect to an
//!   insert's exists → touch and a touch's existence check, because all of them hold the mutex.
//! * A chunk reported as stored (new or duplicate) has `atime >= now` at the time of the report,
//!   so a sweep whose cutoff is older than the writer's start never removes it.
//! * Chunks are published atomically: written to `<digest>.tmp_<id>` in the prefix directory
//!   and renamed into place; sweep ignores every name that is not a chunk or a `.bad` chunk,
//!   except stale temporary chunk files, which it removes.
//!
//! # Durability
//!
//! With [`SyncLevel::File`] an insert fsyncs the temporary file, renames it into place and
//! fsyncs the prefix directory before it reports the chunk stored. Any fsync error fails the
//! insert and is never retried: a chunk whose file fsync failed is never renamed into place
//! (its temporary file is removed), and a chunk whose directory fsync failed is removed again,
//! so no later insert can take it for a durable duplicate (if the removal fails too, this
//! [`ChunkStore`] remembers the digest and its next insert rewrites the chunk; the memory does
//! not outlive the instance, so another process can still take such a chunk for a duplicate
//! until its directory is fsynced again). With [`SyncLevel::Filesystem`] the
//! caller runs one `syncfs` before it relies on the chunks; with [`SyncLevel::None`] nothing is
//! promised after a crash.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use crate::blob::{self, BlobError};
use crate::digest::Digest;
use crate::publish::{Durability, IoError, PublishError, publish_file};
use crate::sync::{Mutex, SyncFamily};
use crate::world::{DirEntry, FileKind, Metadata, World};

#[cfg(feature = "regressions")]
use crate::regressions::Regressions;

/// Largest chunk payload accepted by [`Chunk::from_data`] (16 MiB).
pub const CHUNK_LEN_MAX: usize = 16 * 1024 * 1024;

/// How many `.bad` copies of one digest are kept (`<digest>.0.bad` … `<digest>.9.bad`).
pub const BAD_COPIES_MAX: u32 = 10;

/// When writes are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncLevel {
    /// Never fsync; the OS writes back when it likes.
    None,
    /// fsync every chunk file and its prefix directory before reporting it stored.
    File,
    /// No per-chunk fsync; one `syncfs` ([`ChunkStore::ensure_sync_level`]) makes every
    /// insert so far durable. A backup runs it before it publishes its manifest (see
    /// [`crate::datastore::backup`], "Durability").
    Filesystem,
}

/// How many hex digits of the digest name the prefix directory: 16^digits directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixFanout {
    hex_digits: u8,
}

impl PrefixFanout {
    /// 65,536 prefix directories, as a PBS datastore has.
    pub const DEFAULT: PrefixFanout = PrefixFanout { hex_digits: 4 };
    /// 16 prefix directories: cheap simulated executions.
    pub const SMALL: PrefixFanout = PrefixFanout { hex_digits: 1 };

    /// A fan-out of `hex_digits` digits, 1 to 4.
    pub fn new(hex_digits: u8) -> Option<PrefixFanout> {
        (1..=4)
            .contains(&hex_digits)
            .then_some(PrefixFanout { hex_digits })
    }

    /// Number of hex digits in a prefix directory name.
    pub fn hex_digits(&self) -> u8 {
        self.hex_digits
    }

    /// Number of prefix directories.
    pub fn dir_count(&self) -> u32 {
        1 << (4 * u32::from(self.hex_digits))
    }

    /// Name of the `index`-th prefix directory (`index < dir_count()`).
    pub fn dir_name(&self, index: u32) -> String {
        format!("{index:0width$x}", width = usize::from(self.hex_digits))
    }

    /// Prefix directory name of `digest`.
    pub fn prefix_of(&self, digest: &Digest) -> String {
        let hex = digest.to_hex();
        hex[..usize::from(self.hex_digits)].to_owned()
    }
}

/// Settings of a chunk store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkStoreConfig {
    /// Prefix-directory fan-out. A store must be opened with the fan-out it was created with.
    pub fanout: PrefixFanout,
    /// Durability of inserts.
    pub sync_level: SyncLevel,
    /// Historical fixes reverted (race regression suite only).
    #[cfg(feature = "regressions")]
    pub regressions: Regressions,
}

impl ChunkStoreConfig {
    /// A configuration with `fanout` and sync level [`SyncLevel::Filesystem`].
    pub fn new(fanout: PrefixFanout) -> ChunkStoreConfig {
        ChunkStoreConfig {
            fanout,
            sync_level: SyncLevel::Filesystem,
            #[cfg(feature = "regressions")]
            regressions: Regressions::none(),
        }
    }

    /// The same configuration with another sync level.
    pub fn with_sync_level(self, sync_level: SyncLevel) -> ChunkStoreConfig {
        ChunkStoreConfig { sync_level, ..self }
    }

    /// The same configuration with some historical fixes reverted.
    #[cfg(feature = "regressions")]
    pub fn with_regressions(self, regressions: Regressions) -> ChunkStoreConfig {
        ChunkStoreConfig {
            regressions,
            ..self
        }
    }
}

impl Default for ChunkStoreConfig {
    fn default() -> Self {
        ChunkStoreConfig::new(PrefixFanout::DEFAULT)
    }
}

/// What is wrong with a chunk's bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkProblem {
    /// The blob itself is damaged (header, CRC, size).
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The blob is intact but its data hashes to another digest.
    #[error("data hashes to {actual}")]
    DigestMismatch {
        /// The digest of the data found.
        actual: Digest,
    },
    /// The payload exceeds [`CHUNK_LEN_MAX`].
    #[error("chunk of {len} bytes exceeds the 16 MiB limit")]
    TooLarge {
        /// Payload length.
        len: usize,
    },
}

/// Errors of chunk-store operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkStoreError {
    /// The world failed an operation.
    #[error(transparent)]
    Io(#[from] IoError),
    /// `open` found no chunk store, or one with another fan-out.
    #[error("{} is not a chunk store with this fan-out: {reason}", path.display())]
    NotAChunkStore {
        /// The base directory.
        path: PathBuf,
        /// What is missing.
        reason: &'static str,
    },
    /// `create` found an existing chunk store.
    #[error("a chunk store already exists at {}", path.display())]
    AlreadyExists {
        /// The base directory.
        path: PathBuf,
    },
    /// Something other than a regular file sits at a chunk's path.
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The chunk path.
        path: PathBuf,
    },
    /// A chunk that must exist does not.
    #[error("chunk {digest} does not exist")]
    Missing {
        /// The chunk's digest.
        digest: Digest,
    },
    /// A chunk's bytes are damaged.
    #[error("chunk {digest} is corrupt: {problem}")]
    Corrupt {
        /// The chunk's digest.
        digest: Digest,
        /// What is wrong.
        problem: ChunkProblem,
    },
}

impl ChunkStoreError {
    fn io<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> ChunkStoreError + 'p {
        move |source| ChunkStoreError::Io(IoError::new(op, path, source))
    }
}

/// A validated chunk: its digest matches its data and its blob is well formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    digest: Digest,
    blob: Vec<u8>,
    /// The plain data of a compressed blob (`None`: the blob's payload is the data).
    decoded: Option<Vec<u8>>,
}

impl Chunk {
    /// Encodes `data` (uncompressed) and computes its digest.
    pub fn from_data(data: &[u8]) -> Result<Chunk, ChunkProblem> {
        if data.len() > CHUNK_LEN_MAX {
            return Err(ChunkProblem::TooLarge { len: data.len() });
        }
        Ok(Chunk {
            digest: Digest::of(data),
            blob: blob::encode(data)?,
            decoded: None,
        })
    }

    /// Encodes `data` zstd-compressed at `level` (uncompressed when that is not smaller) and
    /// computes its digest.
    pub fn from_data_compressed(data: &[u8], level: i32) -> Result<Chunk, ChunkProblem> {
        if data.len() > CHUNK_LEN_MAX {
            return Err(ChunkProblem::TooLarge { len: data.len() });
        }
        let blob = blob::encode_compressed(data, level)?;
        let decoded = blob::is_compressed(&blob).then(|| data.to_vec());
        Ok(Chunk {
            digest: Digest::of(data),
            blob,
            decoded,
        })
    }

    /// Checks that `blob` is a well-formed blob (either kind) whose data hashes to `digest`.
    pub fn from_blob(digest: Digest, blob: Vec<u8>) -> Result<Chunk, ChunkProblem> {
        let data = blob::decode(&blob)?;
        if data.len() > CHUNK_LEN_MAX {
            return Err(ChunkProblem::TooLarge { len: data.len() });
        }
        let actual = Digest::of(&data);
        if actual != digest {
            return Err(ChunkProblem::DigestMismatch { actual });
        }
        let decoded = match data {
            std::borrow::Cow::Borrowed(_) => None,
            std::borrow::Cow::Owned(data) => Some(data),
        };
        Ok(Chunk {
            digest,
            blob,
            decoded,
        })
    }

    /// The chunk's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The encoded blob, as stored on disk.
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// The plain data.
    pub fn data(&self) -> &[u8] {
        match &self.decoded {
            Some(data) => data,
            None => &self.blob[blob::HEADER_LEN..],
        }
    }

    /// The plain data, moved out.
    pub fn into_data(self) -> Vec<u8> {
        match self.decoded {
            Some(data) => data,
            None => self.blob[blob::HEADER_LEN..].to_vec(),
        }
    }
}

/// Result of an insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsertOutcome {
    /// The chunk was already stored (and has been touched).
    pub duplicate: bool,
    /// Size of the stored blob in bytes.
    pub encoded_len: u64,
}

/// Counters of one sweep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SweepStats {
    /// Chunks removed.
    pub removed_chunks: u64,
    /// `.bad` files removed.
    pub removed_bad: u64,
    /// Bytes removed (chunks and `.bad` files).
    pub removed_bytes: u64,
    /// Chunks kept only because a writer older than the cutoff may still need them.
    pub pending_chunks: u64,
    /// Bytes of pending chunks.
    pub pending_bytes: u64,
    /// `.bad` files kept.
    pub still_bad: u64,
    /// Chunks kept.
    pub disk_chunks: u64,
    /// Bytes of kept chunks.
    pub disk_bytes: u64,
}

/// What [`ChunkStore::rename_chunk_if_corrupt`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadRename {
    /// The chunk was still corrupt and is now this `.bad` file.
    Renamed(PathBuf),
    /// The chunk file is intact now (it was replaced since it was read); nothing was renamed.
    Intact,
    /// The chunk file no longer exists.
    Vanished,
}

/// What a name in a prefix directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkName {
    /// `<64 hex>`: a chunk.
    Chunk(Digest),
    /// `<64 hex>.<n>.bad`: a chunk renamed by verify as corrupt.
    Bad(Digest, u32),
}

impl ChunkName {
    /// Classifies a directory entry name; `None` for anything else (temporary files included).
    pub fn parse(name: &str) -> Option<ChunkName> {
        let (hex, rest) = name.split_at_checked(64)?;
        let digest = Digest::from_hex(hex)?;
        if rest.is_empty() {
            return Some(ChunkName::Chunk(digest));
        }
        let number = rest.strip_prefix('.')?.strip_suffix(".bad")?;
        match number.as_bytes() {
            [digit @ b'0'..=b'9'] => Some(ChunkName::Bad(digest, u32::from(digit - b'0'))),
            _ => None,
        }
    }
}

/// Is `name` a temporary chunk file, `<64 hex>.tmp_<anything>`?
fn is_chunk_temp_name(name: &str) -> bool {
    name.split_at_checked(64)
        .is_some_and(|(hex, rest)| Digest::from_hex(hex).is_some() && rest.starts_with(".tmp_"))
}

/// The chunk store of one datastore.
pub struct ChunkStore<W: World> {
    world: W,
    base: PathBuf,
    chunk_dir: PathBuf,
    config: ChunkStoreConfig,
    mutex: Mutex<W::Sync, ()>,
    /// Level `file` only: chunks whose prefix-directory fsync failed and whose removal failed
    /// too, so their names may not be durable. An insert of one of them rewrites it instead of
    /// taking it for a durable duplicate. A leaf lock, taken under the chunk-store mutex.
    unsynced: Mutex<W::Sync, BTreeSet<Digest>>,
}

/// Proof that the chunk-store mutex of one particular store is held.
#[must_use = "the chunk-store mutex is released when the guard is dropped"]
pub struct ChunkStoreGuard<'a, W: World> {
    owner: usize,
    _guard: <W::Sync as SyncFamily>::Guard<'a, ()>,
}

impl<W: World> ChunkStore<W> {
    /// Creates `<base>/.chunks` and every prefix directory. Fails with
    /// [`ChunkStoreError::AlreadyExists`] if `.chunks` exists.
    pub fn create(
        world: W,
        base: &Path,
        config: ChunkStoreConfig,
    ) -> Result<ChunkStore<W>, ChunkStoreError> {
        world
            .create_dir_all(base)
            .map_err(ChunkStoreError::io("mkdir -p", base))?;
        let chunk_dir = base.join(".chunks");
        match world.create_dir(&chunk_dir) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                return Err(ChunkStoreError::AlreadyExists {
                    path: base.to_owned(),
                });
            }
            Err(err) => return Err(ChunkStoreError::io("mkdir", &chunk_dir)(err)),
        }
        for index in 0..config.fanout.dir_count() {
            let dir = chunk_dir.join(config.fanout.dir_name(index));
            world
                .create_dir(&dir)
                .map_err(ChunkStoreError::io("mkdir", &dir))?;
        }
        let store = ChunkStore::new(world, base, config);
        store.sync_layout()?;
        Ok(store)
    }

    /// Opens an existing chunk store created with the same fan-out.
    pub fn open(
        world: W,
        base: &Path,
        config: ChunkStoreConfig,
    ) -> Result<ChunkStore<W>, ChunkStoreError> {
        let store = ChunkStore::new(world, base, config);
        let first_prefix = store.chunk_dir.join(config.fanout.dir_name(0));
        let found = store
            .world
            .try_metadata(&first_prefix)
            .map_err(ChunkStoreError::io("stat", &first_prefix))?;
        match found {
            Some(metadata) if metadata.is_dir() => Ok(store),
            _ => Err(ChunkStoreError::NotAChunkStore {
                path: base.to_owned(),
                reason: "no .chunks prefix directory of this fan-out",
            }),
        }
    }

    fn new(world: W, base: &Path, config: ChunkStoreConfig) -> ChunkStore<W> {
        ChunkStore {
            world,
            base: base.to_owned(),
            chunk_dir: base.join(".chunks"),
            config,
            mutex: Mutex::new(()),
            unsynced: Mutex::new(BTreeSet::new()),
        }
    }

    fn sync_layout(&self) -> Result<(), ChunkStoreError> {
        match self.config.sync_level {
            SyncLevel::None => Ok(()),
            SyncLevel::File => {
                let chunk_dir = &self.chunk_dir;
                self.world
                    .fsync_dir(chunk_dir)
                    .map_err(ChunkStoreError::io("fsync", chunk_dir))?;
                self.world
                    .fsync_dir(&self.base)
                    .map_err(ChunkStoreError::io("fsync", &self.base))
            }
            SyncLevel::Filesystem => self.ensure_sync_level(),
        }
    }

    /// The world this store runs in.
    pub fn world(&self) -> &W {
        &self.world
    }

    /// The datastore base directory.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The configuration.
    pub fn config(&self) -> &ChunkStoreConfig {
        &self.config
    }

    /// Takes the chunk-store mutex.
    pub fn lock(&self) -> ChunkStoreGuard<'_, W> {
        ChunkStoreGuard {
            owner: self.owner_id(),
            _guard: self.mutex.lock(),
        }
    }

    /// Identity of this store's mutex, to check that a guard belongs to this store.
    fn owner_id(&self) -> usize {
        std::ptr::from_ref(&self.mutex) as usize
    }

    fn check_guard(&self, guard: &ChunkStoreGuard<'_, W>) {
        assert!(
            guard.owner == self.owner_id(),
            "guard of another chunk store"
        );
    }

    /// Path of the prefix directory of `digest`.
    pub fn prefix_dir(&self, digest: &Digest) -> PathBuf {
        self.chunk_dir.join(self.config.fanout.prefix_of(digest))
    }

    /// Path of the chunk file of `digest`.
    pub fn chunk_path(&self, digest: &Digest) -> PathBuf {
        self.prefix_dir(digest).join(digest.to_hex())
    }

    /// Path of the `n`-th `.bad` copy of `digest`.
    pub fn bad_chunk_path(&self, digest: &Digest, n: u32) -> PathBuf {
        self.prefix_dir(digest).join(format!("{digest}.{n}.bad"))
    }

    /// Stores `chunk` under the mutex; see [`ChunkStore::insert_chunk_locked`].
    pub fn insert_chunk(&self, chunk: &Chunk) -> Result<InsertOutcome, ChunkStoreError> {
        let guard = self.lock();
        self.insert_chunk_locked(&guard, chunk)
    }

    /// Stores `chunk`.
    ///
    /// * Already stored with the same size: touched (atime = now), reported as duplicate.
    /// * Stored but empty (a crash persisted the name, not the data): overwritten.
    /// * Stored with a smaller size: kept and touched. With a larger size: replaced.
    /// * Otherwise written to a temporary file and renamed into place; with
    ///   [`SyncLevel::File`] the file and its directory are fsynced first.
    pub fn insert_chunk_locked(
        &self,
        guard: &ChunkStoreGuard<'_, W>,
        chunk: &Chunk,
    ) -> Result<InsertOutcome, ChunkStoreError> {
        self.check_guard(guard);
        let path = self.chunk_path(&chunk.digest);
        let encoded_len = chunk.blob.len() as u64;
        let existing = self
            .world
            .try_metadata(&path)
            .map_err(ChunkStoreError::io("stat", &path))?;
        if let Some(metadata) = existing {
            if metadata.kind != FileKind::File {
                return Err(ChunkStoreError::NotAFile { path });
            }
            let keep_existing = metadata.len != 0
                && metadata.len <= encoded_len
                && !(self.config.sync_level == SyncLevel::File
                    && self.unsynced.lock().contains(&chunk.digest));
            if keep_existing {
                if !crate::reverted!(self.config.regressions, B4DuplicateInsertNoTouch) {
                    self.world
                        .touch_atime(&path)
                        .map_err(ChunkStoreError::io("touch", &path))?;
                }
                return Ok(InsertOutcome {
                    duplicate: true,
                    encoded_len: metadata.len,
                });
            }
        }
        self.write_chunk_file(guard, &chunk.digest, &path, &chunk.blob)?;
        Ok(InsertOutcome {
            duplicate: false,
            encoded_len,
        })
    }

    fn write_chunk_file(
        &self,
        _guard: &ChunkStoreGuard<'_, W>,
        digest: &Digest,
        path: &Path,
        blob: &[u8],
    ) -> Result<(), ChunkStoreError> {
        let dir = self.prefix_dir(digest);
        let sync_file = self.config.sync_level == SyncLevel::File;
        let name = format!("{digest}");
        match publish_file(&self.world, &dir, &name, blob, Durability::when(sync_file)) {
            Ok(_) => {}
            Err(PublishError::NotPublished(err)) => return Err(err.into()),
            Err(PublishError::NameNotDurable(err)) => {
                if crate::reverted!(self.config.regressions, ChunkKeptAfterDirSyncError) {
                    return Err(err.into());
                }
                // The chunk's name may not be durable. Left in place, the next insert of the
                // digest would find it, report it stored and let a backup succeed on a chunk a
                // crash can take away. Nothing references it yet (we hold the mutex since it
                // was missing), so it goes; a retried fsync would prove nothing (its error is
                // reported only once).
                if self.world.remove_file(path).is_err() {
                    // Still there (the disk keeps failing): remember it, so that no insert of
                    // this store takes it for a durable duplicate.
                    self.unsynced.lock().insert(*digest);
                }
                return Err(err.into());
            }
        }
        if sync_file {
            self.unsynced.lock().remove(digest);
        }
        Ok(())
    }

    /// Under the mutex: touches the chunk if it exists. `Ok(false)` if it does not exist and
    /// `assert_exists` is false; [`ChunkStoreError::Missing`] if it does not and must. Any other
    /// error is returned as is.
    pub fn cond_touch_chunk(
        &self,
        digest: &Digest,
        assert_exists: bool,
    ) -> Result<bool, ChunkStoreError> {
        if crate::reverted!(self.config.regressions, B20TouchOutsideMutex) {
            // Race B20: a "present?" check that a sweep's stat → unlink can straddle.
            return self.cond_touch(digest, assert_exists);
        }
        let guard = self.lock();
        self.cond_touch_chunk_locked(&guard, digest, assert_exists)
    }

    /// [`ChunkStore::cond_touch_chunk`] with the mutex already held.
    pub fn cond_touch_chunk_locked(
        &self,
        guard: &ChunkStoreGuard<'_, W>,
        digest: &Digest,
        assert_exists: bool,
    ) -> Result<bool, ChunkStoreError> {
        self.check_guard(guard);
        self.cond_touch(digest, assert_exists)
    }

    /// The body of [`ChunkStore::cond_touch_chunk_locked`]; callers hold the mutex.
    fn cond_touch(&self, digest: &Digest, assert_exists: bool) -> Result<bool, ChunkStoreError> {
        let path = self.chunk_path(digest);
        match self.world.touch_atime(&path) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                if assert_exists {
                    Err(ChunkStoreError::Missing { digest: *digest })
                } else {
                    Ok(false)
                }
            }
            Err(err) => Err(ChunkStoreError::io("touch", &path)(err)),
        }
    }

    /// Under the mutex: touches every `.bad` copy of `digest`, so that bad copies survive GC
    /// while the digest is referenced and the good chunk is missing. Returns whether any existed.
    pub fn cond_touch_bad_chunks(&self, digest: &Digest) -> Result<bool, ChunkStoreError> {
        let _guard = self.lock();
        let mut touched = false;
        for n in 0..BAD_COPIES_MAX {
            let path = self.bad_chunk_path(digest, n);
            match self.world.touch_atime(&path) {
                Ok(()) => touched = true,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(ChunkStoreError::io("touch", &path)(err)),
            }
        }
        Ok(touched)
    }

    /// Under the mutex: renames a chunk to the first free `<digest>.<n>.bad` (the last one is
    /// overwritten when all ten exist), whatever its content. `Ok(None)` if the chunk is already
    /// gone. Verify uses [`ChunkStore::rename_chunk_if_corrupt`] instead.
    pub fn rename_corrupt_chunk(
        &self,
        digest: &Digest,
    ) -> Result<Option<PathBuf>, ChunkStoreError> {
        if crate::reverted!(self.config.regressions, B21RenameOutsideMutex) {
            return self.rename_to_bad(digest);
        }
        let guard = self.lock();
        self.rename_corrupt_chunk_locked(&guard, digest)
    }

    /// Under the mutex: checks the chunk file again and renames it to `.bad` only if it is still
    /// corrupt. Between a verifier's read of a damaged chunk and its rename, a backup may have
    /// replaced the file with a good copy (an insert rewrites an empty or wrongly sized file);
    /// renaming that copy would take a chunk away from the backup that just stored it.
    pub fn rename_chunk_if_corrupt(&self, digest: &Digest) -> Result<BadRename, ChunkStoreError> {
        // Race B21: with the fix reverted, the check and the rename run outside the mutex, so a
        // sweep that stat'ed the chunk finds it gone when it unlinks.
        let _guard = if crate::reverted!(self.config.regressions, B21RenameOutsideMutex) {
            None
        } else {
            Some(self.lock())
        };
        match self.load_chunk(digest) {
            Ok(_) => Ok(BadRename::Intact),
            Err(ChunkStoreError::Missing { .. }) => Ok(BadRename::Vanished),
            Err(ChunkStoreError::Corrupt { .. }) => Ok(match self.rename_to_bad(digest)? {
                Some(path) => BadRename::Renamed(path),
                None => BadRename::Vanished,
            }),
            Err(err) => Err(err),
        }
    }

    fn rename_corrupt_chunk_locked(
        &self,
        guard: &ChunkStoreGuard<'_, W>,
        digest: &Digest,
    ) -> Result<Option<PathBuf>, ChunkStoreError> {
        self.check_guard(guard);
        self.rename_to_bad(digest)
    }

    /// The body of [`ChunkStore::rename_corrupt_chunk_locked`]; callers hold the mutex.
    fn rename_to_bad(&self, digest: &Digest) -> Result<Option<PathBuf>, ChunkStoreError> {
        let path = self.chunk_path(digest);
        let mut target = self.bad_chunk_path(digest, BAD_COPIES_MAX - 1);
        for n in 0..BAD_COPIES_MAX {
            let candidate = self.bad_chunk_path(digest, n);
            let taken = self
                .world
                .try_metadata(&candidate)
                .map_err(ChunkStoreError::io("stat", &candidate))?;
            if taken.is_none() {
                target = candidate;
                break;
            }
        }
        match self.world.rename(&path, &target) {
            Ok(()) => Ok(Some(target)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(ChunkStoreError::io("rename", &path)(err)),
        }
    }

    /// `lstat` of a chunk file; `None` if it does not exist.
    pub fn chunk_metadata(&self, digest: &Digest) -> Result<Option<Metadata>, ChunkStoreError> {
        let path = self.chunk_path(digest);
        self.world
            .try_metadata(&path)
            .map_err(ChunkStoreError::io("stat", &path))
    }

    /// Reads and validates a chunk (no lock: chunk files are replaced atomically).
    pub fn load_chunk(&self, digest: &Digest) -> Result<Chunk, ChunkStoreError> {
        let path = self.chunk_path(digest);
        let blob = match self.world.read_file(&path) {
            Ok(blob) => blob,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(ChunkStoreError::Missing { digest: *digest });
            }
            Err(err) => return Err(ChunkStoreError::io("read", &path)(err)),
        };
        Chunk::from_blob(*digest, blob).map_err(|problem| ChunkStoreError::Corrupt {
            digest: *digest,
            problem,
        })
    }

    /// Phase 2 of GC: removes every chunk and `.bad` file whose atime is older than
    /// `min_atime`. Kept files with `atime < oldest_writer` count as pending.
    ///
    /// Each file is handled under the mutex: stat (a vanished file is skipped) → decide →
    /// unlink. An unlink error aborts the sweep. Temporary chunk files (`<digest>.tmp_<id>`,
    /// left behind by a crash or a failed insert) are removed once their modification time is
    /// older than `min_atime` (a live insert renames its temporary file under the mutex within
    /// one insert, so an old one belongs to nobody); they are not counted. Every other name is
    /// left alone.
    pub fn sweep_unused_chunks(
        &self,
        min_atime: i64,
        oldest_writer: i64,
    ) -> Result<SweepStats, ChunkStoreError> {
        let mut stats = SweepStats::default();
        for index in 0..self.config.fanout.dir_count() {
            let (dir, entries) = self.read_prefix_dir(index)?;
            for entry in entries {
                let path = dir.join(&entry.name);
                let Some(name) = entry.name_str().and_then(ChunkName::parse) else {
                    let keep_temps =
                        crate::reverted!(self.config.regressions, SweepKeepsChunkTemps);
                    if !keep_temps && entry.name_str().is_some_and(is_chunk_temp_name) {
                        let guard = self.lock();
                        self.sweep_temp(&guard, &path, min_atime)?;
                    }
                    continue;
                };
                let guard = self.lock();
                self.sweep_one(&guard, &path, name, min_atime, oldest_writer, &mut stats)?;
            }
        }
        Ok(stats)
    }

    /// Removes a stale temporary chunk file (see [`ChunkStore::sweep_unused_chunks`]).
    fn sweep_temp(
        &self,
        guard: &ChunkStoreGuard<'_, W>,
        path: &Path,
        min_atime: i64,
    ) -> Result<(), ChunkStoreError> {
        self.check_guard(guard);
        let Some(metadata) = self
            .world
            .try_metadata(path)
            .map_err(ChunkStoreError::io("stat", path))?
        else {
            return Ok(());
        };
        if metadata.kind == FileKind::File && metadata.mtime < min_atime {
            match self.world.remove_file(path) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => {
                    return Err(ChunkStoreError::io("unlink", path)(err));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn sweep_one(
        &self,
        guard: &ChunkStoreGuard<'_, W>,
        path: &Path,
        name: ChunkName,
        min_atime: i64,
        oldest_writer: i64,
        stats: &mut SweepStats,
    ) -> Result<(), ChunkStoreError> {
        self.check_guard(guard);
        let Some(metadata) = self
            .world
            .try_metadata(path)
            .map_err(ChunkStoreError::io("stat", path))?
        else {
            return Ok(());
        };
        if metadata.kind != FileKind::File {
            return Ok(());
        }
        let bad = matches!(name, ChunkName::Bad(..));
        if metadata.atime < min_atime {
            self.world
                .remove_file(path)
                .map_err(ChunkStoreError::io("unlink", path))?;
            if bad {
                stats.removed_bad += 1;
            } else {
                stats.removed_chunks += 1;
            }
            stats.removed_bytes += metadata.len;
        } else if bad {
            stats.still_bad += 1;
        } else if metadata.atime < oldest_writer {
            stats.pending_chunks += 1;
            stats.pending_bytes += metadata.len;
        } else {
            stats.disk_chunks += 1;
            stats.disk_bytes += metadata.len;
        }
        Ok(())
    }

    /// The `index`-th prefix directory and its entries; a missing directory lists as empty.
    fn read_prefix_dir(&self, index: u32) -> Result<(PathBuf, Vec<DirEntry>), ChunkStoreError> {
        let dir = self.chunk_dir.join(self.config.fanout.dir_name(index));
        match self.world.read_dir(&dir) {
            Ok(entries) => Ok((dir, entries)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok((dir, Vec::new())),
            Err(err) => Err(ChunkStoreError::io("readdir", &dir)(err)),
        }
    }

    /// With [`SyncLevel::Filesystem`]: one `syncfs`, making every insert so far durable.
    pub fn ensure_sync_level(&self) -> Result<(), ChunkStoreError> {
        if self.config.sync_level == SyncLevel::Filesystem {
            self.world
                .syncfs(&self.base)
                .map_err(ChunkStoreError::io("syncfs", &self.base))?;
        }
        Ok(())
    }

    /// Every chunk and `.bad` name in the store, in prefix order and (within one prefix
    /// directory) in the world's listing order.
    pub fn list_chunk_names(&self) -> Result<Vec<ChunkName>, ChunkStoreError> {
        let mut names = Vec::new();
        for index in 0..self.config.fanout.dir_count() {
            let (_, entries) = self.read_prefix_dir(index)?;
            names.extend(
                entries
                    .iter()
                    .filter_map(|entry| entry.name_str().and_then(ChunkName::parse)),
            );
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_names() {
        let digest = Digest::of(b"x");
        assert_eq!(
            ChunkName::parse(&digest.to_hex()),
            Some(ChunkName::Chunk(digest))
        );
        assert_eq!(
            ChunkName::parse(&format!("{digest}.3.bad")),
            Some(ChunkName::Bad(digest, 3))
        );
        assert_eq!(
            ChunkName::parse(&format!("{digest}.tmp_0000000000000001")),
            None
        );
        assert_eq!(ChunkName::parse(&format!("{digest}.10.bad")), None);
        assert_eq!(ChunkName::parse("short"), None);
        assert_eq!(ChunkName::parse(&"é".repeat(40)), None);
    }

    #[test]
    fn fanout_names() {
        assert_eq!(PrefixFanout::DEFAULT.dir_count(), 65_536);
        assert_eq!(PrefixFanout::DEFAULT.dir_name(0xabc), "0abc");
        assert_eq!(PrefixFanout::SMALL.dir_count(), 16);
        assert_eq!(PrefixFanout::SMALL.dir_name(15), "f");
        assert_eq!(PrefixFanout::new(0), None);
        assert_eq!(PrefixFanout::new(5), None);
        let digest = Digest::of(b"abc");
        assert_eq!(PrefixFanout::DEFAULT.prefix_of(&digest), "ba78");
    }
}
