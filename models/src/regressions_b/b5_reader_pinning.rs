//! B5: reader sessions and verify take no snapshot lock (pbs.md §8 B5).
//!
//! **Bug.** A restore (reader session) or a verify works on a snapshot without holding any
//! lock on it, so `forget` (or prune) removes the snapshot under it: the reader's downloads
//! fail half-way, verify reports a damaged snapshot (missing index, state not saved) although
//! nothing was ever wrong with it; with a GC in between, the chunks the reader was promised are
//! swept.
//!
//! **Interleaving.** reader: opens the session (manifest loaded) → forget: removes the
//! snapshot → reader: downloads `root.didx`: not found. Likewise verify: loads the manifest →
//! forget → verify opens the index: not found, snapshot marked failed (or its state not saved).
//!
//! **Fix.** Reader sessions and verify hold the snapshot's shared lock for their whole run;
//! forget needs it exclusively and fails busy instead (I6). A reader that comes after a forget
//! finds the snapshot gone before it reads anything; verify skips it.
//! [`store::regressions::Bug::B5ReadersTakeNoLock`] takes both locks out.
//!
//! **Setup.** `vm/100/S0` with `root.didx` = A, B. **Invariant:** a snapshot that a reader
//! opened or verify started on is not destroyed under it. **Explorers:** every shuttle
//! scheduler and loom (preemption bound 2) find it.

use sim::SimWorld;
use store::backup_info::BackupDir;
use store::datastore::Datastore;
use store::datastore::verify::{VerifyJob, VerifyOptions, VerifyOutcome};
use store::regressions::Bug;
use store::sync::SyncFamily;
use store::world::World;

use super::{Expect, group, plant_backup, read_snapshot, reverting, snapshot_at, variant_name};
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};

/// The message of the violated invariant.
pub const VIOLATION: &str = "a snapshot in use was destroyed under its user";

/// What exploring the reverted variant must give.
pub const EXPECT_REVERTED: Expect = Expect::Caught(VIOLATION);

/// The outcome of a verify that found the snapshot damaged.
const VERIFY_FAILED: &str = "verify-failed";

/// The scenario; `reverted` takes the fix of B5 out.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReaderPinning {
    /// B5's fix reverted.
    pub reverted: bool,
}

impl ReaderPinning {
    /// Every fix in place.
    pub fn fixed() -> ReaderPinning {
        ReaderPinning { reverted: false }
    }

    /// B5's fix reverted.
    pub fn reverted() -> ReaderPinning {
        ReaderPinning { reverted: true }
    }
}

/// The datastore and its snapshot.
pub struct ReaderPinningState<S: SyncFamily> {
    store: Datastore<SimWorld<S>>,
    dir: BackupDir,
}

fn reader<S: SyncFamily>(state: &ReaderPinningState<S>) -> Outcome {
    read_snapshot(&state.store, &state.dir)
}

/// `ok`, `skipped` (busy or vanished), or [`VERIFY_FAILED`] with the first problem.
pub(crate) fn verify_outcome<W: World>(store: &Datastore<W>, dir: &BackupDir) -> Outcome {
    let options = VerifyOptions {
        ignore_verified: false,
        ..VerifyOptions::default()
    };
    match store.verify_snapshot(&mut VerifyJob::new(), &options, dir) {
        Ok(VerifyOutcome::Skipped(_)) => Outcome::label("skipped"),
        Ok(VerifyOutcome::Verified { ok: true, .. }) => Outcome::OK,
        Ok(VerifyOutcome::Verified { problems, .. }) => {
            let first = problems
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            Outcome::new(format!("{VERIFY_FAILED}: {first}"))
        }
        Err(err) => Outcome::error(err),
    }
}

fn verify<S: SyncFamily>(state: &ReaderPinningState<S>) -> Outcome {
    verify_outcome(&state.store, &state.dir)
}

fn forget<S: SyncFamily>(state: &ReaderPinningState<S>) -> Outcome {
    Outcome::of(&state.store.forget_snapshot(&state.dir))
}

impl Scenario for ReaderPinning {
    type State<S: SyncFamily> = ReaderPinningState<S>;

    fn name(&self) -> String {
        variant_name("b5-reader-pinning", self.reverted, "B5")
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<ReaderPinningState<S>, ScenarioError> {
        let store = crate::scenarios::new_datastore(
            world,
            reverting(self.reverted, Bug::B5ReadersTakeNoLock),
        )?;
        let dir = snapshot_at(&group("vm/100")?, world.now())?;
        plant_backup(&store, &dir, &["A", "B"])?;
        Ok(ReaderPinningState { store, dir })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<ReaderPinningState<S>>> {
        vec![
            Actor::new("reader", reader::<S>),
            Actor::new("verify", verify::<S>),
            Actor::new("forget", forget::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        _state: &ReaderPinningState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        check_reader_pinning(outcomes)
    }
}

/// The check of [`ReaderPinning`] (also run by its real-world twin): nobody lost the snapshot
/// under them, and every actor ended as allowed.
pub(crate) fn check_reader_pinning(outcomes: &Outcomes) -> Result<(), ScenarioError> {
    for (actor, outcome) in outcomes.iter() {
        let text = outcome.as_str();
        if text.starts_with("lost: ") || text.starts_with(VERIFY_FAILED) {
            return Err(ScenarioError::violation(format!(
                "{VIOLATION}: {actor} ended `{text}`"
            )));
        }
    }
    outcomes.expect("reader", &[Outcome::OK, Outcome::BUSY, Outcome::NOT_FOUND])?;
    outcomes.expect("verify", &[Outcome::OK, Outcome::label("skipped")])?;
    outcomes.expect("forget", &[Outcome::OK, Outcome::BUSY])?;
    Ok(())
}
