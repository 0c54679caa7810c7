//! The runner: draw cases, explore each under the portfolio, stop at the first failure; then
//! shrink the failing case, and its schedule.
//!
//! Each case is explored by shuttle random, PCT depth 2 and 3 and URW for
//! [`Hunt::executions`] executions each, and by loom (preemption bound 2, exhaustive) when it
//! has at most [`super::run::LOOM_STEPS`] operations. The case shrinker then tries smaller
//! cases (one actor, step, group, planted snapshot, archive or chunk less; no protection,
//! notes or unfinished snapshot; clock moves down; one process; never fewer than two actors) and keeps any that fails the
//! same way under the same explorers and budget, until none does. The schedule of the smallest
//! failing case is shrunk by [`crate::shrink::Shrinker`].

use std::time::{Duration, Instant};

use store::regressions::Regressions;

use super::case::{ActorSpec, Case, Op};
use super::run::Generated;
use super::strategy::{ADVANCES, Shape, draw};
use crate::explore::{Budget, Explorer, Failure, Plan};
use crate::shrink::Signature;

/// Loom runs at most this many times [`Hunt::executions`] iterations on a case.
pub const LOOM_FACTOR: usize = 4;

/// A hunt: which cases, how hard, against which store.
#[derive(Debug, Clone)]
pub struct Hunt {
    /// Generator seed: case `i` of seed `s` is always the same case.
    pub seed: u64,
    /// Cases to draw at most.
    pub cases: u64,
    /// Stop drawing after this long (the case under way finishes).
    pub time: Option<Duration>,
    /// Executions per shuttle explorer and case.
    pub executions: usize,
    /// Bounds of a case.
    pub shape: Shape,
    /// Fixes reverted in the store under test.
    pub regressions: Regressions,
    /// Also run loom on small cases.
    pub loom: bool,
}

impl Hunt {
    /// `cases` cases of `seed`, `executions` per explorer, every fix in place.
    pub fn new(seed: u64, cases: u64, executions: usize) -> Hunt {
        Hunt {
            seed,
            cases,
            time: None,
            executions,
            shape: Shape::default(),
            regressions: Regressions::none(),
            loom: true,
        }
    }

    /// Against the store with `regressions` reverted.
    pub fn against(self, regressions: Regressions) -> Hunt {
        Hunt {
            regressions,
            ..self
        }
    }

    /// The scenario name of case `index`.
    pub fn name(&self, index: u64) -> String {
        format!("generated/seed-{}/case-{index}", self.seed)
    }

    fn explorers(&self, scenario: &Generated) -> Vec<Explorer> {
        use crate::scenario::Scenario;
        if self.loom && scenario.loom() {
            Explorer::portfolio(Some(Explorer::DEFAULT_LOOM_BOUND))
        } else {
            Explorer::shuttle_portfolio()
        }
    }

    /// Explores `case` once under the portfolio: executions run and the first failure.
    pub fn explore(&self, name: &str, case: &Case) -> (usize, Option<Failure>) {
        let scenario = Generated::new(name, case.clone(), self.regressions);
        let mut plan = Plan::new(Budget::executions(self.executions))
            .explorers(&self.explorers(&scenario))
            .seed(self.seed)
            .quiet();
        plan.limits.loom_max_iterations = self.executions * LOOM_FACTOR;
        let mut executions = 0;
        for explorer in &plan.explorers {
            // PCT places its priority changes over the steps of a whole execution and URW
            // weighs threads by their steps: the liveness phase's steps would dilute them, so
            // it runs after the executions of the random scheduler (not loom either: a thread
            // a reverted fix leaves queued there is dropped outside the model).
            let liveness = matches!(explorer, Explorer::Random);
            let scenario = scenario.clone().with_liveness(liveness);
            let exploration = plan.explore_with(&scenario, *explorer);
            executions += exploration.executions;
            if let Some(failure) = exploration.failure {
                return (executions, Some(failure));
            }
        }
        (executions, None)
    }

    /// Draws and explores cases until one fails, the cases run out or the time is up.
    pub fn run(&self) -> HuntReport {
        let started = Instant::now();
        let mut report = HuntReport::default();
        for index in 0..self.cases {
            if self.time.is_some_and(|limit| started.elapsed() >= limit) {
                break;
            }
            let case = draw(self.seed, index, self.shape);
            let (executions, failure) = self.explore(&self.name(index), &case);
            report.cases += 1;
            report.executions += executions;
            if let Some(failure) = failure {
                report.found = Some(Found {
                    index,
                    case,
                    failure,
                });
                break;
            }
        }
        report.elapsed = started.elapsed();
        report
    }

    /// Shrinks a failing case: the smallest case reached that fails with the same kind of
    /// failure, its failure, and how many candidates were explored.
    pub fn shrink(&self, found: &Found) -> (Case, Failure, usize) {
        let kind = |name: &str, failure: &Failure| Signature::of_message(name, &failure.message).0;
        let first = kind(&self.name(found.index), &found.failure);
        let (mut case, mut failure) = (found.case.clone(), found.failure.clone());
        let mut tried = 0;
        'outer: loop {
            for candidate in candidates(&case) {
                tried += 1;
                let name = format!("{}/shrunk-{tried}", self.name(found.index));
                if let (_, Some(next)) = self.explore(&name, &candidate)
                    && kind(&name, &next) == first
                {
                    case = candidate;
                    failure = next;
                    continue 'outer;
                }
            }
            return (case, failure, tried);
        }
    }
}

/// What a hunt did.
#[derive(Debug, Clone, Default)]
pub struct HuntReport {
    /// Cases explored (the failing one included).
    pub cases: u64,
    /// Executions over every case and explorer.
    pub executions: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// The first failing case.
    pub found: Option<Found>,
}

impl HuntReport {
    /// Executions per second.
    pub fn executions_per_second(&self) -> f64 {
        self.executions as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A failing case.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its index in the seed's sequence.
    pub index: u64,
    /// The case.
    pub case: Case,
    /// The first failure.
    pub failure: Failure,
}

/// The smaller cases to try, most promising first.
pub fn candidates(case: &Case) -> Vec<Case> {
    let mut out = Vec::new();
    for a in 0..case.actors.len() {
        // Two actors at least: PCT needs concurrency.
        if case.actors.len() > 2 {
            let mut c = case.clone();
            c.actors.remove(a);
            out.push(c);
        }
        for s in 0..case.actors[a].steps.len() {
            if case.actors[a].steps.len() > 1 {
                let mut c = case.clone();
                c.actors[a].steps.remove(s);
                out.push(c);
            }
        }
    }
    for g in (0..case.groups.len()).filter(|_| case.groups.len() > 1) {
        out.push(without_group(case, g));
    }
    if case.processes > 1 {
        let mut c = case.clone();
        c.processes = 1;
        c.actors.iter_mut().for_each(|a| a.process = 0);
        out.push(c);
    }
    shrink_state(case, &mut out);
    shrink_steps(case, &mut out);
    out
}

fn without_group(case: &Case, g: usize) -> Case {
    let mut c = case.clone();
    c.groups.remove(g);
    for actor in &mut c.actors {
        actor.steps.retain(|step| step.op.group() != Some(g));
        for step in &mut actor.steps {
            if let Some(group) = group_mut(&mut step.op)
                && *group > g
            {
                *group -= 1;
            }
        }
    }
    c.actors.retain(|a: &ActorSpec| !a.steps.is_empty());
    while c.actors.len() < 2 {
        c.actors.push(ActorSpec {
            process: 0,
            steps: Vec::new(),
        });
    }
    c
}

fn group_mut(op: &mut Op) -> Option<&mut usize> {
    match op {
        Op::Gc { .. } => None,
        Op::Backup { group, .. }
        | Op::Reader { group, .. }
        | Op::Forget { group, .. }
        | Op::Prune { group, .. }
        | Op::Verify { group, .. }
        | Op::Notes { group, .. }
        | Op::Protect { group, .. }
        | Op::Owner { group } => Some(group),
    }
}

fn shrink_state(case: &Case, out: &mut Vec<Case>) {
    for (g, group) in case.groups.iter().enumerate() {
        for s in 0..group.snapshots.len() {
            let mut c = case.clone();
            c.groups[g].snapshots.remove(s);
            out.push(c);
            let snap = &group.snapshots[s];
            if snap.protected || snap.notes {
                let mut c = case.clone();
                c.groups[g].snapshots[s].protected = false;
                c.groups[g].snapshots[s].notes = false;
                out.push(c);
            }
            for (a, archive) in snap.archives.iter().enumerate() {
                if snap.archives.len() > 1 {
                    let mut c = case.clone();
                    c.groups[g].snapshots[s].archives.remove(a);
                    out.push(c);
                }
                if archive.chunks.len() > 1 {
                    let mut c = case.clone();
                    c.groups[g].snapshots[s].archives[a].chunks.pop();
                    out.push(c);
                }
            }
        }
        if group.unfinished.is_some() || group.notes {
            let mut c = case.clone();
            c.groups[g].unfinished = None;
            c.groups[g].notes = false;
            out.push(c);
        }
    }
}

fn shrink_steps(case: &Case, out: &mut Vec<Case>) {
    for (a, actor) in case.actors.iter().enumerate() {
        for (s, step) in actor.steps.iter().enumerate() {
            if let Some(smaller) = ADVANCES.iter().rev().find(|adv| **adv < step.advance) {
                let mut c = case.clone();
                c.actors[a].steps[s].advance = *smaller;
                out.push(c);
            }
            if let Op::Backup { archives, .. } = &step.op {
                for (i, archive) in archives.iter().enumerate() {
                    let mut c = case.clone();
                    if let Op::Backup { archives, .. } = &mut c.actors[a].steps[s].op {
                        if archives.len() > 1 {
                            archives.remove(i);
                        } else if archive.chunks.len() > 1 {
                            archives[i].chunks.pop();
                        } else {
                            continue;
                        }
                    }
                    out.push(c);
                }
            }
        }
    }
}
