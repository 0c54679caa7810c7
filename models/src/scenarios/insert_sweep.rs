//! Two inserts of one chunk race a sweep whose cutoff already condemns the chunk's old copy.
//!
//! Invariant (pbs.md I3, race B4): a chunk an insert reported as stored still exists once
//! everybody is done. The protection is touch-on-duplicate under the chunk-store mutex, with the
//! sweep's stat → unlink under the same mutex. Reverting B4 (duplicate inserts do not touch)
//! lets the sweep remove a chunk that an insert has just reported as present.

use std::path::Path;
use std::sync::Arc;

use sim::SimWorld;
use store::regressions::Regressions;
use store::sync::{JoinHandle, SyncFamily};
use store::world::World;
use store::{Chunk, ChunkStore, ChunkStoreConfig, PrefixFanout, SyncLevel};

const DAY: i64 = 86_400;

/// The panic message of a violation of this scenario's invariant.
pub const VIOLATION: &str = "a chunk reported as stored was swept";

/// One execution of the scenario in a fresh simulated world.
pub fn run<S: SyncFamily>(regressions: Regressions) {
    let world = SimWorld::<S>::new(7);
    let config = ChunkStoreConfig::new(PrefixFanout::SMALL)
        .with_sync_level(SyncLevel::None)
        .with_regressions(regressions);
    let store =
        Arc::new(ChunkStore::create(world.clone(), Path::new("/ds"), config).expect("create"));
    let chunk = Arc::new(Chunk::from_data(b"chunk x").expect("small chunk"));
    store.insert_chunk(&chunk).expect("the old copy");
    // Three days later the old copy is unreferenced; GC's cutoff is one day ago.
    world.advance(3 * DAY);
    let min_atime = world.now() - DAY;

    let inserters: Vec<_> = (0..2)
        .map(|_| {
            let (store, chunk) = (Arc::clone(&store), Arc::clone(&chunk));
            S::spawn(move || store.insert_chunk(&chunk).expect("insert"))
        })
        .collect();
    let sweeper = {
        let store = Arc::clone(&store);
        S::spawn(move || store.sweep_unused_chunks(min_atime, min_atime).expect("sweep"))
    };
    for inserter in inserters {
        inserter.join().expect("inserter thread");
    }
    sweeper.join().expect("sweeper thread");
    let present = store.chunk_metadata(chunk.digest()).expect("stat").is_some();
    assert!(present, "{VIOLATION}");
}

/// The scenario as an explorable value.
#[derive(Debug, Clone, Copy, Default)]
pub struct InsertSweep {
    /// Historical fixes reverted in the store under test.
    pub regressions: Regressions,
}

impl crate::explore::Scenario for InsertSweep {
    fn run<S: SyncFamily>(&self) {
        run::<S>(self.regressions)
    }
}
