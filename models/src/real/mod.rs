//! Twins of the race regressions on the real world: the same actors and the same invariant as
//! the simulated scenario, run on [`RealWorld`] with real OS threads.
//!
//! Each run builds a fresh datastore in its own scratch directory under the system temporary
//! directory (removed afterwards), plants the scenario's snapshots, starts one OS thread per
//! actor behind a barrier so that they begin together, and checks the scenario's invariant on
//! the outcomes and on the final state. A twin runs either with every fix in place (it must
//! pass: the check is sound on a real filesystem) or with its bug's fix reverted through the
//! store configuration's regression switches, as the simulated scenario does.
//!
//! The point is the comparison with the explorers: the real scheduler only rarely produces the
//! interleaving a race needs, so [`run_twin`] counts in how many of a fixed number of runs the
//! violation showed up.
//!
//! Bugs whose scenario needs the simulated clock during the run, simulated processes or fault
//! injection have no twin; [`NOT_APPLICABLE`] gives the reason for each.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use store::backup_info::{BackupDir, BackupGroup};
use store::chunk_store::{BadRename as Renamed, ChunkStoreConfig, PrefixFanout, SyncLevel};
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::datastore::gc::GcOptions;
use store::datastore::prune::{KeepOptions, PruneOptions, PruneOutcome};
use store::datastore::{Datastore, DatastoreConfig};
use store::manifest::VerifyState;
use store::regressions::{Bug, Regressions};
use store::world::{RealWorld, World};
use store::{Chunk, ChunkStore};

use crate::regressions::bad_rename;
use crate::regressions::pull_touch::prefix_chunk;
use crate::regressions_b::b5_reader_pinning::verify_outcome;
use crate::regressions_b::{
    DAY, OWNER, backup_error, chunk, group, missing_chunk, plant_backup, read_snapshot, reverting,
    snapshot_at,
};
use crate::regressions_b::{b3_base_pinning, b17_reader_shared_lock, b23_cleanup_group};
use crate::regressions_b::{b5_reader_pinning, b6_prune_locks, b7_manifest_lock};
use crate::scenario::{Outcome, Outcomes, ScenarioError};
use crate::scenarios::insert_sweep;

/// Why a twin could not run (as opposed to a run that found a violation).
#[derive(Debug, thiserror::Error)]
pub enum RealError {
    /// The scratch directory could not be created.
    #[error("scratch directory {path}: {source}")]
    Scratch {
        /// The directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The datastore or its snapshots could not be set up.
    #[error("{0}")]
    Setup(ScenarioError),
}

/// What one run of a twin gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunResult {
    /// The invariant held.
    Pass,
    /// The check failed with this message (the bug's violation or something else).
    Failed(String),
}

/// A real-world twin of a race regression scenario.
#[derive(Clone, Copy)]
pub struct Twin {
    /// The bug of pbs.md §8 (`B5`, ...).
    pub bug: &'static str,
    /// The name of the simulated scenario it mirrors.
    pub scenario: &'static str,
    /// The message of the violated invariant (what a run that found the bug reports).
    pub violation: &'static str,
    run: fn(&Path, bool) -> Result<RunResult, RealError>,
}

impl fmt::Debug for Twin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Twin")
            .field("bug", &self.bug)
            .field("scenario", &self.scenario)
            .finish()
    }
}

impl Twin {
    /// One run in a fresh scratch directory; `reverted` takes the bug's fix out.
    pub fn run_once(&self, reverted: bool) -> Result<RunResult, RealError> {
        let scratch = Scratch::new()?;
        (self.run)(&scratch.path, reverted)
    }
}

/// The tally of [`run_twin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Runs made.
    pub runs: usize,
    /// Runs that reported the bug's violation.
    pub found: usize,
    /// Runs that failed with another message, and the first such message.
    pub other: usize,
    /// The first message of a run counted in `other`.
    pub first_other: Option<String>,
    /// Wall-clock time of all runs.
    pub elapsed: Duration,
}

/// Runs `twin` `runs` times (`reverted`: the bug's fix taken out) and counts the violations.
pub fn run_twin(twin: &Twin, reverted: bool, runs: usize) -> Result<Tally, RealError> {
    let started = Instant::now();
    let mut tally = Tally {
        runs,
        found: 0,
        other: 0,
        first_other: None,
        elapsed: Duration::ZERO,
    };
    for _ in 0..runs {
        match twin.run_once(reverted)? {
            RunResult::Pass => {}
            RunResult::Failed(message) if message.contains(twin.violation) => tally.found += 1,
            RunResult::Failed(message) => {
                tally.other += 1;
                tally.first_other.get_or_insert(message);
            }
        }
    }
    tally.elapsed = started.elapsed();
    Ok(tally)
}

/// The twins, in the order of the bug catalogue.
pub fn twins() -> Vec<Twin> {
    vec![
        Twin {
            bug: "B3",
            scenario: "b3-base-pinning",
            violation: b3_base_pinning::VIOLATION,
            run: base_pinning,
        },
        Twin {
            bug: "B4",
            scenario: "insert-sweep",
            violation: insert_sweep::VIOLATION,
            run: insert_sweep_twin,
        },
        Twin {
            bug: "B5",
            scenario: "b5-reader-pinning",
            violation: b5_reader_pinning::VIOLATION,
            run: reader_pinning,
        },
        Twin {
            bug: "B6",
            scenario: "b6-prune-locks",
            violation: b6_prune_locks::VIOLATION,
            run: prune_locks,
        },
        Twin {
            bug: "B7",
            scenario: "b7-manifest-lock",
            violation: b7_manifest_lock::VIOLATION,
            run: manifest_lock,
        },
        Twin {
            bug: "B17",
            scenario: "b17-reader-shared-lock",
            violation: b17_reader_shared_lock::VIOLATION,
            run: reader_shared_lock,
        },
        Twin {
            bug: "B21",
            scenario: "bad-rename",
            violation: bad_rename::VIOLATION,
            run: bad_rename_twin,
        },
        Twin {
            bug: "B23",
            scenario: "b23-cleanup-group",
            violation: b23_cleanup_group::VIOLATION,
            run: cleanup_group,
        },
    ]
}

/// Bugs whose scenario cannot have a real-world twin, with the reason.
pub const NOT_APPLICABLE: &[(&str, &str)] = &[
    ("B2", "needs the simulated clock to move during the run"),
    ("B10", "needs simulated processes (a second process locker)"),
    ("B11", "needs fault injection (a failing touch)"),
    ("B19", "needs simulated processes (a second process locker)"),
];

/// A fresh directory under the system temporary directory, removed on drop.
struct Scratch {
    path: PathBuf,
}

static SCRATCH_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Scratch {
    fn new() -> Result<Scratch, RealError> {
        let path = std::env::temp_dir().join(format!(
            "races-real-{}-{}",
            std::process::id(),
            SCRATCH_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        // `create_dir` fails if the directory exists, so it is ours alone.
        std::fs::create_dir(&path).map_err(|source| RealError::Scratch {
            path: path.clone(),
            source,
        })?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A datastore at `<scratch>/ds` on the real world, configured as the simulated scenarios'.
fn new_datastore(
    scratch: &Path,
    regressions: Regressions,
) -> Result<Datastore<RealWorld>, RealError> {
    let chunk_store = ChunkStoreConfig::new(PrefixFanout::SMALL)
        .with_sync_level(SyncLevel::None)
        .with_regressions(regressions);
    Datastore::create(
        RealWorld::new(),
        &scratch.join("ds"),
        DatastoreConfig::new(chunk_store),
    )
    .map_err(|err| RealError::Setup(ScenarioError::setup("create the datastore", err)))
}

/// Runs every actor on its own OS thread, all released together by a barrier.
/// An actor of a twin: its name and what it runs on the shared state.
type RealActor<T> = (&'static str, fn(&T) -> Outcome);

fn race<T: Sync>(state: &T, actors: &[RealActor<T>]) -> Outcomes {
    let barrier = Barrier::new(actors.len());
    let outcomes = std::thread::scope(|scope| {
        let handles: Vec<_> = actors
            .iter()
            .map(|&(name, run)| {
                let barrier = &barrier;
                (
                    name,
                    scope.spawn(move || {
                        barrier.wait();
                        run(state)
                    }),
                )
            })
            .collect();
        handles
            .into_iter()
            .map(|(name, handle)| {
                let outcome = handle
                    .join()
                    .unwrap_or_else(|_| Outcome::panicked("the actor's thread panicked"));
                (name, outcome)
            })
            .collect()
    });
    Outcomes::new(outcomes)
}

fn verdict(check: Result<(), ScenarioError>) -> RunResult {
    match check {
        Ok(()) => RunResult::Pass,
        Err(err) => RunResult::Failed(err.to_string()),
    }
}

fn setup<T>(result: Result<T, ScenarioError>) -> Result<T, RealError> {
    result.map_err(RealError::Setup)
}

/// Sets the access time of every file under `dir` (recursively) to `epoch`: the real-world
/// stand-in for the simulated scenarios' moving the clock past GC's cutoff.
fn age_files(dir: &Path, epoch: i64) -> Result<(), RealError> {
    let failed = |err: std::io::Error| {
        RealError::Setup(ScenarioError::setup(&format!("age {}", dir.display()), err))
    };
    let time = std::time::UNIX_EPOCH + Duration::from_secs(epoch.max(0) as u64);
    for entry in std::fs::read_dir(dir).map_err(failed)? {
        let entry = entry.map_err(failed)?;
        let kind = entry.file_type().map_err(failed)?;
        if kind.is_dir() {
            age_files(&entry.path(), epoch)?;
        } else if kind.is_file() {
            let file = std::fs::File::options()
                .write(true)
                .open(entry.path())
                .map_err(failed)?;
            file.set_times(std::fs::FileTimes::new().set_accessed(time))
                .map_err(failed)?;
        }
    }
    Ok(())
}

// ---- B3: backup × forget of its base × GC ----

struct BaseState {
    store: Datastore<RealWorld>,
    base: BackupDir,
    next: BackupDir,
    group: BackupGroup,
}

const BASE_INDEX_VANISHED: Outcome = Outcome::label("base-index-vanished");

fn base_pinning(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    let store = new_datastore(scratch, reverting(reverted, Bug::B3BaseNotPinned))?;
    let group = setup(group("vm/100"))?;
    let now = store.world().now();
    let base = setup(snapshot_at(&group, now - 3 * DAY))?;
    setup(plant_backup(&store, &base, &["A", "B"]))?;
    // Three days pass in the simulated scenario: A and B are older than GC's cutoff.
    age_files(&scratch.join("ds").join(".chunks"), now - 3 * DAY)?;
    let next = setup(snapshot_at(&group, now))?;
    let state = BaseState {
        store,
        base,
        next,
        group,
    };
    let outcomes = race(
        &state,
        &[
            ("backup", |s: &BaseState| {
                let chunks = ["C", "D", "E", "A", "B"].map(chunk).to_vec();
                let archives = [ArchiveSpec::new("root.didx", chunks)];
                match backup_snapshot(&s.store, &s.next, OWNER, &archives) {
                    Ok(_) => Outcome::OK,
                    Err(store::datastore::Error::Index(err)) if err.is_not_found() => {
                        BASE_INDEX_VANISHED
                    }
                    Err(err) => backup_error(err),
                }
            }),
            ("forget", |s: &BaseState| {
                Outcome::of(&s.store.forget_snapshot(&s.base))
            }),
            ("gc", |s: &BaseState| {
                let options = GcOptions {
                    atime_safety_check: false,
                    ..GcOptions::default()
                };
                Outcome::of(&s.store.garbage_collection(&options))
            }),
        ],
    );
    Ok(verdict(check_base_pinning(&state, reverted, &outcomes)))
}

/// The check of [`b3_base_pinning::BasePinning`].
fn check_base_pinning(
    state: &BaseState,
    reverted: bool,
    outcomes: &Outcomes,
) -> Result<(), ScenarioError> {
    if let Some(missing) = missing_chunk(&state.store)? {
        return Err(ScenarioError::violation(format!(
            "{}: {missing}",
            b3_base_pinning::VIOLATION
        )));
    }
    let mut allowed = vec![Outcome::OK, Outcome::BUSY, Outcome::label("base-vanished")];
    if reverted {
        allowed.push(BASE_INDEX_VANISHED);
    }
    outcomes.expect("backup", &allowed)?;
    outcomes.expect("forget", &[Outcome::OK, Outcome::BUSY])?;
    outcomes.expect("gc", &[Outcome::OK])?;
    let finished = state
        .store
        .list_snapshots(&state.group)
        .map_err(|err| ScenarioError::violation(format!("list: {err}")))?
        .iter()
        .any(|info| info.dir == state.next && info.finished);
    if finished != (outcomes.of("backup") == Some(&Outcome::OK)) {
        return Err(ScenarioError::violation(format!(
            "the new snapshot is {}finished, but the backup ended {:?}",
            if finished { "" } else { "not " },
            outcomes.of("backup").map(Outcome::as_str)
        )));
    }
    Ok(())
}

// ---- B4: two inserts of an old chunk × sweep ----

struct InsertState {
    store: ChunkStore<RealWorld>,
    chunk: Chunk,
    min_atime: i64,
}

fn insert_actor(state: &InsertState) -> Outcome {
    match state.store.insert_chunk(&state.chunk) {
        Ok(_) => Outcome::OK,
        Err(err) => Outcome::error(err),
    }
}

fn insert_sweep_twin(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    let regressions = if reverted {
        Regressions::none().with(Bug::B4DuplicateInsertNoTouch)
    } else {
        Regressions::none()
    };
    let config = ChunkStoreConfig::new(PrefixFanout::SMALL)
        .with_sync_level(SyncLevel::None)
        .with_regressions(regressions);
    let store = ChunkStore::create(RealWorld::new(), &scratch.join("ds"), config)
        .map_err(|err| RealError::Setup(ScenarioError::setup("create the chunk store", err)))?;
    let chunk =
        setup(Chunk::from_data(b"chunk x").map_err(|err| ScenarioError::setup("chunk", err)))?;
    setup(
        store
            .insert_chunk(&chunk)
            .map_err(|err| ScenarioError::setup("the old copy", err)),
    )?;
    // The old copy is three days old and unreferenced; GC's cutoff is one day ago.
    let now = store.world().now();
    age_files(&scratch.join("ds").join(".chunks"), now - 3 * DAY)?;
    let state = InsertState {
        store,
        chunk,
        min_atime: now - DAY,
    };
    let outcomes = race(
        &state,
        &[
            ("insert-1", insert_actor),
            ("insert-2", insert_actor),
            ("sweep", |s: &InsertState| {
                match s.store.sweep_unused_chunks(s.min_atime, s.min_atime) {
                    Ok(_) => Outcome::OK,
                    Err(err) => Outcome::error(err),
                }
            }),
        ],
    );
    Ok(verdict(check_insert_sweep(&state, &outcomes)))
}

/// The check of [`insert_sweep::InsertSweep`].
fn check_insert_sweep(state: &InsertState, outcomes: &Outcomes) -> Result<(), ScenarioError> {
    for actor in ["insert-1", "insert-2", "sweep"] {
        outcomes.expect(actor, &[Outcome::OK])?;
    }
    let present = state
        .store
        .chunk_metadata(state.chunk.digest())
        .map_err(|err| ScenarioError::violation(format!("stat of the chunk failed: {err}")))?
        .is_some();
    if !present {
        return Err(ScenarioError::violation(insert_sweep::VIOLATION));
    }
    Ok(())
}

// ---- B5: reader × verify × forget ----

struct Pinned {
    store: Datastore<RealWorld>,
    dir: BackupDir,
}

fn reader_pinning(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    let store = new_datastore(scratch, reverting(reverted, Bug::B5ReadersTakeNoLock))?;
    let dir = setup(snapshot_at(&setup(group("vm/100"))?, store.world().now()))?;
    setup(plant_backup(&store, &dir, &["A", "B"]))?;
    let state = Pinned { store, dir };
    let outcomes = race(
        &state,
        &[
            ("reader", |s: &Pinned| read_snapshot(&s.store, &s.dir)),
            ("verify", |s: &Pinned| verify_outcome(&s.store, &s.dir)),
            ("forget", |s: &Pinned| {
                Outcome::of(&s.store.forget_snapshot(&s.dir))
            }),
        ],
    );
    Ok(verdict(check_reader_pinning(&outcomes)))
}

/// The check of [`b5_reader_pinning::ReaderPinning`].
fn check_reader_pinning(outcomes: &Outcomes) -> Result<(), ScenarioError> {
    for (actor, outcome) in outcomes.iter() {
        let text = outcome.as_str();
        if text.starts_with("lost: ") || text.starts_with("verify-failed") {
            return Err(ScenarioError::violation(format!(
                "{}: {actor} ended `{text}`",
                b5_reader_pinning::VIOLATION
            )));
        }
    }
    outcomes.expect("reader", &[Outcome::OK, Outcome::BUSY, Outcome::NOT_FOUND])?;
    outcomes.expect("verify", &[Outcome::OK, Outcome::label("skipped")])?;
    outcomes.expect("forget", &[Outcome::OK, Outcome::BUSY])?;
    Ok(())
}

// ---- B6: prune × reader ----

struct Pruned {
    store: Datastore<RealWorld>,
    group: BackupGroup,
    old: BackupDir,
}

const REMOVED: Outcome = Outcome::label("removed");
const IN_USE: Outcome = Outcome::label("in-use");

fn prune_actor(state: &Pruned) -> Outcome {
    let options = PruneOptions {
        keep: KeepOptions {
            keep_last: 1,
            ..KeepOptions::default()
        },
        ..PruneOptions::default()
    };
    let report = match state.store.prune_group(&state.group, &options) {
        Ok(report) => report,
        Err(err) => return Outcome::of::<()>(&Err(err)),
    };
    let mut outcome = Outcome::label("kept-all");
    for entry in &report.entries {
        match &entry.outcome {
            PruneOutcome::Kept | PruneOutcome::WouldRemove => {}
            PruneOutcome::Removed => outcome = REMOVED,
            PruneOutcome::NotRemoved(err) if err.is_contention() => outcome = IN_USE,
            PruneOutcome::NotRemoved(err) => return Outcome::error(err),
        }
    }
    outcome
}

fn prune_locks(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    let store = new_datastore(scratch, reverting(reverted, Bug::B6PruneForcesRemoval))?;
    let group = setup(group("vm/100"))?;
    // The simulated scenario advances the clock by an hour between the two backups; here the
    // old snapshot is simply dated an hour back.
    let now = store.world().now();
    let old = setup(snapshot_at(&group, now - 3600))?;
    setup(plant_backup(&store, &old, &["A", "B"]))?;
    let new = setup(snapshot_at(&group, now))?;
    setup(plant_backup(&store, &new, &["B", "C"]))?;
    let state = Pruned { store, group, old };
    let outcomes = race(
        &state,
        &[
            ("reader", |s: &Pruned| read_snapshot(&s.store, &s.old)),
            ("prune", prune_actor),
        ],
    );
    Ok(verdict(check_prune_locks(&outcomes)))
}

/// The check of [`b6_prune_locks::PruneLocks`].
fn check_prune_locks(outcomes: &Outcomes) -> Result<(), ScenarioError> {
    if let Some(outcome) = outcomes.of("reader")
        && outcome.as_str().starts_with("lost: ")
    {
        return Err(ScenarioError::violation(format!(
            "{}: reader ended `{outcome}`",
            b6_prune_locks::VIOLATION
        )));
    }
    outcomes.expect("reader", &[Outcome::OK, Outcome::BUSY, Outcome::NOT_FOUND])?;
    outcomes.expect("prune", &[REMOVED, IN_USE])?;
    Ok(())
}

// ---- B7: notes × verify on one manifest ----

const NOTES: &str = "set while verify ran";

fn manifest_lock(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    let store = new_datastore(scratch, reverting(reverted, Bug::B7ManifestWithoutLock))?;
    let dir = setup(snapshot_at(&setup(group("vm/100"))?, store.world().now()))?;
    setup(plant_backup(&store, &dir, &["A"]))?;
    let state = Pinned { store, dir };
    let outcomes = race(
        &state,
        &[
            ("notes", |s: &Pinned| {
                let read = read_snapshot(&s.store, &s.dir);
                if read != Outcome::OK {
                    return Outcome::new(format!("read: {read}"));
                }
                Outcome::of(&s.store.set_snapshot_notes(&s.dir, NOTES))
            }),
            ("verify", |s: &Pinned| verify_outcome(&s.store, &s.dir)),
        ],
    );
    Ok(verdict(check_manifest_lock(&state, &outcomes)))
}

/// The check of [`b7_manifest_lock::ManifestLock`].
fn check_manifest_lock(state: &Pinned, outcomes: &Outcomes) -> Result<(), ScenarioError> {
    let violation = b7_manifest_lock::VIOLATION;
    let manifest = state
        .store
        .load_manifest(&state.dir)
        .map_err(|err| ScenarioError::violation(format!("final manifest unreadable: {err}")))?;
    let notes = manifest.notes().ok().flatten();
    if outcomes.of("notes") == Some(&Outcome::OK) && notes != Some(NOTES) {
        return Err(ScenarioError::violation(format!(
            "{violation}: the notes are {notes:?}"
        )));
    }
    let verified = manifest
        .verify_state()
        .ok()
        .flatten()
        .map(|state| state.state);
    if outcomes.of("verify") == Some(&Outcome::OK) && verified != Some(VerifyState::Ok) {
        return Err(ScenarioError::violation(format!(
            "{violation}: the verify state is {verified:?}"
        )));
    }
    outcomes.expect("notes", &[Outcome::OK, Outcome::BUSY])?;
    let verify = outcomes.of("verify").map(Outcome::as_str).unwrap_or("");
    let timed_out = verify.contains("verify state not saved") && verify.contains("timed out");
    if verify != "ok" && !timed_out {
        return Err(ScenarioError::violation(format!(
            "verify ended `{verify}`, allowed: ok | state not saved (lock timed out)"
        )));
    }
    Ok(())
}

// ---- B17: reader × backup on the same base ----

struct Based {
    store: Datastore<RealWorld>,
    base: BackupDir,
    next: BackupDir,
}

fn reader_shared_lock(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    let store = new_datastore(
        scratch,
        reverting(reverted, Bug::B17ReaderTakesExclusiveLock),
    )?;
    let group = setup(group("vm/100"))?;
    let now = store.world().now();
    let base = setup(snapshot_at(&group, now))?;
    setup(plant_backup(&store, &base, &["A", "B"]))?;
    let next = setup(snapshot_at(&group, now + 60))?;
    let state = Based { store, base, next };
    let outcomes = race(
        &state,
        &[
            ("reader", |s: &Based| read_snapshot(&s.store, &s.base)),
            ("backup", |s: &Based| {
                let archives = [ArchiveSpec::new(
                    "root.didx",
                    vec![chunk("A"), chunk("B"), chunk("C")],
                )];
                match backup_snapshot(&s.store, &s.next, OWNER, &archives) {
                    Ok(outcome) if outcome.base.as_ref() == Some(&s.base) => Outcome::OK,
                    Ok(_) => Outcome::label("ok without base"),
                    Err(err) => backup_error(err),
                }
            }),
        ],
    );
    Ok(verdict(check_reader_shared_lock(&outcomes)))
}

/// The check of [`b17_reader_shared_lock::ReaderSharedLock`].
fn check_reader_shared_lock(outcomes: &Outcomes) -> Result<(), ScenarioError> {
    for (actor, outcome) in outcomes.iter() {
        if outcome == &Outcome::BUSY {
            return Err(ScenarioError::violation(format!(
                "{}: {actor} ended `{outcome}`",
                b17_reader_shared_lock::VIOLATION
            )));
        }
    }
    outcomes.expect("reader", &[Outcome::OK])?;
    outcomes.expect("backup", &[Outcome::OK])?;
    Ok(())
}

// ---- B21: sweep × renaming corrupt chunks to `.bad` ----

struct Renaming {
    store: Datastore<RealWorld>,
    digests: [store::Digest; 2],
    min_atime: i64,
}

fn bad_rename_twin(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    let store = new_datastore(scratch, reverting(reverted, Bug::B21RenameOutsideMutex))?;
    let chunks = store.chunk_store();
    let last = chunks.config().fanout.dir_count() - 1;
    let digests = [
        *setup(prefix_chunk(chunks, "corrupt chunk", 0))?.digest(),
        *setup(prefix_chunk(chunks, "corrupt chunk", last))?.digest(),
    ];
    for digest in &digests {
        std::fs::write(chunks.chunk_path(digest), b"not a blob at all")
            .map_err(|err| RealError::Setup(ScenarioError::setup("write the chunk file", err)))?;
    }
    // Three days pass in the simulated scenario: both files are older than the cutoff.
    let now = store.world().now();
    age_files(&scratch.join("ds").join(".chunks"), now - 3 * DAY)?;
    let state = Renaming {
        store,
        digests,
        min_atime: now - DAY,
    };
    let outcomes = race(
        &state,
        &[
            ("sweep", |s: &Renaming| {
                let chunks = s.store.chunk_store();
                match chunks.sweep_unused_chunks(s.min_atime, s.min_atime) {
                    Ok(_) => Outcome::OK,
                    Err(err) => Outcome::error(err),
                }
            }),
            ("verify", |s: &Renaming| {
                let mut labels = Vec::new();
                for digest in &s.digests {
                    labels.push(
                        match s.store.chunk_store().rename_chunk_if_corrupt(digest) {
                            Ok(Renamed::Renamed(_)) => "renamed",
                            Ok(Renamed::Vanished) => "vanished",
                            Ok(Renamed::Intact) => "intact",
                            Err(err) => return Outcome::error(err),
                        },
                    );
                }
                Outcome::new(labels.join(" "))
            }),
        ],
    );
    Ok(verdict(check_bad_rename(&outcomes)))
}

/// The check of [`bad_rename::BadRename`].
fn check_bad_rename(outcomes: &Outcomes) -> Result<(), ScenarioError> {
    outcomes.expect("sweep", &[Outcome::OK])?;
    let verify = outcomes.of("verify").map(Outcome::as_str).unwrap_or("");
    if verify
        .split(' ')
        .all(|label| label == "renamed" || label == "vanished")
    {
        Ok(())
    } else {
        Err(ScenarioError::violation(format!("verify ended `{verify}`")))
    }
}

// ---- B23: a failed first backup × another owner's backup of the group ----

const ABORTED: Outcome = Outcome::label("aborted");
const OWNED_BY_OTHER: Outcome = Outcome::label("owned-by-other");
const OTHER_OWNER: &str = "other@pam";

struct Cleanup {
    store: Datastore<RealWorld>,
    group: BackupGroup,
    failing: BackupDir,
    other: BackupDir,
}

fn start_error(err: store::datastore::Error) -> Outcome {
    use store::datastore::Error;
    match err {
        Error::NoOwner(_) => Outcome::label("no-owner"),
        Error::BackupTimeNotNewer { .. } => Outcome::label("not-newer"),
        Error::OwnerMismatch { .. } => OWNED_BY_OTHER,
        err => Outcome::of::<()>(&Err(err)),
    }
}

fn cleanup_group(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    let store = new_datastore(scratch, reverting(reverted, Bug::B23CleanupRelocksGroup))?;
    let group = setup(group("vm/200"))?;
    let now = store.world().now();
    let failing = setup(snapshot_at(&group, now))?;
    let other = setup(snapshot_at(&group, now + 60))?;
    let state = Cleanup {
        store,
        group,
        failing,
        other,
    };
    let outcomes = race(
        &state,
        &[
            ("failing", |s: &Cleanup| {
                match s.store.start_backup(&s.failing, OWNER) {
                    Ok(session) => match session.abort() {
                        Ok(()) => ABORTED,
                        Err(err) => Outcome::new(format!("abort failed: {err}")),
                    },
                    Err(err) => start_error(err),
                }
            }),
            ("other", |s: &Cleanup| {
                let archives = [ArchiveSpec::new("root.didx", vec![chunk("A")])];
                match backup_snapshot(&s.store, &s.other, OTHER_OWNER, &archives) {
                    Ok(_) => Outcome::OK,
                    Err(err) => start_error(err),
                }
            }),
        ],
    );
    Ok(verdict(check_cleanup_group(&state, &outcomes)))
}

/// The check of [`b23_cleanup_group::CleanupGroup`].
fn check_cleanup_group(state: &Cleanup, outcomes: &Outcomes) -> Result<(), ScenarioError> {
    let violation = b23_cleanup_group::VIOLATION;
    let store = &state.store;
    let failed =
        |what: &str, err: &dyn fmt::Display| ScenarioError::violation(format!("{what}: {err}"));
    let group_dir = store.group_path(&state.group);
    let exists = store
        .world()
        .try_metadata(&group_dir)
        .map_err(|err| failed("stat", &err))?
        .is_some();
    let snapshots = store
        .list_snapshots(&state.group)
        .map_err(|err| failed("list", &err))?;
    let other_ok = outcomes.of("other") == Some(&Outcome::OK);
    if outcomes.of("other") == Some(&OWNED_BY_OTHER) {
        return Err(ScenarioError::violation(format!(
            "{violation}: the second backup found {} owned by the first, which failed",
            state.group
        )));
    }
    if !other_ok && exists {
        return Err(ScenarioError::violation(format!(
            "{violation}: {} is still there",
            state.group
        )));
    }
    if other_ok {
        let dirs: Vec<&BackupDir> = snapshots.iter().map(|info| &info.dir).collect();
        if dirs != [&state.other] || !snapshots.iter().all(|info| info.finished) {
            return Err(ScenarioError::violation(format!(
                "the group should hold exactly {}, it holds {snapshots:?}",
                state.other
            )));
        }
    }
    outcomes.expect(
        "failing",
        &[
            ABORTED,
            Outcome::BUSY,
            Outcome::label("no-owner"),
            Outcome::label("not-newer"),
            OWNED_BY_OTHER,
        ],
    )?;
    outcomes.expect(
        "other",
        &[Outcome::OK, Outcome::BUSY, Outcome::label("no-owner")],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    count_files(&entry.path())
                } else {
                    1
                }
            })
            .sum()
    }

    /// Aging the chunk files is what makes GC sweep unreferenced chunks in the B3 twin (the
    /// simulated scenario moves its clock instead); without it the twin could never fail.
    #[test]
    fn aged_unreferenced_chunks_are_swept() {
        for (age, swept) in [(true, true), (false, false)] {
            let scratch = Scratch::new().unwrap();
            let store = new_datastore(&scratch.path, Regressions::none()).unwrap();
            let now = store.world().now();
            let base = snapshot_at(&group("vm/100").unwrap(), now - 3 * DAY).unwrap();
            plant_backup(&store, &base, &["A", "B"]).unwrap();
            let chunks = scratch.path.join("ds").join(".chunks");
            if age {
                age_files(&chunks, now - 3 * DAY).unwrap();
            }
            let before = count_files(&chunks);
            store.forget_snapshot(&base).unwrap();
            let options = GcOptions {
                atime_safety_check: false,
                ..GcOptions::default()
            };
            store.garbage_collection(&options).unwrap();
            let after = count_files(&chunks);
            assert_eq!(before - after == 2, swept, "before {before}, after {after}");
        }
    }
}
