//! `chunkstore restore` and `chunkstore ls`: an archive of a snapshot read back as one stream.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use serde_json::json;
use store::backup_info::BackupDir;
use store::index::{ArchiveKind, IndexFile};

use crate::archive::ChunkStream;
use crate::commands::{Outcome, Store, existing_group, open};
use crate::exit::CliError;
use crate::paxread::{Damage, Kind, PaxReader, ReadError};
use crate::tarread::{
    Options, Report, clean, entry_json, entry_line, list_entries, quote, stream_failure, unpack,
};
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

/// A chunk that could not be read: its error, already reported with its place in the stream.
pub struct BadChunk {
    /// What went wrong, naming the chunk, the archive and the snapshot.
    pub error: CliError,
}

/// The archive `archive` of `snapshot` (its only index archive by default) as a stream handed
/// to `consume`, with the stream ranges of chunks that could not be read: those read as
/// zeros, so the consumer can go on past them; each is listed in the returned `BadChunk`s.
pub fn read_archive<T>(
    cli: &Cli,
    store: &Store,
    snapshot: &str,
    archive: Option<&str>,
    consume: impl FnOnce(&mut dyn Read, &Opened, Damage) -> Result<T, CliError>,
) -> Result<(Opened, T, Vec<BadChunk>), CliError> {
    let dir = resolve_snapshot(store, snapshot)?;
    let mut reader = store
        .open_reader(&dir)
        .map_err(|err| naming(err, &dir, MANIFEST))?;
    let archive = match archive {
        Some(name) => name.to_owned(),
        None => only_index(&dir, reader.manifest())?,
    };
    if !ArchiveKind::from_name(&archive).is_some_and(|kind| kind.is_index()) {
        return Err(CliError::BadInput(format!(
            "{archive:?} is not an index archive name (<name>.didx or <name>.fidx)"
        )));
    }
    let index = reader
        .open_index(&archive)
        .map_err(|err| naming(err, &dir, &archive))?;
    let opened = Opened {
        dir,
        archive,
        total: index.index_bytes(),
        dynamic: matches!(index, IndexFile::Dynamic(_)),
    };
    let bar = progress::bytes(!cli.quiet && !cli.json, Some(opened.total), "restore");
    let damage = Damage::default();
    let bad = RefCell::new(Vec::new());
    let mut next = 0;
    let mut stream = ChunkStream::new(|| {
        let (Some(digest), Some(range)) = (index.digests().get(next), index.chunk_range(next))
        else {
            return Ok(None);
        };
        next += 1;
        let length = usize::try_from(range.end - range.start).map_err(io::Error::other)?;
        let (error, why) = match reader.read_chunk(digest) {
            Ok(data) if data.len() == length => {
                bar.inc(data.len() as u64);
                return Ok(Some(data));
            }
            Ok(data) => {
                let why = format!("holds {} bytes, its index says {length}", data.len());
                (CliError::Damaged(String::new()), why)
            }
            Err(err) => {
                let why = err.to_string();
                (CliError::from(err), why)
            }
        };
        let text = format!(
            "chunk {digest} (stream bytes {}..{}) of {} in {}: {why}",
            range.start, range.end, opened.archive, opened.dir
        );
        bad.borrow_mut().push(BadChunk {
            error: error.with_text(text),
        });
        damage.add(range);
        let data = vec![0u8; length];
        bar.inc(data.len() as u64);
        Ok(Some(data))
    });
    let result = consume(&mut stream, &opened, damage.clone());
    bar.finish_and_clear();
    Ok((opened, result?, bad.into_inner()))
}

/// The manifest's file name, as errors name it.
const MANIFEST: &str = store::manifest::MANIFEST_BLOB_NAME;

/// A store error about one file of a snapshot, as a tool error naming the file when the
/// store's text does not.
fn naming(err: store::datastore::Error, dir: &BackupDir, file: &str) -> CliError {
    let error = CliError::from(err);
    let text = error.to_string();
    let text = text.strip_prefix("damaged: ").unwrap_or(&text).to_owned();
    if text.contains(file) {
        return error;
    }
    error.with_text(format!("{dir}/{file}: {text}"))
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

/// The exit code of problems: 5 if any is damage, else 1 if any is trouble, else 6 if an
/// entry was not restored, else 0.
fn worst(codes: impl IntoIterator<Item = u8>) -> u8 {
    codes
        .into_iter()
        .fold(0, |worst, code| match (worst, code) {
            (5, _) | (_, 5) => 5,
            (1, _) | (_, 1) => 1,
            (6, _) | (_, 6) => 6,
            (worst, 0) => worst,
            (_, code) => code,
        })
}

/// Runs `chunkstore restore`.
pub fn restore(
    cli: &Cli,
    snapshot: &str,
    target: &Path,
    archive: Option<&str>,
    options: &Options,
) -> Result<Outcome, CliError> {
    let (opened, report, bad) = read_archive(
        cli,
        &open(cli)?,
        snapshot,
        archive,
        |stream, opened, damage| {
            if opened.dynamic {
                unpack(stream, damage, Some(target), options)
            } else if !options.includes.is_empty() {
                Err(CliError::BadInput(format!(
                    "{} is an image: --include applies to directory archives",
                    opened.archive
                )))
            } else {
                write_image(stream, target, opened.total).map(|()| Report::default())
            }
        },
    )?;
    let mut codes: Vec<u8> = bad.iter().map(|chunk| chunk.error.code()).collect();
    codes.push(report.code());
    let bad: Vec<String> = bad.iter().map(|chunk| chunk.error.to_string()).collect();
    for line in &report.warnings {
        eprintln!("chunkstore: warning: {line}");
    }
    for line in &report.not_restored {
        eprintln!("chunkstore: {line}");
    }
    for line in bad.iter() {
        eprintln!("chunkstore: {line}");
    }
    for line in &report.damaged {
        eprintln!("chunkstore: damaged: {line}");
    }
    let code = worst(codes);
    let Opened {
        dir,
        archive,
        total,
        ..
    } = opened;
    let value = json!({ "snapshot": dir.to_string(), "archive": archive, "target": target,
        "bytes": total, "entries": report.entries, "warnings": report.warnings,
        "not-restored": report.not_restored, "damaged": report.damaged, "bad-chunks": bad });
    let mut text = format!(
        "restored {archive} of {dir} ({total} bytes) to {}",
        target.display()
    );
    if code != 0 {
        text.push_str(&format!(
            ": {} entries restored; {} bad chunks, {} damaged entries or ranges, {} entries not \
             restored (see above)",
            report.entries,
            bad.len(),
            report.damaged.len(),
            report.not_restored.len()
        ));
    }
    Ok((value, text, ExitCode::from(code)))
}

/// Runs `chunkstore ls`: the entries of a directory archive (as many as can be read).
pub fn ls(cli: &Cli, snapshot: &str, archive: Option<&str>) -> Result<Outcome, CliError> {
    let (opened, (entries, problems), bad) = read_archive(
        cli,
        &open(cli)?,
        snapshot,
        archive,
        |stream, opened, damage| {
            if !opened.dynamic {
                return Err(CliError::BadInput(format!(
                    "{} is an image, not a directory archive",
                    opened.archive
                )));
            }
            list_entries(stream, damage)
        },
    )?;
    let mut codes: Vec<u8> = bad.iter().map(|chunk| chunk.error.code()).collect();
    let bad: Vec<String> = bad.iter().map(|chunk| chunk.error.to_string()).collect();
    for line in &bad {
        eprintln!("chunkstore: {line}");
    }
    for line in &problems {
        eprintln!("chunkstore: damaged: {line}");
    }
    if !problems.is_empty() {
        codes.push(5);
    }
    let text: String = entries
        .iter()
        .map(|entry| format!("{}\n", entry_line(entry)))
        .collect();
    let rows: Vec<_> = entries.iter().map(entry_json).collect();
    let value = json!({ "snapshot": opened.dir.to_string(), "archive": opened.archive,
        "entries": rows, "damaged": problems, "bad-chunks": bad });
    Ok((value, text, ExitCode::from(worst(codes))))
}

/// Reads every index archive of `dir` back as a restore would, writing nothing: the problems
/// that would make a restore of it fail or lose data.
pub fn check_archives(cli: &Cli, store: &Store, dir: &BackupDir) -> Result<Vec<String>, CliError> {
    let names: Vec<String> = {
        let reader = store.open_reader(dir)?;
        reader
            .manifest()
            .files
            .iter()
            .map(|file| file.filename.clone())
            .filter(|name| ArchiveKind::from_name(name).is_some_and(|kind| kind.is_index()))
            .collect()
    };
    let mut problems = Vec::new();
    for name in names {
        let (_, report, bad) = read_archive(
            cli,
            store,
            &dir.to_string(),
            Some(&name),
            |stream, opened, damage| {
                if opened.dynamic {
                    unpack(stream, damage, None, &Options::default())
                } else {
                    let copied = io::copy(stream, &mut io::sink())
                        .map_err(|err| CliError::Failure(err.to_string()))?;
                    let mut report = Report::default();
                    if copied != opened.total {
                        report.damaged.push(format!(
                            "image has {copied} bytes, its index says {}",
                            opened.total
                        ));
                    }
                    Ok(report)
                }
            },
        )?;
        problems.extend(bad.iter().map(|chunk| format!("{name}: {}", chunk.error)));
        problems.extend(report.damaged.iter().map(|line| format!("{name}: {line}")));
        problems.extend(
            report
                .not_restored
                .iter()
                .map(|line| format!("{name}: {line}")),
        );
    }
    Ok(problems)
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

/// Runs `chunkstore cat`: the whole archive stream (a tar stream, or the image) or the data of
/// one file of a directory archive, on stdout. A closed pipe ends it quietly.
pub fn cat(
    cli: &Cli,
    snapshot: &str,
    path: Option<&Path>,
    archive: Option<&str>,
) -> Result<ExitCode, CliError> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let (_, damaged_file, bad) = read_archive(
        cli,
        &open(cli)?,
        snapshot,
        archive,
        |stream, opened, damage| match path {
            None => copy_out(stream, &mut out).map(|()| None),
            Some(path) if !opened.dynamic => Err(CliError::BadInput(format!(
                "{} is an image: `cat` without {} writes it whole",
                opened.archive,
                path.display()
            ))),
            Some(path) => cat_file(stream, damage, path, &mut out, opened),
        },
    )?;
    match out.flush() {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => {
            return Err(CliError::Failure(format!("writing to stdout: {err}")));
        }
        _ => {}
    }
    let mut codes: Vec<u8> = bad.iter().map(|chunk| chunk.error.code()).collect();
    for chunk in &bad {
        eprintln!("chunkstore: {}", chunk.error);
    }
    if path.is_some() {
        // Only damage inside the file matters for one file.
        codes.clear();
        if let Some(text) = damaged_file {
            eprintln!("chunkstore: damaged: {text}");
            codes.push(5);
        }
    }
    Ok(ExitCode::from(worst(codes)))
}

fn copy_out(mut from: impl Read, out: &mut impl Write) -> Result<(), CliError> {
    match io::copy(&mut from, out) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(err) => Err(CliError::Failure(format!("writing to stdout: {err}"))),
    }
}

/// Writes the data of the regular file `path` of the stream; `Some(text)` if some of it lay
/// in damaged chunks.
fn cat_file(
    stream: &mut dyn Read,
    damage: Damage,
    path: &Path,
    out: &mut impl Write,
    opened: &Opened,
) -> Result<Option<String>, CliError> {
    let wanted = clean(path);
    let mut reader = PaxReader::with_damage(stream, damage.clone());
    loop {
        let entry = match reader.next_entry() {
            Ok(Some(entry)) => entry,
            Ok(None) => break,
            Err(ReadError::Io(err)) => return Err(stream_failure(err)),
            Err(_) => continue,
        };
        if clean(&entry.name) != wanted {
            continue;
        }
        if entry.kind != Kind::Regular {
            return Err(CliError::BadInput(format!(
                "{} is not a regular file (type {})",
                quote(&entry.name),
                entry.kind.letter()
            )));
        }
        let start = reader.offset();
        copy_out(reader.data(), out)?;
        let data = start..start + entry.size;
        return Ok(damage.overlap_end(&data).map(|_| {
            format!(
                "{}: some of its {} bytes are in damaged chunks (zeros there)",
                quote(&entry.name),
                entry.size
            )
        }));
    }
    Err(CliError::NotFound(format!(
        "{} is not a file of {} in {}",
        path.display(),
        opened.archive,
        opened.dir
    )))
}
