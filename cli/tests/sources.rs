//! What a backup takes from its sources, with the binary: a symbolic link given as a source is
//! archived as itself under its own name; exclude patterns match file names, archive paths and
//! absolute disk paths, also from a file; `--one-file-system` stops at mount points; a block
//! device (or a link to one) is backed up as an image.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{Tool, is_root, mount_tmpfs, noise};

fn new_store(temp: &Path) -> Tool {
    let tool = Tool {
        store: temp.join("store"),
    };
    tool.json(&["init", "--fanout", "1"]);
    tool
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The entry names `ls` prints for the group's newest snapshot.
fn names(tool: &Tool, group: &str) -> Vec<String> {
    let listed = tool.json(&["ls", group]);
    listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Unmounts (or detaches) when dropped.
struct Undo(Vec<&'static str>, PathBuf);

impl Drop for Undo {
    fn drop(&mut self) {
        let _ = Command::new(self.0[0])
            .args(&self.0[1..])
            .arg(&self.1)
            .status();
    }
}

#[test]
fn a_symlink_source_is_archived_as_itself_under_its_own_name() {
    let temp = tempfile::tempdir().unwrap();
    let tool = new_store(temp.path());
    let dir = temp.path().join("src");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("real"), b"data").unwrap();
    std::os::unix::fs::symlink("real", dir.join("alias")).unwrap();
    tool.json(&[
        "backup",
        "host/a",
        text(&dir.join("alias")),
        "--time",
        "2024-01-01T00:00:00Z",
    ]);
    let listed = tool.json(&["ls", "host/a"]);
    let entries = listed["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{listed:#}");
    assert_eq!(entries[0]["name"], "alias");
    assert_eq!(entries[0]["type"], "l");
    assert_eq!(entries[0]["link"], "real");
    let out = temp.path().join("out");
    tool.json(&["restore", "host/a", text(&out)]);
    assert_eq!(fs::read_link(out.join("alias")).unwrap(), Path::new("real"));
}

#[test]
fn exclude_patterns_match_names_archive_paths_and_absolute_paths_also_from_a_file() {
    let temp = tempfile::tempdir().unwrap();
    let tool = new_store(temp.path());
    let src = temp.path().join("src");
    for dir in ["keep", "cache/deep", "sub/cache", "logs"] {
        fs::create_dir_all(src.join(dir)).unwrap();
    }
    for file in [
        "keep/a",
        "keep/b.log",
        "cache/deep/x",
        "sub/cache/y",
        "logs/z",
        "top.tmp",
    ] {
        fs::write(src.join(file), b"x").unwrap();
    }
    let patterns = temp.path().join("excludes");
    fs::write(
        &patterns,
        "# comments and blank lines are skipped\n\n*.log\r\nlogs/*\n",
    )
    .unwrap();
    // An absolute pattern names one place on disk: `cache` at the top, not `sub/cache`.
    let absolute = format!("{}/cache", src.display());
    let args = [
        "backup",
        "host/a",
        text(&src),
        "--time",
        "2024-01-01T00:00:00Z",
        "--exclude",
        &absolute,
        "--exclude",
        "*.tmp",
        "--exclude-file",
        text(&patterns),
    ];
    tool.json(&args);
    let mut got = names(&tool, "host/a");
    got.sort();
    assert_eq!(
        got,
        [
            ".",
            "keep",
            "keep/a",
            "logs",
            "sub",
            "sub/cache",
            "sub/cache/y"
        ]
    );
    let missing = [
        "backup",
        "host/b",
        text(&src),
        "--exclude-file",
        "/nonexistent/list",
    ];
    let (code, stderr) = tool.code(&missing);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn one_file_system_archives_a_mount_point_empty() {
    let temp = tempfile::tempdir().unwrap();
    let tool = new_store(temp.path());
    let src = temp.path().join("src");
    let mnt = src.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    fs::write(src.join("file"), b"x").unwrap();
    let Some(_mount) = mount_tmpfs(&mnt, "size=1m") else {
        return;
    };
    fs::write(mnt.join("inside"), b"other filesystem").unwrap();
    tool.json(&[
        "backup",
        "host/a",
        text(&src),
        "--time",
        "2024-01-01T00:00:00Z",
    ]);
    let args = [
        "backup",
        "host/a",
        text(&src),
        "--time",
        "2024-01-02T00:00:00Z",
        "--one-file-system",
    ];
    tool.json(&args);
    let mut all = names(&tool, "host/a/2024-01-01T00:00:00Z");
    all.sort();
    assert_eq!(all, [".", "file", "mnt", "mnt/inside"]);
    let mut one = names(&tool, "host/a/2024-01-02T00:00:00Z");
    one.sort();
    assert_eq!(one, [".", "file", "mnt"]);
}

#[test]
fn a_block_device_is_backed_up_as_an_image() {
    if !is_root() {
        println!("skipped: not root, no loop device");
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let tool = new_store(temp.path());
    let image = temp.path().join("disk.img");
    let data = noise(5 << 20, 3);
    fs::write(&image, &data).unwrap();
    let attach = Command::new("losetup")
        .args(["--find", "--show", "--read-only"])
        .arg(&image)
        .output();
    let device = match attach {
        Ok(output) if output.status.success() => {
            PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
        }
        other => {
            println!("skipped: no loop device here: {other:?}");
            return;
        }
    };
    let _undo = Undo(vec!["losetup", "--detach"], device.clone());
    // Through a symbolic link, as /dev/disk/by-id/... names a disk.
    let link = temp.path().join("by-id-disk");
    std::os::unix::fs::symlink(&device, &link).unwrap();
    let done = tool.json(&[
        "backup",
        "vm/100",
        text(&link),
        "--time",
        "2024-01-01T00:00:00Z",
    ]);
    assert_eq!(done["archive"], "by-id-disk.fidx", "{done:#}");
    assert_eq!(done["chunks"], 2, "5 MiB in 4 MiB chunks: {done:#}");
    let out = temp.path().join("restored.img");
    tool.json(&["restore", "vm/100", text(&out)]);
    assert!(
        fs::read(&out).unwrap() == data,
        "the image restores byte for byte"
    );
}
