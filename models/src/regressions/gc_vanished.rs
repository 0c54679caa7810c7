//! B9 (L): GC under a concurrent forget must not fail because an index vanished.

use sim::SimWorld;
use store::backup_info::BackupDir;
use store::datastore::Datastore;
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::regressions::Bug;
use store::sync::SyncFamily;
use store::world::World;

use crate::explore::Explorer;
use crate::regressions::{
    DAY, OWNER, SHUTTLE, Variant, check_chunks_present, new_datastore, run_gc,
};
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};
use crate::scenarios::snapshot;

/// The message of the violation: GC did not succeed.
pub const VIOLATION: &str = "gc ended `error";

/// B9 (pbs.md §8, commits `e07620028`, `9d1ba51de`, `5fc281cd8`; liveness): GC aborted when an
/// index vanished between its listing and its opening.
///
/// Setup: two finished snapshots `S0` (older) and `S1` of `vm/100`, each with one index, then
/// three days pass. Actors:
/// * **gc**: one garbage collection;
/// * **forget**: forgets `S0`.
///
/// Interleaving: GC lists the group (or the snapshot's directory) while `S0` exists; forget
/// removes `S0`; GC's `readdir` of the snapshot or `open` of its index fails with ENOENT, and
/// the whole run fails.
///
/// Fix: "not found" while marking means "vanished": skip it (and relist the group if it was the
/// newest snapshot). Reverted by [`Bug::B9GcAbortsOnVanishedIndex`]. Check (liveness): GC
/// succeeds, forget succeeds, and every chunk of a finished snapshot exists.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcVanished(pub Variant);

/// The datastore and the snapshot to forget.
pub struct GcVanishedState<S: SyncFamily> {
    store: Datastore<SimWorld<S>>,
    old: BackupDir,
}

impl GcVanished {
    /// The explorers that must catch the reverted variant.
    pub fn explorers(&self) -> &'static [Explorer] {
        SHUTTLE
    }
}

fn gc<S: SyncFamily>(state: &GcVanishedState<S>) -> Outcome {
    run_gc(&state.store)
}

fn forget<S: SyncFamily>(state: &GcVanishedState<S>) -> Outcome {
    Outcome::of(&state.store.forget_snapshot(&state.old))
}

impl Scenario for GcVanished {
    type State<S: SyncFamily> = GcVanishedState<S>;

    fn name(&self) -> String {
        self.0.name("gc-vanished-index", "B9")
    }

    fn loom(&self) -> bool {
        false
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<GcVanishedState<S>, ScenarioError> {
        let store = new_datastore(world, self.0.regressions(Bug::B9GcAbortsOnVanishedIndex))?;
        let old = snapshot("vm/100", "2023-11-14T22:13:20Z")?;
        let new = snapshot("vm/100", "2023-11-15T22:13:20Z")?;
        for (dir, data) in [(&old, "chunk of S0"), (&new, "chunk of S1")] {
            let archives = [ArchiveSpec::new(
                "root.didx",
                vec![data.as_bytes().to_vec()],
            )];
            backup_snapshot(&store, dir, OWNER, &archives)
                .map_err(|err| ScenarioError::setup("a snapshot", err))?;
        }
        world.advance(3 * DAY);
        Ok(GcVanishedState { store, old })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<GcVanishedState<S>>> {
        vec![Actor::new("gc", gc::<S>), Actor::new("forget", forget::<S>)]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &GcVanishedState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        check_gc_vanished(&state.store, outcomes)
    }
}

/// The check of [`GcVanished`] (also run by its real-world twin): GC and forget succeed and
/// every chunk of a finished snapshot in `store` exists.
pub(crate) fn check_gc_vanished<W: World>(
    store: &Datastore<W>,
    outcomes: &Outcomes,
) -> Result<(), ScenarioError> {
    outcomes.expect("gc", &[Outcome::OK])?;
    outcomes.expect("forget", &[Outcome::OK])?;
    check_chunks_present(store)
}
