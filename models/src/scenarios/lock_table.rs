//! The snapshot lock table: a reader, forget and protect race on one finished snapshot.
//!
//! * The reader takes the snapshot lock shared, and while it holds it the snapshot must stay
//!   whole (I6: a snapshot in use cannot be destroyed).
//! * Forget takes the snapshot lock exclusive without waiting, then the manifest lock, refuses a
//!   protected snapshot (I10) and removes the snapshot and its lock files while still holding
//!   them (a late waiter on a removed lock file is refused, I9).
//! * Protect takes the snapshot lock exclusive and sets the marker.
//!
//! Whatever the schedule: forget succeeded exactly when the snapshot is gone; forget and
//! protect never both succeed (protect either came first, and forget then refuses, or found the
//! snapshot gone); a snapshot protect succeeded on and that still exists carries the marker.

use sim::SimWorld;
use store::backup_info::BackupDir;
use store::datastore::{Datastore, Error};
use store::sync::SyncFamily;
use store::world::LockMode;

use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};
use crate::scenarios::{new_datastore, plant_snapshot, snapshot};

const READ: Outcome = Outcome::label("read");
const PROTECTED: Outcome = Outcome::label("protected");

/// The scenario.
#[derive(Debug, Clone, Copy, Default)]
pub struct LockTable;

/// The datastore and its one snapshot.
pub struct LockTableState<S: SyncFamily> {
    store: Datastore<SimWorld<S>>,
    dir: BackupDir,
}

fn reader<S: SyncFamily>(state: &LockTableState<S>) -> Outcome {
    let lock = match state.store.lock_snapshot(&state.dir, LockMode::Shared) {
        Ok(lock) => lock,
        Err(err) => return Outcome::of::<()>(&Err(err)),
    };
    // Like every user of a snapshot lock: the snapshot may have gone before the lock was taken.
    match state.store.snapshot_exists(&state.dir) {
        Ok(true) => {}
        Ok(false) => return Outcome::NOT_FOUND,
        Err(err) => return Outcome::error(err),
    }
    if let Err(err) = state.store.load_manifest(&state.dir) {
        return Outcome::new(format!("manifest unreadable while held shared: {err}"));
    }
    let still_there = state.store.snapshot_exists(&state.dir);
    drop(lock);
    match still_there {
        Ok(true) => READ,
        Ok(false) => Outcome::label("snapshot removed while held shared"),
        Err(err) => Outcome::error(err),
    }
}

fn forget<S: SyncFamily>(state: &LockTableState<S>) -> Outcome {
    match state.store.forget_snapshot(&state.dir) {
        Err(Error::Protected(_)) => PROTECTED,
        result => Outcome::of(&result),
    }
}

fn protect<S: SyncFamily>(state: &LockTableState<S>) -> Outcome {
    Outcome::of(&state.store.set_protection(&state.dir, true))
}

impl Scenario for LockTable {
    type State<S: SyncFamily> = LockTableState<S>;

    fn name(&self) -> String {
        "lock-table".to_owned()
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<LockTableState<S>, ScenarioError> {
        let store = new_datastore(world, Default::default())?;
        let dir = snapshot("vm/100", "2024-01-01T00:00:00Z")?;
        plant_snapshot(&store, &dir)?;
        Ok(LockTableState { store, dir })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<LockTableState<S>>> {
        vec![
            Actor::new("reader", reader::<S>),
            Actor::new("forget", forget::<S>),
            Actor::new("protect", protect::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &LockTableState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        outcomes.expect("reader", &[READ, Outcome::BUSY, Outcome::NOT_FOUND])?;
        outcomes.expect("forget", &[Outcome::OK, Outcome::BUSY, PROTECTED])?;
        outcomes.expect("protect", &[Outcome::OK, Outcome::BUSY, Outcome::NOT_FOUND])?;
        let forgotten = outcomes.of("forget") == Some(&Outcome::OK);
        let protected = outcomes.of("protect") == Some(&Outcome::OK);
        let violation = |message: &str| Err(ScenarioError::violation(message));
        let listed = state
            .store
            .list_snapshots(&state.dir.group)
            .map_err(|err| ScenarioError::violation(format!("listing failed: {err}")))?;
        let info = listed.iter().find(|info| info.dir == state.dir);
        match (forgotten, info) {
            (true, Some(_)) => {
                return violation("forget succeeded but the snapshot is still there");
            }
            (false, None) => {
                return violation("the snapshot vanished although forget did not succeed");
            }
            _ => {}
        }
        if forgotten && protected {
            return violation("forget and protect both succeeded");
        }
        if protected && info.is_some_and(|info| !info.protected) {
            return violation("protect succeeded but the snapshot carries no marker");
        }
        if outcomes.of("forget") == Some(&PROTECTED) && !protected {
            return violation("forget refused a protected snapshot nobody protected");
        }
        Ok(())
    }
}
