//! Verify: re-read a snapshot and check every byte it depends on against its manifest.
//!
//! # What is checked
//!
//! For one snapshot ([`Datastore::verify_snapshot`]):
//!
//! * the manifest `index.json.blob` loads and parses (a failure makes the snapshot fail; there
//!   is then nothing to record the result in), and names this snapshot;
//! * every **blob** the manifest lists: its size and the SHA-256 of its raw bytes equal the
//!   manifest's entry, and it decodes (header, CRC);
//! * every **index** the manifest lists: it opens and parses (magic, lengths, its own checksum),
//!   and its `(index_csum, index_bytes)` equal the manifest's entry; then every chunk it
//!   references: the chunk file exists, is a well-formed blob (CRC) and its payload hashes to the
//!   chunk's digest.
//!
//! Chunks are read once per [`VerifyJob`]: a job remembers the digests found good
//! (`verified_chunks`) and bad (`corrupt_chunks`) across all snapshots it verifies, so a chunk
//! shared by many snapshots is hashed once, and a chunk found bad counts as an error for every
//! later snapshot referencing it without being read again. Within one index the chunks are
//! read in digest order, which is the chunk store's directory order.
//!
//! A chunk whose bytes are damaged (bad blob, wrong digest) is renamed to `<digest>.<n>.bad`
//! (under the chunk-store mutex, [`crate::chunk_store::ChunkStore::rename_chunk_if_corrupt`],
//! which checks the file again first: a backup may have replaced it with a good copy). A
//! missing chunk is counted but, having no file, not renamed; a chunk that could not be read
//! for another reason (an I/O error) is counted, neither renamed nor remembered, and read again
//! by the next snapshot that needs it.
//!
//! Finally the result is recorded in the manifest's `unprotected.verify_state` (`ok` or
//! `failed`, plus a task id carrying the verification time, see [`verify_upid`]) through
//! [`Datastore::update_manifest`]. If that fails the snapshot counts as failed and the failure
//! is reported as [`VerifyProblem::StateNotSaved`].
//!
//! # Locks
//!
//! Verify holds the snapshot's **shared** lock for the whole check, taken without waiting:
//! while it is held the snapshot can be neither forgotten nor pruned nor written (I6). If the
//! lock is busy (a running backup writes the snapshot, or a forget destroys it) the snapshot is
//! skipped: contention is not an error. Recording the result then takes the manifest lock
//! (bounded wait), in lock order snapshot → manifest. Verify never takes a group lock, and the
//! chunk-store mutex only per renamed chunk.
//!
//! # Skip rules
//!
//! A snapshot is skipped, with a [`SkipReason`], when
//!
//! * its directory does not exist, before or after taking the lock
//!   ([`SkipReason::Vanished`]; a lock can be taken on a snapshot that was just removed);
//! * its lock is busy ([`SkipReason::LockBusy`]);
//! * [`VerifyOptions::ignore_verified`] is set and the manifest already holds a verify state,
//!   `ok` or `failed`, that is not outdated ([`SkipReason::AlreadyVerified`]). Without
//!   [`VerifyOptions::outdated_after_days`] any state is current; with `Some(n)` a state is
//!   outdated once more than `n` whole days (of 86,400 s) have passed since its verification
//!   time, or when that time cannot be read from its task id. A verify state of the wrong shape
//!   counts as none.
//!
//! # Effects of a `.bad` rename
//!
//! * The chunk is gone from its name, so the next backup that has the data uploads it again and
//!   the chunk store writes a fresh copy.
//! * A snapshot whose verify state is `failed` is not used as the base of the next backup, so
//!   that backup does not reuse the base's chunk list and uploads everything.
//! * GC keeps `.bad` copies alive (it touches them) while an index still references the digest
//!   and the good chunk is missing, and removes them like any chunk once nothing does.

use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;

use crate::backup_info::{BackupDir, BackupGroup};
use crate::blob::{self, BlobError};
use crate::chunk_store::{BadRename, ChunkProblem, ChunkStoreError};
use crate::digest::Digest;
use crate::index::{ArchiveKind, IndexError, IndexFile};
use crate::manifest::{FileInfo, ManifestError, SnapshotVerifyState, VerifyState};
use crate::world::{LockMode, World};

use super::{Datastore, Error};

/// Seconds in one day of [`VerifyOptions::outdated_after_days`].
pub const SECONDS_PER_DAY: i64 = 86_400;

/// Settings of one verify run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Skip snapshots that already carry a verify state (unless it is outdated). Default: true.
    pub ignore_verified: bool,
    /// With [`VerifyOptions::ignore_verified`]: a verify state older than this many whole days
    /// is outdated and the snapshot is verified again. `None`: states never go stale.
    pub outdated_after_days: Option<u32>,
    /// Id of the verify task, recorded (with the verification time) in each verified
    /// snapshot's verify state.
    pub upid: String,
    /// Write nothing: no verify state is saved and damaged chunks are not renamed to `.bad`
    /// (for read-only media and users without write access). Default: false.
    pub read_only: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            ignore_verified: true,
            outdated_after_days: None,
            upid: "verify".to_owned(),
            read_only: false,
        }
    }
}

impl VerifyOptions {
    /// Does a snapshot whose manifest holds `state` need verifying at time `now`? See the
    /// module documentation, "Skip rules".
    pub fn needs_verify(&self, state: Option<&SnapshotVerifyState>, now: i64) -> bool {
        if !self.ignore_verified {
            return true;
        }
        let Some(state) = state else { return true };
        let Some(days) = self.outdated_after_days else {
            return false;
        };
        match verified_at(&state.upid) {
            Some(at) => now.saturating_sub(at) / SECONDS_PER_DAY > i64::from(days),
            None => true,
        }
    }
}

/// The task id a verify records: `<task>@<verified_at>`, the time in decimal seconds since the
/// Unix epoch. [`verified_at`] reads the time back.
pub fn verify_upid(task: &str, verified_at: i64) -> String {
    format!("{task}@{verified_at}")
}

/// When the verify that recorded the task id `upid` ran, if the id says: the decimal number
/// after the last `@` of an id written by [`verify_upid`], or the start-time field (the fifth
/// after `UPID:`, hexadecimal) of a Proxmox task id. `None` for anything else.
pub fn verified_at(upid: &str) -> Option<i64> {
    if let Some((_, time)) = upid.rsplit_once('@') {
        let digits = time.strip_prefix('-').unwrap_or(time);
        if !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()) {
            return time.parse().ok();
        }
    }
    let field = upid.strip_prefix("UPID:")?.split(':').nth(4)?;
    if field.is_empty() || !field.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    i64::from_str_radix(field, 16).ok()
}

/// What one verify task carries from snapshot to snapshot: which chunks it has already found
/// good or bad, and how many it has read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyJob {
    verified_chunks: BTreeSet<Digest>,
    corrupt_chunks: BTreeSet<Digest>,
    chunks_hashed: u64,
}

impl VerifyJob {
    /// A job that knows no chunk yet.
    pub fn new() -> VerifyJob {
        VerifyJob::default()
    }

    /// Chunks found intact so far; not read again by this job.
    pub fn verified_chunks(&self) -> &BTreeSet<Digest> {
        &self.verified_chunks
    }

    /// Chunks found missing or damaged so far; an error for every later snapshot referencing
    /// them, without being read again.
    pub fn corrupt_chunks(&self) -> &BTreeSet<Digest> {
        &self.corrupt_chunks
    }

    /// How many chunk files this job has read and hashed (attempts that found the chunk
    /// missing or damaged included).
    pub fn chunks_hashed(&self) -> u64 {
        self.chunks_hashed
    }
}

/// Why a snapshot was not verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The snapshot directory does not exist (any more).
    Vanished,
    /// Its lock is held exclusively: a backup writes it, or a forget or prune destroys it.
    LockBusy,
    /// It carries a verify state that is not outdated.
    AlreadyVerified(SnapshotVerifyState),
}

/// Result of verifying one snapshot.
#[derive(Debug)]
pub enum VerifyOutcome {
    /// Not verified; nothing was read or written.
    Skipped(SkipReason),
    /// Verified: `ok` exactly when `problems` is empty.
    Verified {
        /// Whether everything was found intact and the result was recorded.
        ok: bool,
        /// What was found wrong, in the order it was found.
        problems: Vec<VerifyProblem>,
    },
}

impl VerifyOutcome {
    /// Verified, and everything was intact.
    pub fn is_ok(&self) -> bool {
        matches!(self, VerifyOutcome::Verified { ok: true, .. })
    }

    /// Verified, and something was wrong.
    pub fn is_failed(&self) -> bool {
        matches!(self, VerifyOutcome::Verified { ok: false, .. })
    }

    /// Why the snapshot was skipped, if it was.
    pub fn skip_reason(&self) -> Option<&SkipReason> {
        match self {
            VerifyOutcome::Skipped(reason) => Some(reason),
            VerifyOutcome::Verified { .. } => None,
        }
    }

    /// The problems found (none if skipped).
    pub fn problems(&self) -> &[VerifyProblem] {
        match self {
            VerifyOutcome::Skipped(_) => &[],
            VerifyOutcome::Verified { problems, .. } => problems,
        }
    }
}

/// One snapshot's entry in the result of [`Datastore::verify_group`] and
/// [`Datastore::verify_all`].
#[derive(Debug)]
pub struct VerifyReport {
    /// The snapshot.
    pub dir: BackupDir,
    /// Its outcome, or the error that stopped its check (the others went on).
    pub result: Result<VerifyOutcome, Error>,
}

/// One thing found wrong with a snapshot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyProblem {
    /// The manifest could not be read or parsed; nothing else was checked.
    #[error("manifest unreadable: {0}")]
    ManifestUnreadable(#[source] ManifestError),
    /// The manifest names another snapshot.
    #[error("manifest belongs to snapshot {found}")]
    ManifestMismatch {
        /// The snapshot the manifest names.
        found: BackupDir,
    },
    /// A manifest entry is neither an index nor a blob.
    #[error("{file:?} is not an archive name")]
    NotAnArchive {
        /// The entry's file name.
        file: String,
    },
    /// A blob file could not be read.
    #[error("blob {file:?} unreadable: {source}")]
    BlobUnreadable {
        /// The blob's file name.
        file: String,
        /// What the world reported.
        #[source]
        source: io::Error,
    },
    /// A blob's size differs from the manifest's.
    #[error("blob {file:?} has {actual} bytes, the manifest says {expected}")]
    BlobSize {
        /// The blob's file name.
        file: String,
        /// Size in the manifest.
        expected: u64,
        /// Size found.
        actual: u64,
    },
    /// A blob's SHA-256 differs from the manifest's.
    #[error("blob {file:?} hashes to {actual}, the manifest says {expected}")]
    BlobChecksum {
        /// The blob's file name.
        file: String,
        /// Checksum in the manifest.
        expected: Digest,
        /// Checksum of the bytes found.
        actual: Digest,
    },
    /// A blob matches the manifest but does not decode.
    #[error("blob {file:?} does not decode: {source}")]
    BlobDecode {
        /// The blob's file name.
        file: String,
        /// Why.
        #[source]
        source: BlobError,
    },
    /// An index file could not be read or parsed; its chunks were not checked.
    #[error("index {file:?} unreadable: {source}")]
    IndexOpen {
        /// The index's file name.
        file: String,
        /// Why.
        #[source]
        source: IndexError,
    },
    /// An index's checksum differs from the manifest's; its chunks were not checked.
    #[error("index {file:?} has checksum {actual}, the manifest says {expected}")]
    IndexChecksum {
        /// The index's file name.
        file: String,
        /// Checksum in the manifest.
        expected: Digest,
        /// Checksum of the index found.
        actual: Digest,
    },
    /// An index's data size differs from the manifest's; its chunks were not checked.
    #[error("index {file:?} covers {actual} bytes, the manifest says {expected}")]
    IndexSize {
        /// The index's file name.
        file: String,
        /// Size in the manifest.
        expected: u64,
        /// Size of the index found.
        actual: u64,
    },
    /// A referenced chunk does not exist.
    #[error("chunk {digest} of {archive:?} is missing")]
    ChunkMissing {
        /// The index referencing it.
        archive: String,
        /// The chunk.
        digest: Digest,
    },
    /// A referenced chunk is not a valid blob (header, CRC, size).
    #[error("chunk {digest} of {archive:?} is corrupt: {problem}")]
    ChunkCorrupt {
        /// The index referencing it.
        archive: String,
        /// The chunk.
        digest: Digest,
        /// What is wrong.
        problem: ChunkProblem,
        /// Where the chunk was moved (`None`: a read-only verify, it was already gone, or the
        /// rename failed and a
        /// [`VerifyProblem::RenameFailed`] precedes this problem).
        renamed_to: Option<PathBuf>,
    },
    /// A referenced chunk is a valid blob whose data hashes to another digest.
    #[error("chunk {digest} of {archive:?} holds data hashing to {actual}")]
    ChunkDigestMismatch {
        /// The index referencing it.
        archive: String,
        /// The chunk.
        digest: Digest,
        /// The digest of the data found.
        actual: Digest,
        /// Where the chunk was moved (`None`: a read-only verify, it was already gone, or the
        /// rename failed and a
        /// [`VerifyProblem::RenameFailed`] precedes this problem).
        renamed_to: Option<PathBuf>,
    },
    /// A referenced chunk was found missing or corrupt earlier in this job.
    #[error("chunk {digest} of {archive:?} was found bad earlier in this job")]
    ChunkKnownBad {
        /// The index referencing it.
        archive: String,
        /// The chunk.
        digest: Digest,
    },
    /// A referenced chunk could not be read (an I/O error, not damage).
    #[error("chunk {digest} of {archive:?} unreadable: {source}")]
    ChunkUnreadable {
        /// The index referencing it.
        archive: String,
        /// The chunk.
        digest: Digest,
        /// Why.
        #[source]
        source: ChunkStoreError,
    },
    /// A corrupt chunk could not be renamed to `.bad`.
    #[error("corrupt chunk {digest} could not be renamed: {source}")]
    RenameFailed {
        /// The chunk.
        digest: Digest,
        /// Why.
        #[source]
        source: ChunkStoreError,
    },
    /// The verify state could not be written to the manifest.
    #[error("verify state not saved: {source}")]
    StateNotSaved {
        /// Why.
        #[source]
        source: Error,
    },
}

impl<W: World> Datastore<W> {
    /// Verifies one snapshot; see the module documentation for what is checked, the lock and
    /// the skip rules. Damage is reported in the outcome, never as an `Err`: an `Err` is an
    /// I/O failure of the existence check or of the lock.
    pub fn verify_snapshot(
        &self,
        job: &mut VerifyJob,
        options: &VerifyOptions,
        dir: &BackupDir,
    ) -> Result<VerifyOutcome, Error> {
        if !self.snapshot_exists(dir)? {
            return Ok(VerifyOutcome::Skipped(SkipReason::Vanished));
        }
        // Race B5 reverted: verify reads the snapshot without pinning it.
        let pin = !crate::reverted!(self.config().chunk_store.regressions, B5ReadersTakeNoLock);
        let _lock = match pin
            .then(|| self.lock_snapshot(dir, LockMode::Shared))
            .transpose()
        {
            Ok(lock) => lock,
            Err(err) if err.is_contention() => {
                return Ok(VerifyOutcome::Skipped(SkipReason::LockBusy));
            }
            Err(err) => return Err(err),
        };
        // A forget may have finished between the check and the lock; the lock file was then
        // created afresh and protects nothing.
        if !self.snapshot_exists(dir)? {
            return Ok(VerifyOutcome::Skipped(SkipReason::Vanished));
        }
        let manifest = match self.load_manifest(dir) {
            Ok(manifest) => manifest,
            Err(Error::Manifest(err)) => {
                let problems = vec![VerifyProblem::ManifestUnreadable(err)];
                return Ok(VerifyOutcome::Verified {
                    ok: false,
                    problems,
                });
            }
            Err(err) => return Err(err),
        };
        let now = self.world().now();
        let state = manifest.verify_state().ok().flatten();
        if let Some(state) = state.filter(|state| !options.needs_verify(Some(state), now)) {
            return Ok(VerifyOutcome::Skipped(SkipReason::AlreadyVerified(state)));
        }

        let mut problems = Vec::new();
        let found = manifest.backup_dir();
        if found != *dir {
            problems.push(VerifyProblem::ManifestMismatch { found });
        }
        for file in &manifest.files {
            match file.kind() {
                Some(ArchiveKind::Blob) => self.verify_blob(dir, file, &mut problems),
                Some(kind) if kind.is_index() => {
                    self.verify_index(job, dir, file, !options.read_only, &mut problems);
                }
                _ => problems.push(VerifyProblem::NotAnArchive {
                    file: file.filename.clone(),
                }),
            }
        }

        let verify_state = if problems.is_empty() {
            VerifyState::Ok
        } else {
            VerifyState::Failed
        };
        let state = SnapshotVerifyState {
            state: verify_state,
            upid: verify_upid(&options.upid, now),
        };
        if options.read_only {
            return Ok(VerifyOutcome::Verified {
                ok: problems.is_empty(),
                problems,
            });
        }
        if let Err(source) = self.update_manifest(dir, |manifest| manifest.set_verify_state(&state))
        {
            problems.push(VerifyProblem::StateNotSaved { source });
        }
        Ok(VerifyOutcome::Verified {
            ok: problems.is_empty(),
            problems,
        })
    }

    /// Verifies a group's snapshots, newest first, each as [`Datastore::verify_snapshot`]
    /// would (no group lock is taken). A snapshot whose check failed with an error does not
    /// stop the others. `Err` only if the group cannot be listed.
    pub fn verify_group(
        &self,
        job: &mut VerifyJob,
        options: &VerifyOptions,
        group: &BackupGroup,
    ) -> Result<Vec<VerifyReport>, Error> {
        let mut snapshots = self.list_snapshots(group)?;
        snapshots.reverse();
        Ok(snapshots
            .into_iter()
            .map(|info| {
                let result = self.verify_snapshot(job, options, &info.dir);
                VerifyReport {
                    dir: info.dir,
                    result,
                }
            })
            .collect())
    }

    /// Verifies every group, in [`Datastore::list_groups`] order, each as
    /// [`Datastore::verify_group`] does, with one job, so chunks shared across groups are
    /// read once. `Err` only if the groups or a group's snapshots cannot be listed.
    pub fn verify_all(
        &self,
        job: &mut VerifyJob,
        options: &VerifyOptions,
    ) -> Result<Vec<VerifyReport>, Error> {
        let mut outcomes = Vec::new();
        for group in self.list_groups()? {
            outcomes.extend(self.verify_group(job, options, &group)?);
        }
        Ok(outcomes)
    }

    /// Size, checksum and decoding of one blob.
    fn verify_blob(&self, dir: &BackupDir, file: &FileInfo, problems: &mut Vec<VerifyProblem>) {
        let name = || file.filename.clone();
        let path = self.snapshot_path(dir).join(&file.filename);
        let bytes = match self.world().read_file(&path) {
            Ok(bytes) => bytes,
            Err(source) => {
                problems.push(VerifyProblem::BlobUnreadable {
                    file: name(),
                    source,
                });
                return;
            }
        };
        let actual = bytes.len() as u64;
        if actual != file.size {
            problems.push(VerifyProblem::BlobSize {
                file: name(),
                expected: file.size,
                actual,
            });
            return;
        }
        let actual = Digest::of(&bytes);
        if actual != file.csum {
            problems.push(VerifyProblem::BlobChecksum {
                file: name(),
                expected: file.csum,
                actual,
            });
            return;
        }
        if let Err(source) = blob::decode(&bytes) {
            problems.push(VerifyProblem::BlobDecode {
                file: name(),
                source,
            });
        }
    }

    /// The index against the manifest, then its chunks.
    fn verify_index(
        &self,
        job: &mut VerifyJob,
        dir: &BackupDir,
        file: &FileInfo,
        rename: bool,
        problems: &mut Vec<VerifyProblem>,
    ) {
        let name = || file.filename.clone();
        let path = self.snapshot_path(dir).join(&file.filename);
        let index = match IndexFile::open(self.world(), &path) {
            Ok(index) => index,
            Err(source) => {
                problems.push(VerifyProblem::IndexOpen {
                    file: name(),
                    source,
                });
                return;
            }
        };
        let (csum, size) = index.compute_csum();
        if csum != file.csum {
            let (expected, actual) = (file.csum, csum);
            problems.push(VerifyProblem::IndexChecksum {
                file: name(),
                expected,
                actual,
            });
            return;
        }
        if size != file.size {
            let (expected, actual) = (file.size, size);
            problems.push(VerifyProblem::IndexSize {
                file: name(),
                expected,
                actual,
            });
            return;
        }
        // Each digest once, in digest order: deterministic, and the chunk store's layout.
        let digests: BTreeSet<Digest> = index.digests().iter().copied().collect();
        for digest in digests {
            self.verify_chunk(job, &file.filename, digest, rename, problems);
        }
    }

    /// One chunk, through the job's caches; a damaged chunk is renamed to `.bad` if `rename`.
    fn verify_chunk(
        &self,
        job: &mut VerifyJob,
        archive: &str,
        digest: Digest,
        rename: bool,
        problems: &mut Vec<VerifyProblem>,
    ) {
        let archive = archive.to_owned();
        if job.verified_chunks.contains(&digest) {
            return;
        }
        if job.corrupt_chunks.contains(&digest) {
            problems.push(VerifyProblem::ChunkKnownBad { archive, digest });
            return;
        }
        job.chunks_hashed += 1;
        let problem = match self.chunk_store().load_chunk(&digest) {
            Ok(_) => {
                job.verified_chunks.insert(digest);
                return;
            }
            Err(ChunkStoreError::Missing { .. }) => {
                job.corrupt_chunks.insert(digest);
                problems.push(VerifyProblem::ChunkMissing { archive, digest });
                return;
            }
            Err(ChunkStoreError::Corrupt { problem, .. }) => problem,
            Err(source) => {
                problems.push(VerifyProblem::ChunkUnreadable {
                    archive,
                    digest,
                    source,
                });
                return;
            }
        };
        // The rename re-checks the file under the chunk-store mutex: a backup may have replaced
        // the damaged file with a good copy since it was read, and that copy must stay.
        let renamed = if rename {
            self.chunk_store().rename_chunk_if_corrupt(&digest)
        } else {
            Ok(BadRename::Vanished)
        };
        let renamed_to = match renamed {
            Ok(BadRename::Intact) => {
                job.verified_chunks.insert(digest);
                return;
            }
            Ok(BadRename::Renamed(path)) => Some(path),
            Ok(BadRename::Vanished) => None,
            Err(source) => {
                problems.push(VerifyProblem::RenameFailed { digest, source });
                None
            }
        };
        job.corrupt_chunks.insert(digest);
        problems.push(match problem {
            ChunkProblem::DigestMismatch { actual } => VerifyProblem::ChunkDigestMismatch {
                archive,
                digest,
                actual,
                renamed_to,
            },
            problem => VerifyProblem::ChunkCorrupt {
                archive,
                digest,
                problem,
                renamed_to,
            },
        });
    }
}
