//! The simulator checks itself: invariants of its own state, asserted where tests use it.
//!
//! A bug in the simulated world would let the harness pass a store that is wrong on a real
//! disk, or fail one that is right, so the world checks what it keeps (in the manner of a
//! testing storage that asserts its own bookkeeping):
//!
//! * **Lock tables**, after every change to one (debug builds, so every test): a `flock` or
//!   fcntl record lock held exclusively has no other holder, each `flock` belongs to an open
//!   file description the inode handed out, and each holder is a process of this disk.
//! * **Namespace** ([`SimWorld::check_consistency`]): every inode reachable from `/` is linked
//!   exactly once (the disk has no hard links, so a link count is 0 or 1), a reachable
//!   directory is never marked removed, and the root is nobody's child.
//! * **Durable image against its log** (the same call): the durable image with every pending
//!   change replayed is exactly what processes see: the same tree, kinds, file bytes and
//!   access and modification times of files. The exceptions are on purpose: after a failed
//!   `sync_all` the file's lost writes are gone from the durable side only, and a frozen record
//!   (an armed crash fired) keeps the image of its crash point.
//!
//! `models::scenario::execute` runs [`SimWorld::check_consistency`] after every execution, and
//! the tests' simulated environment when it is dropped; a violation is a bug of the simulator.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::sync::Arc;

use store::sync::SyncFamily;
use store::world::FileKind;

use crate::durable::Image;
use crate::inode::{Content, Inode};
use crate::world::SimWorld;

/// A broken invariant of the simulated world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inconsistency(pub String);

impl std::fmt::Display for Inconsistency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "simulated world is inconsistent: {}", self.0)
    }
}

impl std::error::Error for Inconsistency {}

/// What the walk of the volatile tree saw of one inode.
struct Seen {
    kind: FileKind,
    data: Vec<u8>,
    atime: i64,
    mtime: i64,
    entries: BTreeMap<OsString, u64>,
}

impl<S: SyncFamily> SimWorld<S> {
    /// Checks the namespace, lock tables and durable record of this world's disk (module docs).
    /// Meant for quiescent moments (no operation in flight, e.g. after an execution's actors
    /// joined): it takes inode locks one at a time, so under a model checker it adds scheduling
    /// points but no interleaving with work that has finished.
    pub fn check_consistency(&self) -> Result<(), Inconsistency> {
        let seen = self.walk_volatile().map_err(Inconsistency)?;
        let durable = self.disk.durable();
        if durable.is_frozen() {
            return Ok(());
        }
        let image = durable.image_for(&crate::CrashKeep::All);
        compare_image(&seen, &image, durable.lost_data()).map_err(Inconsistency)
    }

    /// Every inode reachable from `/`, checked for single links and lock-table invariants.
    fn walk_volatile(&self) -> Result<BTreeMap<u64, Seen>, String> {
        let next_pid = self.disk.next_pid();
        let mut seen = BTreeMap::new();
        let mut queue: Vec<(String, Arc<Inode<S>>)> =
            vec![("/".to_owned(), self.disk.root.clone())];
        while let Some((path, inode)) = queue.pop() {
            let state = inode.state.lock();
            state
                .check_locks(next_pid)
                .map_err(|problem| format!("{path}: {problem}"))?;
            if inode.is_dir() && state.removed {
                return Err(format!("{path}: reachable directory marked removed"));
            }
            let (data, entries) = match &state.content {
                Content::File(data) => (data.clone(), BTreeMap::new()),
                Content::Dir(children) => {
                    for (name, child) in children {
                        if child.ino == 1 {
                            return Err(format!("{path}: the root is linked as {name:?}"));
                        }
                        let child_path =
                            format!("{}/{}", path.trim_end_matches('/'), name.to_string_lossy());
                        queue.push((child_path, child.clone()));
                    }
                    let entries = children
                        .iter()
                        .map(|(name, child)| (name.clone(), child.ino));
                    (Vec::new(), entries.collect())
                }
            };
            let record = Seen {
                kind: inode.kind,
                data,
                atime: state.atime,
                mtime: state.mtime,
                entries,
            };
            if seen.insert(inode.ino, record).is_some() {
                return Err(format!("{path}: inode {} is linked twice", inode.ino));
            }
        }
        Ok(seen)
    }
}

/// The durable image plus every pending change against the volatile tree, from the root.
fn compare_image(
    seen: &BTreeMap<u64, Seen>,
    image: &Image,
    lost_data: &BTreeSet<u64>,
) -> Result<(), String> {
    let mut queue = vec![1u64];
    let mut reached = 0;
    while let Some(ino) = queue.pop() {
        reached += 1;
        let (Some(live), Some(durable)) = (seen.get(&ino), image.inodes.get(&ino)) else {
            return Err(format!(
                "inode {ino} is in one tree only (durable image or volatile)"
            ));
        };
        if live.kind != durable.kind {
            return Err(format!(
                "inode {ino}: kind {:?} live, {:?} in the log",
                live.kind, durable.kind
            ));
        }
        if live.entries != durable.entries {
            let (live, logged) = (&live.entries, &durable.entries);
            return Err(format!(
                "directory {ino}: entries {live:?} live, {logged:?} in the log"
            ));
        }
        queue.extend(live.entries.values().copied());
        if live.kind == FileKind::Dir || lost_data.contains(&ino) {
            continue;
        }
        if live.data != durable.data {
            let (live, logged) = (live.data.len(), durable.data.len());
            return Err(format!(
                "file {ino}: {live} bytes live, {logged} bytes in the log differ"
            ));
        }
        if (live.atime, live.mtime) != (durable.atime, durable.mtime) {
            let (live, logged) = ((live.atime, live.mtime), (durable.atime, durable.mtime));
            return Err(format!(
                "file {ino}: (atime, mtime) {live:?} live, {logged:?} in the log"
            ));
        }
    }
    if reached != seen.len() {
        return Err(format!(
            "{} inodes walked, {reached} reached through the log",
            seen.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use store::sync::StdSync;
    use store::world::{LockMode, LockWait, OpenOptions, World, WorldFile};

    use super::*;

    /// A world with `/d/f` holding some bytes.
    fn world() -> SimWorld<StdSync> {
        let world = SimWorld::<StdSync>::new(7);
        world.create_dir_all(Path::new("/d")).expect("mkdir");
        let file = world
            .open(Path::new("/d/f"), OpenOptions::create_new())
            .expect("create");
        file.write_at(0, b"bytes").expect("write");
        world
    }

    fn inode(world: &SimWorld<StdSync>, path: &str) -> Arc<Inode<StdSync>> {
        world
            .disk
            .with_object(Path::new(path), |inode, _| Ok(inode.clone()))
            .expect("exists")
    }

    fn problem(world: &SimWorld<StdSync>) -> String {
        world.check_consistency().expect_err("must be caught").0
    }

    #[test]
    fn a_world_used_as_designed_is_consistent() {
        let world = world();
        world.fsync_dir(Path::new("/d")).expect("fsync");
        world
            .rename(Path::new("/d/f"), Path::new("/g"))
            .expect("rename");
        world.touch_atime(Path::new("/g")).expect("touch");
        let held = world
            .open(Path::new("/g"), OpenOptions::read_only())
            .expect("open");
        held.lock(LockMode::Shared, LockWait::NonBlocking)
            .expect("flock");
        held.record_lock(Some(LockMode::Shared))
            .expect("record lock");
        world.check_consistency().expect("consistent");
        drop(held);
        let crashed = world.crash(crate::CrashKeep::DurableOnly);
        crashed
            .check_consistency()
            .expect("a crashed world is consistent");
    }

    #[test]
    fn an_exclusive_lock_beside_another_is_caught() {
        let world = world();
        let file = inode(&world, "/d/f");
        let mut state = file.state.lock();
        state.next_ofd = 2;
        state.flocks.insert(0, (1, LockMode::Exclusive));
        state.flocks.insert(1, (1, LockMode::Shared));
        drop(state);
        assert!(problem(&world).contains("exclusive flock"));
        file.state.lock().flocks.clear();
        file.state.lock().record_locks.insert(99, LockMode::Shared);
        assert!(problem(&world).contains("process 99"));
    }

    #[test]
    fn an_inode_linked_twice_is_caught() {
        let world = world();
        let file = inode(&world, "/d/f");
        let root = world.disk.root.clone();
        root.state
            .lock()
            .entries_mut()
            .expect("dir")
            .insert("again".into(), file);
        assert!(problem(&world).contains("linked twice"));
    }

    #[test]
    fn a_change_the_log_missed_is_caught() {
        let world = world();
        let file = inode(&world, "/d/f");
        if let Content::File(data) = &mut file.state.lock().content {
            data.push(b'!');
        }
        assert!(problem(&world).contains("differ"));
        let world = self::world();
        inode(&world, "/d").state.lock().removed = true;
        assert!(problem(&world).contains("marked removed"));
    }
}
