//! A cell of the locking table as a [`Scenario`]: two actors, the cell's check.

use sim::SimWorld;
use store::backup_info::BackupDir;
use store::index::IndexFile;
use store::regressions::Regressions;
use store::sync::SyncFamily;

use super::ops::{self, CellState, RUNNING_NOTES, Role, starting_stats};
use super::{CellSpec, Op};
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};

/// Prefix of every cell scenario's name: `cell/<cell id>`.
pub const NAME_PREFIX: &str = "cell/";

/// One cell of the locking table, run as a scenario: the `running` actor starts the cell's
/// running operation and opens the gate once it has started, the `starting` actor then starts
/// the other one; the check asserts the invariants I1–I11 that the cell can touch and the
/// cell's allowed outcomes.
#[derive(Debug, Clone, Copy)]
pub struct Cell {
    /// The cell.
    pub spec: &'static CellSpec,
    /// Historical fixes reverted in the store under test.
    pub regressions: Regressions,
}

impl Cell {
    /// The cell with every fix in place.
    pub fn new(spec: &'static CellSpec) -> Cell {
        Cell {
            spec,
            regressions: Regressions::none(),
        }
    }

    /// The cell with the fix of its [`CellSpec::bug`] reverted; `None` if it names none.
    pub fn reverted(spec: &'static CellSpec) -> Option<Cell> {
        spec.bug.map(|bug| Cell {
            spec,
            regressions: Regressions::none().with(bug),
        })
    }
}

fn running<S: SyncFamily>(state: &CellState<S>) -> Outcome {
    ops::run(state, state.spec.running, Role::Running)
}

fn starting<S: SyncFamily>(state: &CellState<S>) -> Outcome {
    ops::run(state, state.spec.starting, Role::Starting)
}

fn violation(message: impl Into<String>) -> ScenarioError {
    ScenarioError::violation(message)
}

fn expect(outcomes: &Outcomes, actor: &str, allowed: &[&str]) -> Result<(), ScenarioError> {
    let allowed: Vec<Outcome> = allowed.iter().map(|label| Outcome::new(*label)).collect();
    outcomes.expect(actor, &allowed)
}

impl Scenario for Cell {
    type State<S: SyncFamily> = CellState<S>;

    fn name(&self) -> String {
        let mut name = format!("{NAME_PREFIX}{}", self.spec.id());
        if let Some(bug) = self
            .spec
            .bug
            .filter(|bug| self.regressions.is_reverted(*bug))
        {
            name.push_str(&format!("/{bug:?}-reverted"));
        }
        name
    }

    fn loom(&self) -> bool {
        self.spec.loom()
    }

    fn setup<S: SyncFamily>(&self, world: &SimWorld<S>) -> Result<CellState<S>, ScenarioError> {
        CellState::setup(self.spec, world, self.regressions)
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<CellState<S>>> {
        vec![
            Actor::new("running", running::<S>),
            Actor::new("starting", starting::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &CellState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        check_invariants(state, outcomes)?;
        expect(outcomes, "running", self.spec.running_outcomes)?;
        expect(outcomes, "starting", self.spec.starting_outcomes)?;
        Ok(())
    }
}

/// The outcome of the actor(s) running `op`, with their role.
fn outcomes_of<'a>(spec: &CellSpec, outcomes: &'a Outcomes, op: Op) -> Vec<(Role, &'a Outcome)> {
    let mut found = Vec::new();
    if spec.running == op
        && let Some(outcome) = outcomes.of("running")
    {
        found.push((Role::Running, outcome));
    }
    if spec.starting == op
        && let Some(outcome) = outcomes.of("starting")
    {
        found.push((Role::Starting, outcome));
    }
    found
}

fn any_ok(spec: &CellSpec, outcomes: &Outcomes, ops: &[Op]) -> bool {
    ops.iter().any(|op| {
        outcomes_of(spec, outcomes, *op)
            .iter()
            .any(|(_, outcome)| **outcome == Outcome::OK)
    })
}

/// The global invariants, checked after every execution of every cell.
fn check_invariants<S: SyncFamily>(
    state: &CellState<S>,
    outcomes: &Outcomes,
) -> Result<(), ScenarioError> {
    let spec = state.spec;
    let store = &state.store;
    let failed = |what: &str, err: &dyn std::fmt::Display| violation(format!("{what}: {err}"));
    let listed = store
        .list_snapshots(&state.group)
        .map_err(|err| failed("listing the group", &err))?;
    let exists = |dir: &BackupDir| listed.iter().find(|info| info.dir == *dir);

    // I1, I2, I4, I8: every finished snapshot is whole and every chunk it references loads.
    for info in listed.iter().filter(|info| info.finished) {
        let manifest = store
            .load_manifest(&info.dir)
            .map_err(|err| failed(&format!("manifest of {}", info.dir), &err))?;
        let path = store.snapshot_path(&info.dir);
        for file in &manifest.files {
            let index =
                IndexFile::open(store.world(), &path.join(&file.filename)).map_err(|err| {
                    violation(format!(
                        "a finished snapshot misses a file: {} of {}: {err}",
                        file.filename, info.dir
                    ))
                })?;
            for digest in index.digests() {
                if let Err(err) = store.chunk_store().load_chunk(digest) {
                    return Err(violation(format!(
                        "a finished snapshot references a missing chunk: {} of {}: {err}",
                        digest.to_hex(),
                        info.dir
                    )));
                }
            }
        }
    }
    if !listed.iter().any(|info| info.finished) {
        return Err(violation("the group has no finished snapshot left"));
    }

    // A backup that ended ok left its snapshot finished; one that failed left nothing.
    if spec.involves(Op::CreateBackup) || spec.involves(Op::CreateIndex) {
        // A backup that finished without its base (never allowed) did finish.
        let backup_ok = any_ok(spec, outcomes, &[Op::CreateBackup, Op::CreateIndex])
            || [Op::CreateBackup, Op::CreateIndex].iter().any(|op| {
                outcomes_of(spec, outcomes, *op)
                    .iter()
                    .any(|(_, outcome)| **outcome == ops::BASE_LOST)
            });
        match (backup_ok, exists(&state.s2)) {
            (true, Some(info)) if info.finished => {}
            (true, _) => {
                return Err(violation(
                    "a backup ended ok but its snapshot is not there finished",
                ));
            }
            (false, Some(_)) => {
                return Err(violation("a failed backup left its snapshot behind"));
            }
            (false, None) => {}
        }
    }

    // Forget: ok exactly when the target is gone (prune may also remove it).
    let target = exists(&state.target);
    let pruned: Vec<BackupDir> = state.pruned.lock().clone();
    if spec.involves(Op::Forget) {
        let forgotten = any_ok(spec, outcomes, &[Op::Forget]);
        if forgotten && target.is_some() {
            return Err(violation("forget ended ok but the snapshot is still there"));
        }
        if !forgotten && target.is_none() && !pruned.contains(&state.target) {
            return Err(violation(
                "the snapshot vanished although nothing removed it",
            ));
        }
    }

    // I10: a snapshot protected by an operation that ended ok is still there, protected.
    if any_ok(spec, outcomes, &[Op::SetProtection]) && !target.is_some_and(|info| info.protected) {
        return Err(violation(
            "protection succeeded but the snapshot is gone or unprotected",
        ));
    }

    // I7: every manifest update that ended ok is visible (if the snapshot still exists).
    if target.is_some_and(|info| info.finished) {
        let manifest = store
            .load_manifest(&state.target)
            .map_err(|err| failed("manifest of the target", &err))?;
        for (role, outcome) in outcomes_of(spec, outcomes, Op::UpdateManifest) {
            if *outcome != Outcome::OK {
                continue;
            }
            let visible = match role {
                Role::Running => manifest.notes().ok().flatten() == Some(RUNNING_NOTES),
                Role::Starting => {
                    manifest.chunk_upload_stats().ok().flatten() == Some(starting_stats())
                }
            };
            if !visible {
                return Err(violation(format!(
                    "an update that succeeded was lost (the {role} update_manifest)"
                )));
            }
        }
        if any_ok(spec, outcomes, &[Op::Verify]) && manifest.verify_state().ok().flatten().is_none()
        {
            return Err(violation(
                "an update that succeeded was lost (verify's state)",
            ));
        }
    }

    // I11: prune never marks the running backup or the newest finished snapshot, and removes
    // S1 only once S2 is finished.
    let wrongly_marked = state.wrongly_marked.lock().clone();
    if let Some(dir) = wrongly_marked.first() {
        return Err(violation(format!(
            "prune marked {dir} for removal: the running backup or the newest finished snapshot"
        )));
    }
    if pruned.contains(&state.s1) && !exists(&state.s2).is_some_and(|info| info.finished) {
        return Err(violation(
            "prune removed S1 although no newer finished snapshot exists",
        ));
    }
    Ok(())
}

/// Every cell scenario that must pass: one per modelled cell.
pub fn all() -> Vec<Cell> {
    super::CELLS.iter().map(Cell::new).collect()
}
