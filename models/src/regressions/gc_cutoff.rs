//! GC's cutoff: running writers (B1), the phase-1 start (B2), one locker per process (B13).
//!
//! All three are about `min_atime`, the access time below which the sweep removes a chunk. It
//! must lie below every mark GC made in phase 1 and below every upload of a writer that is still
//! running, whose chunks no index references yet.

use std::fmt;

use sim::SimWorld;
use store::Chunk;
use store::backup_info::{BackupDir, BackupGroup, BackupTime};
use store::datastore::Datastore;
use store::datastore::backup::BackupSession;
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::manifest::Manifest;
use store::regressions::Bug;
use store::sync::{Mutex, SyncFamily};
use store::world::World;

use crate::explore::Explorer;
use crate::regressions::{
    DAY, OWNER, SHUTTLE, Variant, check_chunks_present, new_datastore, open_datastore, run_gc,
};
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};

const ARCHIVE: &str = "root.didx";

/// B1 (pbs.md §8, commit `11861a482`): GC ignored running writers.
///
/// Setup: a long backup of `vm/100` started (registering with the process locker), uploaded
/// chunk X, and has been running for two days since (the clock moved). Actors:
/// * **backup**: the rest of that backup: it uploads four more chunks, writes its index
///   referencing X and them, and finishes;
/// * **gc**: one garbage collection.
///
/// Interleaving: the backup uploads X (atime t0) and two days pass; GC starts, its cutoff
/// `now − 24 h 5 min` is later than t0, no index references X yet, so the sweep removes X; the
/// backup finishes with an index referencing a missing chunk.
///
/// Fix: the cutoff moves below the start of the oldest writer registered with the process
/// locker (`min(now − cutoff, oldest_writer − 5 min)`). Reverted by
/// [`Bug::B1WriterCutoffIgnored`]. Check: every chunk of a finished snapshot exists, GC and
/// backup succeed.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriterCutoff(pub Variant);

/// B13 (pbs.md §8, commits `0bd9c8701`, `f418f4e48`): a second process locker for the same
/// datastore in one process.
///
/// Setup: the datastore opened twice in one simulated process (two `Datastore` instances, as a
/// re-opened cached datastore was), and the long backup of [`WriterCutoff`] started on the
/// first instance two days ago. Actors: **backup** finishing it, **gc** on the second instance.
///
/// Interleaving: the backup registers its start with the first instance's locker; GC asks the
/// second instance's locker for the oldest writer, which knows none (record locks of one
/// process never conflict, so GC is not refused either); the cutoff is `now − 24 h 5 min` and
/// the sweep removes the chunk the backup uploaded two days ago.
///
/// Fix: one locker per datastore per process: `Datastore::open` reuses the live locker of the
/// same path through the world's per-process registry (`World::process_shared`). Reverted by
/// [`Bug::B13SecondProcessLocker`]. Check as for [`WriterCutoff`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SecondOpen(pub Variant);

/// B2 (pbs.md §8, commit `d3d566f7b`): the cutoff computed at the start of the sweep.
///
/// Setup: a finished snapshot of `vm/100` referencing chunks A and B and one of `ct/200` with
/// eight chunks (GC marks `vm` groups first, so marking `ct/200` is the long rest of phase 1),
/// then three days pass. Actors:
/// * **gc**: one garbage collection;
/// * **clock**: time passes, half an hour per step, three days in all (a phase 1 that takes
///   more than a day on a huge or slow store).
///
/// Interleaving: phase 1 starts at T0 and touches A and B at about T0; more than 24 h 5 min pass
/// while GC marks the other group; the sweep computes `min_atime = now − 24 h 5 min`, later than
/// the marks of A and B, and removes both referenced chunks.
///
/// Fix: `min_atime` comes from phase 1's start. Reverted by [`Bug::B2CutoffAtSweepStart`].
/// Check: GC succeeds and every chunk of a finished snapshot exists.
#[derive(Debug, Clone, Copy, Default)]
pub struct SweepCutoff(pub Variant);

/// The state of [`WriterCutoff`] and [`SecondOpen`].
pub struct LongBackupState<S: SyncFamily> {
    /// The instance the backup writes through.
    writer_store: Datastore<SimWorld<S>>,
    /// The instance GC runs on (the same one for B1, a second open for B13).
    gc_store: Datastore<SimWorld<S>>,
    dir: BackupDir,
    chunk: Chunk,
    /// The chunks the backup uploads after the two days.
    more: Vec<Chunk>,
    /// The running session (taken by the backup actor).
    session: Mutex<S, Option<BackupSession<SimWorld<S>>>>,
}

impl<S: SyncFamily> fmt::Debug for LongBackupState<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LongBackupState")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn long_backup_setup<S: SyncFamily>(
    world: &SimWorld<S>,
    variant: Variant,
    bug: Bug,
    second_open: bool,
) -> Result<LongBackupState<S>, ScenarioError> {
    let regressions = variant.regressions(bug);
    let writer_store = new_datastore(world, regressions)?;
    let gc_store = if second_open {
        open_datastore(world, regressions)?
    } else {
        writer_store.clone()
    };
    let group = BackupGroup::from_relative_path("vm/100")
        .map_err(|err| ScenarioError::setup("group", err))?;
    let time = BackupTime::from_epoch(world.now())
        .map_err(|err| ScenarioError::setup("backup time", err))?;
    let chunk = Chunk::from_data(b"chunk X of the long backup")
        .map_err(|err| ScenarioError::setup("chunk", err))?;
    let more = (1..=4)
        .map(|n| Chunk::from_data(format!("chunk Y{n} of the long backup").as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| ScenarioError::setup("chunk", err))?;
    let dir = BackupDir::new(group, time);
    let mut session = writer_store
        .start_backup(&dir, OWNER)
        .map_err(|err| ScenarioError::setup("start the backup", err))?;
    session
        .upload_chunk(&chunk)
        .map_err(|err| ScenarioError::setup("upload X", err))?;
    world.advance(2 * DAY);
    Ok(LongBackupState {
        writer_store,
        gc_store,
        dir,
        chunk,
        more,
        session: Mutex::new(Some(session)),
    })
}

/// The end of the long backup: index, finish.
fn long_backup<S: SyncFamily>(state: &LongBackupState<S>) -> Outcome {
    let Some(mut session) = state.session.lock().take() else {
        return Outcome::label("no session");
    };
    let run = || -> Result<(), store::datastore::Error> {
        for chunk in &state.more {
            session.upload_chunk(chunk)?;
        }
        let writer = session.create_dynamic_index(ARCHIVE)?;
        for chunk in std::iter::once(&state.chunk).chain(&state.more) {
            session.append_chunk(&writer, chunk.digest(), chunk.data().len() as u64)?;
        }
        let info = session.close_index(writer)?;
        let mut manifest = Manifest::new(&state.dir);
        manifest.add_file(info)?;
        session.finish(manifest)?;
        Ok(())
    };
    // `finish` consumed the session on success; on failure it is dropped (aborted) here.
    Outcome::of(&run())
}

fn long_backup_gc<S: SyncFamily>(state: &LongBackupState<S>) -> Outcome {
    run_gc(&state.gc_store)
}

fn long_backup_check<S: SyncFamily>(
    state: &LongBackupState<S>,
    outcomes: &Outcomes,
) -> Result<(), ScenarioError> {
    check_long_backup(&state.writer_store, outcomes)
}

/// The check of [`WriterCutoff`] and [`SecondOpen`] (also run by their real-world twins):
/// backup and GC succeed and every chunk of a finished snapshot in `store` exists.
pub(crate) fn check_long_backup<W: World>(
    store: &Datastore<W>,
    outcomes: &Outcomes,
) -> Result<(), ScenarioError> {
    outcomes.expect("backup", &[Outcome::OK])?;
    outcomes.expect("gc", &[Outcome::OK])?;
    check_chunks_present(store)
}

impl WriterCutoff {
    /// The explorers that must catch the reverted variant.
    pub fn explorers(&self) -> &'static [Explorer] {
        SHUTTLE
    }
}

impl Scenario for WriterCutoff {
    type State<S: SyncFamily> = LongBackupState<S>;

    fn name(&self) -> String {
        self.0.name("writer-cutoff", "B1")
    }

    fn loom(&self) -> bool {
        false
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<LongBackupState<S>, ScenarioError> {
        long_backup_setup(world, self.0, Bug::B1WriterCutoffIgnored, false)
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<LongBackupState<S>>> {
        vec![
            Actor::new("backup", long_backup::<S>),
            Actor::new("gc", long_backup_gc::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &LongBackupState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        long_backup_check(state, outcomes)
    }
}

impl SecondOpen {
    /// The explorers that must catch the reverted variant.
    pub fn explorers(&self) -> &'static [Explorer] {
        SHUTTLE
    }
}

impl Scenario for SecondOpen {
    type State<S: SyncFamily> = LongBackupState<S>;

    fn name(&self) -> String {
        self.0.name("second-open", "B13")
    }

    fn loom(&self) -> bool {
        false
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<LongBackupState<S>, ScenarioError> {
        let state = long_backup_setup(world, self.0, Bug::B13SecondProcessLocker, true)?;
        let shared = std::sync::Arc::ptr_eq(
            state.writer_store.process_locker(),
            state.gc_store.process_locker(),
        );
        if shared == self.0.reverted {
            return Err(ScenarioError::setup(
                "the second open",
                format!("shares the first one's process locker: {shared}"),
            ));
        }
        Ok(state)
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<LongBackupState<S>>> {
        vec![
            Actor::new("backup", long_backup::<S>),
            Actor::new("gc", long_backup_gc::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &LongBackupState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        long_backup_check(state, outcomes)
    }
}

/// The state of [`SweepCutoff`].
pub struct SweepCutoffState<S: SyncFamily> {
    world: SimWorld<S>,
    store: Datastore<SimWorld<S>>,
}

impl SweepCutoff {
    /// The explorers that must catch the reverted variant.
    pub fn explorers(&self) -> &'static [Explorer] {
        SHUTTLE
    }
}

fn slow_gc<S: SyncFamily>(state: &SweepCutoffState<S>) -> Outcome {
    run_gc(&state.store)
}

/// Clock steps of [`SweepCutoff`]: half an hour each, three days in all.
const TICKS: i64 = 3 * 48;

fn clock<S: SyncFamily>(state: &SweepCutoffState<S>) -> Outcome {
    for _ in 0..TICKS {
        state.world.advance(DAY / 48);
    }
    Outcome::OK
}

impl Scenario for SweepCutoff {
    type State<S: SyncFamily> = SweepCutoffState<S>;

    fn name(&self) -> String {
        self.0.name("sweep-cutoff", "B2")
    }

    fn loom(&self) -> bool {
        false
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<SweepCutoffState<S>, ScenarioError> {
        let store = new_datastore(world, self.0.regressions(Bug::B2CutoffAtSweepStart))?;
        let dir = crate::scenarios::snapshot("vm/100", "2023-11-14T22:13:20Z")?;
        let archives = [ArchiveSpec::new(
            ARCHIVE,
            vec![b"chunk A".to_vec(), b"chunk B".to_vec()],
        )];
        backup_snapshot(&store, &dir, OWNER, &archives)
            .map_err(|err| ScenarioError::setup("the snapshot", err))?;
        let other = crate::scenarios::snapshot("ct/200", "2023-11-14T22:13:20Z")?;
        let chunks = (0..8)
            .map(|n| format!("chunk {n} of ct/200").into_bytes())
            .collect();
        backup_snapshot(&store, &other, OWNER, &[ArchiveSpec::new(ARCHIVE, chunks)])
            .map_err(|err| ScenarioError::setup("the other snapshot", err))?;
        world.advance(3 * DAY);
        Ok(SweepCutoffState {
            world: world.clone(),
            store,
        })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<SweepCutoffState<S>>> {
        vec![
            Actor::new("gc", slow_gc::<S>),
            Actor::new("clock", clock::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &SweepCutoffState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        outcomes.expect("gc", &[Outcome::OK])?;
        check_chunks_present(&state.store)
    }
}
