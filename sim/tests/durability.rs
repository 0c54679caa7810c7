//! Durability and crashes: what a crash keeps of unsynced data, names, renames and failed
//! fsyncs, and the crash states a pending log allows.

use std::io::ErrorKind;
use std::path::Path;

use sim::{CrashKeep, Fault, OpFilter, OpKind, SimWorld};
use store::sync::StdSync;
use store::world::{LockMode, LockWait, OpenOptions, World, WorldFile};

type W = SimWorld<StdSync>;

/// The content of `path`, or `None` if it does not exist.
fn content(world: &W, path: &str) -> Option<Vec<u8>> {
    match world.read_file(Path::new(path)) {
        Ok(data) => Some(data),
        Err(err) if err.kind() == ErrorKind::NotFound => None,
        Err(err) => panic!("read {path}: {err}"),
    }
}

/// Writes `data` to a new file at `path`; `sync`: fsync the file.
fn create(world: &W, path: &str, data: &[u8], sync: bool) {
    let file = world
        .open(Path::new(path), OpenOptions::create_new())
        .expect("create");
    file.write_at(0, data).expect("write");
    if sync {
        file.sync_all().expect("sync_all");
    }
}

fn fsync_dir(world: &W, path: &str) {
    world.fsync_dir(Path::new(path)).expect("fsync_dir");
}

/// Every crash state of `world` (at most 10 000).
fn every_state(world: &W) -> Vec<W> {
    let states = world.crash_states(10_000);
    assert!(states.len() < 10_000, "too many crash states");
    states.into_iter().map(|keep| world.crash(keep)).collect()
}

#[test]
fn unsynced_data_is_lost_and_synced_data_kept() {
    let world = W::new(1);
    create(&world, "/synced", b"kept", true);
    create(&world, "/unsynced", b"lost", false);
    fsync_dir(&world, "/");
    let after = world.crash(CrashKeep::DurableOnly);
    assert_eq!(content(&after, "/synced").as_deref(), Some(&b"kept"[..]));
    assert_eq!(
        content(&after, "/unsynced").as_deref(),
        Some(&b""[..]),
        "name durable, data not"
    );
    let all = world.crash(CrashKeep::All);
    assert_eq!(content(&all, "/unsynced").as_deref(), Some(&b"lost"[..]));
    // The world that crashed is untouched.
    assert_eq!(content(&world, "/unsynced").as_deref(), Some(&b"lost"[..]));
}

#[test]
fn names_need_an_fsync_of_their_directory() {
    let world = W::new(1);
    world.create_dir(Path::new("/d")).expect("mkdir");
    create(&world, "/d/f", b"data", true);
    // The file's data is durable, its name and its directory's name are not.
    assert_eq!(content(&world.crash(CrashKeep::DurableOnly), "/d/f"), None);
    assert!(
        world
            .crash(CrashKeep::DurableOnly)
            .metadata(Path::new("/d"))
            .is_err()
    );
    fsync_dir(&world, "/d");
    // The entry in /d is durable, but /d itself is not reachable yet.
    assert!(
        world
            .crash(CrashKeep::DurableOnly)
            .metadata(Path::new("/d"))
            .is_err()
    );
    fsync_dir(&world, "/");
    let after = world.crash(CrashKeep::DurableOnly);
    assert_eq!(content(&after, "/d/f").as_deref(), Some(&b"data"[..]));
    assert_eq!(world.pending_ops(), 0);
}

#[test]
fn removals_need_an_fsync_of_their_directory() {
    let world = W::new(1);
    create(&world, "/f", b"x", true);
    world.create_dir(Path::new("/d")).expect("mkdir");
    fsync_dir(&world, "/");
    world.remove_file(Path::new("/f")).expect("unlink");
    world.remove_dir(Path::new("/d")).expect("rmdir");
    let before = world.crash(CrashKeep::DurableOnly);
    assert!(content(&before, "/f").is_some());
    assert!(before.metadata(Path::new("/d")).is_ok());
    fsync_dir(&world, "/");
    let after = world.crash(CrashKeep::DurableOnly);
    assert!(content(&after, "/f").is_none());
    assert!(after.metadata(Path::new("/d")).is_err());
}

#[test]
fn rename_over_a_durable_target_is_atomic_in_every_crash_state() {
    let world = W::new(1);
    world.create_dir(Path::new("/d")).expect("mkdir");
    create(&world, "/d/target", b"old", true);
    fsync_dir(&world, "/d");
    fsync_dir(&world, "/");
    // The safe update: write a temporary file, sync it, rename it over the target.
    create(&world, "/d/tmp", b"new", true);
    world
        .rename(Path::new("/d/tmp"), Path::new("/d/target"))
        .expect("rename");
    let mut seen = Vec::new();
    for state in every_state(&world) {
        let target = content(&state, "/d/target").expect("the target never disappears");
        assert!(target == b"old" || target == b"new", "{target:?}");
        assert!(
            content(&state, "/d/tmp").is_none() || target == b"old",
            "never both renamed and left"
        );
        seen.push(target);
    }
    assert!(seen.contains(&b"old".to_vec()) && seen.contains(&b"new".to_vec()));
    fsync_dir(&world, "/d");
    assert_eq!(
        content(&world.crash(CrashKeep::DurableOnly), "/d/target").as_deref(),
        Some(&b"new"[..])
    );
}

#[test]
fn rename_before_the_data_sync_can_publish_an_empty_file() {
    // ext4's delayed-allocation story: truncate, write, rename without fsync of the data.
    let world = W::new(1);
    create(&world, "/tmp", b"", false);
    create(&world, "/name", b"old", true);
    fsync_dir(&world, "/");
    let file = world
        .open(Path::new("/tmp"), OpenOptions::create_truncate())
        .expect("open");
    file.write_at(0, b"new").expect("write");
    world
        .rename(Path::new("/tmp"), Path::new("/name"))
        .expect("rename");
    fsync_dir(&world, "/");
    let contents: Vec<Vec<u8>> = every_state(&world)
        .iter()
        .map(|state| content(state, "/name").expect("present"))
        .collect();
    assert!(
        contents.contains(&Vec::new()),
        "the name was published before the data"
    );
    assert!(contents.contains(&b"new".to_vec()));
}

#[test]
fn cross_directory_rename_is_durable_after_either_parent_fsync() {
    for synced in ["/a", "/b"] {
        let world = W::new(1);
        world.create_dir(Path::new("/a")).expect("mkdir");
        world.create_dir(Path::new("/b")).expect("mkdir");
        create(&world, "/a/f", b"data", true);
        world.sync_all_dirs();
        world
            .rename(Path::new("/a/f"), Path::new("/b/g"))
            .expect("rename");
        let before = world.crash(CrashKeep::DurableOnly);
        assert!(content(&before, "/a/f").is_some() && content(&before, "/b/g").is_none());
        fsync_dir(&world, synced);
        let after = world.crash(CrashKeep::DurableOnly);
        assert!(content(&after, "/a/f").is_none(), "synced {synced}");
        assert_eq!(
            content(&after, "/b/g").as_deref(),
            Some(&b"data"[..]),
            "synced {synced}"
        );
    }
}

#[test]
fn syncfs_makes_everything_durable() {
    let world = W::new(1);
    world.create_dir_all(Path::new("/x/y")).expect("mkdir");
    create(&world, "/x/y/f", b"data", false);
    world.advance(100);
    world.touch_atime(Path::new("/x/y/f")).expect("touch");
    assert!(world.pending_ops() > 0);
    world.syncfs(Path::new("/")).expect("syncfs");
    assert_eq!(world.pending_ops(), 0);
    let after = world.crash(CrashKeep::DurableOnly);
    assert_eq!(content(&after, "/x/y/f").as_deref(), Some(&b"data"[..]));
    let meta = after.metadata(Path::new("/x/y/f")).expect("stat");
    assert_eq!(meta.atime, world.now());
}

#[test]
fn atime_is_durable_only_after_a_sync() {
    let world = W::new(1);
    create(&world, "/c", b"chunk", true);
    fsync_dir(&world, "/");
    let created = world.metadata(Path::new("/c")).expect("stat").atime;
    world.advance(3600);
    world.touch_atime(Path::new("/c")).expect("touch");
    let after = world.crash(CrashKeep::DurableOnly);
    assert_eq!(
        after.metadata(Path::new("/c")).expect("stat").atime,
        created
    );
    let kept = world.crash(CrashKeep::All);
    assert_eq!(
        kept.metadata(Path::new("/c")).expect("stat").atime,
        created + 3600
    );
}

#[test]
fn failed_fsync_loses_the_data_although_a_retry_succeeds() {
    let world = W::new(1);
    create(&world, "/f", b"", true);
    fsync_dir(&world, "/");
    let file = world
        .open(Path::new("/f"), OpenOptions::create_keep())
        .expect("open");
    file.write_at(0, b"lost").expect("write");
    world.inject_fault(Fault::eio(1, OpFilter::Op(OpKind::SyncAll)));
    let err = file.sync_all().expect_err("the fsync fails");
    assert_eq!(err.kind(), ErrorKind::Other);
    file.sync_all().expect("the retry reports success");
    assert_eq!(
        file.read_to_end().expect("read"),
        b"lost",
        "the page cache still has it"
    );
    for keep in [CrashKeep::DurableOnly, CrashKeep::All] {
        assert_eq!(content(&world.crash(keep), "/f").as_deref(), Some(&b""[..]));
    }
    // Writes after the failure are synced normally.
    file.write_at(4, b"later").expect("write");
    file.sync_all().expect("sync");
    let after = world.crash(CrashKeep::DurableOnly);
    assert_eq!(
        content(&after, "/f").as_deref(),
        Some(&b"\0\0\0\0later"[..])
    );
}

#[test]
fn crash_states_respect_dependencies_and_are_deterministic() {
    let build = || {
        let world = W::new(5);
        world.create_dir(Path::new("/n")).expect("mkdir"); // 0: entry of /n
        create(&world, "/n/f", b"x", false); // 1: entry of f (needs 0), 2: write (free)
        world
            .rename(Path::new("/n/f"), Path::new("/n/g"))
            .expect("rename"); // 3: needs 1
        world
    };
    let world = build();
    assert_eq!(world.pending_ops(), 4);
    let states = world.crash_states(100);
    assert_eq!(states, build().crash_states(100), "same log, same states");
    // Closed subsets: {}, {0}, {0,1}, {0,1,3}, each with or without the write 2.
    assert_eq!(states.len(), 8);
    assert_eq!(states[0], CrashKeep::All);
    assert_eq!(states[1], CrashKeep::DurableOnly);
    for keep in &states {
        if let CrashKeep::Subset(kept) = keep {
            assert!(!kept.contains(&1) || kept.contains(&0), "{kept:?}");
            assert!(!kept.contains(&3) || kept.contains(&1), "{kept:?}");
        }
    }
    // A subset is closed by the sim: keeping the rename keeps what it depends on.
    let renamed = world.crash(CrashKeep::Subset(vec![3]));
    assert_eq!(content(&renamed, "/n/g").as_deref(), Some(&b""[..]));
    assert_eq!(content(&renamed, "/n/f"), None);
    // Seeded subsets are closed and reproducible.
    for seed in 0..20 {
        let one = world.crash(CrashKeep::Seeded(seed));
        let two = build().crash(CrashKeep::Seeded(seed));
        for path in ["/n/f", "/n/g"] {
            assert_eq!(content(&one, path), content(&two, path), "seed {seed}");
        }
        assert!(content(&one, "/n/g").is_none() || one.metadata(Path::new("/n")).is_ok());
    }
    assert_eq!(world.crash_states(3).len(), 3, "the limit holds");
}

#[test]
fn an_armed_crash_freezes_the_image_at_its_point() {
    let world = W::new(1);
    world.arm_crash(2);
    create(&world, "/a", b"first", true); // point 1
    let second = world.new_process();
    let err = second
        .fsync_dir(Path::new("/"))
        .expect_err("point 2 crashes");
    assert_eq!(err.to_string(), "simulated crash");
    assert!(world.crashed());
    let pending = world.pending_ops();
    assert!(
        world
            .open(Path::new("/b"), OpenOptions::create_new())
            .is_err()
    );
    assert_eq!(
        world.pending_ops(),
        pending,
        "the frozen image does not change"
    );
    // The name of /a was never made durable: only a crash state keeping it shows it.
    assert_eq!(content(&world.crash(CrashKeep::DurableOnly), "/a"), None);
    assert_eq!(
        content(&world.crash(CrashKeep::All), "/a").as_deref(),
        Some(&b"first"[..])
    );
}

#[test]
fn the_rebooted_world_is_fresh() {
    let world = W::new(9);
    world.set_time(1_800_000_000);
    create(&world, "/lock", b"", true);
    let other = world.new_process();
    let held = other
        .open(Path::new("/lock"), OpenOptions::create_keep())
        .expect("open");
    held.lock(LockMode::Exclusive, LockWait::NonBlocking)
        .expect("lock");
    world.inject_fault(Fault::eio(1, OpFilter::Any).persistent());
    let rebooted = world.crash(CrashKeep::All);
    assert_eq!(
        (rebooted.pid(), rebooted.seed(), rebooted.now()),
        (1, 9, 1_800_000_000)
    );
    assert_eq!(
        rebooted.pending_ops(),
        0,
        "everything that survived is durable"
    );
    assert_eq!(rebooted.op_count(), 0);
    let file = rebooted
        .open(Path::new("/lock"), OpenOptions::create_keep())
        .expect("no fault rules");
    file.lock(LockMode::Exclusive, LockWait::NonBlocking)
        .expect("locks are gone");
    // Inode numbers carry over; new ones do not collide.
    let ino = rebooted.metadata(Path::new("/lock")).expect("stat").ino;
    assert_eq!(ino, held.metadata().map(|m| m.ino).unwrap_or(ino));
    create(&rebooted, "/new", b"", false);
    assert_ne!(rebooted.metadata(Path::new("/new")).expect("stat").ino, ino);
    // Crashing the rebooted world again keeps what it had.
    let again = rebooted.crash(CrashKeep::DurableOnly);
    assert!(content(&again, "/lock").is_some());
    assert!(content(&again, "/new").is_none());
}

/// Helper trait for the tests: fsync every directory of the small trees used here.
trait SyncDirs {
    fn sync_all_dirs(&self);
}

impl SyncDirs for W {
    fn sync_all_dirs(&self) {
        for dir in ["/a", "/b", "/"] {
            self.fsync_dir(Path::new(dir)).expect("fsync_dir");
        }
    }
}

#[test]
fn torn_writes_mix_old_new_and_zero_sectors() {
    let sector = sim::SECTOR as usize;
    let world = W::new(1);
    create(&world, "/f", &vec![b'o'; 4 * sector], true);
    fsync_dir(&world, "/");
    let file = world
        .open(Path::new("/f"), OpenOptions::create_keep())
        .expect("open");
    // Overwrite sectors 1..3 and append two more sectors, without a sync.
    file.write_at(sector as u64, &vec![b'n'; 5 * sector])
        .expect("write");
    let mut kinds = std::collections::BTreeSet::new();
    let mut lengths = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let data = content(&world.crash(CrashKeep::Torn(seed)), "/f").expect("present");
        assert_eq!(
            &data[..sector],
            &vec![b'o'; sector][..],
            "sector 0 was not written"
        );
        lengths.insert(data.len());
        for chunk in data[sector..].chunks(sector) {
            let first = chunk[0];
            assert!(
                chunk.iter().all(|byte| *byte == first),
                "a sector is old, new or zero"
            );
            kinds.insert(first);
        }
        assert_eq!(
            data,
            content(&world.crash(CrashKeep::Torn(seed)), "/f").expect("again")
        );
    }
    assert_eq!(
        kinds,
        [0, b'n', b'o'].into_iter().collect(),
        "all three outcomes occur"
    );
    assert!(lengths.contains(&(4 * sector)) && lengths.contains(&(6 * sector)));
    // Synced writes are never torn.
    file.sync_all().expect("sync");
    let data = content(&world.crash(CrashKeep::Torn(3)), "/f").expect("present");
    assert_eq!(data.len(), 6 * sector);
    assert!(data[sector..].iter().all(|byte| *byte == b'n'));
}

/// Two processes publish files (write, fsync, fsync the directory, then a marker) while a
/// crash is armed at each persistence point in turn, under shuttle's random schedules. Returns
/// how many crash states showed a marker without its complete file.
fn torn_publications(sync_data: bool) -> usize {
    use sim::ShuttleSync;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use store::sync::{JoinHandle, SyncFamily};

    fn publish(world: &SimWorld<ShuttleSync>, name: &str, sync_data: bool) -> std::io::Result<()> {
        let data = format!("contents of {name}").into_bytes();
        let file = world.open(Path::new(&format!("/d/{name}")), OpenOptions::create_new())?;
        file.write_at(0, &data)?;
        if sync_data {
            file.sync_all()?;
        }
        world.fsync_dir(Path::new("/d"))?;
        world.open(
            Path::new(&format!("/d/{name}.done")),
            OpenOptions::create_new(),
        )?;
        world.fsync_dir(Path::new("/d"))
    }

    let bad = std::sync::Arc::new(AtomicUsize::new(0));
    for point in 1..=5 {
        let bad = std::sync::Arc::clone(&bad);
        shuttle::check_random(
            move || {
                let world = SimWorld::<ShuttleSync>::new(point);
                world.create_dir(Path::new("/d")).expect("mkdir");
                world.fsync_dir(Path::new("/")).expect("fsync /");
                world.arm_crash(point + 1);
                let other = world.new_process();
                let task = ShuttleSync::spawn(move || {
                    let _ = publish(&other, "b", sync_data);
                });
                let _ = publish(&world, "a", sync_data);
                task.join().expect("join");
                for keep in world.crash_states(64) {
                    let state = world.crash(keep);
                    for name in ["a", "b"] {
                        let done = state
                            .metadata(Path::new(&format!("/d/{name}.done")))
                            .is_ok();
                        let data = state.read_file(Path::new(&format!("/d/{name}"))).ok();
                        let expected = format!("contents of {name}").into_bytes();
                        if done && data != Some(expected) {
                            bad.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            },
            20,
        );
    }
    bad.load(Ordering::Relaxed)
}

#[test]
fn safely_published_files_are_complete_in_every_crash_state_under_shuttle() {
    assert_eq!(torn_publications(true), 0);
    assert!(
        torn_publications(false) > 0,
        "publishing without the data fsync is caught"
    );
}

#[test]
fn failed_directory_syncs_lose_nothing_and_injected_failures_change_nothing() {
    let world = W::new(1);
    create(&world, "/f", b"data", true);
    world.inject_fault(Fault::eio(1, OpFilter::Sync).persistent());
    assert!(world.fsync_dir(Path::new("/")).is_err());
    assert!(world.syncfs(Path::new("/")).is_err());
    assert_eq!(world.pending_ops(), 1, "the entry of /f is still pending");
    world.clear_faults();
    world.inject_fault(Fault::enospc(1, OpFilter::Any).persistent());
    assert!(
        world
            .open(Path::new("/g"), OpenOptions::create_new())
            .is_err()
    );
    assert!(world.rename(Path::new("/f"), Path::new("/h")).is_err());
    assert_eq!(world.pending_ops(), 1, "a failed operation logs nothing");
    world.clear_faults();
    fsync_dir(&world, "/");
    assert_eq!(
        content(&world.crash(CrashKeep::DurableOnly), "/f").as_deref(),
        Some(&b"data"[..])
    );
}
