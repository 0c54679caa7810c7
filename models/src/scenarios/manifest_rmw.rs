//! The manifest read-modify-write: two updates of one snapshot's manifest and a reader.
//!
//! `update_manifest` loads, changes and atomically replaces the manifest under the manifest lock
//! (I7), so neither update is lost, and the reader always finds a whole, valid manifest (I8).
//! The [`ManifestRmw::unlocked_writer`] variant has the verify state written through a second
//! handle of the datastore whose `update_manifest` skips the manifest lock (switch
//! [`Bug::B7ManifestWithoutLock`]): a schedule that runs the locked update between the unlocked
//! load and store loses that update.

use sim::SimWorld;
use store::backup_info::BackupDir;
use store::datastore::Datastore;
use store::datastore::DatastoreConfig;
use store::manifest::{Manifest, SnapshotVerifyState, VerifyState};
use store::regressions::Bug;
use store::sync::SyncFamily;

use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};
use crate::scenarios::{new_datastore, plant_snapshot, snapshot};

/// The message of a lost update.
pub const LOST_UPDATE: &str = "an update that succeeded was lost";

const NOTES: &str = "written by the notes actor";
const UPID: &str = "verify-job-1";

/// The scenario.
#[derive(Debug, Clone, Copy, Default)]
pub struct ManifestRmw {
    /// The verify actor writes without the manifest lock.
    pub unlocked_writer: bool,
}

impl ManifestRmw {
    /// The variant whose verify actor bypasses the manifest lock (must be caught).
    pub fn unlocked_writer() -> ManifestRmw {
        ManifestRmw {
            unlocked_writer: true,
        }
    }
}

/// The datastore, its snapshot, and the handle the verify actor writes through (the store
/// itself, or in the variant a second handle that skips the manifest lock).
pub struct ManifestRmwState<S: SyncFamily> {
    store: Datastore<SimWorld<S>>,
    verify_store: Datastore<SimWorld<S>>,
    dir: BackupDir,
}

fn notes<S: SyncFamily>(state: &ManifestRmwState<S>) -> Outcome {
    Outcome::of(
        &state
            .store
            .update_manifest(&state.dir, |manifest| manifest.set_notes(Some(NOTES))),
    )
}

fn verify_state() -> SnapshotVerifyState {
    SnapshotVerifyState {
        state: VerifyState::Ok,
        upid: UPID.to_owned(),
    }
}

fn verify<S: SyncFamily>(state: &ManifestRmwState<S>) -> Outcome {
    let result = state
        .verify_store
        .update_manifest(&state.dir, |m| m.set_verify_state(&verify_state()));
    Outcome::of(&result)
}

fn reader<S: SyncFamily>(state: &ManifestRmwState<S>) -> Outcome {
    match state.store.load_manifest(&state.dir) {
        Ok(manifest) if manifest.backup_dir() == state.dir => Outcome::OK,
        Ok(_) => Outcome::label("manifest of another snapshot"),
        Err(err) => Outcome::new(format!("manifest unreadable: {err}")),
    }
}

impl Scenario for ManifestRmw {
    type State<S: SyncFamily> = ManifestRmwState<S>;

    fn name(&self) -> String {
        if self.unlocked_writer {
            "manifest-rmw/unlocked-writer"
        } else {
            "manifest-rmw"
        }
        .to_owned()
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<ManifestRmwState<S>, ScenarioError> {
        let store = new_datastore(world, Default::default())?;
        let dir = snapshot("ct/7", "2024-01-01T00:00:00Z")?;
        plant_snapshot(&store, &dir)?;
        let verify_store = if self.unlocked_writer {
            let mut chunk_store = store.config().chunk_store;
            chunk_store.regressions = chunk_store.regressions.with(Bug::B7ManifestWithoutLock);
            Datastore::open(
                world.clone(),
                store.base(),
                DatastoreConfig::new(chunk_store),
            )
            .map_err(|err| ScenarioError::setup("open the unlocked handle", err))?
        } else {
            store.clone()
        };
        Ok(ManifestRmwState {
            store,
            verify_store,
            dir,
        })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<ManifestRmwState<S>>> {
        vec![
            Actor::new("notes", notes::<S>),
            Actor::new("verify", verify::<S>),
            Actor::new("reader", reader::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &ManifestRmwState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        // A bounded wait for the manifest lock may give up (under shuttle the time-out is a
        // scheduler choice): `busy` is allowed, a lost or torn update is not.
        outcomes.expect("notes", &[Outcome::OK, Outcome::BUSY])?;
        outcomes.expect("verify", &[Outcome::OK, Outcome::BUSY])?;
        outcomes.expect("reader", &[Outcome::OK])?;
        let manifest: Manifest = state
            .store
            .load_manifest(&state.dir)
            .map_err(|err| ScenarioError::violation(format!("final manifest unreadable: {err}")))?;
        let notes = manifest.notes().ok().flatten();
        if outcomes.of("notes") == Some(&Outcome::OK) && notes != Some(NOTES) {
            return Err(ScenarioError::violation(format!(
                "{LOST_UPDATE}: notes are {notes:?}"
            )));
        }
        let verified = manifest.verify_state().ok().flatten();
        if outcomes.of("verify") == Some(&Outcome::OK) && verified != Some(verify_state()) {
            return Err(ScenarioError::violation(format!(
                "{LOST_UPDATE}: verify state is {verified:?}"
            )));
        }
        Ok(())
    }
}
