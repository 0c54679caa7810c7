//! The tool end to end on a tempdir: backup → list → restore byte-identical → prune → gc →
//! verify, and the exit codes of bad input, a busy snapshot and damaged data.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use store::backup_info::BackupDir;
use store::chunk_store::{ChunkStoreConfig, PrefixFanout};
use store::datastore::{Datastore, DatastoreConfig};
use store::world::{LockMode, RealWorld};

mod common;
use common::{Tool, noise, walk};

fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("etc/conf.d")).unwrap();
    fs::create_dir_all(root.join("var/empty")).unwrap();
    fs::write(root.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    fs::write(root.join("etc/conf.d/big.bin"), noise(5 << 20, 1)).unwrap();
    fs::write(root.join("var/log.txt"), "line\n".repeat(100_000)).unwrap();
    std::os::unix::fs::symlink("hosts", root.join("etc/hosts.link")).unwrap();
}

fn assert_same_tree(a: &Path, b: &Path) {
    let mut left: Vec<_> = walk(a)
        .into_iter()
        .map(|p| p.strip_prefix(a).unwrap().to_owned())
        .collect();
    let mut right: Vec<_> = walk(b)
        .into_iter()
        .map(|p| p.strip_prefix(b).unwrap().to_owned())
        .collect();
    left.sort();
    right.sort();
    assert_eq!(left, right, "same entries");
    for relative in left {
        let (x, y) = (a.join(&relative), b.join(&relative));
        let (mx, my) = (
            fs::symlink_metadata(&x).unwrap(),
            fs::symlink_metadata(&y).unwrap(),
        );
        assert_eq!(mx.file_type(), my.file_type(), "{relative:?}");
        if mx.file_type().is_symlink() {
            assert_eq!(fs::read_link(&x).unwrap(), fs::read_link(&y).unwrap());
        } else if mx.is_file() {
            assert!(
                fs::read(&x).unwrap() == fs::read(&y).unwrap(),
                "{relative:?} differs"
            );
        }
    }
}

/// Every chunk file's atime set two days back, as if nothing had touched them since.
fn age_chunks(store: &Path) {
    let old = SystemTime::now() - Duration::from_secs(2 * 86_400);
    for path in walk(&store.join(".chunks")) {
        if fs::symlink_metadata(&path).unwrap().is_file() {
            let file = fs::File::open(&path).unwrap();
            file.set_times(fs::FileTimes::new().set_accessed(old))
                .unwrap();
        }
    }
}

#[test]
fn backup_list_restore_prune_gc_verify() {
    let temp = tempfile::tempdir().unwrap();
    let tool = Tool {
        store: temp.path().join("store"),
    };
    let data = temp.path().join("data");
    make_tree(&data);
    tool.json(&["init", "--fanout", "2"]);

    let first = tool.json(&[
        "backup",
        "host/web",
        data.to_str().unwrap(),
        "--time",
        "2024-01-01T00:00:00Z",
    ]);
    assert_eq!(first["reused-chunks"], 0);
    // Change one small file: the incremental backup reuses the chunks of the unchanged bytes.
    fs::write(data.join("etc/hosts"), b"127.0.0.1 localhost web\n").unwrap();
    let second = tool.json(&[
        "backup",
        "host/web",
        data.to_str().unwrap(),
        "--time",
        "2024-01-02T00:00:00Z",
    ]);
    assert_eq!(second["base"], "host/web/2024-01-01T00:00:00Z");
    assert!(second["reused-chunks"].as_u64().unwrap() >= 1, "{second:#}");
    assert!(second["uploaded-chunks"].as_u64().unwrap() < second["chunks"].as_u64().unwrap());

    let image = temp.path().join("disk.img");
    fs::write(&image, noise(9 << 20, 7)).unwrap();
    let vm = tool.json(&[
        "backup",
        "vm/100",
        image.to_str().unwrap(),
        "--time",
        "2024-01-01T00:00:00Z",
    ]);
    assert_eq!(vm["archive"], "disk.img.fidx");
    assert_eq!(vm["chunks"], 3, "9 MiB in 4 MiB chunks");

    let listed = tool.json(&["list"]);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["snapshot"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "vm/100/2024-01-01T00:00:00Z",
            "host/web/2024-01-01T00:00:00Z",
            "host/web/2024-01-02T00:00:00Z"
        ]
    );

    let restored = temp.path().join("restored");
    tool.json(&["restore", "host/web", restored.to_str().unwrap()]);
    assert_same_tree(&data, &restored);
    let image_out = temp.path().join("disk.out");
    tool.json(&[
        "restore",
        "vm/100/2024-01-01T00:00:00Z",
        image_out.to_str().unwrap(),
    ]);
    assert!(
        fs::read(&image).unwrap() == fs::read(&image_out).unwrap(),
        "image differs"
    );

    let pruned = tool.json(&["prune", "host/web", "--keep-last", "1"]);
    let outcomes: Vec<&str> = pruned["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["kept", "removed"]);

    // Two days later, GC removes what only the pruned snapshot referenced and nothing else.
    age_chunks(&tool.store);
    let gc = tool.json(&["gc"]);
    assert!(gc["removed-chunks"].as_u64().unwrap() >= 1, "{gc:#}");
    let verified = tool.json(&["verify"]);
    assert_eq!(verified["failed"], 0, "{verified:#}");
    let again = temp.path().join("again");
    tool.json(&[
        "restore",
        "host/web/2024-01-02T00:00:00Z",
        again.to_str().unwrap(),
    ]);
    assert_same_tree(&data, &again);

    tool.json(&[
        "notes",
        "host/web/2024-01-02T00:00:00Z",
        "before the upgrade",
    ]);
    let notes = tool.json(&["notes", "host/web/2024-01-02T00:00:00Z"]);
    assert_eq!(notes["notes"], "before the upgrade");
    tool.json(&["protect", "host/web/2024-01-02T00:00:00Z"]);
    let (code, stderr) = tool.code(&["forget", "host/web/2024-01-02T00:00:00Z"]);
    assert_eq!(code, 2, "a protected snapshot is refused: {stderr}");
}

#[test]
fn exit_codes_name_the_problem() {
    let temp = tempfile::tempdir().unwrap();
    let tool = Tool {
        store: temp.path().join("store"),
    };
    let (code, stderr) = tool.code(&["list"]);
    assert_eq!(code, 2, "no datastore: {stderr}");
    tool.json(&["init", "--fanout", "1"]);
    let file = temp.path().join("f");
    fs::write(&file, b"data").unwrap();

    let (code, stderr) = tool.code(&["backup", "host/../x", file.to_str().unwrap()]);
    assert_eq!(code, 2, "hostile id: {stderr}");
    let (code, stderr) = tool.code(&[
        "backup",
        "host/a",
        temp.path().join("missing").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "missing path: {stderr}");
    assert!(stderr.contains("missing"), "{stderr}");
    let (code, stderr) = tool.code(&["forget", "host/a/2024-01-01T00:00:00Z"]);
    assert_eq!(code, 4, "no such snapshot: {stderr}");

    tool.json(&[
        "backup",
        "host/a",
        file.to_str().unwrap(),
        "--time",
        "2024-01-01T00:00:00Z",
    ]);
    // Another process reads the snapshot: forget is refused as busy, naming the lock.
    let holder = Datastore::open(
        RealWorld::new(),
        &tool.store,
        DatastoreConfig::new(ChunkStoreConfig::new(PrefixFanout::new(1).unwrap())),
    )
    .unwrap();
    let dir = BackupDir::from_relative_path("host/a/2024-01-01T00:00:00Z").unwrap();
    let lock = holder.lock_snapshot(&dir, LockMode::Shared).unwrap();
    let (code, stderr) = tool.code(&["forget", "host/a/2024-01-01T00:00:00Z"]);
    assert_eq!(code, 3, "busy: {stderr}");
    assert!(
        stderr.contains("busy") && stderr.contains("host/a/2024-01-01T00:00:00Z"),
        "{stderr}"
    );
    drop(lock);

    // Damage the only chunk: verify fails with exit 5.
    let chunk = walk(&tool.store.join(".chunks"))
        .into_iter()
        .find(|p| fs::symlink_metadata(p).unwrap().is_file())
        .expect("a chunk file");
    let mut bytes = fs::read(&chunk).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&chunk, bytes).unwrap();
    let (code, stderr) = tool.code(&["verify"]);
    assert_eq!(code, 5, "damaged: {stderr}");
    let (code, _) = tool.code(&["forget", "host/a/2024-01-01T00:00:00Z"]);
    assert_eq!(code, 0, "the lock is gone with its holder");
}
