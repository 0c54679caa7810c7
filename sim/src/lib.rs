//! The simulated world: an in-memory filesystem with flock and record-lock tables and a
//! scenario-driven clock ([`SimWorld`]), plus the shuttle and loom sync families
//! ([`ShuttleSync`], [`LoomSync`]).
//!
//! `SimWorld<S>` implements [`store::world::World`] for any [`store::sync::SyncFamily`] `S`:
//! * `SimWorld<store::sync::StdSync>`: real threads, fast single-threaded sweeps;
//! * `SimWorld<ShuttleSync>`: randomised / PCT schedules under `shuttle::check_*`;
//! * `SimWorld<LoomSync>`: exhaustive bounded exploration under `loom::model`.
//!
//! # Design rules
//!
//! * **Per-inode locks**: each inode's state sits in its own `S::Mutex` (module `inode`), so loom can
//!   prune interleavings of operations on unrelated files.
//! * **Scheduling points** come only from `S::Mutex` acquire/release and `S::Condvar` wait and
//!   notify; the sim never calls `yield_now` (it would void PCT's depth bound) and uses no std
//!   lock or atomic.
//! * **Determinism**: every choice is a function of the seed, counters and the schedule
//!   (`BTreeMap`s only, pinned hashes, a simulated clock).
//! * **Errors** carry the `ErrorKind` Linux would give (see the table in [`store::world`]).
//! * **Faults** happen only where a scenario injects them, deterministically:
//!   [`SimWorld::fail_touch`] makes `touch_atime` of one inode fail (ENOSPC, EPERM, EIO, ...).
//! * **Per-process registry**: [`store::world::World::process_shared`] keeps one registry per
//!   simulated process, so two opens of a datastore in one process share its process locker.

mod families;
mod file;
mod inode;
mod namespace;
mod path;
mod world;

pub use families::{LoomJoinHandle, LoomSync, ShuttleJoinHandle, ShuttleSync};
pub use file::SimFile;
pub use world::{START_TIME, SimStats, SimWorld};
