//! Prune: the selection algorithm by hand-computed examples and by properties, and prune runs
//! on both worlds (removals, dry run, snapshots in use, protection, the running backup).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use store::backup_info::{BackupDir, BackupGroup, BackupTime, CalendarPeriod, NameError};
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::datastore::prune::{
    KeepOptions, PruneMark, PruneOptions, PruneOutcome, PruneReport, compute_prune_info,
};
use store::datastore::{Datastore, Error, SnapshotInfo};
use store::world::{LockMode, World};

use crate::both_worlds;
use crate::support::{Env, new_datastore, plant_snapshot};

use PruneMark::{Keep, KeepPartial, Protected, Remove};

const GROUP: &str = "vm/100";

fn group() -> BackupGroup {
    BackupGroup::from_relative_path(GROUP).expect("valid group")
}

fn time(text: &str) -> BackupTime {
    BackupTime::parse(text).expect("valid time")
}

fn dir(text: &str) -> BackupDir {
    BackupDir::new(group(), time(text))
}

fn finished(text: &str) -> SnapshotInfo {
    SnapshotInfo {
        dir: dir(text),
        finished: true,
        protected: false,
    }
}

fn unfinished(text: &str) -> SnapshotInfo {
    SnapshotInfo {
        dir: dir(text),
        finished: false,
        protected: false,
    }
}

fn protected(mut info: SnapshotInfo) -> SnapshotInfo {
    info.protected = true;
    info
}

/// The marks of `list` as `(time, mark)`, newest first.
fn marks(list: &[SnapshotInfo], keep: KeepOptions, offset: i32) -> Vec<(String, PruneMark)> {
    compute_prune_info(list, &keep, offset)
        .expect("valid offset")
        .into_iter()
        .map(|(info, mark)| (info.dir.time.to_string(), mark))
        .collect()
}

/// `(time, mark)` pairs from literals.
fn expect(pairs: &[(&str, PruneMark)]) -> Vec<(String, PruneMark)> {
    pairs
        .iter()
        .map(|&(text, mark)| (text.to_owned(), mark))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// compute_prune_info by example

#[test]
fn keep_last_keeps_the_newest_and_sorts_newest_first() {
    // Deliberately out of order: the result is newest first whatever the input order.
    let list = [
        finished("2024-01-03T00:00:00Z"),
        finished("2024-01-01T00:00:00Z"),
        finished("2024-01-05T00:00:00Z"),
        finished("2024-01-02T00:00:00Z"),
        finished("2024-01-04T00:00:00Z"),
    ];
    let keep = KeepOptions {
        keep_last: 3,
        ..KeepOptions::default()
    };
    assert_eq!(
        marks(&list, keep, 0),
        expect(&[
            ("2024-01-05T00:00:00Z", Keep),
            ("2024-01-04T00:00:00Z", Keep),
            ("2024-01-03T00:00:00Z", Keep),
            ("2024-01-02T00:00:00Z", Remove),
            ("2024-01-01T00:00:00Z", Remove),
        ])
    );
    // More slots than snapshots keeps them all.
    let keep = KeepOptions {
        keep_last: 9,
        ..KeepOptions::default()
    };
    assert!(marks(&list, keep, 0).iter().all(|(_, mark)| *mark == Keep));
    assert!(compute_prune_info(&[], &keep, 0).expect("empty").is_empty());
}

#[test]
fn keep_daily_keeps_the_newest_of_each_day() {
    let list = [
        finished("2024-03-01T12:00:00Z"),
        finished("2024-03-02T09:00:00Z"),
        finished("2024-03-02T21:00:00Z"),
        finished("2024-03-03T08:00:00Z"),
        finished("2024-03-03T14:00:00Z"),
        finished("2024-03-03T20:00:00Z"),
    ];
    let keep = KeepOptions {
        keep_daily: 2,
        ..KeepOptions::default()
    };
    assert_eq!(
        marks(&list, keep, 0),
        expect(&[
            ("2024-03-03T20:00:00Z", Keep),
            ("2024-03-03T14:00:00Z", Remove),
            ("2024-03-03T08:00:00Z", Remove),
            ("2024-03-02T21:00:00Z", Keep),
            ("2024-03-02T09:00:00Z", Remove),
            ("2024-03-01T12:00:00Z", Remove),
        ])
    );
    // Hours are periods of their own.
    let keep = KeepOptions {
        keep_hourly: 4,
        ..KeepOptions::default()
    };
    assert_eq!(
        marks(&list, keep, 0)
            .iter()
            .filter(|(_, mark)| *mark == Keep)
            .count(),
        4,
        "every snapshot is alone in its hour"
    );
}

#[test]
fn keep_weekly_uses_iso_weeks_across_the_year_boundary() {
    // 2020-12-28 (Monday) to 2021-01-03 (Sunday) is ISO week 2020-W53.
    let list = [
        finished("2020-12-27T10:00:00Z"), // Sunday, 2020-W52
        finished("2020-12-28T10:00:00Z"), // 2020-W53
        finished("2020-12-31T10:00:00Z"), // 2020-W53
        finished("2021-01-03T10:00:00Z"), // 2020-W53
        finished("2021-01-04T10:00:00Z"), // Monday, 2021-W01
    ];
    let keep = KeepOptions {
        keep_weekly: 3,
        ..KeepOptions::default()
    };
    // A calendar-year week number would split W53 into 2021/53 and 2020/53 and keep
    // 2020-12-31 instead of 2020-12-27.
    assert_eq!(
        marks(&list, keep, 0),
        expect(&[
            ("2021-01-04T10:00:00Z", Keep),
            ("2021-01-03T10:00:00Z", Keep),
            ("2020-12-31T10:00:00Z", Remove),
            ("2020-12-28T10:00:00Z", Remove),
            ("2020-12-27T10:00:00Z", Keep),
        ])
    );
}

#[test]
fn keep_monthly_and_yearly() {
    let list = [
        finished("2021-07-01T00:00:00Z"),
        finished("2022-01-01T00:00:00Z"),
        finished("2022-12-31T00:00:00Z"),
        finished("2023-06-01T00:00:00Z"),
        finished("2023-11-30T00:00:00Z"),
        finished("2023-12-15T00:00:00Z"),
        finished("2023-12-31T10:00:00Z"),
    ];
    let monthly = KeepOptions {
        keep_monthly: 3,
        ..KeepOptions::default()
    };
    assert_eq!(
        marks(&list, monthly, 0),
        expect(&[
            ("2023-12-31T10:00:00Z", Keep),
            ("2023-12-15T00:00:00Z", Remove),
            ("2023-11-30T00:00:00Z", Keep),
            ("2023-06-01T00:00:00Z", Keep),
            ("2022-12-31T00:00:00Z", Remove),
            ("2022-01-01T00:00:00Z", Remove),
            ("2021-07-01T00:00:00Z", Remove),
        ])
    );
    let yearly = KeepOptions {
        keep_yearly: 2,
        ..KeepOptions::default()
    };
    assert_eq!(
        marks(&list, yearly, 0),
        expect(&[
            ("2023-12-31T10:00:00Z", Keep),
            ("2023-12-15T00:00:00Z", Remove),
            ("2023-11-30T00:00:00Z", Remove),
            ("2023-06-01T00:00:00Z", Remove),
            ("2022-12-31T00:00:00Z", Keep),
            ("2022-01-01T00:00:00Z", Remove),
            ("2021-07-01T00:00:00Z", Remove),
        ])
    );
}

#[test]
fn periods_kept_by_an_earlier_option_are_not_counted_again() {
    let list = [
        finished("2024-05-01T09:00:00Z"),
        finished("2024-05-02T10:00:00Z"),
        finished("2024-05-02T20:00:00Z"),
        finished("2024-05-03T06:00:00Z"),
        finished("2024-05-03T12:00:00Z"),
        finished("2024-05-03T18:00:00Z"),
    ];
    // keep-last takes two snapshots of May 3rd; May 3rd then counts as covered for keep-daily,
    // whose two slots go to May 2nd and May 1st. May 3rd's third snapshot is passed over by
    // keep-daily and removed at the end.
    let keep = KeepOptions {
        keep_last: 2,
        keep_daily: 2,
        ..KeepOptions::default()
    };
    assert_eq!(
        marks(&list, keep, 0),
        expect(&[
            ("2024-05-03T18:00:00Z", Keep),
            ("2024-05-03T12:00:00Z", Keep),
            ("2024-05-03T06:00:00Z", Remove),
            ("2024-05-02T20:00:00Z", Keep),
            ("2024-05-02T10:00:00Z", Remove),
            ("2024-05-01T09:00:00Z", Keep),
        ])
    );

    let list = [
        finished("2024-03-01T00:00:00Z"),
        finished("2024-04-01T00:00:00Z"),
        finished("2024-04-15T00:00:00Z"),
        finished("2024-05-10T00:00:00Z"),
        finished("2024-05-20T00:00:00Z"),
    ];
    // keep-daily keeps May 20th, so May is covered and keep-monthly's slots are April and
    // March; May 10th stays unmarked and goes.
    let keep = KeepOptions {
        keep_daily: 1,
        keep_monthly: 2,
        ..KeepOptions::default()
    };
    assert_eq!(
        marks(&list, keep, 0),
        expect(&[
            ("2024-05-20T00:00:00Z", Keep),
            ("2024-05-10T00:00:00Z", Remove),
            ("2024-04-15T00:00:00Z", Keep),
            ("2024-04-01T00:00:00Z", Remove),
            ("2024-03-01T00:00:00Z", Keep),
        ])
    );
}

#[test]
fn protected_snapshots_use_no_slot() {
    let list = [
        protected(finished("2024-01-01T00:00:00Z")),
        finished("2024-01-02T00:00:00Z"),
        finished("2024-01-03T00:00:00Z"),
        protected(finished("2024-01-04T00:00:00Z")),
        finished("2024-01-05T00:00:00Z"),
        protected(finished("2024-01-06T00:00:00Z")),
    ];
    let keep = KeepOptions {
        keep_last: 2,
        ..KeepOptions::default()
    };
    assert_eq!(
        marks(&list, keep, 0),
        expect(&[
            ("2024-01-06T00:00:00Z", Protected),
            ("2024-01-05T00:00:00Z", Keep),
            ("2024-01-04T00:00:00Z", Protected),
            ("2024-01-03T00:00:00Z", Keep),
            ("2024-01-02T00:00:00Z", Remove),
            // Past the end of the selection, and still protected.
            ("2024-01-01T00:00:00Z", Protected),
        ])
    );
    // A protected snapshot does not take its day's slot either: the day's next snapshot does.
    let list = [
        finished("2024-02-01T08:00:00Z"),
        finished("2024-02-02T08:00:00Z"),
        protected(finished("2024-02-02T20:00:00Z")),
    ];
    let keep = KeepOptions {
        keep_daily: 1,
        ..KeepOptions::default()
    };
    assert_eq!(
        marks(&list, keep, 0),
        expect(&[
            ("2024-02-02T20:00:00Z", Protected),
            ("2024-02-02T08:00:00Z", Keep),
            ("2024-02-01T08:00:00Z", Remove),
        ])
    );
}

#[test]
fn unfinished_snapshots_are_kept_only_before_the_newest_finished_one() {
    let list = [
        finished("2024-01-01T00:00:00Z"),
        unfinished("2024-01-02T00:00:00Z"),
        protected(unfinished("2024-01-03T00:00:00Z")),
        finished("2024-01-04T00:00:00Z"),
        unfinished("2024-01-05T00:00:00Z"),
        unfinished("2024-01-06T00:00:00Z"),
    ];
    let keep = KeepOptions {
        keep_last: 1,
        ..KeepOptions::default()
    };
    assert_eq!(
        marks(&list, keep, 0),
        expect(&[
            ("2024-01-06T00:00:00Z", KeepPartial),
            ("2024-01-05T00:00:00Z", KeepPartial),
            ("2024-01-04T00:00:00Z", Keep),
            ("2024-01-03T00:00:00Z", Protected),
            ("2024-01-02T00:00:00Z", Remove),
            ("2024-01-01T00:00:00Z", Remove),
        ])
    );
    // Unfinished snapshots never take a slot: with room for everything, the old unfinished
    // one still goes.
    let keep = KeepOptions {
        keep_last: 10,
        ..KeepOptions::default()
    };
    assert_eq!(
        marks(&list, keep, 0),
        expect(&[
            ("2024-01-06T00:00:00Z", KeepPartial),
            ("2024-01-05T00:00:00Z", KeepPartial),
            ("2024-01-04T00:00:00Z", Keep),
            ("2024-01-03T00:00:00Z", Protected),
            ("2024-01-02T00:00:00Z", Remove),
            ("2024-01-01T00:00:00Z", Keep),
        ])
    );
    // A group of unfinished snapshots only keeps them all.
    let list = [
        unfinished("2024-01-01T00:00:00Z"),
        unfinished("2024-01-02T00:00:00Z"),
    ];
    let keep = KeepOptions {
        keep_last: 1,
        ..KeepOptions::default()
    };
    assert!(
        marks(&list, keep, 0)
            .iter()
            .all(|(_, mark)| *mark == KeepPartial)
    );
}

#[test]
fn utc_offset_moves_snapshots_between_days() {
    let list = [
        finished("2024-05-31T12:00:00Z"),
        finished("2024-06-01T20:00:00Z"),
        finished("2024-06-01T23:30:00Z"),
    ];
    let keep = KeepOptions {
        keep_daily: 2,
        ..KeepOptions::default()
    };
    assert_eq!(
        marks(&list, keep, 0),
        expect(&[
            ("2024-06-01T23:30:00Z", Keep),
            ("2024-06-01T20:00:00Z", Remove),
            ("2024-05-31T12:00:00Z", Keep),
        ])
    );
    // At UTC+01:00 the newest snapshot was taken on June 2nd, 00:30 local time.
    assert_eq!(
        marks(&list, keep, 3600),
        expect(&[
            ("2024-06-01T23:30:00Z", Keep),
            ("2024-06-01T20:00:00Z", Keep),
            ("2024-05-31T12:00:00Z", Remove),
        ])
    );
    // West of UTC a snapshot after midnight UTC still belongs to the previous day.
    let list = [
        finished("2024-06-01T01:00:00Z"),
        finished("2024-05-31T22:00:00Z"),
    ];
    assert_eq!(
        marks(&list, keep, -7200),
        expect(&[
            ("2024-06-01T01:00:00Z", Keep),
            ("2024-05-31T22:00:00Z", Remove)
        ])
    );
    assert_eq!(
        marks(&list, keep, 0),
        expect(&[
            ("2024-06-01T01:00:00Z", Keep),
            ("2024-05-31T22:00:00Z", Keep)
        ])
    );
    // An offset of a day or more is refused, even for an empty list.
    for offset_seconds in [86_400, -86_400, i32::MAX] {
        for input in [&list[..], &[]] {
            assert_eq!(
                compute_prune_info(input, &keep, offset_seconds),
                Err(NameError::UtcOffsetOutOfRange { offset_seconds })
            );
        }
    }
}

#[test]
fn nothing_to_keep_keeps_everything() {
    let keep = KeepOptions::default();
    assert!(!keep.keeps_something());
    assert!(
        KeepOptions {
            keep_yearly: 1,
            ..KeepOptions::default()
        }
        .keeps_something()
    );
    assert!(
        KeepOptions {
            keep_last: 1,
            ..KeepOptions::default()
        }
        .keeps_something()
    );
    let list = [
        unfinished("2024-01-01T00:00:00Z"),
        finished("2024-01-02T00:00:00Z"),
        protected(finished("2024-01-03T00:00:00Z")),
        finished("2024-01-04T00:00:00Z"),
        unfinished("2024-01-05T00:00:00Z"),
    ];
    assert_eq!(
        marks(&list, keep, 0),
        expect(&[
            ("2024-01-05T00:00:00Z", KeepPartial),
            ("2024-01-04T00:00:00Z", Keep),
            ("2024-01-03T00:00:00Z", Protected),
            ("2024-01-02T00:00:00Z", Keep),
            ("2024-01-01T00:00:00Z", KeepPartial),
        ])
    );
}

#[test]
fn marks_read_as_words() {
    let words: Vec<String> = [Keep, KeepPartial, Protected, Remove]
        .iter()
        .map(|mark| mark.to_string())
        .collect();
    assert_eq!(words, ["keep", "keep-partial", "protected", "remove"]);
    assert!(Keep.keep() && KeepPartial.keep() && Protected.keep() && !Remove.keep());
}

// ---------------------------------------------------------------------------------------------
// compute_prune_info by property

/// Random snapshot lists: times clustered at several scales so that hours, days, weeks, months
/// and years all hold several snapshots; about one in five unfinished, one in seven protected.
fn snapshot_list() -> impl Strategy<Value = Vec<SnapshotInfo>> {
    // 2020-12-20, a few days before an ISO year with 53 weeks ends.
    let start = time("2020-12-20T00:00:00Z").epoch();
    let offset = prop_oneof![0..3 * 86_400i64, 0..90 * 86_400i64, 0..4 * 366 * 86_400i64];
    let entry = (
        offset,
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.15),
    );
    proptest::collection::vec(entry, 0..40).prop_map(move |entries| {
        let by_time: BTreeMap<i64, (bool, bool)> = entries
            .into_iter()
            .map(|(offset, finished, protected)| (start + offset, (finished, protected)))
            .collect();
        by_time
            .into_iter()
            .map(|(epoch, (finished, protected))| SnapshotInfo {
                dir: BackupDir::new(group(), BackupTime::from_epoch(epoch).expect("in range")),
                finished,
                protected,
            })
            .collect()
    })
}

fn keep_options() -> impl Strategy<Value = KeepOptions> {
    let count = || prop_oneof![3 => Just(0u32), 2 => 1..5u32];
    (count(), count(), count(), count(), count(), count()).prop_map(
        |(keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly)| {
            KeepOptions {
                keep_last,
                keep_hourly,
                keep_daily,
                keep_weekly,
                keep_monthly,
                keep_yearly,
            }
        },
    )
}

fn utc_offset() -> impl Strategy<Value = i32> {
    prop_oneof![Just(0), Just(3600), Just(-18_000), -86_399..86_400i32]
}

/// The options in their fixed order, each with its own period.
#[derive(Debug, Clone, Copy)]
enum Rule {
    Last,
    Calendar(CalendarPeriod),
}

const OPTIONS: [Rule; 6] = [
    Rule::Last,
    Rule::Calendar(CalendarPeriod::Hour),
    Rule::Calendar(CalendarPeriod::Day),
    Rule::Calendar(CalendarPeriod::IsoWeek),
    Rule::Calendar(CalendarPeriod::Month),
    Rule::Calendar(CalendarPeriod::Year),
];

fn count_of(keep: &KeepOptions, index: usize) -> u32 {
    [
        keep.keep_last,
        keep.keep_hourly,
        keep.keep_daily,
        keep.keep_weekly,
        keep.keep_monthly,
        keep.keep_yearly,
    ][index]
}

/// `keep` with only the options before `end` (in the fixed order) left on.
fn prefix(keep: &KeepOptions, end: usize) -> KeepOptions {
    let on = |index: usize| {
        if index < end {
            count_of(keep, index)
        } else {
            0
        }
    };
    KeepOptions {
        keep_last: on(0),
        keep_hourly: on(1),
        keep_daily: on(2),
        keep_weekly: on(3),
        keep_monthly: on(4),
        keep_yearly: on(5),
    }
}

/// The period of `option` a snapshot falls into, as a comparable value.
fn period(option: Rule, info: &SnapshotInfo, offset: i32) -> (i64, i64, i64, i64) {
    match option {
        Rule::Last => (info.dir.time.epoch(), 0, 0, 0),
        Rule::Calendar(kind) => {
            let (a, b, c, d) = info
                .dir
                .time
                .civil(offset)
                .expect("valid offset")
                .period_key(kind);
            (a.into(), b.into(), c.into(), d.into())
        }
    }
}

fn dirs_marked(result: &[(SnapshotInfo, PruneMark)], mark: PruneMark) -> BTreeSet<BackupDir> {
    result
        .iter()
        .filter(|(_, m)| *m == mark)
        .map(|(info, _)| info.dir.clone())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 600,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Shape, protection, I11 and idempotence.
    #[test]
    fn prune_marks_keep_what_they_must(
        list in snapshot_list(),
        keep in keep_options(),
        offset in utc_offset(),
    ) {
        let result = compute_prune_info(&list, &keep, offset).expect("valid offset");
        // Every snapshot once, newest first.
        prop_assert_eq!(result.len(), list.len());
        prop_assert!(result.windows(2).all(|pair| pair[0].0.dir.time > pair[1].0.dir.time));
        let listed: BTreeSet<_> = list.iter().map(|info| info.dir.clone()).collect();
        let marked: BTreeSet<_> = result.iter().map(|(info, _)| info.dir.clone()).collect();
        prop_assert_eq!(listed, marked);

        for (info, mark) in &result {
            // Protected snapshots are never removed, and only they are marked so.
            prop_assert_eq!(info.protected, *mark == Protected, "{} {}", info.dir, mark);
            // Keep is for finished snapshots, KeepPartial for unfinished ones.
            if *mark == Keep {
                prop_assert!(info.finished, "{}", info.dir);
            }
            if *mark == KeepPartial {
                prop_assert!(!info.finished, "{}", info.dir);
            }
        }

        if !keep.keeps_something() {
            prop_assert!(result.iter().all(|(_, mark)| mark.keep()));
        } else {
            // I11: the newest finished non-protected snapshot is kept ...
            if let Some((info, mark)) =
                result.iter().find(|(info, _)| info.finished && !info.protected)
            {
                prop_assert_eq!(*mark, Keep, "newest finished {}", info.dir);
            }
            // ... and so is every unfinished one newer than all finished ones, in particular an
            // unfinished newest snapshot (the running backup).
            for (info, mark) in result.iter().take_while(|(info, _)| !info.finished) {
                let expected = if info.protected { Protected } else { KeepPartial };
                prop_assert_eq!(*mark, expected, "{}", info.dir);
            }
            if let Some((info, mark)) = result.first()
                && !info.finished
                && !info.protected
            {
                prop_assert_eq!(*mark, KeepPartial);
            }
        }

        // Pruning what was kept again, with the same options, removes nothing and marks
        // every survivor the same way.
        let survivors: Vec<SnapshotInfo> =
            result.iter().filter(|(_, mark)| mark.keep()).map(|(info, _)| info.clone()).collect();
        let again = compute_prune_info(&survivors, &keep, offset).expect("valid offset");
        let first: Vec<_> = result.iter().filter(|(_, mark)| mark.keep()).cloned().collect();
        prop_assert_eq!(again, first);
    }

    /// The slot count of each option, stated precisely.
    ///
    /// Options apply in a fixed order and each one only adds marks, so the contribution of
    /// option `i` is the difference between running the options before it and running them
    /// together with it. That difference only adds `Keep` marks (and only takes away removals):
    /// at most `N_i` of them, in pairwise distinct periods of option `i`, none in a period
    /// already holding a `Keep` of the earlier options. In total, `Keep` marks never exceed the
    /// sum of all counts.
    #[test]
    fn each_option_keeps_at_most_its_count(
        list in snapshot_list(),
        keep in keep_options(),
        offset in utc_offset(),
    ) {
        prop_assume!(keep.keeps_something());
        let total: u32 = (0..OPTIONS.len()).map(|index| count_of(&keep, index)).sum();
        let result = compute_prune_info(&list, &keep, offset).expect("valid offset");
        let keeps = dirs_marked(&result, Keep);
        prop_assert!(keeps.len() <= total as usize, "{} keeps for {:?}", keeps.len(), keep);

        let mut before_keeps: BTreeSet<BackupDir> = BTreeSet::new();
        let mut before_removes: Option<BTreeSet<BackupDir>> = None;
        for (index, option) in OPTIONS.iter().enumerate() {
            let count = count_of(&keep, index);
            if count == 0 {
                continue;
            }
            let with = compute_prune_info(&list, &prefix(&keep, index + 1), offset)
                .expect("valid offset");
            let with_keeps = dirs_marked(&with, Keep);
            let with_removes = dirs_marked(&with, Remove);
            prop_assert!(before_keeps.is_subset(&with_keeps), "option {:?} dropped a keep", option);
            if let Some(before_removes) = &before_removes {
                prop_assert!(
                    with_removes.is_subset(before_removes),
                    "option {:?} added a removal",
                    option
                );
            }
            let added: Vec<&SnapshotInfo> = with
                .iter()
                .filter(|(info, mark)| *mark == Keep && !before_keeps.contains(&info.dir))
                .map(|(info, _)| info)
                .collect();
            prop_assert!(
                added.len() <= count as usize,
                "option {:?} added {}",
                option,
                added.len()
            );
            let periods: BTreeSet<_> =
                added.iter().map(|info| period(*option, info, offset)).collect();
            prop_assert_eq!(periods.len(), added.len(), "two keeps of {:?} in one period", option);
            let covered: BTreeSet<_> = with
                .iter()
                .filter(|(info, _)| before_keeps.contains(&info.dir))
                .map(|(info, _)| period(*option, info, offset))
                .collect();
            prop_assert!(
                periods.is_disjoint(&covered),
                "option {:?} counted a covered period",
                option
            );
            before_keeps = with_keeps;
            before_removes = Some(with_removes);
        }
        prop_assert_eq!(before_keeps, keeps);
    }

    /// One option alone, checked against its plain definition: among the finished,
    /// unprotected snapshots, the newest of each of the `N` newest periods is kept.
    #[test]
    fn a_single_option_keeps_the_newest_of_the_newest_periods(
        list in snapshot_list(),
        which in 0..OPTIONS.len(),
        count in 1..6u32,
        offset in utc_offset(),
    ) {
        let mut keep = KeepOptions::default();
        match which {
            0 => keep.keep_last = count,
            1 => keep.keep_hourly = count,
            2 => keep.keep_daily = count,
            3 => keep.keep_weekly = count,
            4 => keep.keep_monthly = count,
            _ => keep.keep_yearly = count,
        }
        let option = OPTIONS[which];
        // Newest snapshot of each period, by period.
        let mut newest: BTreeMap<(i64, i64, i64, i64), BackupDir> = BTreeMap::new();
        for info in list.iter().filter(|info| info.finished && !info.protected) {
            let slot =
                newest.entry(period(option, info, offset)).or_insert_with(|| info.dir.clone());
            if info.dir.time > slot.time {
                *slot = info.dir.clone();
            }
        }
        let expected: BTreeSet<BackupDir> =
            newest.into_values().rev().take(count as usize).collect();
        let result = compute_prune_info(&list, &keep, offset).expect("valid offset");
        prop_assert_eq!(dirs_marked(&result, Keep), expected);
    }
}

// ---------------------------------------------------------------------------------------------
// prune_group on both worlds

both_worlds!(
    prune_removes_exactly_the_marked_snapshots,
    dry_run_removes_nothing,
    snapshot_in_use_is_a_warning_and_prune_goes_on,
    protected_snapshots_stay,
    running_backup_and_its_base_stay,
    prune_beside_a_backup_session,
    bad_offset_fails_before_removing_anything,
);

/// Two finished snapshots a day over four days, plus a failed (unfinished) one in between.
const DAYS: [&str; 8] = [
    "2024-04-01T06:00:00Z",
    "2024-04-01T18:00:00Z",
    "2024-04-02T06:00:00Z",
    "2024-04-02T18:00:00Z",
    "2024-04-03T06:00:00Z",
    "2024-04-03T18:00:00Z",
    "2024-04-04T06:00:00Z",
    "2024-04-04T18:00:00Z",
];
const FAILED: &str = "2024-04-02T12:00:00Z";

fn plant_days<W: World>(store: &Datastore<W>) {
    for text in DAYS {
        plant_snapshot(store, &dir(text), true);
    }
    plant_snapshot(store, &dir(FAILED), false);
}

fn on_disk<W: World>(store: &Datastore<W>) -> BTreeSet<BackupDir> {
    store
        .list_snapshots(&group())
        .expect("list")
        .into_iter()
        .map(|info| info.dir)
        .collect()
}

fn daily_two() -> PruneOptions {
    PruneOptions {
        keep: KeepOptions {
            keep_last: 1,
            keep_daily: 2,
            ..KeepOptions::default()
        },
        ..PruneOptions::default()
    }
}

fn set(texts: &[&str]) -> BTreeSet<BackupDir> {
    texts.iter().map(|text| dir(text)).collect()
}

fn report_sets(report: &PruneReport) -> (BTreeSet<BackupDir>, BTreeSet<BackupDir>) {
    (
        report.kept().cloned().collect(),
        report.removed().cloned().collect(),
    )
}

fn prune_removes_exactly_the_marked_snapshots(env: &impl Env) {
    let store = new_datastore(env);
    plant_days(&store);
    let listing = store.list_snapshots(&group()).expect("list");
    let options = daily_two();
    let expected = compute_prune_info(&listing, &options.keep, 0).expect("marks");
    let report = store.prune_group(&group(), &options).expect("prune");
    assert!(!report.dry_run && !report.keeps_everything);
    assert_eq!(report.warnings().count(), 0);
    let reported: Vec<_> = report
        .entries
        .iter()
        .map(|entry| (entry.info.clone(), entry.mark))
        .collect();
    assert_eq!(
        reported, expected,
        "the report carries the computed marks, newest first"
    );
    // keep-last takes April 4th evening, so keep-daily takes April 3rd and 2nd.
    let kept = set(&[
        "2024-04-04T18:00:00Z",
        "2024-04-03T18:00:00Z",
        "2024-04-02T18:00:00Z",
    ]);
    let (reported_kept, removed) = report_sets(&report);
    assert_eq!(reported_kept, kept);
    assert_eq!(removed, report.marked_for_removal().cloned().collect());
    assert_eq!(removed.len(), DAYS.len() + 1 - kept.len());
    assert!(removed.contains(&dir(FAILED)));
    for entry in &report.entries {
        let removed = matches!(entry.outcome, PruneOutcome::Removed);
        let kept = matches!(entry.outcome, PruneOutcome::Kept);
        assert!(if entry.mark.keep() { kept } else { removed }, "{entry:?}");
    }
    assert_eq!(on_disk(&store), kept);
    // The removed snapshots' lock files went with them.
    let lock_files = store
        .world()
        .read_dir(&store.base().join(".locks"))
        .expect("lock dir");
    let snapshot_locks: Vec<_> = lock_files
        .iter()
        .filter_map(|entry| entry.name_str())
        .filter(|name| name.starts_with("snapshot-") || name.starts_with("manifest-"))
        .collect();
    assert!(
        snapshot_locks.is_empty(),
        "lock files left: {snapshot_locks:?}"
    );
    // A second prune finds nothing to do.
    let again = store.prune_group(&group(), &options).expect("prune again");
    assert_eq!(again.removed().count(), 0);
    assert_eq!(again.marked_for_removal().count(), 0);
    assert_eq!(on_disk(&store), kept);
}

fn dry_run_removes_nothing(env: &impl Env) {
    let store = new_datastore(env);
    plant_days(&store);
    let before = on_disk(&store);
    let options = PruneOptions {
        dry_run: true,
        ..daily_two()
    };
    let report = store.prune_group(&group(), &options).expect("dry run");
    assert!(report.dry_run);
    assert_eq!(report.removed().count(), 0);
    let would: BTreeSet<BackupDir> = report.marked_for_removal().cloned().collect();
    assert_eq!(would.len(), 6);
    for entry in &report.entries {
        let expected_would = !entry.mark.keep();
        assert_eq!(
            matches!(entry.outcome, PruneOutcome::WouldRemove),
            expected_would,
            "{entry:?}"
        );
    }
    assert_eq!(on_disk(&store), before);
    // The real run removes exactly what the dry run announced.
    let report = store.prune_group(&group(), &daily_two()).expect("prune");
    assert_eq!(report.removed().cloned().collect::<BTreeSet<_>>(), would);
    assert_eq!(
        on_disk(&store),
        before.difference(&would).cloned().collect()
    );
}

fn snapshot_in_use_is_a_warning_and_prune_goes_on(env: &impl Env) {
    let store = new_datastore(env);
    plant_days(&store);
    // A reader holds the oldest snapshot, one prune removes first.
    let busy = dir(DAYS[0]);
    let reader = store
        .lock_snapshot(&busy, LockMode::Shared)
        .expect("reader");
    let report = store
        .prune_group(&group(), &daily_two())
        .expect("prune does not fail");
    let warnings: Vec<_> = report.warnings().collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].0, &busy);
    assert!(warnings[0].1.is_contention(), "{:?}", warnings[0].1);
    assert!(
        store.snapshot_exists(&busy).expect("stat"),
        "the snapshot in use stays"
    );
    // Every other marked snapshot went.
    let marked: BTreeSet<BackupDir> = report.marked_for_removal().cloned().collect();
    let removed: BTreeSet<BackupDir> = report.removed().cloned().collect();
    assert_eq!(marked.len(), 6);
    assert_eq!(
        removed,
        marked.iter().filter(|dir| **dir != busy).cloned().collect()
    );
    let kept: BTreeSet<BackupDir> = report.kept().cloned().collect();
    assert_eq!(
        on_disk(&store),
        kept.iter().chain([&busy]).cloned().collect()
    );
    // Once the reader is done, the next prune takes it.
    drop(reader);
    let report = store.prune_group(&group(), &daily_two()).expect("prune");
    assert_eq!(report.removed().cloned().collect::<Vec<_>>(), vec![busy]);
    assert_eq!(report.warnings().count(), 0);
    assert_eq!(on_disk(&store), kept);
}

fn protected_snapshots_stay(env: &impl Env) {
    let store = new_datastore(env);
    plant_days(&store);
    let guarded = [dir(DAYS[0]), dir(DAYS[5])];
    for dir in &guarded {
        store.set_protection(dir, true).expect("protect");
    }
    let options = PruneOptions {
        keep: KeepOptions {
            keep_last: 1,
            ..KeepOptions::default()
        },
        ..PruneOptions::default()
    };
    let report = store.prune_group(&group(), &options).expect("prune");
    assert_eq!(report.warnings().count(), 0);
    for entry in &report.entries {
        let expected = if guarded.contains(&entry.info.dir) {
            Protected
        } else if entry.info.dir == dir(DAYS[7]) {
            Keep
        } else {
            Remove
        };
        assert_eq!(entry.mark, expected, "{}", entry.info.dir);
    }
    let mut remaining: BTreeSet<BackupDir> = guarded.iter().cloned().collect();
    remaining.insert(dir(DAYS[7]));
    assert_eq!(on_disk(&store), remaining);
}

fn running_backup_and_its_base_stay(env: &impl Env) {
    let store = new_datastore(env);
    plant_days(&store);
    // A backup session is running: it holds the group lock, its base (the newest finished
    // snapshot) shared, and its new, still unfinished snapshot exclusive.
    let running = dir("2024-04-05T06:00:00Z");
    let base = dir(DAYS[7]);
    let group_lock = store.lock_group(&group()).expect("session: group lock");
    let base_lock = store
        .lock_snapshot(&base, LockMode::Shared)
        .expect("session: base lock");
    plant_snapshot(&store, &running, false);
    let snapshot_lock = store
        .lock_snapshot(&running, LockMode::Exclusive)
        .expect("session: snapshot lock");

    let options = PruneOptions {
        keep: KeepOptions {
            keep_last: 1,
            ..KeepOptions::default()
        },
        ..PruneOptions::default()
    };
    let report = store.prune_group(&group(), &options).expect("prune");
    let mark_of = |wanted: &BackupDir| {
        report
            .entries
            .iter()
            .find(|entry| entry.info.dir == *wanted)
            .map(|entry| entry.mark)
    };
    assert_eq!(mark_of(&running), Some(KeepPartial));
    assert_eq!(mark_of(&base), Some(Keep));
    assert_eq!(report.warnings().count(), 0);
    assert_eq!(
        on_disk(&store),
        [base.clone(), running.clone()].into_iter().collect()
    );

    // Even a removal attempt that got past the marks (a stale listing) would be refused by the
    // locks: forget cannot take either snapshot's exclusive lock.
    for held in [&running, &base] {
        let err = store
            .forget_snapshot(held)
            .expect_err("held by the session");
        assert!(
            matches!(err, Error::Lock(_)) && err.is_contention(),
            "{err:?}"
        );
    }
    drop(snapshot_lock);
    drop(base_lock);
    drop(group_lock);
    assert_eq!(on_disk(&store), [base, running].into_iter().collect());
}

/// The same through the backup API: finished snapshots written by client runs, and a session
/// that is still open while prune runs.
fn prune_beside_a_backup_session(env: &impl Env) {
    let store = new_datastore(env);
    let times = [
        "2024-06-01T00:00:00Z",
        "2024-06-02T00:00:00Z",
        "2024-06-03T00:00:00Z",
    ];
    for (round, text) in times.iter().enumerate() {
        let chunks = vec![vec![1u8; 64], vec![round as u8 + 2; 64]];
        let archives = [ArchiveSpec::new("root.didx", chunks)];
        backup_snapshot(&store, &dir(text), "alice", &archives).expect("backup");
    }
    let running = dir("2024-06-04T00:00:00Z");
    let session = store
        .start_backup(&running, "alice")
        .expect("start a backup");
    assert_eq!(session.base(), Some(&dir(times[2])));

    let options = PruneOptions {
        keep: KeepOptions {
            keep_last: 1,
            ..KeepOptions::default()
        },
        ..PruneOptions::default()
    };
    let report = store.prune_group(&group(), &options).expect("prune");
    let marks: Vec<_> = report.entries.iter().map(|entry| entry.mark).collect();
    assert_eq!(marks, [KeepPartial, Keep, Remove, Remove]);
    assert_eq!(report.warnings().count(), 0);
    assert_eq!(
        report.removed().cloned().collect::<BTreeSet<_>>(),
        set(&times[..2])
    );
    assert_eq!(
        on_disk(&store),
        [dir(times[2]), running.clone()].into_iter().collect()
    );
    session.abort().expect("abort the backup");
}

fn bad_offset_fails_before_removing_anything(env: &impl Env) {
    let store = new_datastore(env);
    plant_days(&store);
    let before = on_disk(&store);
    let options = PruneOptions {
        utc_offset_seconds: 90_000,
        ..daily_two()
    };
    let err = store
        .prune_group(&group(), &options)
        .expect_err("offset out of range");
    assert!(
        matches!(
            err,
            Error::Name(NameError::UtcOffsetOutOfRange {
                offset_seconds: 90_000
            })
        ),
        "{err:?}"
    );
    assert_eq!(on_disk(&store), before);
}
