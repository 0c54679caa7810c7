//! The liveness phase after every execution: with every actor done, the store must still be
//! able to do its work and must have cleaned up after it.
//!
//! In order: every group and snapshot lock can be taken at once (nothing holds one); after the
//! clock moves three days, a GC with the smallest cutoff succeeds; a backup of every group of
//! the case succeeds; a verify of every finished snapshot succeeds and saves its state; no
//! temporary file is left anywhere under the datastore; and the chunk store holds exactly the
//! chunks some index references (the GC removed every other one, none referenced is gone). A
//! "busy", an error or a leftover fails the execution with what it was.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use sim::SimWorld;
use store::backup_info::{BackupDir, BackupGroup, BackupTime};
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::datastore::gc::GcOptions;
use store::datastore::verify::{VerifyJob, VerifyOptions, VerifyOutcome};
use store::datastore::{Datastore, Error, SnapshotInfo};
use store::digest::Digest;
use store::index::{ArchiveKind, IndexFile};
use store::sync::SyncFamily;
use store::world::{FileKind, LockMode, World};

use super::case::{OWNER, chunk_data};

/// How far the clock moves before the phase's GC: past every cutoff the cases draw.
pub const ADVANCE: i64 = 3 * super::case::DAY;

/// Runs the liveness phase on `store` (whose world is the execution's) for the case's
/// `groups`; `Err` names the first thing that did not hold.
pub fn check<S: SyncFamily>(
    store: &Datastore<SimWorld<S>>,
    groups: &[BackupGroup],
) -> Result<(), String> {
    no_lock_held(store).map_err(|err| fail("a lock is still held", &err))?;
    store.world().advance(ADVANCE);
    let options = GcOptions {
        cutoff: Duration::from_secs(60),
        atime_safety_check: false,
        ..GcOptions::default()
    };
    store
        .garbage_collection(&options)
        .map_err(|err| fail("GC", &err))?;
    let now = store.world().now();
    for (index, group) in groups.iter().enumerate() {
        let time = BackupTime::from_epoch(now + index as i64).map_err(|err| fail("time", &err))?;
        let dir = BackupDir::new(group.clone(), time);
        let archive = ArchiveSpec::new("liveness.didx", vec![chunk_data(0)]);
        backup_snapshot(store, &dir, OWNER, &[archive])
            .map_err(|err| fail(&format!("backup {dir}"), &err))?;
    }
    let options = VerifyOptions {
        ignore_verified: false,
        ..VerifyOptions::default()
    };
    for info in all_snapshots(store)?.iter().filter(|info| info.finished) {
        match store.verify_snapshot(&mut VerifyJob::new(), &options, &info.dir) {
            Ok(VerifyOutcome::Verified { ok: true, .. }) => {}
            other => return Err(fail(&format!("verify {}", info.dir), &format!("{other:?}"))),
        }
    }
    if let Some(path) = temporary_file(store.world(), store.base())? {
        return Err(fail("a temporary file is left", &path));
    }
    chunks_match_references(store)
}

fn fail(what: &str, err: &dyn std::fmt::Display) -> String {
    format!("liveness: {what}: {err}")
}

/// Every snapshot of every group, finished or not.
fn all_snapshots<W: World>(store: &Datastore<W>) -> Result<Vec<SnapshotInfo>, String> {
    let mut all = Vec::new();
    for group in store
        .list_groups()
        .map_err(|err| fail("list groups", &err))?
    {
        let snapshots = store
            .list_snapshots(&group)
            .map_err(|err| fail("list snapshots", &err))?;
        all.extend(snapshots);
    }
    Ok(all)
}

/// Every group lock and every snapshot lock can be taken exclusively without waiting.
fn no_lock_held<W: World>(store: &Datastore<W>) -> Result<(), Error> {
    for group in store.list_groups()? {
        drop(store.lock_group(&group)?);
        for info in store.list_snapshots(&group)? {
            drop(store.lock_snapshot(&info.dir, LockMode::Exclusive)?);
        }
    }
    Ok(())
}

/// The first file under `dir` with a temporary name (`*.tmp_*`, `*tmp_didx`, `*tmp_fidx`).
fn temporary_file<W: World>(world: &W, dir: &Path) -> Result<Option<String>, String> {
    let entries = world
        .read_dir(dir)
        .map_err(|err| format!("liveness: list {}: {err}", dir.display()))?;
    for entry in entries {
        let path = dir.join(&entry.name);
        let name = entry.name.to_string_lossy();
        if name.contains(".tmp_") || name.ends_with("tmp_didx") || name.ends_with("tmp_fidx") {
            return Ok(Some(path.display().to_string()));
        }
        if entry.kind == FileKind::Dir
            && let Some(found) = temporary_file(world, &path)?
        {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The chunk store holds exactly the chunks the indexes of the snapshots reference.
fn chunks_match_references<W: World>(store: &Datastore<W>) -> Result<(), String> {
    let mut referenced = BTreeSet::new();
    for info in all_snapshots(store)? {
        let path = store.snapshot_path(&info.dir);
        let entries = store
            .world()
            .read_dir(&path)
            .map_err(|err| fail("list a snapshot", &err))?;
        for entry in entries {
            let is_index = entry
                .name_str()
                .and_then(ArchiveKind::from_name)
                .is_some_and(|kind| kind.is_index());
            if !is_index {
                continue;
            }
            let index = IndexFile::open(store.world(), &path.join(&entry.name))
                .map_err(|err| fail(&format!("index {}", path.display()), &err))?;
            referenced.extend(index.digests().iter().copied());
        }
    }
    let mut stored = BTreeSet::new();
    let chunks = store.chunk_store().base().join(".chunks");
    let world = store.world();
    for prefix in world
        .read_dir(&chunks)
        .map_err(|err| fail("list .chunks", &err))?
    {
        let dir = chunks.join(&prefix.name);
        for entry in world
            .read_dir(&dir)
            .map_err(|err| fail("list chunks", &err))?
        {
            let name = entry.name.to_string_lossy();
            match Digest::from_hex(&name) {
                Some(digest) => {
                    stored.insert(digest);
                }
                None => {
                    return Err(fail(
                        "a stray file among the chunks",
                        &dir.join(&*name).display(),
                    ));
                }
            }
        }
    }
    if let Some(gone) = referenced.difference(&stored).next() {
        return Err(fail("a referenced chunk is gone", &gone.to_hex()));
    }
    if let Some(left) = stored.difference(&referenced).next() {
        return Err(fail("an unreferenced chunk survived GC", &left.to_hex()));
    }
    Ok(())
}
