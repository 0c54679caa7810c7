//! B37 (upstream, 2025-08): a failed owner write leaves a group that refuses every backup.
//!
//! **Bug.** The first backup of a new group makes the group directory and then its `owner`
//! file. When writing the owner file fails (ENOSPC or EIO), the start fails, but the group
//! directory stays, without an owner file or with an empty one. Every later backup of the
//! group then fails the owner check ("no owner"), although the disk has room again: the group
//! is stuck until an administrator sets its owner by hand.
//!
//! **Interleaving.** None needed: the failure shows in every schedule. The second actor, a
//! backup of the same group with a later time, checks that the cleanup happens under the
//! group lock: it either finds the group busy, or finds a clean state (no group, or the first
//! one's finished snapshot) and succeeds. Which of the two backups meets the fault (the first
//! write of the run fails with ENOSPC) is the scheduler's choice.
//!
//! **Fix.** A group this start created or claimed is removed again, under the group lock it
//! holds, when its owner write fails, as for any start that fails before its snapshot exists
//! (`remove_group_locked`). [`store::regressions::Bug::B37OwnerWriteLeavesGroup`] leaves the
//! group as the failed write left it.
//!
//! **Setup.** An empty datastore; the next write (of any file) fails once with ENOSPC.
//! **Actors:** `first` and `second`, whole backups of `vm/400` by the same owner, one minute
//! apart. **Invariant:** each backup succeeds, fails busy, fails "not newer", or meets the
//! injected ENOSPC (at most one does); afterwards a backup of the group, one minute later
//! than both, succeeds and the group's owner is theirs.

use sim::{Fault, OpFilter, SimWorld};
use store::backup_info::{BackupDir, BackupGroup};
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::datastore::{Datastore, Error};
use store::regressions::Bug;
use store::sync::SyncFamily;
use store::world::World;

use super::{Expect, OWNER, chunk, group, reverting, snapshot_at, variant_name};
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};

/// The message of the violated invariant.
pub const VIOLATION: &str = "a failed owner write left a group that refuses backups";

/// What exploring the reverted variant must give: every explorer catches it (it shows in every
/// schedule).
pub const EXPECT_REVERTED: Expect = Expect::Caught(VIOLATION);

/// The outcome of the backup that met the injected ENOSPC.
pub const NO_SPACE: Outcome = Outcome::label("no-space");

/// The scenario; `reverted` takes the fix of B37 out.
#[derive(Debug, Clone, Copy, Default)]
pub struct OwnerWrite {
    /// B37's fix reverted.
    pub reverted: bool,
}

impl OwnerWrite {
    /// Every fix in place.
    pub fn fixed() -> OwnerWrite {
        OwnerWrite { reverted: false }
    }

    /// B37's fix reverted.
    pub fn reverted() -> OwnerWrite {
        OwnerWrite { reverted: true }
    }
}

/// The datastore, the group and the three snapshots (two actors, one check).
pub struct OwnerWriteState<S: SyncFamily> {
    store: Datastore<SimWorld<S>>,
    group: BackupGroup,
    first: BackupDir,
    second: BackupDir,
    later: BackupDir,
}

/// The outcome of a backup: `ok`, `busy`, `not-newer`, `no-space`, `no-owner` or `error: ..`.
pub(crate) fn backup_outcome<W: World>(store: &Datastore<W>, dir: &BackupDir) -> Outcome {
    let archives = [ArchiveSpec::new("root.didx", vec![chunk(&dir.to_string())])];
    match backup_snapshot(store, dir, OWNER, &archives) {
        Ok(_) => Outcome::OK,
        Err(Error::Io(err)) if err.kind() == std::io::ErrorKind::StorageFull => NO_SPACE,
        Err(Error::NoOwner(_)) => Outcome::label("no-owner"),
        Err(Error::BackupTimeNotNewer { .. }) => Outcome::label("not-newer"),
        Err(err) => Outcome::of::<()>(&Err(err)),
    }
}

fn first<S: SyncFamily>(state: &OwnerWriteState<S>) -> Outcome {
    backup_outcome(&state.store, &state.first)
}

fn second<S: SyncFamily>(state: &OwnerWriteState<S>) -> Outcome {
    backup_outcome(&state.store, &state.second)
}

impl Scenario for OwnerWrite {
    type State<S: SyncFamily> = OwnerWriteState<S>;

    fn name(&self) -> String {
        variant_name("b37-owner-write", self.reverted, "B37")
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<OwnerWriteState<S>, ScenarioError> {
        let store = crate::scenarios::new_datastore(
            world,
            reverting(self.reverted, Bug::B37OwnerWriteLeavesGroup),
        )?;
        let group = group("vm/400")?;
        let first = snapshot_at(&group, world.now())?;
        let second = snapshot_at(&group, world.now() + 60)?;
        let later = snapshot_at(&group, world.now() + 120)?;
        world.inject_fault(Fault::enospc(1, OpFilter::Write));
        Ok(OwnerWriteState {
            store,
            group,
            first,
            second,
            later,
        })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<OwnerWriteState<S>>> {
        vec![
            Actor::new("first", first::<S>),
            Actor::new("second", second::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &OwnerWriteState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        state.store.world().clear_faults();
        check_owner_write(&state.store, &state.group, &state.later, outcomes)
    }
}

/// The check of [`OwnerWrite`] on `group` in `store`: the actors' outcomes are allowed, and a
/// later backup (`later`) of the group succeeds under the right owner.
pub(crate) fn check_owner_write<W: World>(
    store: &Datastore<W>,
    group: &BackupGroup,
    later: &BackupDir,
    outcomes: &Outcomes,
) -> Result<(), ScenarioError> {
    let allowed = [
        Outcome::OK,
        Outcome::BUSY,
        Outcome::label("not-newer"),
        NO_SPACE,
    ];
    for actor in ["first", "second"] {
        outcomes
            .expect(actor, &allowed)
            .map_err(|err| ScenarioError::violation(format!("{VIOLATION}: {err}")))?;
    }
    let faulted = outcomes.iter().filter(|(_, o)| *o == NO_SPACE).count();
    if faulted > 1 {
        return Err(ScenarioError::violation(format!(
            "one injected fault failed two backups ({outcomes})"
        )));
    }
    let outcome = backup_outcome(store, later);
    if outcome != Outcome::OK {
        return Err(ScenarioError::violation(format!(
            "{VIOLATION}: a later backup of {group} ended `{outcome}`"
        )));
    }
    let owner = store
        .group_owner(group)
        .map_err(|err| ScenarioError::violation(format!("owner: {err}")))?;
    if owner.as_deref() != Some(OWNER) {
        return Err(ScenarioError::violation(format!(
            "{VIOLATION}: the owner of {group} is {owner:?}"
        )));
    }
    Ok(())
}
