//! B21: a rename to `.bad` must not make the sweep fail.

use sim::SimWorld;
use store::Digest;
use store::chunk_store::BadRename as Renamed;
use store::datastore::Datastore;
use store::regressions::Bug;
use store::sync::SyncFamily;
use store::world::{OpenOptions, World, WorldFile};

use crate::explore::Explorer;
use crate::regressions::pull_touch::prefix_chunk;
use crate::regressions::{DAY, SHUTTLE_AND_LOOM, Variant, new_datastore};
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};

/// The message of the violation: the sweep failed.
pub const VIOLATION: &str = "sweep ended `error";

/// B21 (pbs.md §8, part (a); commits `e35597690` …): a corrupt chunk renamed to `.bad` outside
/// the chunk-store mutex.
///
/// Setup: two corrupt chunks (their files hold garbage) stored three days ago and referenced by
/// nothing: X in the first prefix directory the sweep visits, Z in the last. Actors:
/// * **sweep**: GC's phase 2 with a cutoff of one day ago;
/// * **verify**: finds X, then Z corrupt and renames each to `<digest>.0.bad`
///   (`ChunkStore::rename_chunk_if_corrupt`).
///
/// Two chunks at both ends of the sweep put a window early in the run (where a scheduler that
/// flips a coin per step finishes the short verify) and one late (where a scheduler that
/// spreads the short task's steps uniformly over the run puts its last step).
///
/// Interleaving: the sweep stats X (old atime) and decides to remove it; verify renames X; the
/// sweep's unlink finds nothing. An unlink error is fatal to the sweep (it must not guess what
/// happened to a file it decided to remove), so the whole GC fails.
///
/// Fix: the rename holds the chunk-store mutex, which the sweep holds from stat to unlink.
/// Reverted by [`Bug::B21RenameOutsideMutex`]. Check (liveness of GC): the sweep succeeds.
#[derive(Debug, Clone, Copy, Default)]
pub struct BadRename(pub Variant);

/// The datastore, the corrupt chunks and the sweep's cutoff.
pub struct BadRenameState<S: SyncFamily> {
    store: Datastore<SimWorld<S>>,
    digests: [Digest; 2],
    min_atime: i64,
}

impl BadRename {
    /// The explorers that must catch the reverted variant.
    pub fn explorers(&self) -> &'static [Explorer] {
        SHUTTLE_AND_LOOM
    }
}

fn sweep<S: SyncFamily>(state: &BadRenameState<S>) -> Outcome {
    let store = state.store.chunk_store();
    match store.sweep_unused_chunks(state.min_atime, state.min_atime) {
        Ok(_) => Outcome::OK,
        Err(err) => Outcome::error(err),
    }
}

fn verify<S: SyncFamily>(state: &BadRenameState<S>) -> Outcome {
    let mut labels = Vec::new();
    for digest in &state.digests {
        labels.push(
            match state.store.chunk_store().rename_chunk_if_corrupt(digest) {
                Ok(Renamed::Renamed(_)) => "renamed",
                Ok(Renamed::Vanished) => "vanished",
                Ok(Renamed::Intact) => "intact",
                Err(err) => return Outcome::error(err),
            },
        );
    }
    Outcome::new(labels.join(" "))
}

impl Scenario for BadRename {
    type State<S: SyncFamily> = BadRenameState<S>;

    fn name(&self) -> String {
        self.0.name("bad-rename", "B21")
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<BadRenameState<S>, ScenarioError> {
        let store = new_datastore(world, self.0.regressions(Bug::B21RenameOutsideMutex))?;
        let chunks = store.chunk_store();
        let last = chunks.config().fanout.dir_count() - 1;
        let digests = [
            *prefix_chunk(chunks, "corrupt chunk", 0)?.digest(),
            *prefix_chunk(chunks, "corrupt chunk", last)?.digest(),
        ];
        for digest in &digests {
            let path = chunks.chunk_path(digest);
            let file = world
                .open(&path, OpenOptions::create_new())
                .map_err(|err| ScenarioError::setup("create the chunk file", err))?;
            file.write_at(0, b"not a blob at all")
                .map_err(|err| ScenarioError::setup("write the chunk file", err))?;
        }
        world.advance(3 * DAY);
        let min_atime = world.now() - DAY;
        Ok(BadRenameState {
            store,
            digests,
            min_atime,
        })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<BadRenameState<S>>> {
        vec![
            Actor::new("sweep", sweep::<S>),
            Actor::new("verify", verify::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        _state: &BadRenameState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        check_bad_rename(outcomes)
    }
}

/// The check of [`BadRename`] (also run by its real-world twin): the sweep succeeded and verify
/// renamed (or found vanished) every corrupt chunk.
pub(crate) fn check_bad_rename(outcomes: &Outcomes) -> Result<(), ScenarioError> {
    outcomes.expect("sweep", &[Outcome::OK])?;
    let verify = outcomes.of("verify").map(Outcome::as_str).unwrap_or("");
    if verify
        .split(' ')
        .all(|label| label == "renamed" || label == "vanished")
    {
        Ok(())
    } else {
        Err(ScenarioError::violation(format!("verify ended `{verify}`")))
    }
}
