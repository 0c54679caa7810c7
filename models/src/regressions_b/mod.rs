//! Race regressions, part B: backup and reader sessions, manifest updates, forget and prune.
//!
//! One scenario per historical race of the catalogue (pbs.md §8), each over the real store
//! code, in two variants: with every fix in place (must pass) and with exactly one fix reverted
//! through its switch in [`store::regressions::Bug`] (must be caught). [`visit_regressions`]
//! hands all of them, with what exploring them must give, to a [`Visitor`].
//!
//! | scenario | actors | invariant | reverted fix | caught by |
//! |---|---|---|---|---|
//! | [`b3_base_pinning`] | incremental backup, forget of its base, GC | every chunk of a finished snapshot exists (I4) | B3 | PCT 2, PCT 3 |
//! | [`b5_reader_pinning`] | reader, verify, forget | a snapshot in use is not destroyed under its user (I6) | B5 | all (random, PCT 2/3, URW, loom pb2) |
//! | [`b6_prune_locks`] | reader, prune keep-last 1 | as B5, through prune (I6) | B6 | all |
//! | [`b7_manifest_lock`] | reader + snapshot notes, verify | an update that succeeded is kept (I7) | B7 | all |
//! | [`b8_forget_manifest_lock`] | snapshot notes, forget | forget holds the manifest lock: no half-removed snapshot (I7) | B8 | random, PCT 3, URW (a lock time-out is a shuttle coin; not loom) |
//! | [`b15_finish_releases_locks`] | client (two backups in a row), reader | liveness: a backup right after `finish` does not fail busy | B15 | PCT 2/3, URW, loom pb2 |
//! | [`b17_reader_shared_lock`] | reader, incremental backup | liveness: a reader never makes a backup on its snapshot fail | B17 | all |
//! | [`b19_session_locker`] | backup session (process 1), GC (process 2) | I2, and liveness: a started session is never refused by GC of another process | B19 | random, PCT 2/3, URW |
//! | [`b23_cleanup_group`] | failing first backup of a new group, second backup | no orphan group directory | B23 | random, PCT 2/3, loom pb2 |
//! | [`b37_owner_write`] | two first backups of a new group, one meets ENOSPC on its owner write | a later backup of the group succeeds | B37 (upstream 2025-08) | all |
//!
//! "Caught by" lists the explorers that find the reverted variant within 200 executions of
//! seed 1 (loom: its exhaustive search at preemption bound 2); the reverted variant's
//! [`Expect`] names exactly them, and each module says why the others miss. Each module's
//! documentation tells the bug, the interleaving and the fix. The tests and their budgets are
//! in `tests/it/races_b.rs`.

use std::path::Path;

use sim::SimWorld;
use store::backup_info::{BackupDir, BackupGroup, BackupTime};
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::datastore::{Datastore, Error};
use store::index::IndexFile;
use store::regressions::{Bug, Regressions};
use store::sync::SyncFamily;
use store::world::World;

use crate::explore::Explorer;
use crate::scenario::{Outcome, ScenarioError};
pub use crate::scenarios::{Expect, Visitor};

pub mod b15_finish_releases_locks;
pub mod b17_reader_shared_lock;
pub mod b19_session_locker;
pub mod b23_cleanup_group;
pub mod b37_owner_write;
pub mod b3_base_pinning;
pub mod b5_reader_pinning;
pub mod b6_prune_locks;
pub mod b7_manifest_lock;
pub mod b8_forget_manifest_lock;

/// The shuttle schedulers: the explorers that must catch a window that needs a lock time-out
/// (a shuttle coin) or more preemptions than loom's default bound allows.
pub const SHUTTLE_EXPLORERS: &[Explorer] = &[
    Explorer::Random,
    Explorer::Pct { depth: 2 },
    Explorer::Pct { depth: 3 },
    Explorer::Urw,
];

/// Visits every scenario of this module, the fixed variant before the reverted one.
pub fn visit_regressions(visitor: &mut impl Visitor) {
    use b3_base_pinning::BasePinning;
    use b5_reader_pinning::ReaderPinning;
    use b6_prune_locks::PruneLocks;
    use b7_manifest_lock::ManifestLock;
    use b8_forget_manifest_lock::ForgetManifestLock;
    use b15_finish_releases_locks::FinishReleasesLocks;
    use b17_reader_shared_lock::ReaderSharedLock;
    use b19_session_locker::SessionLocker;
    use b23_cleanup_group::CleanupGroup;
    use b37_owner_write::OwnerWrite;

    visitor.visit(&BasePinning::fixed(), Expect::Pass);
    visitor.visit(&BasePinning::reverted(), b3_base_pinning::EXPECT_REVERTED);
    visitor.visit(&ReaderPinning::fixed(), Expect::Pass);
    visitor.visit(
        &ReaderPinning::reverted(),
        b5_reader_pinning::EXPECT_REVERTED,
    );
    visitor.visit(&PruneLocks::fixed(), Expect::Pass);
    visitor.visit(&PruneLocks::reverted(), b6_prune_locks::EXPECT_REVERTED);
    visitor.visit(&ManifestLock::fixed(), Expect::Pass);
    visitor.visit(&ManifestLock::reverted(), b7_manifest_lock::EXPECT_REVERTED);
    visitor.visit(&ForgetManifestLock::fixed(), Expect::Pass);
    visitor.visit(
        &ForgetManifestLock::reverted(),
        b8_forget_manifest_lock::EXPECT_REVERTED,
    );
    visitor.visit(&FinishReleasesLocks::fixed(), Expect::Pass);
    visitor.visit(
        &FinishReleasesLocks::reverted(),
        b15_finish_releases_locks::EXPECT_REVERTED,
    );
    visitor.visit(&ReaderSharedLock::fixed(), Expect::Pass);
    visitor.visit(
        &ReaderSharedLock::reverted(),
        b17_reader_shared_lock::EXPECT_REVERTED,
    );
    visitor.visit(&SessionLocker::fixed(), Expect::Pass);
    visitor.visit(
        &SessionLocker::reverted(),
        b19_session_locker::EXPECT_REVERTED,
    );
    visitor.visit(&CleanupGroup::fixed(), Expect::Pass);
    visitor.visit(
        &CleanupGroup::reverted(),
        b23_cleanup_group::EXPECT_REVERTED,
    );
    visitor.visit(&OwnerWrite::fixed(), Expect::Pass);
    visitor.visit(&OwnerWrite::reverted(), b37_owner_write::EXPECT_REVERTED);
}

/// The owner of every backup in these scenarios.
pub const OWNER: &str = "backup@pam";

/// One day in seconds.
pub const DAY: i64 = 86_400;

/// The regressions of a variant: none, or `bug` reverted.
pub fn reverting(reverted: bool, bug: Bug) -> Regressions {
    if reverted {
        Regressions::none().with(bug)
    } else {
        Regressions::none()
    }
}

/// The name of a variant: `base`, or `base/<bug>-reverted`.
pub fn variant_name(base: &str, reverted: bool, bug: &str) -> String {
    if reverted {
        format!("{base}/{bug}-reverted")
    } else {
        base.to_owned()
    }
}

/// The plain data of the chunk called `name` (distinct names, distinct digests).
pub fn chunk(name: &str) -> Vec<u8> {
    format!("chunk {name} of the race regressions").into_bytes()
}

/// The group `<type>/<id>`.
pub fn group(path: &str) -> Result<BackupGroup, ScenarioError> {
    BackupGroup::from_relative_path(path).map_err(|err| ScenarioError::setup(path, err))
}

/// The snapshot of `group` at `epoch`.
pub fn snapshot_at(group: &BackupGroup, epoch: i64) -> Result<BackupDir, ScenarioError> {
    let time =
        BackupTime::from_epoch(epoch).map_err(|err| ScenarioError::setup("backup time", err))?;
    Ok(BackupDir::new(group.clone(), time))
}

/// Setup step: a finished backup of `dir` with one dynamic archive `root.didx` of `chunks`.
pub fn plant_backup<W: World>(
    store: &Datastore<W>,
    dir: &BackupDir,
    chunks: &[&str],
) -> Result<(), ScenarioError> {
    let archives = [ArchiveSpec::new(
        "root.didx",
        chunks.iter().map(|name| chunk(name)).collect(),
    )];
    backup_snapshot(store, dir, OWNER, &archives)
        .map(drop)
        .map_err(|err| ScenarioError::setup(&format!("the backup of {dir}"), err))
}

/// A datastore at `/ds` opened again by another simulated process of `world` (its own process
/// locker), with the same configuration as `store`.
pub fn open_in_new_process<S: SyncFamily>(
    world: &SimWorld<S>,
    store: &Datastore<SimWorld<S>>,
) -> Result<Datastore<SimWorld<S>>, ScenarioError> {
    Datastore::open(
        world.new_process(),
        Path::new("/ds"),
        store.config().clone(),
    )
    .map_err(|err| ScenarioError::setup("open the datastore in a second process", err))
}

/// The outcome of a failed backup: `busy`, `base-vanished`, or `error: ...`.
pub fn backup_error(err: Error) -> Outcome {
    match err {
        Error::BaseVanished { .. } => Outcome::label("base-vanished"),
        err => Outcome::of::<()>(&Err(err)),
    }
}

/// Reads a whole snapshot through a reader session: the manifest's files, then every chunk of
/// every index. `ok`; `busy` or `not-found` if the session did not open; `lost: ...` if it
/// opened and then could not read something (the snapshot changed under the reader).
pub fn read_snapshot<W: World>(store: &Datastore<W>, dir: &BackupDir) -> Outcome {
    let mut session = match store.open_reader(dir) {
        Ok(session) => session,
        Err(err @ (Error::SnapshotNotFound(_) | Error::Lock(_))) => {
            return Outcome::of::<()>(&Err(err));
        }
        Err(err) => return Outcome::new(format!("lost: open: {err}")),
    };
    let files: Vec<String> = session
        .manifest()
        .files
        .iter()
        .map(|file| file.filename.clone())
        .collect();
    for name in files {
        let index = match session.download(&name) {
            Ok(bytes) => IndexFile::parse(&bytes).ok(),
            Err(err) => return Outcome::new(format!("lost: {name}: {err}")),
        };
        for digest in index.iter().flat_map(|index| index.digests().to_vec()) {
            if let Err(err) = session.read_chunk(&digest) {
                return Outcome::new(format!("lost: chunk of {name}: {err}"));
            }
        }
    }
    Outcome::OK
}

/// The first chunk referenced by an index of a finished snapshot (of any group) that is not in
/// the chunk store, described; `None` if every one is there.
pub fn missing_chunk<W: World>(store: &Datastore<W>) -> Result<Option<String>, ScenarioError> {
    let failed = |what: &str, err: &dyn std::fmt::Display| {
        ScenarioError::violation(format!("cannot check the chunks: {what}: {err}"))
    };
    for group in store.list_groups().map_err(|err| failed("groups", &err))? {
        let snapshots = store
            .list_snapshots(&group)
            .map_err(|err| failed("list", &err))?;
        for info in snapshots.iter().filter(|info| info.finished) {
            let manifest = store
                .load_manifest(&info.dir)
                .map_err(|err| failed("manifest", &err))?;
            let path = store.snapshot_path(&info.dir);
            let indexes = manifest
                .files
                .iter()
                .filter(|file| file.kind().is_some_and(|kind| kind.is_index()));
            for file in indexes {
                let index = IndexFile::open(store.world(), &path.join(&file.filename))
                    .map_err(|err| failed("index", &err))?;
                for digest in index.digests() {
                    let present = store
                        .chunk_store()
                        .chunk_metadata(digest)
                        .map_err(|err| failed("stat chunk", &err))?
                        .is_some();
                    if !present {
                        return Ok(Some(format!(
                            "chunk {} of {} in {}",
                            digest.to_hex(),
                            file.filename,
                            info.dir
                        )));
                    }
                }
            }
        }
    }
    Ok(None)
}
