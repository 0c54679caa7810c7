//! `chunkstore backup`: directories (and files among several sources) as a chunked tar stream
//! in a dynamic index, or a single file as an image in a fixed index.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use serde_json::{Value, json};
use store::backup_info::{BackupDir, BackupTime};
use store::chunk_store::Chunk;
use store::datastore::backup::{BackupSession, WriterHandle};
use store::digest::Digest;
use store::index::ArchiveKind;
use store::manifest::{FileInfo, Manifest};
use store::world::{RealWorld, World};

use crate::archive::{ChunkSink, Chunked, chunk_directory};
use crate::commands::{Outcome, group_arg, open};
use crate::exit::{CliError, PARTIAL};
use crate::filecache::{FileCache, cache_path};
use crate::tarwrite::{Selection, Source};
use crate::{BackupArgs, Cli, progress};

/// How far in the future a `--time` may be (clock skew between hosts).
pub const FUTURE_SKEW_SECONDS: i64 = 300;

/// Key of the manifest's `unprotected` list of the backup's warnings.
pub const WARNINGS_KEY: &str = "backup-warnings";

/// Chunk counters of one backup.
#[derive(Default)]
struct Upload {
    /// zstd level, 0 for uncompressed chunks.
    level: i32,
    chunks: u64,
    /// Chunks this backup wrote to the chunk store (not already there).
    written: u64,
    written_bytes: u64,
    /// Bytes of the blobs written (compressed).
    stored_bytes: u64,
    /// Chunks already in the chunk store (found there, or known from the previous snapshot).
    reused: u64,
}

impl Upload {
    /// Uploads `data` unless the session knows its digest, and appends it to `writer`.
    fn add(
        &mut self,
        session: &mut BackupSession<RealWorld>,
        writer: &WriterHandle,
        data: &[u8],
    ) -> Result<Digest, CliError> {
        self.chunks += 1;
        let digest = Digest::of(data);
        if session.is_known(&digest) {
            self.reused += 1;
            session.append_chunk(writer, &digest, data.len() as u64)?;
            return Ok(digest);
        }
        let chunk = if self.level > 0 {
            Chunk::from_data_compressed(data, self.level)
        } else {
            Chunk::from_data(data)
        };
        let chunk = chunk.map_err(|problem| {
            CliError::Failure(format!("chunk of {} bytes: {problem}", data.len()))
        })?;
        self.store(session, &chunk)?;
        session.append_chunk(writer, chunk.digest(), data.len() as u64)?;
        Ok(digest)
    }

    /// Uploads a chunk the session does not know; counts it written or found stored.
    fn store(
        &mut self,
        session: &mut BackupSession<RealWorld>,
        chunk: &Chunk,
    ) -> Result<(), CliError> {
        let duplicates = session.upload_stats().duplicates;
        session.upload_chunk(chunk)?;
        if session.upload_stats().duplicates > duplicates {
            self.reused += 1;
        } else {
            self.written += 1;
            self.written_bytes += chunk.data().len() as u64;
            self.stored_bytes += chunk.blob().len() as u64;
        }
        Ok(())
    }
}

/// `f` of every item, in order, on as many threads as there are cores.
fn parallel<T: Send>(items: &[&[u8]], f: impl Fn(&[u8]) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if items.len() < 2 || threads < 2 {
        return items.iter().map(|item| f(item)).collect();
    }
    let per_thread = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per_thread)
            .map(|part| scope.spawn(|| part.iter().map(|item| f(item)).collect::<Vec<T>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| match handle.join() {
                Ok(results) => results,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// The chunk sink of a directory stream: uploads into the session's dynamic index.
struct Feed<'a> {
    upload: &'a mut Upload,
    session: &'a mut BackupSession<RealWorld>,
    writer: &'a WriterHandle,
    bar: indicatif::ProgressBar,
}

impl ChunkSink for Feed<'_> {
    /// Hashes the batch in parallel, compresses the chunks the session does not know in
    /// parallel, then uploads and appends them in order.
    fn chunks(&mut self, batch: &[&[u8]]) -> Result<Vec<Digest>, CliError> {
        let digests = parallel(batch, Digest::of);
        let level = self.upload.level;
        let is_new: Vec<bool> = digests.iter().map(|d| !self.session.is_known(d)).collect();
        let new: Vec<&[u8]> = batch
            .iter()
            .zip(&is_new)
            .filter(|(_, new)| **new)
            .map(|(data, _)| *data)
            .collect();
        let mut encoded = parallel(&new, |data| {
            if level > 0 {
                Chunk::from_data_compressed(data, level)
            } else {
                Chunk::from_data(data)
            }
        })
        .into_iter();
        for ((data, digest), new) in batch.iter().zip(&digests).zip(is_new) {
            self.bar.inc(data.len() as u64);
            self.upload.chunks += 1;
            if new {
                let chunk = encoded.next().ok_or_else(|| {
                    CliError::Failure("a new chunk of the batch was not encoded".into())
                })?;
                let chunk = chunk.map_err(|problem| {
                    CliError::Failure(format!("chunk of {} bytes: {problem}", data.len()))
                })?;
                self.upload.store(self.session, &chunk)?;
            } else {
                self.upload.reused += 1;
            }
            self.session
                .append_chunk(self.writer, digest, data.len() as u64)?;
        }
        Ok(digests)
    }

    fn reuse(&mut self, digest: &Digest, len: u64) -> Result<(), CliError> {
        if !self.session.is_known(digest) {
            return Err(CliError::Failure(format!(
                "the file cache names chunk {digest}, which the previous snapshot does not list"
            )));
        }
        self.bar.inc(len);
        self.upload.chunks += 1;
        self.upload.reused += 1;
        Ok(self.session.append_chunk(self.writer, digest, len)?)
    }
}

/// Archives `sources` into the dynamic index `archive`, with the file cache; saves the new
/// cache only after `finish` succeeds (the caller's part), so it is returned with its path.
fn backup_stream(
    args: &BackupArgs,
    store_dir: &Path,
    session: &mut BackupSession<RealWorld>,
    archive: &str,
    upload: &mut Upload,
    show: bool,
    sources: Vec<Source>,
) -> Result<(FileInfo, Chunked, Option<PathBuf>), CliError> {
    let known: HashSet<Digest> = match session.previous_index(archive)? {
        Some(index) => index.digests().iter().copied().collect(),
        None => HashSet::new(),
    };
    let cache_path = match args.no_file_cache {
        true => None,
        false => cache_path(args.cache_dir.as_deref(), store_dir, &args.group, archive),
    };
    let started = RealWorld::new().now();
    let cache = FileCache::load(cache_path.as_deref(), known, started);
    let writer = session.create_dynamic_index(archive)?;
    let mut feed = Feed {
        upload,
        session,
        writer: &writer,
        bar: progress::bytes(show, None, "backup"),
    };
    let chunked = chunk_directory(sources, selection(args)?, cache, &mut feed)?;
    feed.bar.finish_and_clear();
    let info = session.close_index(writer)?;
    Ok((info, chunked, cache_path))
}

/// The entries to archive: `--exclude`, the patterns of each `--exclude-file` (one a line;
/// blank lines and lines starting with `#` are skipped), `--one-file-system`.
fn selection(args: &BackupArgs) -> Result<Selection, CliError> {
    let mut patterns = args.exclude.clone();
    for file in &args.exclude_file {
        let text = std::fs::read(file).map_err(|err| {
            CliError::BadInput(format!(
                "cannot read --exclude-file {}: {err}",
                file.display()
            ))
        })?;
        for line in text.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() || line.starts_with(b"#") {
                continue;
            }
            let pattern = String::from_utf8(line.to_vec()).map_err(|_| {
                CliError::BadInput(format!("{}: a pattern is not UTF-8", file.display()))
            })?;
            patterns.push(pattern);
        }
    }
    Selection::new(&patterns, args.one_file_system).map_err(CliError::BadInput)
}

/// What the sources are archived as.
enum Plan {
    /// One regular file: an image in a fixed index.
    Image(PathBuf),
    /// A tar stream of these sources.
    Stream(Vec<Source>),
}

/// Is `path` a block device, or a symbolic link to one (`/dev/disk/by-id/...`)?
fn is_block_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.file_type().is_block_device())
}

fn plan(paths: &[PathBuf], archive: Option<&str>) -> Result<Plan, CliError> {
    let mut sources = Vec::new();
    for path in paths {
        let meta = std::fs::symlink_metadata(path).map_err(|err| {
            CliError::BadInput(format!("cannot back up {}: {err}", path.display()))
        })?;
        let image = archive.is_none_or(|name| name.ends_with(".fidx"));
        if paths.len() == 1 && image && (meta.is_file() || is_block_device(path)) {
            return Ok(Plan::Image(path.clone()));
        }
        // Absolute, so that exclude patterns starting with `/` match; links not resolved.
        let absolute = std::path::absolute(path).map_err(|err| {
            CliError::BadInput(format!("cannot back up {}: {err}", path.display()))
        })?;
        let name = if paths.len() == 1 && meta.is_dir() {
            PathBuf::from(".")
        } else {
            // The source's own name: a symbolic link is archived as itself, under its name.
            let own = absolute
                .file_name()
                .filter(|name| *name != "..")
                .map(PathBuf::from);
            let name = own
                .or_else(|| {
                    std::fs::canonicalize(path)
                        .ok()
                        .and_then(|full| full.file_name().map(PathBuf::from))
                })
                .ok_or_else(|| {
                    CliError::BadInput(format!("{} has no file name", path.display()))
                })?;
            if sources.iter().any(|source: &Source| source.name == name) {
                return Err(CliError::BadInput(format!(
                    "two sources are named {}; back them up in separate archives",
                    name.display()
                )));
            }
            name
        };
        sources.push(Source {
            path: absolute,
            name,
        });
    }
    Ok(Plan::Stream(sources))
}

fn default_archive(plan: &Plan) -> String {
    let Plan::Image(path) = plan else {
        return "root.tar.didx".to_owned();
    };
    let stem: String = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stem = if stem.is_empty() {
        "image".to_owned()
    } else {
        stem
    };
    format!("{stem}.fidx")
}

/// The backup time: `--time` (refused beyond [`FUTURE_SKEW_SECONDS`] ahead) or now.
fn backup_time(text: Option<&str>, now: i64) -> Result<BackupTime, CliError> {
    let Some(text) = text else {
        return Ok(BackupTime::from_epoch(now)?);
    };
    let time = BackupTime::parse(text)?;
    if time.epoch() > now.saturating_add(FUTURE_SKEW_SECONDS) {
        return Err(CliError::BadInput(format!(
            "backup time {time} is {} s in the future (at most {FUTURE_SKEW_SECONDS} s of clock \
             skew is allowed): later backups of the group would have to be newer",
            time.epoch() - now
        )));
    }
    Ok(time)
}

fn check_args(args: &BackupArgs, plan: &Plan, archive: &str) -> Result<(), CliError> {
    let wanted = match plan {
        Plan::Image(_) => ArchiveKind::FixedIndex,
        Plan::Stream(_) => ArchiveKind::DynamicIndex,
    };
    if ArchiveKind::from_name(archive) != Some(wanted) {
        let extension = wanted.extension();
        return Err(CliError::BadInput(format!(
            "archive name {archive:?} must end in .{extension}"
        )));
    }
    let size = args.chunk_size;
    if matches!(plan, Plan::Image(_)) && (!size.is_power_of_two() || size < 4096) {
        return Err(CliError::BadInput(format!(
            "chunk size {size} is not a power of two >= 4096"
        )));
    }
    Ok(())
}

/// Runs `chunkstore backup`. Exit [`PARTIAL`] when entries were skipped or changed while read.
pub fn backup(cli: &Cli, args: &BackupArgs) -> Result<Outcome, CliError> {
    let group = group_arg(&args.group)?;
    let plan = plan(&args.paths, args.archive.as_deref())?;
    let archive = args
        .archive
        .clone()
        .unwrap_or_else(|| default_archive(&plan));
    check_args(args, &plan, &archive)?;
    let store = open(cli)?;
    let time = backup_time(args.time.as_deref(), store.world().now())?;
    let dir = BackupDir::new(group, time);
    let started = Instant::now();
    let mut session = store.start_backup(&dir, &args.owner)?;
    let base = session.base().map(|base| base.to_string());
    let mut upload = Upload {
        level: args.compress,
        ..Upload::default()
    };
    let show = !cli.quiet && !cli.json;
    let (info, chunked, cache_path) = match plan {
        Plan::Stream(sources) => {
            let store_dir = store.base().to_owned();
            let (info, chunked, path) = backup_stream(
                args,
                &store_dir,
                &mut session,
                &archive,
                &mut upload,
                show,
                sources,
            )?;
            (info, Some(chunked), path)
        }
        Plan::Image(path) => {
            session.previous_index(&archive)?;
            let writer = session.create_fixed_index(&archive, args.chunk_size)?;
            backup_image(&path, args.chunk_size, show, |data| {
                upload.add(&mut session, &writer, data).map(|_| ())
            })?;
            (session.close_index(writer)?, None, None)
        }
    };
    let warnings = chunked
        .as_ref()
        .map(|c| c.warnings.clone())
        .unwrap_or_default();
    if let Some(chunked) = &chunked
        && chunked.total != info.size
    {
        return Err(CliError::Failure(format!(
            "the stream has {} bytes, its index {}",
            chunked.total, info.size
        )));
    }
    let size = info.size;
    finish(session, &dir, info, &warnings)?;
    let (files_read, files_reused) = save_cache(chunked, cache_path);
    let done = Done {
        dir,
        archive,
        base,
        size,
        seconds: started.elapsed().as_secs_f64(),
        files: (files_read, files_reused),
    };
    Ok(report(&done, &upload, &warnings))
}

/// Publishes the manifest: the archive and the warnings (`unprotected.backup-warnings`).
fn finish(
    session: BackupSession<RealWorld>,
    dir: &BackupDir,
    info: FileInfo,
    warnings: &[String],
) -> Result<(), CliError> {
    let mut manifest = Manifest::new(dir);
    manifest
        .add_file(info)
        .map_err(|err| CliError::Failure(err.to_string()))?;
    if !warnings.is_empty() {
        manifest
            .unprotected
            .insert(WARNINGS_KEY.to_owned(), json!(warnings));
    }
    session.finish(manifest)?;
    Ok(())
}

/// A finished backup, for its report.
struct Done {
    dir: BackupDir,
    archive: String,
    base: Option<String>,
    size: u64,
    seconds: f64,
    /// Large files read, and reused from the file cache.
    files: (u64, u64),
}

fn report(done: &Done, upload: &Upload, warnings: &[String]) -> Outcome {
    let Done {
        dir,
        archive,
        base,
        size,
        seconds,
        files,
    } = done;
    let value = json!({
        "snapshot": dir.to_string(),
        "archive": archive,
        "base": base,
        "bytes": size,
        "chunks": upload.chunks,
        "uploaded-chunks": upload.written,
        "uploaded-bytes": upload.written_bytes,
        "stored-bytes": upload.stored_bytes,
        "reused-chunks": upload.reused,
        "seconds": seconds,
        "warnings": warnings,
        "files-read": files.0,
        "files-reused": files.1,
    });
    let mut text = format!(
        "{dir}: {archive}, {size} bytes in {} chunks ({} uploaded, {} reused{}) in {seconds:.1} s",
        upload.chunks,
        upload.written,
        upload.reused,
        base.as_ref()
            .map(|base| format!(" from {base}"))
            .unwrap_or_default(),
    );
    let code = partial_code(warnings, &mut text);
    (value, text, code)
}

/// Saves the new file cache (a failure is only a warning: the next backup reads the files);
/// returns the counts of large files read and reused.
fn save_cache(chunked: Option<Chunked>, path: Option<PathBuf>) -> (u64, u64) {
    let Some(chunked) = chunked else {
        return (0, 0);
    };
    if let Some(path) = path
        && let Err(err) = chunked.cache.save(&path)
    {
        eprintln!(
            "chunkstore: warning: file cache {} not saved: {err}",
            path.display()
        );
    }
    (chunked.files_read, chunked.files_reused)
}

fn partial_code(warnings: &[String], text: &mut String) -> ExitCode {
    if warnings.is_empty() {
        return ExitCode::SUCCESS;
    }
    text.push_str(&format!(
        "\npartial backup: {} warnings (recorded in the manifest):",
        warnings.len()
    ));
    for warning in warnings {
        text.push_str(&format!("\n  {warning}"));
    }
    ExitCode::from(PARTIAL)
}

fn backup_image(
    path: &Path,
    chunk_size: u64,
    show: bool,
    mut each: impl FnMut(&[u8]) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let mut file = File::open(path)
        .map_err(|err| CliError::BadInput(format!("open {}: {err}", path.display())))?;
    // A block device's size is where it ends, not its metadata length.
    let total = file.seek(io::SeekFrom::End(0)).ok();
    file.seek(io::SeekFrom::Start(0))
        .map_err(|err| CliError::Failure(format!("seek {}: {err}", path.display())))?;
    let bar = progress::bytes(show, total, "backup");
    let mut buffer = vec![0u8; chunk_size as usize];
    loop {
        let filled = read_full(&mut file, &mut buffer)
            .map_err(|err| CliError::Failure(format!("read {}: {err}", path.display())))?;
        if filled == 0 {
            break;
        }
        bar.inc(filled as u64);
        each(&buffer[..filled])?;
        if filled < buffer.len() {
            break;
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// Reads until `buffer` is full or the end of the file.
fn read_full(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

/// The warnings a backup recorded in `manifest`.
pub fn recorded_warnings(manifest: &Manifest) -> Vec<String> {
    match manifest.unprotected.get(WARNINGS_KEY) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}
