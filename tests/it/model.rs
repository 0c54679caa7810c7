//! Model-based test of the datastore on the simulated world.
//!
//! proptest generates sequences of operations: backups (full and incremental, several archives,
//! chunks shared between archives and snapshots), forget, prune, protect, snapshot notes,
//! verify, GC and clock jumps of hours and days. Each operation runs against the real store code
//! on a [`SimWorld`] and against a small reference model (which snapshots exist, with which
//! archives, notes, verify state and protection). After every step the store must agree with
//! the model, and every chunk referenced by an existing finished snapshot must exist and hash
//! to its digest.
//!
//! Operations name snapshots by position (`pick` modulo the group's snapshot count), so every
//! shrunk sequence is still meaningful.
//!
//! The last test plants a bug in GC (it marks each group's newest snapshot only) and shows the
//! property test finds it and shrinks the failure to a handful of steps.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use sim::SimWorld;
use store::backup_info::{BackupDir, BackupGroup, BackupId, BackupTime, BackupType};
use store::chunk_store::{Chunk, ChunkStoreConfig, PrefixFanout, SyncLevel};
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::datastore::gc::GcOptions;
use store::datastore::prune::{KeepOptions, PruneOptions};
use store::datastore::verify::{VerifyJob, VerifyOptions};
use store::datastore::{Datastore, DatastoreConfig, Error};
use store::digest::Digest;
use store::manifest::VerifyState;
use store::regressions::{Bug, Regressions};
use store::sync::StdSync;
use store::world::World;

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
const GROUPS: u8 = 2;
const ARCHIVES: [&str; 3] = ["root.didx", "data.didx", "disk.fidx"];
const CHUNK_IDS: u8 = 12;
const OWNER: &str = "backup@model";

/// One step of a generated sequence.
#[derive(Debug, Clone)]
enum Op {
    /// A backup of `group` with these archives (archive index → chunk ids).
    Backup {
        group: u8,
        archives: BTreeMap<u8, Vec<u8>>,
    },
    /// Forget the `pick`-th snapshot (oldest first) of `group`.
    Forget { group: u8, pick: u8 },
    /// Prune `group` with keep-last and keep-daily.
    Prune {
        group: u8,
        keep_last: u8,
        keep_daily: u8,
    },
    /// Set or clear protection of a snapshot.
    Protect { group: u8, pick: u8, on: bool },
    /// Set a snapshot's notes.
    Notes { group: u8, pick: u8, text: u8 },
    /// Verify a snapshot (never skipping).
    Verify { group: u8, pick: u8 },
    /// Run garbage collection with the default cutoff.
    Gc,
    /// Move the clock forward.
    Advance { secs: i64 },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let group = 0..GROUPS;
    let pick = any::<u8>();
    let archives = proptest::collection::btree_map(
        0..ARCHIVES.len() as u8,
        proptest::collection::vec(0..CHUNK_IDS, 1..5),
        1..=ARCHIVES.len(),
    );
    prop_oneof![
        4 => (group.clone(), archives).prop_map(|(group, archives)| Op::Backup { group, archives }),
        1 => (group.clone(), pick).prop_map(|(group, pick)| Op::Forget { group, pick }),
        1 => (group.clone(), 0..3u8, 0..3u8)
            .prop_map(|(group, keep_last, keep_daily)| Op::Prune { group, keep_last, keep_daily }),
        1 => (group.clone(), pick, any::<bool>())
            .prop_map(|(group, pick, on)| Op::Protect { group, pick, on }),
        1 => (group.clone(), pick, any::<u8>())
            .prop_map(|(group, pick, text)| Op::Notes { group, pick, text }),
        1 => (group, pick).prop_map(|(group, pick)| Op::Verify { group, pick }),
        2 => Just(Op::Gc),
        2 => prop_oneof![(1..48i64).prop_map(|h| h * HOUR), (1..4i64).prop_map(|d| d * DAY)]
            .prop_map(|secs| Op::Advance { secs }),
    ]
}

/// The bytes of chunk `id`: all chunks have one size, so they fit fixed archives too.
fn chunk_data(id: u8) -> Vec<u8> {
    let mut data = format!("model chunk {id:03} ").into_bytes();
    data.resize(256, id);
    data
}

fn group_of(index: u8) -> BackupGroup {
    let id = BackupId::parse(&format!("g{index}")).expect("valid id");
    BackupGroup::new(BackupType::Host, id)
}

/// A snapshot as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RefSnapshot {
    archives: BTreeMap<String, Vec<u8>>,
    notes: Option<String>,
    verify: Option<VerifyState>,
    protected: bool,
}

impl RefSnapshot {
    fn chunk_ids(&self) -> impl Iterator<Item = u8> + '_ {
        self.archives.values().flatten().copied()
    }
}

/// The reference model: snapshots per group, keyed by time.
#[derive(Debug, Default)]
struct Model {
    groups: BTreeMap<u8, BTreeMap<i64, RefSnapshot>>,
}

impl Model {
    fn snapshot_time(&self, group: u8, pick: u8) -> Option<i64> {
        let snapshots = self.groups.get(&group)?;
        if snapshots.is_empty() {
            return None;
        }
        snapshots
            .keys()
            .nth(usize::from(pick) % snapshots.len())
            .copied()
    }

    /// Prune selection for keep-last and keep-daily (UTC), written from the rules, not from the
    /// store: newest first, protected never counts, a period already kept by an earlier option
    /// is not counted again, later snapshots of a kept period are removed.
    fn prune_removals(&self, group: u8, keep_last: u8, keep_daily: u8) -> BTreeSet<i64> {
        let Some(snapshots) = self.groups.get(&group) else {
            return BTreeSet::new();
        };
        if keep_last == 0 && keep_daily == 0 {
            return BTreeSet::new();
        }
        let newest_first: Vec<(i64, bool)> = snapshots
            .iter()
            .rev()
            .map(|(time, snap)| (*time, snap.protected))
            .collect();
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Keep,
            Protected,
            Remove,
        }
        let mut marks: BTreeMap<i64, Mark> = BTreeMap::new();
        type Period = fn(i64) -> i64;
        let options: [(u8, Period); 2] = [(keep_last, |t| t), (keep_daily, |t| t.div_euclid(DAY))];
        for (count, period) in options {
            if count == 0 {
                continue;
            }
            // Periods an earlier option kept a snapshot of are not counted again.
            let already: BTreeSet<i64> = marks
                .iter()
                .filter(|(_, mark)| **mark == Mark::Keep)
                .map(|(time, _)| period(*time))
                .collect();
            let mut selected = BTreeSet::new();
            for &(time, protected) in &newest_first {
                if marks.contains_key(&time) {
                    continue;
                }
                if protected {
                    marks.insert(time, Mark::Protected);
                    continue;
                }
                let key = period(time);
                if already.contains(&key) {
                    continue;
                }
                if !selected.contains(&key) {
                    if selected.len() >= usize::from(count) {
                        break;
                    }
                    selected.insert(key);
                    marks.insert(time, Mark::Keep);
                } else {
                    marks.insert(time, Mark::Remove);
                }
            }
        }
        newest_first
            .iter()
            .filter(|(time, protected)| {
                !protected && !matches!(marks.get(time), Some(Mark::Keep | Mark::Protected))
            })
            .map(|(time, _)| *time)
            .collect()
    }
}

/// The system under test.
struct System {
    world: SimWorld<StdSync>,
    store: Datastore<SimWorld<StdSync>>,
    model: Model,
    verify_job: u64,
    /// Chunks the last backup took from its base without upload.
    last_reused: usize,
    /// Chunks the last GC removed.
    last_removed: u64,
}

impl System {
    fn new(regressions: Regressions) -> System {
        let world = SimWorld::<StdSync>::new(11);
        let chunk_store = ChunkStoreConfig::new(PrefixFanout::SMALL)
            .with_sync_level(SyncLevel::None)
            .with_regressions(regressions);
        let mut config = DatastoreConfig::new(chunk_store);
        config.manifest_lock_timeout = Duration::from_millis(10);
        let store = Datastore::create(world.clone(), Path::new("/ds"), config).expect("create");
        System {
            world,
            store,
            model: Model::default(),
            verify_job: 0,
            last_reused: 0,
            last_removed: 0,
        }
    }

    fn dir(&self, group: u8, time: i64) -> BackupDir {
        BackupDir::new(
            group_of(group),
            BackupTime::from_epoch(time).expect("valid time"),
        )
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Backup { group, archives } => self.backup(*group, archives),
            Op::Forget { group, pick } => {
                let Some(time) = self.model.snapshot_time(*group, *pick) else {
                    return Ok(());
                };
                let dir = self.dir(*group, time);
                let protected = self.model.groups[group][&time].protected;
                match self.store.forget_snapshot(&dir) {
                    Ok(()) if !protected => {
                        self.remove(*group, time);
                        Ok(())
                    }
                    Err(Error::Protected(_)) if protected => Ok(()),
                    other => Err(TestCaseError::fail(format!("forget {dir}: {other:?}"))),
                }
            }
            Op::Prune {
                group,
                keep_last,
                keep_daily,
            } => {
                let expected = self.model.prune_removals(*group, *keep_last, *keep_daily);
                let options = PruneOptions {
                    keep: KeepOptions {
                        keep_last: u32::from(*keep_last),
                        keep_daily: u32::from(*keep_daily),
                        ..KeepOptions::default()
                    },
                    ..PruneOptions::default()
                };
                let report = self
                    .store
                    .prune_group(&group_of(*group), &options)
                    .map_err(|err| TestCaseError::fail(format!("prune: {err}")))?;
                let removed: BTreeSet<i64> = report.removed().map(|dir| dir.time.epoch()).collect();
                prop_assert_eq!(&removed, &expected, "prune removals; report {:?}", report);
                for time in removed {
                    self.remove(*group, time);
                }
                Ok(())
            }
            Op::Protect { group, pick, on } => {
                let Some(time) = self.model.snapshot_time(*group, *pick) else {
                    return Ok(());
                };
                let dir = self.dir(*group, time);
                self.store
                    .set_protection(&dir, *on)
                    .map_err(|err| TestCaseError::fail(format!("protect {dir}: {err}")))?;
                self.snapshot_mut(*group, time).protected = *on;
                Ok(())
            }
            Op::Notes { group, pick, text } => {
                let Some(time) = self.model.snapshot_time(*group, *pick) else {
                    return Ok(());
                };
                let dir = self.dir(*group, time);
                let notes = format!("notes {text}");
                self.store
                    .set_snapshot_notes(&dir, &notes)
                    .map_err(|err| TestCaseError::fail(format!("notes {dir}: {err}")))?;
                self.snapshot_mut(*group, time).notes = Some(notes);
                Ok(())
            }
            Op::Verify { group, pick } => {
                let Some(time) = self.model.snapshot_time(*group, *pick) else {
                    return Ok(());
                };
                let dir = self.dir(*group, time);
                self.verify_job += 1;
                let options = VerifyOptions {
                    ignore_verified: false,
                    upid: format!("verify-{}", self.verify_job),
                    ..VerifyOptions::default()
                };
                let mut job = VerifyJob::new();
                let outcome = self
                    .store
                    .verify_snapshot(&mut job, &options, &dir)
                    .map_err(|err| TestCaseError::fail(format!("verify {dir}: {err}")))?;
                prop_assert!(outcome.is_ok(), "verify {}: {:?}", dir, outcome);
                self.snapshot_mut(*group, time).verify = Some(VerifyState::Ok);
                Ok(())
            }
            Op::Gc => {
                let options = GcOptions {
                    atime_safety_check: false,
                    ..GcOptions::default()
                };
                let outcome = self
                    .store
                    .garbage_collection(&options)
                    .map_err(|err| TestCaseError::fail(format!("gc: {err}")))?;
                self.last_removed = outcome.status.removed_chunks;
                Ok(())
            }
            Op::Advance { secs } => {
                self.world.advance(*secs);
                Ok(())
            }
        }
    }

    fn backup(&mut self, group: u8, archives: &BTreeMap<u8, Vec<u8>>) -> Result<(), TestCaseError> {
        // Backup times are whole seconds and must increase within a group.
        self.world.advance(1);
        let time = self.world.now();
        let dir = self.dir(group, time);
        let specs: Vec<ArchiveSpec> = archives
            .iter()
            .map(|(archive, ids)| {
                ArchiveSpec::new(
                    ARCHIVES[usize::from(*archive)],
                    ids.iter().map(|id| chunk_data(*id)).collect(),
                )
            })
            .collect();
        let outcome = backup_snapshot(&self.store, &dir, OWNER, &specs)
            .map_err(|err| TestCaseError::fail(format!("backup {dir}: {err}")))?;
        // The base is the newest finished snapshot unless its verify failed (never, here).
        let expected_base = self
            .model
            .groups
            .get(&group)
            .and_then(|s| s.keys().next_back().copied());
        prop_assert_eq!(outcome.base.as_ref().map(|b| b.time.epoch()), expected_base);
        self.last_reused = outcome.reused_chunks;
        let snapshot = RefSnapshot {
            archives: archives
                .iter()
                .map(|(archive, ids)| (ARCHIVES[usize::from(*archive)].to_owned(), ids.clone()))
                .collect(),
            notes: None,
            verify: None,
            protected: false,
        };
        self.model
            .groups
            .entry(group)
            .or_default()
            .insert(time, snapshot);
        Ok(())
    }

    fn snapshot_mut(&mut self, group: u8, time: i64) -> &mut RefSnapshot {
        self.model
            .groups
            .get_mut(&group)
            .and_then(|s| s.get_mut(&time))
            .expect("modelled snapshot")
    }

    fn remove(&mut self, group: u8, time: i64) {
        if let Some(snapshots) = self.model.groups.get_mut(&group) {
            snapshots.remove(&time);
        }
    }

    /// The store agrees with the model, and every referenced chunk is intact.
    fn check(&self) -> Result<(), TestCaseError> {
        let mut referenced = BTreeSet::new();
        for group_index in 0..GROUPS {
            let group = group_of(group_index);
            let listed = self
                .store
                .list_snapshots(&group)
                .map_err(|err| TestCaseError::fail(format!("list {group}: {err}")))?;
            let empty = BTreeMap::new();
            let expected = self.model.groups.get(&group_index).unwrap_or(&empty);
            let listed_times: Vec<i64> = listed.iter().map(|info| info.dir.time.epoch()).collect();
            let expected_times: Vec<i64> = expected.keys().copied().collect();
            prop_assert_eq!(listed_times, expected_times, "snapshots of {}", group);
            for info in &listed {
                let want = &expected[&info.dir.time.epoch()];
                prop_assert!(info.finished, "{} is not finished", info.dir);
                prop_assert_eq!(info.protected, want.protected, "protection of {}", info.dir);
                let manifest = self
                    .store
                    .load_manifest(&info.dir)
                    .map_err(|err| TestCaseError::fail(format!("manifest {}: {err}", info.dir)))?;
                let names: BTreeSet<&str> = manifest
                    .files
                    .iter()
                    .map(|file| file.filename.as_str())
                    .collect();
                let want_names: BTreeSet<&str> = want.archives.keys().map(String::as_str).collect();
                prop_assert_eq!(names, want_names, "archives of {}", info.dir);
                let notes = manifest
                    .notes()
                    .map_err(|err| TestCaseError::fail(err.to_string()))?;
                prop_assert_eq!(notes, want.notes.as_deref(), "notes of {}", info.dir);
                let verify = manifest
                    .verify_state()
                    .map_err(|err| TestCaseError::fail(err.to_string()))?
                    .map(|state| state.state);
                prop_assert_eq!(verify, want.verify, "verify state of {}", info.dir);
                referenced.extend(want.chunk_ids());
            }
        }
        for id in referenced {
            let data = chunk_data(id);
            let digest = Digest::of(&data);
            let chunk = self
                .store
                .chunk_store()
                .load_chunk(&digest)
                .map_err(|err| {
                    TestCaseError::fail(format!("referenced chunk {id} ({digest}) is lost: {err}"))
                })?;
            prop_assert_eq!(chunk.data(), &data[..], "chunk {} content", id);
        }
        Ok(())
    }
}

fn run_sequence(ops: &[Op], regressions: Regressions) -> Result<(), TestCaseError> {
    let mut system = System::new(regressions);
    for (step, op) in ops.iter().enumerate() {
        system
            .apply(op)
            .map_err(|err| TestCaseError::fail(format!("step {step} {op:?}: {err}")))?;
        system
            .check()
            .map_err(|err| TestCaseError::fail(format!("after step {step} {op:?}: {err}")))?;
    }
    Ok(())
}

fn sequences() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op_strategy(), 1..40)
}

proptest! {
    #![proptest_config(Config { cases: 512, ..Config::default() })]

    #[test]
    fn store_agrees_with_the_model(ops in sequences()) {
        run_sequence(&ops, Regressions::none())?;
    }
}

/// A hand-written sequence through every operation, checking that each one has the effect the
/// model expects (so the random test above cannot pass by doing nothing).
#[test]
fn every_operation_has_its_effect() {
    let archives = |list: &[(u8, &[u8])]| -> BTreeMap<u8, Vec<u8>> {
        list.iter()
            .map(|(archive, ids)| (*archive, ids.to_vec()))
            .collect()
    };
    let mut system = System::new(Regressions::none());
    let step = |system: &mut System, op: Op| {
        system
            .apply(&op)
            .unwrap_or_else(|err| panic!("{op:?}: {err}"));
        system
            .check()
            .unwrap_or_else(|err| panic!("after {op:?}: {err}"));
    };
    step(
        &mut system,
        Op::Backup {
            group: 0,
            archives: archives(&[(0, &[1, 2]), (2, &[3, 4])]),
        },
    );
    assert_eq!(system.last_reused, 0, "a first backup has no base");
    step(&mut system, Op::Advance { secs: HOUR });
    step(
        &mut system,
        Op::Backup {
            group: 0,
            archives: archives(&[(0, &[1, 2, 5])]),
        },
    );
    assert_eq!(
        system.last_reused, 2,
        "chunks 1 and 2 come from the base's root.didx"
    );
    step(
        &mut system,
        Op::Protect {
            group: 0,
            pick: 0,
            on: true,
        },
    );
    step(&mut system, Op::Forget { group: 0, pick: 0 });
    assert_eq!(
        system.model.groups[&0].len(),
        2,
        "a protected snapshot is not forgotten"
    );
    step(
        &mut system,
        Op::Notes {
            group: 0,
            pick: 1,
            text: 7,
        },
    );
    step(&mut system, Op::Verify { group: 0, pick: 1 });
    step(&mut system, Op::Advance { secs: 2 * DAY });
    step(
        &mut system,
        Op::Backup {
            group: 1,
            archives: archives(&[(1, &[6])]),
        },
    );
    step(
        &mut system,
        Op::Prune {
            group: 0,
            keep_last: 1,
            keep_daily: 0,
        },
    );
    assert_eq!(
        system.model.groups[&0].len(),
        2,
        "prune keeps the protected snapshot"
    );
    step(
        &mut system,
        Op::Protect {
            group: 0,
            pick: 0,
            on: false,
        },
    );
    step(
        &mut system,
        Op::Prune {
            group: 0,
            keep_last: 1,
            keep_daily: 0,
        },
    );
    assert_eq!(
        system.model.groups[&0].len(),
        1,
        "prune removes the older snapshot"
    );
    step(&mut system, Op::Gc);
    assert_eq!(
        system.last_removed, 2,
        "chunks 3 and 4 lost their last reference two days ago"
    );
    for id in [3, 4] {
        let digest = Digest::of(&chunk_data(id));
        assert!(
            system
                .store
                .chunk_store()
                .chunk_metadata(&digest)
                .expect("stat")
                .is_none()
        );
    }
}

/// Chunk data of the model is self-consistent (guards the check above against a vacuous pass).
#[test]
fn chunk_data_is_distinct_per_id() {
    let digests: BTreeSet<Digest> = (0..CHUNK_IDS)
        .map(|id| Digest::of(&chunk_data(id)))
        .collect();
    assert_eq!(digests.len(), usize::from(CHUNK_IDS));
    assert!(Chunk::from_data(&chunk_data(0)).is_ok());
}

/// A planted GC bug (only each group's newest snapshot is marked) is found, and proptest
/// shrinks the failure to a short sequence: two backups with different chunks, a clock jump past
/// the cutoff, and a GC.
#[test]
fn planted_gc_bug_is_found_and_shrinks() {
    let regressions = Regressions::none().with(Bug::PlantedGcMarksNewestOnly);
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&sequences(), |ops| run_sequence(&ops, regressions));
    let (reason, minimal) = match result {
        Err(TestError::Fail(reason, minimal)) => (reason, minimal),
        other => panic!("the planted bug was not found: {other:?}"),
    };
    eprintln!("planted bug: {reason}\nminimal sequence: {minimal:#?}");
    assert!(
        reason.to_string().contains("is lost"),
        "unexpected failure: {reason}"
    );
    assert!(
        minimal.len() <= 5,
        "shrunk to {} steps, expected at most 5: {minimal:#?}",
        minimal.len()
    );
    let backups = minimal
        .iter()
        .filter(|op| matches!(op, Op::Backup { .. }))
        .count();
    assert!(
        backups >= 2,
        "a lost chunk needs an older snapshot: {minimal:#?}"
    );
    assert!(
        matches!(minimal.last(), Some(Op::Gc)),
        "the loss shows after a GC: {minimal:#?}"
    );
    // The same sequence passes with the bug fixed.
    run_sequence(&minimal, Regressions::none())
        .expect("the fixed store passes the minimal sequence");
}
