//! `chunkstore restore` and `chunkstore ls`: an archive of a snapshot read back as one stream.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use serde_json::json;
use store::backup_info::BackupDir;
use store::index::{ArchiveKind, IndexFile};

use crate::archive::ChunkStream;
use crate::commands::{Outcome, Store, done, existing_group, open};
use crate::exit::CliError;
use crate::tarread::{list_entries, unpack};
use crate::{Cli, progress};

/// The archive being read.
pub struct Opened {
    /// Its snapshot.
    pub dir: BackupDir,
    /// Its name.
    pub archive: String,
    /// Its data bytes.
    pub total: u64,
    /// A dynamic index (a directory stream), not an image.
    pub dynamic: bool,
}

/// A snapshot argument, or a group's newest finished snapshot.
pub fn resolve_snapshot(store: &Store, text: &str) -> Result<BackupDir, CliError> {
    if let Ok(dir) = BackupDir::from_relative_path(text) {
        return Ok(dir);
    }
    let group = existing_group(store, text)?;
    store
        .list_snapshots(&group)?
        .into_iter()
        .rev()
        .find(|info| info.finished)
        .map(|info| info.dir)
        .ok_or_else(|| CliError::NotFound(format!("group {group} has no finished snapshot")))
}

/// The archive `archive` of `snapshot` (its only index archive by default) as a stream handed
/// to `consume`. A chunk that cannot be read is the error returned, naming the chunk.
fn read_archive<T>(
    cli: &Cli,
    snapshot: &str,
    archive: Option<&str>,
    consume: impl FnOnce(&mut dyn Read, &Opened) -> Result<T, CliError>,
) -> Result<(Opened, T), CliError> {
    let store = open(cli)?;
    let dir = resolve_snapshot(&store, snapshot)?;
    let mut reader = store.open_reader(&dir)?;
    let archive = match archive {
        Some(name) => name.to_owned(),
        None => only_index(&dir, reader.manifest())?,
    };
    let index = reader.open_index(&archive)?;
    let opened = Opened {
        dir,
        archive,
        total: index.index_bytes(),
        dynamic: matches!(index, IndexFile::Dynamic(_)),
    };
    let bar = progress::bytes(!cli.quiet && !cli.json, Some(opened.total), "restore");
    let digests = index.digests().to_vec();
    let mut next = 0;
    // The first chunk that could not be read: the error reported.
    let chunk_error = RefCell::new(None);
    let mut stream = ChunkStream::new(|| {
        let Some(digest) = digests.get(next) else {
            return Ok(None);
        };
        next += 1;
        let data = reader.read_chunk(digest).map_err(|err| {
            let text = format!(
                "chunk {digest} of {} in {}: {err}",
                opened.archive, opened.dir
            );
            let failure = io::Error::other(text.clone());
            *chunk_error.borrow_mut() = Some(CliError::from(err).with_text(text));
            failure
        })?;
        bar.inc(data.len() as u64);
        Ok(Some(data))
    });
    let result = consume(&mut stream, &opened);
    bar.finish_and_clear();
    if let Some(err) = chunk_error.into_inner() {
        return Err(err);
    }
    Ok((opened, result?))
}

fn only_index(dir: &BackupDir, manifest: &store::manifest::Manifest) -> Result<String, CliError> {
    let indexes: Vec<&str> = manifest
        .files
        .iter()
        .map(|file| file.filename.as_str())
        .filter(|name| ArchiveKind::from_name(name).is_some_and(|kind| kind.is_index()))
        .collect();
    match indexes.as_slice() {
        [only] => Ok((*only).to_owned()),
        _ => Err(CliError::BadInput(format!(
            "{dir} has {} index archives ({}); choose one with --archive",
            indexes.len(),
            indexes.join(", ")
        ))),
    }
}

/// Runs `chunkstore restore`.
pub fn restore(
    cli: &Cli,
    snapshot: &str,
    target: &Path,
    archive: Option<&str>,
) -> Result<Outcome, CliError> {
    let (opened, warnings) = read_archive(cli, snapshot, archive, |stream, opened| {
        if opened.dynamic {
            unpack(stream, target).map(|done| done.warnings)
        } else {
            write_image(stream, target, opened.total).map(|()| Vec::new())
        }
    })?;
    for warning in &warnings {
        eprintln!("chunkstore: warning: {warning}");
    }
    let Opened {
        dir,
        archive,
        total,
        ..
    } = opened;
    let value = json!({ "snapshot": dir.to_string(), "archive": archive, "target": target,
        "bytes": total, "warnings": warnings });
    let text = format!(
        "restored {archive} of {dir} ({total} bytes) to {}",
        target.display()
    );
    done(value, text)
}

/// Runs `chunkstore ls`: the entries of a directory archive.
pub fn ls(cli: &Cli, snapshot: &str, archive: Option<&str>) -> Result<Outcome, CliError> {
    let (opened, entries) = read_archive(cli, snapshot, archive, |stream, opened| {
        if !opened.dynamic {
            return Err(CliError::BadInput(format!(
                "{} is an image, not a directory archive",
                opened.archive
            )));
        }
        list_entries(stream)
    })?;
    let text: String = entries
        .iter()
        .map(|entry| format!("{}\n", entry.line()))
        .collect();
    let rows: Vec<_> = entries.iter().map(|entry| entry.to_json()).collect();
    let value = json!({ "snapshot": opened.dir.to_string(), "archive": opened.archive,
        "entries": rows });
    done(value, text)
}

fn write_image(mut stream: impl Read, target: &Path, size: u64) -> Result<(), CliError> {
    let fail = |err: io::Error| CliError::Failure(format!("restoring {}: {err}", target.display()));
    let mut file = File::create(target).map_err(fail)?;
    let copied = io::copy(&mut stream, &mut file).map_err(fail)?;
    if copied != size {
        return Err(CliError::Damaged(format!(
            "image has {copied} bytes, its index says {size}"
        )));
    }
    file.flush().map_err(fail)?;
    file.sync_all().map_err(fail)
}
