//! Concurrent scenarios over the real store code, and the engine that explores them.
//!
//! * [`scenario`]: how a scenario is declared: a setup in a fresh simulated world, 1–4 actors
//!   running real store operations and returning printable [`Outcome`]s, and a check of the
//!   invariants and of each actor's allowed outcomes.
//! * [`explore`]: the explorers (shuttle random, PCT, URW; loom with a preemption bound), run as
//!   a portfolio under a [`Plan`] with a [`Budget`]; failures are recorded with their schedule
//!   and replay in one execution; a determinism check; counters per run.
//! * [`knobs`]: the `EXPLORE_*` environment variables.
//! * [`scenarios`]: the scenarios themselves, and probes that test the engine.
//! * [`cells`]: the executable locking table of `LOCKING.md`.
//! * [`regressions`], [`regressions_b`]: one scenario per historical race, fixed and reverted.
//! * [`real`]: real-thread, real-filesystem twins of some race scenarios, for comparison.

#![warn(missing_docs)]

pub mod cells;
pub mod crash;
pub mod explore;
pub mod explorer;
pub mod failure;
pub mod generate;
pub mod knobs;
pub mod real;
pub mod recorder;
pub mod regressions;
pub mod regressions_b;
pub mod scenario;
pub mod scenarios;
pub mod shrink;
pub mod trace;

pub use explore::{Budget, Exploration, Explorer, Failure, Limits, Plan, Report};
pub use scenario::{Actor, Outcome, Outcomes, Scenario, ScenarioError};
