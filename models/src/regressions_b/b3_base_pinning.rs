//! B3: the base of an incremental backup is forgotten during the backup (pbs.md §8 B3).
//!
//! **Bug.** A backup registers its base's digests as known chunks and appends them without
//! uploading (or touching) them. Without a lock on the base, `forget` of the base succeeds
//! while the backup runs; a GC that marks after the forget and before the new index is closed
//! finds neither the base's index (gone) nor the new one (not written yet), and sweeps the
//! reused chunks (old atime). The backup then finishes with an index that references them.
//!
//! **Interleaving.** backup: `previous_index` (A and B known) → forget: removes `S0` →
//! gc: marks (nothing references A, B) and sweeps them → backup: uploads its new chunks,
//! appends A and B, closes, finishes `ok`. The new snapshot references two missing chunks.
//!
//! **Fix.** The backup holds the base's shared snapshot lock from start to finish, so forget
//! fails busy (I4, I6); and `finish` checks that the base still exists (a forget between the
//! listing and the lock) and fails with `BaseVanished` instead of publishing.
//! [`store::regressions::Bug::B3BaseNotPinned`] takes out both.
//!
//! **Setup.** `vm/100/S0` with `root.didx` = A, B; then three days pass (A and B are older
//! than GC's cutoff). The backup `S1` writes C, D, E (uploaded) then A, B (reused), so the
//! window between learning A and B and publishing the index spans three uploads.
//!
//! **Explorers.** The window needs forget and a whole GC to run while the backup is between
//! two of its steps: PCT (depth 2 and 3) finds it within a few executions, since it keeps a
//! low-priority task descheduled for long stretches. The uniformly random schedulers (random,
//! URW) interleave all three actors finely and missed it in 2000 executions of seed 1; the
//! scenario is too large for loom.

use sim::SimWorld;
use store::backup_info::{BackupDir, BackupGroup};
use store::datastore::Datastore;
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::datastore::gc::GcOptions;
use store::regressions::Bug;
use store::sync::SyncFamily;
use store::world::World;

use super::{
    DAY, Expect, OWNER, backup_error, chunk, group, missing_chunk, plant_backup, reverting,
    snapshot_at, variant_name,
};
use crate::explore::Explorer;
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};

/// The message of the violated invariant.
pub const VIOLATION: &str = "a finished snapshot references a missing chunk";

/// What exploring the reverted variant must give.
pub const EXPECT_REVERTED: Expect = Expect::CaughtBy {
    message: VIOLATION,
    explorers: &[Explorer::Pct { depth: 2 }, Explorer::Pct { depth: 3 }],
};

/// The scenario; `reverted` takes the fix of B3 out.
#[derive(Debug, Clone, Copy, Default)]
pub struct BasePinning {
    /// B3's fix reverted.
    pub reverted: bool,
}

impl BasePinning {
    /// Every fix in place.
    pub fn fixed() -> BasePinning {
        BasePinning { reverted: false }
    }

    /// B3's fix reverted.
    pub fn reverted() -> BasePinning {
        BasePinning { reverted: true }
    }
}

/// The datastore, the base and the new snapshot.
pub struct BasePinningState<S: SyncFamily> {
    store: Datastore<SimWorld<S>>,
    base: BackupDir,
    next: BackupDir,
    group: BackupGroup,
}

/// The backup failed because its base's index vanished before it was read.
pub(crate) const BASE_INDEX_VANISHED: Outcome = Outcome::label("base-index-vanished");

fn backup<S: SyncFamily>(state: &BasePinningState<S>) -> Outcome {
    let chunks = ["C", "D", "E", "A", "B"].map(chunk).to_vec();
    let archives = [ArchiveSpec::new("root.didx", chunks)];
    match backup_snapshot(&state.store, &state.next, OWNER, &archives) {
        Ok(_) => Outcome::OK,
        // The base's index vanished before the session read it: only possible without the
        // base lock (the base can be forgotten between the listing and the read).
        Err(store::datastore::Error::Index(err)) if err.is_not_found() => BASE_INDEX_VANISHED,
        Err(err) => backup_error(err),
    }
}

fn forget<S: SyncFamily>(state: &BasePinningState<S>) -> Outcome {
    Outcome::of(&state.store.forget_snapshot(&state.base))
}

fn gc<S: SyncFamily>(state: &BasePinningState<S>) -> Outcome {
    let options = GcOptions {
        atime_safety_check: false,
        ..GcOptions::default()
    };
    Outcome::of(&state.store.garbage_collection(&options))
}

impl Scenario for BasePinning {
    type State<S: SyncFamily> = BasePinningState<S>;

    fn name(&self) -> String {
        variant_name("b3-base-pinning", self.reverted, "B3")
    }

    fn loom(&self) -> bool {
        false
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<BasePinningState<S>, ScenarioError> {
        let store =
            crate::scenarios::new_datastore(world, reverting(self.reverted, Bug::B3BaseNotPinned))?;
        let group = group("vm/100")?;
        let base = snapshot_at(&group, world.now())?;
        plant_backup(&store, &base, &["A", "B"])?;
        world.advance(3 * DAY);
        let next = snapshot_at(&group, world.now())?;
        Ok(BasePinningState {
            store,
            base,
            next,
            group,
        })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<BasePinningState<S>>> {
        vec![
            Actor::new("backup", backup::<S>),
            Actor::new("forget", forget::<S>),
            Actor::new("gc", gc::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &BasePinningState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        check_base_pinning(
            &state.store,
            &state.group,
            &state.next,
            self.reverted,
            outcomes,
        )
    }
}

/// The check of [`BasePinning`] (also run by its real-world twin) on `store`, where `next` of
/// `group` is the backup's snapshot; `reverted`: B3's fix is out.
pub(crate) fn check_base_pinning<W: World>(
    store: &Datastore<W>,
    group: &BackupGroup,
    next: &BackupDir,
    reverted: bool,
    outcomes: &Outcomes,
) -> Result<(), ScenarioError> {
    if let Some(missing) = missing_chunk(store)? {
        return Err(ScenarioError::violation(format!("{VIOLATION}: {missing}")));
    }
    // With the fix, a backup that meets the forget holding its base fails busy (or, if
    // the forget came between the listing and the lock, base-vanished).
    // Without it, the backup may also find its base's index gone: a failed backup, not the
    // violation this scenario is after (that one is a finished backup with a lost chunk).
    let mut allowed = vec![Outcome::OK, Outcome::BUSY, Outcome::label("base-vanished")];
    if reverted {
        allowed.push(BASE_INDEX_VANISHED);
    }
    outcomes.expect("backup", &allowed)?;
    outcomes.expect("forget", &[Outcome::OK, Outcome::BUSY])?;
    outcomes.expect("gc", &[Outcome::OK])?;
    let finished = store
        .list_snapshots(group)
        .map_err(|err| ScenarioError::violation(format!("list: {err}")))?
        .iter()
        .any(|info| &info.dir == next && info.finished);
    if finished != (outcomes.of("backup") == Some(&Outcome::OK)) {
        return Err(ScenarioError::violation(format!(
            "the new snapshot is {}finished, but the backup ended {:?}",
            if finished { "" } else { "not " },
            outcomes.of("backup").map(Outcome::as_str)
        )));
    }
    Ok(())
}
