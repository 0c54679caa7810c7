//! The bounded workloads of the crash tests: a setup (made durable before the workload starts)
//! and one store operation, each a short deterministic sequence in a `SimWorld<StdSync>`.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use sim::SimWorld;
use store::backup_info::{BackupDir, BackupGroup, BackupTime};
use store::chunk_store::{ChunkStoreConfig, PrefixFanout, SyncLevel};
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::datastore::gc::GcOptions;
use store::datastore::prune::PruneOutcome;
use store::datastore::verify::{VerifyJob, VerifyOptions};
use store::datastore::{Datastore, DatastoreConfig, Error};
use store::regressions::Regressions;
use store::sync::{StdSync, SyncFamily};
use store::world::{OpenOptions, World, WorldFile};

use crate::scenarios::prune_keep_last;

/// Base directory of the datastore in every crash world.
pub const ROOT: &str = "/ds";

/// Owner of every backup the crash tests make.
pub const OWNER: &str = "crash@pbs";

/// Seconds in a day.
pub(crate) const DAY: i64 = 86_400;

/// The notes [`Workload::UpdateManifest`] sets.
pub const NOTES: &str = "written by the crash workload";

/// One bounded workload: what the setup builds and which operation then runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Workload {
    /// A first backup of a new group: a dynamic index, a fixed index and a blob.
    Backup,
    /// An incremental backup reusing two chunks of its base and uploading one.
    IncrementalBackup,
    /// Forget of the older of two snapshots (which share chunks).
    Forget,
    /// Prune keep-last 1 of a group of three snapshots.
    Prune,
    /// GC two days after a forget: unreferenced chunks and a stale temporary chunk file go,
    /// the chunks of the remaining snapshot stay.
    Gc,
    /// Verify of every snapshot (records the verify state in each manifest).
    Verify,
    /// Notes of a snapshot set through `update_manifest`.
    UpdateManifest,
    /// Protection of a snapshot set.
    SetProtection,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 8] = [
        Workload::Backup,
        Workload::IncrementalBackup,
        Workload::Forget,
        Workload::Prune,
        Workload::Gc,
        Workload::Verify,
        Workload::UpdateManifest,
        Workload::SetProtection,
    ];

    /// Short name, as the report prints it.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Backup => "backup",
            Workload::IncrementalBackup => "incremental-backup",
            Workload::Forget => "forget",
            Workload::Prune => "prune",
            Workload::Gc => "gc",
            Workload::Verify => "verify",
            Workload::UpdateManifest => "update-manifest",
            Workload::SetProtection => "set-protection",
        }
    }

    /// The workload called `name`.
    pub fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL
            .into_iter()
            .find(|workload| workload.name() == name)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Name of a sync level, as the report prints it.
pub fn level_name(level: SyncLevel) -> &'static str {
    match level {
        SyncLevel::None => "none",
        SyncLevel::File => "file",
        SyncLevel::Filesystem => "filesystem",
    }
}

/// The datastore configuration of the crash worlds.
pub fn config(level: SyncLevel, regressions: Regressions) -> DatastoreConfig {
    let chunk_store = ChunkStoreConfig::new(PrefixFanout::SMALL)
        .with_sync_level(level)
        .with_regressions(regressions);
    let mut config = DatastoreConfig::new(chunk_store);
    config.manifest_lock_timeout = Duration::from_millis(10);
    config
}

/// The plain data of a named test chunk.
pub(crate) fn chunk(name: &str) -> Vec<u8> {
    format!("crash test chunk {name}").into_bytes()
}

/// A fixed-size chunk of 64 bytes (fixed indexes need a power-of-two chunk size).
fn block(name: &str) -> Vec<u8> {
    let mut data = chunk(name);
    data.resize(64, b'.');
    data
}

/// The group every workload uses.
pub(crate) fn group() -> BackupGroup {
    BackupGroup::from_relative_path("vm/100").expect("vm/100 is a valid group")
}

/// The snapshot of [`group`] at the world's current time.
pub(crate) fn snapshot_now<S: SyncFamily>(world: &SimWorld<S>) -> Result<BackupDir, String> {
    let time = BackupTime::from_epoch(world.now()).map_err(|err| format!("backup time: {err}"))?;
    Ok(BackupDir::new(group(), time))
}

/// Archives of a backup: `root.didx` of `chunks`, plus with `full` a fixed index and a blob.
pub(crate) fn archives(chunks: &[&str], full: bool) -> Vec<ArchiveSpec> {
    let mut archives = vec![ArchiveSpec::new(
        "root.didx",
        chunks.iter().map(|name| chunk(name)).collect(),
    )];
    if full {
        archives.push(ArchiveSpec::new(
            "disk.fidx",
            vec![block("D1"), block("D2")],
        ));
        archives.push(ArchiveSpec::new("conf.blob", vec![chunk("config")]));
    }
    archives
}

/// The state a workload starts from.
pub struct Fixture {
    /// The world (process 1).
    pub world: SimWorld<StdSync>,
    /// The datastore, open.
    pub store: Datastore<SimWorld<StdSync>>,
    /// Which workload.
    pub workload: Workload,
    /// Snapshots made by the setup, oldest first.
    pub snapshots: Vec<BackupDir>,
    /// The snapshot the workload creates, if it does.
    pub next: Option<BackupDir>,
}

/// Builds the setup of `workload` in a fresh world and makes it durable (one `syncfs`), so that
/// every crash point afterwards belongs to the workload.
pub fn prepare(
    workload: Workload,
    level: SyncLevel,
    regressions: Regressions,
    seed: u64,
) -> Result<Fixture, String> {
    let world = SimWorld::<StdSync>::new(seed);
    let store = Datastore::create(world.clone(), Path::new(ROOT), config(level, regressions))
        .map_err(|err| format!("create the datastore: {err}"))?;
    let mut snapshots = Vec::new();
    let mut backup = |names: &[&str]| -> Result<(), String> {
        let dir = snapshot_now(&world)?;
        backup_snapshot(&store, &dir, OWNER, &archives(names, true))
            .map_err(|err| format!("setup backup {dir}: {err}"))?;
        snapshots.push(dir);
        world.advance(3_600);
        Ok(())
    };
    match workload {
        Workload::Backup => {}
        Workload::IncrementalBackup | Workload::UpdateManifest | Workload::SetProtection => {
            backup(&["A", "B"])?;
        }
        Workload::Forget | Workload::Verify => {
            backup(&["A", "B"])?;
            backup(&["B", "C"])?;
        }
        Workload::Prune => {
            backup(&["A", "B"])?;
            backup(&["B", "C"])?;
            backup(&["C", "E"])?;
        }
        Workload::Gc => {
            backup(&["A", "B"])?;
            backup(&["B", "C"])?;
            store
                .forget_snapshot(&snapshots[0])
                .map_err(|err| format!("setup forget: {err}"))?;
            snapshots.remove(0);
            // A crash's leftover: a temporary chunk file nobody will rename.
            let digest = store::Digest::of(b"leftover");
            let temp = store
                .chunk_store()
                .prefix_dir(&digest)
                .join(format!("{digest}.tmp_00000000deadbeef"));
            let file = world
                .open(&temp, OpenOptions::create_new())
                .map_err(|err| format!("plant a temporary chunk: {err}"))?;
            file.write_at(0, b"half a chunk")
                .map_err(|err| format!("write: {err}"))?;
            drop(file);
            world.advance(2 * DAY);
        }
    }
    world
        .syncfs(Path::new("/"))
        .map_err(|err| format!("setup syncfs: {err}"))?;
    world.advance(60);
    let next = matches!(workload, Workload::Backup | Workload::IncrementalBackup)
        .then(|| snapshot_now(&world))
        .transpose()?;
    Ok(Fixture {
        world,
        store,
        workload,
        snapshots,
        next,
    })
}

/// What the workload's operation reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    /// It succeeded.
    Ok,
    /// It failed with this (typed) error.
    Failed(String),
}

impl Reported {
    fn of<T>(result: Result<T, Error>) -> Reported {
        match result {
            Ok(_) => Reported::Ok,
            Err(err) => Reported::Failed(err.to_string()),
        }
    }

    /// Did the operation succeed?
    pub fn is_ok(&self) -> bool {
        *self == Reported::Ok
    }
}

/// What an operation's report promises about the store after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectations {
    /// Snapshots that must be finished and intact.
    pub keep: Vec<BackupDir>,
    /// Snapshots that must not exist (their removal was reported).
    pub gone: Vec<BackupDir>,
    /// Snapshots whose manifest must carry these notes.
    pub notes: Vec<(BackupDir, String)>,
    /// Snapshots that must be protected.
    pub protected: Vec<BackupDir>,
    /// Snapshots whose manifest must carry a verify state.
    pub verified: Vec<BackupDir>,
}

/// Runs the workload's operation and returns what it reported, with what must hold afterwards
/// (in the same world, or after a crash if the level promises durability).
pub fn run(fixture: &Fixture) -> (Reported, Expectations) {
    let store = &fixture.store;
    let mut expect = Expectations::default();
    let snapshots = &fixture.snapshots;
    let reported = match fixture.workload {
        Workload::Backup | Workload::IncrementalBackup => {
            let Some(next) = &fixture.next else {
                return (Reported::Failed("no snapshot to write".into()), expect);
            };
            let full = fixture.workload == Workload::Backup;
            let names: &[&str] = if full {
                &["A", "B", "C"]
            } else {
                &["A", "B", "C", "E"]
            };
            let reported =
                Reported::of(backup_snapshot(store, next, OWNER, &archives(names, full)));
            expect.keep.extend(snapshots.iter().cloned());
            if reported.is_ok() {
                expect.keep.push(next.clone());
            }
            reported
        }
        Workload::Forget => {
            let reported = Reported::of(store.forget_snapshot(&snapshots[0]));
            expect.keep.push(snapshots[1].clone());
            if reported.is_ok() {
                expect.gone.push(snapshots[0].clone());
            }
            reported
        }
        Workload::Prune => match prune_keep_last(store, &group(), 1) {
            Ok(report) => {
                expect.keep.push(snapshots[2].clone());
                expect.gone.extend(report.removed().cloned());
                let failed: Vec<String> = report
                    .entries
                    .iter()
                    .filter_map(|entry| match &entry.outcome {
                        PruneOutcome::NotRemoved(err) => Some(format!("{}: {err}", entry.info.dir)),
                        _ => None,
                    })
                    .collect();
                if failed.is_empty() {
                    Reported::Ok
                } else {
                    Reported::Failed(failed.join("; "))
                }
            }
            Err(err) => {
                expect.keep.push(snapshots[2].clone());
                Reported::Failed(err.to_string())
            }
        },
        Workload::Gc => {
            expect.keep.extend(snapshots.iter().cloned());
            let options = GcOptions {
                cutoff: Duration::from_secs(3_600),
                ..GcOptions::default()
            };
            Reported::of(store.garbage_collection(&options))
        }
        Workload::Verify => {
            expect.keep.extend(snapshots.iter().cloned());
            let options = VerifyOptions {
                ignore_verified: false,
                ..VerifyOptions::default()
            };
            match store.verify_all(&mut VerifyJob::new(), &options) {
                Ok(reports) => {
                    let problems: Vec<String> = reports
                        .iter()
                        .filter_map(|report| match &report.result {
                            Ok(outcome) if outcome.is_ok() => None,
                            Ok(outcome) => Some(format!("{}: {outcome:?}", report.dir)),
                            Err(err) => Some(format!("{}: {err}", report.dir)),
                        })
                        .collect();
                    if problems.is_empty() {
                        expect.verified.extend(snapshots.iter().cloned());
                        Reported::Ok
                    } else {
                        Reported::Failed(problems.join("; "))
                    }
                }
                Err(err) => Reported::Failed(err.to_string()),
            }
        }
        Workload::UpdateManifest => {
            expect.keep.extend(snapshots.iter().cloned());
            let reported = Reported::of(store.set_snapshot_notes(&snapshots[0], NOTES));
            if reported.is_ok() {
                expect.notes.push((snapshots[0].clone(), NOTES.to_owned()));
            }
            reported
        }
        Workload::SetProtection => {
            expect.keep.extend(snapshots.iter().cloned());
            let reported = Reported::of(store.set_protection(&snapshots[0], true));
            if reported.is_ok() {
                expect.protected.push(snapshots[0].clone());
            }
            reported
        }
    };
    (reported, expect)
}
