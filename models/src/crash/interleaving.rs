//! A crash as a scheduled event in a concurrent GC × incremental backup.
//!
//! Setup: a datastore at a durable sync level with one finished snapshot `S0` of `vm/100`
//! (chunks A and B), made durable, then three days pass. Actors:
//!
//! * **gc**: a garbage collection with the default cutoff (access-time probe off);
//! * **backup**: an incremental backup `S1` (A and B reused from `S0`, C uploaded);
//! * **crash**: arms a crash at the next persistence point of the disk, at a moment the
//!   scheduler picks; from that point on every operation of every actor fails.
//!
//! Check: the crash image is recovered keeping only the durable state, every pending
//! operation (as if only the processes had died), and two seed-chosen subsets; each recovered
//! world must pass [`check_recovered`]: `S0` is intact, `S1` is
//! finished and intact if the backup reported success, no finished snapshot is damaged, GC
//! after recovery loses nothing referenced, and the next backup works.

use std::path::Path;

use sim::{CrashKeep, SimWorld};
use store::backup_info::BackupDir;
use store::chunk_store::SyncLevel;
use store::datastore::backup::backup_snapshot;
use store::datastore::gc::GcOptions;
use store::datastore::{Datastore, Error};
use store::regressions::Regressions;
use store::sync::SyncFamily;
use store::world::World;

use super::check::{Expectations, Strictness, check_recovered};
use super::workloads::{DAY, OWNER, ROOT, archives, config, snapshot_now};
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};

/// Text of every violation this scenario reports.
pub const VIOLATION: &str = "after the crash";

/// Outcome of an actor whose operation the crash stopped.
const CRASHED: Outcome = Outcome::label("crashed");

/// The scenario, at one durable sync level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashGcBackup {
    /// The sync level of the datastore.
    pub level: SyncLevel,
    /// Reverted fixes.
    pub regressions: Regressions,
}

impl CrashGcBackup {
    /// The scenario at `level` with every fix in place.
    pub fn new(level: SyncLevel) -> CrashGcBackup {
        CrashGcBackup {
            level,
            regressions: Regressions::none(),
        }
    }
}

/// The world, the datastore and both snapshots.
pub struct CrashGcBackupState<S: SyncFamily> {
    world: SimWorld<S>,
    store: Datastore<SimWorld<S>>,
    base: BackupDir,
    next: BackupDir,
}

/// An outcome for a store result: `crashed` if the disk had crashed by then.
fn outcome<S: SyncFamily, T>(state: &CrashGcBackupState<S>, result: &Result<T, Error>) -> Outcome {
    match result {
        Ok(_) => Outcome::OK,
        Err(_) if state.world.crashed() => CRASHED,
        Err(Error::GcRunning) => Outcome::BUSY,
        Err(_) => Outcome::of(result),
    }
}

fn gc<S: SyncFamily>(state: &CrashGcBackupState<S>) -> Outcome {
    let options = GcOptions {
        atime_safety_check: false,
        ..GcOptions::default()
    };
    outcome(state, &state.store.garbage_collection(&options))
}

fn backup<S: SyncFamily>(state: &CrashGcBackupState<S>) -> Outcome {
    let archives = archives(&["A", "B", "C"], false);
    outcome(
        state,
        &backup_snapshot(&state.store, &state.next, OWNER, &archives),
    )
}

fn crash<S: SyncFamily>(state: &CrashGcBackupState<S>) -> Outcome {
    state.world.arm_crash(state.world.persistence_points() + 1);
    Outcome::OK
}

impl Scenario for CrashGcBackup {
    type State<S: SyncFamily> = CrashGcBackupState<S>;

    fn name(&self) -> String {
        format!("crash-gc-backup/{}", super::level_name(self.level))
    }

    fn loom(&self) -> bool {
        false
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<CrashGcBackupState<S>, ScenarioError> {
        let store = Datastore::create(
            world.clone(),
            Path::new(ROOT),
            config(self.level, self.regressions),
        )
        .map_err(|err| ScenarioError::setup("create the datastore", err))?;
        let base = snapshot_now(world).map_err(|err| ScenarioError::setup("base", err))?;
        backup_snapshot(&store, &base, OWNER, &archives(&["A", "B"], false))
            .map_err(|err| ScenarioError::setup("the base backup", err))?;
        world
            .syncfs(Path::new("/"))
            .map_err(|err| ScenarioError::setup("syncfs", err))?;
        world.advance(3 * DAY);
        let next = snapshot_now(world).map_err(|err| ScenarioError::setup("next", err))?;
        Ok(CrashGcBackupState {
            world: world.clone(),
            store,
            base,
            next,
        })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<CrashGcBackupState<S>>> {
        vec![
            Actor::new("gc", gc::<S>),
            Actor::new("backup", backup::<S>),
            Actor::new("crash", crash::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &CrashGcBackupState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        outcomes.expect("gc", &[Outcome::OK, CRASHED])?;
        outcomes.expect("backup", &[Outcome::OK, CRASHED])?;
        let mut expect = Expectations {
            keep: vec![state.base.clone()],
            ..Expectations::default()
        };
        if outcomes.of("backup") == Some(&Outcome::OK) {
            expect.keep.push(state.next.clone());
        }
        let crashed = state.world.crashed();
        for keep in [
            CrashKeep::DurableOnly,
            CrashKeep::All,
            CrashKeep::Seeded(1),
            CrashKeep::Seeded(2),
        ] {
            let strictness = Strictness::for_crash(self.level, keep == CrashKeep::All);
            let recovered = state.world.crash(keep.clone());
            check_recovered(
                &recovered,
                self.level,
                self.regressions,
                strictness,
                &expect,
            )
            .map_err(|err| {
                ScenarioError::violation(format!(
                    "{VIOLATION} (crashed: {crashed}, state {keep:?}): {err}"
                ))
            })?;
        }
        Ok(())
    }
}
