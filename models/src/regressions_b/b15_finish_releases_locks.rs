//! B15 (liveness): a finished backup releases its locks before it reports success (pbs.md §8
//! B15 (b)).
//!
//! **Bug.** The group and snapshot lock guards of a backup lived in the worker task object,
//! which is torn down only after `finish` has answered the client. A client that starts the
//! next backup of the same group right away (push sync does) finds the group lock still held
//! and fails with "unable to acquire backup group lock".
//!
//! **Interleaving.** client: backup `S1` finishes and returns `ok` → client: starts backup `S2`
//! of the same group: group lock busy → the worker's teardown drops the guards, too late.
//!
//! **Fix.** `finish` drops the snapshot and group guards itself, before it reports success.
//! [`store::regressions::Bug::B15LocksOutliveFinish`] hands them to a teardown task the store
//! spawns (with the world's thread primitive) instead, which runs concurrently with the
//! client, as the worker's teardown did.
//!
//! **Setup.** `vm/100/S0` with `root.didx` = A. **Actors:** the client (backups `S1` then `S2`
//! of `vm/100`, back to back) and a reader of `S0`, which shares `S0`'s lock with the first
//! backup's base lock. **Invariant (liveness):** both backups succeed, and the reader never
//! fails. **Explorers:** PCT (depth 2 and 3), URW and loom (preemption bound 2) find it at
//! their first or second execution. The random scheduler missed it in 2000 executions of
//! seed 1: choosing uniformly at every step, it runs the teardown's few steps long before the
//! next backup's twenty-odd steps reach the group lock.

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
use crate::explore::Explorer;
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};

/// The message of the violated property.
pub const VIOLATION: &str = "a backup started right after the previous one finished failed";

/// What exploring the reverted variant must give.
pub const EXPECT_REVERTED: Expect = Expect::CaughtBy {
    message: VIOLATION,
    explorers: &[
        Explorer::Pct { depth: 2 },
        Explorer::Pct { depth: 3 },
        Explorer::Urw,
        Explorer::Loom {
            preemption_bound: Some(Explorer::DEFAULT_LOOM_BOUND),
        },
    ],
};

/// The scenario; `reverted` takes the fix of B15 out.
#[derive(Debug, Clone, Copy, Default)]
pub struct FinishReleasesLocks {
    /// B15's fix reverted.
    pub reverted: bool,
}

impl FinishReleasesLocks {
    /// Every fix in place.
    pub fn fixed() -> FinishReleasesLocks {
        FinishReleasesLocks { reverted: false }
    }

    /// B15's fix reverted.
    pub fn reverted() -> FinishReleasesLocks {
        FinishReleasesLocks { reverted: true }
    }
}

/// The datastore, the base and the client's two snapshots.
pub struct FinishReleasesLocksState<S: SyncFamily> {
    store: Datastore<SimWorld<S>>,
    base: BackupDir,
    first: BackupDir,
    second: BackupDir,
}

fn client<S: SyncFamily>(state: &FinishReleasesLocksState<S>) -> Outcome {
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

fn reader<S: SyncFamily>(state: &FinishReleasesLocksState<S>) -> Outcome {
    read_snapshot(&state.store, &state.base)
}

impl Scenario for FinishReleasesLocks {
    type State<S: SyncFamily> = FinishReleasesLocksState<S>;

    fn name(&self) -> String {
        variant_name("b15-finish-releases-locks", self.reverted, "B15")
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<FinishReleasesLocksState<S>, ScenarioError> {
        let store = crate::scenarios::new_datastore(
            world,
            reverting(self.reverted, Bug::B15LocksOutliveFinish),
        )?;
        let group = group("vm/100")?;
        let base = snapshot_at(&group, world.now())?;
        plant_backup(&store, &base, &["A"])?;
        let first = snapshot_at(&group, world.now() + 60)?;
        let second = snapshot_at(&group, world.now() + 120)?;
        Ok(FinishReleasesLocksState {
            store,
            base,
            first,
            second,
        })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<FinishReleasesLocksState<S>>> {
        vec![
            Actor::new("client", client::<S>),
            Actor::new("reader", reader::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        _state: &FinishReleasesLocksState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        check_finish_releases_locks(outcomes)
    }
}

/// The check of [`FinishReleasesLocks`] (also run by its real-world twin): both backups of the
/// client succeed and the reader never fails.
pub(crate) fn check_finish_releases_locks(outcomes: &Outcomes) -> Result<(), ScenarioError> {
    if let Some(outcome) = outcomes.of("client")
        && outcome != &Outcome::OK
    {
        return Err(ScenarioError::violation(format!(
            "{VIOLATION}: client ended `{outcome}`"
        )));
    }
    outcomes.expect("reader", &[Outcome::OK])?;
    Ok(())
}
