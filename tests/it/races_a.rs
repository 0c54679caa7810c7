//! Race regressions, part A (`models::regressions`): GC, the chunk store and the locks.
//!
//! Per historical bug two tests with one budget: with the fix reverted, every explorer the
//! scenario names must find the violation within the budget (seed [`SEED`]), and its failure
//! must print the command that replays it; with the fix in place, the same explorers and the
//! same budget find nothing. Budgets are shuttle executions per scheduler; loom (preemption
//! bound 2) explores exhaustively where the scenario is small enough for it. The plans are
//! fixed (no `EXPLORE_*` knobs) except that `EXPLORE_REPLAY=<record>` replays a printed failure
//! through the test that printed it.
//!
//! | bug | scenario | explorers | budget |
//! |---|---|---|---|
//! | B1 | `regressions/writer-cutoff` | random, PCT 2, PCT 3, URW | 100 |
//! | B2 | `regressions/sweep-cutoff` | random, PCT 2, PCT 3, URW | 100 |
//! | B4 | `insert-sweep` | random, PCT 2, PCT 3, URW, loom | 100 |
//! | B9 | `regressions/gc-vanished-index` | random, PCT 2, PCT 3, URW | 100 |
//! | B10 | `regressions/locker-release` | random, PCT 2, PCT 3, URW | 100 |
//! | B11 | `regressions/touch-fault` | random, PCT 2, PCT 3, URW, loom | 100 |
//! | B13 | `regressions/second-open` | random, PCT 2, PCT 3, URW | 100 |
//! | B16 | `regressions/lock-identity` | random, PCT 3, URW, loom | 500 |
//! | B18 | `regressions/gc-start-list` | PCT 2, PCT 3 | 200 |
//! | B20 | `regressions/pull-touch` | random, PCT 2, PCT 3, URW, loom | 200 |
//! | B21 | `regressions/bad-rename` | random, PCT 2, PCT 3, URW, loom | 200 |

use models::explore::{Budget, Explorer, Plan, Report};
use models::knobs::{Replay, default_failure_dir};
use models::regressions::{
    MISSING_CHUNK, SHUTTLE_AND_LOOM, Variant, bad_rename, gc_cutoff, gc_start_list, gc_vanished,
    lock_identity, locker, pull_touch, touch_fault,
};
use models::scenario::Scenario;
use models::scenarios::insert_sweep::{self, InsertSweep};

/// The seed of every plan here.
const SEED: u64 = 1;

/// The plan of the test `test`: `budget` shuttle executions per scheduler, seed [`SEED`],
/// failures saved (under `target/explore-failures`) with this test as their replay command.
fn plan(test: &str, budget: usize, explorers: &[Explorer]) -> Plan {
    let mut plan = Plan::new(Budget::executions(budget))
        .quiet()
        .seed(SEED)
        .explorers(explorers)
        .replay_command(format!(
            "cargo test -p harness --test it races_a::{test} -- --exact"
        ));
    if let Some(dir) = default_failure_dir() {
        plan = plan.failure_dir(dir);
    }
    if std::env::var_os("EXPLORE_REPLAY").is_some() {
        plan = plan.with_env().unwrap_or_else(|err| panic!("{err}"));
    }
    plan
}

/// Every explorer caught `message`, and each failure prints how to replay it.
#[track_caller]
fn assert_caught(report: &Report, message: &str) {
    report.assert_caught(message);
    assert!(report.failures().next().is_some(), "{}", report.table());
    for failure in report.failures() {
        let text = failure.to_string();
        assert!(
            text.contains("replay:     EXPLORE_REPLAY=") && text.contains("races_a::"),
            "no replay command in:\n{text}"
        );
    }
}

/// Runs the reverted variant (must be caught) or the fixed one (must pass).
#[track_caller]
fn check<Sc: Scenario>(
    test: &str,
    scenario: &Sc,
    budget: usize,
    explorers: &[Explorer],
    message: &str,
    reverted: bool,
) {
    let report = plan(test, budget, explorers).explore(scenario);
    if reverted {
        assert_caught(&report, message);
    } else {
        report.assert_passed();
        assert!(
            report.explorations.iter().all(|e| e.executions > 0),
            "{}",
            report.table()
        );
    }
}

macro_rules! race {
    ($caught:ident, $holds:ident, $budget:expr, $message:expr, |$variant:ident| $scenario:expr) => {
        #[test]
        fn $caught() {
            let $variant = Variant::REVERTED;
            let scenario = $scenario;
            let explorers = scenario.explorers();
            check(
                stringify!($caught),
                &scenario,
                $budget,
                explorers,
                $message,
                true,
            );
        }

        #[test]
        fn $holds() {
            let $variant = Variant::FIXED;
            let scenario = $scenario;
            let explorers = scenario.explorers();
            check(
                stringify!($holds),
                &scenario,
                $budget,
                explorers,
                $message,
                false,
            );
        }
    };
}

race!(
    b1_gc_ignoring_running_writers_is_caught,
    b1_gc_keeps_uploads_of_running_writers,
    100,
    MISSING_CHUNK,
    |variant| gc_cutoff::WriterCutoff(variant)
);

race!(
    b2_cutoff_at_sweep_start_is_caught,
    b2_cutoff_from_phase_one_start_keeps_marked_chunks,
    100,
    MISSING_CHUNK,
    |variant| gc_cutoff::SweepCutoff(variant)
);

race!(
    b9_gc_aborting_on_vanished_index_is_caught,
    b9_gc_succeeds_under_concurrent_forget,
    100,
    gc_vanished::VIOLATION,
    |variant| gc_vanished::GcVanished(variant)
);

race!(
    b10_locker_keeping_its_read_lock_is_caught,
    b10_gc_of_another_process_starts_once_writers_are_gone,
    100,
    locker::VIOLATION,
    |variant| locker::LockerRelease(variant)
);

race!(
    b11_gc_tolerating_touch_errors_is_caught,
    b11_gc_never_sweeps_a_chunk_it_failed_to_mark,
    100,
    MISSING_CHUNK,
    |variant| touch_fault::TouchFault(variant)
);

race!(
    b13_second_process_locker_is_caught,
    b13_second_open_shares_the_process_locker,
    100,
    MISSING_CHUNK,
    |variant| gc_cutoff::SecondOpen(variant)
);

race!(
    b16_lock_without_identity_check_is_caught,
    b16_unlinked_lock_file_is_never_owned_twice,
    500,
    lock_identity::VIOLATION,
    |variant| lock_identity::LockIdentity(variant)
);

race!(
    b18_gc_marking_from_start_list_is_caught,
    b18_gc_live_iteration_keeps_reused_chunks,
    200,
    MISSING_CHUNK,
    |variant| gc_start_list::GcStartList::new(variant)
);

race!(
    b20_touch_outside_mutex_is_caught,
    b20_present_check_is_atomic_with_the_sweep,
    200,
    MISSING_CHUNK,
    |variant| pull_touch::PullTouch(variant)
);

race!(
    b21_rename_outside_mutex_is_caught,
    b21_sweep_survives_concurrent_bad_rename,
    200,
    bad_rename::VIOLATION,
    |variant| bad_rename::BadRename(variant)
);

#[test]
fn b4_duplicate_insert_without_touch_is_caught() {
    let test = "b4_duplicate_insert_without_touch_is_caught";
    let scenario = InsertSweep::b4_reverted();
    check(
        test,
        &scenario,
        100,
        SHUTTLE_AND_LOOM,
        insert_sweep::VIOLATION,
        true,
    );
}

#[test]
fn b4_duplicate_insert_touches_under_the_mutex() {
    let test = "b4_duplicate_insert_touches_under_the_mutex";
    let scenario = InsertSweep::default();
    check(
        test,
        &scenario,
        100,
        SHUTTLE_AND_LOOM,
        insert_sweep::VIOLATION,
        false,
    );
}

/// A printed failure replays: its record, read back as `EXPLORE_REPLAY` would, reproduces the
/// same violation in one execution.
#[test]
fn a_recorded_race_replays_in_one_execution() {
    let scenario = bad_rename::BadRename(Variant::REVERTED);
    let mut plan = Plan::new(Budget::executions(200))
        .quiet()
        .seed(SEED)
        .explorers(&[Explorer::Random]);
    let dir = tempfile::tempdir().expect("a temporary directory");
    plan = plan.failure_dir(dir.path());
    let report = plan.explore(&scenario);
    let failure = report.failures().next().expect("caught").clone();
    let record = failure.record_file.clone().expect("a saved record");
    let replay = Replay::parse(&record.display().to_string()).expect("the record parses");
    let replayed = plan.replay(&scenario, &replay);
    assert_eq!(replayed.executions, 1);
    let again = replayed.failure.expect("the replay fails too");
    assert!(
        again.message.contains(bad_rename::VIOLATION),
        "{}",
        again.message
    );
    assert_eq!(again.message, failure.message);
}

/// The B13 fix on both worlds: a second open of a datastore in the same process shares the
/// first one's process locker, so GC through it sees the first one's writers; once every
/// instance is gone, a new open makes a fresh locker.
fn second_open_shares_the_locker(env: &impl crate::support::Env) {
    use std::sync::Arc;
    use store::datastore::{Datastore, DatastoreConfig};

    let first = crate::support::new_datastore(env);
    let config = DatastoreConfig::new(first.config().chunk_store);
    let second = Datastore::open(env.world(), first.base(), config.clone()).expect("open again");
    assert!(Arc::ptr_eq(first.process_locker(), second.process_locker()));
    let session = first
        .start_backup(
            &crate::support::snapshot("vm/100", "2024-01-01T00:00:00Z"),
            "a@pam",
        )
        .expect("a backup");
    assert_eq!(second.process_locker().writer_count(), 1);
    session.abort().expect("abort");
    assert_eq!(second.process_locker().writer_count(), 0);
    let base = first.base().to_owned();
    let weak = Arc::downgrade(first.process_locker());
    drop((first, second));
    assert!(
        weak.upgrade().is_none(),
        "the registry keeps no locker alive"
    );
    let third = Datastore::open(env.world(), &base, config).expect("open a third time");
    assert_eq!(third.process_locker().writer_count(), 0);
}

crate::both_worlds!(second_open_shares_the_locker);

/// Another simulated process gets its own locker (record locks are per process).
#[test]
fn another_simulated_process_has_its_own_locker() {
    use std::sync::Arc;
    let world = sim::SimWorld::<store::sync::StdSync>::new(1);
    let first = models::regressions::new_datastore(&world, Default::default()).expect("create");
    let same = models::regressions::open_datastore(&world, Default::default()).expect("open");
    let other = models::regressions::open_datastore(&world.new_process(), Default::default())
        .expect("open in another process");
    assert!(Arc::ptr_eq(first.process_locker(), same.process_locker()));
    assert!(!Arc::ptr_eq(first.process_locker(), other.process_locker()));
}

/// With the B13 switch, every open makes its own locker again.
#[test]
fn b13_switch_restores_one_locker_per_open() {
    use std::sync::Arc;
    use store::regressions::{Bug, Regressions};
    let world = sim::SimWorld::<store::sync::StdSync>::new(1);
    let reverted = Regressions::none().with(Bug::B13SecondProcessLocker);
    let first = models::regressions::new_datastore(&world, reverted).expect("create");
    let second = models::regressions::open_datastore(&world, reverted).expect("open");
    assert!(!Arc::ptr_eq(
        first.process_locker(),
        second.process_locker()
    ));
}

/// `SimWorld::fail_touch`: the chosen inode's touches fail with the chosen kind, `times` times
/// or until cleared; other files and other operations are unaffected; the rule follows the
/// inode through a rename and ends with it.
#[test]
fn simulated_touch_faults() {
    use std::io::ErrorKind;
    use std::path::Path;
    use store::world::{OpenOptions, World};

    let world = sim::SimWorld::<store::sync::StdSync>::new(1);
    for name in ["/a", "/b"] {
        drop(
            world
                .open(Path::new(name), OpenOptions::create_new())
                .expect("create"),
        );
    }
    let (a, b) = (Path::new("/a"), Path::new("/b"));
    world
        .fail_touch(a, ErrorKind::StorageFull, Some(2))
        .expect("arm");
    for _ in 0..2 {
        assert_eq!(
            world.touch_atime(a).unwrap_err().kind(),
            ErrorKind::StorageFull
        );
    }
    world.touch_atime(a).expect("the third touch succeeds");
    world.touch_atime(b).expect("another file is unaffected");

    world
        .fail_touch(a, ErrorKind::PermissionDenied, None)
        .expect("arm");
    world.advance(10);
    let before = world.metadata(a).expect("stat").atime;
    for _ in 0..3 {
        assert_eq!(
            world.touch_atime(a).unwrap_err().kind(),
            ErrorKind::PermissionDenied
        );
    }
    assert_eq!(
        world.metadata(a).expect("stat").atime,
        before,
        "a failed touch changes nothing"
    );
    assert!(world.read_file(a).is_ok(), "reads are unaffected");
    world.rename(a, Path::new("/c")).expect("rename");
    assert!(
        world.touch_atime(Path::new("/c")).is_err(),
        "the rule follows the inode"
    );
    world.clear_touch_fault(Path::new("/c")).expect("clear");
    world.touch_atime(Path::new("/c")).expect("cleared");
    assert!(
        world.fail_touch(a, ErrorKind::Other, None).is_err(),
        "no file at /a any more"
    );

    // Another process sees the same disk, and so the same fault.
    world.fail_touch(b, ErrorKind::Other, None).expect("arm");
    assert!(world.new_process().touch_atime(b).is_err());
}
