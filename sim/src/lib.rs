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
//!   notify; the sim never calls `yield_now` (it would void PCT's depth bound).
//! * **No std lock or atomic, with one exception**: the disk's bookkeeping that the workload
//!   never waits on — the operation gate (counters, fault rules, crash point, trace; module
//!   `gate`) and the durability record (module `durable`) — uses std atomics and
//!   `std::sync::Mutex`es. They add no scheduling point, and they are safe under shuttle and
//!   loom because only one task runs at a time there and these mutexes are leaves, never held
//!   across a scheduling point (the durability mutex is taken innermost, under inode locks;
//!   the gate's with no lock held).
//! * **One gate**: every `World`/`WorldFile` operation (not clock moves, `now`, `unique_id`,
//!   `process_shared`, or closing a handle) passes the disk's gate once, which counts it
//!   ([`SimWorld::op_count`]), may fail it ([`SimWorld::inject_fault`], [`SimWorld::arm_crash`])
//!   and records it while tracing ([`SimWorld::start_trace`]).
//! * **Volatile and durable**: the inodes are what processes see; a per-disk record keeps the
//!   durable image and the log of unsynced changes with their dependencies, from which
//!   [`SimWorld::crash`] builds the world after a power loss (module `durable`). With nobody
//!   crashing, the cost is one log entry per change (a write's bytes are copied once), drained
//!   by the syncs.
//! * **Determinism**: every choice is a function of the seed, counters and the schedule
//!   (`BTreeMap`s only, pinned hashes, a simulated clock).
//! * **Errors** carry the `ErrorKind` Linux would give (see the table in [`store::world`]).
//! * **Faults** happen only where a scenario injects them, deterministically: a [`Fault`] rule
//!   fails the nth matching operation of the disk (transiently or from then on), and
//!   [`SimWorld::fail_touch`] makes `touch_atime` of one inode fail (ENOSPC, EPERM, EIO, ...).
//!   A failed `sync_all` loses the file's unsynced writes on the durable side for good.
//! * **Per-process registry**: [`store::world::World::process_shared`] keeps one registry per
//!   simulated process, so two opens of a datastore in one process share its process locker.

mod durable;
mod families;
mod file;
mod gate;
mod inode;
mod namespace;
mod ops;
mod path;
mod selfcheck;
mod world;

pub use durable::{CrashKeep, SECTOR};
pub use families::{LoomJoinHandle, LoomSync, ShuttleJoinHandle, ShuttleSync};
pub use file::SimFile;
pub use gate::{Fault, OpFilter, OpKind, TraceEvent};
pub use selfcheck::Inconsistency;
pub use world::{START_TIME, SimStats, SimWorld};
