//! Filesystem semantics of `SimWorld<StdSync>`: the error kinds of the `store::world` table,
//! times, unlinked-but-open files, the seeded listing order and the sync statistics.

use std::io::ErrorKind;
use std::path::Path;

use sim::{START_TIME, SimStats, SimWorld};
use store::sync::StdSync;
use store::world::{FileKind, OpenOptions, World, WorldFile};

type W = SimWorld<StdSync>;

fn p(path: &str) -> &Path {
    Path::new(path)
}

/// The error kind of `result`, or `None` if it succeeded.
fn kind<T>(result: std::io::Result<T>) -> Option<ErrorKind> {
    result.err().map(|err| err.kind())
}

fn write_file(world: &W, path: &str, data: &[u8]) {
    let file = world
        .open(p(path), OpenOptions::create_truncate())
        .expect("create file");
    file.write_at(0, data).expect("write file");
}

#[test]
fn create_dir_and_create_dir_all() {
    let world = W::new(1);
    world.create_dir(p("/a")).expect("mkdir /a");
    assert_eq!(
        kind(world.create_dir(p("/a"))),
        Some(ErrorKind::AlreadyExists)
    );
    assert_eq!(
        kind(world.create_dir(p("/"))),
        Some(ErrorKind::AlreadyExists)
    );
    assert_eq!(kind(world.create_dir(p("/x/y"))), Some(ErrorKind::NotFound));
    write_file(&world, "/f", b"x");
    assert_eq!(
        kind(world.create_dir(p("/f"))),
        Some(ErrorKind::AlreadyExists)
    );
    assert_eq!(
        kind(world.create_dir(p("/f/x"))),
        Some(ErrorKind::NotADirectory)
    );

    world.create_dir_all(p("/a/b/c")).expect("create_dir_all");
    world
        .create_dir_all(p("/a/b/c"))
        .expect("create_dir_all of an existing dir");
    world
        .create_dir_all(p("/"))
        .expect("create_dir_all of the root");
    assert!(world.metadata(p("/a/b/c")).expect("stat").is_dir());
    // As std on Linux: the target is a file → AlreadyExists; a file on the way → NotADirectory.
    assert_eq!(
        kind(world.create_dir_all(p("/f"))),
        Some(ErrorKind::AlreadyExists)
    );
    assert_eq!(
        kind(world.create_dir_all(p("/f/x/y"))),
        Some(ErrorKind::NotADirectory)
    );
}

#[test]
fn remove_file_and_remove_dir() {
    let world = W::new(1);
    world.create_dir_all(p("/d/sub")).expect("mkdir");
    write_file(&world, "/d/f", b"x");
    assert_eq!(
        kind(world.remove_file(p("/d/sub"))),
        Some(ErrorKind::IsADirectory)
    );
    assert_eq!(
        kind(world.remove_file(p("/"))),
        Some(ErrorKind::IsADirectory)
    );
    assert_eq!(
        kind(world.remove_file(p("/d/none"))),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        kind(world.remove_dir(p("/d/f"))),
        Some(ErrorKind::NotADirectory)
    );
    assert_eq!(
        kind(world.remove_dir(p("/d"))),
        Some(ErrorKind::DirectoryNotEmpty)
    );
    assert_eq!(
        kind(world.remove_dir(p("/"))),
        Some(ErrorKind::ResourceBusy)
    );
    assert_eq!(
        kind(world.remove_dir(p("/d/none"))),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        kind(world.remove_file(p("/d/f/x"))),
        Some(ErrorKind::NotADirectory)
    );
    world.remove_file(p("/d/f")).expect("unlink");
    world.remove_dir(p("/d/sub")).expect("rmdir");
    world.remove_dir(p("/d")).expect("rmdir");
    assert_eq!(world.try_metadata(p("/d")).expect("stat"), None);
}

#[test]
fn read_dir_and_metadata_errors() {
    let world = W::new(1);
    write_file(&world, "/f", b"abc");
    assert_eq!(
        kind(world.read_dir(p("/f"))),
        Some(ErrorKind::NotADirectory)
    );
    assert_eq!(kind(world.read_dir(p("/none"))), Some(ErrorKind::NotFound));
    assert_eq!(kind(world.metadata(p("/none"))), Some(ErrorKind::NotFound));
    assert_eq!(
        kind(world.metadata(p("/f/x"))),
        Some(ErrorKind::NotADirectory)
    );
    assert_eq!(kind(world.metadata(p(""))), Some(ErrorKind::NotFound));
    assert_eq!(
        kind(world.metadata(p("/a/../f"))),
        Some(ErrorKind::InvalidInput)
    );
    let meta = world.metadata(p("/f")).expect("stat");
    assert_eq!((meta.kind, meta.len), (FileKind::File, 3));
    assert_eq!(world.metadata(p("f")).expect("relative path").ino, meta.ino);
    assert!(world.metadata(p("/")).expect("stat /").is_dir());
    let names: Vec<_> = world
        .read_dir(p("/"))
        .expect("ls /")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("f")]);
}

#[test]
fn open_errors() {
    let world = W::new(1);
    world.create_dir(p("/d")).expect("mkdir");
    write_file(&world, "/f", b"x");
    assert_eq!(
        kind(world.open(p("/none"), OpenOptions::read_only())),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        kind(world.open(p("/none/x"), OpenOptions::create_keep())),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        kind(world.open(p("/f/x"), OpenOptions::create_keep())),
        Some(ErrorKind::NotADirectory)
    );
    assert_eq!(
        kind(world.open(p("/f"), OpenOptions::create_new())),
        Some(ErrorKind::AlreadyExists)
    );
    assert_eq!(
        kind(world.open(p("/d"), OpenOptions::create_new())),
        Some(ErrorKind::AlreadyExists)
    );
    assert_eq!(
        kind(world.open(p("/d"), OpenOptions::create_keep())),
        Some(ErrorKind::IsADirectory)
    );
    let rw = OpenOptions {
        read: true,
        write: true,
        ..Default::default()
    };
    assert_eq!(kind(world.open(p("/d"), rw)), Some(ErrorKind::IsADirectory));
    let create_ro = OpenOptions {
        read: true,
        create: true,
        ..Default::default()
    };
    assert_eq!(
        kind(world.open(p("/g"), create_ro)),
        Some(ErrorKind::InvalidInput)
    );
    // A directory opens read-only; reading it is IsADirectory.
    let dir = world
        .open(p("/d"), OpenOptions::read_only())
        .expect("open dir");
    assert_eq!(kind(dir.read_to_end()), Some(ErrorKind::IsADirectory));
    assert!(dir.metadata().expect("fstat").is_dir());
    // Writing through a read-only handle fails.
    let ro = world.open(p("/f"), OpenOptions::read_only()).expect("open");
    assert!(ro.write_at(0, b"y").is_err());
    assert_eq!(kind(ro.set_len(0)), Some(ErrorKind::InvalidInput));
    assert_eq!(world.read_file(p("/f")).expect("read"), b"x");
}

#[test]
fn read_write_truncate() {
    let world = W::new(1);
    let file = world
        .open(p("/f"), OpenOptions::create_new())
        .expect("create");
    file.write_at(4, b"xy").expect("write past the end");
    assert_eq!(file.read_to_end().expect("read"), b"\0\0\0\0xy");
    let mut buf = [0u8; 4];
    assert_eq!(file.read_at(3, &mut buf).expect("read_at"), 3);
    assert_eq!(&buf[..3], b"\0xy");
    assert_eq!(file.read_at(10, &mut buf).expect("read_at past end"), 0);
    file.set_len(2).expect("truncate");
    assert_eq!(file.metadata().expect("fstat").len, 2);
    file.set_len(3).expect("extend");
    assert_eq!(file.read_to_end().expect("read"), b"\0\0\0");
    // create_keep keeps data, create_truncate empties the file.
    drop(
        world
            .open(p("/f"), OpenOptions::create_keep())
            .expect("reopen"),
    );
    assert_eq!(world.metadata(p("/f")).expect("stat").len, 3);
    drop(
        world
            .open(p("/f"), OpenOptions::create_truncate())
            .expect("truncate"),
    );
    assert_eq!(world.metadata(p("/f")).expect("stat").len, 0);
}

#[test]
fn rename_semantics() {
    let world = W::new(1);
    world.create_dir_all(p("/a/b")).expect("mkdir");
    world.create_dir_all(p("/e")).expect("mkdir");
    write_file(&world, "/f", b"old");
    write_file(&world, "/g", b"new");
    let old_ino = world.metadata(p("/g")).expect("stat").ino;

    world.rename(p("/g"), p("/f")).expect("file over file");
    assert_eq!(world.read_file(p("/f")).expect("read"), b"new");
    assert_eq!(world.metadata(p("/f")).expect("stat").ino, old_ino);
    assert_eq!(kind(world.metadata(p("/g"))), Some(ErrorKind::NotFound));

    world.rename(p("/f"), p("/f")).expect("onto itself");
    assert_eq!(
        kind(world.rename(p("/none"), p("/none"))),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        kind(world.rename(p("/none"), p("/x"))),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        kind(world.rename(p("/f"), p("/none/x"))),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        kind(world.rename(p("/f"), p("/e"))),
        Some(ErrorKind::IsADirectory)
    );
    assert_eq!(
        kind(world.rename(p("/e"), p("/f"))),
        Some(ErrorKind::NotADirectory)
    );
    assert_eq!(
        kind(world.rename(p("/e"), p("/a"))),
        Some(ErrorKind::DirectoryNotEmpty)
    );
    assert_eq!(
        kind(world.rename(p("/a"), p("/a/b/c"))),
        Some(ErrorKind::InvalidInput)
    );
    assert_eq!(
        kind(world.rename(p("/a/b"), p("/a"))),
        Some(ErrorKind::DirectoryNotEmpty)
    );
    assert_eq!(
        kind(world.rename(p("/"), p("/z"))),
        Some(ErrorKind::ResourceBusy)
    );

    world
        .rename(p("/e"), p("/a/b"))
        .expect("dir over empty dir, across directories");
    assert_eq!(kind(world.metadata(p("/e"))), Some(ErrorKind::NotFound));
    world
        .rename(p("/f"), p("/a/b/f"))
        .expect("file across directories");
    assert_eq!(world.read_file(p("/a/b/f")).expect("read"), b"new");
    world.rename(p("/a/b"), p("/moved")).expect("dir up");
    assert_eq!(world.read_file(p("/moved/f")).expect("read"), b"new");
}

#[test]
fn removed_directory_refuses_new_entries() {
    let world = W::new(1);
    world.create_dir(p("/d")).expect("mkdir");
    let dir = world
        .open(p("/d"), OpenOptions::read_only())
        .expect("open dir");
    world.remove_dir(p("/d")).expect("rmdir");
    world.create_dir(p("/e")).expect("mkdir");
    world.rename(p("/e"), p("/d")).expect("rename");
    assert!(dir.metadata().expect("fstat of removed dir").is_dir());
    assert_eq!(world.read_dir(p("/d")).expect("ls").len(), 0);
}

#[test]
fn unlinked_open_file_keeps_its_data() {
    let world = W::new(1);
    write_file(&world, "/f", b"data");
    let file = world
        .open(p("/f"), OpenOptions::create_keep())
        .expect("open");
    world.remove_file(p("/f")).expect("unlink");
    assert_eq!(kind(world.metadata(p("/f"))), Some(ErrorKind::NotFound));
    assert_eq!(file.read_to_end().expect("read"), b"data");
    file.write_at(4, b"!").expect("write");
    assert_eq!(file.metadata().expect("fstat").len, 5);
    write_file(&world, "/f", b"other");
    assert_eq!(file.read_to_end().expect("read"), b"data!");
}

#[test]
fn times_follow_the_simulated_clock() {
    let world = W::new(1);
    assert_eq!(world.now(), START_TIME);
    write_file(&world, "/f", b"x");
    let meta = world.metadata(p("/f")).expect("stat");
    assert_eq!((meta.atime, meta.mtime), (START_TIME, START_TIME));

    world.advance(10);
    world.touch_atime(p("/f")).expect("touch");
    let meta = world.metadata(p("/f")).expect("stat");
    assert_eq!((meta.atime, meta.mtime), (START_TIME + 10, START_TIME));

    world.set_time(START_TIME + 100);
    let file = world
        .open(p("/f"), OpenOptions::create_keep())
        .expect("open");
    file.read_to_end().expect("reads leave atime alone");
    file.write_at(0, b"y").expect("write");
    let meta = file.metadata().expect("fstat");
    assert_eq!(
        (meta.atime, meta.mtime),
        (START_TIME + 10, START_TIME + 100)
    );
    world.advance(1);
    file.set_len(0).expect("set_len");
    assert_eq!(file.metadata().expect("fstat").mtime, START_TIME + 101);

    // Another process shares the clock and the disk.
    let other = world.new_process();
    assert_ne!(other.pid(), world.pid());
    other.advance(1);
    assert_eq!(world.now(), START_TIME + 102);
    assert!(other.metadata(p("/f")).is_ok());
    assert_eq!(
        kind(world.touch_atime(p("/none"))),
        Some(ErrorKind::NotFound)
    );
}

#[test]
fn unique_ids_and_inode_numbers_are_distinct() {
    let world = W::new(1);
    let other = world.new_process();
    let ids = [
        world.unique_id(),
        other.unique_id(),
        world.clone().unique_id(),
    ];
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    world.create_dir(p("/a")).expect("mkdir");
    write_file(&world, "/a/f", b"");
    let inos = [p("/"), p("/a"), p("/a/f")].map(|path| world.metadata(path).expect("stat").ino);
    assert!(inos[0] != inos[1] && inos[1] != inos[2] && inos[0] != inos[2]);
}

#[test]
fn sync_calls_are_counted() {
    let world = W::new(1);
    world.create_dir(p("/d")).expect("mkdir");
    let file = world
        .open(p("/d/f"), OpenOptions::create_new())
        .expect("create");
    file.sync_all().expect("fsync");
    world.fsync_dir(p("/d")).expect("fsync dir");
    world.syncfs(p("/")).expect("syncfs");
    assert_eq!(kind(world.fsync_dir(p("/none"))), Some(ErrorKind::NotFound));
    assert_eq!(
        kind(world.fsync_dir(p("/d/f"))),
        Some(ErrorKind::NotADirectory)
    );
    assert_eq!(kind(world.syncfs(p("/none"))), Some(ErrorKind::NotFound));
    assert_eq!(
        world.sim_stats(),
        SimStats {
            sync_all: 1,
            fsync_dir: 1,
            syncfs: 1
        }
    );
}

/// The names listed in `/d` of a world seeded with `seed` holding the same 20 files.
fn listing(seed: u64) -> Vec<String> {
    let world = W::new(seed);
    world.create_dir(p("/d")).expect("mkdir");
    for i in 0..20 {
        write_file(&world, &format!("/d/{i:02}"), b"");
    }
    let entries = world.read_dir(p("/d")).expect("ls");
    entries
        .iter()
        .map(|entry| entry.name_str().expect("utf-8").to_owned())
        .collect()
}

#[test]
fn read_dir_order_comes_from_the_seed() {
    let first = listing(7);
    assert_eq!(first, listing(7), "same seed, same order");
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (0..20).map(|i| format!("{i:02}")).collect::<Vec<_>>()
    );
    let distinct = (0..8).map(listing).filter(|order| *order != first).count();
    assert!(
        distinct >= 6,
        "other seeds should mostly give other orders ({distinct} of 8 differ)"
    );
}
