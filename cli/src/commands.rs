//! The commands, each on a datastore of the real world.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};
use store::backup_info::{BackupDir, BackupGroup};
use store::chunk_store::{ChunkStoreConfig, PrefixFanout, SyncLevel};
use store::datastore::gc::GcOptions;
use store::datastore::prune::{KeepOptions, PruneOptions, PruneOutcome};
use store::datastore::{Datastore, DatastoreConfig, Error as StoreError};
use store::index::IndexFile;
use store::world::RealWorld;

use crate::backup::recorded_warnings;
use crate::exit::CliError;
use crate::{Cli, Command, SyncArg, progress};

pub type Store = Datastore<RealWorld>;

/// Runs the command of `cli`; prints its result (text or JSON).
pub fn run(cli: &Cli) -> Result<ExitCode, CliError> {
    run_command(cli).map_err(|err| match err {
        CliError::Failure(text) if needs_lock_dir(cli) => CliError::Failure(format!(
            "{text} (the datastore is not writable here: pass --lock-dir DIR to keep the lock \
             files elsewhere)"
        )),
        err => err,
    })
}

/// No `--lock-dir`, and the datastore's lock directory (or the datastore, while it has none)
/// cannot be written.
fn needs_lock_dir(cli: &Cli) -> bool {
    let Some(store) = cli.store.as_deref() else {
        return false;
    };
    let locks = store.join(".locks");
    let dir = if locks.is_dir() {
        locks
    } else {
        store.to_owned()
    };
    cli.lock_dir.is_none()
        && !matches!(cli.command, crate::Command::Init { .. })
        && store.join(".chunks").is_dir()
        && !crate::verify::writable(&dir)
}

fn run_command(cli: &Cli) -> Result<ExitCode, CliError> {
    let (value, text, code) = match &cli.command {
        Command::Init { fanout } => init(cli, *fanout)?,
        Command::Backup(args) => crate::backup::backup(cli, args)?,
        Command::List { group } => list(cli, group.as_deref())?,
        Command::Restore {
            snapshot,
            target,
            archive,
            overwrite,
            include,
        } => {
            let includes = include
                .iter()
                .map(|pattern| {
                    std::ffi::CString::new(pattern.as_bytes()).map_err(|_| {
                        CliError::BadInput(format!("--include {pattern:?} holds a NUL byte"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let options = crate::tarread::Options {
                overwrite: *overwrite,
                includes,
            };
            crate::restore::restore(cli, snapshot, target, archive.as_deref(), &options)?
        }
        Command::Ls { snapshot, archive } => crate::restore::ls(cli, snapshot, archive.as_deref())?,
        Command::Cat {
            snapshot,
            path,
            archive,
        } => return crate::restore::cat(cli, snapshot, path.as_deref(), archive.as_deref()),
        Command::Forget { snapshot } => forget(cli, snapshot)?,
        Command::Prune {
            group,
            all: _,
            keep_last,
            keep_hourly,
            keep_daily,
            keep_weekly,
            keep_monthly,
            keep_yearly,
            utc_offset_minutes,
            dry_run,
        } => {
            let keep = KeepOptions {
                keep_last: *keep_last,
                keep_hourly: *keep_hourly,
                keep_daily: *keep_daily,
                keep_weekly: *keep_weekly,
                keep_monthly: *keep_monthly,
                keep_yearly: *keep_yearly,
            };
            prune(cli, group.as_deref(), keep, *utc_offset_minutes, *dry_run)?
        }
        Command::Gc {
            cutoff_minutes,
            no_atime_check,
        } => gc(cli, *cutoff_minutes, *no_atime_check)?,
        Command::Verify {
            target,
            skip_verified,
            read_only,
        } => crate::verify::verify(cli, target.as_deref(), *skip_verified, *read_only)?,
        Command::Protect { snapshot, off } => protect(cli, snapshot, !*off)?,
        Command::Notes { snapshot, text } => notes(cli, snapshot, text.as_deref())?,
    };
    if cli.json {
        print_out(&format!("{value:#}"));
    } else if !text.is_empty() {
        print_out(text.trim_end());
    }
    Ok(code)
}

/// Prints a line on stdout; a closed pipe (`chunkstore list | head`) is not an error.
pub fn print_out(text: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// A command's result: JSON, the text for people, and the exit code.
pub type Outcome = (Value, String, ExitCode);

pub fn done(value: Value, text: String) -> Result<Outcome, CliError> {
    Ok((value, text, ExitCode::SUCCESS))
}

fn sync_level(cli: &Cli) -> SyncLevel {
    match cli.sync_level {
        SyncArg::None => SyncLevel::None,
        SyncArg::File => SyncLevel::File,
        SyncArg::Filesystem => SyncLevel::Filesystem,
    }
}

fn store_path(cli: &Cli) -> Result<&Path, CliError> {
    cli.store.as_deref().ok_or_else(|| {
        CliError::BadInput("no datastore given: use --store DIR or CHUNKSTORE".into())
    })
}

fn config(cli: &Cli, fanout: PrefixFanout) -> DatastoreConfig {
    let mut config =
        DatastoreConfig::new(ChunkStoreConfig::new(fanout).with_sync_level(sync_level(cli)));
    config.lock_dir = cli.lock_dir.clone();
    config
}

/// Opens the datastore, finding the fan-out it was created with.
pub fn open(cli: &Cli) -> Result<Store, CliError> {
    let path = store_path(cli)?;
    if !path.is_dir() {
        return Err(CliError::BadInput(format!(
            "no datastore at {}",
            path.display()
        )));
    }
    for digits in (1..=4).rev() {
        let Some(fanout) = PrefixFanout::new(digits) else {
            continue;
        };
        if let Ok(store) = Datastore::open(RealWorld::new(), path, config(cli, fanout)) {
            return Ok(store);
        }
    }
    Err(CliError::BadInput(format!(
        "{} is not a datastore (no chunk store found)",
        path.display()
    )))
}

pub fn group_arg(text: &str) -> Result<BackupGroup, CliError> {
    Ok(BackupGroup::from_relative_path(text)?)
}

fn snapshot_arg(text: &str) -> Result<BackupDir, CliError> {
    Ok(BackupDir::from_relative_path(text)?)
}

fn init(cli: &Cli, digits: u8) -> Result<Outcome, CliError> {
    let path = store_path(cli)?;
    let fanout = PrefixFanout::new(digits)
        .ok_or_else(|| CliError::BadInput(format!("fan-out {digits} is not 1 to 4")))?;
    let spinner = progress::spinner(!cli.quiet && !cli.json, "creating the chunk directories");
    let result = create_whole(cli, path, fanout);
    spinner.finish_and_clear();
    result?;
    let text = format!(
        "created datastore {} ({} chunk directories)",
        path.display(),
        fanout.dir_count()
    );
    done(json!({ "store": path, "fanout": digits }), text)
}

/// Creates the datastore in a scratch directory beside `path` and renames it into place, so
/// that a failure (no space, no inodes) leaves nothing behind. `path` may be an empty directory.
fn create_whole(cli: &Cli, path: &Path, fanout: PrefixFanout) -> Result<(), CliError> {
    let fail =
        |what: &str, err: io::Error| CliError::Failure(format!("{what} {}: {err}", path.display()));
    match std::fs::read_dir(path).map(|mut entries| entries.next().is_some()) {
        Ok(true) => {
            let what = if path.join(".chunks").exists() {
                "a datastore already exists at"
            } else {
                "not an empty directory:"
            };
            return Err(CliError::BadInput(format!("{what} {}", path.display())));
        }
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) if err.kind() == io::ErrorKind::NotADirectory => {
            return Err(CliError::BadInput(format!(
                "{} exists and is not a directory",
                path.display()
            )));
        }
        Err(err) => return Err(fail("cannot read", err)),
    }
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned());
    let scratch = path.with_file_name(format!(
        ".{}.init-{}",
        name.unwrap_or_else(|| "store".into()),
        std::process::id()
    ));
    let created = Datastore::create(RealWorld::new(), &scratch, config(cli, fanout))
        .map_err(CliError::from)
        .and_then(|store| {
            drop(store);
            std::fs::rename(&scratch, path).map_err(|err| fail("cannot move the new store to", err))
        });
    if created.is_err() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    created.map_err(|err| {
        let text = format!("creating datastore {}: {err}", path.display());
        err.with_text(text)
    })
}

/// A group argument that must exist: [`CliError::NotFound`] otherwise.
pub fn existing_group(store: &Store, text: &str) -> Result<BackupGroup, CliError> {
    let group = group_arg(text)?;
    if !store.group_path(&group).is_dir() {
        return Err(CliError::NotFound(format!("group {group} not found")));
    }
    Ok(group)
}

/// `n` bytes for people: `812 B`, `3.4 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn list(cli: &Cli, group: Option<&str>) -> Result<Outcome, CliError> {
    let store = open(cli)?;
    let groups = match group {
        Some(text) => vec![existing_group(&store, text)?],
        None => store.list_groups()?,
    };
    let mut rows = Vec::new();
    let mut text = String::new();
    for group in groups {
        for info in store.list_snapshots(&group)? {
            let manifest = match info.finished {
                true => Some(store.load_manifest(&info.dir)),
                false => None,
            };
            let (files, notes, warnings, state) = match &manifest {
                Some(Ok(manifest)) => (
                    manifest.files.clone(),
                    manifest.notes().ok().flatten().map(str::to_owned),
                    recorded_warnings(manifest),
                    "finished".to_owned(),
                ),
                Some(Err(err)) => (Vec::new(), None, Vec::new(), format!("damaged: {err}")),
                None => (Vec::new(), None, Vec::new(), "unfinished".to_owned()),
            };
            let size: u64 = files.iter().map(|file| file.size).sum();
            let mut line = format!("{}  {}  {state}", info.dir, human_bytes(size));
            if info.protected {
                line.push_str(", protected");
            }
            if !warnings.is_empty() {
                line.push_str(&format!(", partial ({} warnings)", warnings.len()));
            }
            text.push_str(&line);
            text.push('\n');
            let files: Vec<Value> = files
                .iter()
                .map(|f| json!({"name": f.filename, "size": f.size}))
                .collect();
            rows.push(json!({
                "snapshot": info.dir.to_string(),
                "time": info.dir.time.to_string(),
                "epoch": info.dir.time.epoch(),
                "finished": info.finished,
                "protected": info.protected,
                "size": size,
                "files": files,
                "notes": notes,
                "warnings": warnings,
            }));
        }
    }
    done(Value::Array(rows), text)
}

fn forget(cli: &Cli, snapshot: &str) -> Result<Outcome, CliError> {
    let dir = snapshot_arg(snapshot)?;
    let store = open(cli)?;
    store.forget_snapshot(&dir)?;
    done(
        json!({ "removed": dir.to_string() }),
        format!("removed {dir}"),
    )
}

fn prune(
    cli: &Cli,
    group: Option<&str>,
    keep: KeepOptions,
    offset_minutes: i32,
    dry_run: bool,
) -> Result<Outcome, CliError> {
    let store = open(cli)?;
    let groups = match group {
        Some(text) => vec![existing_group(&store, text)?],
        None => store.list_groups()?,
    };
    let utc_offset_seconds = offset_minutes.checked_mul(60).ok_or_else(|| {
        CliError::BadInput(format!("UTC offset {offset_minutes} min is out of range"))
    })?;
    let options = PruneOptions {
        keep,
        utc_offset_seconds,
        dry_run,
    };
    let mut text = String::new();
    let (mut rows, mut warnings, mut keeps_everything) = (Vec::new(), 0, false);
    // A snapshot not removed for another reason than a held lock (a read-only disk, no
    // permission) is a failure (1), not busy (3).
    let mut failed = false;
    for group in groups {
        let report = store.prune_group(&group, &options)?;
        keeps_everything |= report.keeps_everything;
        for entry in &report.entries {
            let outcome = match &entry.outcome {
                PruneOutcome::Kept => "kept".to_owned(),
                PruneOutcome::WouldRemove => "would remove".to_owned(),
                PruneOutcome::Removed => "removed".to_owned(),
                PruneOutcome::NotRemoved(err) => {
                    warnings += 1;
                    failed |= !err.is_contention();
                    format!("not removed: {err}")
                }
            };
            text.push_str(&format!("{}  {}  {outcome}\n", entry.info.dir, entry.mark));
            rows.push(json!({ "snapshot": entry.info.dir.to_string(),
                "mark": entry.mark.as_str(), "outcome": outcome }));
        }
    }
    if keeps_everything {
        text.insert_str(0, "no keep option given: every snapshot is kept\n");
    }
    let value = json!({ "group": group, "dry-run": dry_run, "snapshots": rows,
        "warnings": warnings });
    // Prune goes on past a snapshot it could not remove; the exit code still says so.
    let code = match (warnings, failed) {
        (0, _) => ExitCode::SUCCESS,
        (_, true) => ExitCode::from(1),
        (_, false) => ExitCode::from(3),
    };
    Ok((value, text, code))
}

/// The first index file of a finished snapshot that does not open, and why.
fn find_bad_index(store: &Store) -> Option<(std::path::PathBuf, String)> {
    for group in store.list_groups().ok()? {
        for info in store.list_snapshots(&group).ok()? {
            let Ok(manifest) = store.load_manifest(&info.dir) else {
                continue;
            };
            for file in &manifest.files {
                if !file.kind().is_some_and(|kind| kind.is_index()) {
                    continue;
                }
                let path = store.snapshot_path(&info.dir).join(&file.filename);
                if let Err(err) = IndexFile::open(store.world(), &path) {
                    return Some((path, err.to_string()));
                }
            }
        }
    }
    None
}

fn gc(cli: &Cli, cutoff_minutes: Option<u64>, no_atime_check: bool) -> Result<Outcome, CliError> {
    let store = open(cli)?;
    let mut options = GcOptions {
        atime_safety_check: !no_atime_check,
        ..GcOptions::default()
    };
    if let Some(minutes) = cutoff_minutes {
        options.cutoff = Duration::from_secs(minutes.saturating_mul(60));
    }
    let spinner = progress::spinner(!cli.quiet && !cli.json, "garbage collection");
    let outcome = store
        .garbage_collection(&options)
        .map_err(|err| match err {
            StoreError::Index(source) => match find_bad_index(&store) {
                Some((path, problem)) => CliError::Damaged(format!(
                    "index {}: {problem}; garbage collection stopped \
                 (forget the snapshot or repair the file)",
                    path.display()
                )),
                None => CliError::from(StoreError::Index(source)),
            },
            err => CliError::from(err),
        })?;
    spinner.finish_and_clear();
    let status = &outcome.status;
    let warnings: Vec<String> = outcome.warnings.iter().map(ToString::to_string).collect();
    let value = json!({
        "index-file-count": status.index_file_count,
        "index-data-bytes": status.index_data_bytes,
        "disk-chunks": status.disk_chunks,
        "disk-bytes": status.disk_bytes,
        "pending-chunks": status.pending_chunks,
        "pending-bytes": status.pending_bytes,
        "removed-chunks": status.removed_chunks,
        "removed-bytes": status.removed_bytes,
        "removed-bad": status.removed_bad,
        "still-bad": status.still_bad,
        "warnings": warnings,
    });
    let mut text = format!(
        "marked {} index files; removed {} chunks ({} bytes); kept {} chunks ({} bytes), {} pending ({} bytes)\n",
        status.index_file_count,
        status.removed_chunks,
        status.removed_bytes,
        status.disk_chunks,
        status.disk_bytes,
        status.pending_chunks,
        status.pending_bytes
    );
    for warning in &warnings {
        text.push_str(&format!("warning: {warning}\n"));
    }
    done(value, text)
}

fn protect(cli: &Cli, snapshot: &str, on: bool) -> Result<Outcome, CliError> {
    let dir = snapshot_arg(snapshot)?;
    let store = open(cli)?;
    store.set_protection(&dir, on)?;
    let text = format!("{dir} is {}protected", if on { "" } else { "no longer " });
    done(
        json!({ "snapshot": dir.to_string(), "protected": on }),
        text,
    )
}

fn notes(cli: &Cli, snapshot: &str, new: Option<&str>) -> Result<Outcome, CliError> {
    let dir = snapshot_arg(snapshot)?;
    let store = open(cli)?;
    if let Some(new) = new {
        store.set_snapshot_notes(&dir, new)?;
    }
    let manifest = store.load_manifest(&dir)?;
    let notes = manifest
        .notes()
        .map_err(|err| CliError::Damaged(err.to_string()))?
        .unwrap_or("")
        .to_owned();
    done(
        json!({ "snapshot": dir.to_string(), "notes": notes }),
        notes,
    )
}
