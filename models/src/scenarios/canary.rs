//! The canary: a check-then-act on the simulated filesystem under a lock that can be broken.
//!
//! Two actors each try to claim `/claim`: under the lock, if the file does not exist they write
//! their name into it and report `claimed`, otherwise they report `lost`. Exactly one actor may
//! claim. With [`Canary::locked`] the lock is a real mutex of the world's sync family and no
//! schedule breaks the rule; [`Canary::unlocked`] takes a lock wrapper that does not lock, and a
//! schedule that preempts one actor between its check and its write lets both claim.
//!
//! The canary exists to test the explorers: every one of them must find the broken variant
//! within a small budget, and none may report the locked one.

use std::path::Path;

use sim::SimWorld;
use store::sync::{Mutex, SyncFamily};
use store::world::{OpenOptions, World, WorldFile};

use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};

/// The message of the canary's violation.
pub const VIOLATION: &str = "two actors claimed";

const CLAIM: &str = "/claim";
const CLAIMED: Outcome = Outcome::label("claimed");
const LOST: Outcome = Outcome::label("lost");

/// The canary scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canary {
    /// Whether the claim lock really locks.
    pub locked: bool,
}

impl Canary {
    /// The canary with a working lock (must pass).
    pub fn locked() -> Canary {
        Canary { locked: true }
    }

    /// The canary with a lock that does not lock (must be caught).
    pub fn unlocked() -> Canary {
        Canary { locked: false }
    }
}

/// The canary's shared state.
pub struct CanaryState<S: SyncFamily> {
    world: SimWorld<S>,
    locked: bool,
    lock: Mutex<S, ()>,
}

impl<S: SyncFamily> CanaryState<S> {
    /// Claims `/claim` for `name` under the (possibly broken) lock.
    fn claim(&self, name: &str) -> Outcome {
        // The broken wrapper hands out no guard at all.
        let _guard = self.locked.then(|| self.lock.lock());
        let path = Path::new(CLAIM);
        match self.world.try_metadata(path) {
            Ok(Some(_)) => LOST,
            Ok(None) => {
                let written = self
                    .world
                    .open(path, OpenOptions::create_truncate())
                    .and_then(|file| file.write_at(0, name.as_bytes()));
                match written {
                    Ok(()) => CLAIMED,
                    Err(err) => Outcome::error(err),
                }
            }
            Err(err) => Outcome::error(err),
        }
    }
}

fn claim_a<S: SyncFamily>(state: &CanaryState<S>) -> Outcome {
    state.claim("a")
}

fn claim_b<S: SyncFamily>(state: &CanaryState<S>) -> Outcome {
    state.claim("b")
}

impl Scenario for Canary {
    type State<S: SyncFamily> = CanaryState<S>;

    fn name(&self) -> String {
        if self.locked {
            "canary/locked"
        } else {
            "canary/unlocked"
        }
        .to_owned()
    }

    fn setup<S: SyncFamily>(&self, world: &SimWorld<S>) -> Result<CanaryState<S>, ScenarioError> {
        Ok(CanaryState {
            world: world.clone(),
            locked: self.locked,
            lock: Mutex::new(()),
        })
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<CanaryState<S>>> {
        vec![Actor::new("a", claim_a::<S>), Actor::new("b", claim_b::<S>)]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &CanaryState<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        outcomes.expect("a", &[CLAIMED, LOST])?;
        outcomes.expect("b", &[CLAIMED, LOST])?;
        let claimers: Vec<&str> = outcomes
            .iter()
            .filter(|(_, outcome)| *outcome == CLAIMED)
            .map(|(name, _)| *name)
            .collect();
        if claimers.len() != 1 {
            return Err(ScenarioError::violation(format!(
                "{VIOLATION}: {claimers:?} claimed"
            )));
        }
        let content = state
            .world
            .read_file(Path::new(CLAIM))
            .map_err(|err| ScenarioError::violation(format!("claim file unreadable: {err}")))?;
        if content != claimers[0].as_bytes() {
            return Err(ScenarioError::violation(format!(
                "claim file holds {:?}, claimed by {}",
                String::from_utf8_lossy(&content),
                claimers[0]
            )));
        }
        Ok(())
    }
}
