//! A generated case as a [`Scenario`] over the real store code: the setup plants the case's
//! initial state, each actor runs its steps, and the check runs the invariants and the oracle.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sim::SimWorld;
use store::backup_info::{BackupDir, BackupGroup, BackupTime};
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::datastore::gc::GcOptions;
use store::datastore::prune::PruneOutcome;
use store::datastore::verify::{
    SkipReason, VerifyJob, VerifyOptions, VerifyOutcome, VerifyProblem,
};
use store::datastore::{Datastore, Error};
use store::regressions::Regressions;
use store::sync::SyncFamily;
use store::world::World;

use super::case::{Archive, Case, OWNER, Op, T0, archive_name, chunk_data};
use super::model::{GROUP_NOTES, Model, OWNER_NOTES, notes_text, results};
use super::observe::{Final, Observed, Phase};
use super::oracle;
use crate::regressions_b::{missing_chunk, open_in_new_process};
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};
use crate::scenarios::{new_datastore, prune_keep_last};

/// A generated case, run against the store with `regressions` reverted.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The case.
    pub case: Arc<Case>,
    /// Fixes reverted in the store under test.
    pub regressions: Regressions,
    /// The scenario name (identifies the case in failure records).
    pub name: String,
    /// Run the liveness phase ([`super::liveness`]) after each execution.
    pub liveness: bool,
}

impl Generated {
    /// The case `case` called `name`, against the store with `regressions` reverted.
    pub fn new(name: impl Into<String>, case: Case, regressions: Regressions) -> Generated {
        Generated {
            case: Arc::new(case),
            regressions,
            name: name.into(),
            liveness: true,
        }
    }

    /// The same case with the liveness phase on or off.
    pub fn with_liveness(self, liveness: bool) -> Generated {
        Generated { liveness, ..self }
    }
}

/// What the actors share.
pub struct GeneratedState<S: SyncFamily> {
    case: Arc<Case>,
    /// One datastore per simulated process.
    stores: Vec<Datastore<SimWorld<S>>>,
    groups: Vec<BackupGroup>,
    /// The real-time counter: no scheduling point, read in scheduler order.
    ticks: AtomicU64,
    observed: Mutex<Vec<Observed>>,
}

/// The group `vm/<100 + index>`.
pub fn group_of(index: usize) -> BackupGroup {
    BackupGroup::from_relative_path(&format!("vm/{}", 100 + index))
        .unwrap_or_else(|err| panic!("a valid group name: {err}"))
}

fn dir(group: &BackupGroup, time: i64) -> Result<BackupDir, Error> {
    let time = BackupTime::from_epoch(time).map_err(|err| Error::Protocol {
        dir: BackupDir::new(
            group.clone(),
            BackupTime::from_epoch(T0).expect("T0 is a time"),
        ),
        reason: err.to_string(),
    })?;
    Ok(BackupDir::new(group.clone(), time))
}

fn specs(archives: &[Archive]) -> Vec<ArchiveSpec> {
    archives
        .iter()
        .enumerate()
        .map(|(i, a)| {
            ArchiveSpec::new(
                archive_name(i, a),
                a.chunks.iter().map(|id| chunk_data(*id)).collect(),
            )
        })
        .collect()
}

fn plant<S: SyncFamily>(
    world: &SimWorld<S>,
    store: &Datastore<SimWorld<S>>,
    case: &Case,
) -> Result<(), Error> {
    let mut planted: Vec<(i64, usize, usize)> = Vec::new();
    for (g, group) in case.groups.iter().enumerate() {
        planted.extend(
            group
                .snapshots
                .iter()
                .enumerate()
                .map(|(s, snap)| (snap.time, g, s)),
        );
    }
    planted.sort_unstable();
    for (time, g, s) in planted {
        let snap = &case.groups[g].snapshots[s];
        let dir = dir(&group_of(g), time)?;
        world.set_time(time);
        backup_snapshot(store, &dir, OWNER, &specs(&snap.archives))?;
        if snap.protected {
            store.set_protection(&dir, true)?;
        }
        if snap.notes {
            store.set_snapshot_notes(&dir, &notes_text(time))?;
        }
    }
    for (g, group) in case.groups.iter().enumerate() {
        if let Some(time) = group.unfinished {
            let dir = dir(&group_of(g), time)?;
            let path = store.snapshot_path(&dir);
            if let Err(err) = store.world().create_dir_all(&path) {
                let reason = format!("mkdir {}: {err}", path.display());
                return Err(Error::Protocol { dir, reason });
            }
            store.set_group_owner(&group_of(g), OWNER)?;
        }
        if group.notes && (!group.snapshots.is_empty() || group.unfinished.is_some()) {
            store.set_group_notes(&group_of(g), GROUP_NOTES)?;
        }
    }
    world.set_time(T0);
    Ok(())
}

/// One judged event of an operation: its phase, result class and snapshots (see
/// [`Observed::snapshots`]).
type Event = (Phase, String, Vec<i64>);

fn whole(result: String) -> Vec<Event> {
    vec![(Phase::Whole, result, Vec::new())]
}

/// Runs one operation: its judged events (one, or a prune's listing and removals).
fn run_op<W: World>(store: &Datastore<W>, groups: &[BackupGroup], op: &Op) -> Vec<Event> {
    let class = |result: Result<(), Error>| match result {
        Ok(()) => results::OK.to_owned(),
        Err(err) => error_class(err),
    };
    let target = |group: &usize, time: &i64| dir(&groups[*group], *time);
    match op {
        Op::Backup {
            group,
            time,
            archives,
        } => {
            let result = target(group, time)
                .and_then(|dir| backup_snapshot(store, &dir, OWNER, &specs(archives)).map(drop));
            whole(class(result))
        }
        Op::Reader { group, time } => whole(class(
            target(group, time).and_then(|dir| read_all(store, &dir)),
        )),
        Op::Gc { cutoff } => {
            let options = GcOptions {
                cutoff: Duration::from_secs(*cutoff as u64),
                atime_safety_check: false,
                ..GcOptions::default()
            };
            whole(class(store.garbage_collection(&options).map(drop)))
        }
        Op::Forget { group, time } => whole(class(
            target(group, time).and_then(|dir| store.forget_snapshot(&dir)),
        )),
        Op::Prune { group, keep_last } => prune(store, &groups[*group], *keep_last),
        Op::Verify { group, time } => whole(match target(group, time) {
            Ok(dir) => verify(store, &dir),
            Err(err) => error_class(err),
        }),
        Op::Notes { group, time } => {
            let result = target(group, time)
                .and_then(|dir| store.set_snapshot_notes(&dir, &notes_text(*time)));
            whole(class(result))
        }
        Op::Protect { group, time, on } => whole(class(
            target(group, time).and_then(|dir| store.set_protection(&dir, *on)),
        )),
        Op::Owner { group } => {
            // Two store calls, judged as two events: the owner stays set when the notes fail.
            let group = &groups[*group];
            let owner_class = |result: Result<(), Error>| match result {
                Err(Error::Io(err)) if err.kind() == std::io::ErrorKind::NotFound => {
                    results::GROUP_VANISHED.to_owned()
                }
                result => class(result),
            };
            let owner = owner_class(store.set_group_owner(group, OWNER));
            if owner != results::OK {
                return vec![(Phase::OwnerSet, owner, Vec::new())];
            }
            let notes = owner_class(store.set_group_notes(group, OWNER_NOTES));
            vec![
                (Phase::OwnerSet, owner, Vec::new()),
                (Phase::GroupNotes, notes, Vec::new()),
            ]
        }
    }
}

fn error_class(err: Error) -> String {
    match err {
        err if err.is_contention() => results::BUSY.to_owned(),
        Error::SnapshotNotFound(_) => results::NOT_FOUND.to_owned(),
        Error::BackupTimeNotNewer { .. } => results::NOT_NEWER.to_owned(),
        Error::Protected(_) => results::PROTECTED.to_owned(),
        Error::GroupNotFound(_) => results::GROUP_NOT_FOUND.to_owned(),
        Error::BaseVanished { .. } => results::BASE_VANISHED.to_owned(),
        Error::Manifest(inner) if inner.is_not_found() => results::UNFINISHED.to_owned(),
        err => format!("error: {err}"),
    }
}

/// A reader session reading every index and every chunk.
fn read_all<W: World>(store: &Datastore<W>, dir: &BackupDir) -> Result<(), Error> {
    let mut session = store.open_reader(dir)?;
    let names: Vec<String> = session
        .manifest()
        .files
        .iter()
        .map(|f| f.filename.clone())
        .collect();
    for name in names {
        let index = session.open_index(&name)?;
        for digest in index.digests() {
            session.read_chunk(digest)?;
        }
    }
    Ok(())
}

fn prune<W: World>(store: &Datastore<W>, group: &BackupGroup, keep_last: u32) -> Vec<Event> {
    let report = match prune_keep_last(store, group, keep_last) {
        Ok(report) => report,
        Err(err) => return vec![(Phase::PruneList, error_class(err), Vec::new())],
    };
    // The store removes the marked snapshots oldest first (its entries are newest first).
    let marked: Vec<_> = report
        .entries
        .iter()
        .rev()
        .filter(|entry| !entry.mark.keep())
        .collect();
    let times: Vec<i64> = marked.iter().map(|e| e.info.dir.time.epoch()).collect();
    let mut events = vec![(Phase::PruneList, results::OK.to_owned(), times)];
    for entry in marked {
        let result = match &entry.outcome {
            PruneOutcome::Removed => results::OK.to_owned(),
            PruneOutcome::NotRemoved(err) if err.is_contention() => results::BUSY.to_owned(),
            PruneOutcome::NotRemoved(Error::SnapshotNotFound(_)) => results::NOT_FOUND.to_owned(),
            PruneOutcome::NotRemoved(Error::Protected(_)) => results::PROTECTED.to_owned(),
            PruneOutcome::NotRemoved(err) => format!("error: prune: {err}"),
            other => format!("error: prune left a marked snapshot as {other:?}"),
        };
        events.push((
            Phase::PruneRemove,
            result,
            vec![entry.info.dir.time.epoch()],
        ));
    }
    events
}

fn verify<W: World>(store: &Datastore<W>, dir: &BackupDir) -> String {
    let options = VerifyOptions {
        ignore_verified: false,
        ..VerifyOptions::default()
    };
    match store.verify_snapshot(&mut VerifyJob::new(), &options, dir) {
        Ok(VerifyOutcome::Skipped(SkipReason::LockBusy)) => results::BUSY.to_owned(),
        Ok(VerifyOutcome::Skipped(SkipReason::Vanished)) => results::NOT_FOUND.to_owned(),
        Ok(VerifyOutcome::Skipped(reason)) => format!("error: skipped {reason:?}"),
        Ok(VerifyOutcome::Verified { ok: true, .. }) => results::OK.to_owned(),
        Ok(VerifyOutcome::Verified { problems, .. }) => {
            let only_state = problems.iter().all(|problem| {
                matches!(problem, VerifyProblem::StateNotSaved { source } if source.is_contention())
            });
            if only_state {
                results::STATE_NOT_SAVED.to_owned()
            } else {
                format!("error: verify failed: {problems:?}")
            }
        }
        Err(err) => error_class(err),
    }
}

fn run_actor<S: SyncFamily>(state: &GeneratedState<S>, actor: usize) -> Outcome {
    let spec = &state.case.actors[actor];
    let store = &state.stores[spec.process];
    let mut last = String::new();
    let mut step = 0;
    for item in &spec.steps {
        if item.advance > 0 {
            store.world().advance(item.advance);
        }
        let start = state.ticks.fetch_add(1, Ordering::SeqCst);
        let events = run_op(store, &state.groups, &item.op);
        let end = state.ticks.fetch_add(1, Ordering::SeqCst);
        last.push_str(if last.is_empty() { "" } else { "," });
        let results: Vec<&str> = events
            .iter()
            .map(|(_, result, _)| result.as_str())
            .collect();
        last.push_str(&results.join("+"));
        let mut observed = state
            .observed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (phase, result, snapshots) in events {
            observed.push(Observed {
                actor,
                step,
                phase,
                op: item.op.clone(),
                result,
                snapshots,
                start,
                end,
            });
            step += 1;
        }
    }
    Outcome::new(last)
}

fn a0<S: SyncFamily>(state: &GeneratedState<S>) -> Outcome {
    run_actor(state, 0)
}
fn a1<S: SyncFamily>(state: &GeneratedState<S>) -> Outcome {
    run_actor(state, 1)
}
fn a2<S: SyncFamily>(state: &GeneratedState<S>) -> Outcome {
    run_actor(state, 2)
}
fn a3<S: SyncFamily>(state: &GeneratedState<S>) -> Outcome {
    run_actor(state, 3)
}

impl Scenario for Generated {
    type State<S: SyncFamily> = GeneratedState<S>;

    fn name(&self) -> String {
        self.name.clone()
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<GeneratedState<S>, ScenarioError> {
        let store = new_datastore(world, self.regressions)?;
        plant(world, &store, &self.case)
            .map_err(|err| ScenarioError::setup("plant the case", err))?;
        let mut stores = vec![store];
        if self.case.processes > 1 {
            stores.push(open_in_new_process(world, &stores[0])?);
        }
        Ok(GeneratedState {
            case: Arc::clone(&self.case),
            stores,
            groups: (0..self.case.groups.len()).map(group_of).collect(),
            ticks: AtomicU64::new(0),
            observed: Mutex::new(Vec::new()),
        })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<GeneratedState<S>>> {
        let all: [Actor<GeneratedState<S>>; 4] = [
            Actor::new("a0", a0::<S>),
            Actor::new("a1", a1::<S>),
            Actor::new("a2", a2::<S>),
            Actor::new("a3", a3::<S>),
        ];
        all.into_iter().take(self.case.actors.len()).collect()
    }

    fn check<S: SyncFamily>(
        &self,
        state: &GeneratedState<S>,
        _: &Outcomes,
    ) -> Result<(), ScenarioError> {
        let store = &state.stores[0];
        if let Some(missing) = missing_chunk(store)? {
            return Err(ScenarioError::violation(format!("{MISSING}: {missing}")));
        }
        let end = Final::read(store, &state.groups).map_err(ScenarioError::violation)?;
        let observed = state
            .observed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        oracle::check(
            &Model::initial(&self.case),
            &observed,
            self.case.actors.len(),
            &end,
        )
        .map_err(ScenarioError::violation)?;
        if !self.liveness {
            return Ok(());
        }
        super::liveness::check(store, &state.groups).map_err(ScenarioError::violation)
    }

    fn loom(&self) -> bool {
        self.case.steps() <= LOOM_STEPS
    }
}

/// Cases with at most this many operations are also explored by loom.
pub const LOOM_STEPS: usize = 2;

/// The invariant message of a chunk missing from a finished snapshot.
pub const MISSING: &str = "a chunk of a finished snapshot is missing";
