//! Architecture invariant: outside `store/src/world/real.rs` the store names no `std::fs`,
//! `std::sync` (other than the reference count `Arc`), `std::thread` or `std::time` item (other
//! than `Duration`), no `libc`, `std::env` or `std::process`.

use std::path::{Path, PathBuf};

const FORBIDDEN: [&str; 5] = [
    "std::fs",
    "std::thread",
    "std::process",
    "libc::",
    "std::env",
];

/// Items of a module that are allowed: `(module, allowed item)`.
const ALLOWED_ITEMS: [(&str, &str); 2] = [("std::time", "Duration"), ("std::sync", "Arc")];

/// The forbidden names a line of code uses (comments are not code).
fn violations(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut found: Vec<String> = FORBIDDEN
        .iter()
        .filter(|name| code.contains(*name))
        .map(|name| name.to_string())
        .collect();
    for (module, allowed) in ALLOWED_ITEMS {
        for (index, _) in code.match_indices(module) {
            let rest = &code[index + module.len()..];
            if !rest.starts_with(&format!("::{allowed}")) {
                found.push(format!(
                    "{module}{}",
                    rest.split_whitespace().next().unwrap_or("")
                ));
            }
        }
    }
    found
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read store/src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn store_stays_behind_the_world_boundary() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("store/src");
    let allowed = src.join("world/real.rs");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 5, "found only {files:?}");
    let mut report = Vec::new();
    for file in files.iter().filter(|file| **file != allowed) {
        let text = std::fs::read_to_string(file).expect("read source");
        for (number, line) in text.lines().enumerate() {
            for name in violations(line) {
                report.push(format!("{}:{}: {name}", file.display(), number + 1));
            }
        }
    }
    assert!(
        report.is_empty(),
        "world boundary crossed:\n{}",
        report.join("\n")
    );
}

#[test]
fn the_scanner_sees_violations() {
    assert_eq!(violations("use std::fs::File;"), vec!["std::fs"]);
    assert_eq!(
        violations("let t = std::time::Instant::now();"),
        vec!["std::time::Instant::now();"]
    );
    assert!(violations("use std::time::Duration;").is_empty());
    assert!(violations("use std::sync::Arc;").is_empty());
    assert_eq!(
        violations("use std::sync::Mutex;"),
        vec!["std::sync::Mutex;"]
    );
    assert!(violations("// std::fs in a comment").is_empty());
    assert_eq!(violations("unsafe { libc::close(fd) }"), vec!["libc::"]);
}
