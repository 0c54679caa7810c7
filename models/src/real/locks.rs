//! Twin of the lock race B16: three holders that lock, unlink and release one lock file.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use store::locks::{LockError, lock_file_with_regressions};
use store::regressions::{Bug, Regressions};
use store::world::{LockMode, LockWait, RealWorld, World};

use super::{RealError, RunResult, race, verdict};
use crate::regressions::lock_identity::{HELD, REPLACED, check_lock_identity};
use crate::regressions_b::reverting;
use crate::scenario::Outcome;

struct Identity {
    path: PathBuf,
    regressions: Regressions,
    /// (holders now, most holders seen at once).
    holders: Mutex<(u32, u32)>,
}

impl Identity {
    fn count(&self, change: impl FnOnce(&mut (u32, u32))) {
        // A poisoned counter still holds its numbers.
        let mut holders = self
            .holders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut holders);
    }
}

/// B16: three holders of `<scratch>/locks/object`, each doing what forget does with its locks.
pub(super) fn lock_identity(scratch: &Path, reverted: bool) -> Result<RunResult, RealError> {
    let state = Identity {
        path: scratch.join("locks").join("object"),
        regressions: reverting(reverted, Bug::B16LockWithoutIdentityCheck),
        holders: Mutex::new((0, 0)),
    };
    let outcomes = race(
        &state,
        &[
            ("holder-1", holder),
            ("holder-2", holder),
            ("holder-3", holder),
        ],
    );
    let mut most = 0;
    state.count(|holders| most = holders.1);
    Ok(verdict(check_lock_identity(&outcomes, most)))
}

/// Lock (waiting), look at the protected object, unlink the lock file while holding it, release.
fn holder(state: &Identity) -> Outcome {
    let world = RealWorld::new();
    let locked = lock_file_with_regressions(
        &world,
        &state.path,
        "the shared object",
        LockMode::Exclusive,
        LockWait::Timeout(Duration::from_secs(5)),
        state.regressions,
    );
    let guard = match locked {
        Ok(guard) => guard,
        Err(LockError::Replaced { .. }) => return REPLACED,
        Err(err) if err.is_contention() => return Outcome::BUSY,
        Err(err) => return Outcome::error(err),
    };
    state.count(|holders| {
        holders.0 += 1;
        holders.1 = holders.1.max(holders.0);
    });
    // The work done under the lock: looking at the protected object.
    let _ = world.try_metadata(&state.path);
    state.count(|holders| holders.0 -= 1);
    match guard.remove(&world) {
        Ok(()) => HELD,
        Err(err) => Outcome::error(err),
    }
}
