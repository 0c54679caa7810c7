//! B18: GC marking from the list of index files taken at phase-1 start.

use sim::SimWorld;
use store::backup_info::{BackupDir, BackupGroup};
use store::datastore::Datastore;
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::datastore::prune::{KeepOptions, PruneOptions, PruneOutcome};
use store::regressions::Bug;
use store::sync::SyncFamily;
use store::world::World;

use crate::explore::Explorer;
use crate::regressions::{DAY, OWNER, Variant, check_chunks_present, new_datastore, run_gc};
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};
use crate::scenarios::snapshot;

/// The explorers that must catch the reverted variant.
pub const EXPLORERS: &[Explorer] = &[Explorer::Pct { depth: 2 }, Explorer::Pct { depth: 3 }];

/// Chunks of the other group's snapshot.
pub(crate) const EXTRA_CHUNKS: usize = 8;

const ARCHIVE: &str = "root.didx";

/// B18 (pbs.md §8, PSA-2025-00019-1, commits `74361da85`, `cb9814e33`): GC vs a new incremental
/// backup and a prune of its base.
///
/// Setup: a finished snapshot `S0` of `vm/100` with chunks A and B, and a snapshot of `ct/200`
/// with eight chunks, which GC's start list holds before `vm/100` (`ct` sorts first); then three
/// days pass. Actors:
/// * **gc**: one garbage collection;
/// * **job**: a backup job of `vm/100`: an incremental backup `S1` reusing A and B from `S0`
///   without uploading them (so without touching them) and uploading C, then, as the job's last
///   step, a prune of the group with keep-last 1, which removes `S0`.
///
/// Interleaving: GC lists the index files at T0 (`S0`'s and `ct/200`'s, not `S1`'s: it has no
/// index yet); while GC marks `ct/200`, the job finishes `S1` and prunes `S0`; GC opens `S0`'s
/// index, finds it gone and skips it (the B9 fix); nobody marked A and B, which are older than
/// the cutoff, and the sweep removes them: `S1` is corrupt.
///
/// Fix: GC iterates the groups live, each group's snapshots newest first, and lists a group
/// again when its newest snapshot vanished. Reverted by [`Bug::B18GcMarksFromStartList`].
/// Check: GC and the job succeed, and every chunk of a finished snapshot exists.
///
/// Explorers: PCT depth 2 and 3 ([`EXPLORERS`]). The window needs GC to list the index
/// files before the job publishes `S1`'s index and then to stall until the job's prune is done;
/// in this scenario, shuttle's random and URW schedulers did not produce that order within
/// 1000 executions of any of ten seeds (see `cargo run --release --bin races`).
#[derive(Debug, Clone, Copy, Default)]
pub struct GcStartList(pub Variant);

/// The datastore, the group and the new snapshot.
pub struct GcStartListState<S: SyncFamily> {
    store: Datastore<SimWorld<S>>,
    group: BackupGroup,
    next: BackupDir,
}

impl GcStartList {
    /// The scenario in `variant`.
    pub fn new(variant: Variant) -> GcStartList {
        GcStartList(variant)
    }

    /// The explorers that must catch the reverted variant.
    pub fn explorers(&self) -> &'static [Explorer] {
        EXPLORERS
    }
}

pub(crate) fn chunk(name: &str) -> Vec<u8> {
    format!("chunk {name} of vm/100").into_bytes()
}

fn gc<S: SyncFamily>(state: &GcStartListState<S>) -> Outcome {
    run_gc(&state.store)
}

fn job<S: SyncFamily>(state: &GcStartListState<S>) -> Outcome {
    let archives = [ArchiveSpec::new(
        ARCHIVE,
        vec![chunk("A"), chunk("B"), chunk("C")],
    )];
    match backup_snapshot(&state.store, &state.next, OWNER, &archives) {
        Ok(outcome) if outcome.reused_chunks == 2 => {}
        Ok(outcome) => return Outcome::new(format!("reused {}", outcome.reused_chunks)),
        Err(err) => return Outcome::of::<()>(&Err(err)),
    }
    let options = PruneOptions {
        keep: KeepOptions {
            keep_last: 1,
            ..KeepOptions::default()
        },
        ..PruneOptions::default()
    };
    match state.store.prune_group(&state.group, &options) {
        Ok(report) => {
            let removed = report
                .entries
                .iter()
                .filter(|entry| matches!(entry.outcome, PruneOutcome::Removed))
                .count();
            Outcome::new(format!("ok, pruned {removed}"))
        }
        Err(err) => Outcome::of::<()>(&Err(err)),
    }
}

impl Scenario for GcStartList {
    type State<S: SyncFamily> = GcStartListState<S>;

    fn name(&self) -> String {
        self.0.name("gc-start-list", "B18")
    }

    fn loom(&self) -> bool {
        false
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<GcStartListState<S>, ScenarioError> {
        let store = new_datastore(world, self.0.regressions(Bug::B18GcMarksFromStartList))?;
        let base = snapshot("vm/100", "2023-11-14T22:13:20Z")?;
        let archives = [ArchiveSpec::new(ARCHIVE, vec![chunk("A"), chunk("B")])];
        backup_snapshot(&store, &base, OWNER, &archives)
            .map_err(|err| ScenarioError::setup("the base backup", err))?;
        let other = snapshot("ct/200", "2023-11-14T22:13:20Z")?;
        let chunks = (0..EXTRA_CHUNKS)
            .map(|n| format!("chunk {n} of ct/200").into_bytes())
            .collect();
        backup_snapshot(&store, &other, OWNER, &[ArchiveSpec::new(ARCHIVE, chunks)])
            .map_err(|err| ScenarioError::setup("the other group", err))?;
        world.advance(3 * DAY);
        Ok(GcStartListState {
            store,
            group: base.group.clone(),
            next: snapshot("vm/100", "2023-11-17T22:13:20Z")?,
        })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<GcStartListState<S>>> {
        vec![Actor::new("gc", gc::<S>), Actor::new("job", job::<S>)]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &GcStartListState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        check_gc_start_list(&state.store, outcomes)
    }
}

/// The check of [`GcStartList`] (also run by its real-world twin): GC and the job succeed (the
/// prune removed the base) and every chunk of a finished snapshot in `store` exists.
pub(crate) fn check_gc_start_list<W: World>(
    store: &Datastore<W>,
    outcomes: &Outcomes,
) -> Result<(), ScenarioError> {
    outcomes.expect("gc", &[Outcome::OK])?;
    outcomes.expect("job", &[Outcome::label("ok, pruned 1")])?;
    check_chunks_present(store)
}
