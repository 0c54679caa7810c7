//! B16: a lock file unlinked while held must not be owned twice.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sim::SimWorld;
use store::locks::{LockError, lock_file_with_regressions};
use store::regressions::{Bug, Regressions};
use store::sync::{Mutex, SyncFamily};
use store::world::{LockMode, LockWait, World};

use crate::explore::Explorer;
use crate::regressions::Variant;
use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};

/// The message of the violation: two holders at once.
pub const VIOLATION: &str = "two actors held the lock at once";

pub(crate) const HELD: Outcome = Outcome::label("held");
pub(crate) const REPLACED: Outcome = Outcome::label("replaced");

/// B16 (pbs.md §8, interleaving B; commits `23be00a42` … `04e50855b`): locks on inodes that
/// get deleted.
///
/// Setup: an empty lock directory. Actors: three **holders**, each doing what forget does with
/// its snapshot and manifest locks: lock the lock file (waiting), work while holding it, unlink
/// the lock file while still holding it, release.
///
/// Interleaving: holder 1 holds the lock on inode X; holder 2 opened X and waits; holder 1
/// unlinks the path and releases; holder 2 is granted X; holder 3 opens the path, creates a new
/// inode Y and locks it. Holders 2 and 3 both "hold the lock".
///
/// Fix: the double-stat identity check: after the flock is granted, the inode of the open file
/// must be the inode the path names now, otherwise the lock is refused as replaced (holder 2).
/// Reverted by [`Bug::B16LockWithoutIdentityCheck`]. Check: never two holders at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct LockIdentity(pub Variant);

/// The world, the lock file, and who is inside the critical section.
pub struct LockIdentityState<S: SyncFamily> {
    world: SimWorld<S>,
    path: PathBuf,
    regressions: Regressions,
    /// (holders now, most holders seen at once).
    holders: Mutex<S, (u32, u32)>,
}

/// The explorers that must catch the reverted variant: all but PCT depth 2. The window needs
/// two preemptions of the first holder's run (one while it holds the lock, so a waiter opens
/// the old inode; one after its unlink, so a newcomer opens the path only then), and waiters
/// of the old inode get it one after the other; PCT with one change point cannot order that.
pub const EXPLORERS: &[Explorer] = &[
    Explorer::Random,
    Explorer::Pct { depth: 3 },
    Explorer::Urw,
    Explorer::Loom {
        preemption_bound: Some(Explorer::DEFAULT_LOOM_BOUND),
    },
];

impl LockIdentity {
    /// The explorers that must catch the reverted variant ([`EXPLORERS`]).
    pub fn explorers(&self) -> &'static [Explorer] {
        EXPLORERS
    }
}

fn holder<S: SyncFamily>(state: &LockIdentityState<S>) -> Outcome {
    let wait = LockWait::Timeout(Duration::from_secs(5));
    let locked = lock_file_with_regressions(
        &state.world,
        &state.path,
        "the shared object",
        LockMode::Exclusive,
        wait,
        state.regressions,
    );
    let guard = match locked {
        Ok(guard) => guard,
        Err(LockError::Replaced { .. }) => return REPLACED,
        Err(err) if err.is_contention() => return Outcome::BUSY,
        Err(err) => return Outcome::error(err),
    };
    {
        let mut holders = state.holders.lock();
        holders.0 += 1;
        holders.1 = holders.1.max(holders.0);
    }
    // The work done under the lock: looking at the protected object.
    let _ = state.world.try_metadata(&state.path);
    state.holders.lock().0 -= 1;
    match guard.remove(&state.world) {
        Ok(()) => HELD,
        Err(err) => Outcome::error(err),
    }
}

impl Scenario for LockIdentity {
    type State<S: SyncFamily> = LockIdentityState<S>;

    fn name(&self) -> String {
        self.0.name("lock-identity", "B16")
    }

    fn setup<S: SyncFamily>(
        &self,
        world: &SimWorld<S>,
    ) -> Result<LockIdentityState<S>, ScenarioError> {
        Ok(LockIdentityState {
            world: world.clone(),
            path: Path::new("/locks/object").to_owned(),
            regressions: self.0.regressions(Bug::B16LockWithoutIdentityCheck),
            holders: Mutex::new((0, 0)),
        })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<LockIdentityState<S>>> {
        vec![
            Actor::new("holder-1", holder::<S>),
            Actor::new("holder-2", holder::<S>),
            Actor::new("holder-3", holder::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &LockIdentityState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        check_lock_identity(outcomes, state.holders.lock().1)
    }
}

/// The check of [`LockIdentity`] (also run by its real-world twin): every holder held the lock,
/// was refused or found it busy, and at most one held it at a time (`most`: the most holders
/// seen at once).
pub(crate) fn check_lock_identity(outcomes: &Outcomes, most: u32) -> Result<(), ScenarioError> {
    for actor in ["holder-1", "holder-2", "holder-3"] {
        outcomes.expect(actor, &[HELD, REPLACED, Outcome::BUSY])?;
    }
    if most > 1 {
        return Err(ScenarioError::violation(format!("{VIOLATION} ({most})")));
    }
    Ok(())
}
