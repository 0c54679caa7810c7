//! The scenarios, one module per kernel, and the catalogue the report and the sweeps run.
//!
//! | scenario | actors | invariant | variant that must be caught |
//! |---|---|---|---|
//! | `canary/locked` | 2 × claim | one claimer | `canary/unlocked`: the lock does not lock |
//! | `insert-sweep` | 2 × insert, sweep | I3: a stored chunk survives the sweep | `insert-sweep/B4-reverted` |
//! | `lock-table` | reader, forget, protect | I6, I9, I10 | — |
//! | `manifest-rmw` | notes, verify, reader | I7, I8 | `manifest-rmw/unlocked-writer` |
//! | `gc-backup-prune` | GC, incremental backup, prune keep-last 1 | every chunk of a finished snapshot exists (B18) | `gc-backup-prune/relist-reverted` ([`gc_backup_prune::FOUND_WINDOW`]; shuttle only: too large for loom; PCT depth 3 finds it, uniform random walks rarely do) |
//!
//! [`probes`] holds scenarios that test the engine rather than the store.

use std::path::Path;

use sim::SimWorld;
use store::backup_info::{BackupDir, BackupGroup, BackupTime};
use store::chunk_store::{ChunkStoreConfig, PrefixFanout, SyncLevel};
use store::datastore::prune::{KeepOptions, PruneOptions, PruneReport};
use store::datastore::{Datastore, DatastoreConfig, Error as DatastoreError};
use store::manifest::Manifest;
use store::regressions::Regressions;
use store::sync::SyncFamily;
use store::world::World;

use crate::explorer::Explorer;
use crate::scenario::{Scenario, ScenarioError};

pub mod canary;
pub mod first_backup;
pub mod gc_backup_prune;
pub mod insert_sweep;
pub mod lock_table;
pub mod manifest_rmw;
pub mod probes;

/// What exploring a catalogued scenario must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No explorer may find a failure.
    Pass,
    /// Every explorer must find a failure whose message contains this text.
    Caught(&'static str),
    /// The listed explorers must find a failure whose message contains `message`; the others
    /// may find it or not (a window that needs several specific preemptions, which PCT aims
    /// at and uniform random walks rarely hit).
    CaughtBy {
        /// Text of the failure's message.
        message: &'static str,
        /// The explorers that must catch it.
        explorers: &'static [Explorer],
    },
    /// Must pass once the store is fixed. Until then a failure whose message contains
    /// `message` is a known issue: shown with its replay command, not counted as a regression;
    /// any other failure is one.
    KnownIssue {
        /// Text of the known failure's message.
        message: &'static str,
        /// What the issue is.
        note: &'static str,
    },
}

impl Expect {
    /// Is a failure with this message acceptable (caught as expected, or the known issue)?
    pub fn accepts_failure(&self, message: &str) -> bool {
        match self {
            Expect::Pass => false,
            Expect::Caught(text)
            | Expect::CaughtBy { message: text, .. }
            | Expect::KnownIssue { message: text, .. } => message.contains(text),
        }
    }

    /// Is this a scenario that must pass (not a variant with a protection taken out)? Sweeps
    /// and determinism checks run only these.
    pub fn accepts_pass(&self) -> bool {
        !matches!(self, Expect::Caught(_) | Expect::CaughtBy { .. })
    }

    /// May `explorer` finish without finding a failure?
    pub fn accepts_pass_by(&self, explorer: Explorer) -> bool {
        match self {
            Expect::Caught(_) => false,
            Expect::CaughtBy { explorers, .. } => !explorers.contains(&explorer),
            Expect::Pass | Expect::KnownIssue { .. } => true,
        }
    }

    /// Must the scenario fail (under at least some explorers)?
    pub fn must_fail(&self) -> bool {
        !self.accepts_pass()
    }
}

/// Something done with each catalogued scenario (the catalogue holds scenarios of different
/// types, so it hands them to a visitor).
pub trait Visitor {
    /// Called with each scenario and what exploring it must give.
    fn visit<Sc: Scenario>(&mut self, scenario: &Sc, expect: Expect);
}

/// Visits every catalogued scenario, in table order.
pub fn visit_all(visitor: &mut impl Visitor) {
    visitor.visit(&canary::Canary::locked(), Expect::Pass);
    visitor.visit(
        &canary::Canary::unlocked(),
        Expect::Caught(canary::VIOLATION),
    );
    visitor.visit(&insert_sweep::InsertSweep::default(), Expect::Pass);
    visitor.visit(
        &insert_sweep::InsertSweep::b4_reverted(),
        Expect::Caught(insert_sweep::VIOLATION),
    );
    visitor.visit(&lock_table::LockTable, Expect::Pass);
    visitor.visit(&manifest_rmw::ManifestRmw::default(), Expect::Pass);
    visitor.visit(
        &manifest_rmw::ManifestRmw::unlocked_writer(),
        Expect::Caught(manifest_rmw::LOST_UPDATE),
    );
    visitor.visit(
        &gc_backup_prune::GcBackupPrune::default(),
        gc_backup_prune::EXPECT,
    );
    visitor.visit(&first_backup::FirstBackup::default(), Expect::Pass);
    visitor.visit(
        &first_backup::FirstBackup::mkdir_trusted(),
        Expect::CaughtBy {
            message: first_backup::VIOLATION,
            explorers: first_backup::CATCHING_EXPLORERS,
        },
    );
    visitor.visit(
        &gc_backup_prune::GcBackupPrune::relist_reverted(),
        Expect::CaughtBy {
            message: gc_backup_prune::VIOLATION,
            explorers: &[Explorer::Pct { depth: 3 }],
        },
    );
}

/// Visits the catalogued scenario called `name`; false if there is none.
pub fn visit_named(name: &str, visitor: &mut impl Visitor) -> bool {
    struct Named<'a, V> {
        name: &'a str,
        visitor: &'a mut V,
        found: bool,
    }
    impl<V: Visitor> Visitor for Named<'_, V> {
        fn visit<Sc: Scenario>(&mut self, scenario: &Sc, expect: Expect) {
            if !self.found && scenario.name() == self.name {
                self.found = true;
                self.visitor.visit(scenario, expect);
            }
        }
    }
    let mut named = Named {
        name,
        visitor,
        found: false,
    };
    visit_all(&mut named);
    named.found
}

/// Is there a catalogued scenario called `name`?
pub fn is_catalogued(name: &str) -> bool {
    struct Nothing;
    impl Visitor for Nothing {
        fn visit<Sc: Scenario>(&mut self, _: &Sc, _: Expect) {}
    }
    visit_named(name, &mut Nothing)
}

/// Prune of `group` with keep-last `n` and every other option off, as the scenarios run it.
pub fn prune_keep_last<W: World>(
    store: &Datastore<W>,
    group: &BackupGroup,
    n: u32,
) -> Result<PruneReport, DatastoreError> {
    let options = PruneOptions {
        keep: KeepOptions {
            keep_last: n,
            ..KeepOptions::default()
        },
        ..PruneOptions::default()
    };
    store.prune_group(group, &options)
}

/// A datastore at `/ds` with the given reverted fixes, no syncing, small fan-out.
pub fn new_datastore<S: SyncFamily>(
    world: &SimWorld<S>,
    regressions: Regressions,
) -> Result<Datastore<SimWorld<S>>, ScenarioError> {
    let chunk_store = ChunkStoreConfig::new(PrefixFanout::SMALL)
        .with_sync_level(SyncLevel::None)
        .with_regressions(regressions);
    Datastore::create(
        world.clone(),
        Path::new("/ds"),
        DatastoreConfig::new(chunk_store),
    )
    .map_err(|err| ScenarioError::setup("create the datastore", err))
}

/// The snapshot `<type>/<id>` at `time` (RFC 3339).
pub fn snapshot(group: &str, time: &str) -> Result<BackupDir, ScenarioError> {
    let group =
        BackupGroup::from_relative_path(group).map_err(|err| ScenarioError::setup(group, err))?;
    let time = BackupTime::parse(time).map_err(|err| ScenarioError::setup(time, err))?;
    Ok(BackupDir::new(group, time))
}

/// A finished snapshot with an empty manifest, written directly (no backup session).
pub fn plant_snapshot<W: World>(
    store: &Datastore<W>,
    dir: &BackupDir,
) -> Result<(), ScenarioError> {
    let path = store.snapshot_path(dir);
    store
        .world()
        .create_dir_all(&path)
        .map_err(|err| ScenarioError::setup("mkdir snapshot", err))?;
    let lock = store
        .lock_manifest(dir)
        .map_err(|err| ScenarioError::setup("lock the manifest", err))?;
    store
        .store_manifest_locked(&lock, &Manifest::new(dir))
        .map_err(|err| ScenarioError::setup("store the manifest", err))?;
    Ok(())
}
