//! Garbage collection: mark every chunk an index references, then sweep what nobody touched.
//!
//! The mark is the chunk file's access time. Phase 1 sets the atime of every chunk that an
//! index file references to "now"; phase 2 removes every chunk (and `.bad` copy) whose atime is
//! older than a cutoff `min_atime`. There is no in-memory mark set: the filesystem is the mark.
//!
//! # One run, step by step
//!
//! 1. Validate the options ([`GcOptions::validate`]).
//! 2. `gc_mutex` try-lock, then the process locker exclusive try-lock; either busy is
//!    [`Error::GcRunning`]. Both are held to the end of the run. Within one process the
//!    exclusive record lock does not exclude backup writers (record locks of one process never
//!    conflict); across processes it does, so a GC never runs while another process has a
//!    writer whose start time this process cannot see.
//! 3. `phase1_start = now`; `oldest_writer` = start of the oldest live writer registered with
//!    this datastore's process locker, or `phase1_start` if there is none.
//! 4. The access-time safety check ([`GcOptions::atime_safety_check`]).
//! 5. `min_atime = phase1_start − cutoff`; if `oldest_writer < min_atime`, then
//!    `min_atime = oldest_writer − 300 s`.
//! 6. Phase 1 (mark), see below.
//! 7. Phase 2: [`ChunkStore::sweep_unused_chunks`](crate::chunk_store::ChunkStore::sweep_unused_chunks)`(min_atime, oldest_writer)`.
//! 8. The status is written to `<base>/.gc-status` ([`GC_STATUS_FILE`]); a failure to write it
//!    is a warning, not an error: the collection itself succeeded.
//!
//! # Phase 1
//!
//! * Walk the whole datastore tree once and remember every index file (`*.fidx`, `*.didx`) as
//!   "unprocessed". Hidden entries (`.chunks`, `.locks`, `.lock`, `.gc-status`, temporary files
//!   of the status) are skipped, temporary index names are not index names, symbolic links are
//!   not followed, and entries that vanish during the walk are ignored.
//! * Then iterate the groups, and per group its snapshots **newest first**, listing each
//!   snapshot's directory at the moment it is processed. Every index file found is opened and
//!   its chunks are marked. The files of a snapshot come from its directory listing, not from
//!   its manifest: an index without a manifest entry (an unfinished snapshot, a manifest being
//!   replaced) still pins its chunks, and marking too much is never a loss.
//! * An index (or a whole snapshot) that vanished since the listing is skipped. If it belonged
//!   to the group's newest snapshot, or to its newest *finished* snapshot, the group is listed
//!   again: a newer snapshot may have replaced it. The second case matters when an unfinished
//!   snapshot (a running backup) is listed first: the pass reaches it before its indexes exist,
//!   so nothing of it is marked, and if its base is then removed (the backup finished and a
//!   prune took the base) the chunks it reused from the base would be marked by nobody.
//! * After a pass the group is listed once more: a finished snapshot that the pass did not list
//!   (it was created and finished during the pass) makes the pass start again. Its base may have
//!   been listed while a forget was removing it (manifest gone, so not "finished"; indexes gone,
//!   so nothing to open and nothing noticed as vanished). After ten relists the eleventh pass runs under the group's lock (exclusive,
//!   non-blocking; failing to get it aborts GC with the lock error), and a vanishing newest
//!   snapshot even then aborts GC with [`Error::GcGroupUnstable`].
//! * Index files of the walk that no group pass reached (files outside the backup hierarchy)
//!   are marked too, with a [`GcWarning::IndexOutsideHierarchy`] each, if they still exist.
//! * Marking one index: each digest is looked up in a bounded, per-run touch cache
//!   ([`GcOptions::cache_capacity`]); a hit was touched earlier in this run and is skipped.
//!   Otherwise the chunk is touched under the chunk-store mutex. A missing chunk is a
//!   [`GcWarning::MissingChunk`]: its `.bad` copies are touched so that they stay while the
//!   digest is referenced. **Any other error aborts the run before the sweep** (race B11): a
//!   chunk GC could not mark must not be swept. An index that cannot be parsed aborts the run
//!   for the same reason, unless its snapshot has no manifest: live backups publish complete
//!   indexes only, so a damaged index of an unfinished snapshot is a crash's leftover that no
//!   finished snapshot depends on; it is skipped with a
//!   [`GcWarning::DamagedIndexOfUnfinished`].
//!
//! # Why marking by atime is safe
//!
//! The sweep removes a chunk only if its atime is older than `min_atime`. The invariants of the
//! locking reference, and what maintains each here:
//!
//! * **I1, mark completeness:** at sweep time, every chunk referenced by an index that exists at
//!   the end of phase 1 has `atime ≥ phase1_start ≥ min_atime`, or it is absent and its `.bad`
//!   copies were touched.
//!   * Indexes that existed when the walk ran and still exist are reached by the group pass or
//!     by the leftover pass.
//!   * Indexes created later belong to a backup that finished during phase 1. Its new chunks
//!     were written or touched by the writer (I2). The chunks it reused from its base were not
//!     touched, but the base is the group's newest finished snapshot and is pinned (shared
//!     snapshot lock) until the backup finished. Because each group is processed newest first,
//!     either GC marked the base before the new snapshot could have finished (its chunks are
//!     marked), or it listed the group after the new snapshot was published (and marks the new
//!     snapshot itself). If the newest listed snapshot vanished, a newer one replaced it, so the
//!     group is listed again (race B18); a pass that ends while a finished snapshot it did not
//!     list exists is repeated, for a base that was listed half-removed. The same holds for the
//!     newest *finished* listed
//!     snapshot when unfinished ones are listed before it: a backup that was still running when
//!     the pass reached its snapshot may finish, and its base be pruned, before the pass reaches
//!     the base; the relist then finds the finished snapshot and marks it.
//!   * Only "not found" is tolerated when opening an index or touching a chunk; every other
//!     failure aborts the run (B11). The cutoff is taken from the phase-1 start, never from the
//!     sweep's start (B2).
//! * **I2, writer window:** every chunk a live writer wrote or touched has
//!   `atime ≥ writer start`. A writer that was live at `phase1_start` has
//!   `start ≥ oldest_writer`; if that is older than `phase1_start − cutoff`, then
//!   `min_atime = oldest_writer − 300 s`, below it. A writer that started later has
//!   `start > phase1_start ≥ min_atime`. Writers of other processes cannot exist: they would
//!   hold the process lock GC holds exclusively.
//! * **I3, per-chunk atomicity:** the sweep's stat → decide → unlink of one chunk runs under
//!   the chunk-store mutex, as do insert (stat → touch or write), GC's own touches and the
//!   rename of a corrupt chunk. A chunk handed to a writer as "already stored" was touched under
//!   the mutex, so the sweep either removed it before (and the insert writes it anew) or sees
//!   the fresh atime.
//!
//! The touch cache does not weaken I1: a hit means this run already touched that digest at a
//! time `≥ phase1_start`, and nothing but the sweep removes chunks (a rename to `.bad` keeps
//! the atime).
//!
//! The cutoff exists because an access time is only as good as the filesystem's handling of
//! it. The safety check verifies that explicit updates are honoured at all; the default cutoff
//! of 24 h 5 min also tolerates `relatime` rules for implicit updates.
//!
//! # Lock order
//!
//! `gc_mutex` → process locker (exclusive) → per group, at most once, the group lock →
//! per chunk, the chunk-store mutex. All but the chunk-store mutex are try-locks, so GC never
//! waits for another operation's lock and cannot take part in a lock cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backup_info::{BackupDir, BackupGroup};
use crate::chunk_store::{Chunk, SyncLevel};
use crate::digest::Digest;
use crate::index::{ArchiveKind, IndexError, IndexFile};
use crate::manifest::MANIFEST_BLOB_NAME;
use crate::publish::{Durability, IoError, publish_file};
use crate::world::{FileKind, Metadata, World};

use super::{Datastore, Error};

/// Name of the status file in the datastore's base directory.
pub const GC_STATUS_FILE: &str = ".gc-status";

/// The shortest cutoff accepted (1 min).
pub const GC_CUTOFF_MIN: Duration = Duration::from_secs(60);

/// The longest cutoff accepted (2880 min = 48 h).
pub const GC_CUTOFF_MAX: Duration = Duration::from_secs(2880 * 60);

/// The default cutoff: 24 h 5 min.
pub const GC_CUTOFF_DEFAULT: Duration = Duration::from_secs(24 * 3600 + 5 * 60);

/// The default capacity of the touch cache: 1 Mi digests.
pub const GC_CACHE_CAPACITY_DEFAULT: usize = 1 << 20;

/// How far below the oldest writer's start the cutoff moves when that writer is older than
/// the normal cutoff.
pub const GC_WRITER_MARGIN_SECS: i64 = 300;

/// How many times a group is listed again because its newest snapshot vanished. The last
/// relist happens under the group lock; one more vanishing aborts GC.
pub const GC_GROUP_RELISTS_MAX: u32 = 10;

/// Settings of one garbage collection run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcOptions {
    /// Chunks whose atime is older than the phase-1 start minus this are removed (unless a live
    /// writer is older, see the module documentation). Must lie in [`GC_CUTOFF_MIN`] ..=
    /// [`GC_CUTOFF_MAX`]; a fraction of a second rounds up. Default [`GC_CUTOFF_DEFAULT`].
    pub cutoff: Duration,
    /// Before marking, check that the filesystem honours explicit access-time updates: store
    /// (or touch) the probe chunk (the chunk of empty data), stat it, let one second of world
    /// time pass, touch it, stat it again. GC fails with [`Error::AtimeCheckFailed`] unless
    /// the atime strictly increased. If the probe file was replaced in between (another inode),
    /// the check is repeated once. Default `true`.
    pub atime_safety_check: bool,
    /// How many digests the per-run touch cache remembers (least recently used ones are
    /// forgotten first); 0 disables the cache. Default [`GC_CACHE_CAPACITY_DEFAULT`].
    pub cache_capacity: usize,
    /// The task id recorded in the status. Default `None`.
    pub upid: Option<String>,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            cutoff: GC_CUTOFF_DEFAULT,
            atime_safety_check: true,
            cache_capacity: GC_CACHE_CAPACITY_DEFAULT,
            upid: None,
        }
    }
}

impl GcOptions {
    /// Checks the options: [`Error::GcCutoffOutOfRange`] if the cutoff is out of range.
    pub fn validate(&self) -> Result<(), Error> {
        self.cutoff_secs().map(drop)
    }

    /// The cutoff in whole seconds, rounded up.
    fn cutoff_secs(&self) -> Result<i64, Error> {
        if !(GC_CUTOFF_MIN..=GC_CUTOFF_MAX).contains(&self.cutoff) {
            return Err(Error::GcCutoffOutOfRange {
                cutoff: self.cutoff,
            });
        }
        let secs = self.cutoff.as_secs() + u64::from(self.cutoff.subsec_nanos() > 0);
        i64::try_from(secs).map_err(|_| Error::GcCutoffOutOfRange {
            cutoff: self.cutoff,
        })
    }
}

/// Hits and misses of the touch cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GcCacheStats {
    /// Digests skipped because this run had already touched them.
    pub hits: u64,
    /// Digests that had to be touched (with the cache disabled, every digest).
    pub misses: u64,
}

/// The counters of a finished GC run, as stored in `.gc-status`.
///
/// Stored as a JSON object with kebab-case keys (see [`GC_STATUS_FILE`]); every field is
/// required when reading, unknown keys are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GcStatus {
    /// The task id of the run ([`GcOptions::upid`]).
    pub upid: Option<String>,
    /// Distinct index files marked.
    pub index_file_count: u64,
    /// Sum of the data sizes those indexes describe.
    pub index_data_bytes: u64,
    /// Bytes of the chunks kept as live (atime at or after the oldest writer / phase-1 start).
    pub disk_bytes: u64,
    /// Chunks kept as live.
    pub disk_chunks: u64,
    /// Bytes removed (chunks and `.bad` files).
    pub removed_bytes: u64,
    /// Chunks removed.
    pub removed_chunks: u64,
    /// Bytes of the chunks kept only because they are inside the grace window.
    pub pending_bytes: u64,
    /// Chunks kept only because they are inside the grace window.
    pub pending_chunks: u64,
    /// `.bad` files removed.
    pub removed_bad: u64,
    /// `.bad` files kept.
    pub still_bad: u64,
    /// The touch cache's counters.
    pub cache_stats: GcCacheStats,
}

/// Something a GC run noticed that did not stop it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GcWarning {
    /// An index references a chunk that does not exist.
    MissingChunk {
        /// The chunk.
        digest: Digest,
        /// The index that references it (the first one found in this run).
        index: PathBuf,
        /// Whether `.bad` copies of the digest existed (and were touched).
        bad_copies_touched: bool,
    },
    /// An index file outside the backup hierarchy (not in a valid group/snapshot directory)
    /// was marked.
    IndexOutsideHierarchy {
        /// The index file.
        path: PathBuf,
    },
    /// An index file of an unfinished snapshot (no manifest) could not be parsed, as a crash
    /// can leave it; it was skipped. Forget removes such a snapshot.
    DamagedIndexOfUnfinished {
        /// The index file.
        path: PathBuf,
        /// Why it does not parse.
        error: String,
    },
    /// The status file could not be written.
    StatusNotSaved {
        /// The status file.
        path: PathBuf,
        /// Why.
        error: String,
    },
}

impl fmt::Display for GcWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GcWarning::MissingChunk {
                digest,
                index,
                bad_copies_touched,
            } => {
                write!(
                    f,
                    "chunk {digest}, required by {}, does not exist",
                    index.display()
                )?;
                if *bad_copies_touched {
                    write!(f, " (its .bad copies were kept)")?;
                }
                Ok(())
            }
            GcWarning::IndexOutsideHierarchy { path } => {
                write!(
                    f,
                    "marked index file outside the backup hierarchy: {}",
                    path.display()
                )
            }
            GcWarning::DamagedIndexOfUnfinished { path, error } => {
                write!(
                    f,
                    "skipped the damaged index {} of an unfinished snapshot: {error}",
                    path.display()
                )
            }
            GcWarning::StatusNotSaved { path, error } => {
                write!(
                    f,
                    "could not save the GC status to {}: {error}",
                    path.display()
                )
            }
        }
    }
}

/// What a successful GC run did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcOutcome {
    /// The counters (also stored in `.gc-status`).
    pub status: GcStatus,
    /// What the run noticed without failing.
    pub warnings: Vec<GcWarning>,
    /// World time at the start of phase 1.
    pub phase1_start: i64,
    /// Start of the oldest live writer at `phase1_start` (or `phase1_start` if none).
    pub oldest_writer: i64,
    /// The sweep removed files whose atime was older than this.
    pub min_atime: i64,
}

/// A bounded least-recently-used set of digests touched in this run.
struct TouchCache {
    capacity: usize,
    tick: u64,
    stamps: BTreeMap<Digest, u64>,
    by_age: BTreeMap<u64, Digest>,
}

impl TouchCache {
    fn new(capacity: usize) -> TouchCache {
        TouchCache {
            capacity,
            tick: 0,
            stamps: BTreeMap::new(),
            by_age: BTreeMap::new(),
        }
    }

    /// Records `digest` as used now; returns whether it was already remembered.
    fn check_and_insert(&mut self, digest: &Digest) -> bool {
        if self.capacity == 0 {
            return false;
        }
        self.tick += 1;
        if let Some(stamp) = self.stamps.get_mut(digest) {
            self.by_age.remove(stamp);
            *stamp = self.tick;
            self.by_age.insert(self.tick, *digest);
            return true;
        }
        if self.stamps.len() >= self.capacity
            && let Some((_, oldest)) = self.by_age.pop_first()
        {
            self.stamps.remove(&oldest);
        }
        self.stamps.insert(*digest, self.tick);
        self.by_age.insert(self.tick, *digest);
        false
    }
}

/// The state of phase 1.
struct Mark {
    cache: TouchCache,
    status: GcStatus,
    warnings: Vec<GcWarning>,
    /// Index files found by the walk and not yet reached by a group pass.
    unprocessed: BTreeSet<PathBuf>,
    /// Index files already counted in the status.
    counted: BTreeSet<PathBuf>,
    /// Digests already reported missing.
    missing: BTreeSet<Digest>,
}

/// How one pass over a group ended.
enum GroupPass {
    Done,
    /// The group changed under the pass in a way that may hide chunks: list it again.
    Changed,
}

/// How one probe of the access-time check ended.
enum AtimeProbe {
    Advanced,
    Stuck { before: i64, after: i64 },
    Replaced,
}

impl<W: World> Datastore<W> {
    /// Runs garbage collection (see the module documentation for the algorithm and why it is
    /// safe).
    ///
    /// Fails with [`Error::GcCutoffOutOfRange`] for bad options, [`Error::GcRunning`] if a GC
    /// of this datastore instance runs or another process holds the process lock (a writer or
    /// a GC there), [`Error::AtimeCheckFailed`] if the safety check fails, and with the
    /// underlying error if anything but a vanished index or chunk goes wrong while marking.
    /// Nothing is removed unless marking completed.
    pub fn garbage_collection(&self, options: &GcOptions) -> Result<GcOutcome, Error> {
        let cutoff = options.cutoff_secs()?;
        let Some(_gc_guard) = self.gc_mutex().try_lock() else {
            return Err(Error::GcRunning);
        };
        let _exclusive = match self.process_locker().try_exclusive_lock() {
            Ok(guard) => guard,
            Err(err) if err.is_contention() => return Err(Error::GcRunning),
            Err(err) => return Err(err.into()),
        };

        let phase1_start = self.world().now();
        let live_writer = self.process_locker().oldest_shared_lock();
        let oldest_writer = live_writer.unwrap_or(phase1_start);
        if options.atime_safety_check {
            self.check_atime_updates()?;
        }
        // Race B1: with the fix reverted, running writers do not move the cutoff.
        let writer_cutoff =
            !crate::reverted!(self.config().chunk_store.regressions, B1WriterCutoffIgnored);
        let cutoff_of = |start: i64| {
            let min_atime = start.saturating_sub(cutoff);
            match live_writer {
                Some(writer) if writer_cutoff && writer < min_atime => {
                    writer.saturating_sub(GC_WRITER_MARGIN_SECS)
                }
                _ => min_atime,
            }
        };
        #[allow(unused_mut)]
        let mut min_atime = cutoff_of(phase1_start);

        let mut mark = Mark {
            cache: TouchCache::new(options.cache_capacity),
            status: GcStatus {
                upid: options.upid.clone(),
                ..GcStatus::default()
            },
            warnings: Vec::new(),
            unprocessed: self.list_index_files()?,
            counted: BTreeSet::new(),
            missing: BTreeSet::new(),
        };
        self.mark_used_chunks(&mut mark)?;
        if crate::reverted!(self.config().chunk_store.regressions, B2CutoffAtSweepStart) {
            // Race B2: the cutoff taken when the sweep starts, after a long phase 1.
            min_atime = cutoff_of(self.world().now());
        }

        let swept = self
            .chunk_store()
            .sweep_unused_chunks(min_atime, oldest_writer)?;
        let mut status = mark.status;
        status.disk_bytes = swept.disk_bytes;
        status.disk_chunks = swept.disk_chunks;
        status.removed_bytes = swept.removed_bytes;
        status.removed_chunks = swept.removed_chunks;
        status.pending_bytes = swept.pending_bytes;
        status.pending_chunks = swept.pending_chunks;
        status.removed_bad = swept.removed_bad;
        status.still_bad = swept.still_bad;

        let mut warnings = mark.warnings;
        if let Err(err) = self.save_gc_status(&status) {
            let path = self.base().join(GC_STATUS_FILE);
            warnings.push(GcWarning::StatusNotSaved {
                path,
                error: err.to_string(),
            });
        }
        Ok(GcOutcome {
            status,
            warnings,
            phase1_start,
            oldest_writer,
            min_atime,
        })
    }

    /// The status of the last successful GC run, from `<base>/.gc-status`; `None` if no run
    /// saved one. A file that does not parse is [`Error::GcStatusCorrupt`].
    pub fn last_gc_status(&self) -> Result<Option<GcStatus>, Error> {
        let path = self.base().join(GC_STATUS_FILE);
        let bytes = match self.world().read_file(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(Error::io("read", &path)(err)),
        };
        match serde_json::from_slice(&bytes) {
            Ok(status) => Ok(Some(status)),
            Err(source) => Err(Error::GcStatusCorrupt { path, source }),
        }
    }

    /// Writes the status by temporary file and rename (fsynced with [`SyncLevel::File`]).
    fn save_gc_status(&self, status: &GcStatus) -> Result<(), Error> {
        let path = self.base().join(GC_STATUS_FILE);
        let mut json = serde_json::to_vec_pretty(status)
            .map_err(|err| Error::io("encode", &path)(io::Error::other(err)))?;
        json.push(b'\n');
        let durability = Durability::when(self.config().chunk_store.sync_level == SyncLevel::File);
        publish_file(self.world(), self.base(), GC_STATUS_FILE, &json, durability)
            .map_err(IoError::from)?;
        Ok(())
    }

    /// The access-time safety check (see [`GcOptions::atime_safety_check`]).
    fn check_atime_updates(&self) -> Result<(), Error> {
        let probe = Chunk::from_data(&[])
            .map_err(|problem| Error::AtimeCheckFailed(format!("no probe chunk: {problem}")))?;
        for _attempt in 0..2 {
            match self.probe_atime(&probe)? {
                AtimeProbe::Advanced => return Ok(()),
                AtimeProbe::Stuck { before, after } => {
                    let path = self.chunk_store().chunk_path(probe.digest());
                    return Err(Error::AtimeCheckFailed(format!(
                        "touching {} one second later left its atime at {after} (was {before})",
                        path.display()
                    )));
                }
                AtimeProbe::Replaced => {}
            }
        }
        Err(Error::AtimeCheckFailed(
            "the probe chunk was replaced during the check, twice".to_owned(),
        ))
    }

    fn probe_atime(&self, probe: &Chunk) -> Result<AtimeProbe, Error> {
        let store = self.chunk_store();
        store.insert_chunk(probe)?;
        let Some(before) = store.chunk_metadata(probe.digest())? else {
            return Ok(AtimeProbe::Replaced);
        };
        self.world().sleep(Duration::from_secs(1));
        if !store.cond_touch_chunk(probe.digest(), false)? {
            return Ok(AtimeProbe::Replaced);
        }
        let after: Option<Metadata> = store.chunk_metadata(probe.digest())?;
        match after {
            Some(after) if after.ino == before.ino => {
                if after.atime > before.atime {
                    Ok(AtimeProbe::Advanced)
                } else {
                    Ok(AtimeProbe::Stuck {
                        before: before.atime,
                        after: after.atime,
                    })
                }
            }
            _ => Ok(AtimeProbe::Replaced),
        }
    }

    /// Every index file under the base, skipping hidden entries and not following links.
    /// Directories and files that vanish during the walk are ignored.
    fn list_index_files(&self) -> Result<BTreeSet<PathBuf>, Error> {
        let mut found = BTreeSet::new();
        let mut dirs = vec![self.base().to_owned()];
        while let Some(dir) = dirs.pop() {
            let entries = match self.world().read_dir(&dir) {
                Ok(entries) => entries,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(Error::io("readdir", &dir)(err)),
            };
            for entry in entries {
                if entry.name().as_encoded_bytes().starts_with(b".") {
                    continue;
                }
                let path = dir.join(entry.name());
                match entry.kind {
                    FileKind::Dir => dirs.push(path),
                    FileKind::File if is_index_name(entry.name_str()) => {
                        found.insert(path);
                    }
                    FileKind::File | FileKind::Other => {}
                }
            }
        }
        Ok(found)
    }

    /// The index files of a snapshot directory, sorted; `None` if the directory is gone.
    fn snapshot_index_files(&self, snapshot: &Path) -> Result<Option<Vec<PathBuf>>, Error> {
        let entries = match self.world().read_dir(snapshot) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(Error::io("readdir", snapshot)(err)),
        };
        let mut files: Vec<PathBuf> = entries
            .iter()
            .filter(|entry| entry.kind == FileKind::File && is_index_name(entry.name_str()))
            .map(|entry| snapshot.join(entry.name()))
            .collect();
        files.sort();
        Ok(Some(files))
    }

    /// Phase 1: the group passes, then the leftovers of the walk.
    fn mark_used_chunks(&self, mark: &mut Mark) -> Result<(), Error> {
        if crate::reverted!(
            self.config().chunk_store.regressions,
            B18GcMarksFromStartList
        ) {
            // Race B18: only the index files listed at phase-1 start are marked.
            for path in std::mem::take(&mut mark.unprocessed) {
                match IndexFile::open(self.world(), &path) {
                    Ok(index) => self.mark_index(mark, &path, &index)?,
                    Err(err)
                        if err.is_not_found()
                            && !crate::reverted!(
                                self.config().chunk_store.regressions,
                                B9GcAbortsOnVanishedIndex
                            ) => {}
                    Err(err) => return Err(err.into()),
                }
            }
            return Ok(());
        }
        for group in self.list_groups()? {
            self.mark_group(mark, &group)?;
        }
        for path in std::mem::take(&mut mark.unprocessed) {
            match IndexFile::open(self.world(), &path) {
                Ok(index) => {
                    mark.warnings
                        .push(GcWarning::IndexOutsideHierarchy { path: path.clone() });
                    self.mark_index(mark, &path, &index)?;
                }
                Err(err)
                    if err.is_not_found()
                        && !crate::reverted!(
                            self.config().chunk_store.regressions,
                            B9GcAbortsOnVanishedIndex
                        ) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// Marks one group, listing it again while its newest snapshot vanishes under GC.
    fn mark_group(&self, mark: &mut Mark, group: &BackupGroup) -> Result<(), Error> {
        let mut relists = 0;
        loop {
            let _group_lock = if relists == GC_GROUP_RELISTS_MAX {
                Some(self.lock_group(group)?)
            } else {
                None
            };
            match self.mark_group_pass(mark, group)? {
                GroupPass::Done => return Ok(()),
                GroupPass::Changed if relists == GC_GROUP_RELISTS_MAX => {
                    return Err(Error::GcGroupUnstable {
                        group: group.clone(),
                        relists,
                    });
                }
                GroupPass::Changed => relists += 1,
            }
        }
    }

    /// One pass over a group's snapshots, newest first.
    fn mark_group_pass(&self, mark: &mut Mark, group: &BackupGroup) -> Result<GroupPass, Error> {
        let newest_only = crate::reverted!(
            self.config().chunk_store.regressions,
            PlantedGcMarksNewestOnly
        );
        let snapshots = self.list_snapshots(group)?;
        // A vanished snapshot makes the pass start again if it was the newest listed one, or
        // the newest finished one: that is the base any running backup of the group reuses
        // chunks from, and newer unfinished snapshots listed before it may have had no index
        // yet when this pass reached them.
        let window_reverted = crate::reverted!(
            self.config().chunk_store.regressions,
            GcRelistIgnoresUnfinished
        );
        let newest_finished = if window_reverted {
            0
        } else {
            snapshots
                .iter()
                .rev()
                .position(|info| info.finished)
                .unwrap_or(0)
        };
        // Race B9: with the fix reverted, a snapshot or index that vanished since the listing
        // (a concurrent forget or prune) aborts the run.
        let abort_on_vanished = crate::reverted!(
            self.config().chunk_store.regressions,
            B9GcAbortsOnVanishedIndex
        );
        for (position, info) in snapshots.iter().rev().enumerate() {
            let pins_reuse = position == 0 || position == newest_finished;
            let snapshot_path = self.snapshot_path(&info.dir);
            let Some(files) = self.snapshot_index_files(&snapshot_path)? else {
                if abort_on_vanished {
                    let err = io::Error::new(io::ErrorKind::NotFound, "snapshot vanished");
                    return Err(Error::io("readdir", &snapshot_path)(err));
                }
                if pins_reuse {
                    return Ok(GroupPass::Changed);
                }
                continue;
            };
            for path in files {
                if newest_only && position > 0 {
                    mark.unprocessed.remove(&path);
                    continue;
                }
                match IndexFile::open(self.world(), &path) {
                    Ok(index) => {
                        mark.unprocessed.remove(&path);
                        self.mark_index(mark, &path, &index)?;
                    }
                    Err(err) if err.is_not_found() && !abort_on_vanished => {
                        mark.unprocessed.remove(&path);
                        if pins_reuse {
                            return Ok(GroupPass::Changed);
                        }
                    }
                    Err(err)
                        if !matches!(err, IndexError::Io { .. })
                            && !crate::reverted!(
                                self.config().chunk_store.regressions,
                                GcAbortsOnDamagedUnfinishedIndex
                            )
                            && !info.finished
                            && !self.exists(&snapshot_path.join(MANIFEST_BLOB_NAME))? =>
                    {
                        // A live backup publishes complete indexes only, so a damaged one in
                        // a snapshot without a manifest is what a crash left behind: no
                        // finished snapshot depends on it.
                        mark.unprocessed.remove(&path);
                        mark.warnings.push(GcWarning::DamagedIndexOfUnfinished {
                            path: path.clone(),
                            error: err.to_string(),
                        });
                    }
                    Err(err) => return Err(err.into()),
                }
            }
        }
        // A snapshot that finished after the listing was not seen by this pass. Its base may
        // have been listed while it was being removed (no manifest, indexes already gone), so
        // nothing above noticed the removal: list the group again.
        if !window_reverted {
            let listed: BTreeSet<&BackupDir> = snapshots.iter().map(|info| &info.dir).collect();
            let after = self.list_snapshots(group)?;
            if after
                .iter()
                .any(|info| info.finished && !listed.contains(&info.dir))
            {
                return Ok(GroupPass::Changed);
            }
        }
        Ok(GroupPass::Done)
    }

    /// Touches every chunk of one index (see "Phase 1" in the module documentation).
    fn mark_index(&self, mark: &mut Mark, path: &Path, index: &IndexFile) -> Result<(), Error> {
        if mark.counted.insert(path.to_owned()) {
            mark.status.index_file_count += 1;
            mark.status.index_data_bytes = mark
                .status
                .index_data_bytes
                .saturating_add(index.index_bytes());
        }
        let store = self.chunk_store();
        for digest in index.digests() {
            if mark.cache.check_and_insert(digest) {
                mark.status.cache_stats.hits += 1;
                continue;
            }
            mark.status.cache_stats.misses += 1;
            match store.cond_touch_chunk(digest, false) {
                Ok(true) => continue,
                Ok(false) => {}
                // Race B11: a failed touch logged and ignored; the sweep then removes the
                // chunk that could not be marked.
                Err(_)
                    if crate::reverted!(
                        self.config().chunk_store.regressions,
                        B11GcToleratesTouchErrors
                    ) =>
                {
                    continue;
                }
                Err(err) => return Err(err.into()),
            }
            let bad_copies_touched = store.cond_touch_bad_chunks(digest)?;
            if mark.missing.insert(*digest) {
                mark.warnings.push(GcWarning::MissingChunk {
                    digest: *digest,
                    index: path.to_owned(),
                    bad_copies_touched,
                });
            }
        }
        Ok(())
    }
}

fn is_index_name(name: Option<&str>) -> bool {
    name.and_then(ArchiveKind::from_name)
        .is_some_and(|kind| kind.is_index())
}
