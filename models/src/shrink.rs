//! Shrinking a failing shuttle schedule to one that a person can read.
//!
//! A schedule found by a randomised explorer fails, but it usually switches between the actors
//! hundreds of times, and only two or three of those switches make the race. [`Shrinker`]
//! searches for a schedule that still fails the same way with as few preemptions as it can find,
//! using replay as the oracle.
//!
//! # Definitions
//!
//! Every scheduling decision of shuttle is a [`Decision`]: the task that ran last (the
//! *current* one), the tasks that could run next, and the one chosen.
//!
//! * A **step** is one decision (shuttle's random draws, such as a lock time-out's coin or the
//!   world's listing seed, are not steps; they are counted apart).
//! * A **context switch** is a step whose chosen task differs from the current one.
//! * A **preemption** is a context switch away from a current task that could have gone on: it
//!   was among the runnable tasks (a switch away from a task that blocked or finished is forced).
//!
//! [`Counts::of`] counts them.
//!
//! # The search
//!
//! A candidate schedule is a set of [`Choice`]s, each anchored to the point where a task
//! stands: "when task `t` has run `k` steps, switch to task `u`". A guided scheduler runs the
//! execution with them: at a point with a preemptive choice it switches; otherwise it keeps
//! the current task running as long as it can (no preemption unless asked for), and when the
//! current task blocks or finishes it follows the forced choice recorded at that point or, if
//! there is none or its target cannot run, takes the next runnable task after the current one
//! in task order. Anchoring choices to a task's own progress rather than to the global step
//! index keeps the remaining choices meaningful when other choices are taken out.
//!
//! 1. The failing schedule is replayed once under observation: its decisions give the
//!    starting choices (every preemption and every forced switch, exactly as recorded; the
//!    guided scheduler reproduces the original execution with them).
//! 2. Optionally PCT at lower depths probes for other failing schedules; a start with fewer
//!    preemptions is shrunk as well and the better result kept.
//! 3. Delta debugging (ddmin) over the preemptive choices: no preemption at all first, then
//!    halves, quarters, ... and their complements, keeping a subset whose execution still
//!    fails with the same [`Signature`] and is smaller (fewer preemptions, then switches,
//!    then steps). After every success the choices are re-derived from the execution that
//!    actually happened, so the search continues from a real schedule. The result is
//!    1-minimal: dropping any single remaining preemption loses the failure (within the
//!    replay budget, [`Shrinker::max_replays`]).
//! 4. The same over the forced choices (falling back to "next task in order"), which can save
//!    context switches.
//!
//! A result never has more preemptions or more steps than the given schedule: fewer
//! preemptions can make an actor wait longer elsewhere, and such results are not taken.
//!
//! Shuttle's own replay scheduler cannot do this search: it panics as soon as a replayed
//! schedule names a task that is not runnable, so any edit of a recorded schedule that changes
//! what blocks where is unusable. The guided scheduler instead always has a sensible next
//! task. Its random draws (lock time-out coins, the world's listing seed) come from the
//! schedule seed's stream in draw order, exactly as shuttle replays them.
//!
//! The shrunk execution is recorded as a shuttle schedule (the same encoding the explorers
//! print), so `EXPLORE_REPLAY=<schedule>` and [`crate::explore::Plan::replay`] replay it in one
//! execution without the guided scheduler; [`crate::trace`] prints it as a readable trace.
//!
//! The race suite helpers ([`visit_race_suite`], [`find_suite_failure`]) find every reverted
//! bug's failure the way the regression tests do; `cargo run --release --bin shrink` prints
//! the result (`docs/shrink.md`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use shuttle::Runner;
use shuttle::rand::RngCore;
use shuttle::scheduler::{
    DataSource, RandomDataSource, ReplayScheduler, Schedule, Scheduler, Task, TaskId,
};
use shuttle_engine::scheduler::ScheduleStep;
use shuttle_engine::scheduler::serialization::deserialize_schedule;
use sim::{ShuttleSync, TraceEvent};

use crate::explore::{Budget, Explorer, Failure, Limits, Plan, catch_panic, shuttle_config};
use crate::recorder::encode_schedule;
use crate::scenario::{Scenario, execute};
use crate::scenarios::{Expect, Visitor};

/// One scheduling decision of an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The task that ran last (`None` at the first decision).
    pub current: Option<usize>,
    /// How many steps the current task had run before this decision.
    pub current_steps: usize,
    /// The tasks that could run, in task order.
    pub runnable: Vec<usize>,
    /// Did the current task ask to yield?
    pub yielding: bool,
    /// The task chosen.
    pub chosen: usize,
}

impl Decision {
    /// Is this a context switch (another task than the current one runs)?
    pub fn is_switch(&self) -> bool {
        self.current.is_some_and(|current| current != self.chosen)
    }

    /// Is this a preemption (a switch away from a current task that could have gone on)?
    pub fn is_preemption(&self) -> bool {
        self.is_switch()
            && !self.yielding
            && self
                .current
                .is_some_and(|current| self.runnable.contains(&current))
    }
}

/// Steps, context switches and preemptions of an execution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Counts {
    /// Preemptions (first: the quantity shrinking minimises before the others).
    pub preemptions: usize,
    /// Context switches, forced or not.
    pub switches: usize,
    /// Scheduling decisions.
    pub steps: usize,
}

impl Counts {
    /// Counts `decisions`.
    pub fn of(decisions: &[Decision]) -> Counts {
        Counts {
            preemptions: decisions.iter().filter(|d| d.is_preemption()).count(),
            switches: decisions.iter().filter(|d| d.is_switch()).count(),
            steps: decisions.len(),
        }
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} steps, {} switches, {} preemptions",
            self.steps, self.switches, self.preemptions
        )
    }
}

/// Steps, context switches and preemptions of an encoded schedule's task steps alone, without
/// runnable sets: every switch counts as a possible preemption. Used where only the encoding is
/// known; [`Counts::of`] over observed decisions is exact.
pub fn schedule_switches(schedule: &Schedule) -> (usize, usize) {
    let mut steps = 0;
    let mut switches = 0;
    let mut last = None;
    for step in &schedule.steps {
        if let ScheduleStep::Task(task) = step {
            let task = usize::from(*task);
            if last.is_some_and(|last| last != task) {
                switches += 1;
            }
            last = Some(task);
            steps += 1;
        }
    }
    (steps, switches)
}

/// A choice of the guided scheduler: when `task` has run `steps` steps, run `target` next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Choice {
    /// The task whose progress anchors the choice.
    pub task: usize,
    /// Steps `task` has run at that point.
    pub steps: usize,
    /// The task to run next.
    pub target: usize,
    /// True: switch although `task` could go on (a preemption). False: `task` cannot go on
    /// here, and this says which task follows it.
    pub preempt: bool,
}

impl Choice {
    /// The choices an execution made: one per context switch.
    pub fn of(decisions: &[Decision]) -> Vec<Choice> {
        decisions
            .iter()
            .filter(|decision| decision.is_switch())
            .filter_map(|decision| {
                Some(Choice {
                    task: decision.current?,
                    steps: decision.current_steps,
                    target: decision.chosen,
                    preempt: decision.is_preemption(),
                })
            })
            .collect()
    }
}

/// What identifies "the same failure": a piece of text the failure message must contain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Signature(pub String);

impl Signature {
    /// The kind of failure of `message` as [`crate::scenario::execute`] words it
    /// (`<scenario>: <kind>: <what> [outcomes: ...]`): the text after the scenario name up to
    /// the first detail (`invariant violated: a finished snapshot references a missing chunk`
    /// of `...: invariant violated: a finished snapshot references a missing chunk: <digest>
    /// ...`), without the actors' outcomes.
    pub fn of_message(scenario: &str, message: &str) -> Signature {
        let text = message
            .strip_prefix(scenario)
            .and_then(|rest| rest.strip_prefix(": "))
            .unwrap_or(message);
        let text = text.split(" [outcomes:").next().unwrap_or(text);
        let cut = match text.split_once(": ") {
            Some((kind, rest)) => match rest.find(": ") {
                Some(end) => kind.len() + 2 + end,
                None => text.len(),
            },
            None => text.len(),
        };
        Signature(text[..cut].to_owned())
    }

    /// Does `message` show this failure?
    pub fn matches(&self, message: &str) -> bool {
        message.contains(&self.0)
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One execution run under observation.
#[derive(Debug, Clone)]
pub struct Run {
    /// `Err(message)` if the execution failed.
    pub result: Result<(), String>,
    /// Its decisions.
    pub decisions: Vec<Decision>,
    /// Its schedule, as shuttle records and replays it.
    pub schedule: Schedule,
    /// Traced runs only ([`crate::trace`]): every operation of the simulated disk, with the
    /// index of the decision whose step performed it.
    pub events: Vec<(usize, TraceEvent)>,
}

impl Run {
    /// The failure message, if it failed.
    pub fn message(&self) -> Option<&str> {
        self.result.as_ref().err().map(String::as_str)
    }

    /// Its counts.
    pub fn counts(&self) -> Counts {
        Counts::of(&self.decisions)
    }

    /// Random draws (lock time-out coins, the world's seed).
    pub fn random_draws(&self) -> usize {
        self.schedule
            .steps
            .iter()
            .filter(|step| matches!(step, ScheduleStep::Random))
            .count()
    }

    /// Its schedule in shuttle's encoding.
    pub fn encoded(&self) -> String {
        encode_schedule(&self.schedule)
    }
}

/// Why a failure could not be shrunk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShrinkError {
    /// Only shuttle schedules can be shrunk (loom records a checkpoint, not a schedule).
    #[error("{0} recorded no shuttle schedule")]
    NoSchedule(String),
    /// The schedule does not decode.
    #[error("not a shuttle schedule: {0:?}")]
    BadSchedule(String),
    /// Replaying the schedule did not give the failure back.
    #[error("the schedule does not replay to {signature:?}: {got}")]
    DoesNotReplay {
        /// The failure looked for.
        signature: String,
        /// What the replay gave.
        got: String,
    },
}

/// Decodes a schedule in shuttle's encoding, refusing what shuttle cannot decode.
pub fn decode(encoded: &str) -> Result<Schedule, ShrinkError> {
    let trimmed: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let bad = || ShrinkError::BadSchedule(encoded.to_owned());
    let valid_hex = trimmed.len() >= 2
        && trimmed.len().is_multiple_of(2)
        && trimmed.chars().all(|c| c.is_ascii_hexdigit());
    if !valid_hex {
        return Err(bad());
    }
    catch_panic(|| deserialize_schedule(&trimmed))
        .ok()
        .flatten()
        .ok_or_else(bad)
}

/// What an observed execution wrote down, shared between its scheduler and the caller.
#[derive(Debug, Default)]
struct Observation {
    decisions: Vec<Decision>,
    schedule: Schedule,
    steps_of: Vec<usize>,
    events: Vec<(usize, TraceEvent)>,
}

/// Takes the disk operations recorded since it was last called (see [`crate::trace`]).
pub(crate) type Drain = Arc<dyn Fn() -> Vec<TraceEvent> + Send + Sync>;

/// Wraps a scheduler and writes down every decision with its runnable set, and the schedule;
/// with a drain, also the disk operations each step performed.
struct Observed<Sch> {
    inner: Sch,
    seen: Arc<Mutex<Observation>>,
    drain: Option<Drain>,
}

impl<Sch: Scheduler> Scheduler for Observed<Sch> {
    fn new_execution(&mut self) -> Option<Schedule> {
        let schedule = self.inner.new_execution()?;
        *lock(&self.seen) = Observation {
            schedule: schedule.clone(),
            ..Observation::default()
        };
        Some(schedule)
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        yielding: bool,
    ) -> Option<TaskId> {
        let chosen = self.inner.next_task(runnable, current, yielding)?;
        let mut seen = lock(&self.seen);
        // What ran since the last decision was the step that decision chose.
        if let Some(drain) = &self.drain
            && let Some(last) = seen.decisions.len().checked_sub(1)
        {
            let events = drain();
            seen.events
                .extend(events.into_iter().map(|event| (last, event)));
        }
        let current = current.map(usize::from);
        let chosen_id = usize::from(chosen);
        let steps_of = &mut seen.steps_of;
        if steps_of.len() <= chosen_id {
            steps_of.resize(chosen_id + 1, 0);
        }
        let current_steps = current.map_or(0, |task| steps_of.get(task).copied().unwrap_or(0));
        steps_of[chosen_id] += 1;
        let mut ids: Vec<usize> = runnable.iter().map(|task| usize::from(task.id())).collect();
        ids.sort_unstable();
        seen.decisions.push(Decision {
            current,
            current_steps,
            runnable: ids,
            yielding,
            chosen: chosen_id,
        });
        seen.schedule.push_task(chosen);
        Some(chosen)
    }

    fn next_u64(&mut self) -> u64 {
        lock(&self.seen).schedule.push_random();
        self.inner.next_u64()
    }
}

/// The guided scheduler: one execution that follows `choices` and otherwise never preempts.
/// Random draws come from the schedule seed's stream, as in shuttle's own replay.
#[derive(Debug)]
struct Guided {
    seed: u64,
    data: RandomDataSource,
    started: bool,
    choices: BTreeMap<(usize, usize), Choice>,
    steps_of: Vec<usize>,
}

impl Guided {
    fn new(seed: u64, choices: &[Choice]) -> Guided {
        Guided {
            seed,
            data: RandomDataSource::initialize(seed),
            started: false,
            choices: choices
                .iter()
                .map(|choice| ((choice.task, choice.steps), *choice))
                .collect(),
            steps_of: Vec::new(),
        }
    }
}

impl Scheduler for Guided {
    fn new_execution(&mut self) -> Option<Schedule> {
        if self.started {
            return None;
        }
        self.started = true;
        let seed = self.data.reinitialize();
        debug_assert_eq!(seed, self.seed);
        Some(Schedule::new(seed))
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        yielding: bool,
    ) -> Option<TaskId> {
        let mut ids: Vec<usize> = runnable.iter().map(|task| usize::from(task.id())).collect();
        ids.sort_unstable();
        let first = *ids.first()?;
        let chosen = match current.map(usize::from) {
            None => first,
            Some(current) => {
                let steps = self.steps_of.get(current).copied().unwrap_or(0);
                let can_go_on = ids.contains(&current) && !yielding;
                let choice = self
                    .choices
                    .get(&(current, steps))
                    .filter(|choice| choice.preempt == can_go_on)
                    .filter(|choice| choice.target != current && ids.contains(&choice.target));
                match (choice, can_go_on) {
                    (Some(choice), _) => choice.target,
                    (None, true) => current,
                    (None, false) => ids
                        .iter()
                        .copied()
                        .find(|id| *id > current)
                        .or_else(|| ids.iter().copied().find(|id| *id != current))
                        .unwrap_or(first),
                }
            }
        };
        if self.steps_of.len() <= chosen {
            self.steps_of.resize(chosen + 1, 0);
        }
        self.steps_of[chosen] += 1;
        Some(TaskId::from(chosen))
    }

    fn next_u64(&mut self) -> u64 {
        self.data.next_u64()
    }
}

/// Runs single executions of one scenario under observation, counting them.
#[derive(Debug)]
pub struct Replayer<Sc> {
    scenario: Sc,
    limits: Limits,
    replays: usize,
}

impl<Sc: Scenario> Replayer<Sc> {
    /// A replayer of `scenario` with the explorers' default limits.
    pub fn new(scenario: &Sc) -> Replayer<Sc> {
        Replayer {
            scenario: scenario.clone(),
            limits: Limits::default(),
            replays: 0,
        }
    }

    /// Executions run so far.
    pub fn replays(&self) -> usize {
        self.replays
    }

    /// Replays an encoded schedule exactly, as `EXPLORE_REPLAY` does, and observes it.
    pub fn replay(&mut self, encoded: &str) -> Result<Run, ShrinkError> {
        let schedule = decode(encoded)?;
        Ok(self.run(ReplayScheduler::new_from_schedule(schedule)))
    }

    /// Runs one execution that follows `choices` and otherwise never preempts, with the random
    /// draws of `seed`.
    pub fn guided(&mut self, seed: u64, choices: &[Choice]) -> Run {
        self.run(Guided::new(seed, choices))
    }

    fn run<Sch: Scheduler + 'static>(&mut self, scheduler: Sch) -> Run {
        self.replays += 1;
        run_observed(&self.scenario, &self.limits, scheduler, None)
    }
}

/// One execution of `scenario` under `scheduler`, observed; with `drain`, the disk operations
/// are attributed to steps (the drain is called at every decision, and once more at the end).
pub(crate) fn run_observed<Sc: Scenario, Sch: Scheduler + 'static>(
    scenario: &Sc,
    limits: &Limits,
    scheduler: Sch,
    drain: Option<Drain>,
) -> Run {
    let seen = Arc::new(Mutex::new(Observation::default()));
    let observed = Observed {
        inner: scheduler,
        seen: Arc::clone(&seen),
        drain: drain.clone(),
    };
    let config = shuttle_config(limits, None);
    let scenario = scenario.clone();
    let body = move || {
        let world_seed = shuttle::rand::thread_rng().next_u64();
        if let Err(message) = execute::<Sc, ShuttleSync>(&scenario, world_seed, false) {
            std::panic::panic_any(message);
        }
    };
    let result = catch_panic(move || {
        Runner::new(observed, config).run(body);
    });
    let mut seen = std::mem::take(&mut *lock(&seen));
    if let Some(drain) = drain {
        let last = seen.decisions.len().saturating_sub(1);
        seen.events
            .extend(drain().into_iter().map(|event| (last, event)));
    }
    Run {
        result,
        decisions: seen.decisions,
        schedule: seen.schedule,
        events: seen.events,
    }
}

/// How hard [`Shrinker::shrink`] searches.
#[derive(Debug, Clone)]
pub struct Shrinker {
    /// Replays at most, over the whole search (probes included).
    pub max_replays: usize,
    /// PCT depths probed for other starting schedules (empty: none).
    pub probe_depths: Vec<usize>,
    /// Executions per probe.
    pub probe_budget: usize,
    /// The probes run with seeds `1..=probe_seeds`.
    pub probe_seeds: u64,
}

impl Default for Shrinker {
    fn default() -> Self {
        Shrinker {
            max_replays: 1_500,
            probe_depths: vec![1, 2, 3],
            probe_budget: 100,
            probe_seeds: 3,
        }
    }
}

/// A shrunk failure.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The scenario's name.
    pub scenario: String,
    /// What identified the failure.
    pub signature: Signature,
    /// Counts of the schedule that was given.
    pub before: Counts,
    /// Counts of the shrunk schedule.
    pub after: Counts,
    /// Where the shrunk schedule's search started: `given` or a PCT probe (`pct-1 seed 2`).
    pub start: String,
    /// Executions run by the search (the replay of the given schedule and the probes included).
    pub replays: usize,
    /// Wall time of the search.
    pub elapsed: Duration,
    /// The shrunk execution (its failure, decisions and schedule).
    pub run: Run,
    /// The choices that produce it under the guided scheduler.
    pub choices: Vec<Choice>,
}

impl Shrunk {
    /// The failure message of the shrunk execution.
    pub fn message(&self) -> &str {
        self.run.message().unwrap_or_default()
    }

    /// The shrunk schedule in shuttle's encoding (`EXPLORE_REPLAY` accepts it).
    pub fn encoded(&self) -> String {
        self.run.encoded()
    }
}

impl Shrinker {
    /// Shrinks the schedule of `failure` (a shuttle failure of `scenario`), keeping failures
    /// whose message matches the failure's [`Signature::of_message`].
    pub fn shrink_failure<Sc: Scenario>(
        &self,
        scenario: &Sc,
        failure: &Failure,
    ) -> Result<Shrunk, ShrinkError> {
        let schedule = failure
            .schedule
            .as_deref()
            .ok_or_else(|| ShrinkError::NoSchedule(failure.explorer.to_string()))?;
        let signature = Signature::of_message(&scenario.name(), &failure.message);
        self.shrink(scenario, schedule, &signature)
    }

    /// Shrinks `encoded`, a failing schedule of `scenario`: the result fails with a message
    /// that `signature` matches, with no more preemptions and steps than the given schedule.
    pub fn shrink<Sc: Scenario>(
        &self,
        scenario: &Sc,
        encoded: &str,
        signature: &Signature,
    ) -> Result<Shrunk, ShrinkError> {
        let started = Instant::now();
        let mut replayer = Replayer::new(scenario);
        let given = replayer.replay(encoded)?;
        if !given.message().is_some_and(|m| signature.matches(m)) {
            return Err(ShrinkError::DoesNotReplay {
                signature: signature.0.clone(),
                got: given.message().unwrap_or("the execution passed").to_owned(),
            });
        }
        let before = given.counts();
        let mut starts = vec![("given".to_owned(), given)];
        for depth in &self.probe_depths {
            for seed in 1..=self.probe_seeds {
                if let Some(run) = self.probe(scenario, *depth, seed, signature, &mut replayer) {
                    starts.push((format!("pct-{depth} seed {seed}"), run));
                }
            }
        }
        let goal = Goal {
            signature,
            limit: before,
        };
        // The most promising start first; the others get what budget is left.
        starts.sort_by_key(|(_, run)| goal.key(run));
        let mut best: Option<(String, Run)> = None;
        for (name, run) in starts {
            let shrunk = self.minimise(&mut replayer, run, &goal);
            let better = best
                .as_ref()
                .is_none_or(|(_, best)| goal.key(&shrunk) < goal.key(best));
            if better {
                best = Some((name, shrunk));
            }
        }
        let (mut start, mut run) = best.expect("at least the given schedule");
        // Never report a result beyond the given schedule's preemptions or steps.
        if !goal.within(&run) {
            start = "given".to_owned();
            run = replayer.replay(encoded)?;
        }
        let choices = Choice::of(&run.decisions);
        Ok(Shrunk {
            scenario: scenario.name(),
            signature: signature.clone(),
            before,
            after: run.counts(),
            start,
            replays: replayer.replays(),
            elapsed: started.elapsed(),
            run,
            choices,
        })
    }

    /// A failing execution of PCT at `depth`, if its probe finds one with the signature; it is
    /// then run again under the guided scheduler (which reproduces it from its choices) so that
    /// its decisions are observed.
    fn probe<Sc: Scenario>(
        &self,
        scenario: &Sc,
        depth: usize,
        seed: u64,
        signature: &Signature,
        replayer: &mut Replayer<Sc>,
    ) -> Option<Run> {
        let budget = self
            .probe_budget
            .min(self.max_replays.saturating_sub(replayer.replays()));
        if budget == 0 {
            return None;
        }
        let explorer = Explorer::Pct { depth };
        let exploration = Plan::new(Budget::executions(budget))
            .quiet()
            .seed(seed)
            .explorers(&[explorer])
            .explore_with(scenario, explorer);
        replayer.replays += exploration.executions;
        let failure = exploration.failure?;
        if !signature.matches(&failure.message) {
            return None;
        }
        let run = replayer.replay(failure.schedule.as_deref()?).ok()?;
        run.message()
            .is_some_and(|m| signature.matches(m))
            .then_some(run)
    }

    /// Delta debugging over the preemptive choices of `run` (a failing execution), then over
    /// its forced choices (which may save context switches).
    fn minimise<Sc: Scenario>(&self, replayer: &mut Replayer<Sc>, run: Run, goal: &Goal) -> Run {
        let seed = run.schedule.seed;
        // The guided scheduler must reproduce the start from its own choices; if it does not
        // (it always should), the start is returned as it is.
        let reproduced = replayer.guided(seed, &Choice::of(&run.decisions));
        if !goal.fails(&reproduced) {
            return run;
        }
        let mut best = if goal.key(&reproduced) <= goal.key(&run) {
            reproduced
        } else {
            run
        };
        for preemptive in [true, false] {
            let mut granularity = 2;
            loop {
                let (varied, kept): (Vec<Choice>, Vec<Choice>) = Choice::of(&best.decisions)
                    .into_iter()
                    .partition(|choice| choice.preempt == preemptive);
                if varied.is_empty() || replayer.replays() >= self.max_replays {
                    break;
                }
                // None of them first: cheap, and it settles the single-window case.
                let mut candidates = vec![Vec::new()];
                candidates.extend(chunks(&varied, granularity));
                if granularity > 2 {
                    candidates.extend(complements(&varied, granularity));
                }
                let mut improved = false;
                for subset in candidates {
                    if replayer.replays() >= self.max_replays {
                        return best;
                    }
                    let mut choices = kept.clone();
                    choices.extend(subset);
                    let run = replayer.guided(seed, &choices);
                    if goal.fails(&run) && goal.key(&run) < goal.key(&best) {
                        best = run;
                        granularity = 2;
                        improved = true;
                        break;
                    }
                }
                if !improved {
                    if granularity >= varied.len() {
                        break;
                    }
                    granularity = (granularity * 2).min(varied.len());
                }
            }
        }
        best
    }
}

/// What shrinking keeps and what it minimises.
#[derive(Debug)]
struct Goal<'a> {
    /// The failure to keep.
    signature: &'a Signature,
    /// The given schedule's counts: a result may not have more preemptions or steps.
    limit: Counts,
}

impl Goal<'_> {
    fn fails(&self, run: &Run) -> bool {
        run.message().is_some_and(|m| self.signature.matches(m))
    }

    fn within(&self, run: &Run) -> bool {
        let counts = run.counts();
        self.fails(run)
            && counts.preemptions <= self.limit.preemptions
            && counts.steps <= self.limit.steps
    }

    /// Smaller is better: within the limits first, then fewer preemptions, switches, steps.
    fn key(&self, run: &Run) -> (bool, Counts) {
        (!self.within(run), run.counts())
    }
}

/// Seed of the explorations that find the race suite's failures (the regression tests' seed).
pub const SUITE_SEED: u64 = 1;

/// Executions the suite's explorer may spend on finding a failure (the regression tests'
/// largest budget; each stops at its first failure).
pub const SUITE_BUDGET: usize = 500;

/// Visits every scenario of the race regression suite (`models::regressions` and
/// `models::regressions_b`) that has its fix reverted, in the suite's order.
pub fn visit_race_suite(visitor: &mut impl Visitor) {
    struct Reverted<'a, V>(&'a mut V);
    impl<V: Visitor> Visitor for Reverted<'_, V> {
        fn visit<Sc: Scenario>(&mut self, scenario: &Sc, expect: Expect) {
            if expect.must_fail() {
                self.0.visit(scenario, expect);
            }
        }
    }
    crate::regressions::visit_regressions(&mut Reverted(visitor));
    crate::regressions_b::visit_regressions(&mut Reverted(visitor));
}

/// The bug a suite scenario reverts, from its name (`.../B16-reverted` gives `B16`).
pub fn bug_of(scenario: &str) -> Option<&str> {
    scenario
        .rsplit('/')
        .next()
        .and_then(|last| last.strip_suffix("-reverted"))
        .filter(|bug| bug.starts_with('B'))
}

/// The explorer the suite finds `expect`'s failure with: the first shuttle scheduler the
/// regression tests require to catch it.
pub fn suite_explorer(expect: &Expect) -> Option<Explorer> {
    match expect {
        Expect::Caught(_) => Some(Explorer::Random),
        Expect::CaughtBy { explorers, .. } => explorers.iter().copied().find(Explorer::is_shuttle),
        Expect::Pass | Expect::KnownIssue { .. } => None,
    }
}

/// The text a failure of `expect` must contain.
pub fn suite_signature(expect: &Expect) -> Option<Signature> {
    match expect {
        Expect::Caught(message)
        | Expect::CaughtBy { message, .. }
        | Expect::KnownIssue { message, .. } => Some(Signature((*message).to_owned())),
        Expect::Pass => None,
    }
}

/// Finds the failure of a suite scenario the way the regression tests do: its
/// [`suite_explorer`], seed [`SUITE_SEED`], at most [`SUITE_BUDGET`] executions.
pub fn find_suite_failure<Sc: Scenario>(scenario: &Sc, expect: &Expect) -> Option<Failure> {
    let explorer = suite_explorer(expect)?;
    Plan::new(Budget::executions(SUITE_BUDGET))
        .quiet()
        .seed(SUITE_SEED)
        .explorers(&[explorer])
        .explore_with(scenario, explorer)
        .failure
}

/// `items` cut into `n` nearly equal consecutive pieces (fewer if there are fewer items).
fn chunks<T: Clone>(items: &[T], n: usize) -> Vec<Vec<T>> {
    let n = n.clamp(1, items.len().max(1));
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for index in 0..n {
        let end = items.len() * (index + 1) / n;
        if end > start {
            out.push(items[start..end].to_vec());
        }
        start = end;
    }
    out
}

/// For each of the `n` pieces of [`chunks`], everything but that piece.
fn complements<T: Clone>(items: &[T], n: usize) -> Vec<Vec<T>> {
    let pieces = chunks(items, n);
    if pieces.len() < 2 {
        return Vec::new();
    }
    (0..pieces.len())
        .map(|skip| {
            pieces
                .iter()
                .enumerate()
                .filter(|(index, _)| *index != skip)
                .flat_map(|(_, piece)| piece.iter().cloned())
                .collect()
        })
        .collect()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(current: Option<usize>, runnable: &[usize], chosen: usize) -> Decision {
        Decision {
            current,
            current_steps: 0,
            runnable: runnable.to_vec(),
            yielding: false,
            chosen,
        }
    }

    #[test]
    fn counts_tell_forced_switches_from_preemptions() {
        let decisions = [
            decision(None, &[0], 0),
            decision(Some(0), &[0, 1], 1),    // preemption
            decision(Some(1), &[0, 1], 1),    // goes on
            decision(Some(1), &[0, 2], 2),    // 1 blocked: forced switch
            decision(Some(2), &[0, 1, 2], 0), // preemption
        ];
        let counts = Counts::of(&decisions);
        assert_eq!(
            counts,
            Counts {
                preemptions: 2,
                switches: 3,
                steps: 5
            }
        );
        let choices = Choice::of(&decisions);
        assert_eq!(choices.len(), 3);
        assert_eq!(
            choices.iter().filter(|choice| choice.preempt).count(),
            2,
            "{choices:?}"
        );
    }

    #[test]
    fn a_yield_is_no_preemption() {
        let mut yielded = decision(Some(1), &[1, 2], 2);
        yielded.yielding = true;
        assert!(yielded.is_switch());
        assert!(!yielded.is_preemption());
    }

    #[test]
    fn signature_keeps_the_kind_of_failure_without_details() {
        let message = "regressions/x/B1-reverted: invariant violated: a finished snapshot \
                       references a missing chunk: 00ab of root.didx in vm/1 [outcomes: gc=ok]";
        let signature = Signature::of_message("regressions/x/B1-reverted", message);
        assert_eq!(
            signature.0,
            "invariant violated: a finished snapshot references a missing chunk"
        );
        assert!(signature.matches(message));
        assert!(!signature.matches("regressions/x/B1-reverted: setup failed: disk"));
    }

    #[test]
    fn delta_pieces_cover_the_items() {
        let items: Vec<u32> = (0..7).collect();
        let pieces = chunks(&items, 3);
        assert_eq!(pieces.concat(), items);
        assert_eq!(pieces.len(), 3);
        for complement in complements(&items, 3) {
            assert!(complement.len() >= 4 && complement.len() <= 5);
        }
        assert!(complements(&[1], 2).is_empty());
    }

    #[test]
    fn bad_schedules_are_refused() {
        assert!(decode("not hex").is_err());
        assert!(decode("abc").is_err());
        assert!(decode("").is_err());
    }
}
