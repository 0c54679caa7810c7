//! Race regressions, part B (sessions, manifest, forget, prune): every scenario of
//! `models::regressions_b`, with its fix in place and with the fix reverted.
//!
//! Stated budgets: [`CATCH_BUDGET`] shuttle executions per scheduler to catch a reverted fix,
//! [`BUDGET`] to pass with it in place, seed 1 (loom: its exhaustive search at preemption
//! bound 2).
//!
//! * A reverted fix must be caught, within its budget, by every explorer its scenario's
//!   `Expect` names (the others are not run); each failure must carry its schedule (shuttle) or
//!   checkpoint (loom), a record file and a replay command, and must replay in one execution to
//!   the same violation.
//! * The same scenario with the fix in place must pass [`BUDGET`] under every shuttle
//!   scheduler, plus loom where its exhaustive search is quick (all of them with
//!   `EXPLORE_LONG=1`). These runs follow the `EXPLORE_*` knobs.
//!
//! `races_b::replay` replays a failure record of any of these scenarios:
//! `EXPLORE_REPLAY=<record> cargo test -p harness --test it races_b::replay -- --exact`.

use models::explore::{Budget, Explorer, Failure, Plan};
use models::knobs::Replay;
use models::regressions_b::b3_base_pinning::{self, BasePinning};
use models::regressions_b::b5_reader_pinning::{self, ReaderPinning};
use models::regressions_b::b6_prune_locks::{self, PruneLocks};
use models::regressions_b::b7_manifest_lock::{self, ManifestLock};
use models::regressions_b::b8_forget_manifest_lock::{self, ForgetManifestLock};
use models::regressions_b::b15_finish_releases_locks::{self, FinishReleasesLocks};
use models::regressions_b::b17_reader_shared_lock::{self, ReaderSharedLock};
use models::regressions_b::b19_session_locker::{self, SessionLocker};
use models::regressions_b::b23_cleanup_group::{self, CleanupGroup};
use models::regressions_b::b37_owner_write::{self, OwnerWrite};
use models::regressions_b::{Expect, Visitor, visit_regressions};
use models::scenario::Scenario;

use crate::explore::env_plan;

/// Shuttle executions per scheduler for passing with a fix in place.
const BUDGET: usize = 200;

/// Shuttle executions per scheduler within which a reverted fix must be caught (a run stops
/// at its first failure): the slowest required catch of `docs/races.md`, B6 under URW, took up
/// to 973 executions over seeds 1 to 10.
const CATCH_BUDGET: usize = 1000;

/// The command that replays a failure record of these scenarios.
const REPLAY: &str = "cargo test -p harness --test it races_b::replay -- --exact";

fn loom() -> Explorer {
    Explorer::Loom {
        preemption_bound: Some(Explorer::DEFAULT_LOOM_BOUND),
    }
}

/// The explorers that must catch a reverted fix, and the text of the violation.
fn catchers(expect: Expect) -> (Vec<Explorer>, &'static str) {
    match expect {
        Expect::Caught(message) => (Explorer::portfolio(Some(2)), message),
        Expect::CaughtBy { message, explorers } => (explorers.to_vec(), message),
        other => panic!("{other:?} is not a reverted fix"),
    }
}

/// The reverted variant is caught by every explorer `expect` names, within [`CATCH_BUDGET`], and
/// every failure replays.
fn assert_caught(scenario: &impl Scenario, expect: Expect) {
    let (explorers, message) = catchers(expect);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let report = Plan::new(Budget::executions(CATCH_BUDGET))
        .explorers(&explorers)
        .quiet()
        .failure_dir(dir.path())
        .replay_command(REPLAY)
        .explore(scenario);
    eprintln!("{}", report.table());
    report.assert_caught(message);
    let caught: Vec<Explorer> = report.failures().map(|failure| failure.explorer).collect();
    assert_eq!(caught, explorers, "{}", report.table());
    for failure in report.failures() {
        if failure.explorer.is_shuttle() {
            assert!(failure.execution <= CATCH_BUDGET, "{failure}");
            assert!(failure.schedule.is_some(), "{failure}");
        } else {
            assert!(failure.loom_checkpoint.is_some(), "{failure}");
        }
        let printed = failure.to_string();
        assert!(
            printed.contains("replay:     EXPLORE_REPLAY=") && printed.contains(REPLAY),
            "{printed}"
        );
        assert_replays(scenario, failure);
    }
}

/// Replays `failure` from its record file: one execution, the same violation.
fn assert_replays(scenario: &impl Scenario, failure: &Failure) {
    let record = failure.record_file.as_ref().expect("the failure was saved");
    let replay = Replay::parse(&record.display().to_string()).expect("the record parses");
    let plan = Plan {
        replay: Some(replay),
        ..Plan::new(Budget::executions(1)).quiet()
    };
    let report = plan.explore(scenario);
    let exploration = &report.explorations[0];
    assert_eq!(exploration.executions, 1, "{failure}");
    let replayed = exploration
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("the replay did not reproduce {failure}"));
    assert_eq!(replayed.message, failure.message);
}

/// The fixed variant passes [`BUDGET`] under every shuttle scheduler, and under loom if
/// `with_loom` or `EXPLORE_LONG` is set. The `EXPLORE_*` knobs apply.
fn assert_passes(scenario: &impl Scenario, with_loom: bool) {
    let mut plan = env_plan(Budget::executions(BUDGET)).replay_command(REPLAY);
    if std::env::var_os("EXPLORE_SCHEDULER").is_none() {
        plan.explorers = Explorer::shuttle_portfolio();
        if with_loom || std::env::var("EXPLORE_LONG").is_ok_and(|long| long == "1") {
            plan.explorers.push(loom());
        }
    }
    let report = plan.explore(scenario);
    eprintln!("{}", report.table());
    report.assert_passed();
    for exploration in &report.explorations {
        assert!(exploration.executions > 0, "{}", report.table());
    }
}

#[test]
fn b3_backup_pins_its_base() {
    assert_passes(&BasePinning::fixed(), false);
}

#[test]
fn b3_unpinned_base_is_caught() {
    assert_caught(&BasePinning::reverted(), b3_base_pinning::EXPECT_REVERTED);
}

#[test]
fn b5_readers_and_verify_pin_their_snapshot() {
    // Loom's exhaustive search of three actors takes about 100,000 iterations: long runs only.
    assert_passes(&ReaderPinning::fixed(), false);
}

#[test]
fn b5_unlocked_readers_are_caught() {
    assert_caught(
        &ReaderPinning::reverted(),
        b5_reader_pinning::EXPECT_REVERTED,
    );
}

#[test]
fn b6_prune_respects_snapshot_locks() {
    assert_passes(&PruneLocks::fixed(), true);
}

#[test]
fn b6_forced_prune_removal_is_caught() {
    assert_caught(&PruneLocks::reverted(), b6_prune_locks::EXPECT_REVERTED);
}

#[test]
fn b7_manifest_updates_serialise() {
    assert_passes(&ManifestLock::fixed(), true);
}

#[test]
fn b7_unlocked_manifest_update_is_caught() {
    assert_caught(&ManifestLock::reverted(), b7_manifest_lock::EXPECT_REVERTED);
}

#[test]
fn b8_forget_holds_the_manifest_lock() {
    assert_passes(&ForgetManifestLock::fixed(), true);
}

#[test]
fn b8_forget_ignoring_the_manifest_lock_is_caught() {
    assert_caught(
        &ForgetManifestLock::reverted(),
        b8_forget_manifest_lock::EXPECT_REVERTED,
    );
}

#[test]
fn b15_next_backup_after_finish_never_fails_busy() {
    assert_passes(&FinishReleasesLocks::fixed(), false);
}

#[test]
fn b15_locks_outliving_finish_are_caught() {
    assert_caught(
        &FinishReleasesLocks::reverted(),
        b15_finish_releases_locks::EXPECT_REVERTED,
    );
}

#[test]
fn b17_reader_never_blocks_a_backup_on_its_snapshot() {
    assert_passes(&ReaderSharedLock::fixed(), false);
}

#[test]
fn b17_exclusive_reader_lock_is_caught() {
    assert_caught(
        &ReaderSharedLock::reverted(),
        b17_reader_shared_lock::EXPECT_REVERTED,
    );
}

#[test]
fn b19_session_keeps_gc_of_other_processes_out() {
    assert_passes(&SessionLocker::fixed(), true);
}

#[test]
fn b19_per_writer_locker_guard_is_caught() {
    assert_caught(
        &SessionLocker::reverted(),
        b19_session_locker::EXPECT_REVERTED,
    );
}

#[test]
fn b23_failed_first_backup_leaves_no_group() {
    assert_passes(&CleanupGroup::fixed(), true);
}

#[test]
fn b23_cleanup_relocking_the_group_is_caught() {
    assert_caught(
        &CleanupGroup::reverted(),
        b23_cleanup_group::EXPECT_REVERTED,
    );
}

#[test]
fn b37_failed_owner_write_leaves_no_stuck_group() {
    assert_passes(&OwnerWrite::fixed(), true);
}

#[test]
fn b37_group_left_after_failed_owner_write_is_caught() {
    assert_caught(&OwnerWrite::reverted(), b37_owner_write::EXPECT_REVERTED);
}

/// Every scenario is listed once under a unique name, each fix in place (must pass) next to
/// its reverted variant (must fail, under the explorers the tests above use).
#[test]
fn visit_regressions_lists_each_fix_and_its_reversal() {
    struct Names(Vec<(String, Expect)>);
    impl Visitor for Names {
        fn visit<Sc: Scenario>(&mut self, scenario: &Sc, expect: Expect) {
            self.0.push((scenario.name(), expect));
        }
    }
    let mut names = Names(Vec::new());
    visit_regressions(&mut names);
    assert_eq!(names.0.len(), 20);
    for pair in names.0.chunks(2) {
        let [(fixed, pass), (reverted, caught)] = pair else {
            unreachable!()
        };
        assert_eq!(*pass, Expect::Pass, "{fixed}");
        assert!(caught.must_fail(), "{reverted}");
        assert!(reverted.starts_with(&format!("{fixed}/")), "{reverted}");
    }
    let mut unique: Vec<&String> = names.0.iter().map(|(name, _)| name).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 20);
}

/// Replays a failure record of one of these scenarios (`EXPLORE_REPLAY=<record>`); without
/// one there is nothing to do.
#[test]
fn replay() {
    if std::env::var_os("EXPLORE_REPLAY").is_none() {
        return;
    }
    struct Replayer(Vec<String>);
    impl Visitor for Replayer {
        fn visit<Sc: Scenario>(&mut self, scenario: &Sc, _expect: Expect) {
            let report = env_plan(Budget::executions(1))
                .replay_command(REPLAY)
                .explore(scenario);
            eprintln!("{}", report.table());
            self.0.extend(report.failures().map(ToString::to_string));
        }
    }
    let mut replayer = Replayer(Vec::new());
    visit_regressions(&mut replayer);
    assert!(replayer.0.is_empty(), "{}", replayer.0.join("\n"));
}
