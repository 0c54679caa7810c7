//! B19 (liveness, and GC visibility): a backup session holds the process locker for its whole
//! run (pbs.md §8 B19).
//!
//! **Bug.** A session registered with the process locker (the shared record lock GC of another
//! process must not override, stamped with the writer's start) only while an index writer was
//! open. Between writers, or before the first one, a GC in *another process* can take the
//! exclusive lock: it does not see the session at all, so (a) its cutoff ignores the session's
//! start and it sweeps chunks the session uploaded long ago and will reference later (I2), and
//! (b) if it still runs when the session opens its next writer, the session fails busy half-way
//! (liveness).
//!
//! **Interleaving.** backup (process 1): starts `S1` at t0, uploads X (atime t0), runs two days
//! (the clock moves) → gc (process 2): takes the exclusive lock, finds no writer, cutoff
//! now − 24 h 5 min > t0, X is referenced by no index yet: swept → backup: opens `root.didx`,
//! appends X, closes, finishes `ok`: the snapshot references a missing chunk. If GC still holds
//! the lock when the writer opens, the backup fails busy instead.
//!
//! **Fix.** The session takes the shared guard at start and keeps it until `finish` (writers no
//! longer lock on their own), so GC in another process cannot start while the session runs,
//! and a session that started is never refused later.
//! [`store::regressions::Bug::B19LockerOnlyWhileWriting`] restores the per-writer guard.
//!
//! **Setup.** An empty datastore, opened a second time by another simulated process
//! (`SimWorld::new_process`), which runs the GC. **Invariant:** every chunk of a finished
//! snapshot exists, and a session that started never fails on the process lock.
//! **Explorers:** every shuttle scheduler, within 20 executions. The reverted variant is not
//! run under loom (the other process's GC makes it too large for an exhaustive search).

use std::time::Duration;

use sim::SimWorld;
use store::backup_info::BackupDir;
use store::chunk_store::Chunk;
use store::datastore::gc::GcOptions;
use store::datastore::{Datastore, Error};
use store::digest::Digest;
use store::manifest::Manifest;
use store::regressions::Bug;
use store::sync::SyncFamily;
use store::world::World;

use super::{
    DAY, Expect, OWNER, SHUTTLE_EXPLORERS, chunk, group, missing_chunk, open_in_new_process,
    reverting, snapshot_at, variant_name,
};
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};

/// The message of the violated invariant.
pub const VIOLATION: &str = "a running backup session was not protected from GC of another process";

/// What exploring the reverted variant must give.
pub const EXPECT_REVERTED: Expect = Expect::CaughtBy {
    message: VIOLATION,
    explorers: SHUTTLE_EXPLORERS,
};

const BUSY_AT_START: Outcome = Outcome::label("busy-at-start");

/// The scenario; `reverted` takes the fix of B19 out.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionLocker {
    /// B19's fix reverted.
    pub reverted: bool,
}

impl SessionLocker {
    /// Every fix in place.
    pub fn fixed() -> SessionLocker {
        SessionLocker { reverted: false }
    }

    /// B19's fix reverted.
    pub fn reverted() -> SessionLocker {
        SessionLocker { reverted: true }
    }
}

/// The datastore as opened by each process, and the new snapshot.
pub struct SessionLockerState<S: SyncFamily> {
    store: Datastore<SimWorld<S>>,
    other_process: Datastore<SimWorld<S>>,
    dir: BackupDir,
}

fn backup<S: SyncFamily>(state: &SessionLockerState<S>) -> Outcome {
    let store = &state.store;
    let mut session = match store.start_backup(&state.dir, OWNER) {
        Ok(session) => session,
        Err(err) if err.is_contention() => return BUSY_AT_START,
        Err(err) => return Outcome::error(err),
    };
    let run = || -> Result<(), Error> {
        let data = chunk("X");
        let chunk = Chunk::from_data(&data).map_err(|problem| Error::Protocol {
            dir: state.dir.clone(),
            reason: problem.to_string(),
        })?;
        session.upload_chunk(&chunk)?;
        // A long backup: the chunk uploaded first is two days old when it is referenced.
        store.world().sleep(Duration::from_secs(2 * DAY as u64));
        let writer = session.create_dynamic_index("root.didx")?;
        session.append_chunk(&writer, &Digest::of(&data), data.len() as u64)?;
        let info = session.close_index(writer)?;
        let mut manifest = Manifest::new(&state.dir);
        manifest.add_file(info)?;
        session.finish(manifest).map(drop)
    };
    match run() {
        Ok(()) => Outcome::OK,
        Err(err) if err.is_contention() => Outcome::label("busy-mid-session"),
        Err(err) => Outcome::error(err),
    }
}

fn gc<S: SyncFamily>(state: &SessionLockerState<S>) -> Outcome {
    let options = GcOptions {
        atime_safety_check: false,
        ..GcOptions::default()
    };
    match state.other_process.garbage_collection(&options) {
        Err(Error::GcRunning) => Outcome::BUSY,
        result => Outcome::of(&result),
    }
}

impl Scenario for SessionLocker {
    type State<S: SyncFamily> = SessionLockerState<S>;

    fn name(&self) -> String {
        variant_name("b19-session-locker", self.reverted, "B19")
    }

    fn loom(&self) -> bool {
        !self.reverted
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<SessionLockerState<S>, ScenarioError> {
        let store = crate::scenarios::new_datastore(
            world,
            reverting(self.reverted, Bug::B19LockerOnlyWhileWriting),
        )?;
        let other_process = open_in_new_process(world, &store)?;
        let dir = snapshot_at(&group("vm/100")?, world.now())?;
        Ok(SessionLockerState {
            store,
            other_process,
            dir,
        })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<SessionLockerState<S>>> {
        vec![Actor::new("backup", backup::<S>), Actor::new("gc", gc::<S>)]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &SessionLockerState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        if let Some(missing) = missing_chunk(&state.store)? {
            return Err(ScenarioError::violation(format!(
                "{VIOLATION}: GC swept {missing}"
            )));
        }
        if let Some(outcome) = outcomes.of("backup")
            && outcome.as_str() == "busy-mid-session"
        {
            return Err(ScenarioError::violation(format!(
                "{VIOLATION}: the session failed busy when it opened an index writer"
            )));
        }
        outcomes.expect("backup", &[Outcome::OK, BUSY_AT_START])?;
        outcomes.expect("gc", &[Outcome::OK, Outcome::BUSY])?;
        Ok(())
    }
}
