//! Two first backups of one new group, started at the same time by the same owner.
//!
//! `start_backup` makes the group directory before it takes the group lock (the lock decides
//! who writes; the directory is what lists the group). When both backups make or find the
//! directory and only one gets the lock, the other fails busy and removes the directory again
//! if it made it and it is still empty (best effort, without the lock, so that a failed start
//! leaves no orphan group). The holder therefore decides under the lock from what is there: it
//! makes the directory again if it is gone, claims an empty group without an owner, and makes
//! the directory again if it vanishes before the owner file is in.
//!
//! [`FirstBackup::mkdir_trusted`] reverts that fix
//! ([`store::regressions::Bug::StartTrustsMkdirBeforeLock`]): the holder trusts the `mkdir` it
//! made before the lock, and fails with "no owner" (the directory was there, made by the
//! other) or cannot create its owner file (the other removed the directory after the holder
//! checked it), although nothing is wrong with the group. This race is not in the historical
//! catalogue; the real-thread twin of B23 met it on a loaded machine.
//!
//! **Invariant:** every backup either succeeds, fails busy (the other one holds the group), or
//! fails "not newer" (the other one, with a later time, finished first); at least one
//! succeeds; each successful snapshot is listed as finished and the group's owner is theirs.

use sim::SimWorld;
use store::backup_info::BackupDir;
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::datastore::{Datastore, Error};
use store::regressions::{Bug, Regressions};
use store::sync::SyncFamily;

use crate::explorer::Explorer;
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};
use crate::scenarios::{new_datastore, snapshot};

/// The message of the violated invariant.
pub const VIOLATION: &str = "a first backup of a new group failed spuriously";

/// The explorers that catch the reverted variant within 200 executions (URW does not: the
/// window is early in both actors and URW weighs their many later steps).
pub const CATCHING_EXPLORERS: &[Explorer] = &[
    Explorer::Random,
    Explorer::Pct { depth: 2 },
    Explorer::Pct { depth: 3 },
    Explorer::Loom {
        preemption_bound: Some(Explorer::DEFAULT_LOOM_BOUND),
    },
];

const OWNER: &str = "backup@pam";
const NOT_NEWER: Outcome = Outcome::label("not-newer");

/// The scenario; `mkdir_trusted` reverts the fix.
#[derive(Debug, Clone, Copy, Default)]
pub struct FirstBackup {
    /// The lock holder trusts its `mkdir` from before the lock (the old code).
    pub mkdir_trusted: bool,
}

impl FirstBackup {
    /// The variant with the fix reverted (must be caught).
    pub fn mkdir_trusted() -> FirstBackup {
        FirstBackup {
            mkdir_trusted: true,
        }
    }
}

/// The datastore and the two new snapshots.
pub struct FirstBackupState<S: SyncFamily> {
    store: Datastore<SimWorld<S>>,
    first: BackupDir,
    second: BackupDir,
}

fn run<S: SyncFamily>(state: &FirstBackupState<S>, dir: &BackupDir) -> Outcome {
    let archives = [ArchiveSpec::new(
        "root.didx",
        vec![format!("data of {dir}").into_bytes()],
    )];
    match backup_snapshot(&state.store, dir, OWNER, &archives) {
        Ok(_) => Outcome::OK,
        Err(Error::BackupTimeNotNewer { .. }) => NOT_NEWER,
        Err(err) => Outcome::of::<()>(&Err(err)),
    }
}

fn first<S: SyncFamily>(state: &FirstBackupState<S>) -> Outcome {
    run(state, &state.first)
}

fn second<S: SyncFamily>(state: &FirstBackupState<S>) -> Outcome {
    run(state, &state.second)
}

impl Scenario for FirstBackup {
    type State<S: SyncFamily> = FirstBackupState<S>;

    fn name(&self) -> String {
        if self.mkdir_trusted {
            "first-backup/mkdir-trusted"
        } else {
            "first-backup"
        }
        .to_owned()
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<FirstBackupState<S>, ScenarioError> {
        let regressions = if self.mkdir_trusted {
            Regressions::none().with(Bug::StartTrustsMkdirBeforeLock)
        } else {
            Regressions::none()
        };
        Ok(FirstBackupState {
            store: new_datastore(world, regressions)?,
            first: snapshot("vm/300", "2024-01-01T00:00:00Z")?,
            second: snapshot("vm/300", "2024-01-01T00:01:00Z")?,
        })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<FirstBackupState<S>>> {
        vec![
            Actor::new("first", first::<S>),
            Actor::new("second", second::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &FirstBackupState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        let allowed = [Outcome::OK, Outcome::BUSY, NOT_NEWER];
        for (actor, outcome) in outcomes.iter() {
            if !outcome.is_one_of(&allowed) {
                return Err(ScenarioError::violation(format!(
                    "{VIOLATION}: {actor} ended `{outcome}`"
                )));
            }
        }
        let succeeded: Vec<&BackupDir> = [("first", &state.first), ("second", &state.second)]
            .into_iter()
            .filter(|(actor, _)| outcomes.of(actor) == Some(&Outcome::OK))
            .map(|(_, dir)| dir)
            .collect();
        if succeeded.is_empty() {
            return Err(ScenarioError::violation(format!(
                "{VIOLATION}: neither backup succeeded ({outcomes})"
            )));
        }
        let failed = |what: &str, err: &dyn std::fmt::Display| {
            ScenarioError::violation(format!("{what}: {err}"))
        };
        let group = &state.first.group;
        let owner = state
            .store
            .group_owner(group)
            .map_err(|err| failed("owner", &err))?;
        if owner.as_deref() != Some(OWNER) {
            return Err(ScenarioError::violation(format!(
                "the group's owner is {owner:?} after a successful backup"
            )));
        }
        let listed = state
            .store
            .list_snapshots(group)
            .map_err(|err| failed("list", &err))?;
        for dir in succeeded {
            if !listed.iter().any(|info| &info.dir == dir && info.finished) {
                return Err(ScenarioError::violation(format!(
                    "the successful backup {dir} is not listed as finished: {listed:?}"
                )));
            }
        }
        Ok(())
    }
}
