//! Twins of the GC and chunk-store races of part A: B1 and B13 (a long backup × GC), B4 (two
//! inserts of an old chunk × the sweep), B9 (GC × forget), B18 (GC × a backup job), B20 (a
//! pull × the sweep) and B21 (the sweep × renaming corrupt chunks).

use std::path::Path;
use std::sync::Mutex;

use store::backup_info::{BackupDir, BackupGroup};
use store::chunk_store::BadRename as Renamed;
use store::chunk_store::{ChunkStoreConfig, PrefixFanout, SyncLevel};
use store::datastore::Datastore;
use store::datastore::backup::{ArchiveSpec, BackupSession, backup_snapshot};
use store::datastore::prune::{KeepOptions, PruneOptions, PruneOutcome};
use store::index::DynamicIndexWriter;
use store::manifest::{FileInfo, Manifest};
use store::regressions::{Bug, Regressions};
use store::world::{RealWorld, World};
use store::{Chunk, ChunkStore};

use super::clock::SetBackWorld;
use super::{RealError, RunResult, age_files, chunks_dir, create_datastore, datastore_config};
use super::{new_datastore, verdict};
use super::{race, setup};
use crate::regressions::bad_rename::check_bad_rename;
use crate::regressions::gc_cutoff::check_long_backup;
use crate::regressions::gc_start_list::{self, EXTRA_CHUNKS, check_gc_start_list};
use crate::regressions::gc_vanished::check_gc_vanished;
use crate::regressions::pull_touch::{
    REUSED, UPLOADED, check_pull_touch, first_prefix_chunk, prefix_chunk,
};
use crate::regressions::{DAY, OWNER, run_gc};
use crate::regressions_b::{group, reverting, snapshot_at};
use crate::scenario::{Outcome, Outcomes, ScenarioError};
use crate::scenarios::insert_sweep;

const ARCHIVE: &str = "root.didx";

// ---- B1 and B13: a backup that started two days ago × GC ----

struct LongBackup {
    /// The instance the backup writes through.
    writer_store: Datastore<SetBackWorld>,
    /// The instance GC runs on: the same one (B1) or a second open in this process (B13).
    gc_store: Datastore<SetBackWorld>,
    dir: BackupDir,
    chunk: Chunk,
    more: Vec<Chunk>,
    session: Mutex<Option<BackupSession<SetBackWorld>>>,
}

/// B1: GC on the instance the backup writes through.
pub(super) fn writer_cutoff(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    long_backup_twin(
        scratch,
        reverting(reverted, Bug::B1WriterCutoffIgnored),
        false,
    )
}

/// B13: GC on a second open of the datastore in this process.
pub(super) fn second_open(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    long_backup_twin(
        scratch,
        reverting(reverted, Bug::B13SecondProcessLocker),
        true,
    )
}

fn long_backup_twin(
    scratch: &Path,
    regressions: Regressions,
    second_open: bool,
) -> Result<RunResult, RealError> {
    let state = long_backup_setup(scratch, regressions, second_open)?;
    let outcomes = race(
        &state,
        &[
            ("backup", long_backup),
            ("gc", |s: &LongBackup| run_gc(&s.gc_store)),
        ],
    );
    Ok(verdict(check_long_backup(&state.writer_store, &outcomes)))
}

/// The datastore (opened twice if `second_open`) with the backup that started two days ago and
/// uploaded X then.
fn long_backup_setup(
    scratch: &Path,
    regressions: Regressions,
    second_open: bool,
) -> Result<LongBackup, RealError> {
    // The simulated scenario starts the backup, uploads X and then moves its clock two days
    // on. Here the clock is set back two days while the backup starts (the process locker
    // records the writer's start from the world's clock) and put right before the actors run;
    // X's file gets the access time of its upload two days ago.
    let world = SetBackWorld::new(2 * DAY);
    let config = datastore_config(regressions);
    let writer_store = create_datastore(world.clone(), scratch, config.clone())?;
    let gc_store = if second_open {
        let again = Datastore::open(world.clone(), &scratch.join("ds"), config)
            .map_err(|err| RealError::Setup(ScenarioError::setup("open it again", err)))?;
        let shared = std::sync::Arc::ptr_eq(writer_store.process_locker(), again.process_locker());
        if shared == regressions.is_reverted(Bug::B13SecondProcessLocker) {
            return Err(RealError::Setup(ScenarioError::setup(
                "the second open",
                format!("shares the first one's process locker: {shared}"),
            )));
        }
        again
    } else {
        writer_store.clone()
    };
    let dir = setup(snapshot_at(&setup(group("vm/100"))?, world.now()))?;
    let chunk_of = |data: &[u8]| {
        Chunk::from_data(data).map_err(|err| RealError::Setup(ScenarioError::setup("chunk", err)))
    };
    let chunk = chunk_of(b"chunk X of the long backup")?;
    let more = (1..=4)
        .map(|n| chunk_of(format!("chunk Y{n} of the long backup").as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut session = writer_store
        .start_backup(&dir, OWNER)
        .map_err(|err| RealError::Setup(ScenarioError::setup("start the backup", err)))?;
    session
        .upload_chunk(&chunk)
        .map_err(|err| RealError::Setup(ScenarioError::setup("upload X", err)))?;
    world.set_back(0);
    age_files(&chunks_dir(scratch), world.now() - 2 * DAY)?;
    Ok(LongBackup {
        writer_store,
        gc_store,
        dir,
        chunk,
        more,
        session: Mutex::new(Some(session)),
    })
}

/// The rest of the long backup: four more chunks, the index, finish.
fn long_backup(state: &LongBackup) -> Outcome {
    let taken = state
        .session
        .lock()
        .map(|mut session| session.take())
        .unwrap_or(None);
    let Some(mut session) = taken else {
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
    Outcome::of(&run())
}

// ---- B4: two inserts of an old chunk × sweep ----

struct InsertState {
    store: ChunkStore<RealWorld>,
    chunk: Chunk,
    min_atime: i64,
}

fn insert_actor(state: &InsertState) -> Outcome {
    match state.store.insert_chunk(&state.chunk) {
        Ok(_) => Outcome::OK,
        Err(err) => Outcome::error(err),
    }
}

/// B4: two inserts of an old, unreferenced chunk race the sweep that already found it old.
pub(super) fn insert_sweep_twin(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    let config = ChunkStoreConfig::new(PrefixFanout::SMALL)
        .with_sync_level(SyncLevel::None)
        .with_regressions(reverting(reverted, Bug::B4DuplicateInsertNoTouch));
    let store = ChunkStore::create(RealWorld::new(), &scratch.join("ds"), config)
        .map_err(|err| RealError::Setup(ScenarioError::setup("create the chunk store", err)))?;
    let chunk =
        setup(Chunk::from_data(b"chunk x").map_err(|err| ScenarioError::setup("chunk", err)))?;
    setup(
        store
            .insert_chunk(&chunk)
            .map_err(|err| ScenarioError::setup("the old copy", err)),
    )?;
    // The old copy is three days old and unreferenced; GC's cutoff is one day ago.
    let now = store.world().now();
    age_files(&chunks_dir(scratch), now - 3 * DAY)?;
    let state = InsertState {
        store,
        chunk,
        min_atime: now - DAY,
    };
    let outcomes = race(
        &state,
        &[
            ("insert-1", insert_actor),
            ("insert-2", insert_actor),
            ("sweep", |s: &InsertState| {
                match s.store.sweep_unused_chunks(s.min_atime, s.min_atime) {
                    Ok(_) => Outcome::OK,
                    Err(err) => Outcome::error(err),
                }
            }),
        ],
    );
    Ok(verdict(check_insert_sweep(&state, &outcomes)))
}

/// The check of [`insert_sweep::InsertSweep`], on a bare chunk store (the scenario's own check
/// reads its simulated state, so it is restated here).
fn check_insert_sweep(state: &InsertState, outcomes: &Outcomes) -> Result<(), ScenarioError> {
    for actor in ["insert-1", "insert-2", "sweep"] {
        outcomes.expect(actor, &[Outcome::OK])?;
    }
    let present = state
        .store
        .chunk_metadata(state.chunk.digest())
        .map_err(|err| ScenarioError::violation(format!("stat of the chunk failed: {err}")))?
        .is_some();
    if !present {
        return Err(ScenarioError::violation(insert_sweep::VIOLATION));
    }
    Ok(())
}

// ---- B9: GC × forget of an older snapshot ----

struct Vanishing {
    store: Datastore<RealWorld>,
    old: BackupDir,
}

/// B9: GC lists `S0`, forget removes it, GC must go on.
pub(super) fn gc_vanished(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    let store = new_datastore(scratch, reverting(reverted, Bug::B9GcAbortsOnVanishedIndex))?;
    let group = setup(group("vm/100"))?;
    let now = store.world().now();
    let old = setup(snapshot_at(&group, now - 4 * DAY))?;
    let new = setup(snapshot_at(&group, now - 3 * DAY))?;
    for (dir, data) in [(&old, "chunk of S0"), (&new, "chunk of S1")] {
        let archives = [ArchiveSpec::new(ARCHIVE, vec![data.as_bytes().to_vec()])];
        backup_snapshot(&store, dir, OWNER, &archives)
            .map_err(|err| RealError::Setup(ScenarioError::setup("a snapshot", err)))?;
    }
    // Three days pass in the simulated scenario.
    age_files(&chunks_dir(scratch), now - 3 * DAY)?;
    let state = Vanishing { store, old };
    let outcomes = race(
        &state,
        &[
            ("gc", |s: &Vanishing| run_gc(&s.store)),
            ("forget", |s: &Vanishing| {
                Outcome::of(&s.store.forget_snapshot(&s.old))
            }),
        ],
    );
    Ok(verdict(check_gc_vanished(&state.store, &outcomes)))
}

// ---- B18: GC × an incremental backup and a prune of its base ----

struct StartList {
    store: Datastore<RealWorld>,
    group: BackupGroup,
    next: BackupDir,
}

/// B18: GC marks from its start list while a job backs up `S1` and prunes `S0`.
pub(super) fn gc_start_list(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    let store = new_datastore(scratch, reverting(reverted, Bug::B18GcMarksFromStartList))?;
    let now = store.world().now();
    let group = setup(group("vm/100"))?;
    let base = setup(snapshot_at(&group, now - 3 * DAY))?;
    let planted = |dir: &BackupDir, chunks: Vec<Vec<u8>>| {
        backup_snapshot(&store, dir, OWNER, &[ArchiveSpec::new(ARCHIVE, chunks)])
            .map(drop)
            .map_err(|err| RealError::Setup(ScenarioError::setup("a snapshot", err)))
    };
    planted(
        &base,
        vec![gc_start_list::chunk("A"), gc_start_list::chunk("B")],
    )?;
    let other = setup(snapshot_at(
        &setup(crate::regressions_b::group("ct/200"))?,
        now - 3 * DAY,
    ))?;
    planted(
        &other,
        (0..EXTRA_CHUNKS)
            .map(|n| format!("chunk {n} of ct/200").into_bytes())
            .collect(),
    )?;
    // Three days pass in the simulated scenario.
    age_files(&chunks_dir(scratch), now - 3 * DAY)?;
    let next = setup(snapshot_at(&group, now))?;
    let state = StartList { store, group, next };
    let outcomes = race(
        &state,
        &[
            ("gc", |s: &StartList| run_gc(&s.store)),
            ("job", backup_job),
        ],
    );
    Ok(verdict(check_gc_start_list(&state.store, &outcomes)))
}

/// The backup job: `S1` reusing A and B, then a prune of the group with keep-last 1.
fn backup_job(state: &StartList) -> Outcome {
    let chunks = ["A", "B", "C"].map(gc_start_list::chunk).to_vec();
    let archives = [ArchiveSpec::new(ARCHIVE, chunks)];
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

// ---- B20: a pull that reuses an old chunk × the sweep ----

struct Pull {
    store: Datastore<RealWorld>,
    chunk: Chunk,
    min_atime: i64,
    dir: BackupDir,
}

/// B20: the pull's "present?" touch × the sweep's stat → unlink of the same chunk.
pub(super) fn pull_touch(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    let store = new_datastore(scratch, reverting(reverted, Bug::B20TouchOutsideMutex))?;
    let chunk = setup(first_prefix_chunk(store.chunk_store(), "pulled chunk"))?;
    store
        .chunk_store()
        .insert_chunk(&chunk)
        .map_err(|err| RealError::Setup(ScenarioError::setup("the old copy", err)))?;
    // Three days pass in the simulated scenario: X is older than the cutoff.
    let now = store.world().now();
    age_files(&chunks_dir(scratch), now - 3 * DAY)?;
    let dir = setup(snapshot_at(&setup(group("vm/100"))?, now))?;
    let state = Pull {
        store,
        chunk,
        min_atime: now - DAY,
        dir,
    };
    let outcomes = race(
        &state,
        &[
            ("sweep", |s: &Pull| {
                let chunks = s.store.chunk_store();
                match chunks.sweep_unused_chunks(s.min_atime, s.min_atime) {
                    Ok(_) => Outcome::OK,
                    Err(err) => Outcome::error(err),
                }
            }),
            ("pull", pull),
        ],
    );
    Ok(verdict(check_pull_touch(&state.store, &outcomes)))
}

/// The pull: reuse X if the touch says it is present, else upload it; then `S1`'s index and
/// manifest.
fn pull(state: &Pull) -> Outcome {
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
        let mut writer = DynamicIndexWriter::create(*world, &path, ARCHIVE)?;
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

// ---- B21: sweep × renaming corrupt chunks to `.bad` ----

struct Renaming {
    store: Datastore<RealWorld>,
    digests: [store::Digest; 2],
    min_atime: i64,
}

/// B21: the sweep × renaming two corrupt chunks to `.bad`.
pub(super) fn bad_rename_twin(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    let store = new_datastore(scratch, reverting(reverted, Bug::B21RenameOutsideMutex))?;
    let chunks = store.chunk_store();
    let last = chunks.config().fanout.dir_count() - 1;
    let digests = [
        *setup(prefix_chunk(chunks, "corrupt chunk", 0))?.digest(),
        *setup(prefix_chunk(chunks, "corrupt chunk", last))?.digest(),
    ];
    for digest in &digests {
        std::fs::write(chunks.chunk_path(digest), b"not a blob at all")
            .map_err(|err| RealError::Setup(ScenarioError::setup("write the chunk file", err)))?;
    }
    // Three days pass in the simulated scenario: both files are older than the cutoff.
    let now = store.world().now();
    age_files(&chunks_dir(scratch), now - 3 * DAY)?;
    let state = Renaming {
        store,
        digests,
        min_atime: now - DAY,
    };
    let outcomes = race(
        &state,
        &[
            ("sweep", |s: &Renaming| {
                let chunks = s.store.chunk_store();
                match chunks.sweep_unused_chunks(s.min_atime, s.min_atime) {
                    Ok(_) => Outcome::OK,
                    Err(err) => Outcome::error(err),
                }
            }),
            ("verify", |s: &Renaming| {
                let mut labels = Vec::new();
                for digest in &s.digests {
                    labels.push(
                        match s.store.chunk_store().rename_chunk_if_corrupt(digest) {
                            Ok(Renamed::Renamed(_)) => "renamed",
                            Ok(Renamed::Vanished) => "vanished",
                            Ok(Renamed::Intact) => "intact",
                            Err(err) => return Outcome::error(err),
                        },
                    );
                }
                Outcome::new(labels.join(" "))
            }),
        ],
    );
    Ok(verdict(check_bad_rename(&outcomes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Outcomes;

    /// GC runs to its end before the backup goes on: the order that loses X unless GC's cutoff
    /// respects the writer that started two days ago (set back clock) and GC sees that writer
    /// (one process locker). Deterministic, so the B1 and B13 twins are shown to be able to fail.
    #[test]
    fn gc_before_the_backup_loses_x_only_with_a_fix_reverted() {
        for (bug, second_open) in [
            (Bug::B1WriterCutoffIgnored, false),
            (Bug::B13SecondProcessLocker, true),
        ] {
            for reverted in [false, true] {
                let scratch = super::super::Scratch::new().unwrap();
                let state = long_backup_setup(&scratch.path, reverting(reverted, bug), second_open)
                    .unwrap();
                let gc = run_gc(&state.gc_store);
                let backup = long_backup(&state);
                let outcomes = Outcomes::new(vec![("backup", backup), ("gc", gc)]);
                let check = check_long_backup(&state.writer_store, &outcomes);
                match (reverted, check) {
                    (false, Ok(())) => {}
                    (true, Err(err)) => {
                        assert!(
                            err.to_string().contains(crate::regressions::MISSING_CHUNK),
                            "{bug:?}: {err}"
                        );
                    }
                    (reverted, check) => {
                        panic!("{bug:?} reverted {reverted}: {check:?}")
                    }
                }
            }
        }
    }
}
