//! Writes source trees as one PAX tar stream (the format is described in `docs/format.md`).
//!
//! The stream records exactly the bytes read. A regular file is archived at the size it had
//! when it was opened: a file that shrinks while it is read is padded with zeros, one that grows
//! is cut; either way the entry stays well formed and a warning names the file. Entries that
//! cannot be archived (an unreadable file or directory, a socket) are skipped with a warning;
//! the caller records the warnings and reports a partial backup.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use crate::archive::Sink;
use crate::filecache::{FILE_CUT_MIN, FileCache, Stamp};
use crate::paxread::{needs_encoding, percent_encode};

/// PAX record marking a file whose source had holes (see [`crate::paxread::SPARSE_KEY`]).
const SPARSE_KEY: &str = "CHUNKSTORE.sparse";
/// Prefix of the PAX records of extended attributes with plain-text names.
const SCHILY_XATTR: &str = "SCHILY.xattr.";
/// Prefix of the PAX records of other extended attributes (names percent-encoded).
const CHUNKSTORE_XATTR: &str = "CHUNKSTORE.xattr.";

/// An entry's ustar header and PAX records, before the ustar fields are filled in.
pub type Pending = (Header, Vec<(String, Vec<u8>)>);

/// One tree (or file) to archive, under `name` in the stream (`.` for the stream's root).
pub struct Source {
    /// Where it is on disk.
    pub path: PathBuf,
    /// Its name in the stream.
    pub name: PathBuf,
}

/// What an exclude pattern is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Against {
    /// The entry's file name (a pattern without `/`).
    FileName,
    /// The entry's path in the archive (a pattern with a `/` that does not start with one).
    ArchivePath,
    /// The entry's absolute path on disk (a pattern starting with `/`).
    DiskPath,
}

/// Which entries of the sources are archived.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    patterns: Vec<(CString, Against)>,
    /// Do not descend into directories on another filesystem than their source's (the
    /// mount point itself is archived, empty).
    pub one_file_system: bool,
}

impl Selection {
    /// Shell patterns (`fnmatch(3)`): without a `/` against the file name, starting with `/`
    /// against the absolute path on disk, else against the path in the archive.
    pub fn new(patterns: &[String], one_file_system: bool) -> Result<Selection, String> {
        let patterns = patterns
            .iter()
            .map(|pattern| {
                let c = CString::new(pattern.as_bytes())
                    .map_err(|_| format!("pattern {pattern:?} holds a NUL byte"))?;
                let against = if pattern.starts_with('/') {
                    Against::DiskPath
                } else if pattern.contains('/') {
                    Against::ArchivePath
                } else {
                    Against::FileName
                };
                Ok((c, against))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Selection {
            patterns,
            one_file_system,
        })
    }

    /// Is the entry at `disk` (absolute), named `name` in the archive, left out?
    fn excluded(&self, disk: &Path, name: &Path) -> bool {
        let file_name = name.file_name().map(OsStrExt::as_bytes).unwrap_or_default();
        self.patterns.iter().any(|(pattern, against)| {
            let subject = match against {
                Against::FileName => file_name,
                Against::ArchivePath => name.as_os_str().as_bytes(),
                Against::DiskPath => disk.as_os_str().as_bytes(),
            };
            let Ok(subject) = CString::new(subject) else {
                return false;
            };
            // SAFETY: both arguments are NUL-terminated strings that outlive the call.
            unsafe { libc::fnmatch(pattern.as_ptr(), subject.as_ptr(), 0) == 0 }
        })
    }
}

/// The writer side: a tar builder, the selection, the hard links seen, the warnings.
pub struct TreeWriter {
    builder: tar::Builder<Sink>,
    selection: Selection,
    /// The device of the source being archived (for `--one-file-system`).
    source_device: u64,
    links: HashMap<(u64, u64), PathBuf>,
    cache: FileCache,
    written: Written,
}

/// What the writer did.
#[derive(Debug, Default)]
pub struct Written {
    /// Entries skipped or changed while read.
    pub warnings: Vec<String>,
    /// Large files read.
    pub files_read: u64,
    /// Large files reused from the file cache without reading.
    pub files_reused: u64,
}

impl TreeWriter {
    /// A writer into `out` of the entries `selection` keeps.
    pub fn new(out: Sink, selection: Selection, cache: FileCache) -> TreeWriter {
        TreeWriter {
            builder: tar::Builder::new(out),
            selection,
            source_device: 0,
            links: HashMap::new(),
            cache,
            written: Written::default(),
        }
    }

    /// Archives every source, ends the stream, returns the warnings. An error is one of the
    /// output (the consumer went away); problems with the sources are warnings.
    pub fn write_all(mut self, sources: &[Source]) -> io::Result<Written> {
        for source in sources {
            self.source_device = fs::symlink_metadata(&source.path).map_or(0, |meta| meta.dev());
            self.add(&source.path, &source.name, true)?;
        }
        self.builder.finish()?;
        self.builder.get_mut().flush()?;
        Ok(self.written)
    }

    fn warn(&mut self, path: &Path, text: impl std::fmt::Display) {
        let line = format!("{}: {text}", path.display());
        eprintln!("chunkstore: warning: {line}");
        self.written.warnings.push(line);
    }

    fn add(&mut self, path: &Path, name: &Path, top: bool) -> io::Result<()> {
        if !top && self.selection.excluded(path, name) {
            return Ok(());
        }
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(err) => {
                self.warn(path, format_args!("skipped: {err}"));
                return Ok(());
            }
        };
        let kind = meta.file_type();
        if kind.is_dir() {
            let other_fs = self.selection.one_file_system && meta.dev() != self.source_device;
            return self.add_dir(path, name, &meta, !other_fs);
        }
        if kind.is_socket() {
            self.warn(path, "skipped: a socket cannot be archived");
            return Ok(());
        }
        let inode = (meta.dev(), meta.ino());
        if meta.nlink() > 1
            && let Some(first) = self.links.get(&inode).cloned()
        {
            let mut header = self.header(path, name, &meta, EntryType::Link)?;
            header
                .1
                .push(("linkpath".into(), first.as_os_str().as_bytes().to_vec()));
            return self.append(header, &first, io::empty());
        }
        let done = if kind.is_file() {
            self.add_file(path, name)?
        } else if kind.is_symlink() {
            self.add_symlink(path, name, &meta)?
        } else {
            self.add_special(path, name, &meta)?
        };
        if done && meta.nlink() > 1 {
            self.links.insert(inode, name.to_owned());
        }
        Ok(())
    }

    fn add_dir(
        &mut self,
        path: &Path,
        name: &Path,
        meta: &Metadata,
        descend: bool,
    ) -> io::Result<()> {
        if !descend {
            let header = self.header(path, name, meta, EntryType::Directory)?;
            return self.append(header, &PathBuf::new(), io::empty());
        }
        let mut children =
            match fs::read_dir(path).and_then(|dir| dir.collect::<io::Result<Vec<_>>>()) {
                Ok(children) => children,
                Err(err) => {
                    self.warn(
                        path,
                        format_args!("skipped: cannot read the directory: {err}"),
                    );
                    return Ok(());
                }
            };
        children.sort_by_key(|child| child.file_name());
        let header = self.header(path, name, meta, EntryType::Directory)?;
        self.append(header, &PathBuf::new(), io::empty())?;
        for child in children {
            let file_name = child.file_name();
            let child_name = if name == Path::new(".") {
                PathBuf::from(&file_name)
            } else {
                name.join(&file_name)
            };
            self.add(&path.join(&file_name), &child_name, false)?;
        }
        Ok(())
    }

    /// Archives a regular file at its size at open; `Ok(false)` when it was skipped.
    fn add_file(&mut self, path: &Path, name: &Path) -> io::Result<bool> {
        let opened = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .and_then(|file| file.metadata().map(|meta| (file, meta)));
        let (file, meta) = match opened {
            Ok((file, meta)) if meta.is_file() => (file, meta),
            Ok(_) => {
                self.warn(path, "skipped: replaced by a non-file while archiving");
                return Ok(false);
            }
            Err(err) => {
                self.warn(path, format_args!("skipped: {err}"));
                return Ok(false);
            }
        };
        let size = meta.len();
        let mut header = self.header(path, name, &meta, EntryType::Regular)?;
        if meta.blocks().saturating_mul(512) < size {
            header.1.push((SPARSE_KEY.into(), b"1".to_vec()));
        }
        let mut reader = ExactReader {
            file,
            remaining: size,
            read: 0,
            ended: false,
            error: None,
        };
        if size < FILE_CUT_MIN {
            self.append(header, &PathBuf::new(), &mut reader)?;
            self.check_changes(path, &meta, reader);
            return Ok(true);
        }
        // A large file: its contents are chunks of their own, reused when unchanged.
        self.append(header, &PathBuf::new(), io::empty())?;
        let sink = self.builder.get_mut();
        sink.cut()?;
        let key = name.to_string_lossy().into_owned();
        let stamp = Stamp::of(&meta);
        if let Some(chunks) = self.cache.lookup(&key, &stamp) {
            sink.reuse(key, stamp, chunks)?;
            self.written.files_reused += 1;
        } else {
            let cacheable = self.cache.cacheable(&stamp);
            sink.file_start(key, stamp)?;
            io::copy(&mut reader, sink)?;
            sink.cut()?;
            let warnings = self.written.warnings.len();
            self.check_changes(path, &meta, reader);
            let unchanged = self.written.warnings.len() == warnings;
            self.builder.get_mut().file_end(cacheable && unchanged)?;
            self.written.files_read += 1;
        }
        let padding = (512 - size % 512) % 512;
        self.builder
            .get_mut()
            .write_all(&vec![0u8; padding as usize])?;
        Ok(true)
    }

    /// Warns about a file that shrank, grew, failed or changed while it was read.
    fn check_changes(&mut self, path: &Path, before: &Metadata, mut reader: ExactReader) {
        let size = before.len();
        if let Some(err) = reader.error.take() {
            self.warn(
                path,
                format_args!(
                    "read error after {} bytes ({err}); the rest is zeros",
                    reader.read
                ),
            );
        } else if reader.read < size {
            self.warn(
                path,
                format_args!(
                    "shrank from {size} to {} bytes while read; archived padded with zeros",
                    reader.read
                ),
            );
        } else if matches!(reader.file.read(&mut [0u8; 1]), Ok(1)) {
            self.warn(
                path,
                format_args!("grew while read; archived its first {size} bytes"),
            );
        } else if let Ok(after) = reader.file.metadata()
            && (after.mtime(), after.mtime_nsec()) != (before.mtime(), before.mtime_nsec())
        {
            self.warn(
                path,
                "changed while read; the archived contents may mix versions",
            );
        }
    }

    fn add_symlink(&mut self, path: &Path, name: &Path, meta: &Metadata) -> io::Result<bool> {
        let target = match fs::read_link(path) {
            Ok(target) => target,
            Err(err) => {
                self.warn(path, format_args!("skipped: {err}"));
                return Ok(false);
            }
        };
        let mut header = self.header(path, name, meta, EntryType::Symlink)?;
        header
            .1
            .push(("linkpath".into(), target.as_os_str().as_bytes().to_vec()));
        self.append(header, &target, io::empty())?;
        Ok(true)
    }

    fn add_special(&mut self, path: &Path, name: &Path, meta: &Metadata) -> io::Result<bool> {
        let kind = meta.file_type();
        let entry_type = if kind.is_fifo() {
            EntryType::Fifo
        } else if kind.is_char_device() {
            EntryType::Char
        } else if kind.is_block_device() {
            EntryType::Block
        } else {
            self.warn(path, "skipped: unknown file type");
            return Ok(false);
        };
        let mut header = self.header(path, name, meta, entry_type)?;
        let rdev = meta.rdev();
        header.0.set_device_major(libc::major(rdev))?;
        header.0.set_device_minor(libc::minor(rdev))?;
        self.append(header, &PathBuf::new(), io::empty())?;
        Ok(true)
    }

    /// The ustar header and the PAX records of an entry: path, ids, mtime in nanoseconds, size
    /// and the extended attributes.
    fn header(
        &mut self,
        path: &Path,
        name: &Path,
        meta: &Metadata,
        kind: EntryType,
    ) -> io::Result<Pending> {
        let mut header = Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(meta.mode() & 0o7777);
        header.set_mtime(meta.mtime().max(0) as u64);
        header.set_uid(meta.uid().into());
        header.set_gid(meta.gid().into());
        let size = if kind == EntryType::Regular {
            meta.len()
        } else {
            0
        };
        header.set_size(size);
        let name_bytes = name.as_os_str().as_bytes().to_vec();
        let mut pax = vec![
            ("path".to_owned(), name_bytes),
            (
                "mtime".to_owned(),
                pax_time(meta.mtime(), meta.mtime_nsec()).into_bytes(),
            ),
            ("uid".to_owned(), meta.uid().to_string().into_bytes()),
            ("gid".to_owned(), meta.gid().to_string().into_bytes()),
            ("size".to_owned(), size.to_string().into_bytes()),
        ];
        if !meta.file_type().is_symlink() {
            self.xattrs(path, &mut pax);
        }
        Ok((header, pax))
    }

    fn xattrs(&mut self, path: &Path, pax: &mut Vec<(String, Vec<u8>)>) {
        let names = match xattr::list(path) {
            Ok(names) => names,
            Err(err) if err.raw_os_error() == Some(libc::ENOTSUP) => return,
            Err(err) => {
                return self.warn(path, format_args!("extended attributes not read: {err}"));
            }
        };
        for attr in names {
            let bytes = attr.as_bytes();
            let key = xattr_key(bytes);
            match xattr::get(path, &attr) {
                Ok(Some(value)) => pax.push((key, value)),
                Ok(None) => {}
                Err(err) => self.warn(
                    path,
                    format_args!("extended attribute {}: {err}", percent_encode(bytes)),
                ),
            }
        }
    }

    fn append(&mut self, pending: Pending, link: &Path, data: impl Read) -> io::Result<()> {
        append_entry(&mut self.builder, pending, link, data)
    }
}

/// The PAX key of the extended attribute `name`: `SCHILY.xattr.<name>` for a plain-text
/// name, else `CHUNKSTORE.xattr.<name percent-encoded>`.
pub fn xattr_key(name: &[u8]) -> String {
    match std::str::from_utf8(name) {
        Ok(text) if !needs_encoding(name) => format!("{SCHILY_XATTR}{text}"),
        _ => format!("{CHUNKSTORE_XATTR}{}", percent_encode(name)),
    }
}

/// Writes an entry: the PAX records, then the ustar header (with short placeholders where a
/// name or link target does not fit it), then `data`.
pub fn append_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    (mut header, pax): Pending,
    link: &Path,
    data: impl Read,
) -> io::Result<()> {
    let records = pax
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_slice()));
    builder.append_pax_extensions(records)?;
    let name = pax
        .iter()
        .find(|(key, _)| key == "path")
        .map(|(_, v)| v.as_slice());
    let name = Path::new(std::ffi::OsStr::from_bytes(name.unwrap_or(b".")));
    if header.set_path(name).is_err() {
        header.set_path("pax-long-name")?;
    }
    if !link.as_os_str().is_empty() && header.set_link_name(link).is_err() {
        header.set_link_name("pax-long-link")?;
    }
    header.set_cksum();
    builder.append(&header, data)
}

/// An mtime as a PAX decimal: seconds, and nanoseconds as nine fraction digits when nonzero.
pub fn pax_time(seconds: i64, nanos: i64) -> String {
    if nanos == 0 {
        return seconds.to_string();
    }
    if seconds >= 0 {
        return format!("{seconds}.{nanos:09}");
    }
    // -1 s + 0.25 s is -0.75 s.
    let whole = seconds + 1;
    let fraction = 1_000_000_000 - nanos;
    format!("-{}.{fraction:09}", whole.unsigned_abs())
}

/// Reads exactly `remaining` bytes of a file: zeros from the first end of file or read error
/// on (never data again, which would sit at the wrong offset).
struct ExactReader {
    file: File,
    remaining: u64,
    read: u64,
    ended: bool,
    error: Option<io::Error>,
}

impl Read for ExactReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let want = out
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let out = &mut out[..want];
        let got = if self.ended {
            0
        } else {
            loop {
                match self.file.read(out) {
                    Ok(n) => break n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => {
                        self.error = Some(err);
                        self.ended = true;
                        break 0;
                    }
                }
            }
        };
        self.read += got as u64;
        let n = if got == 0 {
            self.ended = true;
            out.fill(0);
            want
        } else {
            got
        };
        self.remaining -= n as u64;
        Ok(n)
    }
}
