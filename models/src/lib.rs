//! Concurrent scenarios over the real store code, and the explorers that run them.
//!
//! A scenario is a plain function that builds a fresh simulated world, runs real store
//! operations on 2–4 threads of a [`SyncFamily`](store::sync::SyncFamily), joins them and
//! asserts the invariants. [`explore`] runs it under one shuttle scheduler or under loom and
//! reports what it found.

pub mod explore;
pub mod scenarios;
