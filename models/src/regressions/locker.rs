//! B10 (L): the process locker releases its record lock when the last writer ends.

use sim::SimWorld;
use store::backup_info::BackupDir;
use store::datastore::Datastore;
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::regressions::Bug;
use store::sync::SyncFamily;

use crate::explore::Explorer;
use crate::regressions::{OWNER, SHUTTLE, Variant, new_datastore, open_datastore, run_gc};
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};
use crate::scenarios::snapshot;

/// The message of the violation: GC stays locked out.
pub const VIOLATION: &str = "GC of another process is refused after every writer finished";

/// B10 (pbs.md §8, commit `3e2984bcb`; liveness): the process locker never released its read
/// lock once two writers had overlapped.
///
/// Setup: the datastore open in process P1 and in process P2. Actors:
/// * **backup-1**, **backup-2**: backups of two groups in P1 (each holds a shared guard of P1's
///   locker from start to finish).
///
/// (A GC actor in P2 would mostly take the exclusive lock before the backups register and make
/// them fail busy, hiding the overlap; the GC runs once the actors are done instead.)
///
/// Interleaving: both backups run at once, so the locker counts two writers; the old code reset
/// the count only when it stood at one, so after both finished it still counted two and kept
/// P1's shared record lock on `.lock`: every GC in P2 fails "busy" until P1 exits.
///
/// Fix: every guard's drop unregisters its writer, and the last one releases the record lock.
/// Reverted by [`Bug::B10LockerKeepsReadLock`]. Check (liveness): both backups succeed and, once
/// they finished, a GC in P2 succeeds.
#[derive(Debug, Clone, Copy, Default)]
pub struct LockerRelease(pub Variant);

/// Both processes' datastore instances and the two snapshots.
pub struct LockerState<S: SyncFamily> {
    p1: Datastore<SimWorld<S>>,
    p2: Datastore<SimWorld<S>>,
    first: BackupDir,
    second: BackupDir,
}

impl LockerRelease {
    /// The explorers that must catch the reverted variant.
    pub fn explorers(&self) -> &'static [Explorer] {
        SHUTTLE
    }
}

fn backup<S: SyncFamily>(store: &Datastore<SimWorld<S>>, dir: &BackupDir) -> Outcome {
    let archives = [ArchiveSpec::new(
        "root.didx",
        vec![format!("chunk of {dir}").into_bytes()],
    )];
    Outcome::of(&backup_snapshot(store, dir, OWNER, &archives))
}

fn backup_1<S: SyncFamily>(state: &LockerState<S>) -> Outcome {
    backup(&state.p1, &state.first)
}

fn backup_2<S: SyncFamily>(state: &LockerState<S>) -> Outcome {
    backup(&state.p1, &state.second)
}

impl Scenario for LockerRelease {
    type State<S: SyncFamily> = LockerState<S>;

    fn name(&self) -> String {
        self.0.name("locker-release", "B10")
    }

    fn loom(&self) -> bool {
        false
    }

    fn setup<S: SyncFamily>(&self, world: &SimWorld<S>) -> Result<LockerState<S>, ScenarioError> {
        let regressions = self.0.regressions(Bug::B10LockerKeepsReadLock);
        let p1 = new_datastore(world, regressions)?;
        let p2 = open_datastore(&world.new_process(), regressions)?;
        Ok(LockerState {
            p1,
            p2,
            first: snapshot("vm/101", "2023-11-14T22:13:20Z")?,
            second: snapshot("vm/102", "2023-11-14T22:13:20Z")?,
        })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<LockerState<S>>> {
        vec![
            Actor::new("backup-1", backup_1::<S>),
            Actor::new("backup-2", backup_2::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &LockerState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        outcomes.expect("backup-1", &[Outcome::OK])?;
        outcomes.expect("backup-2", &[Outcome::OK])?;
        match run_gc(&state.p2) {
            outcome if outcome == Outcome::OK => Ok(()),
            outcome => Err(ScenarioError::violation(format!(
                "{VIOLATION}: the GC after the actors ended `{outcome}`"
            ))),
        }
    }
}
