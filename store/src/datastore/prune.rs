//! Prune: thin out a backup group by a retention policy.
//!
//! Prune has two halves. [`compute_prune_info`] is a pure function from a group's listing and a
//! [`KeepOptions`] policy to one [`PruneMark`] per snapshot. [`Datastore::prune_group`] lists a
//! group, computes the marks and removes every snapshot marked [`PruneMark::Remove`] through
//! [`Datastore::forget_snapshot`], so every removal takes the same locks and checks as a manual
//! forget.
//!
//! # The selection algorithm
//!
//! The snapshots are sorted newest first and marked in passes; a snapshot keeps the first mark
//! it gets, and later passes skip it.
//!
//! 1. **Unfinished snapshots** (no manifest): every one newer than the newest finished snapshot
//!    is marked [`PruneMark::KeepPartial`]. That is the running backup, or the leftover of a
//!    failed one that a newer backup will supersede. Every other unfinished snapshot is marked
//!    [`PruneMark::Remove`]. (PBS keeps only the newest unfinished snapshot; keeping all of
//!    those newer than the newest finished one also covers a running backup whose time is
//!    older than a failed leftover's, so I11 below never rests on the lock alone.)
//! 2. **Keep options**, in the fixed order `keep_last`, `keep_hourly`, `keep_daily`,
//!    `keep_weekly`, `keep_monthly`, `keep_yearly`; an option of 0 is skipped. Each option has a
//!    period: the snapshot's exact time for `keep_last`, otherwise the clock hour, day, ISO 8601
//!    week, month or year of the time at the configured UTC offset
//!    ([`CivilTime::period_key`]). For an option with count `N`:
//!    1. every period that already holds a snapshot marked [`PruneMark::Keep`] by an earlier
//!       option counts as covered: its snapshots are passed over (left unmarked) and it uses
//!       none of the `N` slots;
//!    2. the snapshots are walked newest first, skipping those already marked;
//!    3. a protected snapshot is marked [`PruneMark::Protected`] and uses no slot;
//!    4. the first (newest) snapshot of a period not seen yet is marked [`PruneMark::Keep`],
//!       and the period takes one slot; once `N` periods are taken, the walk stops at the next
//!       snapshot of a new period;
//!    5. a later (older) snapshot of a period taken in this pass is marked
//!       [`PruneMark::Remove`].
//! 3. **Everything still unmarked** is marked [`PruneMark::Remove`]. A protected snapshot is
//!    always reported as [`PruneMark::Protected`], whatever pass reached it.
//!
//! Periods without any snapshot do not count: `keep_daily = 7` keeps the newest snapshot of
//! each of the 7 newest days that have one, however far apart those days are.
//!
//! If no option is above 0 ([`KeepOptions::keeps_something`] is false), prune keeps
//! everything: there is no [`PruneMark::Remove`] in the result at all. Protected snapshots are
//! then marked [`PruneMark::Protected`], other unfinished ones [`PruneMark::KeepPartial`] and
//! other finished ones [`PruneMark::Keep`].
//!
//! Calendar periods use a fixed offset from UTC ([`PruneOptions::utc_offset_seconds`], 0 by
//! default) instead of a time zone database, so a result never depends on the machine or on
//! daylight-saving rules.
//!
//! # Guarantee I11
//!
//! When any keep option is above 0, prune never removes the running backup or the newest
//! finished snapshot of the group.
//!
//! * By computation: the newest finished snapshot that is not protected takes the first slot of
//!   the first enabled option, so it is marked [`PruneMark::Keep`] (a protected one is kept
//!   anyway). A running backup is newer than the newest finished snapshot of its group (its
//!   time must be later than its base's, and it holds the group lock, so no other backup can
//!   finish in the meantime), so it is marked [`PruneMark::KeepPartial`].
//! * By lock: the running backup holds its snapshot's exclusive lock and its base's shared
//!   lock. Forget needs the exclusive snapshot lock and does not wait for it, so even a stale
//!   listing cannot make prune remove either of them; the attempt ends in a warning.
//!
//! # Execution
//!
//! The listing is taken without any lock and may be stale when it is used. Prune walks the
//! result oldest first and forgets each snapshot marked [`PruneMark::Remove`]. It never takes
//! the group lock itself (forget only tries it to remove a group it just emptied). A removal
//! that fails (the snapshot is in use, became protected, vanished, or an I/O error) does not end
//! the prune: the error is recorded in the report as a warning and prune goes on with the next
//! snapshot. With [`PruneOptions::dry_run`] nothing is removed.

use std::collections::BTreeSet;
use std::fmt;

use crate::backup_info::{BackupDir, BackupGroup, CalendarPeriod, CivilTime, NameError};
use crate::world::World;

use super::{Datastore, Error, SnapshotInfo};

/// A retention policy: how many periods of each kind keep a snapshot.
///
/// Every count is a plain number with 0 meaning "option off" (the default), so there is one
/// way to say "off". A count of `N` keeps the newest snapshot of each of the `N` newest periods
/// that have one (see the [module documentation](self) for how the options combine).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct KeepOptions {
    /// Keep the newest `N` snapshots.
    pub keep_last: u32,
    /// Keep the newest snapshot of each of the newest `N` clock hours.
    pub keep_hourly: u32,
    /// Keep the newest snapshot of each of the newest `N` days.
    pub keep_daily: u32,
    /// Keep the newest snapshot of each of the newest `N` ISO 8601 weeks (Monday to Sunday,
    /// numbered in the year of their Thursday).
    pub keep_weekly: u32,
    /// Keep the newest snapshot of each of the newest `N` months.
    pub keep_monthly: u32,
    /// Keep the newest snapshot of each of the newest `N` years.
    pub keep_yearly: u32,
}

impl KeepOptions {
    /// Is any option above 0? If not, prune keeps every snapshot.
    pub fn keeps_something(&self) -> bool {
        self.selections().iter().any(|&(_, count)| count > 0)
    }

    /// The options in the order they are applied.
    fn selections(&self) -> [(Selector, u32); 6] {
        let calendar = Selector::Calendar;
        [
            (Selector::Last, self.keep_last),
            (calendar(CalendarPeriod::Hour), self.keep_hourly),
            (calendar(CalendarPeriod::Day), self.keep_daily),
            (calendar(CalendarPeriod::IsoWeek), self.keep_weekly),
            (calendar(CalendarPeriod::Month), self.keep_monthly),
            (calendar(CalendarPeriod::Year), self.keep_yearly),
        ]
    }
}

/// What prune decided for one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PruneMark {
    /// Kept: selected by a keep option (or every snapshot, when no option is set).
    Keep,
    /// Kept although unfinished: newer than every finished snapshot, so it may be the running
    /// backup.
    KeepPartial,
    /// Kept because it is protected; it uses no slot of any keep option.
    Protected,
    /// To be removed.
    Remove,
}

impl PruneMark {
    /// Is the snapshot kept (every mark but [`PruneMark::Remove`])?
    pub fn keep(self) -> bool {
        self != PruneMark::Remove
    }

    /// The mark as a word: `keep`, `keep-partial`, `protected` or `remove`.
    pub fn as_str(self) -> &'static str {
        match self {
            PruneMark::Keep => "keep",
            PruneMark::KeepPartial => "keep-partial",
            PruneMark::Protected => "protected",
            PruneMark::Remove => "remove",
        }
    }
}

impl fmt::Display for PruneMark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The period kind of one keep option.
#[derive(Debug, Clone, Copy)]
enum Selector {
    /// Every distinct backup time is its own period.
    Last,
    /// A calendar period at the prune's UTC offset.
    Calendar(CalendarPeriod),
}

/// Names the period a snapshot falls into, for one [`Selector`]. Keys of one selector are equal
/// exactly for snapshots of the same period, and order like the periods do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PeriodKey {
    Instant(i64),
    Calendar((i32, u8, u8, u8)),
}

impl Selector {
    fn key(self, info: &SnapshotInfo, utc_offset_seconds: i32) -> Result<PeriodKey, NameError> {
        Ok(match self {
            Selector::Last => PeriodKey::Instant(info.dir.time.epoch()),
            Selector::Calendar(period) => {
                PeriodKey::Calendar(info.dir.time.civil(utc_offset_seconds)?.period_key(period))
            }
        })
    }
}

/// Marks every snapshot of `snapshots` (in any order) for a prune with the policy `keep`, with
/// calendar periods taken at `utc_offset_seconds` east of UTC.
///
/// Returns every snapshot with its mark, **newest first** (ties in time, possible only across
/// groups, in group order). The algorithm is described in the [module documentation](self).
/// The function is pure: it reads nothing but its arguments.
///
/// # Errors
///
/// [`NameError::UtcOffsetOutOfRange`] if the offset is a day or more in magnitude (checked even
/// for an empty list).
pub fn compute_prune_info(
    snapshots: &[SnapshotInfo],
    keep: &KeepOptions,
    utc_offset_seconds: i32,
) -> Result<Vec<(SnapshotInfo, PruneMark)>, NameError> {
    CivilTime::from_epoch(0, utc_offset_seconds)?;
    let mut sorted = snapshots.to_vec();
    sorted.sort_by(|a, b| {
        b.dir
            .time
            .cmp(&a.dir.time)
            .then_with(|| a.dir.group.cmp(&b.dir.group))
    });

    if !keep.keeps_something() {
        let keep_all = |info: SnapshotInfo| {
            let mark = if info.protected {
                PruneMark::Protected
            } else if info.finished {
                PruneMark::Keep
            } else {
                PruneMark::KeepPartial
            };
            (info, mark)
        };
        return Ok(sorted.into_iter().map(keep_all).collect());
    }

    let mut marks: Vec<Option<PruneMark>> = vec![None; sorted.len()];
    mark_unfinished(&sorted, &mut marks);
    for (selector, count) in keep.selections() {
        if count == 0 {
            continue;
        }
        let keys = sorted
            .iter()
            .map(|info| selector.key(info, utc_offset_seconds))
            .collect::<Result<Vec<_>, _>>()?;
        mark_selections(&sorted, &mut marks, &keys, count);
    }

    let finish = |(info, mark): (SnapshotInfo, Option<PruneMark>)| {
        let mark = if info.protected {
            PruneMark::Protected
        } else {
            mark.unwrap_or(PruneMark::Remove)
        };
        (info, mark)
    };
    Ok(sorted.into_iter().zip(marks).map(finish).collect())
}

/// Step 1: unfinished snapshots newer than the newest finished one are kept as partial, all
/// other unfinished ones removed. `sorted` is newest first.
fn mark_unfinished(sorted: &[SnapshotInfo], marks: &mut [Option<PruneMark>]) {
    let mut before_first_finished = true;
    for (info, mark) in sorted.iter().zip(marks.iter_mut()) {
        if info.finished {
            before_first_finished = false;
        } else if before_first_finished {
            *mark = Some(PruneMark::KeepPartial);
        } else {
            *mark = Some(PruneMark::Remove);
        }
    }
}

/// Step 2 for one option: `keys[i]` is the period of `sorted[i]`; keeps the newest snapshot of
/// each of the `count` newest periods not already covered by an earlier option's keep.
fn mark_selections(
    sorted: &[SnapshotInfo],
    marks: &mut [Option<PruneMark>],
    keys: &[PeriodKey],
    count: u32,
) {
    let covered: BTreeSet<PeriodKey> = marks
        .iter()
        .zip(keys)
        .filter(|(mark, _)| **mark == Some(PruneMark::Keep))
        .map(|(_, key)| *key)
        .collect();
    let slots = usize::try_from(count).unwrap_or(usize::MAX);
    let mut selected: BTreeSet<PeriodKey> = BTreeSet::new();
    for ((info, mark), key) in sorted.iter().zip(marks.iter_mut()).zip(keys) {
        if mark.is_some() {
            continue;
        }
        if info.protected {
            *mark = Some(PruneMark::Protected);
            continue;
        }
        if covered.contains(key) {
            continue;
        }
        if selected.contains(key) {
            *mark = Some(PruneMark::Remove);
            continue;
        }
        if selected.len() >= slots {
            break;
        }
        selected.insert(*key);
        *mark = Some(PruneMark::Keep);
    }
}

/// How to prune a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PruneOptions {
    /// The retention policy.
    pub keep: KeepOptions,
    /// The offset from UTC, in seconds east, at which hours, days, weeks, months and years are
    /// delimited; 0 (the default) is UTC. Must be less than a day in magnitude.
    pub utc_offset_seconds: i32,
    /// Only compute and report; remove nothing.
    pub dry_run: bool,
}

/// What happened to one snapshot in a prune.
#[derive(Debug)]
pub enum PruneOutcome {
    /// Its mark keeps it; prune did not touch it.
    Kept,
    /// Marked for removal, but this was a dry run.
    WouldRemove,
    /// Removed.
    Removed,
    /// Marked for removal, but forgetting it failed (in use, protected in the meantime,
    /// vanished, I/O). Prune recorded the error as a warning and went on.
    NotRemoved(Error),
}

/// One snapshot of a prune report.
#[derive(Debug)]
pub struct PruneEntry {
    /// The snapshot as listed when the prune began.
    pub info: SnapshotInfo,
    /// What [`compute_prune_info`] decided.
    pub mark: PruneMark,
    /// What prune did about it.
    pub outcome: PruneOutcome,
}

/// The result of [`Datastore::prune_group`].
#[derive(Debug)]
pub struct PruneReport {
    /// The pruned group.
    pub group: BackupGroup,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// True if no keep option was above 0, so every snapshot was kept.
    pub keeps_everything: bool,
    /// Every snapshot listed, newest first (the order of [`compute_prune_info`]; removals ran
    /// oldest first).
    pub entries: Vec<PruneEntry>,
}

impl PruneReport {
    /// The snapshots removed.
    pub fn removed(&self) -> impl Iterator<Item = &BackupDir> {
        self.entries
            .iter()
            .filter(|entry| matches!(entry.outcome, PruneOutcome::Removed))
            .map(|entry| &entry.info.dir)
    }

    /// The snapshots kept by their mark.
    pub fn kept(&self) -> impl Iterator<Item = &BackupDir> {
        self.entries
            .iter()
            .filter(|entry| entry.mark.keep())
            .map(|entry| &entry.info.dir)
    }

    /// The snapshots marked for removal (removed, would be removed, or failed).
    pub fn marked_for_removal(&self) -> impl Iterator<Item = &BackupDir> {
        self.entries
            .iter()
            .filter(|entry| !entry.mark.keep())
            .map(|entry| &entry.info.dir)
    }

    /// The removals that failed, with their errors.
    pub fn warnings(&self) -> impl Iterator<Item = (&BackupDir, &Error)> {
        self.entries
            .iter()
            .filter_map(|entry| match &entry.outcome {
                PruneOutcome::NotRemoved(err) => Some((&entry.info.dir, err)),
                _ => None,
            })
    }
}

impl<W: World> Datastore<W> {
    /// Prunes `group` by `options` and reports what happened to every snapshot.
    ///
    /// Lists the group without a lock, computes the marks with [`compute_prune_info`], then
    /// walks them oldest first and forgets every snapshot marked [`PruneMark::Remove`] with
    /// [`Datastore::forget_snapshot`] (unless [`PruneOptions::dry_run`]). A failed removal is a
    /// warning in the report ([`PruneOutcome::NotRemoved`]), never an error of the prune. Prune
    /// does not hold the group lock; only forget's empty-group cleanup tries it, briefly, after
    /// a removal (so a concurrent owner or group-notes change can fail busy in that moment).
    ///
    /// # Errors
    ///
    /// Only if the group cannot be listed, or [`PruneOptions::utc_offset_seconds`] is out of
    /// range ([`Error::Name`]); in both cases nothing was removed.
    pub fn prune_group(
        &self,
        group: &BackupGroup,
        options: &PruneOptions,
    ) -> Result<PruneReport, Error> {
        let listing = self.list_snapshots(group)?;
        let marked = compute_prune_info(&listing, &options.keep, options.utc_offset_seconds)?;
        let mut entries: Vec<PruneEntry> = marked
            .into_iter()
            .map(|(info, mark)| PruneEntry {
                info,
                mark,
                outcome: PruneOutcome::Kept,
            })
            .collect();
        for entry in entries.iter_mut().rev() {
            if entry.mark.keep() {
                continue;
            }
            entry.outcome = if options.dry_run {
                PruneOutcome::WouldRemove
            } else if crate::reverted!(self.config().chunk_store.regressions, B6PruneForcesRemoval)
            {
                match self.remove_snapshot_forced(&entry.info.dir) {
                    Ok(()) => PruneOutcome::Removed,
                    Err(err) => PruneOutcome::NotRemoved(err),
                }
            } else {
                match self.forget_snapshot(&entry.info.dir) {
                    Ok(()) => PruneOutcome::Removed,
                    Err(err) => PruneOutcome::NotRemoved(err),
                }
            };
        }
        Ok(PruneReport {
            group: group.clone(),
            dry_run: options.dry_run,
            keeps_everything: !options.keep.keeps_something(),
            entries,
        })
    }

    /// Race B6 reverted: removes a snapshot the way prune jobs once did, without any lock, so a
    /// reader, verify or backup using it loses it under its feet. Only the protection marker
    /// is still respected.
    fn remove_snapshot_forced(&self, dir: &BackupDir) -> Result<(), Error> {
        let path = self.snapshot_path(dir);
        if !self.exists(&path)? {
            return Err(Error::SnapshotNotFound(dir.clone()));
        }
        if self.exists(&path.join(super::PROTECTED_MARKER))? {
            return Err(Error::Protected(dir.clone()));
        }
        self.remove_snapshot_dir(&path)
    }
}
