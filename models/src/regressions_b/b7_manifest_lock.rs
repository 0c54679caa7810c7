//! B7: manifest updates without the manifest lock lose updates (pbs.md §8 B7).
//!
//! **Bug.** `update_manifest` loads the manifest, changes it and replaces it without holding
//! the manifest lock. Two updaters of one snapshot (verify recording its result, a user
//! setting notes) each load the same manifest, and the second replace drops the first one's
//! change.
//!
//! **Interleaving.** verify: loads M → notes: loads M, stores M + notes → verify: stores
//! M + verify state. Both report success; the notes are gone.
//!
//! **Fix.** Every manifest change after the backup goes through `update_manifest`, which runs
//! the read-modify-write under the manifest lock (bounded wait), so the updates serialise
//! (I7). [`store::regressions::Bug::B7ManifestWithoutLock`] runs it without the lock. (The
//! catalogue's `manifest-rmw/unlocked-writer` bypasses `update_manifest` in the scenario; this
//! one reverts the store's own fix, and both writers are real store operations:
//! `set_snapshot_notes` and `verify_snapshot`.)
//!
//! **Setup.** `vm/100/S0` with `root.didx` = A. **Actors:** `notes` reads the snapshot through
//! a reader session, then sets its notes; `verify` verifies it (with `ignore_verified` off).
//! **Invariant:** an update that reported success is in the final manifest. **Explorers:** every shuttle scheduler and loom (preemption
//! bound 2).

use sim::SimWorld;
use store::backup_info::BackupDir;
use store::datastore::Datastore;
use store::manifest::VerifyState;
use store::regressions::Bug;
use store::sync::SyncFamily;
use store::world::World;

use super::b5_reader_pinning::verify_outcome;
use super::{Expect, group, plant_backup, read_snapshot, reverting, snapshot_at, variant_name};
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};

/// The message of the violated invariant.
pub const VIOLATION: &str = "a manifest update that succeeded was lost";

/// What exploring the reverted variant must give.
pub const EXPECT_REVERTED: Expect = Expect::Caught(VIOLATION);

pub(crate) const NOTES: &str = "set while verify ran";

/// The scenario; `reverted` takes the fix of B7 out.
#[derive(Debug, Clone, Copy, Default)]
pub struct ManifestLock {
    /// B7's fix reverted.
    pub reverted: bool,
}

impl ManifestLock {
    /// Every fix in place.
    pub fn fixed() -> ManifestLock {
        ManifestLock { reverted: false }
    }

    /// B7's fix reverted.
    pub fn reverted() -> ManifestLock {
        ManifestLock { reverted: true }
    }
}

/// The datastore and its snapshot.
pub struct ManifestLockState<S: SyncFamily> {
    store: Datastore<SimWorld<S>>,
    dir: BackupDir,
}

/// A user looks at the snapshot (reads it through a reader session), then sets its notes.
fn notes<S: SyncFamily>(state: &ManifestLockState<S>) -> Outcome {
    let read = read_snapshot(&state.store, &state.dir);
    if read != Outcome::OK {
        return Outcome::new(format!("read: {read}"));
    }
    Outcome::of(&state.store.set_snapshot_notes(&state.dir, NOTES))
}

fn verify<S: SyncFamily>(state: &ManifestLockState<S>) -> Outcome {
    verify_outcome(&state.store, &state.dir)
}

impl Scenario for ManifestLock {
    type State<S: SyncFamily> = ManifestLockState<S>;

    fn name(&self) -> String {
        variant_name("b7-manifest-lock", self.reverted, "B7")
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<ManifestLockState<S>, ScenarioError> {
        let store = crate::scenarios::new_datastore(
            world,
            reverting(self.reverted, Bug::B7ManifestWithoutLock),
        )?;
        let dir = snapshot_at(&group("vm/100")?, world.now())?;
        plant_backup(&store, &dir, &["A"])?;
        Ok(ManifestLockState { store, dir })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<ManifestLockState<S>>> {
        vec![
            Actor::new("notes", notes::<S>),
            Actor::new("verify", verify::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &ManifestLockState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        check_manifest_lock(&state.store, &state.dir, outcomes)
    }
}

/// The check of [`ManifestLock`] (also run by its real-world twin) on the manifest of `dir` in
/// `store`: an update that succeeded is kept.
pub(crate) fn check_manifest_lock<W: World>(
    store: &Datastore<W>,
    dir: &BackupDir,
    outcomes: &Outcomes,
) -> Result<(), ScenarioError> {
    let manifest = store
        .load_manifest(dir)
        .map_err(|err| ScenarioError::violation(format!("final manifest unreadable: {err}")))?;
    let notes = manifest.notes().ok().flatten();
    if outcomes.of("notes") == Some(&Outcome::OK) && notes != Some(NOTES) {
        return Err(ScenarioError::violation(format!(
            "{VIOLATION}: the notes are {notes:?}"
        )));
    }
    let verified = manifest
        .verify_state()
        .ok()
        .flatten()
        .map(|state| state.state);
    if outcomes.of("verify") == Some(&Outcome::OK) && verified != Some(VerifyState::Ok) {
        return Err(ScenarioError::violation(format!(
            "{VIOLATION}: the verify state is {verified:?}"
        )));
    }
    // A bounded wait for the manifest lock may give up (a shuttle coin): `busy` for the
    // notes, a state not saved for verify.
    outcomes.expect("notes", &[Outcome::OK, Outcome::BUSY])?;
    let verify = outcomes.of("verify").map(Outcome::as_str).unwrap_or("");
    let timed_out = verify.contains("verify state not saved") && verify.contains("timed out");
    if verify != "ok" && !timed_out {
        return Err(ScenarioError::violation(format!(
            "verify ended `{verify}`, allowed: ok | state not saved (lock timed out)"
        )));
    }
    Ok(())
}
