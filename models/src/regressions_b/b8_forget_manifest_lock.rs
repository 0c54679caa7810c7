//! B8: forget goes on when it could not get the manifest lock (pbs.md §8 B8).
//!
//! **Bug.** Forget takes the snapshot's exclusive lock, then the manifest lock with a bounded
//! wait, and ignored a failure of the latter. A manifest update (snapshot notes) holds no
//! snapshot lock, only the manifest lock, and writes its temporary file next to the manifest.
//! If the wait runs out while the update is still writing, forget removes the directory under
//! it: the removal fails with "directory not empty", or the update's rename puts a manifest
//! back into a half-removed directory. Either way a half-removed snapshot is left behind.
//!
//! **Interleaving.** notes: takes the manifest lock, loads the manifest → forget: snapshot lock,
//! manifest lock times out, error ignored; unlinks the manifest, lists the directory, unlinks
//! `conf.blob` → notes: creates its temporary file, renames it to the manifest → forget: rmdir
//! fails (not empty). The snapshot directory stays, without `conf.blob`.
//!
//! **Fix.** A failed manifest lock fails the forget (busy / timed out), so the destroyer always
//! holds the manifest lock (I7). [`store::regressions::Bug::B8ForgetIgnoresManifestLock`]
//! restores the ignored error.
//!
//! **Explorers.** In the simulated world a bounded wait times out only as a scheduler choice
//! (a coin flip of shuttle's data source, `sim` families); loom's timed waits never time out.
//! So the shuttle schedulers find this and loom cannot: the reverted variant is not run under
//! loom. Random, URW and PCT depth 3 find it within a few executions; PCT depth 2 (one
//! priority change) missed it in 2000 executions of seed 1: the window needs forget to run
//! between two steps of the update *and* the update to run between two steps of forget.
//!
//! **Setup.** `vm/100/S0` with `conf.blob` (a finished snapshot whose manifest lists it).
//! **Invariant:** after the actors, the snapshot is either gone or whole (manifest and
//! `conf.blob`), and a forget that reported success left nothing.

use sim::SimWorld;
use store::backup_info::BackupDir;
use store::datastore::Datastore;
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::manifest::MANIFEST_BLOB_NAME;
use store::regressions::Bug;
use store::sync::SyncFamily;
use store::world::World;

use super::{Expect, OWNER, group, reverting, snapshot_at, variant_name};
use crate::explore::Explorer;
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};

/// The message of the violated invariant.
pub const VIOLATION: &str = "forget removed a snapshot under a manifest update";

/// What exploring the reverted variant must give.
pub const EXPECT_REVERTED: Expect = Expect::CaughtBy {
    message: VIOLATION,
    explorers: &[Explorer::Random, Explorer::Pct { depth: 3 }, Explorer::Urw],
};

pub(crate) const BLOB: &str = "conf.blob";

/// The scenario; `reverted` takes the fix of B8 out.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForgetManifestLock {
    /// B8's fix reverted.
    pub reverted: bool,
}

impl ForgetManifestLock {
    /// Every fix in place.
    pub fn fixed() -> ForgetManifestLock {
        ForgetManifestLock { reverted: false }
    }

    /// B8's fix reverted.
    pub fn reverted() -> ForgetManifestLock {
        ForgetManifestLock { reverted: true }
    }
}

/// The datastore and its snapshot.
pub struct ForgetManifestLockState<S: SyncFamily> {
    store: Datastore<SimWorld<S>>,
    dir: BackupDir,
}

fn notes<S: SyncFamily>(state: &ForgetManifestLockState<S>) -> Outcome {
    Outcome::of(&state.store.set_snapshot_notes(&state.dir, "notes"))
}

fn forget<S: SyncFamily>(state: &ForgetManifestLockState<S>) -> Outcome {
    Outcome::of(&state.store.forget_snapshot(&state.dir))
}

impl Scenario for ForgetManifestLock {
    type State<S: SyncFamily> = ForgetManifestLockState<S>;

    fn name(&self) -> String {
        variant_name("b8-forget-manifest-lock", self.reverted, "B8")
    }

    /// Loom never times a wait out, so it cannot reach the reverted window.
    fn loom(&self) -> bool {
        !self.reverted
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<ForgetManifestLockState<S>, ScenarioError> {
        let store = crate::scenarios::new_datastore(
            world,
            reverting(self.reverted, Bug::B8ForgetIgnoresManifestLock),
        )?;
        let dir = snapshot_at(&group("vm/100")?, world.now())?;
        let archives = [ArchiveSpec::new(BLOB, vec![b"config".to_vec()])];
        backup_snapshot(&store, &dir, OWNER, &archives)
            .map_err(|err| ScenarioError::setup("the backup", err))?;
        Ok(ForgetManifestLockState { store, dir })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<ForgetManifestLockState<S>>> {
        vec![
            Actor::new("notes", notes::<S>),
            Actor::new("forget", forget::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &ForgetManifestLockState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        check_forget_manifest_lock(&state.store, &state.dir, outcomes)
    }
}

/// The check of [`ForgetManifestLock`] (also run by its real-world twin) on `dir` in `store`:
/// the snapshot is gone or whole, a successful forget left nothing, and the update did not
/// meet the removal half-way.
pub(crate) fn check_forget_manifest_lock<W: World>(
    store: &Datastore<W>,
    dir: &BackupDir,
    outcomes: &Outcomes,
) -> Result<(), ScenarioError> {
    let world = store.world();
    let path = store.snapshot_path(dir);
    let exists = |path: &std::path::Path| {
        world
            .try_metadata(path)
            .map(|metadata| metadata.is_some())
            .map_err(|err| ScenarioError::violation(format!("stat: {err}")))
    };
    if exists(&path)? {
        let whole = exists(&path.join(MANIFEST_BLOB_NAME))? && exists(&path.join(BLOB))?;
        let forgotten = outcomes.of("forget") == Some(&Outcome::OK);
        if !whole || forgotten {
            let mut names: Vec<String> = world
                .read_dir(&path)
                .map_err(|err| ScenarioError::violation(format!("readdir: {err}")))?
                .into_iter()
                .map(|entry| entry.name.to_string_lossy().into_owned())
                .collect();
            names.sort();
            return Err(ScenarioError::violation(format!(
                "{VIOLATION}: a half-removed {} holds {names:?}",
                dir
            )));
        }
    }
    if let Some(outcome) = outcomes.of("notes")
        && outcome.as_str().starts_with("error: ")
    {
        return Err(ScenarioError::violation(format!(
            "{VIOLATION}: the update met the removal half-way: {outcome}"
        )));
    }
    outcomes.expect("notes", &[Outcome::OK, Outcome::BUSY, Outcome::NOT_FOUND])?;
    outcomes.expect("forget", &[Outcome::OK, Outcome::BUSY])?;
    Ok(())
}
