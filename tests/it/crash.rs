//! Crash consistency and fault injection (`models::crash`) at the reduced budget, the planted
//! durability bug, and a crash scheduled in the middle of a concurrent GC × backup.

use models::crash::interleaving::CrashGcBackup;
use models::crash::{
    Case, CrashBudget, CrashKeep, Event, LEVELS, REVERTED_FIXES, Workload, replay_crash, replays,
    run_case,
};
use models::explore::{Budget, Plan};
use store::chunk_store::SyncLevel;
use store::regressions::{Bug, Regressions};

fn suite(workloads: &[Workload]) {
    let mut failed = Vec::new();
    for &workload in workloads {
        for level in LEVELS {
            let report = run_case(&Case::new(workload, level), &CrashBudget::REDUCED);
            // Setting protection at level none creates one file and syncs nothing.
            assert!(
                report.persistence_points > 0 || level == SyncLevel::None,
                "{workload} at {level:?} has no persistence point"
            );
            assert!(report.crash_states >= 2 * report.persistence_points);
            assert!(report.fault_points > 0);
            failed.extend(report.violations.iter().take(3).map(ToString::to_string));
        }
    }
    assert!(failed.is_empty(), "violations:\n{}", failed.join("\n"));
}

#[test]
fn backups_survive_every_crash_point_and_fault() {
    suite(&[Workload::Backup, Workload::IncrementalBackup]);
}

#[test]
fn removals_survive_every_crash_point_and_fault() {
    suite(&[Workload::Forget, Workload::Prune, Workload::Gc]);
}

#[test]
fn manifest_updates_survive_every_crash_point_and_fault() {
    suite(&[
        Workload::Verify,
        Workload::UpdateManifest,
        Workload::SetProtection,
    ]);
}

/// Every other durability and recovery fix of the store, reverted one at a time, is caught by
/// its case at the reduced budget, and the first violation replays.
#[test]
fn every_reverted_durability_fix_is_caught() {
    for fix in REVERTED_FIXES {
        let case = fix.case();
        let report = run_case(&case, &CrashBudget::REDUCED);
        let first = report.violations.first().unwrap_or_else(|| {
            panic!(
                "{:?} is not caught by {} at {:?}",
                fix.bug, fix.workload, fix.level
            )
        });
        assert!(
            replays(&case, first),
            "{:?}: {first} does not replay",
            fix.bug
        );
    }
}

/// The manifest renamed into place before the index is synced (level `file`): some crash point
/// leaves a snapshot that lists as finished with an unreadable index, and replaying that point
/// and state shows it again. With the fix in place the same case is clean.
#[test]
fn manifest_published_before_index_sync_is_caught() {
    let budget = CrashBudget {
        fault_stride: 0,
        ..CrashBudget::REDUCED
    };
    let planted = Case::new(Workload::Backup, SyncLevel::File)
        .with_regressions(Regressions::none().with(Bug::ManifestBeforeIndexSync));
    let report = run_case(&planted, &budget);
    let caught = report
        .violations
        .iter()
        .find(|violation| violation.message.contains("is damaged"))
        .unwrap_or_else(|| panic!("not caught: {:?}", report.violations));
    let Event::Crash { point, keep, .. } = &caught.event else {
        panic!("caught by {}, not by a crash", caught.event);
    };
    assert_eq!(*keep, CrashKeep::DurableOnly, "{caught}");
    let replayed = replay_crash(&planted, *point, keep.clone()).expect_err("the replay shows it");
    assert!(replayed.contains("is damaged"), "{replayed}");
    let fixed = Case::new(Workload::Backup, SyncLevel::File);
    assert_eq!(replay_crash(&fixed, *point, keep.clone()), Ok(()));
    assert!(run_case(&fixed, &budget).violations.is_empty());
}

#[test]
fn crash_in_the_middle_of_gc_and_backup_is_recovered() {
    for level in [SyncLevel::File, SyncLevel::Filesystem] {
        let report = Plan::new(Budget::executions(60))
            .quiet()
            .explore(&CrashGcBackup::new(level));
        report.assert_passed();
    }
}
