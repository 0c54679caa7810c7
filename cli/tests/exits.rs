//! Exit codes and messages on real datastores: damage (5) names the chunk or file, missing
//! groups and snapshots are not found (4), verify tells I/O trouble (1) and unfinished snapshots
//! from damage, and a read-only datastore serves list, restore and verify with `--lock-dir`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

mod common;
use common::{Mount, Tool, describe, is_root, mount_tmpfs, noise, walk};

/// A datastore with one snapshot `host/a/2024-01-01T00:00:00Z` of a small tree.
fn store_with_snapshot(temp: &Path) -> Tool {
    let tool = Tool {
        store: temp.join("store"),
    };
    tool.json(&["init", "--fanout", "1"]);
    let source = temp.join("src");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("data"), noise(3 << 20, 1)).unwrap();
    let args = [
        "backup",
        "host/a",
        source.to_str().unwrap(),
        "--time",
        "2024-01-01T00:00:00Z",
    ];
    tool.json(&args);
    tool
}

fn chunk_files(store: &Path) -> Vec<std::path::PathBuf> {
    walk(&store.join(".chunks"))
        .into_iter()
        .filter(|path| path.is_file())
        .collect()
}

#[test]
fn missing_groups_and_snapshots_are_not_found() {
    let temp = tempfile::tempdir().unwrap();
    let tool = store_with_snapshot(temp.path());
    let target = temp.path().join("out");
    for args in [
        vec!["list", "host/nope"],
        vec!["verify", "host/nope"],
        vec!["verify", "host/a/2020-01-01T00:00:00Z"],
        vec!["restore", "host/nope", target.to_str().unwrap()],
        vec![
            "restore",
            "host/a/2020-01-01T00:00:00Z",
            target.to_str().unwrap(),
        ],
    ] {
        let (code, stderr) = tool.code(&args);
        assert_eq!(code, 4, "{args:?}: {stderr}");
        let named = stderr.contains("not found") || stderr.contains("does not exist");
        assert!(named, "{args:?}: {stderr}");
    }
}

#[test]
fn backup_time_in_the_future_is_refused_and_uploads_count_written_chunks() {
    let temp = tempfile::tempdir().unwrap();
    let tool = store_with_snapshot(temp.path());
    let source = temp.path().join("src");
    let (code, stderr) = tool.code(&[
        "backup",
        "host/a",
        source.to_str().unwrap(),
        "--time",
        "2999-01-01T00:00:00Z",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("future"), "{stderr}");
    // The same data in a new group: every chunk is already stored, none is written.
    let again = tool.json(&["backup", "host/b", source.to_str().unwrap()]);
    assert_eq!(again["uploaded-chunks"], 0, "{again:#}");
    assert_eq!(again["reused-chunks"], again["chunks"], "{again:#}");
}

#[test]
fn damage_exits_5_naming_the_chunk_or_file() {
    let temp = tempfile::tempdir().unwrap();
    let tool = store_with_snapshot(temp.path());
    let chunk = chunk_files(&tool.store).remove(0);
    let digest = chunk.file_name().unwrap().to_str().unwrap().to_owned();
    let mut bytes = fs::read(&chunk).unwrap();
    bytes[40] ^= 0xff;
    fs::write(&chunk, bytes).unwrap();
    let target = temp.path().join("out");
    let (code, stderr) = tool.code(&["restore", "host/a", target.to_str().unwrap()]);
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains(&digest), "names the chunk: {stderr}");

    let verify = tool.run(&["verify"]);
    assert_eq!(verify.status.code(), Some(5), "{}", describe(&verify));
    let again = tool.run(&["verify", "--skip-verified"]);
    let text = String::from_utf8_lossy(&again.stdout);
    assert_eq!(
        again.status.code(),
        Some(5),
        "a failed state stays failed: {text}"
    );
    assert!(text.contains("verified failed at 20"), "{text}");
    assert!(
        !text.contains("AlreadyVerified") && !text.contains('{'),
        "{text}"
    );

    let index = tool.store.join("host/a/2024-01-01T00:00:00Z/root.tar.didx");
    fs::write(&index, b"not an index").unwrap();
    let (code, stderr) = tool.code(&["gc"]);
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains("root.tar.didx"),
        "names the index: {stderr}"
    );
}

#[test]
fn verify_tells_unfinished_and_unreadable_from_damaged() {
    let temp = tempfile::tempdir().unwrap();
    let tool = store_with_snapshot(temp.path());
    // A crashed backup leaves a snapshot directory without a manifest.
    fs::create_dir_all(tool.store.join("host/a/2024-02-01T00:00:00Z")).unwrap();
    let verify = tool.run(&["verify"]);
    let text = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(verify.status.code(), Some(0), "{}", describe(&verify));
    assert!(text.contains("2024-02-01T00:00:00Z  unfinished"), "{text}");
    assert!(!text.contains("damaged"), "{text}");

    for chunk in chunk_files(&tool.store) {
        fs::set_permissions(&chunk, fs::Permissions::from_mode(0o000)).unwrap();
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_chunkstore"));
    command.arg("--store").arg(&tool.store).arg("--lock-dir");
    command
        .arg(temp.path().join("locks"))
        .args(["verify", "host/a/2024-01-01T00:00:00Z"]);
    if is_root() {
        // Root reads everything: verify as an unprivileged user without write access.
        fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o777)).unwrap();
        command.uid(65534).gid(65534);
    }
    let output = command.output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(text.contains("Permission denied"), "{text}");
    assert!(!text.contains("damaged"), "{text}");
}

/// Bind-mounts `dir` read-only at `at`; `None` (with the reason printed) where mount is refused.
fn read_only_mount(dir: &Path, at: &Path) -> Option<Mount> {
    if !is_root() {
        println!("skipped: not root, no read-only bind mount");
        return None;
    }
    fs::create_dir_all(at).unwrap();
    let bind = Command::new("mount")
        .arg("--bind")
        .arg(dir)
        .arg(at)
        .output()
        .unwrap();
    if !bind.status.success() {
        println!("skipped: mount refused here: {}", describe(&bind));
        return None;
    }
    let mount = Mount(at.to_owned());
    let ro = Command::new("mount")
        .args(["-o", "remount,bind,ro"])
        .arg(at)
        .status()
        .unwrap();
    assert!(ro.success(), "remount read-only");
    Some(mount)
}

#[test]
fn a_read_only_datastore_serves_list_restore_and_verify() {
    let temp = tempfile::tempdir().unwrap();
    let tool = store_with_snapshot(temp.path());
    let mounted = temp.path().join("ro");
    let Some(mount) = read_only_mount(&tool.store, &mounted) else {
        return;
    };
    let ro = Tool {
        store: mounted.clone(),
    };
    let locks = temp.path().join("locks");
    let out = temp.path().join("out");
    let (code, stderr) = ro.code(&["restore", "host/a", out.to_str().unwrap()]);
    let with_locks = |args: &[&str]| {
        let mut all = vec!["--lock-dir", locks.to_str().unwrap()];
        all.extend_from_slice(args);
        ro.json(&all)
    };
    let listed = with_locks(&["list"]);
    let restored = with_locks(&["restore", "host/a", out.to_str().unwrap()]);
    let verified = with_locks(&["verify"]);
    drop(mount);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--lock-dir"),
        "the error says what to do: {stderr}"
    );
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(restored["snapshot"], "host/a/2024-01-01T00:00:00Z");
    assert!(fs::read(out.join("data")).unwrap() == noise(3 << 20, 1));
    assert_eq!(verified["read-only"], true);
    assert_eq!(verified["failed"], 0, "{verified:#}");
}

#[test]
fn init_out_of_inodes_leaves_nothing_behind() {
    let temp = tempfile::tempdir().unwrap();
    let small = temp.path().join("small");
    fs::create_dir_all(&small).unwrap();
    let Some(_mount) = mount_tmpfs(&small, "size=2m,nr_inodes=100") else {
        return;
    };
    let tool = Tool {
        store: small.join("store"),
    };
    let (code, stderr) = tool.code(&["init", "--fanout", "2"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("No space left") && stderr.contains("store"),
        "{stderr}"
    );
    let left: Vec<_> = fs::read_dir(&small).unwrap().collect();
    assert!(left.is_empty(), "nothing half-made is left: {left:?}");
    let (code, stderr) = tool.code(&["list"]);
    assert_eq!(code, 2, "no datastore: {stderr}");
    tool.json(&["init", "--fanout", "1"]);
    tool.json(&["list"]);
}

#[test]
fn ls_lists_entries_and_prune_all_prunes_every_group() {
    let temp = tempfile::tempdir().unwrap();
    let tool = store_with_snapshot(temp.path());
    let source = temp.path().join("src");
    std::os::unix::fs::symlink("data", source.join("link")).unwrap();
    for (group, time) in [
        ("host/a", "2024-01-02"),
        ("host/b", "2024-01-01"),
        ("host/b", "2024-01-02"),
    ] {
        let time = format!("{time}T00:00:00Z");
        tool.json(&["backup", group, source.to_str().unwrap(), "--time", &time]);
    }
    let listed = tool.run(&["ls", "host/b"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains(" link -> data") && text.contains(&format!("{} ", 3 << 20)),
        "{text}"
    );
    let (code, stderr) = tool.code(&["ls", "host/a/2020-01-01T00:00:00Z"]);
    assert_eq!(code, 4, "{stderr}");
    let pruned = tool.json(&["prune", "--all", "--keep-last", "1"]);
    let removed: Vec<&str> = pruned["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["outcome"] == "removed")
        .map(|row| row["snapshot"].as_str().unwrap())
        .collect();
    assert_eq!(
        removed,
        ["host/a/2024-01-01T00:00:00Z", "host/b/2024-01-01T00:00:00Z"]
    );
}

#[test]
fn bad_archive_names_and_a_file_as_store_are_bad_input() {
    let temp = tempfile::tempdir().unwrap();
    let tool = store_with_snapshot(temp.path());
    let out = temp.path().join("out");
    for archive in ["../x.didx", "../../etc/passwd", "index.json.blob", "x.txt"] {
        let args = [
            "restore",
            "host/a",
            out.to_str().unwrap(),
            "--archive",
            archive,
        ];
        let (code, stderr) = tool.code(&args);
        assert_eq!(code, 2, "{archive}: {stderr}");
        assert!(stderr.contains(archive), "{archive} named: {stderr}");
        let (code, stderr) = tool.code(&["ls", "host/a", "--archive", archive]);
        assert_eq!(code, 2, "ls {archive}: {stderr}");
    }
    let file = temp.path().join("a-file");
    fs::write(&file, b"not a directory").unwrap();
    let as_store = Tool { store: file };
    let (code, stderr) = as_store.code(&["init"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a directory"), "{stderr}");
}

#[test]
fn a_damaged_index_or_manifest_is_named_by_restore_and_ls() {
    let temp = tempfile::tempdir().unwrap();
    let tool = store_with_snapshot(temp.path());
    let snapshot = tool.store.join("host/a/2024-01-01T00:00:00Z");
    let out = temp.path().join("out");
    for (file, cut) in [("root.tar.didx", 4000), ("index.json.blob", 20)] {
        let path = snapshot.join(file);
        let sound = fs::read(&path).unwrap();
        fs::write(&path, &sound[..cut]).unwrap();
        for args in [
            vec!["restore", "host/a", out.to_str().unwrap()],
            vec!["ls", "host/a"],
        ] {
            let (code, stderr) = tool.code(&args);
            assert_eq!(code, 5, "{file}: {args:?}: {stderr}");
            assert!(
                stderr.contains(&format!("host/a/2024-01-01T00:00:00Z/{file}")),
                "names {file}: {stderr}"
            );
        }
        fs::write(&path, sound).unwrap();
    }
}

#[test]
fn prune_on_a_read_only_datastore_is_a_failure_not_busy() {
    let temp = tempfile::tempdir().unwrap();
    let tool = store_with_snapshot(temp.path());
    let source = temp.path().join("src");
    let args = [
        "backup",
        "host/a",
        source.to_str().unwrap(),
        "--time",
        "2024-01-02T00:00:00Z",
    ];
    tool.json(&args);
    let mounted = temp.path().join("ro");
    let Some(mount) = read_only_mount(&tool.store, &mounted) else {
        return;
    };
    let ro = Tool { store: mounted };
    let locks = temp.path().join("locks");
    let prune = [
        "--lock-dir",
        locks.to_str().unwrap(),
        "prune",
        "host/a",
        "--keep-last",
        "1",
    ];
    let output = ro.run(&prune);
    drop(mount);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("Read-only file system"), "{text}");
}

#[test]
fn no_space_for_an_index_is_a_failure() {
    let temp = tempfile::tempdir().unwrap();
    let small = temp.path().join("small");
    fs::create_dir_all(&small).unwrap();
    let Some(_mount) = mount_tmpfs(&small, "size=1m") else {
        return;
    };
    let tool = Tool {
        store: small.join("store"),
    };
    tool.json(&["init", "--fanout", "1"]);
    let source = temp.path().join("src");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("a"), b"small").unwrap();
    let backup = |time: &str| {
        let args = ["backup", "host/a", source.to_str().unwrap(), "--time", time];
        tool.code(&args)
    };
    assert_eq!(backup("2024-01-01T00:00:00Z").0, 0);
    // Fill the disk: the next backup's chunks all exist, its index cannot be written.
    let mut filler = fs::File::create(small.join("filler")).unwrap();
    let block = vec![0u8; 4096];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    drop(filler);
    let (code, stderr) = backup("2024-01-02T00:00:00Z");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("No space left"), "{stderr}");
    let (code, stderr) = tool.code(&["verify"]);
    assert_eq!(code, 0, "the finished snapshot is sound: {stderr}");
}

#[test]
fn verify_of_sound_data_whose_state_cannot_be_saved_succeeds_with_a_warning() {
    let temp = tempfile::tempdir().unwrap();
    let tool = store_with_snapshot(temp.path());
    let snapshot = tool.store.join("host/a/2024-01-01T00:00:00Z");
    // An immutable snapshot directory: the manifest cannot be replaced, even by root.
    let immutable = Command::new("chattr").arg("+i").arg(&snapshot).output();
    if !immutable
        .as_ref()
        .is_ok_and(|output| output.status.success())
    {
        println!("skipped: chattr +i refused here: {immutable:?}");
        return;
    }
    let output = tool.run(&["verify"]);
    let _ = Command::new("chattr").arg("-i").arg(&snapshot).status();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("not saved"), "{text}");
}
