//! The operations of the locking table, run as real store calls on the standard datastore.
//!
//! `CellState::setup` builds the standard datastore of every cell; `run` runs one operation
//! of a cell in one of its two roles. A running operation opens the cell's gate once it has
//! provably started (for a session: once the session is open), and the starting operation
//! waits for the gate before it begins.

use std::fmt;

use sim::SimWorld;
use store::backup_info::{BackupDir, BackupGroup, BackupTime};
use store::chunk_store::Chunk;
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::datastore::gc::GcOptions;
use store::datastore::prune::PruneOutcome;
use store::datastore::verify::{
    SkipReason, VerifyJob, VerifyOptions, VerifyOutcome, VerifyProblem,
};
use store::datastore::{Datastore, Error};
use store::digest::Digest;
use store::index::IndexFile;
use store::manifest::{ChunkUploadStats, Manifest};
use store::regressions::Regressions;
use store::sync::{Condvar, Mutex, SyncFamily};
use store::world::World;

use super::{CellSpec, Op};
use crate::scenario::{Outcome, ScenarioError};
use crate::scenarios::{new_datastore, prune_keep_last};

/// The owner of the standard group.
pub const OWNER: &str = "backup@pam";
/// The one archive of every snapshot.
pub const ARCHIVE: &str = "root.didx";
/// The notes the running `update_manifest` writes.
pub const RUNNING_NOTES: &str = "notes of the running update";
/// The upload count the starting `update_manifest` writes (a field of its own, so that two
/// successful updates must both be visible).
pub const STARTING_UPLOAD_COUNT: u64 = 4242;

const DAY: i64 = 86_400;

/// Outcome: a backup found its base removed under it.
pub const BASE_VANISHED: Outcome = Outcome::label("base-vanished");
/// Outcome (never allowed): a backup finished ok although its base had vanished before
/// `finish` (I4).
pub const BASE_LOST: Outcome = Outcome::label("finished without its base");
/// Outcome: a backup found its snapshot (or a newer one) already there.
pub const EXISTS: Outcome = Outcome::label("exists");
/// Outcome: forget refused a protected snapshot.
pub const PROTECTED: Outcome = Outcome::label("protected");
/// Outcome: prune could not remove every snapshot it marked (each failure is a warning).
pub const WARNED: Outcome = Outcome::label("warned");
/// Outcome: verify checked everything but could not record its state (manifest lock busy).
pub const STATE_NOT_SAVED: Outcome = Outcome::label("state-not-saved");

/// Which role an operation plays in a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Already running: starts first and opens the gate.
    Running,
    /// Starting: waits for the gate.
    Starting,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Running => "running",
            Role::Starting => "starting",
        })
    }
}

/// The gate: opened by the running operation, awaited by the starting one.
struct Gate<S: SyncFamily> {
    open: Mutex<S, bool>,
    opened: Condvar<S>,
}

impl<S: SyncFamily> Gate<S> {
    fn new() -> Gate<S> {
        Gate {
            open: Mutex::new(false),
            opened: Condvar::new(),
        }
    }

    fn open(&self) {
        let mut open = self.open.lock();
        *open = true;
        drop(open);
        self.opened.notify_all();
    }

    fn wait(&self) {
        let mut open = self.open.lock();
        while !*open {
            open = self.opened.wait(open);
        }
    }
}

/// Opens the gate when dropped, so a running operation that returns early still lets the
/// starting one go.
struct OpenOnDrop<'a, S: SyncFamily>(&'a Gate<S>);

impl<S: SyncFamily> Drop for OpenOnDrop<'_, S> {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// The standard datastore of every cell, and what the actors report beyond their outcome.
///
/// * group `vm/100` (owner [`OWNER`]) with two finished snapshots `S0 < S1`; `S0`'s archive
///   references chunks A and B, `S1`'s (an incremental backup of `S0`) A, B and C;
/// * an unreferenced chunk G, written two days before the snapshots (older than GC's cutoff);
/// * with `aged`, two more days pass after the snapshots, so A, B and C are older than the
///   cutoff too and only GC's mark keeps them (the cells with `gc_mark`); otherwise they are
///   recent and the interesting phase is the sweep deciding about G;
/// * the new snapshot `S2` that `create_index` / `create_backup` write: A, B and C reused from
///   its base, G uploaded again (a duplicate insert that must touch it), E new.
pub struct CellState<S: SyncFamily> {
    pub(super) spec: &'static CellSpec,
    pub(super) store: Datastore<SimWorld<S>>,
    pub(super) group: BackupGroup,
    pub(super) s1: BackupDir,
    pub(super) s2: BackupDir,
    /// The snapshot the snapshot operations (read, update, forget, verify, reader, protect) act
    /// on: `S0` in cells with prune (the snapshot prune removes), `S1` otherwise (the base of a
    /// new backup, the newest snapshot GC lists).
    pub(super) target: BackupDir,
    gate: Gate<S>,
    /// Snapshots prune removed.
    pub(super) pruned: Mutex<S, Vec<BackupDir>>,
    /// Snapshots prune marked for removal although they were the newest finished one or newer
    /// (a running backup's).
    pub(super) wrongly_marked: Mutex<S, Vec<BackupDir>>,
}

/// Plain data of a chunk of the standard datastore.
pub fn chunk(name: &str) -> Vec<u8> {
    format!("chunk {name} of the locking table").into_bytes()
}

fn time(epoch: i64) -> Result<BackupTime, ScenarioError> {
    BackupTime::from_epoch(epoch).map_err(|err| ScenarioError::setup("backup time", err))
}

impl<S: SyncFamily> CellState<S> {
    /// Builds the standard datastore for `spec` in `world`.
    pub(super) fn setup(
        spec: &'static CellSpec,
        world: &SimWorld<S>,
        regressions: Regressions,
    ) -> Result<CellState<S>, ScenarioError> {
        let store = new_datastore(world, regressions)?;
        let garbage = Chunk::from_data(&chunk("G"))
            .map_err(|err| ScenarioError::setup("chunk G", format!("{err:?}")))?;
        store
            .chunk_store()
            .insert_chunk(&garbage)
            .map_err(|err| ScenarioError::setup("insert G", err))?;
        world.advance(2 * DAY);
        let group = BackupGroup::from_relative_path("vm/100")
            .map_err(|err| ScenarioError::setup("group", err))?;
        let s0 = BackupDir::new(group.clone(), time(world.now())?);
        backup_snapshot(
            &store,
            &s0,
            OWNER,
            &[ArchiveSpec::new(ARCHIVE, vec![chunk("A"), chunk("B")])],
        )
        .map_err(|err| ScenarioError::setup("backup S0", err))?;
        world.advance(60);
        let s1 = BackupDir::new(group.clone(), time(world.now())?);
        backup_snapshot(
            &store,
            &s1,
            OWNER,
            &[ArchiveSpec::new(
                ARCHIVE,
                vec![chunk("A"), chunk("B"), chunk("C")],
            )],
        )
        .map_err(|err| ScenarioError::setup("backup S1", err))?;
        if spec.aged() {
            world.advance(2 * DAY);
        } else {
            world.advance(60);
        }
        let s2 = BackupDir::new(group.clone(), time(world.now())?);
        let target = if spec.involves(Op::Prune) {
            s0
        } else {
            s1.clone()
        };
        Ok(CellState {
            spec,
            store,
            group,
            s1,
            s2,
            target,
            gate: Gate::new(),
            pruned: Mutex::new(Vec::new()),
            wrongly_marked: Mutex::new(Vec::new()),
        })
    }

    /// The chunks of `S2`, the new snapshot.
    pub(super) fn new_chunks() -> Vec<Vec<u8>> {
        ["A", "B", "C", "G", "E"]
            .iter()
            .map(|name| chunk(name))
            .collect()
    }
}

/// Runs `op` in `role` on the state: the running role opens the gate once the operation has
/// started, the starting role waits for it first.
pub(super) fn run<S: SyncFamily>(state: &CellState<S>, op: Op, role: Role) -> Outcome {
    let guard = match role {
        Role::Running => Some(OpenOnDrop(&state.gate)),
        Role::Starting => {
            state.gate.wait();
            None
        }
    };
    match op {
        Op::ReadIndex => read_index(state, guard),
        Op::CreateIndex => backup(state, guard, true),
        Op::CreateBackup => backup(state, guard, false),
        Op::GcMark | Op::GcSweep => {
            drop(guard);
            gc(state)
        }
        Op::UpdateManifest => {
            drop(guard);
            update_manifest(state, role)
        }
        Op::Forget => {
            drop(guard);
            forget(state)
        }
        Op::Prune => {
            drop(guard);
            prune(state)
        }
        Op::Verify => {
            drop(guard);
            verify(state)
        }
        Op::Reader => reader(state, guard),
        Op::SetProtection => {
            drop(guard);
            Outcome::of(&state.store.set_protection(&state.target, true))
        }
        Op::OwnerNotes => {
            drop(guard);
            owner_notes(state)
        }
    }
}

fn read_index<S: SyncFamily>(state: &CellState<S>, gate: Option<OpenOnDrop<'_, S>>) -> Outcome {
    let path = state.store.snapshot_path(&state.target).join(ARCHIVE);
    let index = match IndexFile::open(state.store.world(), &path) {
        Ok(index) => index,
        Err(err) if err.is_not_found() => return Outcome::NOT_FOUND,
        Err(err) => return Outcome::error(err),
    };
    drop(gate);
    load_all(state, index.digests())
}

fn load_all<S: SyncFamily>(state: &CellState<S>, digests: &[Digest]) -> Outcome {
    for digest in digests {
        if let Err(err) = state.store.chunk_store().load_chunk(digest) {
            return Outcome::new(format!("chunk unreadable: {err}"));
        }
    }
    Outcome::OK
}

fn backup_error(err: Error) -> Outcome {
    match err {
        Error::BaseVanished { .. } => BASE_VANISHED,
        Error::SnapshotExists(_) | Error::BackupTimeNotNewer { .. } => EXISTS,
        err => Outcome::of::<()>(&Err(err)),
    }
}

/// A backup of `S2` through the session API, as [`backup_snapshot`] does it. The running
/// `create_backup` opens the gate once the session has started (locks taken, base pinned);
/// the running `create_index` once its index writer is open and has the reused chunks and the
/// duplicate G appended (an index being written, not yet published) and two days have passed
/// (a long backup, whose early chunks are older than GC's cutoff).
fn backup<S: SyncFamily>(
    state: &CellState<S>,
    gate: Option<OpenOnDrop<'_, S>>,
    gate_in_index: bool,
) -> Outcome {
    let mut gate = gate;
    let result = (|| -> Result<bool, Error> {
        let mut session = state.store.start_backup(&state.s2, OWNER)?;
        if !gate_in_index {
            drop(gate.take());
        }
        session.previous_index(ARCHIVE)?;
        let writer = session.create_dynamic_index(ARCHIVE)?;
        for (position, data) in CellState::<S>::new_chunks().iter().enumerate() {
            if position == 4 && gate.is_some() {
                // A long backup: two days pass with the index half written, so the chunks
                // appended so far are older than GC's cutoff when the other side starts.
                state.store.world().advance(2 * DAY);
                drop(gate.take());
            }
            let digest = Digest::of(data);
            if !session.is_known(&digest) {
                let chunk = Chunk::from_data(data).map_err(|problem| Error::Protocol {
                    dir: state.s2.clone(),
                    reason: format!("{problem:?}"),
                })?;
                session.upload_chunk(&chunk)?;
            }
            session.append_chunk(&writer, &digest, data.len() as u64)?;
        }
        let info = session.close_index(writer)?;
        let mut manifest = Manifest::new(&state.s2);
        manifest.add_file(info)?;
        // I4: the base exists from the start of the session to its end, or the session fails.
        let base_gone = match session.base().cloned() {
            Some(base) => !state.store.snapshot_exists(&base)?,
            None => false,
        };
        session.finish(manifest)?;
        Ok(base_gone)
    })();
    drop(gate);
    match result {
        Ok(false) => Outcome::OK,
        Ok(true) => BASE_LOST,
        Err(err) => backup_error(err),
    }
}

fn gc<S: SyncFamily>(state: &CellState<S>) -> Outcome {
    let options = GcOptions {
        atime_safety_check: false,
        ..GcOptions::default()
    };
    match state.store.garbage_collection(&options) {
        Err(Error::GcRunning) => Outcome::BUSY,
        result => Outcome::of(&result),
    }
}

fn not_found_or<S: SyncFamily>(state: &CellState<S>, err: Error) -> Outcome {
    match err {
        Error::Manifest(ref inner) if inner.is_not_found() => {
            match state.store.snapshot_exists(&state.target) {
                Ok(false) => Outcome::NOT_FOUND,
                _ => Outcome::error(err),
            }
        }
        err => Outcome::of::<()>(&Err(err)),
    }
}

/// The running update writes the notes, the starting one the upload statistics: two fields,
/// so both successful updates must be visible (I7).
fn update_manifest<S: SyncFamily>(state: &CellState<S>, role: Role) -> Outcome {
    let result = match role {
        Role::Running => state.store.set_snapshot_notes(&state.target, RUNNING_NOTES),
        Role::Starting => state
            .store
            .update_manifest(&state.target, |manifest| {
                manifest.set_chunk_upload_stats(&starting_stats())
            })
            .map(drop),
    };
    match result {
        Ok(()) => Outcome::OK,
        Err(err) => not_found_or(state, err),
    }
}

/// The upload statistics the starting `update_manifest` writes.
pub fn starting_stats() -> ChunkUploadStats {
    ChunkUploadStats {
        count: STARTING_UPLOAD_COUNT,
        ..ChunkUploadStats::default()
    }
}

fn forget<S: SyncFamily>(state: &CellState<S>) -> Outcome {
    match state.store.forget_snapshot(&state.target) {
        Err(Error::Protected(_)) => PROTECTED,
        result => Outcome::of(&result),
    }
}

/// Prune with keep-last 1: removes every finished snapshot but the newest.
fn prune<S: SyncFamily>(state: &CellState<S>) -> Outcome {
    let report = match prune_keep_last(&state.store, &state.group, 1) {
        Ok(report) => report,
        Err(err) => return Outcome::of::<()>(&Err(err)),
    };
    // Entries are newest first: the newest finished snapshot, and every unfinished one
    // listed before it (a running backup), must be kept.
    let newest_finished = report
        .entries
        .iter()
        .position(|entry| entry.info.finished)
        .unwrap_or(report.entries.len());
    let mut outcome = Outcome::OK;
    for (position, entry) in report.entries.iter().enumerate() {
        let wrong = !entry.mark.keep() && position <= newest_finished;
        if wrong {
            state.wrongly_marked.lock().push(entry.info.dir.clone());
        }
        match &entry.outcome {
            PruneOutcome::Removed => state.pruned.lock().push(entry.info.dir.clone()),
            PruneOutcome::NotRemoved(_) => outcome = WARNED,
            PruneOutcome::Kept | PruneOutcome::WouldRemove => {}
        }
    }
    outcome
}

fn verify<S: SyncFamily>(state: &CellState<S>) -> Outcome {
    let options = VerifyOptions {
        ignore_verified: false,
        ..VerifyOptions::default()
    };
    match state
        .store
        .verify_snapshot(&mut VerifyJob::new(), &options, &state.target)
    {
        Ok(VerifyOutcome::Skipped(SkipReason::LockBusy)) => Outcome::BUSY,
        Ok(VerifyOutcome::Skipped(SkipReason::Vanished)) => Outcome::NOT_FOUND,
        Ok(VerifyOutcome::Skipped(reason)) => Outcome::new(format!("skipped: {reason:?}")),
        Ok(VerifyOutcome::Verified { ok: true, .. }) => Outcome::OK,
        Ok(VerifyOutcome::Verified { problems, .. }) => {
            let only_state = problems.iter().all(|problem| {
                matches!(problem, VerifyProblem::StateNotSaved { source } if source.is_contention())
            });
            if only_state {
                STATE_NOT_SAVED
            } else {
                Outcome::new(format!("failed: {problems:?}"))
            }
        }
        Err(err) => Outcome::error(err),
    }
}

/// A reader session on the target: open (the gate opens once it holds its lock), download the
/// index, read every chunk it references, close.
fn reader<S: SyncFamily>(state: &CellState<S>, gate: Option<OpenOnDrop<'_, S>>) -> Outcome {
    let mut session = match state.store.open_reader(&state.target) {
        Ok(session) => session,
        Err(err) => return Outcome::of::<()>(&Err(err)),
    };
    drop(gate);
    let index = match session.open_index(ARCHIVE) {
        Ok(index) => index,
        Err(err) => return Outcome::new(format!("index unreadable in a session: {err}")),
    };
    for digest in index.digests() {
        if let Err(err) = session.read_chunk(digest) {
            return Outcome::new(format!("chunk unreadable in a session: {err}"));
        }
    }
    Outcome::OK
}

fn owner_notes<S: SyncFamily>(state: &CellState<S>) -> Outcome {
    let result = state
        .store
        .set_group_owner(&state.group, OWNER)
        .and_then(|()| state.store.set_group_notes(&state.group, "group notes"));
    Outcome::of(&result)
}
