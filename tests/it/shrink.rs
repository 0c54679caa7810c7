//! Shrinking failing schedules (`models::shrink`) and their traces (`models::trace`).
//!
//! * Every bug of the race regression suite: its failure (found as the regression tests find
//!   it) shrinks to a schedule that replays, in one execution and through the explorers' own
//!   replay path (`EXPLORE_REPLAY`), to the same failure; with no more preemptions and steps
//!   than before; whose trace names every actor that ran. With `EXPLORE_LONG=1` the failures of
//!   every shuttle scheduler the regression tests name are shrunk, not only the first one's.
//! * With the fix in place, the shrunk race's choices do not fail: the shrunk schedule shows
//!   the race the fix closes.
//! * Shrunk schedules are 1-minimal (no single preemption can go), and shrinking is
//!   deterministic.
//! * A passing execution's schedule does not "shrink" into a failure; another violation, a
//!   loom failure and garbage are refused.
//! * The counting functions on hand-made decisions.
//!
//! The default run shrinks about twenty failures in a few seconds.

use models::explore::{Budget, Explorer, Failure, Plan};
use models::knobs::Replay;
use models::regressions::{Variant, lock_identity};
use models::regressions_b::b5_reader_pinning::{self, ReaderPinning};
use models::regressions_b::b7_manifest_lock::{self, ManifestLock};
use models::scenario::Scenario;
use models::scenarios::{Expect, Visitor};
use models::shrink::{
    Choice, Counts, Decision, Replayer, ShrinkError, Shrinker, Shrunk, Signature, bug_of,
    find_suite_failure, suite_explorer, suite_signature, visit_race_suite,
};
use models::trace;

fn long() -> bool {
    std::env::var("EXPLORE_LONG").is_ok_and(|long| long == "1")
}

/// The failures to shrink for a suite scenario: the one the suite's explorer finds, and with
/// `EXPLORE_LONG=1` the first failure of every shuttle scheduler `expect` names.
fn failures<Sc: Scenario>(scenario: &Sc, expect: &Expect) -> Vec<Failure> {
    if !long() {
        return find_suite_failure(scenario, expect).into_iter().collect();
    }
    let explorers: Vec<Explorer> = match expect {
        Expect::CaughtBy { explorers, .. } => explorers.to_vec(),
        _ => Explorer::shuttle_portfolio(),
    };
    explorers
        .into_iter()
        .filter(Explorer::is_shuttle)
        .filter_map(|explorer| {
            Plan::new(Budget::executions(models::shrink::SUITE_BUDGET))
                .quiet()
                .seed(models::shrink::SUITE_SEED)
                .explore_with(scenario, explorer)
                .failure
        })
        .collect()
}

/// Replays `shrunk` through `EXPLORE_REPLAY`'s path: one execution, the same failure.
fn assert_replays<Sc: Scenario>(scenario: &Sc, shrunk: &Shrunk) -> Result<(), String> {
    let exploration = Plan::new(Budget::executions(1))
        .quiet()
        .replay(scenario, &Replay::Schedule(shrunk.encoded()));
    if exploration.executions != 1 {
        return Err(format!("{} executions", exploration.executions));
    }
    match &exploration.failure {
        Some(failure) if failure.message == shrunk.message() => Ok(()),
        Some(failure) => Err(format!("replayed to another failure: {}", failure.message)),
        None => Err("the replay passed".to_owned()),
    }
}

/// Every actor that ran a step is named in the trace.
fn assert_trace_names_actors<Sc: Scenario>(scenario: &Sc, shrunk: &Shrunk) -> Result<(), String> {
    let names = trace::task_names(scenario);
    let text = trace::render(scenario, shrunk);
    for decision in &shrunk.run.decisions {
        let name = trace::task_name(&names, decision.chosen);
        if !text.contains(&format!("] {name}")) {
            return Err(format!(
                "{name} ran but the trace does not show it:\n{text}"
            ));
        }
    }
    if !text.contains(shrunk.message()) {
        return Err(format!("the trace does not end with the failure:\n{text}"));
    }
    Ok(())
}

#[derive(Default)]
struct SuiteCheck {
    shrunk: Vec<(String, Counts, Counts)>,
    missed: Vec<String>,
    problems: Vec<String>,
}

impl Visitor for SuiteCheck {
    fn visit<Sc: Scenario>(&mut self, scenario: &Sc, expect: Expect) {
        let name = scenario.name();
        let bug = bug_of(&name).unwrap_or("?").to_owned();
        let signature = suite_signature(&expect).expect("a reverted fix names its violation");
        assert!(
            suite_explorer(&expect).is_some(),
            "{name}: no shuttle explorer"
        );
        let found = failures(scenario, &expect);
        if found.is_empty() {
            // Catching the bug is the race regression tests' assertion; shrinking needs a
            // failure to start from.
            self.missed.push(name);
            return;
        }
        for failure in found {
            let schedule = failure.schedule.as_deref().expect("a shuttle failure");
            let shrunk = match Shrinker::default().shrink(scenario, schedule, &signature) {
                Ok(shrunk) => shrunk,
                Err(err) => {
                    self.problems
                        .push(format!("{bug} ({}): {err}", failure.explorer));
                    continue;
                }
            };
            let (before, after) = (shrunk.before, shrunk.after);
            let mut check = |what: &str, result: Result<(), String>| {
                if let Err(why) = result {
                    self.problems
                        .push(format!("{bug} ({}): {what}: {why}", failure.explorer));
                }
            };
            check("replay", assert_replays(scenario, &shrunk));
            check(
                "signature",
                match signature.matches(shrunk.message()) {
                    true => Ok(()),
                    false => Err(shrunk.message().to_owned()),
                },
            );
            check(
                "smaller",
                match after.preemptions <= before.preemptions && after.steps <= before.steps {
                    true => Ok(()),
                    false => Err(format!("{before} -> {after}")),
                },
            );
            check("trace", assert_trace_names_actors(scenario, &shrunk));
            eprintln!(
                "{bug:<4} {:<8} {before} -> {after} ({} replays)",
                failure.explorer.to_string(),
                shrunk.replays
            );
            self.shrunk.push((bug.clone(), before, after));
        }
    }
}

#[test]
fn every_race_shrinks_to_a_schedule_that_replays() {
    let mut check = SuiteCheck::default();
    visit_race_suite(&mut check);
    assert!(check.problems.is_empty(), "{}", check.problems.join("\n"));
    for name in &check.missed {
        eprintln!("{name}: its explorer found no failure (see the race regression tests)");
    }
    // The suite has twenty bugs; shrinking must have had something to work on.
    assert!(
        check.shrunk.len() >= 15,
        "only {} failures shrunk",
        check.shrunk.len()
    );
    // Random schedules preempt at almost every step: shrinking removes nearly all of it.
    let before: usize = check.shrunk.iter().map(|(_, b, _)| b.preemptions).sum();
    let after: usize = check.shrunk.iter().map(|(_, _, a)| a.preemptions).sum();
    assert!(after * 10 < before, "{before} -> {after} preemptions");
}

/// Taking any single preemption out of a shrunk schedule loses the failure (or costs more
/// steps than the given schedule had): the search ends 1-minimal.
fn assert_one_minimal<Sc: Scenario>(reverted: &Sc, expect: Expect) {
    let shrunk = shrink_suite_failure(reverted, expect);
    assert!(
        shrunk.replays < Shrinker::default().max_replays,
        "budget ran out"
    );
    let seed = shrunk.run.schedule.seed;
    let preemptions: Vec<&Choice> = shrunk.choices.iter().filter(|c| c.preempt).collect();
    assert_eq!(preemptions.len(), shrunk.after.preemptions);
    for dropped in preemptions {
        let choices: Vec<Choice> = shrunk
            .choices
            .iter()
            .filter(|choice| *choice != dropped)
            .copied()
            .collect();
        let run = Replayer::new(reverted).guided(seed, &choices);
        let still_fails = run.message().is_some_and(|m| shrunk.signature.matches(m));
        assert!(
            !still_fails || run.counts().steps > shrunk.before.steps,
            "{}: without {dropped:?} it still fails: {}",
            reverted.name(),
            run.counts()
        );
    }
}

#[test]
fn shrunk_schedules_are_one_minimal() {
    assert_one_minimal(
        &ReaderPinning::reverted(),
        b5_reader_pinning::EXPECT_REVERTED,
    );
    let reverted = lock_identity::LockIdentity(Variant::REVERTED);
    assert_one_minimal(
        &reverted,
        Expect::CaughtBy {
            message: lock_identity::VIOLATION,
            explorers: reverted.explorers(),
        },
    );
}

/// Shrinks the failure of `reverted` found the suite's way.
fn shrink_suite_failure<Sc: Scenario>(reverted: &Sc, expect: Expect) -> Shrunk {
    let failure = find_suite_failure(reverted, &expect).expect("the reverted fix is caught");
    let signature = suite_signature(&expect).expect("a violation");
    Shrinker::default()
        .shrink(
            reverted,
            failure.schedule.as_deref().expect("shuttle"),
            &signature,
        )
        .unwrap_or_else(|err| panic!("{err}"))
}

/// The shrunk race's choices, run on the variant with the fix in place, do not fail.
fn assert_fix_closes_the_race<Sc: Scenario>(reverted: &Sc, fixed: &Sc, expect: Expect) {
    let shrunk = shrink_suite_failure(reverted, expect);
    let seed = shrunk.run.schedule.seed;
    // The guided scheduler reproduces the shrunk execution from its choices ...
    let again = Replayer::new(reverted).guided(seed, &shrunk.choices);
    assert_eq!(again.schedule, shrunk.run.schedule);
    assert_eq!(again.message(), Some(shrunk.message()));
    // ... and the same choices with the fix in place pass.
    let with_fix = Replayer::new(fixed).guided(seed, &shrunk.choices);
    assert_eq!(with_fix.result, Ok(()), "{}", fixed.name());
}

#[test]
fn with_the_fix_in_place_the_shrunk_race_passes() {
    assert_fix_closes_the_race(
        &ReaderPinning::reverted(),
        &ReaderPinning::fixed(),
        b5_reader_pinning::EXPECT_REVERTED,
    );
    assert_fix_closes_the_race(
        &ManifestLock::reverted(),
        &ManifestLock::fixed(),
        b7_manifest_lock::EXPECT_REVERTED,
    );
    let reverted = lock_identity::LockIdentity(Variant::REVERTED);
    assert_fix_closes_the_race(
        &reverted,
        &lock_identity::LockIdentity(Variant::FIXED),
        Expect::CaughtBy {
            message: lock_identity::VIOLATION,
            explorers: reverted.explorers(),
        },
    );
}

#[test]
fn a_passing_schedule_does_not_shrink_into_a_failure() {
    let fixed = ReaderPinning::fixed();
    let signature = Signature(b5_reader_pinning::VIOLATION.to_owned());
    // A passing execution of the fixed variant, recorded: no preemption at all.
    let passing = Replayer::new(&fixed).guided(7, &[]);
    assert_eq!(passing.result, Ok(()));
    assert_eq!(passing.counts().preemptions, 0);
    let err = Shrinker::default()
        .shrink(&fixed, &passing.encoded(), &signature)
        .expect_err("nothing to shrink");
    assert!(matches!(err, ShrinkError::DoesNotReplay { .. }), "{err}");
    // A schedule of the reverted variant that fails with another violation is refused too.
    let reverted = ReaderPinning::reverted();
    let shrunk = shrink_suite_failure(&reverted, b5_reader_pinning::EXPECT_REVERTED);
    let other = Signature("no such violation".to_owned());
    let err = Shrinker::default()
        .shrink(&reverted, &shrunk.encoded(), &other)
        .expect_err("another failure");
    assert!(matches!(err, ShrinkError::DoesNotReplay { .. }), "{err}");
    // A loom failure has no schedule to shrink.
    let mut loom =
        find_suite_failure(&reverted, &b5_reader_pinning::EXPECT_REVERTED).expect("caught");
    loom.schedule = None;
    let err = Shrinker::default()
        .shrink_failure(&reverted, &loom)
        .expect_err("no schedule");
    assert!(matches!(err, ShrinkError::NoSchedule(_)), "{err}");
    // Garbage is not a schedule.
    let err = Shrinker::default()
        .shrink(&reverted, "zz", &signature)
        .expect_err("not a schedule");
    assert!(matches!(err, ShrinkError::BadSchedule(_)), "{err}");
}

fn decision(current: Option<usize>, steps: usize, runnable: &[usize], chosen: usize) -> Decision {
    Decision {
        current,
        current_steps: steps,
        runnable: runnable.to_vec(),
        yielding: false,
        chosen,
    }
}

#[test]
fn counting_steps_switches_and_preemptions() {
    let decisions = [
        decision(None, 0, &[0], 0),
        decision(Some(0), 1, &[0, 1, 2], 0), // goes on
        decision(Some(0), 2, &[0, 1, 2], 1), // preemption of main
        decision(Some(1), 1, &[0, 2], 2),    // 1 blocked: forced
        decision(Some(2), 1, &[1, 2], 1),    // preemption of 2
        decision(Some(1), 2, &[2], 2),       // 1 finished: forced
    ];
    assert_eq!(
        Counts::of(&decisions),
        Counts {
            preemptions: 2,
            switches: 4,
            steps: 6
        }
    );
    assert_eq!(Counts::of(&[]), Counts::default());
    let mut yielded = decision(Some(1), 3, &[1, 2], 2);
    yielded.yielding = true;
    assert!(yielded.is_switch() && !yielded.is_preemption());
    // The choices anchor each switch to the switching task's progress.
    let choices = Choice::of(&decisions);
    assert_eq!(
        choices,
        vec![
            Choice {
                task: 0,
                steps: 2,
                target: 1,
                preempt: true
            },
            Choice {
                task: 1,
                steps: 1,
                target: 2,
                preempt: false
            },
            Choice {
                task: 2,
                steps: 1,
                target: 1,
                preempt: true
            },
            Choice {
                task: 1,
                steps: 2,
                target: 2,
                preempt: false
            },
        ]
    );
    // Counts order: preemptions first, then switches, then steps.
    let fewer_preemptions = Counts {
        preemptions: 1,
        switches: 9,
        steps: 900,
    };
    assert!(fewer_preemptions < Counts::of(&decisions));
}

#[test]
fn observed_counts_match_the_recorded_schedule() {
    // The counts of an observed replay agree with the schedule's own task steps.
    let reverted = ReaderPinning::reverted();
    let failure =
        find_suite_failure(&reverted, &b5_reader_pinning::EXPECT_REVERTED).expect("caught");
    let run = Replayer::new(&reverted)
        .replay(failure.schedule.as_deref().expect("shuttle"))
        .expect("decodes");
    assert_eq!(run.message(), Some(failure.message.as_str()));
    let (steps, switches) = models::shrink::schedule_switches(&run.schedule);
    let counts = run.counts();
    assert_eq!((counts.steps, counts.switches), (steps, switches));
    assert!(counts.preemptions <= counts.switches);
    assert_eq!(run.encoded(), failure.schedule.clone().expect("shuttle"));
    // Shrinking a failure record keeps its kind of violation.
    let shrunk = Shrinker::default()
        .shrink_failure(&reverted, &failure)
        .expect("shrinks");
    assert!(
        shrunk.message().contains(b5_reader_pinning::VIOLATION),
        "{}",
        shrunk.message()
    );
    assert!(shrunk.after.preemptions < counts.preemptions);
}

#[test]
fn shrinking_is_deterministic() {
    // Same failure, same search: the same shrunk schedule (the report in `docs/shrink.md`
    // changes only when the store or the scenarios do).
    let reverted = ManifestLock::reverted();
    let first = shrink_suite_failure(&reverted, b7_manifest_lock::EXPECT_REVERTED);
    let second = shrink_suite_failure(&reverted, b7_manifest_lock::EXPECT_REVERTED);
    assert_eq!(first.encoded(), second.encoded());
    assert_eq!(first.replays, second.replays);
    assert_eq!(
        trace::render(&reverted, &first),
        trace::render(&reverted, &second)
    );
}
