//! `chunkstore verify`: re-reads and re-hashes the chunks of finished snapshots, and tells
//! damage (exit 5) from trouble reading (permission denied, a full disk: exit 1). Unfinished
//! snapshots (a backup running or interrupted) are reported and skipped, not called damaged.

use std::process::ExitCode;

use serde_json::json;
use store::backup_info::{BackupDir, BackupTime};
use store::datastore::SnapshotInfo;
use store::datastore::verify::{
    SkipReason, VerifyJob, VerifyOptions, VerifyOutcome, VerifyProblem, verified_at, verify_upid,
};
use store::index::IndexError;
use store::manifest::{ManifestError, SnapshotVerifyState, VerifyState};

use crate::Cli;
use crate::commands::{Outcome, Store, existing_group, open};
use crate::exit::CliError;
use crate::progress;

/// How one snapshot came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Ok,
    Skipped,
    Unfinished,
    /// Something could not be read or written; nothing found damaged.
    Trouble,
    Damaged,
}

/// A problem that is about access (I/O), not about the stored bytes.
fn is_trouble(problem: &VerifyProblem) -> bool {
    match problem {
        VerifyProblem::ManifestUnreadable(err) => matches!(err, ManifestError::Io { .. }),
        VerifyProblem::IndexOpen { source, .. } => matches!(source, IndexError::Io { .. }),
        VerifyProblem::BlobUnreadable { .. }
        | VerifyProblem::ChunkUnreadable { .. }
        | VerifyProblem::RenameFailed { .. }
        | VerifyProblem::StateNotSaved { .. } => true,
        _ => false,
    }
}

fn skip_text(reason: &SkipReason) -> String {
    match reason {
        SkipReason::Vanished => "skipped: removed while verifying".into(),
        SkipReason::LockBusy => "skipped: busy (a backup, forget or prune holds it)".into(),
        SkipReason::AlreadyVerified(state) => {
            let result = match state.state {
                VerifyState::Ok => "ok",
                VerifyState::Failed => "failed",
            };
            match verified_at(&state.upid).map(BackupTime::from_epoch) {
                Some(Ok(at)) => format!("skipped: verified {result} at {at}"),
                _ => format!("skipped: verified {result} before"),
            }
        }
    }
}

fn classify(
    result: Result<VerifyOutcome, store::datastore::Error>,
) -> (Class, String, Vec<String>) {
    match result {
        Ok(VerifyOutcome::Verified { ok: true, .. }) => (Class::Ok, "ok".into(), Vec::new()),
        Ok(VerifyOutcome::Verified { problems, .. })
            if problems
                .iter()
                .all(|problem| matches!(problem, VerifyProblem::StateNotSaved { .. })) =>
        {
            // Every chunk and index is sound; only recording that failed.
            let texts = problems.iter().map(ToString::to_string).collect();
            (
                Class::Ok,
                "ok (the verify state was not saved)".into(),
                texts,
            )
        }
        Ok(VerifyOutcome::Verified { problems, .. }) => {
            let damaged = problems.iter().any(|problem| !is_trouble(problem));
            let texts = problems.iter().map(ToString::to_string).collect();
            if damaged {
                (Class::Damaged, "damaged".into(), texts)
            } else {
                (Class::Trouble, "not checked (I/O error)".into(), texts)
            }
        }
        Ok(VerifyOutcome::Skipped(SkipReason::AlreadyVerified(state)))
            if state.state == VerifyState::Failed =>
        {
            let reason = SkipReason::AlreadyVerified(state);
            (Class::Damaged, skip_text(&reason), Vec::new())
        }
        Ok(VerifyOutcome::Skipped(reason)) => (Class::Skipped, skip_text(&reason), Vec::new()),
        Err(err) => match CliError::from(err) {
            CliError::Damaged(text) => (Class::Damaged, "damaged".into(), vec![text]),
            other => (
                Class::Trouble,
                "not checked".into(),
                vec![other.to_string()],
            ),
        },
    }
}

/// The snapshots `target` names, newest first within each group.
fn targets(store: &Store, target: Option<&str>) -> Result<Vec<SnapshotInfo>, CliError> {
    let groups = match target {
        None => store.list_groups()?,
        Some(text) => match BackupDir::from_relative_path(text) {
            Ok(dir) => {
                let found = store
                    .list_snapshots(&dir.group)
                    .ok()
                    .and_then(|all| all.into_iter().find(|info| info.dir == dir));
                return found
                    .map(|info| vec![info])
                    .ok_or_else(|| CliError::NotFound(format!("snapshot {dir} not found")));
            }
            Err(_) => vec![existing_group(store, text)?],
        },
    };
    let mut all = Vec::new();
    for group in groups {
        let mut snapshots = store.list_snapshots(&group)?;
        snapshots.reverse();
        all.extend(snapshots);
    }
    Ok(all)
}

/// Reads the archives of a snapshot whose chunks and indexes verified back as a restore
/// would (writing nothing): a snapshot that would not restore is damaged, and its saved
/// verify state says failed. `None`: it restores.
fn read_back(
    cli: &Cli,
    store: &Store,
    options: &VerifyOptions,
    dir: &BackupDir,
) -> Option<(Class, String, Vec<String>)> {
    let problems = match crate::restore::check_archives(cli, store, dir) {
        Ok(problems) if problems.is_empty() => return None,
        Ok(problems) => problems,
        Err(CliError::Busy(_)) => {
            let reason = SkipReason::LockBusy;
            return Some((Class::Skipped, skip_text(&reason), Vec::new()));
        }
        Err(CliError::Damaged(text)) => vec![text],
        Err(err) => {
            let problems = vec![err.to_string()];
            return Some((Class::Trouble, "not checked".into(), problems));
        }
    };
    let mut problems = problems;
    if !options.read_only {
        let state = SnapshotVerifyState {
            state: VerifyState::Failed,
            upid: verify_upid(&options.upid, now()),
        };
        if let Err(err) = store.update_manifest(dir, |manifest| manifest.set_verify_state(&state)) {
            problems.push(format!("verify state not saved: {err}"));
        }
    }
    let state = "damaged: the archives would not restore".to_owned();
    Some((Class::Damaged, state, problems))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// Can this process write into `dir`?
pub fn writable(dir: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a NUL-terminated path that outlives the call.
    unsafe { libc::access(path.as_ptr(), libc::W_OK) == 0 }
}

/// Runs `chunkstore verify`.
pub fn verify(
    cli: &Cli,
    target: Option<&str>,
    skip_verified: bool,
    read_only: bool,
) -> Result<Outcome, CliError> {
    let store = open(cli)?;
    let read_only = read_only || !writable(store.base());
    let options = VerifyOptions {
        ignore_verified: skip_verified,
        read_only,
        ..VerifyOptions::default()
    };
    let snapshots = targets(&store, target)?;
    let mut job = VerifyJob::new();
    let spinner = progress::spinner(!cli.quiet && !cli.json, "verify");
    let mut text = String::new();
    if read_only {
        text.push_str("read-only: no verify state is saved and bad chunks are not renamed\n");
    }
    let (mut rows, mut worst) = (Vec::new(), Class::Ok);
    for info in snapshots {
        let (class, state, problems) = if info.finished {
            let verified = classify(store.verify_snapshot(&mut job, &options, &info.dir));
            if verified.0 == Class::Ok {
                read_back(cli, &store, &options, &info.dir).unwrap_or(verified)
            } else {
                verified
            }
        } else {
            let state = "unfinished: a backup is running or was interrupted; not verified";
            (Class::Unfinished, state.to_owned(), Vec::new())
        };
        worst = match (worst, class) {
            (_, Class::Damaged) | (Class::Damaged, _) => Class::Damaged,
            (_, Class::Trouble) | (Class::Trouble, _) => Class::Trouble,
            (worst, _) => worst,
        };
        text.push_str(&format!("{}  {state}\n", info.dir));
        for problem in &problems {
            text.push_str(&format!("  {problem}\n"));
        }
        rows.push(json!({ "snapshot": info.dir.to_string(), "state": state,
            "class": format!("{class:?}").to_lowercase(), "problems": problems }));
    }
    spinner.finish_and_clear();
    let failed = rows
        .iter()
        .filter(|row| row["class"] == "damaged" || row["class"] == "trouble")
        .count();
    let value = json!({ "snapshots": rows, "failed": failed, "read-only": read_only,
        "chunks-hashed": job.chunks_hashed() });
    let code = match worst {
        Class::Damaged => ExitCode::from(5),
        Class::Trouble => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    };
    Ok((value, text, code))
}
