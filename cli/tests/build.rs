//! The shipped tool carries none of the test-only regression switches of `store`.
//!
//! `models` enables `store/regressions`, so a build of the whole workspace unifies the feature
//! into every package that links `store`; the tool is built on its own (`cargo build --release
//! -p chunkstore`, `cargo install --path cli`), and this test checks that such a build resolves
//! `store` without the feature.

use std::process::Command;

/// The features `cargo tree` resolves for `store` when building `selection`.
fn store_features(selection: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-e",
            "features",
            "-i",
            "store",
            "--prefix",
            "none",
        ])
        .args(selection)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn the_tool_builds_without_the_regression_switches() {
    let tool = store_features(&["-p", "chunkstore"]);
    assert!(tool.contains("store feature \"default\""), "{tool}");
    assert!(
        !tool.contains("regressions"),
        "the tool links the switches:\n{tool}"
    );
    // The query can tell: the whole workspace, models included, does resolve the switches.
    let workspace = store_features(&["--workspace"]);
    assert!(
        workspace.contains("store feature \"regressions\""),
        "{workspace}"
    );
}
