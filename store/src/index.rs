//! Index files: the list of chunks that makes up one archive of a snapshot.
//!
//! Two formats exist, as in PBS, each a 4096-byte header followed by a body of fixed-size
//! entries (byte maps in `docs/format.md`):
//!
//! * **Fixed index** (`.fidx`, [`FixedIndex`]): an image cut into chunks of one power-of-two
//!   size; the body is one 32-byte digest per chunk, `ceil(size / chunk_size)` of them.
//! * **Dynamic index** (`.didx`, [`DynamicIndex`]): a stream cut at content-defined points;
//!   the body is one 40-byte entry per chunk, `end_offset u64 LE || digest`, where
//!   `end_offset` is the cumulative end of the chunk in the stream.
//!
//! The header carries a checksum of the body (`index_csum`, SHA-256 of the body bytes: the
//! digests, for a dynamic index each preceded by its end offset), so a reader detects a damaged
//! or truncated body. The manifest records each index as `(index_bytes, index_csum)`
//! ([`FixedIndex::compute_csum`]).
//!
//! # Design
//!
//! * **Parsing is pure.** [`FixedIndex::parse`] / [`DynamicIndex::parse`] take bytes and check
//!   everything: length, magic, chunk size, body length, end offsets, checksum. Any failure is
//!   a typed [`IndexError`]; no input makes them panic. `open` reads the file through the
//!   [`World`] and parses it.
//! * **End offsets strictly increase.** Every chunk of a dynamic index holds at least one byte,
//!   so the first end offset is positive and each is greater than the one before. This rules
//!   out empty chunks (which no chunker produces) and makes offset → chunk lookups unambiguous.
//! * **Fixed chunk sizes** are powers of two, at most [`FIXED_CHUNK_SIZE_MAX`] (the largest
//!   chunk the chunk store accepts): an index pointing at bigger chunks could never be read.
//! * **Reserved header bytes** are written as zeros and ignored when reading.
//! * **Writers keep the entries in memory** (32 or 40 bytes per chunk: 8 MiB for a 1 TiB image
//!   of 4 MiB chunks) and write header and body with one write at
//!   [`close`](FixedIndexWriter::close).
//!
//! # Protocol: atomic publication
//!
//! A writer creates `<stem>.tmp_fidx` / `<stem>.tmp_didx` (create or truncate) in the snapshot
//! directory when it is created, so an in-progress index has a name that no listing, GC or
//! verify accepts ([`ArchiveKind::from_name`] rejects it). `close` writes the file, fsyncs it if
//! the sync level is [`SyncLevel::File`], renames it to the final name and then fsyncs the
//! directory (again only with `File`; with [`SyncLevel::Filesystem`] the `syncfs` at the end of
//! the backup makes it durable, with [`SyncLevel::None`], the default, nothing does). Readers
//! therefore see either no index or a complete one. Dropping a writer that was not closed, or
//! whose `close` failed before the rename, removes the temporary file (best effort). Two
//! writers of the same archive name in the same directory share the temporary name; as in PBS,
//! that is the caller's job to prevent (one backup writes one snapshot directory).

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::chunk_store::{CHUNK_LEN_MAX, SyncLevel};
use crate::digest::Digest;
use crate::publish::{Durability, IoError, PublishError, rename_into_place};
use crate::world::{OpenOptions, World, WorldFile};

/// Length of the header of both index formats.
pub const INDEX_HEADER_LEN: usize = 4096;

/// Magic of a fixed index: the first 8 bytes of SHA-256("chunk store fixed index v1").
/// Do not modify: it is on disk.
pub const FIXED_INDEX_MAGIC: [u8; 8] = [78, 200, 218, 113, 233, 252, 146, 180];

/// Magic of a dynamic index: the first 8 bytes of SHA-256("chunk store dynamic index v1").
/// Do not modify: it is on disk.
pub const DYNAMIC_INDEX_MAGIC: [u8; 8] = [56, 14, 23, 127, 112, 254, 123, 150];

/// Length of one fixed-index entry (a digest).
pub const FIXED_ENTRY_LEN: usize = 32;

/// Length of one dynamic-index entry (end offset and digest).
pub const DYNAMIC_ENTRY_LEN: usize = 40;

/// Largest chunk size of a fixed index (the chunk store's largest chunk, 16 MiB).
pub const FIXED_CHUNK_SIZE_MAX: u64 = CHUNK_LEN_MAX as u64;

const MAGIC_RANGE: Range<usize> = 0..8;
const UUID_RANGE: Range<usize> = 8..24;
const CTIME_RANGE: Range<usize> = 24..32;
const CSUM_RANGE: Range<usize> = 32..64;
const FIXED_SIZE_RANGE: Range<usize> = 64..72;
const FIXED_CHUNK_SIZE_RANGE: Range<usize> = 72..80;

const _: () = assert!(FIXED_CHUNK_SIZE_RANGE.end <= INDEX_HEADER_LEN);
const _: () = assert!(FIXED_CHUNK_SIZE_MAX.is_power_of_two());

/// Why an index file could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The world failed an operation.
    #[error(transparent)]
    Io(#[from] IoError),
    /// Shorter than the 4096-byte header.
    #[error("index file of {len} bytes is shorter than its 4096-byte header")]
    TooShort {
        /// Length found.
        len: usize,
    },
    /// The magic is not the one of the expected format.
    #[error("unknown index magic {magic:?}")]
    BadMagic {
        /// The magic found.
        magic: [u8; 8],
    },
    /// A fixed index's chunk size is zero, not a power of two, or above
    /// [`FIXED_CHUNK_SIZE_MAX`].
    #[error("invalid fixed-index chunk size {chunk_size}")]
    BadChunkSize {
        /// The chunk size found.
        chunk_size: u64,
    },
    /// A fixed index's body is not one digest per chunk of its size.
    #[error("fixed-index body of {body_len} bytes, expected {expected} (32 per chunk)")]
    BodyLength {
        /// Body length found.
        body_len: u64,
        /// `32 * ceil(size / chunk_size)` (saturated at `u64::MAX`).
        expected: u64,
    },
    /// A dynamic index's body is not a whole number of 40-byte entries.
    #[error("dynamic-index body of {body_len} bytes is not a multiple of 40")]
    BodyNotWholeEntries {
        /// Body length found.
        body_len: u64,
    },
    /// An end offset of a dynamic index is not greater than the one before (or the first is 0).
    #[error("end offset {end} of chunk {index} does not exceed the previous end {previous}")]
    OffsetsNotMonotone {
        /// Position of the offending entry.
        index: usize,
        /// End offset of the entry before (0 for the first entry).
        previous: u64,
        /// The offending end offset.
        end: u64,
    },
    /// The body does not match the checksum in the header.
    #[error("index checksum mismatch: header says {stored}, body has {computed}")]
    ChecksumMismatch {
        /// Checksum stored in the header.
        stored: Digest,
        /// Checksum of the body read.
        computed: Digest,
    },
    /// The name is not an archive name of the expected kind (`<stem>.fidx` or `<stem>.didx`).
    #[error("{name:?} is not the name of an archive of kind {expected}")]
    BadArchiveName {
        /// The name given.
        name: String,
        /// The kind expected (`"fixed index"`, `"dynamic index"` or `"index"`).
        expected: &'static str,
    },
    /// A fixed-index writer got a chunk index beyond the image size.
    #[error("chunk {index} is beyond the {count} chunks of this image")]
    ChunkIndexOutOfRange {
        /// The chunk index given.
        index: u64,
        /// Number of chunks of the image.
        count: u64,
    },
    /// A fixed-index writer was closed with a chunk that never got a digest.
    #[error("chunk {index} of the fixed index has no digest")]
    MissingDigest {
        /// The first chunk without a digest.
        index: u64,
    },
}

impl IndexError {
    fn io<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> IndexError + 'p {
        move |source| IndexError::Io(IoError::new(op, path, source))
    }

    /// Did the world report the file (or its directory) as missing? GC treats an index removed
    /// by a concurrent forget as gone, not as an error.
    pub fn is_not_found(&self) -> bool {
        matches!(self, IndexError::Io(err) if err.kind() == io::ErrorKind::NotFound)
    }
}

/// What a snapshot file is, judged by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArchiveKind {
    /// `<stem>.fidx`: a fixed index.
    FixedIndex,
    /// `<stem>.didx`: a dynamic index.
    DynamicIndex,
    /// `<stem>.blob`: a blob (the manifest `index.json.blob` is one).
    Blob,
}

impl ArchiveKind {
    /// Classifies a file name: `*.fidx`, `*.didx` or `*.blob` with a non-empty stem and no `/`
    /// or NUL. Everything else is `None`, notably the temporary names `*.tmp_fidx`,
    /// `*.tmp_didx` and `*.tmp_<id>`, which must stay invisible to listings, GC and verify.
    pub fn from_name(name: &str) -> Option<ArchiveKind> {
        if name.contains(['/', '\0']) {
            return None;
        }
        let (stem, extension) = name.rsplit_once('.')?;
        if stem.is_empty() {
            return None;
        }
        match extension {
            "fidx" => Some(ArchiveKind::FixedIndex),
            "didx" => Some(ArchiveKind::DynamicIndex),
            "blob" => Some(ArchiveKind::Blob),
            _ => None,
        }
    }

    /// The file name extension, without the dot.
    pub fn extension(&self) -> &'static str {
        match self {
            ArchiveKind::FixedIndex => "fidx",
            ArchiveKind::DynamicIndex => "didx",
            ArchiveKind::Blob => "blob",
        }
    }

    /// Is this an index (fixed or dynamic), i.e. does it reference chunks?
    pub fn is_index(&self) -> bool {
        matches!(self, ArchiveKind::FixedIndex | ArchiveKind::DynamicIndex)
    }
}

/// A parsed, validated fixed index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedIndex {
    uuid: [u8; 16],
    ctime: i64,
    csum: Digest,
    size: u64,
    chunk_size: u64,
    digests: Vec<Digest>,
}

impl FixedIndex {
    /// An index of an image of `size` bytes cut into chunks of `chunk_size` bytes (a power of
    /// two up to [`FIXED_CHUNK_SIZE_MAX`]); `digests` must hold exactly one digest per chunk.
    pub fn new(
        uuid: [u8; 16],
        ctime: i64,
        size: u64,
        chunk_size: u64,
        digests: Vec<Digest>,
    ) -> Result<FixedIndex, IndexError> {
        let count = fixed_chunk_count(size, chunk_size)?;
        if digests.len() as u64 != count {
            let body_len = (digests.len() as u64).saturating_mul(FIXED_ENTRY_LEN as u64);
            let expected = count.saturating_mul(FIXED_ENTRY_LEN as u64);
            return Err(IndexError::BodyLength { body_len, expected });
        }
        let csum = fixed_csum(&digests);
        Ok(FixedIndex {
            uuid,
            ctime,
            csum,
            size,
            chunk_size,
            digests,
        })
    }

    /// Parses and validates the bytes of a `.fidx` file.
    pub fn parse(bytes: &[u8]) -> Result<FixedIndex, IndexError> {
        let header = Header::parse(bytes, FIXED_INDEX_MAGIC)?;
        let size = read_u64(bytes, FIXED_SIZE_RANGE);
        let chunk_size = read_u64(bytes, FIXED_CHUNK_SIZE_RANGE);
        let count = fixed_chunk_count(size, chunk_size)?;
        let body = &bytes[INDEX_HEADER_LEN..];
        let expected = count.saturating_mul(FIXED_ENTRY_LEN as u64);
        if body.len() as u64 != expected {
            return Err(IndexError::BodyLength {
                body_len: body.len() as u64,
                expected,
            });
        }
        let digests: Vec<Digest> = body
            .chunks_exact(FIXED_ENTRY_LEN)
            .map(read_digest)
            .collect();
        let computed = fixed_csum(&digests);
        if computed != header.csum {
            return Err(IndexError::ChecksumMismatch {
                stored: header.csum,
                computed,
            });
        }
        let Header { uuid, ctime, csum } = header;
        Ok(FixedIndex {
            uuid,
            ctime,
            csum,
            size,
            chunk_size,
            digests,
        })
    }

    /// Reads and parses the `.fidx` file at `path`.
    pub fn open<W: World>(world: &W, path: &Path) -> Result<FixedIndex, IndexError> {
        FixedIndex::parse(
            &world
                .read_file(path)
                .map_err(IndexError::io("read", path))?,
        )
    }

    /// The file's bytes: header and body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Header::encode(FIXED_INDEX_MAGIC, self.uuid, self.ctime, self.csum);
        bytes[FIXED_SIZE_RANGE].copy_from_slice(&self.size.to_le_bytes());
        bytes[FIXED_CHUNK_SIZE_RANGE].copy_from_slice(&self.chunk_size.to_le_bytes());
        bytes.reserve(self.digests.len() * FIXED_ENTRY_LEN);
        for digest in &self.digests {
            bytes.extend_from_slice(digest.as_bytes());
        }
        bytes
    }

    /// The 16-byte id of this index.
    pub fn uuid(&self) -> &[u8; 16] {
        &self.uuid
    }

    /// Creation time, seconds since the Unix epoch.
    pub fn ctime(&self) -> i64 {
        self.ctime
    }

    /// SHA-256 of the digests, in order.
    pub fn csum(&self) -> &Digest {
        &self.csum
    }

    /// Size of the image in bytes.
    pub fn index_bytes(&self) -> u64 {
        self.size
    }

    /// Size of every chunk but possibly the last, which may be shorter.
    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> usize {
        self.digests.len()
    }

    /// The chunk digests, in image order.
    pub fn digests(&self) -> &[Digest] {
        &self.digests
    }

    /// The byte range of chunk `index` in the image, if it exists.
    pub fn chunk_range(&self, index: usize) -> Option<Range<u64>> {
        if index >= self.digests.len() {
            return None;
        }
        let start = (index as u64).checked_mul(self.chunk_size)?;
        Some(start..self.size.min(start.saturating_add(self.chunk_size)))
    }

    /// `(index_csum, index_bytes)`: what the manifest records for this index.
    pub fn compute_csum(&self) -> (Digest, u64) {
        (self.csum, self.size)
    }
}

/// A parsed, validated dynamic index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicIndex {
    uuid: [u8; 16],
    ctime: i64,
    csum: Digest,
    ends: Vec<u64>,
    digests: Vec<Digest>,
}

impl DynamicIndex {
    /// An index of the chunks `(end_offset, digest)`, whose end offsets must strictly increase
    /// from a positive first one.
    pub fn new(
        uuid: [u8; 16],
        ctime: i64,
        entries: &[(u64, Digest)],
    ) -> Result<DynamicIndex, IndexError> {
        let ends: Vec<u64> = entries.iter().map(|(end, _)| *end).collect();
        check_increasing(&ends)?;
        let digests: Vec<Digest> = entries.iter().map(|(_, digest)| *digest).collect();
        let csum = dynamic_csum(&ends, &digests);
        Ok(DynamicIndex {
            uuid,
            ctime,
            csum,
            ends,
            digests,
        })
    }

    /// Parses and validates the bytes of a `.didx` file.
    pub fn parse(bytes: &[u8]) -> Result<DynamicIndex, IndexError> {
        let header = Header::parse(bytes, DYNAMIC_INDEX_MAGIC)?;
        let body = &bytes[INDEX_HEADER_LEN..];
        if !body.len().is_multiple_of(DYNAMIC_ENTRY_LEN) {
            return Err(IndexError::BodyNotWholeEntries {
                body_len: body.len() as u64,
            });
        }
        let entries = body.chunks_exact(DYNAMIC_ENTRY_LEN);
        let ends: Vec<u64> = entries.clone().map(|entry| read_u64(entry, 0..8)).collect();
        check_increasing(&ends)?;
        let digests: Vec<Digest> = entries.map(|entry| read_digest(&entry[8..])).collect();
        let computed = dynamic_csum(&ends, &digests);
        if computed != header.csum {
            return Err(IndexError::ChecksumMismatch {
                stored: header.csum,
                computed,
            });
        }
        let Header { uuid, ctime, csum } = header;
        Ok(DynamicIndex {
            uuid,
            ctime,
            csum,
            ends,
            digests,
        })
    }

    /// Reads and parses the `.didx` file at `path`.
    pub fn open<W: World>(world: &W, path: &Path) -> Result<DynamicIndex, IndexError> {
        DynamicIndex::parse(
            &world
                .read_file(path)
                .map_err(IndexError::io("read", path))?,
        )
    }

    /// The file's bytes: header and body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Header::encode(DYNAMIC_INDEX_MAGIC, self.uuid, self.ctime, self.csum);
        bytes.reserve(self.digests.len() * DYNAMIC_ENTRY_LEN);
        for (end, digest) in self.ends.iter().zip(&self.digests) {
            bytes.extend_from_slice(&end.to_le_bytes());
            bytes.extend_from_slice(digest.as_bytes());
        }
        bytes
    }

    /// The 16-byte id of this index.
    pub fn uuid(&self) -> &[u8; 16] {
        &self.uuid
    }

    /// Creation time, seconds since the Unix epoch.
    pub fn ctime(&self) -> i64 {
        self.ctime
    }

    /// SHA-256 of the entries (`end_le || digest`), in order.
    pub fn csum(&self) -> &Digest {
        &self.csum
    }

    /// Size of the stream in bytes: the end offset of the last chunk (0 if there is none).
    pub fn index_bytes(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> usize {
        self.digests.len()
    }

    /// The chunk digests, in stream order.
    pub fn digests(&self) -> &[Digest] {
        &self.digests
    }

    /// The cumulative end offsets, one per chunk.
    pub fn end_offsets(&self) -> &[u64] {
        &self.ends
    }

    /// The byte range of chunk `index` in the stream, if it exists.
    pub fn chunk_range(&self, index: usize) -> Option<Range<u64>> {
        let end = *self.ends.get(index)?;
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        Some(start..end)
    }

    /// The chunk holding stream byte `offset`, if the stream is that long.
    pub fn chunk_from_offset(&self, offset: u64) -> Option<usize> {
        let index = self.ends.partition_point(|&end| end <= offset);
        (index < self.ends.len()).then_some(index)
    }

    /// `(index_csum, index_bytes)`: what the manifest records for this index.
    pub fn compute_csum(&self) -> (Digest, u64) {
        (self.csum, self.index_bytes())
    }
}

/// Either index format, for code that only needs the chunk list (GC mark, verify).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexFile {
    /// A `.fidx`.
    Fixed(FixedIndex),
    /// A `.didx`.
    Dynamic(DynamicIndex),
}

impl IndexFile {
    /// Parses either format, chosen by the magic.
    pub fn parse(bytes: &[u8]) -> Result<IndexFile, IndexError> {
        if bytes.len() < INDEX_HEADER_LEN {
            return Err(IndexError::TooShort { len: bytes.len() });
        }
        match read_magic(bytes) {
            FIXED_INDEX_MAGIC => FixedIndex::parse(bytes).map(IndexFile::Fixed),
            DYNAMIC_INDEX_MAGIC => DynamicIndex::parse(bytes).map(IndexFile::Dynamic),
            magic => Err(IndexError::BadMagic { magic }),
        }
    }

    /// Reads the index at `path`, whose file name (`*.fidx` or `*.didx`) says which format it
    /// must have; a file of the other format is [`IndexError::BadMagic`].
    pub fn open<W: World>(world: &W, path: &Path) -> Result<IndexFile, IndexError> {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("");
        match ArchiveKind::from_name(name) {
            Some(ArchiveKind::FixedIndex) => FixedIndex::open(world, path).map(IndexFile::Fixed),
            Some(ArchiveKind::DynamicIndex) => {
                DynamicIndex::open(world, path).map(IndexFile::Dynamic)
            }
            _ => Err(IndexError::BadArchiveName {
                name: name.to_owned(),
                expected: "index",
            }),
        }
    }

    /// Which format this is.
    pub fn kind(&self) -> ArchiveKind {
        match self {
            IndexFile::Fixed(_) => ArchiveKind::FixedIndex,
            IndexFile::Dynamic(_) => ArchiveKind::DynamicIndex,
        }
    }

    /// The chunk digests, in data order (duplicates included).
    pub fn digests(&self) -> &[Digest] {
        match self {
            IndexFile::Fixed(index) => index.digests(),
            IndexFile::Dynamic(index) => index.digests(),
        }
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> usize {
        self.digests().len()
    }

    /// The data bytes of chunk `index` (`None` past the last chunk).
    pub fn chunk_range(&self, index: usize) -> Option<Range<u64>> {
        match self {
            IndexFile::Fixed(file) => file.chunk_range(index),
            IndexFile::Dynamic(file) => file.chunk_range(index),
        }
    }

    /// Size of the indexed data in bytes.
    pub fn index_bytes(&self) -> u64 {
        match self {
            IndexFile::Fixed(index) => index.index_bytes(),
            IndexFile::Dynamic(index) => index.index_bytes(),
        }
    }

    /// The body checksum stored in (and verified against) the header.
    pub fn csum(&self) -> &Digest {
        match self {
            IndexFile::Fixed(index) => index.csum(),
            IndexFile::Dynamic(index) => index.csum(),
        }
    }

    /// Creation time, seconds since the Unix epoch.
    pub fn ctime(&self) -> i64 {
        match self {
            IndexFile::Fixed(index) => index.ctime(),
            IndexFile::Dynamic(index) => index.ctime(),
        }
    }

    /// The 16-byte id of this index.
    pub fn uuid(&self) -> &[u8; 16] {
        match self {
            IndexFile::Fixed(index) => index.uuid(),
            IndexFile::Dynamic(index) => index.uuid(),
        }
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            IndexFile::Fixed(index) => index.to_bytes(),
            IndexFile::Dynamic(index) => index.to_bytes(),
        }
    }

    /// `(index_csum, index_bytes)`: what the manifest records for this index.
    pub fn compute_csum(&self) -> (Digest, u64) {
        (*self.csum(), self.index_bytes())
    }
}

/// What a writer's successful `close` published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedIndex {
    /// The final path of the index.
    pub path: PathBuf,
    /// The body checksum (`index_csum`), as the manifest records it.
    pub csum: Digest,
    /// Size of the indexed data in bytes, as the manifest records it.
    pub index_bytes: u64,
    /// Number of chunks.
    pub chunk_count: usize,
}

/// Writes a `.fidx`: digests are set per chunk index in any order, and `close` publishes the
/// file atomically (see the module documentation).
pub struct FixedIndexWriter<W: World> {
    temp: TempIndexFile<W>,
    size: u64,
    chunk_size: u64,
    count: u64,
    digests: Vec<Option<Digest>>,
}

impl<W: World> FixedIndexWriter<W> {
    /// Starts `<dir>/<name>` (`name` = `<stem>.fidx`) for an image of `size` bytes in chunks
    /// of `chunk_size` bytes: creates (or truncates) `<dir>/<stem>.tmp_fidx`. The creation time
    /// is the world's `now`; the uuid is derived from a [`World::unique_id`], the time and the
    /// path. Sync level [`SyncLevel::None`].
    pub fn create(
        world: W,
        dir: &Path,
        name: &str,
        size: u64,
        chunk_size: u64,
    ) -> Result<FixedIndexWriter<W>, IndexError> {
        let count = fixed_chunk_count(size, chunk_size)?;
        let temp = TempIndexFile::create(world, dir, name, ArchiveKind::FixedIndex)?;
        Ok(FixedIndexWriter {
            temp,
            size,
            chunk_size,
            count,
            digests: Vec::new(),
        })
    }

    /// The same writer with another sync level (see the module documentation).
    pub fn with_sync_level(mut self, sync_level: SyncLevel) -> FixedIndexWriter<W> {
        self.temp.sync_level = sync_level;
        self
    }

    /// The same writer with the index id set by the caller.
    pub fn with_uuid(mut self, uuid: [u8; 16]) -> FixedIndexWriter<W> {
        self.temp.uuid = uuid;
        self
    }

    /// Path of the temporary file.
    pub fn temp_path(&self) -> &Path {
        &self.temp.temp_path
    }

    /// Number of chunks of the image.
    pub fn chunk_count(&self) -> u64 {
        self.count
    }

    /// Sets the digest of chunk `index` (replacing an earlier one).
    pub fn add_digest(&mut self, index: u64, digest: Digest) -> Result<(), IndexError> {
        if index >= self.count {
            return Err(IndexError::ChunkIndexOutOfRange {
                index,
                count: self.count,
            });
        }
        let slot = usize::try_from(index).map_err(|_| IndexError::ChunkIndexOutOfRange {
            index,
            count: self.count,
        })?;
        if slot >= self.digests.len() {
            self.digests.resize(slot + 1, None);
        }
        self.digests[slot] = Some(digest);
        Ok(())
    }

    /// Writes header and body and renames the file to its final name. Fails with
    /// [`IndexError::MissingDigest`] if a chunk has no digest (the temporary file is then
    /// removed when the writer is dropped, which `close` does).
    pub fn close(mut self) -> Result<ClosedIndex, IndexError> {
        let mut digests = Vec::with_capacity(self.digests.len());
        for index in 0..self.count {
            let slot = usize::try_from(index)
                .ok()
                .and_then(|slot| self.digests.get(slot));
            match slot {
                Some(Some(digest)) => digests.push(*digest),
                _ => return Err(IndexError::MissingDigest { index }),
            }
        }
        let index = FixedIndex::new(
            self.temp.uuid,
            self.temp.ctime,
            self.size,
            self.chunk_size,
            digests,
        )?;
        self.temp.publish(&index.to_bytes())?;
        Ok(ClosedIndex {
            path: self.temp.final_path.clone(),
            csum: index.csum,
            index_bytes: index.size,
            chunk_count: index.digests.len(),
        })
    }
}

/// Writes a `.didx`: chunks are appended in stream order with their cumulative end offsets,
/// and `close` publishes the file atomically (see the module documentation).
pub struct DynamicIndexWriter<W: World> {
    temp: TempIndexFile<W>,
    entries: Vec<(u64, Digest)>,
}

impl<W: World> DynamicIndexWriter<W> {
    /// Starts `<dir>/<name>` (`name` = `<stem>.didx`): creates (or truncates)
    /// `<dir>/<stem>.tmp_didx`. Creation time, uuid and sync level as for
    /// [`FixedIndexWriter::create`].
    pub fn create(world: W, dir: &Path, name: &str) -> Result<DynamicIndexWriter<W>, IndexError> {
        let temp = TempIndexFile::create(world, dir, name, ArchiveKind::DynamicIndex)?;
        Ok(DynamicIndexWriter {
            temp,
            entries: Vec::new(),
        })
    }

    /// The same writer with another sync level (see the module documentation).
    pub fn with_sync_level(mut self, sync_level: SyncLevel) -> DynamicIndexWriter<W> {
        self.temp.sync_level = sync_level;
        self
    }

    /// The same writer with the index id set by the caller.
    pub fn with_uuid(mut self, uuid: [u8; 16]) -> DynamicIndexWriter<W> {
        self.temp.uuid = uuid;
        self
    }

    /// Path of the temporary file.
    pub fn temp_path(&self) -> &Path {
        &self.temp.temp_path
    }

    /// Number of chunks appended so far.
    pub fn chunk_count(&self) -> usize {
        self.entries.len()
    }

    /// Appends the chunk ending at stream offset `end_offset`, which must exceed the previous
    /// chunk's end (and 0): [`IndexError::OffsetsNotMonotone`] otherwise.
    pub fn add_chunk(&mut self, end_offset: u64, digest: Digest) -> Result<(), IndexError> {
        let previous = self.entries.last().map_or(0, |(end, _)| *end);
        if end_offset <= previous {
            let index = self.entries.len();
            return Err(IndexError::OffsetsNotMonotone {
                index,
                previous,
                end: end_offset,
            });
        }
        self.entries.push((end_offset, digest));
        Ok(())
    }

    /// Writes header and body and renames the file to its final name.
    pub fn close(mut self) -> Result<ClosedIndex, IndexError> {
        let index = DynamicIndex::new(self.temp.uuid, self.temp.ctime, &self.entries)?;
        self.temp.publish(&index.to_bytes())?;
        Ok(ClosedIndex {
            path: self.temp.final_path.clone(),
            csum: index.csum,
            index_bytes: index.index_bytes(),
            chunk_count: index.digests.len(),
        })
    }
}

/// The temporary file of an index writer, removed on drop unless published.
struct TempIndexFile<W: World> {
    world: W,
    temp_path: PathBuf,
    final_path: PathBuf,
    file: Option<W::File>,
    sync_level: SyncLevel,
    uuid: [u8; 16],
    ctime: i64,
    published: bool,
}

impl<W: World> TempIndexFile<W> {
    fn create(
        world: W,
        dir: &Path,
        name: &str,
        kind: ArchiveKind,
    ) -> Result<TempIndexFile<W>, IndexError> {
        let expected = match kind {
            ArchiveKind::FixedIndex => "fixed index",
            _ => "dynamic index",
        };
        let bad_name = || IndexError::BadArchiveName {
            name: name.to_owned(),
            expected,
        };
        if ArchiveKind::from_name(name) != Some(kind) {
            return Err(bad_name());
        }
        let stem = name.strip_suffix(kind.extension()).ok_or_else(bad_name)?;
        let temp_path = dir.join(format!("{stem}tmp_{}", kind.extension()));
        let final_path = dir.join(name);
        let ctime = world.now();
        let uuid = derive_uuid(world.unique_id(), ctime, &final_path);
        let file = world
            .open(&temp_path, OpenOptions::create_truncate())
            .map_err(IndexError::io("create", &temp_path))?;
        Ok(TempIndexFile {
            world,
            temp_path,
            final_path,
            file: Some(file),
            sync_level: SyncLevel::None,
            uuid,
            ctime,
            published: false,
        })
    }

    /// Writes `bytes` as the whole file, syncs as configured, and renames it into place.
    fn publish(&mut self, bytes: &[u8]) -> Result<(), IndexError> {
        let temp_path = &self.temp_path;
        let file = self.file.take().ok_or_else(|| {
            IoError::at("write", temp_path)(io::Error::other("index writer already closed"))
        })?;
        file.write_at(0, bytes)
            .map_err(IndexError::io("write", temp_path))?;
        file.set_len(bytes.len() as u64)
            .map_err(IndexError::io("truncate", temp_path))?;
        let durability = Durability::when(self.sync_level == SyncLevel::File);
        let published =
            rename_into_place(&self.world, file, temp_path, &self.final_path, durability);
        // Once renamed, the temporary name is gone: the drop must not remove it.
        self.published = !matches!(published, Err(PublishError::NotPublished(_)));
        Ok(published.map_err(IoError::from)?)
    }
}

impl<W: World> Drop for TempIndexFile<W> {
    fn drop(&mut self) {
        if !self.published {
            drop(self.file.take());
            // Best effort: a leftover temporary index is invisible to listings and GC.
            let _ = self.world.remove_file(&self.temp_path);
        }
    }
}

/// The three header fields both formats share (besides the magic).
struct Header {
    uuid: [u8; 16],
    ctime: i64,
    csum: Digest,
}

impl Header {
    /// Checks length and magic and reads the shared fields.
    fn parse(bytes: &[u8], magic: [u8; 8]) -> Result<Header, IndexError> {
        if bytes.len() < INDEX_HEADER_LEN {
            return Err(IndexError::TooShort { len: bytes.len() });
        }
        let found = read_magic(bytes);
        if found != magic {
            return Err(IndexError::BadMagic { magic: found });
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&bytes[UUID_RANGE]);
        let ctime = i64::from_le_bytes(read_array(bytes, CTIME_RANGE));
        let csum = read_digest(&bytes[CSUM_RANGE]);
        Ok(Header { uuid, ctime, csum })
    }

    /// A zeroed header with the shared fields filled in.
    fn encode(magic: [u8; 8], uuid: [u8; 16], ctime: i64, csum: Digest) -> Vec<u8> {
        let mut bytes = vec![0u8; INDEX_HEADER_LEN];
        bytes[MAGIC_RANGE].copy_from_slice(&magic);
        bytes[UUID_RANGE].copy_from_slice(&uuid);
        bytes[CTIME_RANGE].copy_from_slice(&ctime.to_le_bytes());
        bytes[CSUM_RANGE].copy_from_slice(csum.as_bytes());
        bytes
    }
}

/// `ceil(size / chunk_size)`, after checking the chunk size.
fn fixed_chunk_count(size: u64, chunk_size: u64) -> Result<u64, IndexError> {
    if !chunk_size.is_power_of_two() || chunk_size > FIXED_CHUNK_SIZE_MAX {
        return Err(IndexError::BadChunkSize { chunk_size });
    }
    Ok(size.div_ceil(chunk_size))
}

fn check_increasing(ends: &[u64]) -> Result<(), IndexError> {
    let mut previous = 0;
    for (index, &end) in ends.iter().enumerate() {
        if end <= previous {
            return Err(IndexError::OffsetsNotMonotone {
                index,
                previous,
                end,
            });
        }
        previous = end;
    }
    Ok(())
}

fn fixed_csum(digests: &[Digest]) -> Digest {
    let mut hasher = Sha256::new();
    for digest in digests {
        hasher.update(digest.as_bytes());
    }
    Digest(hasher.finalize().into())
}

fn dynamic_csum(ends: &[u64], digests: &[Digest]) -> Digest {
    let mut hasher = Sha256::new();
    for (end, digest) in ends.iter().zip(digests) {
        hasher.update(end.to_le_bytes());
        hasher.update(digest.as_bytes());
    }
    Digest(hasher.finalize().into())
}

/// 16 bytes of SHA-256 over a per-process unique number, the time and the final path: distinct
/// for distinct writers without any OS randomness.
fn derive_uuid(unique_id: u64, ctime: i64, path: &Path) -> [u8; 16] {
    let mut hasher = Sha256::new();
    hasher.update(b"chunk store index uuid v1");
    hasher.update(unique_id.to_le_bytes());
    hasher.update(ctime.to_le_bytes());
    hasher.update(path.as_os_str().as_encoded_bytes());
    let hash: [u8; 32] = hasher.finalize().into();
    read_array(&hash, 0..16)
}

/// The first 8 bytes; the caller has checked that there are at least [`INDEX_HEADER_LEN`].
fn read_magic(bytes: &[u8]) -> [u8; 8] {
    read_array(bytes, MAGIC_RANGE)
}

fn read_u64(bytes: &[u8], range: Range<usize>) -> u64 {
    u64::from_le_bytes(read_array(bytes, range))
}

fn read_digest(bytes: &[u8]) -> Digest {
    Digest(read_array(bytes, 0..32))
}

/// Copies `bytes[range]` into an array. Callers pass in-bounds ranges of length `N` (checked
/// lengths and constant ranges); a short slice would leave the tail zero rather than panic.
fn read_array<const N: usize>(bytes: &[u8], range: Range<usize>) -> [u8; N] {
    let mut array = [0u8; N];
    if let Some(source) = bytes.get(range) {
        let len = source.len().min(N);
        array[..len].copy_from_slice(&source[..len]);
    }
    array
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: [u8; 16] = *b"0123456789abcdef";

    fn digests(count: usize) -> Vec<Digest> {
        (0..count)
            .map(|index| Digest::of(&index.to_le_bytes()))
            .collect()
    }

    fn fixed_sample() -> FixedIndex {
        // 10,000 bytes in 4 KiB chunks: three chunks, the last one partial.
        FixedIndex::new(UUID, 1_700_000_000, 10_000, 4096, digests(3)).expect("valid fixed index")
    }

    fn dynamic_sample() -> DynamicIndex {
        let entries: Vec<(u64, Digest)> = digests(4)
            .into_iter()
            .zip([100, 250, 251, 4000])
            .map(|(d, end)| (end, d))
            .collect();
        DynamicIndex::new(UUID, -5, &entries).expect("valid dynamic index")
    }

    /// Rewrites the stored checksum so that only the check under test can fail.
    fn fix_csum(bytes: &mut [u8], csum: Digest) {
        bytes[CSUM_RANGE].copy_from_slice(csum.as_bytes());
    }

    #[test]
    fn magics_are_derived_as_documented() {
        let fixed = Sha256::digest(b"chunk store fixed index v1");
        assert_eq!(&fixed[..8], &FIXED_INDEX_MAGIC);
        let dynamic = Sha256::digest(b"chunk store dynamic index v1");
        assert_eq!(&dynamic[..8], &DYNAMIC_INDEX_MAGIC);
    }

    #[test]
    fn fixed_round_trip() {
        let index = fixed_sample();
        let bytes = index.to_bytes();
        assert_eq!(bytes.len(), INDEX_HEADER_LEN + 3 * 32);
        assert_eq!(&bytes[0..8], &FIXED_INDEX_MAGIC);
        assert_eq!(&bytes[8..24], &UUID);
        assert_eq!(&bytes[24..32], &1_700_000_000i64.to_le_bytes());
        assert_eq!(&bytes[64..72], &10_000u64.to_le_bytes());
        assert_eq!(&bytes[72..80], &4096u64.to_le_bytes());
        assert!(bytes[80..INDEX_HEADER_LEN].iter().all(|&byte| byte == 0));
        let parsed = FixedIndex::parse(&bytes).expect("parse");
        assert_eq!(parsed, index);
        assert_eq!(parsed.chunk_count(), 3);
        assert_eq!(parsed.index_bytes(), 10_000);
        assert_eq!(parsed.chunk_range(0), Some(0..4096));
        assert_eq!(parsed.chunk_range(2), Some(8192..10_000));
        assert_eq!(parsed.chunk_range(3), None);
        let mut body = Vec::new();
        for digest in parsed.digests() {
            body.extend_from_slice(digest.as_bytes());
        }
        assert_eq!(parsed.compute_csum(), (Digest::of(&body), 10_000));
        assert_eq!(
            IndexFile::parse(&bytes).expect("parse").digests(),
            parsed.digests()
        );
        // An empty image has an empty body.
        let empty = FixedIndex::new(UUID, 0, 0, 1 << 22, Vec::new()).expect("empty");
        assert_eq!(
            FixedIndex::parse(&empty.to_bytes()).expect("parse empty"),
            empty
        );
        assert_eq!(empty.csum(), &Digest::of(b""));
    }

    #[test]
    fn dynamic_round_trip() {
        let index = dynamic_sample();
        let bytes = index.to_bytes();
        assert_eq!(bytes.len(), INDEX_HEADER_LEN + 4 * 40);
        assert_eq!(&bytes[0..8], &DYNAMIC_INDEX_MAGIC);
        assert!(bytes[64..INDEX_HEADER_LEN].iter().all(|&byte| byte == 0));
        assert_eq!(
            &bytes[INDEX_HEADER_LEN..INDEX_HEADER_LEN + 8],
            &100u64.to_le_bytes()
        );
        let parsed = DynamicIndex::parse(&bytes).expect("parse");
        assert_eq!(parsed, index);
        assert_eq!(parsed.ctime(), -5);
        assert_eq!(parsed.index_bytes(), 4000);
        assert_eq!(parsed.end_offsets(), &[100, 250, 251, 4000]);
        assert_eq!(parsed.chunk_range(0), Some(0..100));
        assert_eq!(parsed.chunk_range(2), Some(250..251));
        assert_eq!(parsed.chunk_from_offset(0), Some(0));
        assert_eq!(parsed.chunk_from_offset(99), Some(0));
        assert_eq!(parsed.chunk_from_offset(100), Some(1));
        assert_eq!(parsed.chunk_from_offset(250), Some(2));
        assert_eq!(parsed.chunk_from_offset(3999), Some(3));
        assert_eq!(parsed.chunk_from_offset(4000), None);
        assert_eq!(
            parsed.compute_csum(),
            (Digest::of(&bytes[INDEX_HEADER_LEN..]), 4000)
        );
        let file = IndexFile::parse(&bytes).expect("parse");
        assert_eq!(file.kind(), ArchiveKind::DynamicIndex);
        assert_eq!(file.chunk_count(), 4);
        let empty = DynamicIndex::new(UUID, 0, &[]).expect("empty");
        assert_eq!(empty.index_bytes(), 0);
        assert_eq!(
            DynamicIndex::parse(&empty.to_bytes()).expect("parse empty"),
            empty
        );
    }

    #[test]
    fn truncated_and_foreign_input() {
        let fixed = fixed_sample().to_bytes();
        let dynamic = dynamic_sample().to_bytes();
        for len in [0, 1, 8, 80, INDEX_HEADER_LEN - 1] {
            assert!(
                matches!(FixedIndex::parse(&fixed[..len]), Err(IndexError::TooShort { len: l })
                    if l == len)
            );
            assert!(matches!(
                DynamicIndex::parse(&dynamic[..len]),
                Err(IndexError::TooShort { .. })
            ));
            assert!(matches!(
                IndexFile::parse(&fixed[..len]),
                Err(IndexError::TooShort { .. })
            ));
        }
        assert!(
            matches!(FixedIndex::parse(&dynamic), Err(IndexError::BadMagic { magic })
                if magic == DYNAMIC_INDEX_MAGIC)
        );
        assert!(matches!(
            DynamicIndex::parse(&fixed),
            Err(IndexError::BadMagic { .. })
        ));
        let zeros = vec![0u8; INDEX_HEADER_LEN];
        assert!(
            matches!(IndexFile::parse(&zeros), Err(IndexError::BadMagic { magic })
                if magic == [0; 8])
        );
        // A fixed body cut anywhere: too short for the header's size.
        for cut in [1, 31, 32, 95] {
            let short = &fixed[..fixed.len() - cut];
            assert!(matches!(
                FixedIndex::parse(short),
                Err(IndexError::BodyLength { expected: 96, .. })
            ));
        }
        let mut long = fixed.clone();
        long.extend_from_slice(&[0u8; 32]);
        assert!(matches!(
            FixedIndex::parse(&long),
            Err(IndexError::BodyLength { body_len: 128, .. })
        ));
        // A dynamic body cut inside an entry.
        for cut in [1, 8, 39] {
            let short = &dynamic[..dynamic.len() - cut];
            assert!(matches!(
                DynamicIndex::parse(short),
                Err(IndexError::BodyNotWholeEntries { .. })
            ));
        }
        // Cut at an entry boundary: whole entries, so the checksum catches it.
        let short = &dynamic[..dynamic.len() - 40];
        assert!(matches!(
            DynamicIndex::parse(short),
            Err(IndexError::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn fixed_header_corruption() {
        let good = fixed_sample().to_bytes();
        for chunk_size in [0u64, 3, 4095, 1 << 25, u64::MAX] {
            let mut bytes = good.clone();
            bytes[72..80].copy_from_slice(&chunk_size.to_le_bytes());
            assert!(
                matches!(FixedIndex::parse(&bytes), Err(IndexError::BadChunkSize { chunk_size: c })
                    if c == chunk_size),
                "{chunk_size}"
            );
        }
        // A size that claims more chunks than the body holds, up to overflow territory.
        for size in [10_000 + 4096 * 3, u64::MAX] {
            let mut bytes = good.clone();
            bytes[64..72].copy_from_slice(&size.to_le_bytes());
            assert!(matches!(
                FixedIndex::parse(&bytes),
                Err(IndexError::BodyLength { .. })
            ));
        }
        let mut huge_chunks = good.clone();
        huge_chunks[72..80].copy_from_slice(&(1u64 << 24).to_le_bytes());
        huge_chunks[64..72].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            FixedIndex::parse(&huge_chunks),
            Err(IndexError::BodyLength { expected, .. }) if expected == (1u64 << 40) * 32
        ));
        // Flipped body and header checksum bits.
        let mut body_flip = good.clone();
        body_flip[INDEX_HEADER_LEN + 5] ^= 0x10;
        assert!(matches!(
            FixedIndex::parse(&body_flip),
            Err(IndexError::ChecksumMismatch { .. })
        ));
        let mut csum_flip = good.clone();
        csum_flip[40] ^= 1;
        assert!(matches!(
            FixedIndex::parse(&csum_flip),
            Err(IndexError::ChecksumMismatch { .. })
        ));
        // Reserved bytes are ignored.
        let mut reserved = good.clone();
        reserved[1000] = 0xff;
        assert!(FixedIndex::parse(&reserved).is_ok());
    }

    #[test]
    fn dynamic_offsets_must_increase() {
        let good = dynamic_sample();
        let entries: Vec<(u64, Digest)> = good
            .end_offsets()
            .iter()
            .copied()
            .zip(good.digests().iter().copied())
            .collect();
        let cases: [(&[u64], usize, u64, u64); 4] = [
            (&[0, 10, 20, 30], 0, 0, 0),
            (&[10, 10, 20, 30], 1, 10, 10),
            (&[10, 20, 5, 30], 2, 20, 5),
            (&[10, 20, 30, 30], 3, 30, 30),
        ];
        for (ends, bad_index, bad_previous, bad_end) in cases {
            let changed: Vec<(u64, Digest)> = ends
                .iter()
                .zip(&entries)
                .map(|(end, (_, digest))| (*end, *digest))
                .collect();
            let expect = |result: Result<DynamicIndex, IndexError>| match result {
                Err(IndexError::OffsetsNotMonotone {
                    index,
                    previous,
                    end,
                }) => {
                    assert_eq!((index, previous, end), (bad_index, bad_previous, bad_end));
                }
                other => panic!("{ends:?}: {other:?}"),
            };
            expect(DynamicIndex::new(UUID, 0, &changed));
            // The same entries on disk, with a matching checksum.
            let mut bytes = good.to_bytes();
            for (slot, end) in ends.iter().enumerate() {
                let at = INDEX_HEADER_LEN + slot * DYNAMIC_ENTRY_LEN;
                bytes[at..at + 8].copy_from_slice(&end.to_le_bytes());
            }
            let csum = Digest::of(&bytes[INDEX_HEADER_LEN..]);
            fix_csum(&mut bytes, csum);
            expect(DynamicIndex::parse(&bytes));
        }
        let mut flipped = good.to_bytes();
        flipped[INDEX_HEADER_LEN + 20] ^= 1;
        assert!(matches!(
            DynamicIndex::parse(&flipped),
            Err(IndexError::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn no_panic_on_any_prefix_or_byte_flip() {
        for bytes in [fixed_sample().to_bytes(), dynamic_sample().to_bytes()] {
            for len in 0..=bytes.len() {
                let result = IndexFile::parse(&bytes[..len]);
                assert_eq!(result.is_ok(), len == bytes.len(), "prefix {len}");
            }
            for position in (0..bytes.len()).step_by(7) {
                let mut flipped = bytes.clone();
                flipped[position] ^= 0x80;
                let result = IndexFile::parse(&flipped);
                let reserved =
                    (80..INDEX_HEADER_LEN).contains(&position) || (8..32).contains(&position);
                let dynamic_size_field =
                    flipped[..8] == DYNAMIC_INDEX_MAGIC && (64..80).contains(&position);
                assert_eq!(
                    result.is_ok(),
                    reserved || dynamic_size_field,
                    "flip at {position}"
                );
            }
        }
    }

    #[test]
    fn constructor_checks() {
        assert!(matches!(
            FixedIndex::new(UUID, 0, 10_000, 4096, digests(2)),
            Err(IndexError::BodyLength {
                body_len: 64,
                expected: 96
            })
        ));
        assert!(matches!(
            FixedIndex::new(UUID, 0, 10, 12, digests(1)),
            Err(IndexError::BadChunkSize { chunk_size: 12 })
        ));
        assert!(FixedIndex::new(UUID, 0, 1, FIXED_CHUNK_SIZE_MAX, digests(1)).is_ok());
        assert!(matches!(
            FixedIndex::new(UUID, 0, 1, FIXED_CHUNK_SIZE_MAX * 2, digests(1)),
            Err(IndexError::BadChunkSize { .. })
        ));
    }

    #[test]
    fn archive_names() {
        let cases = [
            ("drive-scsi0.img.fidx", Some(ArchiveKind::FixedIndex)),
            ("root.pxar.didx", Some(ArchiveKind::DynamicIndex)),
            ("index.json.blob", Some(ArchiveKind::Blob)),
            ("qemu-server.conf.blob", Some(ArchiveKind::Blob)),
            ("x.fidx", Some(ArchiveKind::FixedIndex)),
            ("root.pxar.tmp_didx", None),
            ("drive-scsi0.img.tmp_fidx", None),
            ("index.json.blob.tmp_0000000000000001", None),
            (".fidx", None),
            ("fidx", None),
            ("", None),
            (".protected", None),
            ("owner", None),
            ("a/b.fidx", None),
            ("a\0.didx", None),
            ("x.FIDX", None),
            ("x.fidx.bak", None),
        ];
        for (name, kind) in cases {
            assert_eq!(ArchiveKind::from_name(name), kind, "{name:?}");
        }
        assert!(ArchiveKind::FixedIndex.is_index());
        assert!(!ArchiveKind::Blob.is_index());
    }
}
