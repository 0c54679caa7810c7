//! A content-addressed chunk store in the style of a Proxmox Backup Server datastore.
//!
//! The store is written against a small world boundary ([`world::World`], [`sync::SyncFamily`]),
//! so the same code runs on real disks ([`world::RealWorld`]) and inside the deterministic
//! simulated world of the `sim` crate, under the shuttle and loom model checkers.
//!
//! * [`chunk_store`]: chunks named by SHA-256, insert / touch / sweep / `.bad` rename under one
//!   mutex.
//! * [`blob`]: the on-disk blob format (magic, CRC-32, payload).
//! * [`world`]: the filesystem, lock and clock boundary and its contracts.
//! * [`sync`]: mutex, condition variable and threads of a runtime.
//! * [`locking`]: every lock, its holders and what it protects (`LOCKING.md`).
//!
//! On-disk formats are documented in `docs/format.md`.
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod backup_info;
pub mod blob;
pub mod chunk_store;
pub mod datastore;
pub mod digest;
pub mod index;
pub mod locking;
pub mod locks;
pub mod manifest;
pub mod sync;
pub mod world;

#[cfg(feature = "regressions")]
pub mod regressions;
#[cfg(not(feature = "regressions"))]
mod regressions_off;

pub use chunk_store::{Chunk, ChunkStore, ChunkStoreConfig, ChunkStoreError, PrefixFanout, SyncLevel};
pub use digest::Digest;
pub use world::{RealWorld, World};
