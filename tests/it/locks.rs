//! Lock files and the process locker, on both worlds (and across simulated processes).

use std::path::Path;
use std::time::Duration;

use sim::SimWorld;
use store::locks::{LockError, ProcessLocker, lock_file};
use store::sync::StdSync;
use store::world::{LockMode, LockWait, World};

use crate::both_worlds;
use crate::support::Env;

const NB: LockWait = LockWait::NonBlocking;

both_worlds!(
    exclusive_lock_file_conflicts,
    shared_lock_files_coexist,
    lock_file_removed_while_held,
    process_locker_in_one_process
);

fn exclusive_lock_file_conflicts(env: &impl Env) {
    let world = env.world();
    let path = env.root().join("locks/group-vm-100");
    let held = lock_file(&world, &path, "group vm/100", LockMode::Exclusive, NB).expect("first");
    for mode in [LockMode::Exclusive, LockMode::Shared] {
        let err = lock_file(&world, &path, "group vm/100", mode, NB).expect_err("conflict");
        assert!(matches!(err, LockError::Busy { .. }), "{err:?}");
        assert!(err.is_contention());
        assert!(err.to_string().contains("group vm/100"), "{err}");
    }
    drop(held);
    let again =
        lock_file(&world, &path, "group vm/100", LockMode::Exclusive, NB).expect("free again");
    assert_eq!(again.mode(), LockMode::Exclusive);
}

fn shared_lock_files_coexist(env: &impl Env) {
    let world = env.world();
    let path = env.root().join("snapshot.lck");
    let first = lock_file(&world, &path, "snapshot", LockMode::Shared, NB).expect("shared");
    let second = lock_file(&world, &path, "snapshot", LockMode::Shared, NB).expect("shared too");
    let wait = LockWait::Timeout(Duration::from_millis(30));
    let err = lock_file(&world, &path, "snapshot", LockMode::Exclusive, wait).expect_err("held");
    assert!(matches!(err, LockError::TimedOut { .. }), "{err:?}");
    drop((first, second));
    drop(lock_file(&world, &path, "snapshot", LockMode::Exclusive, wait).expect("released"));
}

fn lock_file_removed_while_held(env: &impl Env) {
    let world = env.world();
    let path = env.root().join("manifest.lck");
    let held = lock_file(&world, &path, "manifest", LockMode::Exclusive, NB).expect("lock");
    held.remove(&world).expect("unlink while held");
    assert!(world.try_metadata(&path).expect("stat").is_none());
    let fresh = lock_file(&world, &path, "manifest", LockMode::Exclusive, NB).expect("new file");
    assert_eq!(fresh.path(), path);
}

fn process_locker_in_one_process(env: &impl Env) {
    let locker = ProcessLocker::new(env.world(), &env.root().join(".lock"));
    assert_eq!(locker.oldest_shared_lock(), None);
    let first = locker.try_shared_lock().expect("writer 1");
    let second = locker.try_shared_lock().expect("writer 2");
    assert_eq!(locker.writer_count(), 2);
    assert!(locker.oldest_shared_lock().expect("writers") <= second.start_time());
    // Record locks of one process never conflict: GC coexists with this process's writers.
    let gc = locker
        .try_exclusive_lock()
        .expect("exclusive within the process");
    let err = locker
        .try_exclusive_lock()
        .err()
        .expect("a second exclusive is refused");
    assert!(err.is_contention());
    drop((first, second, gc));
    assert_eq!(locker.writer_count(), 0);
    assert_eq!(locker.oldest_shared_lock(), None);
}

fn sim_world() -> SimWorld<StdSync> {
    SimWorld::new(3)
}

/// Across processes the record lock excludes: a writer in one process keeps GC of another out,
/// and the lock goes away when the last writer does (B10: it must, whatever the count was).
#[test]
fn process_locker_across_processes() {
    let world = sim_world();
    let other = world.new_process();
    let path = Path::new("/ds/.lock");
    world.create_dir_all(Path::new("/ds")).expect("mkdir");
    let backups = ProcessLocker::new(world, path);
    let gc = ProcessLocker::new(other, path);
    let writers = [
        backups.try_shared_lock().expect("w1"),
        backups.try_shared_lock().expect("w2"),
    ];
    assert!(
        gc.try_exclusive_lock()
            .err()
            .expect("writers elsewhere")
            .is_contention()
    );
    drop(writers);
    let exclusive = gc.try_exclusive_lock().expect("no writers left");
    assert!(
        backups
            .try_shared_lock()
            .err()
            .expect("GC elsewhere")
            .is_contention()
    );
    drop(exclusive);
    drop(backups.try_shared_lock().expect("GC done"));
}

/// Why a process must have exactly one locker per datastore (B13): a second locker's file
/// closing drops the first locker's record lock, letting another process's GC in.
#[test]
fn second_locker_in_a_process_drops_the_first_ones_lock() {
    let world = sim_world();
    let other = world.new_process();
    let path = Path::new("/ds/.lock");
    world.create_dir_all(Path::new("/ds")).expect("mkdir");
    let first = ProcessLocker::new(world.clone(), path);
    let gc = ProcessLocker::new(other, path);
    let writer = first.try_shared_lock().expect("writer");
    assert!(gc.try_exclusive_lock().is_err());
    {
        let second = ProcessLocker::new(world, path);
        drop(
            second
                .try_shared_lock()
                .expect("a writer through a second locker"),
        );
    }
    let exclusive = gc.try_exclusive_lock();
    assert!(
        exclusive.is_ok(),
        "closing the second locker's file dropped the first's lock"
    );
    drop(writer);
}
