//! Restores a person can trust, with the binary on real trees: names, link targets and
//! extended attributes with every byte but NUL round-trip; verify fails on a snapshot that
//! would not restore; restore never writes through a symbolic link in the target and replaces
//! only what `--overwrite` allows; a damaged chunk costs only the entries in it; an index that
//! does not match its manifest is refused.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use store::backup_info::BackupDir;
use store::chunk_store::{ChunkStoreConfig, PrefixFanout};
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::datastore::{Datastore, DatastoreConfig};
use store::index::IndexFile;
use store::world::RealWorld;

mod common;
use common::{Tool, describe, is_root, noise, walk};

fn new_store(temp: &Path) -> Tool {
    let tool = Tool {
        store: temp.join("store"),
    };
    tool.json(&["init", "--fanout", "1"]);
    tool
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

fn backup(tool: &Tool, group: &str, source: &Path, time: &str) {
    tool.json(&["backup", group, path_str(source), "--time", time]);
}

fn run(tool: &Tool, args: &[&str]) -> (i32, String, Output) {
    let output = tool.run(args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stderr, output)
}

/// Can `dir`'s filesystem hold user extended attributes?
fn xattrs_supported(dir: &Path) -> bool {
    let probe = dir.join(".xattr-probe");
    fs::write(&probe, b"").unwrap();
    let ok = xattr::set(&probe, "user.probe", b"1").is_ok();
    fs::remove_file(probe).unwrap();
    ok
}

fn user_xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut all: Vec<_> = xattr::list(path)
        .unwrap()
        .filter(|name| name.as_bytes().starts_with(b"user."))
        .map(|name| {
            let value = xattr::get(path, &name).unwrap().unwrap_or_default();
            (name.as_bytes().to_vec(), value)
        })
        .collect();
    all.sort();
    all
}

/// An entry as the comparison sees it: name, kind, contents or link target, user attributes.
type Seen = (PathBuf, String, Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>);

/// Names relative to `root`, with what each is: file contents, link target or directory.
fn snapshot_of(root: &Path, with_xattrs: bool) -> Vec<Seen> {
    let mut all: Vec<_> = walk(root)
        .into_iter()
        .map(|path| {
            let meta = fs::symlink_metadata(&path).unwrap();
            let (kind, body) = if meta.file_type().is_symlink() {
                (
                    "link",
                    fs::read_link(&path)
                        .unwrap()
                        .as_os_str()
                        .as_bytes()
                        .to_vec(),
                )
            } else if meta.is_dir() {
                ("dir", Vec::new())
            } else {
                ("file", fs::read(&path).unwrap())
            };
            let xattrs = if with_xattrs && !meta.file_type().is_symlink() {
                user_xattrs(&path)
            } else {
                Vec::new()
            };
            let relative = path.strip_prefix(root).unwrap().to_owned();
            (relative, kind.to_owned(), body, xattrs)
        })
        .collect();
    all.sort();
    all
}

#[test]
fn names_link_targets_and_xattrs_with_any_byte_round_trip() {
    let temp = tempfile::tempdir().unwrap();
    let tool = new_store(temp.path());
    let source = temp.path().join("src");
    fs::create_dir_all(&source).unwrap();
    let every_byte: Vec<u8> = (1..=255u8).filter(|&b| b != b'/').collect();
    for &b in &every_byte {
        fs::write(source.join(OsStr::from_bytes(&[b'f', b, b'x'])), [b]).unwrap();
    }
    // One name of all 254 bytes, a directory whose name has newlines, and links.
    fs::write(source.join(OsStr::from_bytes(&every_byte)), b"all").unwrap();
    let odd_dir = source.join("dir\nwith\nnewlines=%");
    fs::create_dir(&odd_dir).unwrap();
    fs::write(odd_dir.join("inside\n"), b"inside").unwrap();
    fs::hard_link(odd_dir.join("inside\n"), source.join("hard\nlink")).unwrap();
    let all_target: Vec<u8> = (1..=255u8).collect();
    std::os::unix::fs::symlink(OsStr::from_bytes(&all_target), source.join("link-all")).unwrap();
    std::os::unix::fs::symlink("a\nb", source.join("link\nnewline")).unwrap();
    let with_xattrs = xattrs_supported(&source);
    if with_xattrs {
        let holder = source.join("attributes");
        fs::write(&holder, b"x").unwrap();
        let all_values: Vec<u8> = (0..=255u8).collect();
        xattr::set(&holder, "user.plain", b"line\nline\n").unwrap();
        xattr::set(&holder, OsStr::from_bytes(b"user.a=b%c\n\xff"), &all_values).unwrap();
        xattr::set(&holder, OsStr::from_bytes(b"user.\x01\x7f"), b"").unwrap();
        xattr::set(&odd_dir, "user.on-a-directory", b"\n=\n").unwrap();
    }

    backup(&tool, "host/odd", &source, "2024-01-01T00:00:00Z");
    let (code, stderr, _) = run(&tool, &["verify"]);
    assert_eq!(code, 0, "verify: {stderr}");
    let (code, stderr, listed) = run(&tool, &["ls", "host/odd"]);
    assert_eq!(code, 0, "ls: {stderr}");
    let lines = String::from_utf8(listed.stdout).unwrap();
    assert_eq!(
        lines.lines().count(),
        walk(&source).len() + 1,
        "one line per entry and the root"
    );
    assert!(
        lines.contains("dir\\nwith\\nnewlines=%/inside\\n"),
        "{lines}"
    );

    let target = temp.path().join("out");
    let (code, stderr, _) = run(&tool, &["restore", "host/odd", path_str(&target)]);
    assert_eq!(code, 0, "restore: {stderr}");
    assert_eq!(
        snapshot_of(&source, with_xattrs),
        snapshot_of(&target, with_xattrs)
    );
    let inode = |path: &Path| fs::metadata(path).unwrap().ino();
    assert_eq!(
        inode(&target.join("hard\nlink")),
        inode(&target.join("dir\nwith\nnewlines=%/inside\n")),
        "the hard link is one inode again"
    );
}

/// The datastore at `path`, opened through the library (as another program would).
fn open_store(path: &Path) -> Datastore<RealWorld> {
    let config = DatastoreConfig::new(ChunkStoreConfig::new(PrefixFanout::new(1).unwrap()));
    Datastore::open(RealWorld::new(), path, config).unwrap()
}

/// A snapshot written by another client through the library: its chunks are sound, but the
/// stream in them is not an archive that restores.
fn plant_stream(store: &Path, dir: &str, stream: Vec<u8>) {
    let datastore = open_store(store);
    let dir = BackupDir::from_relative_path(dir).unwrap();
    let archive = ArchiveSpec::new("root.tar.didx", vec![stream]);
    backup_snapshot(&datastore, &dir, "root@local", &[archive]).unwrap();
}

fn tar_stream(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_path(name).unwrap();
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

#[test]
fn verify_fails_on_a_snapshot_that_would_not_restore() {
    let temp = tempfile::tempdir().unwrap();
    let tool = new_store(temp.path());
    let good = tar_stream(&[("a.txt", b"hello"), ("b.txt", &noise(3000, 1))]);
    plant_stream(&tool.store, "host/good/2024-01-01T00:00:00Z", good.clone());
    let mut cut = good.clone();
    cut.truncate(700); // inside the second entry's data; no end-of-archive marker
    plant_stream(&tool.store, "host/cut/2024-01-01T00:00:00Z", cut);
    let mut garbage = b"this is not an archive".to_vec();
    garbage.resize(2048, b'.');
    plant_stream(&tool.store, "host/garbage/2024-01-01T00:00:00Z", garbage);
    let mut escape = tar_stream(&[("x", b"x")]);
    // A name that climbs out of the target: a restore must refuse it.
    let mut header = tar::Header::new_ustar();
    header.as_mut_bytes()[..12].copy_from_slice(b"../../escape");
    header.set_size(1);
    header.set_cksum();
    escape.truncate(escape.len() - 1024);
    let mut builder = tar::Builder::new(escape);
    builder.append(&header, &b"e"[..]).unwrap();
    plant_stream(
        &tool.store,
        "host/escape/2024-01-01T00:00:00Z",
        builder.into_inner().unwrap(),
    );

    let (code, stderr, _) = run(&tool, &["verify", "host/good"]);
    assert_eq!(code, 0, "a sound stream verifies: {stderr}");
    for group in ["host/cut", "host/garbage", "host/escape"] {
        let output = tool.run(&["verify", group]);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert_eq!(
            output.status.code(),
            Some(5),
            "{group}: {}",
            describe(&output)
        );
        assert!(text.contains("would not restore"), "{group}: {text}");
        // The failed state is saved: a later run that skips verified snapshots still fails.
        let (code, stderr, _) = run(&tool, &["verify", "--skip-verified", group]);
        assert_eq!(code, 5, "{group} stays failed: {stderr}");
        let target = temp.path().join(group.replace('/', "-"));
        let (code, stderr, _) = run(&tool, &["restore", group, path_str(&target)]);
        assert_eq!(code, 5, "{group}: restore reports the damage: {stderr}");
    }
    assert!(
        !temp.path().join("escape").exists(),
        "nothing lands outside the target"
    );
    // The cut stream's first entry is restored in full.
    let first = temp.path().join("host-cut/a.txt");
    assert_eq!(fs::read(first).unwrap(), b"hello");
}

#[test]
fn restore_never_writes_through_a_symlink_in_the_target() {
    let temp = tempfile::tempdir().unwrap();
    let tool = new_store(temp.path());
    let source = temp.path().join("src");
    fs::create_dir_all(source.join("etc")).unwrap();
    fs::create_dir_all(source.join("sub/inner")).unwrap();
    fs::write(source.join("etc/passwd"), b"restored").unwrap();
    fs::write(source.join("file.txt"), b"restored").unwrap();
    fs::write(source.join("sub/inner/x"), b"restored").unwrap();
    fs::set_permissions(source.join("etc"), fs::Permissions::from_mode(0o700)).unwrap();
    backup(&tool, "host/a", &source, "2024-01-01T00:00:00Z");

    let outside = temp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("passwd"), b"original").unwrap();
    fs::write(outside.join("file.txt"), b"original").unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o755)).unwrap();
    let before = snapshot_of(&outside, false);
    let mode_before = fs::metadata(&outside).unwrap().mode();

    for overwrite in ["same-kind", "never", "always"] {
        let target = temp.path().join(format!("target-{overwrite}"));
        fs::create_dir_all(&target).unwrap();
        std::os::unix::fs::symlink(&outside, target.join("etc")).unwrap();
        std::os::unix::fs::symlink(outside.join("file.txt"), target.join("file.txt")).unwrap();
        std::os::unix::fs::symlink(&outside, target.join("sub")).unwrap();
        let args = [
            "restore",
            "host/a",
            path_str(&target),
            "--overwrite",
            overwrite,
        ];
        let (code, stderr, _) = run(&tool, &args);
        assert_eq!(
            snapshot_of(&outside, false),
            before,
            "{overwrite}: outside unchanged"
        );
        assert_eq!(
            fs::metadata(&outside).unwrap().mode(),
            mode_before,
            "{overwrite}"
        );
        if overwrite == "always" {
            assert_eq!(code, 0, "{overwrite}: {stderr}");
            assert_eq!(snapshot_of(&target, false), snapshot_of(&source, false));
        } else {
            assert_eq!(code, 6, "{overwrite}: entries not restored: {stderr}");
            for name in ["etc", "file.txt", "sub"] {
                assert!(stderr.contains(name), "{overwrite}: names {name}: {stderr}");
            }
            assert!(
                fs::symlink_metadata(target.join("etc"))
                    .unwrap()
                    .file_type()
                    .is_symlink()
            );
        }
    }
}

#[test]
fn what_is_in_the_way_is_replaced_only_as_overwrite_allows() {
    let temp = tempfile::tempdir().unwrap();
    let tool = new_store(temp.path());
    let source = temp.path().join("src");
    fs::create_dir_all(source.join("d")).unwrap();
    fs::write(source.join("a"), b"archived a").unwrap();
    fs::write(source.join("d/f"), b"archived f").unwrap();
    fs::write(source.join("same"), b"archived same").unwrap();
    std::os::unix::fs::symlink("x", source.join("l")).unwrap();
    backup(&tool, "host/a", &source, "2024-01-01T00:00:00Z");

    let prepare = |name: &str| {
        let target = temp.path().join(name);
        fs::create_dir_all(target.join("a")).unwrap();
        fs::write(target.join("a/keep"), b"keep me").unwrap();
        fs::write(
            target.join("d"),
            b"a file where the archive has a directory",
        )
        .unwrap();
        fs::write(target.join("same"), b"older contents").unwrap();
        std::os::unix::fs::symlink("y", target.join("l")).unwrap();
        fs::write(target.join("extra"), b"not in the archive").unwrap();
        target
    };

    let target = prepare("same-kind");
    let (code, stderr, _) = run(&tool, &["restore", "host/a", path_str(&target)]);
    assert_eq!(code, 6, "{stderr}");
    assert_eq!(
        fs::read(target.join("a/keep")).unwrap(),
        b"keep me",
        "no recursive delete"
    );
    assert!(
        stderr.contains("a directory is in the way of a file"),
        "{stderr}"
    );
    assert!(
        stderr.contains("a file is in the way of a directory"),
        "{stderr}"
    );
    assert_eq!(fs::read(target.join("same")).unwrap(), b"archived same");
    assert_eq!(fs::read_link(target.join("l")).unwrap(), Path::new("x"));
    assert_eq!(
        fs::read(target.join("extra")).unwrap(),
        b"not in the archive"
    );

    let target = prepare("never");
    let (code, stderr, _) = run(
        &tool,
        &[
            "restore",
            "host/a",
            path_str(&target),
            "--overwrite",
            "never",
        ],
    );
    assert_eq!(code, 6, "{stderr}");
    assert_eq!(fs::read(target.join("same")).unwrap(), b"older contents");
    assert_eq!(fs::read_link(target.join("l")).unwrap(), Path::new("y"));

    let target = prepare("always");
    let (code, stderr, _) = run(
        &tool,
        &[
            "restore",
            "host/a",
            path_str(&target),
            "--overwrite",
            "always",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(fs::read(target.join("a")).unwrap(), b"archived a");
    assert_eq!(fs::read(target.join("d/f")).unwrap(), b"archived f");
    assert_eq!(
        fs::read(target.join("extra")).unwrap(),
        b"not in the archive"
    );
}

/// The chunk files of the snapshot's index whose data lies inside `data`.
fn chunks_inside(store: &Path, dir: &str, data: &[u8]) -> Vec<PathBuf> {
    let datastore = open_store(store);
    let dir = BackupDir::from_relative_path(dir).unwrap();
    let index = IndexFile::open(
        datastore.world(),
        &datastore.snapshot_path(&dir).join("root.tar.didx"),
    )
    .unwrap();
    let chunks = datastore.chunk_store();
    index
        .digests()
        .iter()
        .filter(|digest| {
            let chunk = chunks.load_chunk(digest).unwrap().into_data();
            data.windows(64)
                .position(|window| window == &chunk[..64])
                .is_some_and(|at| data[at..].starts_with(&chunk))
        })
        .map(|digest| chunks.chunk_path(digest))
        .collect()
}

fn damage(chunk: &Path) {
    let mut bytes = fs::read(chunk).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(chunk, bytes).unwrap();
}

#[test]
fn a_damaged_chunk_restores_everything_else() {
    let temp = tempfile::tempdir().unwrap();
    let tool = new_store(temp.path());
    let source = temp.path().join("src");
    fs::create_dir_all(source.join("small")).unwrap();
    // Large files are chunks of their own; small ones share the stream's chunks.
    for i in 0..3 {
        fs::write(source.join(format!("big{i}")), noise(1_500_000, 10 + i)).unwrap();
    }
    for i in 0..300 {
        fs::write(source.join(format!("small/{i:03}")), noise(20_000, 100 + i)).unwrap();
    }
    let mtime = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    fs::File::open(source.join("small"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    backup(&tool, "host/a", &source, "2024-01-01T00:00:00Z");

    let big1 = fs::read(source.join("big1")).unwrap();
    let in_big1 = chunks_inside(&tool.store, "host/a/2024-01-01T00:00:00Z", &big1);
    assert!(!in_big1.is_empty(), "big1 has chunks of its own");
    for chunk in &in_big1 {
        damage(chunk);
    }
    let target = temp.path().join("out");
    let (code, stderr, _) = run(&tool, &["restore", "host/a", path_str(&target)]);
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains("big1: ") && stderr.contains("damaged chunks"),
        "{stderr}"
    );
    for path in walk(&source) {
        let relative = path.strip_prefix(&source).unwrap();
        if relative == Path::new("big1") || path.is_dir() {
            continue;
        }
        assert_eq!(
            fs::read(&path).unwrap(),
            fs::read(target.join(relative)).unwrap(),
            "{relative:?}"
        );
    }
    let restored_mtime = fs::metadata(target.join("small"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(restored_mtime, mtime, "directory metadata is applied");
    let (code, stderr, _) = run(&tool, &["verify"]);
    assert_eq!(code, 5, "{stderr}");
}

#[test]
fn damage_among_small_files_loses_only_the_entries_in_it() {
    let temp = tempfile::tempdir().unwrap();
    let tool = new_store(temp.path());
    let source = temp.path().join("src");
    fs::create_dir_all(&source).unwrap();
    let mut everything = Vec::new();
    for i in 0..400 {
        let data = noise(20_000, 500 + i);
        everything.extend_from_slice(&data);
        fs::write(source.join(format!("{i:03}")), data).unwrap();
    }
    backup(&tool, "host/a", &source, "2024-01-01T00:00:00Z");
    let datastore = open_store(&tool.store);
    let dir = BackupDir::from_relative_path("host/a/2024-01-01T00:00:00Z").unwrap();
    let index = IndexFile::open(
        datastore.world(),
        &datastore.snapshot_path(&dir).join("root.tar.didx"),
    )
    .unwrap();
    assert!(index.chunk_count() >= 3, "{} chunks", index.chunk_count());
    damage(&datastore.chunk_store().chunk_path(&index.digests()[1]));

    let target = temp.path().join("out");
    let (code, stderr, _) = run(&tool, &["restore", "host/a", path_str(&target)]);
    assert_eq!(code, 5, "{stderr}");
    let exact = (0..400)
        .filter(|i| {
            let name = format!("{i:03}");
            fs::read(target.join(&name)).ok() == fs::read(source.join(&name)).ok()
        })
        .count();
    let damaged_chunk = index.chunk_range(1).unwrap();
    let in_damage = (damaged_chunk.end - damaged_chunk.start) / 20_000 + 2;
    assert!(
        exact as u64 >= 400 - in_damage,
        "{exact} of 400 exact; {stderr}"
    );
    assert_eq!(
        fs::read(target.join("399")).unwrap(),
        fs::read(source.join("399")).unwrap(),
        "entries after the damage are read again"
    );
    assert!(
        stderr.contains(&index.digests()[1].to_string()),
        "names the chunk: {stderr}"
    );
}

#[test]
fn an_index_that_does_not_match_its_manifest_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let tool = new_store(temp.path());
    let source = temp.path().join("src");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("first"), b"first").unwrap();
    backup(&tool, "host/a", &source, "2024-01-01T00:00:00Z");
    fs::remove_file(source.join("first")).unwrap();
    fs::write(source.join("second"), b"second").unwrap();
    backup(&tool, "host/b", &source, "2024-01-01T00:00:00Z");
    let snapshot = |group: &str| tool.store.join(group).join("2024-01-01T00:00:00Z");
    fs::copy(
        snapshot("host/a").join("root.tar.didx"),
        snapshot("host/b").join("root.tar.didx"),
    )
    .unwrap();
    let target = temp.path().join("out");
    let (code, stderr, _) = run(&tool, &["restore", "host/b", path_str(&target)]);
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains("root.tar.didx") && stderr.contains("manifest"),
        "{stderr}"
    );
    assert!(
        !target.join("first").exists(),
        "nothing of the other archive is restored"
    );
    let (code, stderr, _) = run(&tool, &["ls", "host/b"]);
    assert_eq!(code, 5, "{stderr}");
}

#[test]
fn a_restore_by_another_user_skips_device_nodes_and_owners_with_warnings() {
    use std::os::unix::process::CommandExt;
    if !is_root() {
        println!("skipped: not root (needs to make a device node and switch user)");
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let tool = new_store(temp.path());
    let source = temp.path().join("src");
    fs::create_dir_all(source.join("d")).unwrap();
    fs::write(source.join("d/f"), b"data").unwrap();
    std::os::unix::fs::chown(source.join("d/f"), Some(1234), Some(1234)).unwrap();
    let node = |name: &str, kind: libc::mode_t| {
        let path = std::ffi::CString::new(source.join(name).as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        let rc = unsafe { libc::mknod(path.as_ptr(), kind | 0o644, libc::makedev(1, 3)) };
        assert_eq!(rc, 0, "mknod {name}");
    };
    node("null", libc::S_IFCHR);
    node("pipe", libc::S_IFIFO);
    let mtime = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2_000_000);
    fs::File::open(source.join("d"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    backup(&tool, "host/a", &source, "2024-01-01T00:00:00Z");

    let home = temp.path().join("nobody");
    fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let target = home.join("out");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chunkstore"))
        .arg("--store")
        .arg(&tool.store)
        .arg("--lock-dir")
        .arg(home.join("locks"))
        .args(["--quiet", "restore", "host/a"])
        .arg(&target)
        .env("CHUNKSTORE_CACHE_DIR", home.join("cache"))
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(6), "{}", describe(&output));
    assert!(
        stderr.contains("null") && stderr.contains("needs root"),
        "{stderr}"
    );
    assert!(
        stderr.contains("owners (uid/gid) are not restored"),
        "{stderr}"
    );
    assert_eq!(fs::read(target.join("d/f")).unwrap(), b"data");
    let pipe = fs::symlink_metadata(target.join("pipe")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&pipe.file_type()));
    assert!(!target.join("null").exists());
    let restored = fs::metadata(target.join("d")).unwrap().modified().unwrap();
    assert_eq!(
        restored, mtime,
        "directory metadata is applied after a skipped entry"
    );
}

#[test]
fn cat_writes_a_stream_standard_tar_reads_and_single_files() {
    let temp = tempfile::tempdir().unwrap();
    let tool = new_store(temp.path());
    let source = temp.path().join("src");
    fs::create_dir_all(source.join("etc")).unwrap();
    fs::write(source.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    fs::write(source.join("big"), noise(3 << 20, 9)).unwrap();
    fs::write(source.join("new\nline"), b"odd name").unwrap();
    std::os::unix::fs::symlink("etc/hosts", source.join("link")).unwrap();
    backup(&tool, "host/a", &source, "2024-01-01T00:00:00Z");

    let (code, stderr, output) = run(&tool, &["cat", "host/a"]);
    assert_eq!(code, 0, "{stderr}");
    let stream = temp.path().join("stream.tar");
    fs::write(&stream, &output.stdout).unwrap();
    let extracted = temp.path().join("by-tar");
    fs::create_dir_all(&extracted).unwrap();
    let tar = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&stream)
        .arg("-C")
        .arg(&extracted)
        .output();
    match tar {
        Ok(tar) => {
            assert!(
                tar.status.success(),
                "GNU tar reads the stream: {}",
                describe(&tar)
            );
            assert_eq!(snapshot_of(&extracted, false), snapshot_of(&source, false));
        }
        Err(err) => println!("skipped the tar check: no tar here: {err}"),
    }

    let (code, stderr, output) = run(&tool, &["cat", "host/a", "etc/hosts"]);
    assert_eq!(
        (code, output.stdout.as_slice()),
        (0, &b"127.0.0.1 localhost\n"[..]),
        "{stderr}"
    );
    let (code, _, output) = run(&tool, &["cat", "host/a", "/big"]);
    assert!(
        code == 0 && output.stdout == noise(3 << 20, 9),
        "a large file whole"
    );
    let (code, stderr, _) = run(&tool, &["cat", "host/a", "etc/missing"]);
    assert_eq!(code, 4, "{stderr}");
    let (code, stderr, _) = run(&tool, &["cat", "host/a", "etc"]);
    assert_eq!(code, 2, "a directory is not a file: {stderr}");

    let image = temp.path().join("disk.img");
    fs::write(&image, noise(5 << 20, 4)).unwrap();
    tool.json(&[
        "backup",
        "vm/1",
        path_str(&image),
        "--time",
        "2024-01-01T00:00:00Z",
    ]);
    let (code, stderr, output) = run(&tool, &["cat", "vm/1"]);
    assert!(code == 0 && output.stdout == noise(5 << 20, 4), "{stderr}");
}

#[test]
fn include_restores_only_matching_entries_with_their_directories_metadata() {
    let temp = tempfile::tempdir().unwrap();
    let tool = new_store(temp.path());
    let source = temp.path().join("src");
    fs::create_dir_all(source.join("etc")).unwrap();
    fs::create_dir_all(source.join("var/log")).unwrap();
    fs::write(source.join("etc/hosts"), b"hosts").unwrap();
    fs::write(source.join("etc/passwd"), b"passwd").unwrap();
    fs::write(source.join("var/log/x"), b"x").unwrap();
    fs::set_permissions(source.join("etc"), fs::Permissions::from_mode(0o750)).unwrap();
    backup(&tool, "host/a", &source, "2024-01-01T00:00:00Z");

    let target = temp.path().join("one");
    let args = [
        "restore",
        "host/a",
        path_str(&target),
        "--include",
        "etc/h*",
    ];
    let (code, stderr, _) = run(&tool, &args);
    assert_eq!(code, 0, "{stderr}");
    let mut got: Vec<PathBuf> = walk(&target)
        .iter()
        .map(|path| path.strip_prefix(&target).unwrap().to_owned())
        .collect();
    got.sort();
    assert_eq!(got, [PathBuf::from("etc"), PathBuf::from("etc/hosts")]);
    let mode = fs::metadata(target.join("etc")).unwrap().mode() & 0o7777;
    assert_eq!(
        mode, 0o750,
        "the directory made on the way has its archived mode"
    );

    let target = temp.path().join("subtree");
    let args = ["restore", "host/a", path_str(&target), "--include", "var"];
    let (code, stderr, _) = run(&tool, &args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(fs::read(target.join("var/log/x")).unwrap(), b"x");
    assert!(!target.join("etc").exists());
}
