//! Twins of the race regressions on the real world: the same actors and the same invariant as
//! the simulated scenario, run on [`RealWorld`] with real OS threads.
//!
//! Each run builds a fresh datastore in its own scratch directory under the system temporary
//! directory (removed afterwards), plants the scenario's snapshots, starts one OS thread per
//! actor behind a barrier so that they begin together, and checks the scenario's invariant on
//! the outcomes and on the final state. A twin runs either with every fix in place (it must
//! pass: the check is sound on a real filesystem) or with its bug's fix reverted through the
//! store configuration's regression switches, as the simulated scenario does. The checks are
//! the simulated scenarios' own (each scenario module exports its check as a function over the
//! outcomes and a datastore of any world); only B4's, over a bare chunk store, is restated.
//!
//! Where a scenario moves its clock before the actors start, the twin ages the files instead
//! (their access times, see [`age_files`]), or, when the clock reading that matters is kept in
//! memory (the start of a running writer, B1 and B13), sets the world's clock back during setup
//! and puts it right before the actors start (`clock::SetBackWorld`). Where a scenario lets a
//! bounded lock wait run out as a scheduler choice (B8), the twin configures the wait to zero.
//!
//! The point is the comparison with the explorers: the real scheduler only rarely produces the
//! interleaving a race needs, so [`run_twin`] counts in how many of a fixed number of runs the
//! violation showed up. A twin also watches the store beyond its bug: with every fix in place
//! any failure counts (the B23 twin found a race of group creation this way, now fixed and
//! modelled by `models::scenarios::first_backup`).
//!
//! Bugs whose scenario needs the simulated clock during the run, a second process or fault
//! injection have no twin; [`NOT_APPLICABLE`] gives the reason for each.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use store::chunk_store::{ChunkStoreConfig, PrefixFanout, SyncLevel};
use store::datastore::{Datastore, DatastoreConfig};
use store::regressions::Regressions;
use store::world::{RealWorld, World};

use crate::regressions::{MISSING_CHUNK, bad_rename, gc_vanished, lock_identity};
use crate::regressions_b::{b3_base_pinning, b17_reader_shared_lock, b23_cleanup_group};
use crate::regressions_b::{b5_reader_pinning, b6_prune_locks, b7_manifest_lock};
use crate::regressions_b::{b8_forget_manifest_lock, b15_finish_releases_locks};
use crate::scenario::{Outcome, Outcomes, ScenarioError};
use crate::scenarios::insert_sweep;

mod clock;
mod gc;
mod locks;
mod sessions;

/// Why a twin could not run (as opposed to a run that found a violation).
#[derive(Debug, thiserror::Error)]
pub enum RealError {
    /// The scratch directory could not be created.
    #[error("scratch directory {path}: {source}")]
    Scratch {
        /// The directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The datastore or its snapshots could not be set up.
    #[error("{0}")]
    Setup(ScenarioError),
}

/// What one run of a twin gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunResult {
    /// The invariant held.
    Pass,
    /// The check failed with this message (the bug's violation or something else).
    Failed(String),
}

/// A real-world twin of a race regression scenario.
#[derive(Clone, Copy)]
pub struct Twin {
    /// The bug of pbs.md §8 (`B5`, ...).
    pub bug: &'static str,
    /// The name of the simulated scenario it mirrors.
    pub scenario: &'static str,
    /// The message of the violated invariant (what a run that found the bug reports).
    pub violation: &'static str,
    run: fn(&Path, bool) -> Result<RunResult, RealError>,
}

impl fmt::Debug for Twin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Twin")
            .field("bug", &self.bug)
            .field("scenario", &self.scenario)
            .finish()
    }
}

impl Twin {
    /// One run in a fresh scratch directory; `reverted` takes the bug's fix out.
    pub fn run_once(&self, reverted: bool) -> Result<RunResult, RealError> {
        let scratch = Scratch::new()?;
        (self.run)(&scratch.path, reverted)
    }
}

/// The tally of [`run_twin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Runs made.
    pub runs: usize,
    /// Runs that reported the bug's violation.
    pub found: usize,
    /// Runs that failed with another message, and the first such message.
    pub other: usize,
    /// The first message of a run counted in `other`.
    pub first_other: Option<String>,
    /// Wall-clock time of all runs.
    pub elapsed: Duration,
}

/// Runs `twin` `runs` times (`reverted`: the bug's fix taken out) and counts the violations.
pub fn run_twin(twin: &Twin, reverted: bool, runs: usize) -> Result<Tally, RealError> {
    let started = Instant::now();
    let mut tally = Tally {
        runs,
        found: 0,
        other: 0,
        first_other: None,
        elapsed: Duration::ZERO,
    };
    for _ in 0..runs {
        match twin.run_once(reverted)? {
            RunResult::Pass => {}
            RunResult::Failed(message) if message.contains(twin.violation) => tally.found += 1,
            RunResult::Failed(message) => {
                tally.other += 1;
                tally.first_other.get_or_insert(message);
            }
        }
    }
    tally.elapsed = started.elapsed();
    Ok(tally)
}

/// The twins, in the order of the bug catalogue.
pub fn twins() -> Vec<Twin> {
    vec![
        Twin {
            bug: "B1",
            scenario: "writer-cutoff",
            violation: MISSING_CHUNK,
            run: gc::writer_cutoff,
        },
        Twin {
            bug: "B3",
            scenario: "b3-base-pinning",
            violation: b3_base_pinning::VIOLATION,
            run: sessions::base_pinning,
        },
        Twin {
            bug: "B4",
            scenario: "insert-sweep",
            violation: insert_sweep::VIOLATION,
            run: gc::insert_sweep_twin,
        },
        Twin {
            bug: "B5",
            scenario: "b5-reader-pinning",
            violation: b5_reader_pinning::VIOLATION,
            run: sessions::reader_pinning,
        },
        Twin {
            bug: "B6",
            scenario: "b6-prune-locks",
            violation: b6_prune_locks::VIOLATION,
            run: sessions::prune_locks,
        },
        Twin {
            bug: "B7",
            scenario: "b7-manifest-lock",
            violation: b7_manifest_lock::VIOLATION,
            run: sessions::manifest_lock,
        },
        Twin {
            bug: "B8",
            scenario: "b8-forget-manifest-lock",
            violation: b8_forget_manifest_lock::VIOLATION,
            run: sessions::forget_manifest_lock,
        },
        Twin {
            bug: "B9",
            scenario: "gc-vanished-index",
            violation: gc_vanished::VIOLATION,
            run: gc::gc_vanished,
        },
        Twin {
            bug: "B13",
            scenario: "second-open",
            violation: MISSING_CHUNK,
            run: gc::second_open,
        },
        Twin {
            bug: "B15",
            scenario: "b15-finish-releases-locks",
            violation: b15_finish_releases_locks::VIOLATION,
            run: sessions::finish_releases_locks,
        },
        Twin {
            bug: "B16",
            scenario: "lock-identity",
            violation: lock_identity::VIOLATION,
            run: locks::lock_identity,
        },
        Twin {
            bug: "B17",
            scenario: "b17-reader-shared-lock",
            violation: b17_reader_shared_lock::VIOLATION,
            run: sessions::reader_shared_lock,
        },
        Twin {
            bug: "B18",
            scenario: "gc-start-list",
            violation: MISSING_CHUNK,
            run: gc::gc_start_list,
        },
        Twin {
            bug: "B20",
            scenario: "pull-touch",
            violation: MISSING_CHUNK,
            run: gc::pull_touch,
        },
        Twin {
            bug: "B21",
            scenario: "bad-rename",
            violation: bad_rename::VIOLATION,
            run: gc::bad_rename_twin,
        },
        Twin {
            bug: "B23",
            scenario: "b23-cleanup-group",
            violation: b23_cleanup_group::VIOLATION,
            run: sessions::cleanup_group,
        },
    ]
}

/// Bugs whose scenario cannot have a real-world twin, with the reason.
pub const NOT_APPLICABLE: &[(&str, &str)] = &[
    (
        "B2",
        "needs the clock to move by days while GC's phase 1 runs (the simulated clock actor)",
    ),
    (
        "B10",
        "needs GC in a second process: record locks of one process never conflict",
    ),
    (
        "B11",
        "needs fault injection: a touch failing with ENOSPC while GC marks",
    ),
    (
        "B19",
        "needs GC in a second process: record locks of one process never conflict",
    ),
    (
        "B37",
        "needs fault injection: the owner file's write failing with ENOSPC",
    ),
];

/// A fresh directory under the system temporary directory, removed on drop.
struct Scratch {
    path: PathBuf,
}

static SCRATCH_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Scratch {
    fn new() -> Result<Scratch, RealError> {
        let path = std::env::temp_dir().join(format!(
            "races-real-{}-{}",
            std::process::id(),
            SCRATCH_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        // `create_dir` fails if the directory exists, so it is ours alone.
        std::fs::create_dir(&path).map_err(|source| RealError::Scratch {
            path: path.clone(),
            source,
        })?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The configuration of the simulated scenarios' datastores: small fan-out, no syncing,
/// `regressions` reverted.
fn datastore_config(regressions: Regressions) -> DatastoreConfig {
    let chunk_store = ChunkStoreConfig::new(PrefixFanout::SMALL)
        .with_sync_level(SyncLevel::None)
        .with_regressions(regressions);
    DatastoreConfig::new(chunk_store)
}

/// A datastore at `<scratch>/ds` in `world` with `config`.
fn create_datastore<W: World>(
    world: W,
    scratch: &Path,
    config: DatastoreConfig,
) -> Result<Datastore<W>, RealError> {
    Datastore::create(world, &scratch.join("ds"), config)
        .map_err(|err| RealError::Setup(ScenarioError::setup("create the datastore", err)))
}

/// A datastore at `<scratch>/ds` on the real world, configured as the simulated scenarios'.
fn new_datastore(
    scratch: &Path,
    regressions: Regressions,
) -> Result<Datastore<RealWorld>, RealError> {
    create_datastore(RealWorld::new(), scratch, datastore_config(regressions))
}

/// Runs every actor on its own OS thread, all released together by a barrier.
/// An actor of a twin: its name and what it runs on the shared state.
type RealActor<T> = (&'static str, fn(&T) -> Outcome);

fn race<T: Sync>(state: &T, actors: &[RealActor<T>]) -> Outcomes {
    let barrier = Barrier::new(actors.len());
    let outcomes = std::thread::scope(|scope| {
        let handles: Vec<_> = actors
            .iter()
            .map(|&(name, run)| {
                let barrier = &barrier;
                (
                    name,
                    scope.spawn(move || {
                        barrier.wait();
                        run(state)
                    }),
                )
            })
            .collect();
        handles
            .into_iter()
            .map(|(name, handle)| {
                let outcome = handle
                    .join()
                    .unwrap_or_else(|_| Outcome::panicked("the actor's thread panicked"));
                (name, outcome)
            })
            .collect()
    });
    Outcomes::new(outcomes)
}

fn verdict(check: Result<(), ScenarioError>) -> RunResult {
    match check {
        Ok(()) => RunResult::Pass,
        Err(err) => RunResult::Failed(err.to_string()),
    }
}

fn setup<T>(result: Result<T, ScenarioError>) -> Result<T, RealError> {
    result.map_err(RealError::Setup)
}

/// The chunks directory of the datastore at `<scratch>/ds`.
fn chunks_dir(scratch: &Path) -> PathBuf {
    scratch.join("ds").join(".chunks")
}

/// Sets the access time of every file under `dir` (recursively) to `epoch`: the real-world
/// stand-in for the simulated scenarios' moving the clock past GC's cutoff.
fn age_files(dir: &Path, epoch: i64) -> Result<(), RealError> {
    let failed = |err: std::io::Error| {
        RealError::Setup(ScenarioError::setup(&format!("age {}", dir.display()), err))
    };
    let time = std::time::UNIX_EPOCH + Duration::from_secs(epoch.max(0) as u64);
    for entry in std::fs::read_dir(dir).map_err(failed)? {
        let entry = entry.map_err(failed)?;
        let kind = entry.file_type().map_err(failed)?;
        if kind.is_dir() {
            age_files(&entry.path(), epoch)?;
        } else if kind.is_file() {
            let file = std::fs::File::options()
                .write(true)
                .open(entry.path())
                .map_err(failed)?;
            file.set_times(std::fs::FileTimes::new().set_accessed(time))
                .map_err(failed)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use store::datastore::gc::GcOptions;

    use super::*;
    use crate::regressions_b::{DAY, group, plant_backup, snapshot_at};

    fn count_files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    count_files(&entry.path())
                } else {
                    1
                }
            })
            .sum()
    }

    /// Aging the chunk files is what makes GC sweep unreferenced chunks in the B3 twin (the
    /// simulated scenario moves its clock instead); without it the twin could never fail.
    #[test]
    fn aged_unreferenced_chunks_are_swept() {
        for (age, swept) in [(true, true), (false, false)] {
            let scratch = Scratch::new().unwrap();
            let store = new_datastore(&scratch.path, Regressions::none()).unwrap();
            let now = store.world().now();
            let base = snapshot_at(&group("vm/100").unwrap(), now - 3 * DAY).unwrap();
            plant_backup(&store, &base, &["A", "B"]).unwrap();
            let chunks = scratch.path.join("ds").join(".chunks");
            if age {
                age_files(&chunks, now - 3 * DAY).unwrap();
            }
            let before = count_files(&chunks);
            store.forget_snapshot(&base).unwrap();
            let options = GcOptions {
                atime_safety_check: false,
                ..GcOptions::default()
            };
            store.garbage_collection(&options).unwrap();
            let after = count_files(&chunks);
            assert_eq!(before - after == 2, swept, "before {before}, after {after}");
        }
    }
}
