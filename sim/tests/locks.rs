//! flock and record-lock tables of `SimWorld<StdSync>`: conflicts, conversion, release on
//! close and on process death, and real-time time-outs.

use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use sim::SimWorld;
use store::sync::StdSync;
use store::world::{LockMode, LockWait, OpenOptions, World, WorldFile};

type W = SimWorld<StdSync>;

const NB: LockWait = LockWait::NonBlocking;

fn open(world: &W, path: &str) -> <W as World>::File {
    world
        .open(Path::new(path), OpenOptions::create_keep())
        .expect("open")
}

/// The error kind of `result`, or `None` if it succeeded.
fn kind<T>(result: std::io::Result<T>) -> Option<ErrorKind> {
    result.err().map(|err| err.kind())
}

#[test]
fn flock_handles_of_one_thread_conflict() {
    let world = W::new(1);
    let (a, b) = (open(&world, "/lock"), open(&world, "/lock"));
    a.lock(LockMode::Shared, NB).expect("shared");
    b.lock(LockMode::Shared, NB).expect("shared + shared");
    assert_eq!(
        kind(b.lock(LockMode::Exclusive, NB)),
        Some(ErrorKind::WouldBlock)
    );
    // Linux drops the old lock before a conversion, so the failed upgrade left `b` unlocked.
    a.lock(LockMode::Exclusive, NB).expect("a alone now");
    assert_eq!(
        kind(b.lock(LockMode::Shared, NB)),
        Some(ErrorKind::WouldBlock)
    );
    a.lock(LockMode::Exclusive, NB)
        .expect("re-locking in the held mode");
    a.lock(LockMode::Shared, NB).expect("downgrade");
    b.lock(LockMode::Shared, NB)
        .expect("shared after downgrade");
    b.unlock().expect("unlock");
    a.unlock().expect("unlock");
    b.lock(LockMode::Exclusive, NB)
        .expect("exclusive after unlocks");
}

#[test]
fn flock_is_released_on_drop_and_spans_processes() {
    let world = W::new(1);
    let other = world.new_process();
    let a = open(&world, "/lock");
    a.lock(LockMode::Exclusive, NB).expect("exclusive");
    let b = open(&other, "/lock");
    assert_eq!(
        kind(b.lock(LockMode::Shared, NB)),
        Some(ErrorKind::WouldBlock)
    );
    drop(a);
    b.lock(LockMode::Exclusive, NB).expect("free after drop");
}

#[test]
fn flock_follows_the_inode_not_the_name() {
    let world = W::new(1);
    let a = open(&world, "/lock");
    a.lock(LockMode::Exclusive, NB).expect("exclusive");
    world
        .rename(Path::new("/lock"), Path::new("/moved"))
        .expect("rename");
    let b = open(&world, "/moved");
    assert_eq!(
        kind(b.lock(LockMode::Exclusive, NB)),
        Some(ErrorKind::WouldBlock)
    );
    let fresh = open(&world, "/lock");
    fresh
        .lock(LockMode::Exclusive, NB)
        .expect("a new inode has its own table");
}

#[test]
fn flock_timeout_times_out() {
    let world = W::new(1);
    let a = open(&world, "/lock");
    a.lock(LockMode::Exclusive, NB).expect("exclusive");
    let b = open(&world, "/lock");
    let wait = LockWait::Timeout(Duration::from_millis(20));
    assert_eq!(
        kind(b.lock(LockMode::Shared, wait)),
        Some(ErrorKind::TimedOut)
    );
}

#[test]
fn flock_timeout_waits_for_release() {
    let world = W::new(1);
    let a = open(&world, "/lock");
    a.lock(LockMode::Exclusive, NB).expect("exclusive");
    let waiter = {
        let world = world.clone();
        std::thread::spawn(move || {
            let b = open(&world, "/lock");
            b.lock(
                LockMode::Exclusive,
                LockWait::Timeout(Duration::from_secs(30)),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    a.unlock().expect("unlock");
    waiter
        .join()
        .expect("waiter thread")
        .expect("lock granted after release");
}

#[test]
fn record_locks_conflict_between_processes_only() {
    let world = W::new(1);
    let other = world.new_process();
    let (a1, a2) = (open(&world, "/f"), open(&world, "/f"));
    let b = open(&other, "/f");
    a1.record_lock(Some(LockMode::Shared)).expect("shared");
    a2.record_lock(Some(LockMode::Exclusive))
        .expect("same process converts its lock");
    assert_eq!(
        kind(b.record_lock(Some(LockMode::Shared))),
        Some(ErrorKind::WouldBlock)
    );
    a1.record_lock(Some(LockMode::Shared)).expect("downgrade");
    b.record_lock(Some(LockMode::Shared))
        .expect("shared + shared");
    assert_eq!(
        kind(b.record_lock(Some(LockMode::Exclusive))),
        Some(ErrorKind::WouldBlock)
    );
    assert_eq!(
        kind(a1.record_lock(Some(LockMode::Exclusive))),
        Some(ErrorKind::WouldBlock)
    );
    a1.record_lock(None).expect("release");
    b.record_lock(Some(LockMode::Exclusive))
        .expect("exclusive once alone");
}

#[test]
fn closing_any_handle_drops_the_process_record_locks() {
    let world = W::new(1);
    let other = world.new_process();
    let a1 = open(&world, "/f");
    let a2 = open(&world, "/f");
    a1.record_lock(Some(LockMode::Exclusive))
        .expect("exclusive");
    let b = open(&other, "/f");
    assert_eq!(
        kind(b.record_lock(Some(LockMode::Shared))),
        Some(ErrorKind::WouldBlock)
    );
    drop(a2);
    b.record_lock(Some(LockMode::Exclusive))
        .expect("a2's close dropped a1's record lock");
    // A close by another process does not touch this process's locks.
    let a3 = open(&world, "/f");
    drop(a3);
    assert_eq!(
        kind(a1.record_lock(Some(LockMode::Shared))),
        Some(ErrorKind::WouldBlock)
    );
}

#[test]
fn record_lock_needs_matching_access() {
    let world = W::new(1);
    drop(open(&world, "/f"));
    let ro = world
        .open(Path::new("/f"), OpenOptions::read_only())
        .expect("open");
    ro.record_lock(Some(LockMode::Shared))
        .expect("read lock on a read handle");
    assert!(ro.record_lock(Some(LockMode::Exclusive)).is_err());
}

#[test]
fn kill_process_releases_everything() {
    let world = W::new(1);
    let victim = world.new_process();
    let flocked = open(&victim, "/lock");
    flocked.lock(LockMode::Exclusive, NB).expect("flock");
    let recorded = open(&victim, "/f");
    recorded
        .record_lock(Some(LockMode::Exclusive))
        .expect("record lock");
    let survivor_record = open(&world, "/f");
    victim
        .remove_file(Path::new("/f"))
        .expect("unlink while locked");

    let survivor_flock = open(&world, "/lock");
    assert_eq!(
        kind(survivor_flock.lock(LockMode::Shared, NB)),
        Some(ErrorKind::WouldBlock)
    );
    assert_eq!(
        kind(survivor_record.record_lock(Some(LockMode::Shared))),
        Some(ErrorKind::WouldBlock)
    );
    victim.kill_process();
    survivor_flock
        .lock(LockMode::Exclusive, NB)
        .expect("flock free after kill");
    survivor_record
        .record_lock(Some(LockMode::Exclusive))
        .expect("record lock of the unlinked file free");
    // The victim's handles still exist; dropping them now releases nothing of the survivor's.
    drop((flocked, recorded));
    assert_eq!(
        kind(open(&victim, "/lock").lock(LockMode::Shared, NB)),
        Some(ErrorKind::WouldBlock)
    );
}
