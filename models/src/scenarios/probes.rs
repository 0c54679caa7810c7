//! Probes: scenarios that test the exploration engine itself, not the store.
//!
//! * [`DeepStack`]: actors that need a few hundred KiB of stack, as SHA-256 and serde-heavy
//!   store code does; they run only because the engine raises shuttle's 60 KiB task stack.
//! * [`Livelock`]: an actor that spins forever on a flag nobody sets; shuttle's step bound
//!   (and loom's branch bound) must turn it into a failure instead of a hang.
//! * [`Leaky`]: an actor whose number of steps depends on std's randomly keyed hasher, which no
//!   scheduler controls; the determinism check must notice.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use sim::SimWorld;
use store::sync::{Mutex, SyncFamily};

use crate::scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};

/// Stack each [`DeepStack`] actor uses, about.
pub const DEEP_STACK_BYTES: usize = 256 << 10;

/// Two actors that each recurse through [`DEEP_STACK_BYTES`] of stack frames, taking a lock at
/// the bottom.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeepStack;

/// State of the probes: one counter under a mutex of the sync family.
pub struct ProbeState<S: SyncFamily> {
    counter: Mutex<S, u64>,
}

fn probe_state<S: SyncFamily>() -> ProbeState<S> {
    ProbeState {
        counter: Mutex::new(0),
    }
}

/// Recurses `depth` frames of 4 KiB each, then bumps the counter.
fn descend<S: SyncFamily>(state: &ProbeState<S>, depth: usize) -> u64 {
    let mut frame = [0u8; 4096];
    frame[depth % 4096] = depth as u8;
    let frame = std::hint::black_box(frame);
    if depth == 0 {
        *state.counter.lock() += 1;
        u64::from(frame[0])
    } else {
        descend(state, depth - 1) + u64::from(frame[depth % 4096])
    }
}

fn deep<S: SyncFamily>(state: &ProbeState<S>) -> Outcome {
    descend(state, DEEP_STACK_BYTES / 4096);
    Outcome::OK
}

impl Scenario for DeepStack {
    type State<S: SyncFamily> = ProbeState<S>;

    fn name(&self) -> String {
        "probe/deep-stack".to_owned()
    }

    fn setup<S: SyncFamily>(&self, _: &SimWorld<S>) -> Result<ProbeState<S>, ScenarioError> {
        Ok(probe_state())
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<ProbeState<S>>> {
        vec![
            Actor::new("deep-1", deep::<S>),
            Actor::new("deep-2", deep::<S>),
        ]
    }

    fn check<S: SyncFamily>(
        &self,
        state: &ProbeState<S>,
        _: &Outcomes,
    ) -> Result<(), ScenarioError> {
        match *state.counter.lock() {
            2 => Ok(()),
            other => Err(ScenarioError::violation(format!(
                "counter is {other}, not 2"
            ))),
        }
    }
}

/// One actor spins on a flag that the other never sets.
#[derive(Debug, Clone, Copy, Default)]
pub struct Livelock;

fn spin<S: SyncFamily>(state: &ProbeState<S>) -> Outcome {
    while *state.counter.lock() < 1_000 {}
    Outcome::OK
}

fn idle<S: SyncFamily>(state: &ProbeState<S>) -> Outcome {
    drop(state.counter.lock());
    Outcome::OK
}

impl Scenario for Livelock {
    type State<S: SyncFamily> = ProbeState<S>;

    fn name(&self) -> String {
        "probe/livelock".to_owned()
    }

    fn setup<S: SyncFamily>(&self, _: &SimWorld<S>) -> Result<ProbeState<S>, ScenarioError> {
        Ok(probe_state())
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<ProbeState<S>>> {
        vec![Actor::new("spin", spin::<S>), Actor::new("idle", idle::<S>)]
    }

    fn check<S: SyncFamily>(&self, _: &ProbeState<S>, _: &Outcomes) -> Result<(), ScenarioError> {
        Ok(())
    }
}

/// One actor takes the mutex a number of times that std's hasher picks, which differs between
/// executions of the same schedule.
#[derive(Debug, Clone, Copy, Default)]
pub struct Leaky;

fn leaky<S: SyncFamily>(state: &ProbeState<S>) -> Outcome {
    // Every `RandomState` gets fresh keys: uncontrolled by any scheduler.
    let rounds = 1 + RandomState::new().hash_one(0u8) % 4;
    for _ in 0..rounds {
        *state.counter.lock() += 1;
    }
    Outcome::OK
}

fn steady<S: SyncFamily>(state: &ProbeState<S>) -> Outcome {
    *state.counter.lock() += 1;
    Outcome::OK
}

impl Scenario for Leaky {
    type State<S: SyncFamily> = ProbeState<S>;

    fn name(&self) -> String {
        "probe/leaky".to_owned()
    }

    fn setup<S: SyncFamily>(&self, _: &SimWorld<S>) -> Result<ProbeState<S>, ScenarioError> {
        Ok(probe_state())
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<ProbeState<S>>> {
        vec![
            Actor::new("leaky", leaky::<S>),
            Actor::new("steady", steady::<S>),
        ]
    }

    fn check<S: SyncFamily>(&self, _: &ProbeState<S>, _: &Outcomes) -> Result<(), ScenarioError> {
        Ok(())
    }
}
