//! Directory archives on real trees: every metadata kind round-trips (compared as `find -printf`
//! listings), files that grow and shrink while they are read give well-formed entries with a
//! warning, and entries that cannot be archived make a partial backup.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod common;
use common::{Tool, describe, is_root, noise};

/// Type, mode, owner, link count, size, mtime with nanoseconds and link target of every entry.
fn listing(root: &Path) -> String {
    let out = Command::new("find")
        .arg(".")
        .args(["-printf", "%p %y %m %U %G %n %s %T@ %l\\n"])
        .current_dir(root)
        .output()
        .expect("find");
    assert!(out.status.success(), "find: {}", describe(&out));
    let mut lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    lines.sort_unstable();
    lines.join("\n")
}

fn set_mtime(path: &Path, text: &str) {
    let status = Command::new("touch")
        .args(["-h", "-d", text])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "touch {}", path.display());
}

/// A tree with every kind of entry and metadata the archive keeps.
fn metadata_tree(root: &Path) {
    fs::create_dir_all(root.join("dir/sub")).unwrap();
    fs::create_dir_all(root.join("locked")).unwrap();
    fs::write(root.join("dir/file"), b"contents\n").unwrap();
    fs::hard_link(root.join("dir/file"), root.join("dir/hardlink")).unwrap();
    fs::hard_link(root.join("dir/file"), root.join("second-link")).unwrap();
    std::os::unix::fs::symlink("file", root.join("dir/symlink")).unwrap();
    std::os::unix::fs::symlink("/nowhere/at/all", root.join("dangling")).unwrap();
    let fifo = std::ffi::CString::new(root.join("fifo").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
    let sparse = fs::File::create(root.join("sparse")).unwrap();
    sparse.set_len(16 << 20).unwrap();
    let mut sparse = sparse;
    std::io::Seek::seek(&mut sparse, std::io::SeekFrom::Start(8 << 20)).unwrap();
    sparse.write_all(b"island").unwrap();
    drop(sparse);
    fs::write(root.join("epoch"), b"").unwrap();
    fs::write(root.join("setuid"), noise(70_000, 3)).unwrap();
    fs::set_permissions(root.join("setuid"), fs::Permissions::from_mode(0o4751)).unwrap();
    fs::set_permissions(root.join("dir/sub"), fs::Permissions::from_mode(0o1777)).unwrap();
    xattr::set(root.join("dir/file"), "user.origin", b"archive test").unwrap_or_else(|err| {
        println!("extended attributes not supported here ({err}); not checked");
    });
    if is_root() {
        std::os::unix::fs::lchown(root.join("dir/file"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(root.join("dir/symlink"), Some(42), Some(43)).unwrap();
        let null =
            std::ffi::CString::new(root.join("null").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        let rc = unsafe { libc::mknod(null.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
        assert_eq!(rc, 0, "mknod as root");
    } else {
        println!("not root: ownership and device nodes not checked");
    }
    set_mtime(&root.join("epoch"), "1970-01-01 00:00:00 UTC");
    set_mtime(&root.join("dir/file"), "2021-03-04 05:06:07.123456789 UTC");
    set_mtime(&root.join("dir/symlink"), "2001-02-03 04:05:06.5 UTC");
    set_mtime(&root.join("dir/sub"), "1999-12-31 23:59:59.999999999 UTC");
    fs::set_permissions(root.join("locked"), fs::Permissions::from_mode(0o500)).unwrap();
    set_mtime(&root.join("locked"), "2010-10-10 10:10:10.1 UTC");
    set_mtime(&root.join("dir"), "2011-11-11 11:11:11.11 UTC");
    set_mtime(root, "2012-12-12 12:12:12.12 UTC");
}

#[test]
fn every_metadata_kind_round_trips() {
    let temp = tempfile::tempdir().unwrap();
    let tool = Tool {
        store: temp.path().join("store"),
    };
    let source = temp.path().join("source");
    metadata_tree(&source);
    tool.json(&["init"]);
    let backup = tool.json(&["backup", "host/meta", source.to_str().unwrap()]);
    assert_eq!(
        backup["warnings"].as_array().unwrap().len(),
        0,
        "{backup:#}"
    );
    let restored = temp.path().join("restored");
    let out = tool.json(&["restore", "host/meta", restored.to_str().unwrap()]);
    assert_eq!(out["warnings"].as_array().unwrap().len(), 0, "{out:#}");

    assert_eq!(listing(&source), listing(&restored));
    let meta = fs::metadata(restored.join("sparse")).unwrap();
    assert_eq!(meta.len(), 16 << 20);
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "sparse file came back with {} blocks",
        meta.blocks()
    );
    if let Ok(Some(value)) = xattr::get(source.join("dir/file"), "user.origin") {
        let back = xattr::get(restored.join("dir/file"), "user.origin").unwrap();
        assert_eq!(
            back.as_deref(),
            Some(value.as_slice()),
            "extended attribute"
        );
    }
    let (a, b) = (
        fs::metadata(restored.join("dir/file")).unwrap(),
        fs::metadata(restored.join("second-link")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino(), "hard links share an inode");
}

/// Appends to one file, and cuts another step by step to nothing and writes it again, while
/// `run` backs them up.
fn while_changing<T>(grower: &Path, shrinker: &Path, full: &[u8], run: impl FnOnce() -> T) -> T {
    let stop = Arc::new(AtomicBool::new(false));
    let (grow_path, shrink_path, flag) = (grower.to_owned(), shrinker.to_owned(), stop.clone());
    let full = full.to_vec();
    let writer = std::thread::spawn(move || {
        let mut grow = fs::OpenOptions::new()
            .append(true)
            .open(&grow_path)
            .unwrap();
        let mut shrink = fs::OpenOptions::new()
            .write(true)
            .open(&shrink_path)
            .unwrap();
        let mut length = full.len() as u64;
        let block = noise(4 << 10, 9);
        while !flag.load(Ordering::Relaxed) {
            grow.write_all(&block).unwrap();
            length = length.saturating_sub(1 << 20);
            shrink.set_len(length).unwrap();
            if length == 0 {
                std::io::Seek::rewind(&mut shrink).unwrap();
                shrink.write_all(&full).unwrap();
                length = full.len() as u64;
            }
        }
    });
    let result = run();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    result
}

#[test]
fn files_changing_during_backup_give_well_formed_entries() {
    let temp = tempfile::tempdir().unwrap();
    let tool = Tool {
        store: temp.path().join("store"),
    };
    tool.json(&["init", "--fanout", "1"]);
    let source = temp.path().join("live");
    fs::create_dir_all(&source).unwrap();
    let original = noise(24 << 20, 5);
    let (grower, shrinker) = (source.join("grows.log"), source.join("shrinks.db"));
    let after = noise(300_000, 11);
    let (mut grew, mut shrank) = (false, false);
    for round in 0..10 {
        fs::write(&grower, &original).unwrap();
        fs::write(&shrinker, &original).unwrap();
        fs::write(source.join("zz-after"), &after).unwrap();
        let time = format!("2024-01-01T00:00:0{round}Z");
        let args = [
            "backup",
            "host/live",
            source.to_str().unwrap(),
            "--time",
            &time,
        ];
        let output = while_changing(&grower, &shrinker, &original, || tool.run(&args));
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let code = output.status.code();
        assert!(code == Some(0) || code == Some(6), "{}", describe(&output));

        let restored = temp.path().join(format!("restored-{round}"));
        tool.json(&[
            "restore",
            &format!("host/live/{time}"),
            restored.to_str().unwrap(),
        ]);
        // What follows the changing files is intact: no entry is lost.
        assert!(fs::read(restored.join("zz-after")).unwrap() == after);
        // The grower is archived at a size it had, as a prefix of what was written.
        let grown = fs::read(restored.join("grows.log")).unwrap();
        let now = fs::read(&grower).unwrap();
        assert!(grown.len() >= original.len() && now.starts_with(&grown));
        // The shrinker: the original's bytes up to where it was cut, then zeros.
        let shrunk = fs::read(restored.join("shrinks.db")).unwrap();
        let kept = shrunk.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        assert!(shrunk.len() <= original.len() && original.starts_with(&shrunk[..kept]));
        // Zeros padding the shrinker (noise has no run of 4096 zeros) mean it shrank while read.
        if shrunk.len() - kept >= 4096 {
            assert!(
                stderr.contains("shrinks.db"),
                "a warning names shrinks.db: {stderr}"
            );
        }
        if stderr.contains("warning") {
            assert_eq!(code, Some(6), "warnings make a partial backup: {stderr}");
            let listed = tool.json(&["list", "host/live"]);
            let last = listed.as_array().unwrap().last().unwrap().clone();
            let recorded = last["warnings"].as_array().unwrap();
            assert!(!recorded.is_empty(), "the manifest records the warnings");
        } else {
            assert_eq!(code, Some(0), "{stderr}");
        }
        grew |= stderr.contains("grows.log: grew while read");
        shrank |= stderr.contains("shrinks.db: shrank from");
        println!("round {round}: {stderr}");
        if grew && shrank {
            return;
        }
    }
    panic!("in ten backups the files were not seen both growing and shrinking");
}

#[test]
fn unreadable_entries_and_sockets_make_a_partial_backup() {
    let temp = tempfile::tempdir().unwrap();
    let tool = Tool {
        store: temp.path().join("store"),
    };
    tool.json(&["init", "--fanout", "1"]);
    let source = temp.path().join("src");
    fs::create_dir_all(source.join("closed-dir")).unwrap();
    fs::write(source.join("closed-dir/inside"), b"x").unwrap();
    fs::write(source.join("secret"), b"secret").unwrap();
    fs::write(source.join("public"), b"public").unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(source.join("control.sock")).unwrap();
    fs::set_permissions(source.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(source.join("closed-dir"), fs::Permissions::from_mode(0o000)).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_chunkstore"));
    command.arg("--store").arg(&tool.store).arg("--json");
    command.args(["backup", "host/partial", source.to_str().unwrap()]);
    if is_root() {
        // Root reads everything: back up as an unprivileged user, who owns the store.
        let status = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(&tool.store)
            .status()
            .unwrap();
        assert!(status.success());
        fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        command.uid(65534).gid(65534);
    }
    let output = command.output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(6),
        "partial: {}",
        describe(&output)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    for name in ["secret", "closed-dir", "control.sock"] {
        assert!(stderr.contains(name), "a warning names {name}: {stderr}");
    }
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["warnings"].as_array().unwrap().len(), 3, "{value:#}");
    let listed = tool.json(&["list", "host/partial"]);
    assert_eq!(listed[0]["warnings"].as_array().unwrap().len(), 3);
    let restored = temp.path().join("restored");
    tool.json(&["restore", "host/partial", restored.to_str().unwrap()]);
    assert_eq!(fs::read(restored.join("public")).unwrap(), b"public");
    assert!(!restored.join("secret").exists() && !restored.join("closed-dir").exists());
}

#[test]
fn compressed_and_plain_chunks_live_side_by_side() {
    let temp = tempfile::tempdir().unwrap();
    let tool = Tool {
        store: temp.path().join("store"),
    };
    tool.json(&["init", "--fanout", "1"]);
    let text = temp.path().join("text");
    fs::create_dir_all(&text).unwrap();
    let lines: String = (0..200_000)
        .map(|i| format!("{i} backup chunk ok\n"))
        .collect();
    fs::write(text.join("log"), &lines).unwrap();
    let packed = tool.json(&["backup", "host/packed", text.to_str().unwrap()]);
    let stored = packed["stored-bytes"].as_u64().unwrap();
    assert!(stored * 4 < packed["bytes"].as_u64().unwrap(), "{packed:#}");
    let binary = temp.path().join("binary");
    fs::create_dir_all(&binary).unwrap();
    fs::write(binary.join("noise"), noise(1 << 20, 4)).unwrap();
    let plain = tool.json(&[
        "backup",
        "host/plain",
        binary.to_str().unwrap(),
        "--compress",
        "0",
    ]);
    assert!(
        plain["stored-bytes"].as_u64().unwrap() > 1 << 20,
        "{plain:#}"
    );
    let magics: std::collections::BTreeSet<Vec<u8>> = common::walk(&tool.store.join(".chunks"))
        .into_iter()
        .filter(|path| path.is_file())
        .map(|path| fs::read(path).unwrap()[..8].to_vec())
        .collect();
    assert_eq!(magics.len(), 2, "both blob kinds are stored");
    for (group, source) in [("host/packed", &text), ("host/plain", &binary)] {
        let out = temp.path().join(group.replace('/', "-"));
        tool.json(&["restore", group, out.to_str().unwrap()]);
        assert_eq!(listing(source), listing(&out));
        let name = if group == "host/packed" {
            "log"
        } else {
            "noise"
        };
        assert!(fs::read(source.join(name)).unwrap() == fs::read(out.join(name)).unwrap());
    }
    let verified = tool.json(&["verify"]);
    assert_eq!(verified["failed"], 0, "{verified:#}");
}

#[test]
fn unchanged_large_files_are_reused_from_the_file_cache() {
    let temp = tempfile::tempdir().unwrap();
    let tool = Tool {
        store: temp.path().join("store"),
    };
    tool.json(&["init", "--fanout", "1"]);
    let source = temp.path().join("src");
    fs::create_dir_all(&source).unwrap();
    for (name, seed) in [("a.bin", 1), ("b.bin", 2), ("c.bin", 3)] {
        fs::write(source.join(name), noise(3 << 20, seed)).unwrap();
    }
    fs::write(source.join("small"), b"small").unwrap();
    // Files changed in the last seconds are not cached (a change in the same tick is unseen).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let path = source.to_str().unwrap();
    let first = tool.json(&["backup", "host/c", path, "--time", "2024-01-01T00:00:00Z"]);
    assert_eq!(
        (first["files-read"].as_u64(), first["files-reused"].as_u64()),
        (Some(3), Some(0))
    );
    let second = tool.json(&["backup", "host/c", path, "--time", "2024-01-02T00:00:00Z"]);
    assert_eq!(
        (
            second["files-read"].as_u64(),
            second["files-reused"].as_u64()
        ),
        (Some(0), Some(3))
    );
    assert_eq!(second["uploaded-chunks"], 0, "{second:#}");
    // A changed file is read again; the others are still reused.
    let mut changed = noise(3 << 20, 2);
    changed[1000] ^= 1;
    fs::write(source.join("b.bin"), &changed).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let third = tool.json(&["backup", "host/c", path, "--time", "2024-01-03T00:00:00Z"]);
    assert_eq!(
        (third["files-read"].as_u64(), third["files-reused"].as_u64()),
        (Some(1), Some(2))
    );
    let no_cache = [
        "backup",
        "host/c",
        path,
        "--time",
        "2024-01-04T00:00:00Z",
        "--no-file-cache",
    ];
    let fourth = tool.json(&no_cache);
    assert_eq!(fourth["files-reused"], 0, "{fourth:#}");
    for time in ["2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"] {
        let out = temp.path().join(time);
        tool.json(&["restore", &format!("host/c/{time}"), out.to_str().unwrap()]);
        let expected_b = if time.starts_with("2024-01-02") {
            noise(3 << 20, 2)
        } else {
            changed.clone()
        };
        assert!(fs::read(out.join("b.bin")).unwrap() == expected_b, "{time}");
        assert!(
            fs::read(out.join("a.bin")).unwrap() == noise(3 << 20, 1),
            "{time}"
        );
    }
    let verified = tool.json(&["verify"]);
    assert_eq!(verified["failed"], 0, "{verified:#}");
}
