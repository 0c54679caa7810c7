//! The real world with a clock that setup can set back.
//!
//! Some scenarios start a writer and then move the simulated clock forward before their actors
//! run (B1, B13: a backup that started two days ago). The writer's start time is not a file
//! timestamp that [`super::age_files`] could change: the process locker keeps it in memory,
//! read from [`World::now`] when the session registers. [`SetBackWorld`] is [`RealWorld`] in
//! everything (filesystem, locks, threads, per-process registry) except that its clock reads
//! `offset` seconds behind the wall clock. A twin sets it back during setup, so that the writer
//! registers "two days ago", and puts it right (offset 0) before the actors start: during the
//! run, the world's clock is the wall clock, the same as the filesystem's timestamps.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use store::world::real::{RealFile, StdSync};
use store::world::{DirEntry, Metadata, OpenOptions, RealWorld, SharedObject, World};

/// [`RealWorld`] with a clock `behind` seconds behind the wall clock; clones share the offset.
#[derive(Debug, Clone, Default)]
pub(super) struct SetBackWorld {
    behind: Arc<AtomicI64>,
}

impl SetBackWorld {
    /// A world whose clock reads `seconds` behind the wall clock until [`Self::set_back`]
    /// changes it.
    pub(super) fn new(seconds: i64) -> SetBackWorld {
        let world = SetBackWorld::default();
        world.set_back(seconds);
        world
    }

    /// From now on the clock reads `seconds` behind the wall clock (0: the wall clock).
    pub(super) fn set_back(&self, seconds: i64) {
        self.behind.store(seconds, Ordering::SeqCst);
    }
}

impl World for SetBackWorld {
    type Sync = StdSync;
    type File = RealFile;

    fn now(&self) -> i64 {
        RealWorld.now() - self.behind.load(Ordering::SeqCst)
    }

    fn sleep(&self, duration: Duration) {
        RealWorld.sleep(duration);
    }

    fn unique_id(&self) -> u64 {
        RealWorld.unique_id()
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        RealWorld.create_dir(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        RealWorld.create_dir_all(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        RealWorld.remove_dir(path)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealWorld.remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealWorld.rename(from, to)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        RealWorld.read_dir(path)
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        RealWorld.metadata(path)
    }

    fn touch_atime(&self, path: &Path) -> io::Result<()> {
        RealWorld.touch_atime(path)
    }

    fn open(&self, path: &Path, options: OpenOptions) -> io::Result<RealFile> {
        RealWorld.open(path, options)
    }

    fn fsync_dir(&self, path: &Path) -> io::Result<()> {
        RealWorld.fsync_dir(path)
    }

    fn syncfs(&self, path: &Path) -> io::Result<()> {
        RealWorld.syncfs(path)
    }

    fn process_shared(&self, key: &Path, make: &mut dyn FnMut() -> SharedObject) -> SharedObject {
        RealWorld.process_shared(key, make)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_is_set_back_and_put_right() {
        let world = SetBackWorld::new(2 * 86_400);
        let behind = RealWorld.now() - world.now();
        assert!((2 * 86_400..=2 * 86_400 + 1).contains(&behind), "{behind}");
        world.clone().set_back(0);
        assert!(RealWorld.now() - world.now() <= 1);
    }
}
