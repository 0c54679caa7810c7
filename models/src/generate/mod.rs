//! Generative concurrency exploration: random store states × random concurrent operations ×
//! schedules, judged by a sequential reference model.
//!
//! * [`case`]: a case as data (groups, planted snapshots, archives sharing chunks, protection,
//!   notes, an unfinished snapshot; 1–2 processes; 2–4 actors of 1–3 steps with clock moves).
//! * [`strategy`]: the proptest strategies that draw cases, and [`strategy::draw`], the
//!   `index`-th case of a seed.
//! * [`model`]: the sequential reference model, every rule in one place; it never calls store
//!   code.
//! * [`run`]: a case as a [`crate::scenario::Scenario`] over the real store; its check runs the
//!   chunk invariant (every chunk of every finished snapshot exists, as the race regressions
//!   check it) and the [`oracle`].
//! * [`observe`]: the observed operations (result, real-time interval) and final state.
//! * [`oracle`]: the search for a serial order consistent with real time that the model
//!   explains, and the liveness rule for contention outcomes.
//! * [`liveness`]: the phase after every execution: locks free, GC, a backup of every group
//!   and a verify of every snapshot succeed, no temporary file left, exactly the referenced
//!   chunks stored.
//! * [`hunt`]: the runner (cases × explorers × executions), the case shrinker and the report.

pub mod case;
pub mod hunt;
pub mod liveness;
pub mod model;
pub mod observe;
pub mod oracle;
pub mod run;
pub mod strategy;
