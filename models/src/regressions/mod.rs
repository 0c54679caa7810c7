//! Race regressions, part A: garbage collection, the chunk store and the locks.
//!
//! One scenario per historical bug of the race catalogue (pbs.md §8), each as small as the
//! race allows. Every scenario runs with the bug's fix in place (it must pass) and with the fix
//! reverted through its switch in [`store::regressions`] (it must be caught). The liveness bugs
//! (B9, B10) check that an operation succeeds once nothing legitimately stands in its way.
//!
//! | bug | scenario | actors | invariant | caught by |
//! |---|---|---|---|---|
//! | B1 | [`gc_cutoff::WriterCutoff`] | long backup, GC | a live writer's uploads survive the sweep | shuttle portfolio |
//! | B2 | [`gc_cutoff::SweepCutoff`] | GC, clock | marks of phase 1 are newer than the cutoff | shuttle portfolio |
//! | B4 | [`crate::scenarios::insert_sweep::InsertSweep`] | 2 × insert, sweep | a stored chunk survives the sweep | shuttle portfolio, loom |
//! | B9 (L) | [`gc_vanished::GcVanished`] | GC, forget | GC succeeds under a concurrent forget | shuttle portfolio |
//! | B10 (L) | [`locker::LockerRelease`] | 2 × backup (then a GC of another process) | GC gets the lock once the writers are gone | shuttle portfolio |
//! | B11 | [`touch_fault::TouchFault`] | GC, disk full (fault injection) | a chunk GC failed to mark is not swept | shuttle portfolio, loom |
//! | B13 | [`gc_cutoff::SecondOpen`] | long backup, GC through a second open | one locker per datastore per process | shuttle portfolio |
//! | B16 | [`lock_identity::LockIdentity`] | 3 × lock, unlink, release | one holder of a lock file at a time | random, PCT 3, URW, loom |
//! | B18 | [`gc_start_list::GcStartList`] | GC, backup job (incremental backup, then prune) | every chunk of a finished snapshot exists | PCT 2 and 3 |
//! | B20 | [`pull_touch::PullTouch`] | pull, sweep | a chunk a pull reused exists | shuttle portfolio, loom |
//! | B21 | [`bad_rename::BadRename`] | sweep, rename to `.bad` | the sweep succeeds | shuttle portfolio, loom |
//!
//! "Shuttle portfolio" is random, PCT depth 2 and 3 and URW; loom runs with preemption bound 2.
//! [`visit_regressions`] lists every scenario in both forms, with what exploring it must give;
//! the tests (`tests/it/races_a.rs`) state the budgets, and `cargo run --release --bin races`
//! measures the executions to the first failure per scheduler over many seeds.

use std::path::Path;

use sim::SimWorld;
use store::backup_info::BackupDir;
use store::chunk_store::{ChunkStoreConfig, PrefixFanout, SyncLevel};
use store::datastore::gc::GcOptions;
use store::datastore::{Datastore, DatastoreConfig, Error};
use store::index::IndexFile;
use store::regressions::{Bug, Regressions};
use store::sync::SyncFamily;
use store::world::World;

use crate::explore::Explorer;
use crate::scenario::{Outcome, ScenarioError};
use crate::scenarios::insert_sweep::{self, InsertSweep};
use crate::scenarios::{Expect, Visitor};

pub mod bad_rename;
pub mod gc_cutoff;
pub mod gc_start_list;
pub mod gc_vanished;
pub mod lock_identity;
pub mod locker;
pub mod pull_touch;
pub mod touch_fault;

/// One day in seconds.
pub const DAY: i64 = 86_400;

/// The owner of every backup in these scenarios.
pub const OWNER: &str = "backup@pam";

/// The message of a violation of "every chunk a finished snapshot references exists".
pub const MISSING_CHUNK: &str = "a finished snapshot references a missing chunk";

/// The shuttle schedulers: random, PCT depth 2 and 3, URW.
pub const SHUTTLE: &[Explorer] = &[
    Explorer::Random,
    Explorer::Pct { depth: 2 },
    Explorer::Pct { depth: 3 },
    Explorer::Urw,
];

/// The shuttle schedulers and loom with preemption bound 2.
pub const SHUTTLE_AND_LOOM: &[Explorer] = &[
    Explorer::Random,
    Explorer::Pct { depth: 2 },
    Explorer::Pct { depth: 3 },
    Explorer::Urw,
    Explorer::Loom {
        preemption_bound: Some(Explorer::DEFAULT_LOOM_BOUND),
    },
];

/// A scenario variant: the bug's fix in place, or reverted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Variant {
    /// Is the fix reverted?
    pub reverted: bool,
}

impl Variant {
    /// The fix in place.
    pub const FIXED: Variant = Variant { reverted: false };
    /// The fix reverted.
    pub const REVERTED: Variant = Variant { reverted: true };

    /// The store's switches for this variant of `bug`.
    pub fn regressions(self, bug: Bug) -> Regressions {
        if self.reverted {
            Regressions::none().with(bug)
        } else {
            Regressions::none()
        }
    }

    /// `regressions/<name>` or `regressions/<name>/<bug>-reverted`.
    pub fn name(self, name: &str, bug: &str) -> String {
        if self.reverted {
            format!("regressions/{name}/{bug}-reverted")
        } else {
            format!("regressions/{name}")
        }
    }
}

/// What a scenario of this module must give under `explorers` (the explorers that run it; the
/// tests and the races report use the same lists): the fixed variant passes, the reverted one is
/// caught with `message` by every one of them.
pub fn expect(variant: Variant, message: &'static str, explorers: &'static [Explorer]) -> Expect {
    if variant.reverted {
        Expect::CaughtBy { message, explorers }
    } else {
        Expect::Pass
    }
}

/// Visits every scenario of this module, each with its fix in place and reverted, in the
/// table's order.
pub fn visit_regressions(visitor: &mut impl Visitor) {
    for variant in [Variant::FIXED, Variant::REVERTED] {
        let writer = gc_cutoff::WriterCutoff(variant);
        visitor.visit(&writer, expect(variant, MISSING_CHUNK, writer.explorers()));
        let sweep = gc_cutoff::SweepCutoff(variant);
        visitor.visit(&sweep, expect(variant, MISSING_CHUNK, sweep.explorers()));
    }
    visitor.visit(&InsertSweep::default(), Expect::Pass);
    visitor.visit(
        &InsertSweep::b4_reverted(),
        Expect::CaughtBy {
            message: insert_sweep::VIOLATION,
            explorers: SHUTTLE_AND_LOOM,
        },
    );
    for variant in [Variant::FIXED, Variant::REVERTED] {
        let vanished = gc_vanished::GcVanished(variant);
        visitor.visit(
            &vanished,
            expect(variant, gc_vanished::VIOLATION, vanished.explorers()),
        );
        let release = locker::LockerRelease(variant);
        visitor.visit(
            &release,
            expect(variant, locker::VIOLATION, release.explorers()),
        );
        let fault = touch_fault::TouchFault(variant);
        visitor.visit(&fault, expect(variant, MISSING_CHUNK, fault.explorers()));
        let second = gc_cutoff::SecondOpen(variant);
        visitor.visit(&second, expect(variant, MISSING_CHUNK, second.explorers()));
        let identity = lock_identity::LockIdentity(variant);
        visitor.visit(
            &identity,
            expect(variant, lock_identity::VIOLATION, identity.explorers()),
        );
        let start_list = gc_start_list::GcStartList::new(variant);
        visitor.visit(
            &start_list,
            expect(variant, MISSING_CHUNK, start_list.explorers()),
        );
        let pull = pull_touch::PullTouch(variant);
        visitor.visit(&pull, expect(variant, MISSING_CHUNK, pull.explorers()));
        let rename = bad_rename::BadRename(variant);
        visitor.visit(
            &rename,
            expect(variant, bad_rename::VIOLATION, rename.explorers()),
        );
    }
}

/// A datastore at `/ds` with `regressions`, no syncing, small fan-out, in `world`.
pub fn new_datastore<S: SyncFamily>(
    world: &SimWorld<S>,
    regressions: Regressions,
) -> Result<Datastore<SimWorld<S>>, ScenarioError> {
    crate::scenarios::new_datastore(world, regressions)
}

/// Opens the datastore at `/ds` again in `world` (another instance; the same process or not,
/// as `world` says).
pub fn open_datastore<S: SyncFamily>(
    world: &SimWorld<S>,
    regressions: Regressions,
) -> Result<Datastore<SimWorld<S>>, ScenarioError> {
    let chunk_store = ChunkStoreConfig::new(PrefixFanout::SMALL)
        .with_sync_level(SyncLevel::None)
        .with_regressions(regressions);
    Datastore::open(
        world.clone(),
        Path::new("/ds"),
        DatastoreConfig::new(chunk_store),
    )
    .map_err(|err| ScenarioError::setup("open the datastore", err))
}

/// GC options of these scenarios: the default cutoff, no access-time probe (it moves the clock
/// and is tested on its own).
pub fn gc_options() -> GcOptions {
    GcOptions {
        atime_safety_check: false,
        ..GcOptions::default()
    }
}

/// Runs a GC and classifies the result: `ok`, `busy` (another GC or another process's lock) or
/// `error: ...`.
pub fn run_gc<W: World>(store: &Datastore<W>) -> Outcome {
    match store.garbage_collection(&gc_options()) {
        Err(Error::GcRunning) => Outcome::BUSY,
        result => Outcome::of(&result),
    }
}

/// Checks that every chunk referenced by an index of a finished snapshot exists; the violation
/// names the first missing one.
pub fn check_chunks_present<W: World>(store: &Datastore<W>) -> Result<(), ScenarioError> {
    let violation = |what: &str, err: &dyn std::fmt::Display| {
        ScenarioError::violation(format!("{what}: {err}"))
    };
    for group in store
        .list_groups()
        .map_err(|err| violation("list groups", &err))?
    {
        let snapshots = store
            .list_snapshots(&group)
            .map_err(|err| violation("list snapshots", &err))?;
        for info in snapshots.iter().filter(|info| info.finished) {
            check_snapshot_chunks(store, &info.dir)?;
        }
    }
    Ok(())
}

fn check_snapshot_chunks<W: World>(
    store: &Datastore<W>,
    dir: &BackupDir,
) -> Result<(), ScenarioError> {
    let violation = |what: &str, err: &dyn std::fmt::Display| {
        ScenarioError::violation(format!("{what}: {err}"))
    };
    let manifest = store
        .load_manifest(dir)
        .map_err(|err| violation("manifest", &err))?;
    let path = store.snapshot_path(dir);
    for file in manifest
        .files
        .iter()
        .filter(|file| file.kind().is_some_and(|kind| kind.is_index()))
    {
        let index = IndexFile::open(store.world(), &path.join(&file.filename))
            .map_err(|err| violation("index", &err))?;
        for digest in index.digests() {
            let present = store
                .chunk_store()
                .chunk_metadata(digest)
                .map_err(|err| violation("stat chunk", &err))?
                .is_some();
            if !present {
                return Err(ScenarioError::violation(format!(
                    "{MISSING_CHUNK}: {} of {} in {dir}",
                    digest.to_hex(),
                    file.filename
                )));
            }
        }
    }
    Ok(())
}
