//! B17 (liveness): a reader takes the snapshot lock shared, never exclusively (pbs.md §8 B17).
//!
//! **Bug.** A refactoring made a read-only user (the sync job's snapshot reader, historically)
//! lock the snapshot exclusively. A new backup of the group uses that snapshot as its base and
//! needs a shared lock on it: it fails to start and aborts. The reader fails the same way while
//! a backup holds the base lock.
//!
//! **Interleaving.** reader: exclusive lock on `S0` → backup `S1`: base `S0`, shared lock
//! busy → backup fails.
//!
//! **Fix.** Readers take the shared lock (I6: read-only users conflict only with destroyers
//! and writers). [`store::regressions::Bug::B17ReaderTakesExclusiveLock`] makes the reader
//! session lock exclusively.
//!
//! **Setup.** `vm/100/S0` with `root.didx` = A, B. **Invariant (liveness):** the backup and the
//! reader both succeed in every interleaving. **Explorers:** every shuttle scheduler and loom
//! (preemption bound 2).

use sim::SimWorld;
use store::backup_info::BackupDir;
use store::datastore::Datastore;
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::regressions::Bug;
use store::sync::SyncFamily;
use store::world::World;

use super::{
    Expect, OWNER, backup_error, chunk, group, plant_backup, read_snapshot, reverting, snapshot_at,
    variant_name,
};
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};

/// The message of the violated property.
pub const VIOLATION: &str = "a read-only user made a backup or a reader fail";

/// What exploring the reverted variant must give.
pub const EXPECT_REVERTED: Expect = Expect::Caught(VIOLATION);

/// The scenario; `reverted` takes the fix of B17 out.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReaderSharedLock {
    /// B17's fix reverted.
    pub reverted: bool,
}

impl ReaderSharedLock {
    /// Every fix in place.
    pub fn fixed() -> ReaderSharedLock {
        ReaderSharedLock { reverted: false }
    }

    /// B17's fix reverted.
    pub fn reverted() -> ReaderSharedLock {
        ReaderSharedLock { reverted: true }
    }
}

/// The datastore, the read snapshot and the new one.
pub struct ReaderSharedLockState<S: SyncFamily> {
    store: Datastore<SimWorld<S>>,
    base: BackupDir,
    next: BackupDir,
}

fn reader<S: SyncFamily>(state: &ReaderSharedLockState<S>) -> Outcome {
    read_snapshot(&state.store, &state.base)
}

fn backup<S: SyncFamily>(state: &ReaderSharedLockState<S>) -> Outcome {
    let archives = [ArchiveSpec::new(
        "root.didx",
        vec![chunk("A"), chunk("B"), chunk("C")],
    )];
    match backup_snapshot(&state.store, &state.next, OWNER, &archives) {
        Ok(outcome) if outcome.base.as_ref() == Some(&state.base) => Outcome::OK,
        Ok(_) => Outcome::label("ok without base"),
        Err(err) => backup_error(err),
    }
}

impl Scenario for ReaderSharedLock {
    type State<S: SyncFamily> = ReaderSharedLockState<S>;

    fn name(&self) -> String {
        variant_name("b17-reader-shared-lock", self.reverted, "B17")
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<ReaderSharedLockState<S>, ScenarioError> {
        let store = crate::scenarios::new_datastore(
            world,
            reverting(self.reverted, Bug::B17ReaderTakesExclusiveLock),
        )?;
        let group = group("vm/100")?;
        let base = snapshot_at(&group, world.now())?;
        plant_backup(&store, &base, &["A", "B"])?;
        let next = snapshot_at(&group, world.now() + 60)?;
        Ok(ReaderSharedLockState { store, base, next })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<ReaderSharedLockState<S>>> {
        vec![
            Actor::new("reader", reader::<S>),
            Actor::new("backup", backup::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        _state: &ReaderSharedLockState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        check_reader_shared_lock(outcomes)
    }
}

/// The check of [`ReaderSharedLock`] (also run by its real-world twin): neither the reader nor
/// the backup failed busy.
pub(crate) fn check_reader_shared_lock(outcomes: &Outcomes) -> Result<(), ScenarioError> {
    for (actor, outcome) in outcomes.iter() {
        if outcome == &Outcome::BUSY {
            return Err(ScenarioError::violation(format!(
                "{VIOLATION}: {actor} ended `{outcome}`"
            )));
        }
    }
    outcomes.expect("reader", &[Outcome::OK])?;
    outcomes.expect("backup", &[Outcome::OK])?;
    Ok(())
}
