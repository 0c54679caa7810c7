//! Running scenarios: the shuttle portfolio, loom, replay, and the determinism check.
//!
//! A [`Plan`] says which explorers run (shuttle random, PCT of some depth, URW, loom with a
//! preemption bound), with which seed and [`Budget`], under which [`Limits`] (task stack size,
//! shuttle's step bound, loom's branch bound), and where failures are saved. [`Plan::explore`]
//! runs a [`Scenario`] under each explorer in turn and returns a [`Report`]: per explorer the
//! executions run, the distinct outcome vectors seen, executions per second, and the first
//! failure, if any.
//!
//! # Failures and replay
//!
//! Every shuttle execution runs under a recording wrapper around the scheduler, so the failing
//! execution's schedule is known exactly; it is encoded the way shuttle encodes schedules (hex,
//! accepted by `shuttle::replay` and `ReplayScheduler::new_from_encoded`). A [`Failure`] carries
//! the scenario, the explorer, the run's seed, the failing execution's index (and for the random
//! scheduler that execution's own seed), the schedule and the panic message. With a failure
//! directory set, it is written to a record file, and its printed form ends with the exact
//! command that replays it (`EXPLORE_REPLAY=<record> cargo test ... -- --exact`).
//!
//! Loom prints nothing but the panic message. A failing loom exploration is therefore run a
//! second time with a checkpoint file written before every iteration: loom's exploration is
//! deterministic, so the file then holds the failing iteration's path, and loom replays it in one
//! iteration.
//!
//! # Determinism
//!
//! [`Plan::check_determinism`] runs the same seed twice and compares trace hashes (every
//! execution's schedule, outcomes and final simulated disk), then runs shuttle's
//! uncontrolled-nondeterminism scheduler, which replays every schedule and fails if the set of
//! runnable tasks ever differs.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use shuttle::rand::RngCore;
use shuttle::scheduler::{
    PctScheduler, RandomScheduler, Scheduler, UncontrolledNondeterminismCheckScheduler,
    UrwRandomScheduler,
};
use shuttle::{Config, FailurePersistence, MaxSteps, Runner};
use sim::{LoomSync, ShuttleSync};

pub use crate::failure::Failure;
use crate::failure::Replay;
use crate::recorder::{Recorder, Recording, decode_schedule, encode_schedule};
use crate::scenario::{Fnv, Outcomes, Scenario, execute};

pub use crate::explorer::{Explorer, UnknownExplorer};
pub use crate::scenario::catch_panic;

/// How much exploring one explorer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Shuttle executions per explorer. (Loom explores until its bound is exhausted, capped by
    /// [`Limits::loom_max_iterations`].)
    pub executions: usize,
    /// Wall time per explorer; checked between executions (shuttle) or iterations (loom).
    pub time: Option<Duration>,
}

impl Budget {
    /// `executions` shuttle executions per explorer, no time limit.
    pub fn executions(executions: usize) -> Budget {
        Budget {
            executions,
            time: None,
        }
    }

    /// This budget with a time limit per explorer as well.
    pub fn with_time(self, time: Duration) -> Budget {
        Budget {
            time: Some(time),
            ..self
        }
    }
}

/// Per-execution bounds of the explorers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Stack of every shuttle task (the store hashes with SHA-256 and serialises JSON on it;
    /// shuttle's default is 60 KiB). Loom threads get 1 MiB from `sim::LoomSync`.
    pub stack_size: usize,
    /// Shuttle fails an execution that takes more scheduling steps than this (a livelock or
    /// spin loop would otherwise run forever).
    pub max_steps: usize,
    /// Loom's bound on branch points per execution.
    pub loom_max_branches: usize,
    /// Loom iterations at most, even if its exploration is not exhausted.
    pub loom_max_iterations: usize,
}

/// Per-task stack for scenarios that hash and serialise (shuttle's default is 60 KiB).
pub const STACK_SIZE: usize = 1 << 20;

/// Default shuttle step bound per execution.
pub const MAX_STEPS: usize = 200_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            stack_size: STACK_SIZE,
            max_steps: MAX_STEPS,
            loom_max_branches: 50_000,
            loom_max_iterations: 1_000_000,
        }
    }
}

/// The shuttle configuration every exploration uses: raised stack, step bound, the time
/// budget, and no persistence of shuttle's own (failures are recorded by this module).
pub fn shuttle_config(limits: &Limits, time: Option<Duration>) -> Config {
    let mut config = Config::new();
    config.stack_size = limits.stack_size;
    config.max_steps = MaxSteps::FailAfter(limits.max_steps);
    config.max_time = time;
    config.failure_persistence = FailurePersistence::None;
    config.silence_warnings = true;
    config
}

/// What one explorer did with one scenario.
#[derive(Debug, Clone)]
pub struct Exploration {
    /// The scenario's name.
    pub scenario: String,
    /// The explorer used.
    pub explorer: Explorer,
    /// The seed of the run.
    pub seed: u64,
    /// Executions run (including a failing one).
    pub executions: usize,
    /// Wall time spent.
    pub elapsed: Duration,
    /// How often each outcome vector was seen (passing executions only).
    pub outcomes: BTreeMap<Outcomes, usize>,
    /// Hash of everything the run did: every execution's schedule (shuttle), outcomes and, with
    /// tracing on, final simulated disk. Equal for equal runs.
    pub trace_hash: u64,
    /// Shuttle: the whole execution budget ran. Loom: the exploration was exhausted within its
    /// bound. False after a failure.
    pub complete: bool,
    /// Why the explorer did not run, if it did not.
    pub skipped: Option<String>,
    /// The first failure, if any.
    pub failure: Option<Failure>,
}

impl Exploration {
    /// Executions per second.
    pub fn executions_per_second(&self) -> f64 {
        self.executions as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Number of distinct outcome vectors seen.
    pub fn distinct_outcomes(&self) -> usize {
        self.outcomes.len()
    }

    fn skipped(scenario: String, explorer: Explorer, seed: u64, reason: String) -> Exploration {
        Exploration {
            scenario,
            explorer,
            seed,
            executions: 0,
            elapsed: Duration::ZERO,
            outcomes: BTreeMap::new(),
            trace_hash: 0,
            complete: false,
            skipped: Some(reason),
            failure: None,
        }
    }

    /// One table row: explorer, executions, exec/s, distinct outcomes, first failure.
    pub fn row(&self) -> String {
        if let Some(reason) = &self.skipped {
            return format!(
                "{:<32} {:<14} skipped: {reason}",
                self.scenario,
                self.explorer.to_string()
            );
        }
        let first = self
            .failure
            .as_ref()
            .map_or("-".to_owned(), |f| f.execution.to_string());
        format!(
            "{:<32} {:<14} {:>10} {:>10.0} {:>8} {:>10} {:<8}",
            self.scenario,
            self.explorer.to_string(),
            self.executions,
            self.executions_per_second(),
            self.distinct_outcomes(),
            first,
            if self.complete { "complete" } else { "" },
        )
    }
}

/// What a [`Plan`] did with one scenario: one exploration per explorer.
#[derive(Debug, Clone)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// One per explorer, in plan order (a single one for a replay).
    pub explorations: Vec<Exploration>,
}

impl Report {
    /// The failures found.
    pub fn failures(&self) -> impl Iterator<Item = &Failure> {
        self.explorations
            .iter()
            .filter_map(|exploration| exploration.failure.as_ref())
    }

    /// Panics, printing every failure with its replay command, if any explorer found one.
    #[track_caller]
    pub fn assert_passed(&self) {
        let failures: Vec<String> = self.failures().map(ToString::to_string).collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// Panics, printing every failure with its replay command, if any explorer found a failure
    /// whose message does not contain `known`; failures that do are printed to stderr only.
    #[track_caller]
    pub fn assert_passed_except(&self, known: &str) {
        let (known, unexpected): (Vec<&Failure>, Vec<&Failure>) = self
            .failures()
            .partition(|failure| failure.message.contains(known));
        for failure in known {
            eprintln!("known issue found again:\n{failure}");
        }
        let unexpected: Vec<String> = unexpected.iter().map(ToString::to_string).collect();
        assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
    }

    /// Panics unless every explorer that ran found a failure whose message contains
    /// `expected`, within its budget.
    #[track_caller]
    pub fn assert_caught(&self, expected: &str) {
        for exploration in &self.explorations {
            if exploration.skipped.is_some() {
                continue;
            }
            match &exploration.failure {
                Some(failure) => assert!(
                    failure.message.contains(expected),
                    "{} found another failure than {expected:?}:\n{failure}",
                    exploration.explorer
                ),
                None => panic!(
                    "{} missed {expected:?} in {} executions of {}",
                    exploration.explorer, exploration.executions, self.scenario
                ),
            }
        }
    }

    /// The header of [`Report::table`].
    pub fn header() -> String {
        format!(
            "{:<32} {:<14} {:>10} {:>10} {:>8} {:>10}",
            "scenario", "explorer", "executions", "exec/s", "outcomes", "first fail"
        )
    }

    /// A table with one row per explorer.
    pub fn table(&self) -> String {
        let mut text = Report::header();
        for exploration in &self.explorations {
            text.push('\n');
            text.push_str(&exploration.row());
        }
        text
    }
}

/// What [`Plan::check_determinism`] found.
#[derive(Debug, Clone)]
pub struct Determinism {
    /// Executions per run.
    pub executions: usize,
    /// Trace hash of the first run.
    pub first: u64,
    /// Trace hash of the second run with the same seed.
    pub second: u64,
    /// A failure of either run (the scenario must pass to be compared).
    pub failure: Option<String>,
    /// What shuttle's uncontrolled-nondeterminism scheduler reported, if anything.
    pub nondeterminism: Option<String>,
}

impl Determinism {
    /// Same trace twice, no uncontrolled nondeterminism, no failure.
    pub fn is_deterministic(&self) -> bool {
        self.first == self.second && self.nondeterminism.is_none() && self.failure.is_none()
    }
}

/// Which explorers run a scenario, how long, and what happens to failures.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The explorers, run one after the other.
    pub explorers: Vec<Explorer>,
    /// Seed of every shuttle explorer's run.
    pub seed: u64,
    /// Budget per explorer.
    pub budget: Budget,
    /// Per-execution bounds.
    pub limits: Limits,
    /// Hash the final simulated disk of every execution into the trace hash (slower).
    pub trace: bool,
    /// Where failure records (and loom checkpoints) are written; `None` keeps them in memory.
    pub failure_dir: Option<PathBuf>,
    /// The command that re-runs this exploration; printed after `EXPLORE_REPLAY=<record>`.
    pub replay_command: Option<String>,
    /// Replay this recorded failure instead of exploring.
    pub replay: Option<Replay>,
    /// Print each failure to stderr as it is found.
    pub print_failures: bool,
}

impl Plan {
    /// The full portfolio (random, PCT 2 and 3, URW, loom with preemption bound 2), seed 1, this
    /// budget, default limits, failures printed but not saved.
    pub fn new(budget: Budget) -> Plan {
        Plan {
            explorers: Explorer::portfolio(Some(Explorer::DEFAULT_LOOM_BOUND)),
            seed: 1,
            budget,
            limits: Limits::default(),
            trace: false,
            failure_dir: None,
            replay_command: None,
            replay: None,
            print_failures: true,
        }
    }

    /// This plan with other explorers.
    pub fn explorers(self, explorers: &[Explorer]) -> Plan {
        Plan {
            explorers: explorers.to_vec(),
            ..self
        }
    }

    /// This plan with another seed.
    pub fn seed(self, seed: u64) -> Plan {
        Plan { seed, ..self }
    }

    /// This plan with failures saved under `dir`.
    pub fn failure_dir(self, dir: impl Into<PathBuf>) -> Plan {
        Plan {
            failure_dir: Some(dir.into()),
            ..self
        }
    }

    /// This plan with the command that re-runs it (printed in replay instructions).
    pub fn replay_command(self, command: impl Into<String>) -> Plan {
        Plan {
            replay_command: Some(command.into()),
            ..self
        }
    }

    /// This plan, silent about failures (for tests that expect them).
    pub fn quiet(self) -> Plan {
        Plan {
            print_failures: false,
            ..self
        }
    }

    /// Runs `scenario` under every explorer of the plan; or, if the plan replays a failure
    /// recorded for this scenario (or a bare schedule), only that replay. A replay recorded for
    /// another scenario skips this one.
    pub fn explore<Sc: Scenario>(&self, scenario: &Sc) -> Report {
        let name = scenario.name();
        let explorations = match &self.replay {
            Some(replay) => match replay.scenario() {
                Some(other) if other != name => vec![Exploration::skipped(
                    name.clone(),
                    Explorer::Replay,
                    self.seed,
                    format!("EXPLORE_REPLAY holds a failure of {other}"),
                )],
                _ => vec![self.replay(scenario, replay)],
            },
            None => self
                .explorers
                .iter()
                .map(|explorer| self.explore_with(scenario, *explorer))
                .collect(),
        };
        Report {
            scenario: name,
            explorations,
        }
    }

    /// Runs `scenario` under one explorer.
    pub fn explore_with<Sc: Scenario>(&self, scenario: &Sc, explorer: Explorer) -> Exploration {
        let mut exploration = match explorer {
            Explorer::Random => {
                let scheduler = RandomScheduler::new_from_seed(self.seed, self.budget.executions);
                self.run_shuttle(scenario, explorer, scheduler)
            }
            Explorer::Pct { depth } => {
                let scheduler =
                    PctScheduler::new_from_seed(self.seed, depth.max(1), self.budget.executions);
                self.run_shuttle(scenario, explorer, scheduler)
            }
            Explorer::Urw => {
                let scheduler =
                    UrwRandomScheduler::new_from_seed(self.seed, self.budget.executions);
                self.run_shuttle(scenario, explorer, scheduler)
            }
            Explorer::Loom { .. } if !scenario.loom() => Exploration::skipped(
                scenario.name(),
                explorer,
                self.seed,
                "too large for loom".to_owned(),
            ),
            Explorer::Loom { preemption_bound } => self.explore_loom(scenario, preemption_bound),
            Explorer::Replay => match &self.replay {
                Some(replay) => self.replay(scenario, replay),
                None => Exploration::skipped(
                    scenario.name(),
                    explorer,
                    self.seed,
                    "no recorded failure to replay".to_owned(),
                ),
            },
        };
        if let Some(failure) = &mut exploration.failure {
            self.persist(failure);
            failure.replay_command = self.replay_command.clone();
            if self.print_failures {
                eprintln!("{failure}");
            }
        }
        exploration
    }

    /// Replays a recorded failure (or a bare schedule or loom checkpoint) once.
    pub fn replay<Sc: Scenario>(&self, scenario: &Sc, replay: &Replay) -> Exploration {
        let started = Instant::now();
        let name = scenario.name();
        let (executions, result, stats, recorded) = match replay.loom_checkpoint() {
            Some(checkpoint) => {
                let bound = match replay.record().map(|record| record.explorer) {
                    Some(Explorer::Loom { preemption_bound }) => preemption_bound,
                    _ => None,
                };
                let (executions, result, stats) = self.replay_loom(scenario, checkpoint, bound);
                (executions, result, stats, None)
            }
            None => {
                let schedule = replay.schedule().unwrap_or_default();
                match decode_schedule(schedule) {
                    Err(message) => (0, Err(message), Stats::default(), None),
                    Ok(scheduler) => {
                        let (result, stats, recording) =
                            self.shuttle_run(scenario, scheduler, None);
                        let current = recording.lock_state().current.clone();
                        (1, result, stats, Some(current))
                    }
                }
            }
        };
        let failure = result.err().map(|message| {
            let original = replay.record();
            Failure {
                scenario: name.clone(),
                explorer: Explorer::Replay,
                seed: original.map_or(self.seed, |record| record.seed),
                execution: 1,
                budget: 1,
                execution_seed: None,
                message,
                schedule: recorded.as_ref().map(encode_schedule),
                loom_checkpoint: replay.loom_checkpoint().map(Path::to_owned),
                record_file: original.and_then(|record| record.record_file.clone()),
                replay_command: self.replay_command.clone(),
            }
        });
        Exploration {
            scenario: name,
            explorer: Explorer::Replay,
            seed: self.seed,
            executions,
            elapsed: started.elapsed(),
            trace_hash: stats.trace,
            outcomes: stats.outcomes,
            complete: failure.is_none(),
            skipped: None,
            failure,
        }
    }

    /// Runs `scenario` with the random scheduler twice on the plan's seed and budget, with
    /// tracing on, and compares the trace hashes; then runs shuttle's uncontrolled
    /// nondeterminism check for the same budget.
    pub fn check_determinism<Sc: Scenario>(&self, scenario: &Sc) -> Determinism {
        let traced = Plan {
            trace: true,
            print_failures: false,
            failure_dir: None,
            ..self.clone()
        };
        let first = traced.explore_with(scenario, Explorer::Random);
        let second = traced.explore_with(scenario, Explorer::Random);
        let failure = first
            .failure
            .as_ref()
            .or(second.failure.as_ref())
            .map(|f| f.message.clone());
        let checker = UncontrolledNondeterminismCheckScheduler::new(
            RandomScheduler::new_from_seed(self.seed, self.budget.executions),
        );
        let (result, _, _) = traced.shuttle_run(scenario, checker, None);
        Determinism {
            executions: first.executions,
            first: first.trace_hash,
            second: second.trace_hash,
            failure,
            nondeterminism: result.err(),
        }
    }

    fn run_shuttle<Sc: Scenario, Sch: Scheduler + 'static>(
        &self,
        scenario: &Sc,
        explorer: Explorer,
        scheduler: Sch,
    ) -> Exploration {
        let started = Instant::now();
        let (result, stats, recording) = self.shuttle_run(scenario, scheduler, self.budget.time);
        let elapsed = started.elapsed();
        let recorded = recording.lock_state();
        let executions = recorded.executions;
        let failure = result.err().map(|message| Failure {
            scenario: scenario.name(),
            explorer,
            seed: self.seed,
            execution: executions,
            budget: self.budget.executions,
            execution_seed: (explorer == Explorer::Random).then_some(recorded.current.seed),
            message,
            schedule: Some(encode_schedule(&recorded.current)),
            loom_checkpoint: None,
            record_file: None,
            replay_command: None,
        });
        let mut trace = Fnv::new();
        (recorded.schedules_hash(), stats.trace).hash(&mut trace);
        Exploration {
            scenario: scenario.name(),
            explorer,
            seed: self.seed,
            executions,
            elapsed,
            outcomes: stats.outcomes,
            trace_hash: trace.finish(),
            complete: failure.is_none() && executions >= self.budget.executions,
            skipped: None,
            failure,
        }
    }

    /// One shuttle run of `scenario` under `scheduler` (wrapped in a recorder).
    fn shuttle_run<Sc: Scenario, Sch: Scheduler + 'static>(
        &self,
        scenario: &Sc,
        scheduler: Sch,
        time: Option<Duration>,
    ) -> (Result<(), String>, Stats, Recording) {
        let stats = Arc::new(Mutex::new(Stats::default()));
        let recorder = Recorder::new(scheduler);
        let recording = recorder.recording();
        let config = shuttle_config(&self.limits, time);
        let body = {
            let (scenario, stats, trace) = (scenario.clone(), Arc::clone(&stats), self.trace);
            move || {
                // The world's seed (its listing order) is data the scheduler chooses, so it
                // varies between executions and replays exactly.
                let world_seed = shuttle::rand::thread_rng().next_u64();
                lock(&stats).executions += 1;
                let result = execute::<Sc, ShuttleSync>(&scenario, world_seed, trace);
                lock(&stats).record(&result);
                if let Err(message) = result {
                    std::panic::panic_any(message);
                }
            }
        };
        let result = catch_panic(move || {
            Runner::new(recorder, config).run(body);
        });
        let stats = std::mem::take(&mut *lock(&stats));
        (result, stats, recording)
    }

    fn explore_loom<Sc: Scenario>(&self, scenario: &Sc, bound: Option<usize>) -> Exploration {
        let name = scenario.name();
        let explorer = Explorer::Loom {
            preemption_bound: bound,
        };
        let started = Instant::now();
        let cap = self.limits.loom_max_iterations;
        let (executions, result, stats) = self.loom_run(scenario, bound, None, cap);
        let elapsed = started.elapsed();
        let out_of_time = self.budget.time.is_some_and(|time| elapsed >= time);
        let failure = result.err().map(|message| {
            let mut failure = Failure {
                scenario: name.clone(),
                explorer,
                seed: self.seed,
                execution: executions,
                budget: cap,
                execution_seed: None,
                message,
                schedule: None,
                loom_checkpoint: None,
                record_file: None,
                replay_command: None,
            };
            failure.loom_checkpoint = self.capture_loom_path(scenario, &failure, bound);
            failure
        });
        Exploration {
            scenario: name,
            explorer,
            seed: self.seed,
            executions,
            elapsed,
            outcomes: stats.outcomes,
            trace_hash: stats.trace,
            complete: failure.is_none() && executions < cap && !out_of_time,
            skipped: None,
            failure,
        }
    }

    /// Loom prints no schedule: run the failing exploration again, writing the path of every
    /// iteration before it runs, so the file ends up holding the failing iteration's path.
    fn capture_loom_path<Sc: Scenario>(
        &self,
        scenario: &Sc,
        failure: &Failure,
        bound: Option<usize>,
    ) -> Option<PathBuf> {
        let dir = self.failure_dir.as_ref()?;
        std::fs::create_dir_all(dir).ok()?;
        let path = dir.join(format!("{}.loom.json", failure.file_stem()));
        // An existing file would be loaded as the starting point: start from scratch.
        let _ = std::fs::remove_file(&path);
        let (executions, result, _) =
            self.loom_run(scenario, bound, Some(&path), failure.execution);
        match result {
            Err(message) if executions == failure.execution && message == failure.message => {
                Some(path)
            }
            _ => None,
        }
    }

    /// Replays a loom checkpoint: one iteration from the saved path (loom overwrites its
    /// checkpoint file, so it works on a copy).
    fn replay_loom<Sc: Scenario>(
        &self,
        scenario: &Sc,
        checkpoint: &Path,
        bound: Option<usize>,
    ) -> (usize, Result<(), String>, Stats) {
        let copy = std::env::temp_dir().join(format!(
            "explore-replay-{}-{}.json",
            std::process::id(),
            REPLAY_COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        if let Err(err) = std::fs::copy(checkpoint, &copy) {
            let message = format!(
                "cannot read loom checkpoint {}: {err}",
                checkpoint.display()
            );
            return (0, Err(message), Stats::default());
        }
        let result = self.loom_run(scenario, bound, Some(&copy), 1);
        let _ = std::fs::remove_file(&copy);
        result
    }

    /// One loom run of at most `max_iterations` iterations.
    fn loom_run<Sc: Scenario>(
        &self,
        scenario: &Sc,
        bound: Option<usize>,
        checkpoint: Option<&Path>,
        max_iterations: usize,
    ) -> (usize, Result<(), String>, Stats) {
        let stats = Arc::new(Mutex::new(Stats::default()));
        let body = {
            let (scenario, stats, trace) = (scenario.clone(), Arc::clone(&stats), self.trace);
            move || {
                // Counted before it runs: an iteration that loom itself aborts (branch bound,
                // deadlock) is still the failing one.
                lock(&stats).executions += 1;
                let result = execute::<Sc, LoomSync>(&scenario, scenario.world_seed(), trace);
                lock(&stats).record(&result);
                if let Err(message) = result {
                    std::panic::panic_any(message);
                }
            }
        };
        let (limits, time) = (self.limits, self.budget.time);
        let checkpoint = checkpoint.map(Path::to_owned);
        let result = catch_panic(move || {
            let mut builder = loom::model::Builder::new();
            builder.preemption_bound = bound;
            builder.max_branches = limits.loom_max_branches;
            // Budgets and checkpoints are only looked at every `checkpoint_interval` iterations.
            builder.checkpoint_interval = 1;
            builder.checkpoint_file = checkpoint;
            builder.max_permutations = Some(max_iterations.saturating_add(1));
            builder.max_duration = time;
            builder.log = false;
            builder.location = false;
            builder.check(body);
        });
        let stats = std::mem::take(&mut *lock(&stats));
        (stats.executions, result, stats)
    }

    /// Saves `failure` under the failure directory, if there is one.
    fn persist(&self, failure: &mut Failure) {
        let Some(dir) = &self.failure_dir else { return };
        let path = dir.join(format!("{}.failure", failure.file_stem()));
        let written =
            std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, failure.to_record()));
        match written {
            Ok(()) => failure.record_file = Some(std::fs::canonicalize(&path).unwrap_or(path)),
            Err(err) => eprintln!("cannot save the failure record {}: {err}", path.display()),
        }
    }
}

static REPLAY_COPIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counters of one run, kept outside the scheduled state (a std mutex, never held across a
/// scheduling point).
#[derive(Debug, Default)]
struct Stats {
    /// Executions started.
    executions: usize,
    /// Outcome vectors of the passing executions.
    outcomes: BTreeMap<Outcomes, usize>,
    /// Hash of every finished execution's outcomes, world digest or failure message.
    trace: u64,
}

impl Stats {
    fn record(&mut self, result: &Result<crate::scenario::ExecutionRecord, String>) {
        let mut hasher = Fnv::new();
        self.trace.hash(&mut hasher);
        match result {
            Ok(record) => {
                *self.outcomes.entry(record.outcomes.clone()).or_default() += 1;
                (&record.outcomes, record.world_digest).hash(&mut hasher);
            }
            Err(message) => message.hash(&mut hasher),
        }
        self.trace = hasher.finish();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
