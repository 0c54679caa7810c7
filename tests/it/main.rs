//! Cross-crate integration tests: the store on the real and the simulated world.
//!
//! One test binary (fast to link). Generic test bodies are written once against
//! [`support::Env`] and instantiated for both worlds with [`both_worlds!`].

mod support;

mod backup;
mod boundary;
mod chunk_store;
mod concurrency;
mod crash;
mod datastore;
mod differential;
mod explore;
mod formats;
mod gc;
mod generate;
mod locking_table;
mod locks;
mod model;
mod prune;
mod races_a;
mod races_b;
mod races_real;
mod shrink;
mod verify;
