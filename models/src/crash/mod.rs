//! Crash-consistency and fault-injection tests of the store.
//!
//! Every [`Workload`] is a short deterministic sequence on a `SimWorld<StdSync>`: a setup
//! (made durable with one `syncfs`) and one store operation (backup, incremental backup,
//! forget, prune, GC, verify, `update_manifest`, set protection), run at a [`SyncLevel`].
//! [`run_case`] explores one workload at one level:
//!
//! * **Crash at every persistence point.** One run counts the persistence points `P` of the
//!   operation (every `sync_all`, `fsync_dir`, `syncfs`, `rename`, `remove_*`). For each `k` in
//!   `1..=P` the workload runs again with a crash armed at point `k`; the frozen image is then
//!   recovered several ways: only the durable state, everything (a process crash), a few
//!   seed-chosen dependency-respecting subsets of the pending operations, for a sample of the
//!   points every state `crash_states` enumerates (up to a limit), and for each pending
//!   operation the state that keeps just it and what it depends on (a rename without the data
//!   it names, an unlink without the unlink before it, ...).
//! * **Crash right after the operation returned**: the durable-only image and seed-chosen
//!   subsets of the final state, so everything reported done must be durable.
//! * **Fail the N-th operation, for every N.** EIO and ENOSPC, transient and persistent, over
//!   all operations; and EIO of the N-th sync call (after which the lost data stays lost although
//!   a retried fsync would succeed). The operation must succeed or return a typed error, never
//!   panic; the live store is checked afterwards (by the same process), and at the durable
//!   levels also the crash image of only its durable state, right after the operation and
//!   again after the live check, so success reported on an fsync that failed is caught, and so
//!   is a later operation that takes a chunk left by a failed fsync for a durable one.
//!
//! Each recovered or failed world goes through [`check::check_recovered`]: the store opens;
//! every snapshot whose success was reported is finished and intact (verify passes, a reader
//! reads every file and chunk); every snapshot that lists as finished is intact, so no
//! half-written snapshot is visible as finished; removals, notes, protection and verify states
//! that were reported are there; GC right away (default cutoff) succeeds past whatever the crash
//! left; forget removes every unfinished snapshot; the next backup of each group (and of the
//! workloads' group) succeeds and is intact (after the owner is set again where a crash took the
//! owner file of an emptied group); GC two days later (cutoff one minute) succeeds, loses
//! nothing referenced and removes the temporary chunk files. At sync level `none` the store
//! promises nothing after a
//! power loss: there only the process crash (every operation kept) is checked in full, the
//! other states only for panics.
//!
//! A violation names the crash point and crash state (or the fault) that replays it:
//! [`replay_crash`] and [`replay_fault`] run exactly that one case again ([`replays`] any
//! violation). [`REVERTED_FIXES`] lists every durability and recovery fix of the store with its
//! switch (`store::regressions::Bug`) and the case that must catch it reverted.
//!
//! [`interleaving`] adds a crash as a scheduled event in a concurrent GC × backup, explored by
//! shuttle.

pub mod check;
pub mod interleaving;
pub mod workloads;

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use sim::{Fault, OpFilter, SimWorld};

pub use sim::CrashKeep;
use store::chunk_store::SyncLevel;
use store::regressions::{Bug, Regressions};
use store::sync::StdSync;

use crate::explore::catch_panic;

pub use check::{Expectations, Strictness, check_recovered};
pub use workloads::{Fixture, Reported, Workload, level_name, prepare};

/// Seed of every crash world (it picks the `read_dir` order).
pub const WORLD_SEED: u64 = 8;

/// The sync levels, in report order.
pub const LEVELS: [SyncLevel; 3] = [SyncLevel::None, SyncLevel::File, SyncLevel::Filesystem];

/// How much of the crash and fault space one case explores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashBudget {
    /// Seed-chosen crash states recovered at every persistence point (besides "durable only"
    /// and "everything").
    pub seeded_per_point: u64,
    /// Every `enumerate_every`-th persistence point (and the last) also recovers every state
    /// of `crash_states(state_limit)`; 0 never.
    pub enumerate_every: u64,
    /// The limit passed to `crash_states`.
    pub state_limit: usize,
    /// Every `singletons_every`-th persistence point (and the last) also recovers, for each
    /// pending operation, the state that keeps just it and what it depends on (a rename kept
    /// without the data it names, ...); 0 never.
    pub singletons_every: u64,
    /// Fault runs fail the N-th operation for N = 1, 1 + stride, 1 + 2 stride, ...; 1 is every
    /// N; 0 runs no fault.
    pub fault_stride: u64,
}

impl CrashBudget {
    /// The report's budget: every point, every N.
    pub const FULL: CrashBudget = CrashBudget {
        seeded_per_point: 8,
        enumerate_every: 2,
        state_limit: 256,
        singletons_every: 1,
        fault_stride: 1,
    };

    /// The default `cargo test` budget: every point, a sample of N.
    pub const REDUCED: CrashBudget = CrashBudget {
        seeded_per_point: 1,
        enumerate_every: 0,
        state_limit: 16,
        singletons_every: 3,
        fault_stride: 7,
    };
}

/// What happened to the world when a violation showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The run without crash or fault.
    Clean,
    /// A crash right after the operation returned (no crash armed), recovered as `keep`.
    AfterReturn {
        /// The recovered state.
        keep: CrashKeep,
    },
    /// A crash at persistence point `point` (1-based, counted from the workload's start) of
    /// `points`, recovered as `keep`.
    Crash {
        /// The crash point.
        point: u64,
        /// The workload's persistence points.
        points: u64,
        /// The recovered state.
        keep: CrashKeep,
    },
    /// The fault rule, armed when the workload started.
    Fault {
        /// The rule.
        fault: Fault,
        /// Where the violation showed.
        stage: FaultStage,
    },
}

/// Where a fault run's violation showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultStage {
    /// In the live world after the operation.
    Live,
    /// In the crash image of only the durable state, right after the operation.
    Durable,
    /// In the crash image of only the durable state after the live recovery check (its GC
    /// and its backups, which must be durable too).
    AfterCheck,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Clean => f.write_str("without crash or fault"),
            Event::AfterReturn { keep } => {
                write!(
                    f,
                    "crash right after the operation returned, state {keep:?}"
                )
            }
            Event::Crash {
                point,
                points,
                keep,
            } => {
                write!(
                    f,
                    "crash at persistence point {point} of {points}, state {keep:?}"
                )
            }
            Event::Fault { fault, stage } => {
                let filter = filter_name(fault.ops);
                write!(
                    f,
                    "{} {} of the {}-th {}{}operation",
                    if fault.persistent {
                        "persistent"
                    } else {
                        "transient"
                    },
                    error_name(fault.kind),
                    fault.nth,
                    filter,
                    if filter.is_empty() { "" } else { " " }
                )?;
                match stage {
                    FaultStage::Live => Ok(()),
                    FaultStage::Durable => {
                        f.write_str(", then a crash keeping only the durable state")
                    }
                    FaultStage::AfterCheck => f.write_str(
                        ", then the recovery check, then a crash keeping only the durable state",
                    ),
                }
            }
        }
    }
}

fn error_name(kind: io::ErrorKind) -> &'static str {
    match kind {
        io::ErrorKind::Other => "EIO",
        io::ErrorKind::StorageFull => "ENOSPC",
        _ => "error",
    }
}

fn filter_name(filter: OpFilter) -> &'static str {
    match filter {
        OpFilter::Any => "",
        OpFilter::Sync => "sync",
        OpFilter::Write => "write",
        OpFilter::Namespace => "namespace",
        OpFilter::Touch => "touch",
        OpFilter::Op(_) => "matching",
    }
}

/// One case that broke a promise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The workload.
    pub workload: Workload,
    /// The sync level.
    pub level: SyncLevel,
    /// The crash or fault that shows it.
    pub event: Event,
    /// What the operation reported.
    pub reported: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at level {}, {}: {} (the operation reported: {})",
            self.workload,
            level_name(self.level),
            self.event,
            self.message,
            self.reported
        )
    }
}

/// The result of [`run_case`].
#[derive(Debug, Clone)]
pub struct CaseReport {
    /// The workload.
    pub workload: Workload,
    /// The sync level.
    pub level: SyncLevel,
    /// Persistence points of the operation.
    pub persistence_points: u64,
    /// Gated filesystem operations of the operation.
    pub operations: u64,
    /// Sync calls of the operation (`sync_all`, `fsync_dir`, `syncfs`).
    pub sync_calls: u64,
    /// Crash images recovered and checked.
    pub crash_states: u64,
    /// Fault runs.
    pub fault_points: u64,
    /// Broken promises (empty when the store is right).
    pub violations: Vec<Violation>,
    /// Wall-clock time of the case.
    pub elapsed: Duration,
}

/// One case: a workload at a sync level, with some fixes reverted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// The workload.
    pub workload: Workload,
    /// The sync level.
    pub level: SyncLevel,
    /// Reverted fixes (the planted durability bug, for the test that it is caught).
    pub regressions: Regressions,
}

impl Case {
    /// The workload at `level` with every fix in place.
    pub fn new(workload: Workload, level: SyncLevel) -> Case {
        Case {
            workload,
            level,
            regressions: Regressions::none(),
        }
    }

    /// The same case with `regressions` reverted.
    pub fn with_regressions(self, regressions: Regressions) -> Case {
        Case {
            regressions,
            ..self
        }
    }

    fn prepare(&self) -> Result<Fixture, String> {
        prepare(self.workload, self.level, self.regressions, WORLD_SEED)
    }

    fn violation(&self, event: Event, reported: &Reported, message: String) -> Violation {
        let reported = match reported {
            Reported::Ok => "ok".to_owned(),
            Reported::Failed(err) => format!("error: {err}"),
        };
        Violation {
            workload: self.workload,
            level: self.level,
            event,
            reported,
            message,
        }
    }
}

/// The workload's operation with panics caught.
fn run_guarded(fixture: &Fixture) -> (Reported, Expectations) {
    catch_panic(|| workloads::run(fixture)).unwrap_or_else(|message| {
        (
            Reported::Failed(format!("PANIC: {message}")),
            Expectations::default(),
        )
    })
}

/// [`check_recovered`] with panics caught, and a panicking operation reported as a violation.
fn check_guarded(
    case: &Case,
    world: &SimWorld<StdSync>,
    strictness: Strictness,
    reported: &Reported,
    expect: &Expectations,
) -> Result<check::Recovered, String> {
    if let Reported::Failed(err) = reported
        && err.starts_with("PANIC: ")
    {
        return Err(format!("the operation panicked: {err}"));
    }
    match catch_panic(|| check_recovered(world, case.level, case.regressions, strictness, expect)) {
        Ok(result) => result,
        Err(panic) => Err(format!("the recovery check panicked: {panic}")),
    }
}

/// [`check::check_store`] on the fixture's own datastore (the process goes on), with panics
/// caught.
fn check_live(
    fixture: &Fixture,
    reported: &Reported,
    expect: &Expectations,
) -> Result<check::Recovered, String> {
    if let Reported::Failed(err) = reported
        && err.starts_with("PANIC: ")
    {
        return Err(format!("the operation panicked: {err}"));
    }
    match catch_panic(|| check::check_store(&fixture.store, Strictness::Full, expect)) {
        Ok(result) => result,
        Err(panic) => Err(format!("the recovery check panicked: {panic}")),
    }
}

/// The durable-state checks of a world whose operation has returned: the durable-only image
/// right away (unless level `none`), the live world, and the durable-only image after the
/// live check (its GC and backups must be durable too). `Err` holds each stage that failed.
fn check_returned(
    case: &Case,
    fixture: &Fixture,
    reported: &Reported,
    expect: &Expectations,
) -> Vec<(FaultStage, String)> {
    let world = &fixture.world;
    let durable_level = case.level != SyncLevel::None;
    let mut failed = Vec::new();
    if durable_level {
        let image = world.crash(CrashKeep::DurableOnly);
        if let Err(message) = check_guarded(case, &image, Strictness::Full, reported, expect) {
            failed.push((FaultStage::Durable, message));
        }
    }
    match check_live(fixture, reported, expect) {
        Ok(recovered) if durable_level => {
            let image = world.crash(CrashKeep::DurableOnly);
            let mut after = expect.clone();
            after.keep.extend(recovered.backups);
            if let Err(message) = check_guarded(case, &image, Strictness::Full, reported, &after) {
                failed.push((FaultStage::AfterCheck, message));
            }
        }
        Ok(_) => {}
        Err(message) => failed.push((FaultStage::Live, message)),
    }
    failed
}

/// The crash states recovered at point `point` of `points` under `budget`.
fn crash_keeps(
    world: &SimWorld<StdSync>,
    point: u64,
    points: u64,
    budget: &CrashBudget,
) -> Vec<CrashKeep> {
    let mut keeps = vec![CrashKeep::DurableOnly, CrashKeep::All];
    keeps.extend((0..budget.seeded_per_point).map(|seed| CrashKeep::Seeded(point * 1_000 + seed)));
    let enumerate = budget.enumerate_every > 0
        && (point.is_multiple_of(budget.enumerate_every) || point == points);
    if enumerate {
        for keep in world.crash_states(budget.state_limit) {
            if !keeps.contains(&keep) {
                keeps.push(keep);
            }
        }
    }
    let singletons = budget.singletons_every > 0
        && (point.is_multiple_of(budget.singletons_every) || point == points);
    if singletons {
        keeps.extend((0..world.pending_ops()).map(|index| CrashKeep::Subset(vec![index])));
    }
    keeps
}

/// Explores one case under `budget` (see the module documentation).
pub fn run_case(case: &Case, budget: &CrashBudget) -> CaseReport {
    let started = Instant::now();
    let mut report = CaseReport {
        workload: case.workload,
        level: case.level,
        persistence_points: 0,
        operations: 0,
        sync_calls: 0,
        crash_states: 0,
        fault_points: 0,
        violations: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let fixture = match case.prepare() {
        Ok(fixture) => fixture,
        Err(err) => {
            let message = format!("setup failed: {err}");
            report
                .violations
                .push(case.violation(Event::Clean, &Reported::Ok, message));
            report.elapsed = started.elapsed();
            return report;
        }
    };

    // The clean run: counts, and the promises without any crash.
    let world = fixture.world.clone();
    let (points0, ops0, syncs0) = (
        world.persistence_points(),
        world.op_count(),
        sync_calls(&world),
    );
    let (reported, expect) = run_guarded(&fixture);
    report.persistence_points = world.persistence_points() - points0;
    report.operations = world.op_count() - ops0;
    report.sync_calls = sync_calls(&world) - syncs0;
    if case.level != SyncLevel::None {
        for seed in 0..budget.seeded_per_point {
            let keep = CrashKeep::Seeded(seed);
            report.crash_states += 1;
            let image = world.crash(keep.clone());
            if let Err(message) = check_guarded(case, &image, Strictness::Full, &reported, &expect)
            {
                report.violations.push(case.violation(
                    Event::AfterReturn { keep },
                    &reported,
                    message,
                ));
            }
        }
    }
    for (stage, message) in check_returned(case, &fixture, &reported, &expect) {
        let event = match stage {
            FaultStage::Live => Event::Clean,
            FaultStage::Durable | FaultStage::AfterCheck => Event::AfterReturn {
                keep: CrashKeep::DurableOnly,
            },
        };
        report
            .violations
            .push(case.violation(event, &reported, message));
    }

    for point in 1..=report.persistence_points {
        crash_point(case, budget, point, &mut report);
    }
    if budget.fault_stride > 0 {
        let kinds = [io::ErrorKind::Other, io::ErrorKind::StorageFull];
        let mut rules = Vec::new();
        for nth in (1..=report.operations).step_by(budget.fault_stride as usize) {
            for kind in kinds {
                let fault = Fault {
                    nth,
                    ops: OpFilter::Any,
                    kind,
                    persistent: false,
                };
                rules.push(fault);
                rules.push(Fault {
                    persistent: true,
                    ..fault
                });
            }
        }
        for nth in 1..=report.sync_calls {
            rules.push(Fault {
                nth,
                ops: OpFilter::Sync,
                kind: io::ErrorKind::Other,
                persistent: false,
            });
        }
        for fault in rules {
            fault_run(case, fault, &mut report);
        }
    }
    report.elapsed = started.elapsed();
    report
}

fn sync_calls(world: &SimWorld<StdSync>) -> u64 {
    let stats = world.sim_stats();
    stats.sync_all + stats.fsync_dir + stats.syncfs
}

/// One crash point: run, freeze at `point`, recover and check every state of the budget.
fn crash_point(case: &Case, budget: &CrashBudget, point: u64, report: &mut CaseReport) {
    let points = report.persistence_points;
    let fixture = match case.prepare() {
        Ok(fixture) => fixture,
        Err(err) => {
            let event = Event::Crash {
                point,
                points,
                keep: CrashKeep::All,
            };
            report
                .violations
                .push(case.violation(event, &Reported::Ok, format!("setup: {err}")));
            return;
        }
    };
    let world = fixture.world.clone();
    world.arm_crash(world.persistence_points() + point);
    let (reported, expect) = run_guarded(&fixture);
    drop(fixture);
    if !world.crashed() {
        let event = Event::Crash {
            point,
            points,
            keep: CrashKeep::All,
        };
        let message = "the run did not reach the crash point again (not deterministic)".to_owned();
        report
            .violations
            .push(case.violation(event, &reported, message));
        return;
    }
    for keep in crash_keeps(&world, point, points, budget) {
        report.crash_states += 1;
        let recovered = world.crash(keep.clone());
        let strictness = Strictness::for_crash(case.level, keep == CrashKeep::All);
        if let Err(message) = check_guarded(case, &recovered, strictness, &reported, &expect) {
            let event = Event::Crash {
                point,
                points,
                keep,
            };
            report
                .violations
                .push(case.violation(event, &reported, message));
        }
    }
}

/// One fault run: the operation with `fault` armed, then [`check_returned`].
fn fault_run(case: &Case, fault: Fault, report: &mut CaseReport) {
    report.fault_points += 1;
    let fixture = match case.prepare() {
        Ok(fixture) => fixture,
        Err(err) => {
            let event = Event::Fault {
                fault,
                stage: FaultStage::Live,
            };
            let message = format!("setup: {err}");
            report
                .violations
                .push(case.violation(event, &Reported::Ok, message));
            return;
        }
    };
    let world = fixture.world.clone();
    world.inject_fault(fault);
    let (reported, expect) = run_guarded(&fixture);
    world.clear_faults();
    for (stage, message) in check_returned(case, &fixture, &reported, &expect) {
        let event = Event::Fault { fault, stage };
        report
            .violations
            .push(case.violation(event, &reported, message));
    }
}

/// Runs one crash case again: the workload crashed at `point` (1-based, counted from the
/// workload's start) and recovered as `keep`. `Err` is the violation's message.
pub fn replay_crash(case: &Case, point: u64, keep: CrashKeep) -> Result<(), String> {
    let fixture = case.prepare()?;
    let world = fixture.world.clone();
    world.arm_crash(world.persistence_points() + point);
    let (reported, expect) = run_guarded(&fixture);
    let process_crash = keep == CrashKeep::All;
    let recovered = world.crash(keep);
    let strictness = Strictness::for_crash(case.level, process_crash);
    check_guarded(case, &recovered, strictness, &reported, &expect).map(drop)
}

/// Runs one fault case again. `Err` is the first violation's message.
pub fn replay_fault(case: &Case, fault: Fault) -> Result<(), String> {
    let fixture = case.prepare()?;
    let world = fixture.world.clone();
    world.inject_fault(fault);
    let (reported, expect) = run_guarded(&fixture);
    world.clear_faults();
    match check_returned(case, &fixture, &reported, &expect)
        .into_iter()
        .next()
    {
        Some((stage, message)) => Err(format!("{stage:?}: {message}")),
        None => Ok(()),
    }
}

/// A durability or recovery fix of the store, and the case whose exploration must catch it
/// when it is reverted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevertedFix {
    /// The switch.
    pub bug: Bug,
    /// The workload that shows it.
    pub workload: Workload,
    /// At this sync level.
    pub level: SyncLevel,
}

impl RevertedFix {
    /// The case with the fix reverted.
    pub fn case(&self) -> Case {
        Case::new(self.workload, self.level).with_regressions(Regressions::none().with(self.bug))
    }
}

/// Every durability and recovery fix of the store with its switch, in report order; the first
/// is the planted bug of the issue (the manifest published before the index is synced).
pub const REVERTED_FIXES: [RevertedFix; 7] = [
    RevertedFix {
        bug: Bug::ManifestBeforeIndexSync,
        workload: Workload::Backup,
        level: SyncLevel::File,
    },
    RevertedFix {
        bug: Bug::SyncfsAfterManifest,
        workload: Workload::Backup,
        level: SyncLevel::Filesystem,
    },
    RevertedFix {
        bug: Bug::ForgetWithoutDirSync,
        workload: Workload::Forget,
        level: SyncLevel::File,
    },
    RevertedFix {
        bug: Bug::ChunkKeptAfterDirSyncError,
        workload: Workload::Backup,
        level: SyncLevel::File,
    },
    RevertedFix {
        bug: Bug::ProtectionWithoutDirSync,
        workload: Workload::SetProtection,
        level: SyncLevel::File,
    },
    RevertedFix {
        bug: Bug::GcAbortsOnDamagedUnfinishedIndex,
        workload: Workload::Backup,
        level: SyncLevel::Filesystem,
    },
    RevertedFix {
        bug: Bug::SweepKeepsChunkTemps,
        workload: Workload::Gc,
        level: SyncLevel::File,
    },
];

/// Replays `violation` of `case` (a crash or fault event): `true` if it shows again.
pub fn replays(case: &Case, violation: &Violation) -> bool {
    match &violation.event {
        Event::Crash { point, keep, .. } => replay_crash(case, *point, keep.clone()).is_err(),
        Event::Fault { fault, .. } => replay_fault(case, *fault).is_err(),
        Event::Clean | Event::AfterReturn { .. } => {
            let Ok(fixture) = case.prepare() else {
                return false;
            };
            let world = fixture.world.clone();
            let (reported, expect) = run_guarded(&fixture);
            let keep = match &violation.event {
                Event::AfterReturn { keep } => keep.clone(),
                _ => CrashKeep::All,
            };
            let image = world.crash(keep);
            let after = check_guarded(case, &image, Strictness::Full, &reported, &expect).is_err();
            after || !check_returned(case, &fixture, &reported, &expect).is_empty()
        }
    }
}

/// Every workload at every level, in report order.
pub fn all_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for workload in Workload::ALL {
        for level in LEVELS {
            cases.push(Case::new(workload, level));
        }
    }
    cases
}
