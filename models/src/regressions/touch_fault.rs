//! B11: a chunk GC could not mark must not be swept.

use std::io;

use sim::SimWorld;
use store::datastore::Datastore;
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::regressions::Bug;
use store::sync::SyncFamily;
use store::{Chunk, Digest};

use crate::explore::Explorer;
use crate::regressions::{
    DAY, OWNER, SHUTTLE_AND_LOOM, Variant, check_chunks_present, new_datastore, run_gc,
};
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};
use crate::scenarios::snapshot;

/// B11 (pbs.md §8, commits `2f57a433b` → `1399c592d`): GC tolerated every touch error.
///
/// Setup: a finished snapshot referencing chunk X, then three days pass. Actors:
/// * **gc**: one garbage collection;
/// * **disk-full**: from now on, touching X fails with ENOSPC (`ErrorKind::StorageFull`),
///   through the simulated world's fault injection ([`SimWorld::fail_touch`]).
///
/// Interleaving: the disk fills up before GC marks X; the touch fails and the old GC logged a
/// warning and went on; X keeps its old atime and the sweep removes it, although a finished
/// snapshot references it (the forum report: "server full … two days later almost empty").
///
/// Fix: only "not found" is tolerated when touching; any other error aborts GC before the
/// sweep. Reverted by [`Bug::B11GcToleratesTouchErrors`]. Check: every chunk of a finished
/// snapshot exists; GC either succeeded or failed with the touch error.
#[derive(Debug, Clone, Copy, Default)]
pub struct TouchFault(pub Variant);

/// The world, the datastore and the chunk whose touch fails.
pub struct TouchFaultState<S: SyncFamily> {
    world: SimWorld<S>,
    store: Datastore<SimWorld<S>>,
    chunk: Digest,
}

impl TouchFault {
    /// The explorers that must catch the reverted variant.
    pub fn explorers(&self) -> &'static [Explorer] {
        SHUTTLE_AND_LOOM
    }
}

fn gc<S: SyncFamily>(state: &TouchFaultState<S>) -> Outcome {
    match run_gc(&state.store) {
        outcome if outcome.as_str().contains("injected fault") => Outcome::label("touch-failed"),
        outcome => outcome,
    }
}

fn disk_full<S: SyncFamily>(state: &TouchFaultState<S>) -> Outcome {
    let path = state.store.chunk_store().chunk_path(&state.chunk);
    match state
        .world
        .fail_touch(&path, io::ErrorKind::StorageFull, None)
    {
        Ok(()) => Outcome::OK,
        Err(err) => Outcome::error(err),
    }
}

impl Scenario for TouchFault {
    type State<S: SyncFamily> = TouchFaultState<S>;

    fn name(&self) -> String {
        self.0.name("touch-fault", "B11")
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<TouchFaultState<S>, ScenarioError> {
        let store = new_datastore(world, self.0.regressions(Bug::B11GcToleratesTouchErrors))?;
        let dir = snapshot("vm/100", "2023-11-14T22:13:20Z")?;
        let data = b"chunk X".to_vec();
        let chunk = *Chunk::from_data(&data)
            .map_err(|err| ScenarioError::setup("chunk", err))?
            .digest();
        backup_snapshot(
            &store,
            &dir,
            OWNER,
            &[ArchiveSpec::new("root.didx", vec![data])],
        )
        .map_err(|err| ScenarioError::setup("the snapshot", err))?;
        world.advance(3 * DAY);
        Ok(TouchFaultState {
            world: world.clone(),
            store,
            chunk,
        })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<TouchFaultState<S>>> {
        vec![
            Actor::new("gc", gc::<S>),
            Actor::new("disk-full", disk_full::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &TouchFaultState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        outcomes.expect("gc", &[Outcome::OK, Outcome::label("touch-failed")])?;
        outcomes.expect("disk-full", &[Outcome::OK])?;
        check_chunks_present(&state.store)
    }
}
