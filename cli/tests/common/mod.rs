//! Helpers of the tests that run the `chunkstore` binary.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The binary on one datastore.
pub struct Tool {
    pub store: PathBuf,
}

impl Tool {
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_chunkstore"))
            .arg("--store")
            .arg(&self.store)
            .arg("--quiet")
            .env(
                "CHUNKSTORE_CACHE_DIR",
                self.store.with_file_name("file-cache"),
            )
            .args(args)
            .output()
            .expect("run chunkstore")
    }

    /// Runs with `--json`, expects exit 0, returns the JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let output = self.run(&all);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            describe(&output)
        );
        serde_json::from_slice(&output.stdout).expect("JSON on stdout")
    }

    pub fn code(&self, args: &[&str]) -> (i32, String) {
        let output = self.run(args);
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Deterministic pseudo-random bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Every path under `dir`, depth first.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        all.push(path.clone());
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            all.extend(walk(&path));
        }
    }
    all
}

/// Is this test running as root (mounts, device nodes, another user)?
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A mount, unmounted when dropped.
pub struct Mount(pub PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Mounts a tmpfs with `options` (`size=1m,...`) at `at`; `None`, with the reason printed, where
/// that cannot be done (not root, or mount refused).
pub fn mount_tmpfs(at: &Path, options: &str) -> Option<Mount> {
    if !is_root() {
        println!("skipped: not root, no tmpfs mount");
        return None;
    }
    let mount = Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(at)
        .output()
        .unwrap();
    if !mount.status.success() {
        println!("skipped: mount refused here: {}", describe(&mount));
        return None;
    }
    Some(Mount(at.to_owned()))
}
