//! B6: prune removes snapshots without their locks (pbs.md §8 B6, and the prune half of B5).
//!
//! **Bug.** Prune (the scheduled prune job, historically) removed the snapshots it selected with
//! a forced removal that takes no lock, so a snapshot being restored (or written to tape, or
//! verified) is deleted under its reader.
//!
//! **Interleaving.** reader: opens a session on the old snapshot `S0` → prune keep-last 1:
//! selects `S0` and removes it without locking → reader: downloading `root.didx` fails.
//!
//! **Fix.** Prune removes every snapshot through `forget_snapshot` (exclusive snapshot lock,
//! without waiting); a snapshot in use makes that removal fail busy, which prune reports as a
//! warning and goes on (I6). [`store::regressions::Bug::B6PruneForcesRemoval`] restores the
//! forced removal.
//!
//! **Setup.** `vm/100/S0` (A, B) and a newer `vm/100/S1` (B, C), both finished.
//! **Invariant:** a snapshot that a reader opened is not destroyed under it.
//! **Explorers:** every shuttle scheduler and loom (preemption bound 2).

use sim::SimWorld;
use store::backup_info::{BackupDir, BackupGroup};
use store::datastore::Datastore;
use store::datastore::prune::PruneOutcome;
use store::regressions::Bug;
use store::sync::SyncFamily;
use store::world::World;

use super::{Expect, group, plant_backup, read_snapshot, reverting, snapshot_at, variant_name};
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};
use crate::scenarios::prune_keep_last;

/// The message of the violated invariant.
pub const VIOLATION: &str = "prune destroyed a snapshot under its reader";

/// What exploring the reverted variant must give.
pub const EXPECT_REVERTED: Expect = Expect::Caught(VIOLATION);

pub(crate) const REMOVED: Outcome = Outcome::label("removed");
pub(crate) const IN_USE: Outcome = Outcome::label("in-use");

/// The scenario; `reverted` takes the fix of B6 out.
#[derive(Debug, Clone, Copy, Default)]
pub struct PruneLocks {
    /// B6's fix reverted.
    pub reverted: bool,
}

impl PruneLocks {
    /// Every fix in place.
    pub fn fixed() -> PruneLocks {
        PruneLocks { reverted: false }
    }

    /// B6's fix reverted.
    pub fn reverted() -> PruneLocks {
        PruneLocks { reverted: true }
    }
}

/// The datastore, its group and the old snapshot.
pub struct PruneLocksState<S: SyncFamily> {
    store: Datastore<SimWorld<S>>,
    group: BackupGroup,
    old: BackupDir,
}

fn reader<S: SyncFamily>(state: &PruneLocksState<S>) -> Outcome {
    read_snapshot(&state.store, &state.old)
}

fn prune<S: SyncFamily>(state: &PruneLocksState<S>) -> Outcome {
    let report = match prune_keep_last(&state.store, &state.group, 1) {
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

impl Scenario for PruneLocks {
    type State<S: SyncFamily> = PruneLocksState<S>;

    fn name(&self) -> String {
        variant_name("b6-prune-locks", self.reverted, "B6")
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<PruneLocksState<S>, ScenarioError> {
        let store = crate::scenarios::new_datastore(
            world,
            reverting(self.reverted, Bug::B6PruneForcesRemoval),
        )?;
        let group = group("vm/100")?;
        let old = snapshot_at(&group, world.now())?;
        plant_backup(&store, &old, &["A", "B"])?;
        world.advance(3600);
        let new = snapshot_at(&group, world.now())?;
        plant_backup(&store, &new, &["B", "C"])?;
        Ok(PruneLocksState { store, group, old })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<PruneLocksState<S>>> {
        vec![
            Actor::new("reader", reader::<S>),
            Actor::new("prune", prune::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        _state: &PruneLocksState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        check_prune_locks(outcomes)
    }
}

/// The check of [`PruneLocks`] (also run by its real-world twin): the reader never lost the
/// snapshot under it, and both actors ended as allowed.
pub(crate) fn check_prune_locks(outcomes: &Outcomes) -> Result<(), ScenarioError> {
    if let Some(outcome) = outcomes.of("reader")
        && outcome.as_str().starts_with("lost: ")
    {
        return Err(ScenarioError::violation(format!(
            "{VIOLATION}: reader ended `{outcome}`"
        )));
    }
    outcomes.expect("reader", &[Outcome::OK, Outcome::BUSY, Outcome::NOT_FOUND])?;
    outcomes.expect("prune", &[REMOVED, IN_USE])?;
    Ok(())
}
