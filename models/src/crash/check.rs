//! The recovery check: what must hold in a world after a crash (or after a failed operation).

use std::path::Path;
use std::time::Duration;

use sim::SimWorld;
use store::backup_info::{BackupDir, BackupTime};
use store::chunk_store::{ChunkName, SyncLevel};
use store::datastore::backup::backup_snapshot;
use store::datastore::gc::{GC_CUTOFF_MIN, GcOptions};
use store::datastore::verify::{VerifyJob, VerifyOptions};
use store::datastore::{Datastore, Error, SnapshotInfo};
use store::index::ArchiveKind;
use store::regressions::Regressions;
use store::sync::SyncFamily;
use store::world::{FileKind, World};

pub use super::workloads::Expectations;
use super::workloads::{DAY, OWNER, ROOT, archives, config, group};

/// How much a recovered world must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// Everything: the store opens, every finished snapshot is intact, the expectations hold,
    /// GC works, forget removes every unfinished snapshot, the next backup of each group
    /// works, GC two days later loses nothing referenced and cleans temporary chunk files.
    Full,
    /// Only that nothing panics and the store opens: sync level `none` after a power loss,
    /// where nothing is promised about data.
    NoPanic,
}

impl Strictness {
    /// What a crash image promises at `level`: at level `none` only a process crash (every
    /// operation kept) is survived; at the durable levels every crash state is.
    pub fn for_crash(level: SyncLevel, process_crash: bool) -> Strictness {
        if level == SyncLevel::None && !process_crash {
            Strictness::NoPanic
        } else {
            Strictness::Full
        }
    }
}

/// Counters of one recovery check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Finished snapshots found (and checked).
    pub finished: usize,
    /// Unfinished snapshot directories found before the recovery backup.
    pub unfinished: usize,
    /// Groups whose owner had to be set again before the recovery backup.
    pub owner_reset: usize,
    /// The snapshots the recovery backups made (reported finished).
    pub backups: Vec<BackupDir>,
}

/// Checks `world` (a recovered crash image, or a live world after a failed operation) as the
/// [`crate::crash`] documentation describes; the error names the first violation.
pub fn check_recovered<S: SyncFamily>(
    world: &SimWorld<S>,
    level: SyncLevel,
    regressions: Regressions,
    strictness: Strictness,
    expect: &Expectations,
) -> Result<Recovered, String> {
    let store = Datastore::open(world.clone(), Path::new(ROOT), config(level, regressions))
        .map_err(|err| format!("the store does not open: {err}"))?;
    check_store(&store, strictness, expect)
}

/// [`check_recovered`] on an open datastore: the same process going on after a failed
/// operation (the store keeps what it knows in memory, such as chunks whose directory fsync
/// failed).
pub fn check_store<S: SyncFamily>(
    store: &Datastore<SimWorld<S>>,
    strictness: Strictness,
    expect: &Expectations,
) -> Result<Recovered, String> {
    let world = store.world();
    let full = strictness == Strictness::Full;
    let mut recovered = Recovered::default();

    // Expectations first: the checks below write verify states and run GC.
    let listed = list_all(store)?;
    let finished = |dir: &BackupDir| listed.iter().any(|info| info.dir == *dir && info.finished);
    if full {
        for dir in &expect.keep {
            if !finished(dir) {
                return Err(format!(
                    "lost snapshot: {dir} was reported finished and is gone"
                ));
            }
        }
        for dir in &expect.gone {
            if store
                .snapshot_exists(dir)
                .map_err(|err| format!("stat {dir}: {err}"))?
            {
                return Err(format!("{dir} was reported removed and is back"));
            }
        }
        for (dir, notes) in &expect.notes {
            let manifest = store
                .load_manifest(dir)
                .map_err(|err| format!("manifest of {dir}: {err}"))?;
            if manifest.notes().ok().flatten() != Some(notes.as_str()) {
                return Err(format!("{dir}: the notes reported set are lost"));
            }
        }
        for dir in &expect.protected {
            if !listed.iter().any(|info| info.dir == *dir && info.protected) {
                return Err(format!("{dir}: the protection reported set is lost"));
            }
        }
        for dir in &expect.verified {
            let manifest = store
                .load_manifest(dir)
                .map_err(|err| format!("manifest of {dir}: {err}"))?;
            if !matches!(manifest.verify_state(), Ok(Some(_))) {
                return Err(format!("{dir}: the verify state reported saved is lost"));
            }
        }
    }

    // Every finished snapshot is intact: verify passes and every chunk reads back.
    for info in listed.iter() {
        if !info.finished {
            recovered.unfinished += 1;
            continue;
        }
        recovered.finished += 1;
        let intact = check_intact(store, &info.dir);
        if full {
            intact.map_err(|err| format!("finished snapshot {} is damaged: {err}", info.dir))?;
        }
    }

    // GC right after recovery (default cutoff: nothing recent goes) marks past whatever the
    // crash left, damaged indexes of unfinished snapshots included.
    let gc = store.garbage_collection(&GcOptions::default());
    if full {
        gc.map_err(|err| format!("GC right after recovery failed: {err}"))?;
    }

    // The administrator's cleanup: forget removes every unfinished snapshot.
    for info in list_all(store)?.iter().filter(|info| !info.finished) {
        let forgotten = store.forget_snapshot(&info.dir);
        if full {
            forgotten.map_err(|err| format!("forget of the unfinished {}: {err}", info.dir))?;
        }
    }

    // The next backup of each group, and of the workloads' group, works (it may reuse chunks
    // the crash or the failed operation left behind).
    world.advance(60);
    let mut groups = store
        .list_groups()
        .map_err(|err| format!("list groups: {err}"))?;
    if !groups.contains(&group()) {
        groups.push(group());
    }
    for group in groups {
        let time = BackupTime::from_epoch(world.now()).map_err(|err| err.to_string())?;
        let dir = BackupDir::new(group.clone(), time);
        let mut backup = backup_snapshot(store, &dir, OWNER, &archives(&["A", "R"], false));
        if let Err(Error::NoOwner(_)) = backup {
            // A crash can leave a group directory whose owner file is gone while the
            // directory itself is not (its removal stopped half-way): the administrator's
            // recovery step is to set the owner again.
            recovered.owner_reset += 1;
            let reset = store.set_group_owner(&group, OWNER);
            if full {
                reset.map_err(|err| format!("set the owner of {group}: {err}"))?;
            }
            backup = backup_snapshot(store, &dir, OWNER, &archives(&["A", "R"], false));
        }
        if !full {
            continue;
        }
        backup.map_err(|err| format!("the backup after recovery of {group} failed: {err}"))?;
        check_intact(store, &dir).map_err(|err| format!("the backup after recovery: {err}"))?;
        recovered.backups.push(dir);
    }

    // GC two days later loses nothing referenced and cleans temporary chunk files.
    world.advance(2 * DAY);
    let options = GcOptions {
        cutoff: RECOVERY_GC_CUTOFF,
        ..GcOptions::default()
    };
    let gc = store.garbage_collection(&options);
    if full {
        gc.map_err(|err| format!("GC after recovery failed: {err}"))?;
        for info in list_all(store)?.iter().filter(|info| info.finished) {
            check_intact(store, &info.dir)
                .map_err(|err| format!("GC after recovery damaged {}: {err}", info.dir))?;
        }
        if let Some(temp) = chunk_temp_files(store)?.first() {
            return Err(format!("GC left the temporary chunk file {temp}"));
        }
    }
    Ok(recovered)
}

/// Every snapshot of every group.
fn list_all<W: World>(store: &Datastore<W>) -> Result<Vec<SnapshotInfo>, String> {
    let mut all = Vec::new();
    for group in store
        .list_groups()
        .map_err(|err| format!("list groups: {err}"))?
    {
        all.extend(
            store
                .list_snapshots(&group)
                .map_err(|err| format!("list {group}: {err}"))?,
        );
    }
    Ok(all)
}

/// A finished snapshot is intact: verify finds nothing wrong, and a reader reads every file
/// and every chunk of every index.
pub fn check_intact<W: World>(store: &Datastore<W>, dir: &BackupDir) -> Result<(), String> {
    let options = VerifyOptions {
        ignore_verified: false,
        ..VerifyOptions::default()
    };
    let outcome = store
        .verify_snapshot(&mut VerifyJob::new(), &options, dir)
        .map_err(|err| format!("verify: {err}"))?;
    if !outcome.is_ok() {
        let problems: Vec<String> = outcome.problems().iter().map(ToString::to_string).collect();
        return Err(format!("verify: {outcome:?} {}", problems.join("; ")));
    }
    let mut reader = store
        .open_reader(dir)
        .map_err(|err| format!("open reader: {err}"))?;
    let files = reader.manifest().files.clone();
    for file in &files {
        match file.kind() {
            Some(ArchiveKind::Blob) => {
                reader
                    .download(&file.filename)
                    .map_err(|err| format!("{}: {err}", file.filename))?;
            }
            Some(_) => {
                let index = reader
                    .open_index(&file.filename)
                    .map_err(|err| format!("{}: {err}", file.filename))?;
                for digest in index.digests() {
                    reader
                        .read_chunk(digest)
                        .map_err(|err| format!("chunk of {}: {err}", file.filename))?;
                }
            }
            None => return Err(format!("{} is no archive", file.filename)),
        }
    }
    Ok(())
}

/// Temporary chunk files left in the chunk store.
fn chunk_temp_files<W: World>(store: &Datastore<W>) -> Result<Vec<String>, String> {
    let chunks = store.base().join(".chunks");
    let mut temps = Vec::new();
    let prefixes = store
        .world()
        .read_dir(&chunks)
        .map_err(|err| format!("readdir: {err}"))?;
    for prefix in prefixes.iter().filter(|entry| entry.kind == FileKind::Dir) {
        let dir = chunks.join(&prefix.name);
        for entry in store
            .world()
            .read_dir(&dir)
            .map_err(|err| format!("readdir: {err}"))?
        {
            let name = entry.name.to_string_lossy();
            if ChunkName::parse(&name).is_none() && name.contains(".tmp_") {
                temps.push(dir.join(&entry.name).display().to_string());
            }
        }
    }
    Ok(temps)
}

/// The GC cutoff the recovery check uses: anything untouched for a minute goes.
pub const RECOVERY_GC_CUTOFF: Duration = GC_CUTOFF_MIN;
