//! Two inserts of one chunk race a sweep whose cutoff already condemns the chunk's old copy.
//!
//! Invariant (pbs.md I3, race B4): a chunk an insert reported as stored still exists once
//! everybody is done. The protection is touch-on-duplicate under the chunk-store mutex, with the
//! sweep's stat → unlink under the same mutex. Reverting B4 (duplicate inserts do not touch)
//! lets the sweep remove a chunk that an insert has just reported as present.

use std::path::Path;
use std::sync::Arc;

use sim::SimWorld;
use store::regressions::{Bug, Regressions};
use store::sync::SyncFamily;
use store::world::World;
use store::{Chunk, ChunkStore, ChunkStoreConfig, PrefixFanout, SyncLevel};

use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};

const DAY: i64 = 86_400;

/// The panic message of a violation of this scenario's invariant.
pub const VIOLATION: &str = "a chunk reported as stored was swept";

/// The scenario as an explorable value.
#[derive(Debug, Clone, Copy, Default)]
pub struct InsertSweep {
    /// Historical fixes reverted in the store under test.
    pub regressions: Regressions,
}

impl InsertSweep {
    /// The scenario with the B4 fix reverted.
    pub fn b4_reverted() -> InsertSweep {
        InsertSweep {
            regressions: Regressions::none().with(Bug::B4DuplicateInsertNoTouch),
        }
    }
}

/// The shared state: the chunk store, the chunk, and the sweep's cutoff.
pub struct InsertSweepState<S: SyncFamily> {
    store: ChunkStore<SimWorld<S>>,
    chunk: Arc<Chunk>,
    min_atime: i64,
}

fn insert<S: SyncFamily>(state: &InsertSweepState<S>) -> Outcome {
    match state.store.insert_chunk(&state.chunk) {
        Ok(_) => Outcome::OK,
        Err(err) => Outcome::error(err),
    }
}

fn sweep<S: SyncFamily>(state: &InsertSweepState<S>) -> Outcome {
    match state
        .store
        .sweep_unused_chunks(state.min_atime, state.min_atime)
    {
        Ok(_) => Outcome::OK,
        Err(err) => Outcome::error(err),
    }
}

impl Scenario for InsertSweep {
    type State<S: SyncFamily> = InsertSweepState<S>;

    fn name(&self) -> String {
        if self.regressions.is_reverted(Bug::B4DuplicateInsertNoTouch) {
            "insert-sweep/B4-reverted".to_owned()
        } else {
            "insert-sweep".to_owned()
        }
    }

    fn world_seed(&self) -> u64 {
        7
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<InsertSweepState<S>, ScenarioError> {
        let config = ChunkStoreConfig::new(PrefixFanout::SMALL)
            .with_sync_level(SyncLevel::None)
            .with_regressions(self.regressions);
        let store = ChunkStore::create(world.clone(), Path::new("/ds"), config)
            .map_err(|err| ScenarioError::setup("create the chunk store", err))?;
        let chunk =
            Chunk::from_data(b"chunk x").map_err(|err| ScenarioError::setup("chunk", err))?;
        store
            .insert_chunk(&chunk)
            .map_err(|err| ScenarioError::setup("the old copy", err))?;
        // Three days later the old copy is unreferenced; GC's cutoff is one day ago.
        world.advance(3 * DAY);
        let min_atime = world.now() - DAY;
        Ok(InsertSweepState {
            store,
            chunk: Arc::new(chunk),
            min_atime,
        })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<InsertSweepState<S>>> {
        vec![
            Actor::new("insert-1", insert::<S>),
            Actor::new("insert-2", insert::<S>),
            Actor::new("sweep", sweep::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &InsertSweepState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        for actor in ["insert-1", "insert-2", "sweep"] {
            outcomes.expect(actor, &[Outcome::OK])?;
        }
        let present = state
            .store
            .chunk_metadata(state.chunk.digest())
            .map_err(|err| ScenarioError::violation(format!("stat of the chunk failed: {err}")))?
            .is_some();
        if !present {
            return Err(ScenarioError::violation(VIOLATION));
        }
        Ok(())
    }
}
