//! GC × incremental backup × prune on one group (the race behind PSA-2025-00019, pbs.md B18).
//!
//! Setup: a datastore with one finished snapshot `S0` of `vm/100` (archive `root.didx` with
//! chunks A and B), then three days pass, so A and B are older than GC's cutoff.
//!
//! Actors:
//! * **gc**: a garbage collection with the default cutoff (the access-time probe is off: it is
//!   tested on its own and only moves the clock here);
//! * **backup**: an incremental backup `S1` of the same group, chunks A, B (reused from `S0`
//!   without upload, so without touching them) and C (uploaded);
//! * **prune**: prune of the group with keep-last 1, which removes `S0` once `S1` is finished.
//!
//! Check: every chunk referenced by an index of a finished snapshot that still exists is in the
//! chunk store; the group keeps a finished snapshot; each actor ended in an allowed outcome.
//! The protection is GC's newest-first listing with a relist when the newest snapshot vanished:
//! a GC that marked only the snapshots it listed first would sweep A and B after prune removed
//! `S0` and before it saw `S1`.

use sim::SimWorld;
use store::backup_info::{BackupDir, BackupGroup, BackupTime};
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::datastore::gc::GcOptions;
use store::datastore::prune::PruneOutcome;
use store::datastore::{Datastore, Error};
use store::index::IndexFile;
use store::regressions::{Bug, Regressions};
use store::sync::SyncFamily;
use store::world::World;

use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};
use crate::scenarios::{Expect, new_datastore, prune_keep_last};

/// The message of the invariant's violation.
pub const VIOLATION: &str = "a finished snapshot references a missing chunk";

/// The window the explorers found in GC's newest-first marking before GC also relisted on a
/// vanished newest *finished* snapshot (PCT depth 3, seed 1, within 2000 executions; the
/// outcomes were `gc=ok, backup=ok, prune=removed-base`, and GC marked no index and removed
/// both reused chunks). [`GcBackupPrune::relist_reverted`] brings it back.
pub const FOUND_WINDOW: &str = "GC lists the group while the incremental backup's snapshot S1 \
    exists but has no index yet, so S1 is the newest snapshot, present, and marks nothing; \
    the backup then finishes and prune removes the base S0 before GC reaches it; S0 vanished \
    but is not the newest listed snapshot, so GC skips it without relisting, and the sweep \
    removes the chunks S1 reused from S0 without touching them. GC now relists whenever the \
    newest finished snapshot of a pass vanished, which closes the window.";

/// What exploring this scenario must give: pass.
pub const EXPECT: Expect = Expect::Pass;

const DAY: i64 = 86_400;
const OWNER: &str = "backup@pam";
const ARCHIVE: &str = "root.didx";

const BASE_VANISHED: Outcome = Outcome::label("base-vanished");
const KEPT_ALL: Outcome = Outcome::label("kept-all");
const REMOVED_BASE: Outcome = Outcome::label("removed-base");
const BASE_IN_USE: Outcome = Outcome::label("base-in-use");

/// The scenario.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcBackupPrune {
    /// Historical fixes reverted in the store under test.
    pub regressions: Regressions,
}

impl GcBackupPrune {
    /// The scenario with GC relisting only when the newest *listed* snapshot vanished
    /// ([`FOUND_WINDOW`]).
    pub fn relist_reverted() -> GcBackupPrune {
        GcBackupPrune {
            regressions: Regressions::none().with(Bug::GcRelistIgnoresUnfinished),
        }
    }
}

/// The datastore, the group and both snapshots.
pub struct GcBackupPruneState<S: SyncFamily> {
    store: Datastore<SimWorld<S>>,
    group: BackupGroup,
    next: BackupDir,
}

fn chunk(name: &str) -> Vec<u8> {
    format!("chunk {name} of vm/100").into_bytes()
}

fn gc<S: SyncFamily>(state: &GcBackupPruneState<S>) -> Outcome {
    let options = GcOptions {
        atime_safety_check: false,
        ..GcOptions::default()
    };
    match state.store.garbage_collection(&options) {
        Err(Error::GcRunning) => Outcome::BUSY,
        result => Outcome::of(&result),
    }
}

fn backup<S: SyncFamily>(state: &GcBackupPruneState<S>) -> Outcome {
    let archives = [ArchiveSpec::new(
        ARCHIVE,
        vec![chunk("A"), chunk("B"), chunk("C")],
    )];
    match backup_snapshot(&state.store, &state.next, OWNER, &archives) {
        Ok(outcome) if outcome.reused_chunks == 2 && outcome.uploaded_chunks == 1 => Outcome::OK,
        Ok(outcome) => Outcome::new(format!(
            "ok, reused {} uploaded {}",
            outcome.reused_chunks, outcome.uploaded_chunks
        )),
        Err(Error::BaseVanished { .. }) => BASE_VANISHED,
        Err(err) => Outcome::of::<()>(&Err(err)),
    }
}

fn prune<S: SyncFamily>(state: &GcBackupPruneState<S>) -> Outcome {
    let report = match prune_keep_last(&state.store, &state.group, 1) {
        Ok(report) => report,
        Err(err) => return Outcome::of::<()>(&Err(err)),
    };
    let mut outcome = KEPT_ALL;
    for entry in &report.entries {
        match &entry.outcome {
            PruneOutcome::Kept => {}
            PruneOutcome::Removed => outcome = REMOVED_BASE,
            PruneOutcome::NotRemoved(err) if err.is_contention() => outcome = BASE_IN_USE,
            PruneOutcome::NotRemoved(err) => return Outcome::error(err),
            PruneOutcome::WouldRemove => return Outcome::label("dry run"),
        }
    }
    outcome
}

impl Scenario for GcBackupPrune {
    type State<S: SyncFamily> = GcBackupPruneState<S>;

    fn name(&self) -> String {
        if self.regressions.is_reverted(Bug::GcRelistIgnoresUnfinished) {
            "gc-backup-prune/relist-reverted".to_owned()
        } else {
            "gc-backup-prune".to_owned()
        }
    }

    fn loom(&self) -> bool {
        false
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<GcBackupPruneState<S>, ScenarioError> {
        let store = new_datastore(world, self.regressions)?;
        let group = BackupGroup::from_relative_path("vm/100")
            .map_err(|err| ScenarioError::setup("group", err))?;
        let time = |epoch| {
            BackupTime::from_epoch(epoch).map_err(|err| ScenarioError::setup("backup time", err))
        };
        let base = BackupDir::new(group.clone(), time(world.now())?);
        let archives = [ArchiveSpec::new(ARCHIVE, vec![chunk("A"), chunk("B")])];
        backup_snapshot(&store, &base, OWNER, &archives)
            .map_err(|err| ScenarioError::setup("the base backup", err))?;
        world.advance(3 * DAY);
        let next = BackupDir::new(group.clone(), time(world.now())?);
        Ok(GcBackupPruneState { store, group, next })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<GcBackupPruneState<S>>> {
        vec![
            Actor::new("gc", gc::<S>),
            Actor::new("backup", backup::<S>),
            Actor::new("prune", prune::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &GcBackupPruneState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        outcomes.expect("gc", &[Outcome::OK])?;
        outcomes.expect("backup", &[Outcome::OK, BASE_VANISHED])?;
        outcomes.expect("prune", &[KEPT_ALL, REMOVED_BASE, BASE_IN_USE])?;
        let store = &state.store;
        let violation = |what: &str, err: &dyn std::fmt::Display| {
            ScenarioError::violation(format!("{what}: {err}"))
        };
        let listed = store
            .list_snapshots(&state.group)
            .map_err(|err| violation("list", &err))?;
        if !listed.iter().any(|info| info.finished) {
            return Err(ScenarioError::violation(
                "the group has no finished snapshot left",
            ));
        }
        let next_finished = listed
            .iter()
            .any(|info| info.dir == state.next && info.finished);
        if next_finished != (outcomes.of("backup") == Some(&Outcome::OK)) {
            return Err(ScenarioError::violation(format!(
                "the new snapshot is {}finished but the backup ended {:?}",
                if next_finished { "" } else { "not " },
                outcomes.of("backup").map(Outcome::as_str)
            )));
        }
        for info in listed.iter().filter(|info| info.finished) {
            let manifest = store
                .load_manifest(&info.dir)
                .map_err(|err| violation("manifest", &err))?;
            let path = store.snapshot_path(&info.dir);
            for file in manifest
                .files
                .iter()
                .filter(|file| file.kind().is_some_and(|k| k.is_index()))
            {
                let index = IndexFile::open(store.world(), &path.join(&file.filename))
                    .map_err(|err| violation("index", &err))?;
                for digest in index.digests() {
                    let present = store
                        .chunk_store()
                        .chunk_metadata(digest)
                        .map_err(|err| violation("stat chunk", &err))?
                        .is_some();
                    if !present {
                        return Err(ScenarioError::violation(format!(
                            "{VIOLATION}: {} of {} ({} of {})",
                            digest.to_hex(),
                            file.filename,
                            info.dir,
                            store.world().now()
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}
