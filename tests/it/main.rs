//! Cross-crate integration tests: the store on the real and the simulated world.
//!
//! One test binary (fast to link). Generic test bodies are written once against
//! [`support::Env`] and instantiated for both worlds with [`both_worlds!`].

mod support;

mod chunk_store;
mod concurrency;
mod explore;
mod boundary;
mod differential;
mod locks;
mod datastore;
mod formats;
mod backup;
mod gc;
mod prune;
mod verify;
mod model;
mod races_b;
mod locking_table;
mod races_a;
mod races_real;
mod crash;
mod shrink;
