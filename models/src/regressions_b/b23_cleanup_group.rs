//! B23: the cleanup of a failed backup locks the group again through a new handle (pbs.md §8
//! B23).
//!
//! **Bug.** When a backup fails, its cleanup removes the new snapshot and, if that was the
//! group's only one, the group. The cleanup took the group lock again through a second open
//! file description, while the session still held it through the first. flock locks belong to
//! the open file description, so the second attempt fails "busy"; the cleanup took that as
//! "somebody else uses the group" and skipped it. The empty group directory (with its owner
//! file) stays behind. (The interim workaround released the session's lock before cleaning up,
//! which let another backup take the group in between.)
//!
//! **Interleaving.** None needed: a failed first backup of a new group leaves an orphan group
//! in every schedule where the failing backup ends before the second one looks at the group.
//! The second actor, a backup of the same group, checks the window the workaround opened: it
//! must either find the group busy or find a clean state. Random, PCT and loom find the orphan
//! at their first or second execution; URW, which weighs the second actor's many more steps,
//! missed it in 2000 executions of seed 1.
//!
//! **Fix.** The cleanup runs with the lock the session holds (ownership is passed, never taken
//! again through a new handle): `remove_group_locked`.
//! [`store::regressions::Bug::B23CleanupRelocksGroup`] restores the second handle.
//!
//! **Setup.** An empty datastore. **Actors:** `failing` starts the first backup of `vm/200`
//! and aborts it; `other`, another owner, runs a whole backup of `vm/200` with a later time
//! (an orphan group still owned by the failed backup's owner refuses it).
//! **Invariant:** if no backup of the group succeeded, there is no `vm/200` directory; if one
//! did, the group holds exactly its snapshot; the second backup is never refused by a group
//! whose owner has no snapshot in it.

use sim::SimWorld;
use store::backup_info::{BackupDir, BackupGroup};
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::datastore::{Datastore, Error};
use store::regressions::Bug;
use store::sync::SyncFamily;
use store::world::World;

use super::{Expect, OWNER, chunk, group, reverting, snapshot_at, variant_name};
use crate::explore::Explorer;
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};

/// The message of the violated invariant.
pub const VIOLATION: &str = "a failed first backup left an orphan group directory";

/// What exploring the reverted variant must give.
pub const EXPECT_REVERTED: Expect = Expect::CaughtBy {
    message: VIOLATION,
    explorers: &[
        Explorer::Random,
        Explorer::Pct { depth: 2 },
        Explorer::Pct { depth: 3 },
        Explorer::Loom {
            preemption_bound: Some(Explorer::DEFAULT_LOOM_BOUND),
        },
    ],
};

pub(crate) const ABORTED: Outcome = Outcome::label("aborted");
pub(crate) const OWNED_BY_OTHER: Outcome = Outcome::label("owned-by-other");

/// The owner of the second backup: a group left behind by the first one is not its group.
pub(crate) const OTHER_OWNER: &str = "other@pam";

/// The scenario; `reverted` takes the fix of B23 out.
#[derive(Debug, Clone, Copy, Default)]
pub struct CleanupGroup {
    /// B23's fix reverted.
    pub reverted: bool,
}

impl CleanupGroup {
    /// Every fix in place.
    pub fn fixed() -> CleanupGroup {
        CleanupGroup { reverted: false }
    }

    /// B23's fix reverted.
    pub fn reverted() -> CleanupGroup {
        CleanupGroup { reverted: true }
    }
}

/// The datastore, the group and the two snapshots.
pub struct CleanupGroupState<S: SyncFamily> {
    store: Datastore<SimWorld<S>>,
    group: BackupGroup,
    failing: BackupDir,
    other: BackupDir,
}

pub(crate) fn start_error(err: Error) -> Outcome {
    match err {
        Error::NoOwner(_) => Outcome::label("no-owner"),
        Error::BackupTimeNotNewer { .. } => Outcome::label("not-newer"),
        Error::OwnerMismatch { .. } => OWNED_BY_OTHER,
        err => Outcome::of::<()>(&Err(err)),
    }
}

fn failing<S: SyncFamily>(state: &CleanupGroupState<S>) -> Outcome {
    match state.store.start_backup(&state.failing, OWNER) {
        // The client gives up (connection lost): the session is aborted.
        Ok(session) => match session.abort() {
            Ok(()) => ABORTED,
            Err(err) => Outcome::new(format!("abort failed: {err}")),
        },
        Err(err) => start_error(err),
    }
}

fn other<S: SyncFamily>(state: &CleanupGroupState<S>) -> Outcome {
    let archives = [ArchiveSpec::new("root.didx", vec![chunk("A")])];
    match backup_snapshot(&state.store, &state.other, OTHER_OWNER, &archives) {
        Ok(_) => Outcome::OK,
        Err(err) => start_error(err),
    }
}

impl Scenario for CleanupGroup {
    type State<S: SyncFamily> = CleanupGroupState<S>;

    fn name(&self) -> String {
        variant_name("b23-cleanup-group", self.reverted, "B23")
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<CleanupGroupState<S>, ScenarioError> {
        let store = crate::scenarios::new_datastore(
            world,
            reverting(self.reverted, Bug::B23CleanupRelocksGroup),
        )?;
        let group = group("vm/200")?;
        let failing = snapshot_at(&group, world.now())?;
        let other = snapshot_at(&group, world.now() + 60)?;
        Ok(CleanupGroupState {
            store,
            group,
            failing,
            other,
        })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<CleanupGroupState<S>>> {
        vec![
            Actor::new("failing", failing::<S>),
            Actor::new("other", other::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &CleanupGroupState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        check_cleanup_group(&state.store, &state.group, &state.other, outcomes)
    }
}

/// The check of [`CleanupGroup`] (also run by its real-world twin) on `group` in `store`, where
/// `other` is the second backup's snapshot: no orphan group directory.
pub(crate) fn check_cleanup_group<W: World>(
    store: &Datastore<W>,
    group: &BackupGroup,
    other: &BackupDir,
    outcomes: &Outcomes,
) -> Result<(), ScenarioError> {
    let failed = |what: &str, err: &dyn std::fmt::Display| {
        ScenarioError::violation(format!("{what}: {err}"))
    };
    let group_dir = store.group_path(group);
    let exists = store
        .world()
        .try_metadata(&group_dir)
        .map_err(|err| failed("stat", &err))?
        .is_some();
    let snapshots = store
        .list_snapshots(group)
        .map_err(|err| failed("list", &err))?;
    let other_ok = outcomes.of("other") == Some(&Outcome::OK);
    // No backup of the first owner ever succeeds, so only an orphan can be owned by it.
    if outcomes.of("other") == Some(&OWNED_BY_OTHER) {
        return Err(ScenarioError::violation(format!(
            "{VIOLATION}: the second backup found {} owned by the first, which failed",
            group
        )));
    }
    if !other_ok && exists {
        let mut names: Vec<String> = store
            .world()
            .read_dir(&group_dir)
            .map_err(|err| failed("readdir", &err))?
            .into_iter()
            .map(|entry| entry.name.to_string_lossy().into_owned())
            .collect();
        names.sort();
        return Err(ScenarioError::violation(format!(
            "{VIOLATION}: {} holds {names:?}",
            group
        )));
    }
    if other_ok {
        let dirs: Vec<&BackupDir> = snapshots.iter().map(|info| &info.dir).collect();
        if dirs != [other] || !snapshots.iter().all(|info| info.finished) {
            return Err(ScenarioError::violation(format!(
                "the group should hold exactly {}, it holds {snapshots:?}",
                other
            )));
        }
    }
    outcomes.expect(
        "failing",
        &[
            ABORTED,
            Outcome::BUSY,
            Outcome::label("no-owner"),
            Outcome::label("not-newer"),
            OWNED_BY_OTHER,
        ],
    )?;
    outcomes.expect(
        "other",
        &[Outcome::OK, Outcome::BUSY, Outcome::label("no-owner")],
    )?;
    Ok(())
}
