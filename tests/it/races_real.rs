//! The real-world twins of the race regressions (`models::real`): with every fix in place, a
//! handful of runs on real threads in a real directory must all pass, so the twins' checks are
//! sound on a real filesystem. (Whether the reverted variants are caught on real threads is
//! what `cargo run --release --bin races` measures; it is rarely, so it is not asserted here.
//! That each check can fail is shown by the simulated scenarios, whose checks the twins share,
//! and, for the twins that set the clock back, by a fixed order in `models::real`'s own tests.)

use std::time::Instant;

use models::real::{NOT_APPLICABLE, RunResult, run_twin, twins};

const RUNS: usize = 5;

#[test]
fn twins_pass_with_every_fix_in_place() {
    let started = Instant::now();
    for twin in twins() {
        let tally = run_twin(&twin, false, RUNS).expect("the twin runs");
        assert_eq!(tally.runs, RUNS);
        assert_eq!(
            (tally.found, tally.other),
            (0, 0),
            "{} ({}) failed with the fix in place: {:?}",
            twin.bug,
            twin.scenario,
            tally.first_other
        );
    }
    eprintln!(
        "{} twins, {RUNS} fixed runs each: {:.1} s",
        twins().len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_fixed_run_reports_pass() {
    let twin = twins()[0];
    assert_eq!(
        twin.run_once(false).expect("the twin runs"),
        RunResult::Pass
    );
}

#[test]
fn twins_and_exclusions_name_distinct_bugs() {
    let mut bugs: Vec<&str> = twins().iter().map(|twin| twin.bug).collect();
    bugs.extend(NOT_APPLICABLE.iter().map(|(bug, _)| *bug));
    let count = bugs.len();
    bugs.sort_unstable();
    bugs.dedup();
    assert_eq!(bugs.len(), count, "a bug is listed twice");
}

/// Every bug of the catalogue that has a scenario (B1–B23 but B12, B14, B22) has a twin or a
/// reason why it cannot have one.
#[test]
fn every_catalogued_scenario_has_a_twin_or_a_reason() {
    let mut bugs: Vec<String> = twins().iter().map(|twin| twin.bug.to_owned()).collect();
    bugs.extend(NOT_APPLICABLE.iter().map(|(bug, _)| (*bug).to_owned()));
    for n in (1..=23).filter(|n| ![12, 14, 22].contains(n)) {
        let bug = format!("B{n}");
        assert!(bugs.contains(&bug), "{bug} has neither a twin nor a reason");
    }
}
