//! Twins of the session races of part B: B3 (backup × forget of its base × GC), B5 (reader ×
//! verify × forget), B6 (prune × reader), B7 (notes × verify), B8 (notes × forget), B15 (two
//! backups in a row × a reader), B17 (reader × backup on the same base) and B23 (a failed
//! first backup × another owner's backup).

use std::path::Path;
use std::time::{Duration, Instant};

use store::backup_info::{BackupDir, BackupGroup};
use store::datastore::Datastore;
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::datastore::gc::GcOptions;
use store::datastore::prune::{KeepOptions, PruneOptions, PruneOutcome};
use store::regressions::Bug;
use store::world::{LockMode, RealWorld, World};

use super::{RealError, RunResult, age_files, create_datastore, datastore_config, new_datastore};
use super::{chunks_dir, race, setup, verdict};
use crate::regressions_b::b3_base_pinning::{BASE_INDEX_VANISHED, check_base_pinning};
use crate::regressions_b::b5_reader_pinning::{check_reader_pinning, verify_outcome};
use crate::regressions_b::b6_prune_locks::{IN_USE, REMOVED, check_prune_locks};
use crate::regressions_b::b7_manifest_lock::{NOTES, check_manifest_lock};
use crate::regressions_b::b8_forget_manifest_lock::{BLOB, check_forget_manifest_lock};
use crate::regressions_b::b15_finish_releases_locks::check_finish_releases_locks;
use crate::regressions_b::b17_reader_shared_lock::check_reader_shared_lock;
use crate::regressions_b::b23_cleanup_group::{
    ABORTED, OTHER_OWNER, check_cleanup_group, start_error,
};
use crate::regressions_b::{
    DAY, OWNER, backup_error, chunk, group, plant_backup, read_snapshot, reverting, snapshot_at,
};
use crate::scenario::{Outcome, ScenarioError};

// ---- B3: backup × forget of its base × GC ----

struct BaseState {
    store: Datastore<RealWorld>,
    base: BackupDir,
    next: BackupDir,
    group: BackupGroup,
}

/// B3: an incremental backup reusing A and B × forget of its base × GC.
pub(super) fn base_pinning(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    let store = new_datastore(scratch, reverting(reverted, Bug::B3BaseNotPinned))?;
    let group = setup(group("vm/100"))?;
    let now = store.world().now();
    let base = setup(snapshot_at(&group, now - 3 * DAY))?;
    setup(plant_backup(&store, &base, &["A", "B"]))?;
    // Three days pass in the simulated scenario: A and B are older than GC's cutoff.
    age_files(&chunks_dir(scratch), now - 3 * DAY)?;
    let next = setup(snapshot_at(&group, now))?;
    let state = BaseState {
        store,
        base,
        next,
        group,
    };
    let outcomes = race(
        &state,
        &[
            ("backup", |s: &BaseState| {
                let chunks = ["C", "D", "E", "A", "B"].map(chunk).to_vec();
                let archives = [ArchiveSpec::new("root.didx", chunks)];
                match backup_snapshot(&s.store, &s.next, OWNER, &archives) {
                    Ok(_) => Outcome::OK,
                    Err(store::datastore::Error::Index(err)) if err.is_not_found() => {
                        BASE_INDEX_VANISHED
                    }
                    Err(err) => backup_error(err),
                }
            }),
            ("forget", |s: &BaseState| {
                Outcome::of(&s.store.forget_snapshot(&s.base))
            }),
            ("gc", |s: &BaseState| {
                let options = GcOptions {
                    atime_safety_check: false,
                    ..GcOptions::default()
                };
                Outcome::of(&s.store.garbage_collection(&options))
            }),
        ],
    );
    Ok(verdict(check_base_pinning(
        &state.store,
        &state.group,
        &state.next,
        reverted,
        &outcomes,
    )))
}

// ---- B5: reader × verify × forget ----

struct Pinned {
    store: Datastore<RealWorld>,
    dir: BackupDir,
}

/// B5: a reader and verify of a snapshot × its forget.
pub(super) fn reader_pinning(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    let store = new_datastore(scratch, reverting(reverted, Bug::B5ReadersTakeNoLock))?;
    let dir = setup(snapshot_at(&setup(group("vm/100"))?, store.world().now()))?;
    setup(plant_backup(&store, &dir, &["A", "B"]))?;
    let state = Pinned { store, dir };
    let outcomes = race(
        &state,
        &[
            ("reader", |s: &Pinned| read_snapshot(&s.store, &s.dir)),
            ("verify", |s: &Pinned| verify_outcome(&s.store, &s.dir)),
            ("forget", |s: &Pinned| {
                Outcome::of(&s.store.forget_snapshot(&s.dir))
            }),
        ],
    );
    Ok(verdict(check_reader_pinning(&outcomes)))
}

// ---- B6: prune × reader ----

struct Pruned {
    store: Datastore<RealWorld>,
    group: BackupGroup,
    old: BackupDir,
}

fn prune_actor(state: &Pruned) -> Outcome {
    let options = PruneOptions {
        keep: KeepOptions {
            keep_last: 1,
            ..KeepOptions::default()
        },
        ..PruneOptions::default()
    };
    let report = match state.store.prune_group(&state.group, &options) {
        Ok(report) => report,
        Err(err) => return Outcome::of::<()>(&Err(err)),
    };
    let mut outcome = Outcome::label("kept-all");
    for entry in &report.entries {
        match &entry.outcome {
            PruneOutcome::Kept | PruneOutcome::WouldRemove => {}
            PruneOutcome::Removed => outcome = REMOVED,
            PruneOutcome::NotRemoved(err) if err.is_contention() => outcome = IN_USE,
            PruneOutcome::NotRemoved(err) => return Outcome::error(err),
        }
    }
    outcome
}

/// B6: a reader of the older snapshot × prune with keep-last 1.
pub(super) fn prune_locks(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    let store = new_datastore(scratch, reverting(reverted, Bug::B6PruneForcesRemoval))?;
    let group = setup(group("vm/100"))?;
    // The simulated scenario advances the clock by an hour between the two backups; here the
    // old snapshot is simply dated an hour back.
    let now = store.world().now();
    let old = setup(snapshot_at(&group, now - 3600))?;
    setup(plant_backup(&store, &old, &["A", "B"]))?;
    let new = setup(snapshot_at(&group, now))?;
    setup(plant_backup(&store, &new, &["B", "C"]))?;
    let state = Pruned { store, group, old };
    let outcomes = race(
        &state,
        &[
            ("reader", |s: &Pruned| read_snapshot(&s.store, &s.old)),
            ("prune", prune_actor),
        ],
    );
    Ok(verdict(check_prune_locks(&outcomes)))
}

// ---- B7: notes × verify on one manifest ----

/// B7: snapshot notes × verify saving its state, on one manifest.
pub(super) fn manifest_lock(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    let store = new_datastore(scratch, reverting(reverted, Bug::B7ManifestWithoutLock))?;
    let dir = setup(snapshot_at(&setup(group("vm/100"))?, store.world().now()))?;
    setup(plant_backup(&store, &dir, &["A"]))?;
    let state = Pinned { store, dir };
    let outcomes = race(
        &state,
        &[
            ("notes", |s: &Pinned| {
                let read = read_snapshot(&s.store, &s.dir);
                if read != Outcome::OK {
                    return Outcome::new(format!("read: {read}"));
                }
                Outcome::of(&s.store.set_snapshot_notes(&s.dir, NOTES))
            }),
            ("verify", |s: &Pinned| verify_outcome(&s.store, &s.dir)),
        ],
    );
    Ok(verdict(check_manifest_lock(
        &state.store,
        &state.dir,
        &outcomes,
    )))
}

// ---- B8: snapshot notes × forget ----

struct Noted {
    store: Datastore<RealWorld>,
    dir: BackupDir,
}

/// B8: forget's manifest lock wait runs out while the notes update holds the lock.
pub(super) fn forget_manifest_lock(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    // In the simulated world a bounded wait times out as a scheduler choice. Here the wait is
    // configured to zero: a lock that is held when forget (or the update) asks for it times
    // out at once, which is what a long-running update does to the default five seconds.
    let mut config = datastore_config(reverting(reverted, Bug::B8ForgetIgnoresManifestLock));
    config.manifest_lock_timeout = Duration::ZERO;
    let store = create_datastore(RealWorld::new(), scratch, config)?;
    let dir = setup(snapshot_at(&setup(group("vm/100"))?, store.world().now()))?;
    let archives = [ArchiveSpec::new(BLOB, vec![b"config".to_vec()])];
    backup_snapshot(&store, &dir, OWNER, &archives)
        .map_err(|err| RealError::Setup(ScenarioError::setup("the backup", err)))?;
    let state = Noted { store, dir };
    let outcomes = race(
        &state,
        &[
            ("notes", |s: &Noted| {
                Outcome::of(&s.store.set_snapshot_notes(&s.dir, "notes"))
            }),
            ("forget", |s: &Noted| {
                Outcome::of(&s.store.forget_snapshot(&s.dir))
            }),
        ],
    );
    Ok(verdict(check_forget_manifest_lock(
        &state.store,
        &state.dir,
        &outcomes,
    )))
}

// ---- B15: two backups of a group back to back × a reader of their base ----

struct BackToBack {
    store: Datastore<RealWorld>,
    base: BackupDir,
    first: BackupDir,
    second: BackupDir,
}

/// B15: the client's second backup starts as soon as the first one's `finish` returned.
pub(super) fn finish_releases_locks(
    scratch: &Path,
    reverted: bool,
) -> Result<RunResult, RealError> {
    let store = new_datastore(scratch, reverting(reverted, Bug::B15LocksOutliveFinish))?;
    let group = setup(group("vm/100"))?;
    let now = store.world().now();
    let base = setup(snapshot_at(&group, now))?;
    setup(plant_backup(&store, &base, &["A"]))?;
    settle(&store, &base)?;
    let state = BackToBack {
        store,
        base,
        first: setup(snapshot_at(&group, now + 60))?,
        second: setup(snapshot_at(&group, now + 120))?,
    };
    let outcomes = race(
        &state,
        &[
            ("client", client),
            ("reader", |s: &BackToBack| read_snapshot(&s.store, &s.base)),
        ],
    );
    Ok(verdict(check_finish_releases_locks(&outcomes)))
}

/// Waits (at most five seconds) until nobody holds `dir`'s group lock or its snapshot lock.
///
/// With B15 reverted, the planted backup's own locks go with a teardown thread that may still
/// hold them when setup returns. The race under test is the client's second backup against its
/// first one's teardown; without this wait the reader of the base also meets the planted
/// backup's teardown (busy), a failure of the setup rather than of the client.
fn settle(store: &Datastore<RealWorld>, dir: &BackupDir) -> Result<(), RealError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let group = store.lock_group(&dir.group);
        let snapshot = store.lock_snapshot(dir, LockMode::Exclusive);
        match (group, snapshot) {
            (Ok(_), Ok(_)) => return Ok(()),
            (Err(err), _) | (_, Err(err)) if !err.is_contention() || Instant::now() > deadline => {
                return Err(RealError::Setup(ScenarioError::setup("settle", err)));
            }
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Two backups of the group, the second started right after the first returned.
fn client(state: &BackToBack) -> Outcome {
    for (dir, data) in [(&state.first, "B"), (&state.second, "C")] {
        let archives = [ArchiveSpec::new("root.didx", vec![chunk("A"), chunk(data)])];
        if let Err(err) = backup_snapshot(&state.store, dir, OWNER, &archives) {
            let which = if dir == &state.first {
                "first"
            } else {
                "second"
            };
            return Outcome::new(format!("{which} backup: {}", backup_error(err)));
        }
    }
    Outcome::OK
}

// ---- B17: reader × backup on the same base ----

struct Based {
    store: Datastore<RealWorld>,
    base: BackupDir,
    next: BackupDir,
}

/// B17: a reader of the base × an incremental backup on it.
pub(super) fn reader_shared_lock(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    let store = new_datastore(
        scratch,
        reverting(reverted, Bug::B17ReaderTakesExclusiveLock),
    )?;
    let group = setup(group("vm/100"))?;
    let now = store.world().now();
    let base = setup(snapshot_at(&group, now))?;
    setup(plant_backup(&store, &base, &["A", "B"]))?;
    let next = setup(snapshot_at(&group, now + 60))?;
    let state = Based { store, base, next };
    let outcomes = race(
        &state,
        &[
            ("reader", |s: &Based| read_snapshot(&s.store, &s.base)),
            ("backup", |s: &Based| {
                let archives = [ArchiveSpec::new(
                    "root.didx",
                    vec![chunk("A"), chunk("B"), chunk("C")],
                )];
                match backup_snapshot(&s.store, &s.next, OWNER, &archives) {
                    Ok(outcome) if outcome.base.as_ref() == Some(&s.base) => Outcome::OK,
                    Ok(_) => Outcome::label("ok without base"),
                    Err(err) => backup_error(err),
                }
            }),
        ],
    );
    Ok(verdict(check_reader_shared_lock(&outcomes)))
}

// ---- B23: a failed first backup × another owner's backup of the group ----

struct Cleanup {
    store: Datastore<RealWorld>,
    group: BackupGroup,
    failing: BackupDir,
    other: BackupDir,
}

/// B23: a failed first backup of a new group × another owner's backup of it.
pub(super) fn cleanup_group(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    let store = new_datastore(scratch, reverting(reverted, Bug::B23CleanupRelocksGroup))?;
    let group = setup(group("vm/200"))?;
    let now = store.world().now();
    let failing = setup(snapshot_at(&group, now))?;
    let other = setup(snapshot_at(&group, now + 60))?;
    let state = Cleanup {
        store,
        group,
        failing,
        other,
    };
    let outcomes = race(
        &state,
        &[
            ("failing", |s: &Cleanup| {
                match s.store.start_backup(&s.failing, OWNER) {
                    Ok(session) => match session.abort() {
                        Ok(()) => ABORTED,
                        Err(err) => Outcome::new(format!("abort failed: {err}")),
                    },
                    Err(err) => start_error(err),
                }
            }),
            ("other", |s: &Cleanup| {
                let archives = [ArchiveSpec::new("root.didx", vec![chunk("A")])];
                match backup_snapshot(&s.store, &s.other, OTHER_OWNER, &archives) {
                    Ok(_) => Outcome::OK,
                    Err(err) => start_error(err),
                }
            }),
        ],
    );
    Ok(verdict(check_cleanup_group(
        &state.store,
        &state.group,
        &state.other,
        &outcomes,
    )))
}
