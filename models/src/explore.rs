//! Running a scenario under one explorer: a shuttle scheduler or loom.
//!
//! This is the small core the exploration engine grows from: every explorer runs the same
//! [`Scenario`], counts executions, and stops at the first failing execution, returning its
//! panic message instead of unwinding.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shuttle::scheduler::{PctScheduler, RandomScheduler, Scheduler, UrwRandomScheduler};
use shuttle::{Config, FailurePersistence, MaxSteps, Runner};
use sim::{LoomSync, ShuttleSync};
use store::sync::SyncFamily;

/// A concurrent scenario: one call is one execution in a fresh world.
pub trait Scenario: Clone + Send + Sync + 'static {
    /// Runs one execution; a violated invariant panics.
    fn run<S: SyncFamily>(&self);
}

/// Which scheduler explores the interleavings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Explorer {
    /// shuttle's uniformly random scheduler.
    Random,
    /// shuttle's PCT scheduler with this bug depth.
    Pct {
        /// Bug depth `d` (d − 1 priority change points).
        depth: usize,
    },
    /// shuttle's uniform-random-walk scheduler.
    Urw,
    /// loom's exhaustive exploration, with an optional preemption bound.
    Loom {
        /// `None` explores without a bound.
        preemption_bound: Option<usize>,
    },
}

impl std::fmt::Display for Explorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Explorer::Random => write!(f, "random"),
            Explorer::Pct { depth } => write!(f, "pct-{depth}"),
            Explorer::Urw => write!(f, "urw"),
            Explorer::Loom { preemption_bound: Some(bound) } => write!(f, "loom-pb{bound}"),
            Explorer::Loom { preemption_bound: None } => write!(f, "loom"),
        }
    }
}

/// The first failing execution.
#[derive(Debug, Clone)]
pub struct Failure {
    /// 1-based index of the failing execution.
    pub execution: usize,
    /// The panic message.
    pub message: String,
}

/// What one exploration did.
#[derive(Debug, Clone)]
pub struct Exploration {
    /// The explorer used.
    pub explorer: Explorer,
    /// Executions run (including a failing one).
    pub executions: usize,
    /// Wall time spent.
    pub elapsed: Duration,
    /// The first failure, if any.
    pub failure: Option<Failure>,
}

impl Exploration {
    /// Executions per second.
    pub fn executions_per_second(&self) -> f64 {
        self.executions as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Per-task stack for scenarios that hash and serialise (shuttle's default is 60 KiB).
pub const STACK_SIZE: usize = 1 << 20;

/// Runs `scenario` under `explorer` for at most `executions` executions (loom: until its
/// exploration is exhaustive), seeded by `seed` (shuttle only).
pub fn explore<Sc: Scenario>(
    scenario: &Sc,
    explorer: Explorer,
    seed: u64,
    executions: usize,
) -> Exploration {
    let counter = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let result = match explorer {
        Explorer::Random => {
            run_shuttle(scenario, &counter, RandomScheduler::new_from_seed(seed, executions))
        }
        Explorer::Pct { depth } => run_shuttle(
            scenario,
            &counter,
            PctScheduler::new_from_seed(seed, depth, executions),
        ),
        Explorer::Urw => {
            run_shuttle(scenario, &counter, UrwRandomScheduler::new_from_seed(seed, executions))
        }
        Explorer::Loom { preemption_bound } => run_loom(scenario, &counter, preemption_bound),
    };
    let executions = counter.load(Ordering::Relaxed);
    let failure = result.err().map(|message| Failure { execution: executions, message });
    Exploration { explorer, executions, elapsed: started.elapsed(), failure }
}

fn counted<Sc: Scenario, S: SyncFamily>(
    scenario: &Sc,
    counter: &Arc<AtomicUsize>,
) -> impl Fn() + Send + Sync + 'static {
    let (scenario, counter) = (scenario.clone(), Arc::clone(counter));
    move || {
        counter.fetch_add(1, Ordering::Relaxed);
        scenario.run::<S>();
    }
}

fn run_shuttle<Sc: Scenario, Sch: Scheduler + 'static>(
    scenario: &Sc,
    counter: &Arc<AtomicUsize>,
    scheduler: Sch,
) -> Result<(), String> {
    let mut config = Config::new();
    config.stack_size = STACK_SIZE;
    config.failure_persistence = FailurePersistence::None;
    config.max_steps = MaxSteps::FailAfter(1_000_000);
    let body = counted::<Sc, ShuttleSync>(scenario, counter);
    catch_panic(move || {
        Runner::new(scheduler, config).run(body);
    })
}

fn run_loom<Sc: Scenario>(
    scenario: &Sc,
    counter: &Arc<AtomicUsize>,
    preemption_bound: Option<usize>,
) -> Result<(), String> {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = preemption_bound;
    let body = counted::<Sc, LoomSync>(scenario, counter);
    catch_panic(move || builder.check(body))
}

/// Runs `f`, turning a panic into its message.
pub fn catch_panic(f: impl FnOnce()) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|text| (*text).to_owned()))
            .unwrap_or_else(|| "non-string panic payload".to_owned())
    })
}
