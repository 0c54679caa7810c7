//! B20: "chunk present?" answered by a touch must be atomic with the sweep's stat → unlink.

use sim::SimWorld;
use store::backup_info::BackupDir;
use store::datastore::Datastore;
use store::index::DynamicIndexWriter;
use store::manifest::{FileInfo, Manifest};
use store::regressions::Bug;
use store::sync::SyncFamily;
use store::world::World;
use store::{Chunk, ChunkStore};

use crate::explore::Explorer;
use crate::regressions::{DAY, SHUTTLE_AND_LOOM, Variant, check_chunks_present, new_datastore};
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};
use crate::scenarios::snapshot;

pub(crate) const REUSED: Outcome = Outcome::label("reused");
pub(crate) const UPLOADED: Outcome = Outcome::label("uploaded");

/// B20 (pbs.md §8, commit `d45077366`): `cond_touch_chunk` outside the chunk-store mutex.
///
/// Setup: chunk X stored three days ago and referenced by nothing (its snapshot was pruned);
/// X is the first chunk the sweep visits. Actors:
/// * **sweep**: GC's phase 2 with a cutoff of one day ago;
/// * **pull**: a sync job writing snapshot `S1`, whose only chunk is X: it asks
///   `cond_touch_chunk(X)` whether X is present; if so it reuses it, otherwise it uploads it;
///   then it writes `S1`'s index and manifest.
///
/// Interleaving: the sweep stats X (old atime) and decides to remove it; the pull's touch runs
/// in between, succeeds, and the pull skips the download; the sweep unlinks X; `S1` references
/// a missing chunk.
///
/// Fix: the touch holds the chunk-store mutex, which the sweep holds from stat to unlink.
/// Reverted by [`Bug::B20TouchOutsideMutex`]. Check: every chunk of a finished snapshot exists.
#[derive(Debug, Clone, Copy, Default)]
pub struct PullTouch(pub Variant);

/// The datastore, the chunk, the sweep's cutoff and the pulled snapshot.
pub struct PullTouchState<S: SyncFamily> {
    store: Datastore<SimWorld<S>>,
    chunk: Chunk,
    min_atime: i64,
    dir: BackupDir,
}

impl PullTouch {
    /// The explorers that must catch the reverted variant.
    pub fn explorers(&self) -> &'static [Explorer] {
        SHUTTLE_AND_LOOM
    }
}

/// A chunk whose digest puts it into the first prefix directory, so the sweep reaches it first.
pub fn first_prefix_chunk<W: World>(
    store: &ChunkStore<W>,
    label: &str,
) -> Result<Chunk, ScenarioError> {
    prefix_chunk(store, label, 0)
}

/// A chunk (data `<label> <n>` for the first `n` that fits) whose digest puts it into the
/// `index`-th prefix directory, the sweep's `index`-th stop.
pub fn prefix_chunk<W: World>(
    store: &ChunkStore<W>,
    label: &str,
    index: u32,
) -> Result<Chunk, ScenarioError> {
    let wanted = store.config().fanout.dir_name(index);
    for n in 0..100_000 {
        let chunk = Chunk::from_data(format!("{label} {n}").as_bytes())
            .map_err(|err| ScenarioError::setup("chunk", err))?;
        if store.config().fanout.prefix_of(chunk.digest()) == wanted {
            return Ok(chunk);
        }
    }
    Err(ScenarioError::setup(
        "chunk",
        format!("no chunk in prefix {wanted}"),
    ))
}

fn sweep<S: SyncFamily>(state: &PullTouchState<S>) -> Outcome {
    let store = state.store.chunk_store();
    match store.sweep_unused_chunks(state.min_atime, state.min_atime) {
        Ok(_) => Outcome::OK,
        Err(err) => Outcome::error(err),
    }
}

fn pull<S: SyncFamily>(state: &PullTouchState<S>) -> Outcome {
    let run = || -> Result<Outcome, Box<dyn std::error::Error>> {
        let store = &state.store;
        let chunk = &state.chunk;
        let outcome = if store
            .chunk_store()
            .cond_touch_chunk(chunk.digest(), false)?
        {
            REUSED
        } else {
            store.chunk_store().insert_chunk(chunk)?;
            UPLOADED
        };
        let world = store.world();
        let path = store.snapshot_path(&state.dir);
        world.create_dir_all(&path)?;
        let mut writer = DynamicIndexWriter::create(world.clone(), &path, "root.didx")?;
        writer.add_chunk(chunk.data().len() as u64, *chunk.digest())?;
        let closed = writer.close()?;
        let mut manifest = Manifest::new(&state.dir);
        manifest.add_file(FileInfo::for_index(&closed)?)?;
        let lock = store.lock_manifest(&state.dir)?;
        store.store_manifest_locked(&lock, &manifest)?;
        Ok(outcome)
    };
    run().unwrap_or_else(Outcome::error)
}

impl Scenario for PullTouch {
    type State<S: SyncFamily> = PullTouchState<S>;

    fn name(&self) -> String {
        self.0.name("pull-touch", "B20")
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<PullTouchState<S>, ScenarioError> {
        let store = new_datastore(world, self.0.regressions(Bug::B20TouchOutsideMutex))?;
        let chunk = first_prefix_chunk(store.chunk_store(), "pulled chunk")?;
        store
            .chunk_store()
            .insert_chunk(&chunk)
            .map_err(|err| ScenarioError::setup("the old copy", err))?;
        world.advance(3 * DAY);
        let min_atime = world.now() - DAY;
        Ok(PullTouchState {
            store,
            chunk,
            min_atime,
            dir: snapshot("vm/100", "2023-11-17T22:13:20Z")?,
        })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<PullTouchState<S>>> {
        vec![
            Actor::new("sweep", sweep::<S>),
            Actor::new("pull", pull::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &PullTouchState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        check_pull_touch(&state.store, outcomes)
    }
}

/// The check of [`PullTouch`] (also run by its real-world twin): the sweep succeeds, the pull
/// reused or uploaded the chunk, and every chunk of a finished snapshot in `store` exists.
pub(crate) fn check_pull_touch<W: World>(
    store: &Datastore<W>,
    outcomes: &Outcomes,
) -> Result<(), ScenarioError> {
    outcomes.expect("sweep", &[Outcome::OK])?;
    outcomes.expect("pull", &[REUSED, UPLOADED])?;
    check_chunks_present(store)
}
