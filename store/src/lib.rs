//! A content-addressed chunk store in the style of a Proxmox Backup Server datastore.
//!
//! The store is written against a small world boundary ([`world::World`], [`sync::SyncFamily`]),
//! so the same code runs on real disks ([`world::RealWorld`]) and inside the deterministic
//! simulated world of the `sim` crate, under the shuttle and loom model checkers.
//!
//! * [`datastore`]: snapshots in groups over one chunk store, and every operation that races
//!   with another: [`backup`](datastore::backup) and [`reader`](datastore::reader) sessions,
//!   [`gc`](datastore::gc) (mark by atime, sweep), forget, [`prune`](datastore::prune),
//!   [`verify`](datastore::verify), manifest updates, protection, owner and notes.
//! * [`chunk_store`]: chunks named by SHA-256, insert / touch / sweep / `.bad` rename under one
//!   mutex.
//! * [`index`], [`manifest`], [`blob`], [`backup_info`]: the file formats and validated names.
//! * [`locks`]: lock files with the identity check, and the process locker.
//! * [`world`]: the filesystem, lock and clock boundary and its contracts.
//! * [`sync`]: mutex, condition variable and threads of a runtime.
//! * [`locking`]: every lock, its holders, what it protects and the lock order (`LOCKING.md`).
//! * [`formats`]: every on-disk format, byte by byte (`docs/format.md`).
//!
//! # Garbage collection in one paragraph
//!
//! A chunk's only mark is its access time. GC notes its start time, touches every chunk that an
//! index file of the datastore references (newest snapshot of each group first, listing a group
//! again when its newest snapshot vanished), then removes every chunk whose atime is older than
//! the cutoff: 24 h 5 min before the start, or 5 minutes before the oldest running backup
//! session if that is earlier. Inserts and touches take the chunk-store mutex, and so does the
//! sweep for each file, so a chunk that is needed again cannot be removed between the sweep's
//! check and its unlink. Details and the invariants in [`datastore::gc`].
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod backup_info;
pub mod blob;
pub mod chunk_store;
pub mod datastore;
pub mod digest;
pub mod formats;
pub mod index;
pub mod locking;
pub mod locks;
pub mod manifest;
pub mod publish;
pub mod sync;
pub mod world;

#[cfg(feature = "regressions")]
pub mod regressions;
#[cfg(not(feature = "regressions"))]
mod regressions_off;

pub use chunk_store::{
    Chunk, ChunkStore, ChunkStoreConfig, ChunkStoreError, PrefixFanout, SyncLevel,
};
pub use digest::Digest;
pub use world::{RealWorld, World};
