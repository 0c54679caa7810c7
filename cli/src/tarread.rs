//! Unpacks a directory stream (see `docs/format.md`) with all of its metadata, or checks that
//! it would unpack (verify's dry run: the same path without writing).
//!
//! Safety rules of a restore into a target that may already hold content:
//! * nothing outside the target is ever written, created, chmod'ed or removed: every path is
//!   resolved beneath the target without following a symbolic link ([`crate::beneath`]);
//! * what is in the way of an entry is replaced only as `--overwrite` allows: by default only
//!   by an entry of the same kind (a file by a file, a link by a link; a directory is merged),
//!   anything else is an error naming it; never a silent recursive delete;
//! * the restore goes on past an entry it cannot create and past damaged data: each problem is
//!   reported by name, everything else is restored, directories get their metadata.

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::beneath::{self, Dir, Found, Root, plain_components};
use crate::exit::CliError;
use crate::paxread::{Damage, Entry, Kind, PaxReader, ReadError};

/// What `restore` does with something in the target that is in the way of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Overwrite {
    /// Replace a file by a file, a link by a link, a node by a node of the same type; merge
    /// into an existing directory; anything else is an error naming it.
    #[default]
    SameKind,
    /// Replace nothing (existing directories are merged); anything in the way is an error.
    Never,
    /// Replace whatever is in the way, a directory with everything in it included.
    Always,
}

/// How to unpack.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// What may be replaced.
    pub overwrite: Overwrite,
    /// Restore only entries matching one of these (fnmatch against the entry path) and what is
    /// beneath a matching directory; empty: everything.
    pub includes: Vec<CString>,
}

/// What an unpack (or a check) found.
#[derive(Debug, Default)]
pub struct Report {
    /// Entries restored (or that would be).
    pub entries: u64,
    /// Damage in the stream: lost entries, files with unreadable bytes, malformed records.
    pub damaged: Vec<String>,
    /// Entries not restored (in the way of something, not creatable, a device as non-root).
    pub not_restored: Vec<String>,
    /// Metadata that could not be set; the data is there.
    pub warnings: Vec<String>,
}

impl Report {
    /// The exit code of the problems found: 5 damage, 6 entries not restored, else 0.
    pub fn code(&self) -> u8 {
        if !self.damaged.is_empty() {
            5
        } else if !self.not_restored.is_empty() {
            crate::exit::PARTIAL
        } else {
            0
        }
    }
}

/// A path of the stream, printable on one line: control bytes, backslashes and bytes that are
/// not UTF-8 as C-style escapes (`\n`, `\\`, `\xff`).
pub fn quote(path: &Path) -> String {
    let mut out = String::new();
    for chunk in path.as_os_str().as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn euid_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Errors that stop a restore: the target cannot take more (full, read-only, failing).
fn is_fatal(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ENOSPC | libc::EDQUOT | libc::EROFS | libc::EIO)
    )
}

fn fnmatch(pattern: &CStr, subject: &Path) -> bool {
    let Ok(subject) = CString::new(subject.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: both arguments are NUL-terminated strings that outlive the call.
    unsafe { libc::fnmatch(pattern.as_ptr(), subject.as_ptr(), 0) == 0 }
}

/// A path of plain names only: no `.` components and no leading `/` (as patterns, messages
/// and `cat` compare entry names).
pub fn clean(name: &Path) -> PathBuf {
    name.components()
        .filter(|part| matches!(part, std::path::Component::Normal(_)))
        .collect()
}

/// A stream that cannot be read stops the whole unpack or listing.
pub fn stream_failure(err: io::Error) -> CliError {
    CliError::Failure(format!("reading the archive: {err}"))
}

/// The damage of a stream that ended without its end-of-archive marker (cut short), if so.
fn missing_marker<R: Read>(reader: &PaxReader<R>) -> Option<String> {
    (!reader.marked_end()).then(|| {
        format!(
            "the archive stream ends at byte {} without its end-of-archive marker",
            reader.offset()
        )
    })
}

/// One unpack: the reader state and what has been done.
struct Unpacker<'a> {
    root: Option<Root>,
    options: &'a Options,
    as_root: bool,
    report: Report,
    /// Directories made or merged, with their metadata, applied at the end.
    dirs: Vec<(Vec<CString>, Entry)>,
    /// Non-directory names in the stream so far, and whether each was restored.
    names: HashMap<PathBuf, bool>,
    /// Directories that could not be made: entries beneath them are counted here.
    blocked: Vec<(PathBuf, u64)>,
    /// Included directories (everything beneath them is included).
    included_dirs: HashSet<PathBuf>,
    /// Directories left out by `--include`, and the ancestors of what was restored: a left
    /// out directory made on the way to an included entry gets its metadata too.
    skipped_dirs: Vec<(Vec<CString>, Entry)>,
    used_dirs: HashSet<PathBuf>,
    owners_differ: bool,
}

/// Unpacks `stream` into `target` (created if missing), or with `target` `None` only checks
/// that it would unpack. `damage` lists the stream ranges that are zeros standing in for
/// unreadable chunks. An `Err` is a problem that stops the whole restore (the target cannot
/// be opened or is full, the stream cannot be read); everything else is in the report.
pub fn unpack(
    stream: impl Read,
    damage: Damage,
    target: Option<&Path>,
    options: &Options,
) -> Result<Report, CliError> {
    let root = match target {
        Some(path) => Some(Root::open(path).map_err(|err| {
            CliError::Failure(format!("cannot open the target {}: {err}", path.display()))
        })?),
        None => None,
    };
    let mut unpacker = Unpacker {
        root,
        options,
        as_root: euid_is_root(),
        report: Report::default(),
        dirs: Vec::new(),
        names: HashMap::new(),
        blocked: Vec::new(),
        included_dirs: HashSet::new(),
        skipped_dirs: Vec::new(),
        used_dirs: HashSet::new(),
        owners_differ: false,
    };
    let mut reader = PaxReader::with_damage(stream, damage.clone());
    loop {
        let entry = match reader.next_entry() {
            Ok(Some(entry)) => entry,
            Ok(None) => break,
            Err(ReadError::Io(err)) => return Err(stream_failure(err)),
            Err(ReadError::Lost { range }) => {
                unpacker.report.damaged.push(format!(
                    "entries in stream bytes {}..{} lost: their headers are in damaged chunks",
                    range.start, range.end
                ));
                continue;
            }
            Err(err @ ReadError::Malformed { .. }) => {
                unpacker.report.damaged.push(err.to_string());
                continue;
            }
        };
        let data_start = reader.offset();
        unpacker.entry(&entry, &mut reader.data())?;
        let data = data_start..reader.offset().max(data_start + entry.size);
        if entry.size > 0
            && let Some(_) = damage.overlap_end(&data)
        {
            let bad: u64 = damage
                .ranges()
                .iter()
                .map(|bad| {
                    bad.end
                        .min(data.end)
                        .saturating_sub(bad.start.max(data.start))
                })
                .sum();
            unpacker.report.damaged.push(format!(
                "{}: {bad} of its {} bytes are in damaged chunks (zeros there)",
                quote(&entry.name),
                entry.size
            ));
        }
    }
    unpacker.report.damaged.extend(missing_marker(&reader));
    unpacker.finish();
    Ok(unpacker.report)
}

impl Unpacker<'_> {
    fn included(&mut self, entry: &Entry, name: &Path) -> bool {
        if self.options.includes.is_empty() {
            return true;
        }
        let under = name
            .ancestors()
            .skip(1)
            .any(|dir| self.included_dirs.contains(dir));
        let matched = under
            || self
                .options
                .includes
                .iter()
                .any(|pattern| fnmatch(pattern, name));
        if matched && entry.kind == Kind::Directory {
            self.included_dirs.insert(name.to_owned());
        }
        matched
    }

    fn entry(&mut self, entry: &Entry, data: &mut impl Read) -> Result<(), CliError> {
        let name = clean(&entry.name);
        let shown = quote(&entry.name);
        let Some(parts) = plain_components(&entry.name) else {
            self.report.damaged.push(format!(
                "{shown}: a name that is absolute, climbs out with '..' or holds a NUL byte; \
                 not restored"
            ));
            return Ok(());
        };
        if parts.is_empty() && entry.kind != Kind::Directory {
            self.report
                .damaged
                .push(format!("{shown}: the root entry is not a directory"));
            return Ok(());
        }
        if entry.kind != Kind::Directory {
            self.names.insert(name.clone(), false);
        }
        if !self.included(entry, &name) {
            if entry.kind == Kind::Directory {
                self.skipped_dirs.push((parts, entry.clone()));
            }
            return Ok(());
        }
        if let Some((_, count)) = self
            .blocked
            .iter_mut()
            .find(|(dir, _)| name.starts_with(dir))
        {
            *count += 1;
            return Ok(());
        }
        if !self.as_root && (entry.uid, entry.gid) != own_ids() {
            self.owners_differ = true;
        }
        let result = match self.root.take() {
            Some(root) => {
                let result = self.create(&root, entry, &parts, &name, data);
                self.root = Some(root);
                result
            }
            None => self.check(entry, &name, data),
        };
        match result {
            Ok(true) => {
                self.report.entries += 1;
                if !self.options.includes.is_empty() {
                    self.used_dirs
                        .extend(name.ancestors().skip(1).map(Path::to_path_buf));
                }
                if entry.kind != Kind::Directory {
                    self.names.insert(name, true);
                }
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(err) if is_fatal(&err) => Err(CliError::Failure(format!(
                "restoring {shown}: {err} (restore stopped)"
            ))),
            Err(err) => {
                if entry.kind == Kind::Directory {
                    self.blocked.push((name, 0));
                }
                self.report
                    .not_restored
                    .push(format!("{shown}: not restored: {err}"));
                Ok(())
            }
        }
    }

    /// The hard link's first name, checked: an earlier non-directory entry of the stream that
    /// was restored. `Ok(None)` when it is reported as not restorable.
    fn link_source(&mut self, entry: &Entry) -> Option<Vec<CString>> {
        let link = entry.link.clone().unwrap_or_default();
        let parts = plain_components(&link).filter(|parts| !parts.is_empty());
        let shown = quote(&entry.name);
        match (parts, self.names.get(&clean(&link))) {
            (Some(parts), Some(true)) => Some(parts),
            (Some(_), Some(false)) => {
                self.report.not_restored.push(format!(
                    "{shown}: not restored: a hard link to {}, which is not restored",
                    quote(&link)
                ));
                None
            }
            _ => {
                self.report.damaged.push(format!(
                    "{shown}: a hard link to {}, which is not an earlier entry of the archive",
                    quote(&link)
                ));
                None
            }
        }
    }

    /// Verify's dry run: the entry would be restored.
    fn check(&mut self, entry: &Entry, name: &Path, data: &mut impl Read) -> io::Result<bool> {
        io::copy(data, &mut io::sink())?;
        match entry.kind {
            Kind::HardLink => Ok(self.link_source(entry).is_some()),
            Kind::Symlink if entry.link.as_ref().is_none_or(|l| l.as_os_str().is_empty()) => {
                self.report
                    .damaged
                    .push(format!("{}: a symbolic link without a target", quote(name)));
                Ok(false)
            }
            Kind::Other(flag) => {
                self.report.damaged.push(format!(
                    "{}: unknown entry type {:?}",
                    quote(name),
                    flag as char
                ));
                Ok(false)
            }
            _ => Ok(true),
        }
    }

    fn create(
        &mut self,
        root: &Root,
        entry: &Entry,
        parts: &[CString],
        name: &Path,
        data: &mut impl Read,
    ) -> io::Result<bool> {
        let Some(parent) = root.parent_of(parts, true)? else {
            // The root entry `.`: the target itself gets its metadata at the end.
            self.dirs.push((Vec::new(), entry.clone()));
            return Ok(true);
        };
        let last = parts.last().expect("a non-root entry has a name");
        let want = match entry.kind {
            Kind::Directory => Found::Directory,
            Kind::Regular => Found::Regular,
            Kind::Symlink => Found::Symlink,
            Kind::Fifo => Found::Fifo,
            Kind::Char => Found::Char,
            Kind::Block => Found::Block,
            Kind::HardLink => {
                let Some(source) = self.link_source(entry) else {
                    return Ok(false);
                };
                let from = root.parent_of(&source, false)?.expect("a named source");
                let from_name = source.last().expect("a named source");
                let kind = from.found(from_name)?.unwrap_or(Found::Regular);
                self.make_room(&parent, last, kind, name)?;
                parent.hard_link(&from, from_name, last)?;
                return Ok(true);
            }
            Kind::Other(flag) => {
                self.report.damaged.push(format!(
                    "{}: unknown entry type {:?}; not restored",
                    quote(name),
                    flag as char
                ));
                return Ok(false);
            }
        };
        if matches!(want, Found::Char | Found::Block) && !self.as_root {
            self.report.not_restored.push(format!(
                "{}: {} not restored: creating device nodes needs root",
                quote(name),
                want.describe()
            ));
            return Ok(false);
        }
        self.make_room(&parent, last, want, name)?;
        match entry.kind {
            Kind::Directory => {
                parent.make_dir(last)?;
                self.dirs.push((parts.to_vec(), entry.clone()));
            }
            Kind::Regular => {
                let mut file = parent.create_file(last)?;
                write_data(data, &mut file, entry.sparse)?;
                self.file_meta(&file, entry, name);
            }
            Kind::Symlink => {
                let link = entry.link.clone().unwrap_or_default();
                parent.symlink(&link, last)?;
                self.node_meta(&parent, last, entry, name, true);
            }
            _ => {
                let kind = match want {
                    Found::Fifo => libc::S_IFIFO,
                    Found::Char => libc::S_IFCHR,
                    _ => libc::S_IFBLK,
                };
                parent.make_node(last, kind, entry.mode, entry.device)?;
                self.node_meta(&parent, last, entry, name, false);
            }
        }
        Ok(true)
    }

    /// Clears the way for an entry of kind `want` at `parent/last` as `--overwrite` allows.
    fn make_room(&mut self, parent: &Dir, last: &CStr, want: Found, name: &Path) -> io::Result<()> {
        let Some(existing) = parent.found(last)? else {
            return Ok(());
        };
        let policy = self.options.overwrite;
        if existing == Found::Directory && want == Found::Directory {
            return Ok(());
        }
        match policy {
            Overwrite::Always => parent.remove_tree(last),
            Overwrite::SameKind if existing == want => parent.unlink(last),
            _ => Err(io::Error::other(format!(
                "{} is in the way of {} of the archive ({} {} allows no replacement; see \
                 --overwrite)",
                existing.describe(),
                want.describe(),
                quote(name),
                match policy {
                    Overwrite::Never => "--overwrite never",
                    _ => "--overwrite same-kind",
                }
            ))),
        }
    }

    fn warn(&mut self, name: &Path, what: &str, err: io::Error) {
        self.report
            .warnings
            .push(format!("{}: {what} not restored: {err}", quote(name)));
    }

    /// Owner (as root), extended attributes, mode bits, then the mtime of an open file or
    /// directory (last, as the others change the ctime only).
    fn file_meta(&mut self, file: &File, entry: &Entry, name: &Path) {
        use xattr::FileExt;
        if self.as_root
            && let Err(err) = std::os::unix::fs::fchown(file, Some(entry.uid), Some(entry.gid))
        {
            self.warn(name, "owner", err);
        }
        for (attr, value) in &entry.xattrs {
            if let Err(err) = file.set_xattr(attr, value) {
                let what = format!("extended attribute {}", quote(Path::new(attr)));
                self.warn(name, &what, err);
            }
        }
        let mode = std::fs::Permissions::from_mode(entry.mode & 0o7777);
        if let Err(err) = file.set_permissions(mode) {
            self.warn(name, "mode", err);
        }
        if let Err(err) = beneath::set_fd_mtime(file, entry.mtime) {
            self.warn(name, "mtime", err);
        }
    }

    /// The same for a symbolic link or a node, by name in its directory.
    fn node_meta(&mut self, parent: &Dir, last: &CStr, entry: &Entry, name: &Path, link: bool) {
        if self.as_root
            && let Err(err) = parent.chown(last, entry.uid, entry.gid)
        {
            self.warn(name, "owner", err);
        }
        if !link {
            for (attr, value) in &entry.xattrs {
                if let Err(err) = parent.set_xattr(last, attr, value) {
                    let what = format!("extended attribute {}", quote(Path::new(attr)));
                    self.warn(name, &what, err);
                }
            }
            if let Err(err) = parent.chmod(last, entry.mode) {
                self.warn(name, "mode", err);
            }
        }
        if let Err(err) = parent.set_mtime(last, entry.mtime) {
            self.warn(name, "mtime", err);
        }
    }

    /// Directory metadata, children first; the blocked directories' counts; the owner note.
    fn finish(&mut self) {
        for (dir, count) in std::mem::take(&mut self.blocked) {
            if count > 0 {
                self.report.not_restored.push(format!(
                    "{}: {count} entries beneath it not restored",
                    quote(&dir)
                ));
            }
        }
        let mut dirs = std::mem::take(&mut self.dirs);
        for (parts, entry) in std::mem::take(&mut self.skipped_dirs) {
            let name: PathBuf = parts
                .iter()
                .map(|part| OsStr::from_bytes(part.to_bytes()))
                .collect();
            if self.used_dirs.contains(&name) {
                dirs.push((parts, entry));
            }
        }
        // Parents before children in `dirs`; children get their metadata first.
        dirs.sort_by_key(|(parts, _)| parts.len());
        if let Some(root) = self.root.take() {
            for (parts, entry) in dirs.iter().rev() {
                let name: PathBuf = parts
                    .iter()
                    .map(|part| OsStr::from_bytes(part.to_bytes()))
                    .collect();
                let name = if parts.is_empty() {
                    PathBuf::from(".")
                } else {
                    name
                };
                match root.walk(parts, false) {
                    Ok(dir) => {
                        let file = File::from(dir.into_fd());
                        self.file_meta(&file, entry, &name);
                    }
                    Err(err) => self.warn(&name, "directory metadata", err),
                }
            }
            if self.owners_differ {
                self.report.warnings.push(
                    "not running as root: owners (uid/gid) are not restored; entries belong \
                     to the restoring user"
                        .to_owned(),
                );
            }
        }
    }
}

fn own_ids() -> (u32, u32) {
    // SAFETY: getuid and getgid have no preconditions and cannot fail.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// Writes a file's data; for a sparse source, all-zero blocks become holes.
fn write_data(data: &mut impl Read, file: &mut File, sparse: bool) -> io::Result<()> {
    if !sparse {
        io::copy(data, file)?;
        return Ok(());
    }
    let mut buffer = vec![0u8; 64 << 10];
    let mut length = 0u64;
    loop {
        let n = read_up_to(data, &mut buffer)?;
        if n == 0 {
            break;
        }
        for block in buffer[..n].chunks(4096) {
            if block.iter().all(|&b| b == 0) {
                file.seek(SeekFrom::Current(block.len() as i64))?;
            } else {
                file.write_all(block)?;
            }
        }
        length += n as u64;
    }
    file.set_len(length)
}

fn read_up_to(data: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match data.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

/// The entries of a directory stream, in stream order, and the damage met (the listing goes
/// on after damage as a restore does).
pub fn list_entries(
    stream: impl Read,
    damage: Damage,
) -> Result<(Vec<Entry>, Vec<String>), CliError> {
    let mut reader = PaxReader::with_damage(stream, damage);
    let mut all = Vec::new();
    let mut problems = Vec::new();
    loop {
        match reader.next_entry() {
            Ok(Some(entry)) => all.push(entry),
            Ok(None) => break,
            Err(ReadError::Io(err)) => return Err(stream_failure(err)),
            Err(err) => problems.push(err.to_string()),
        }
    }
    problems.extend(missing_marker(&reader));
    Ok((all, problems))
}

/// `d 0755 0/0 4096 2024-01-01T00:00:00Z etc`, with ` -> target` for links.
pub fn entry_line(entry: &Entry) -> String {
    let mut line = format!(
        "{} {:04o} {}/{} {:>12} {} {}",
        entry.kind.letter(),
        entry.mode & 0o7777,
        entry.uid,
        entry.gid,
        entry.size,
        mtime_text(entry.mtime.0),
        quote(&entry.name)
    );
    if let Some(link) = &entry.link {
        line.push_str(&format!(" -> {}", quote(link)));
    }
    line
}

fn mtime_text(seconds: i64) -> String {
    match store::backup_info::BackupTime::from_epoch(seconds) {
        Ok(time) => time.to_string(),
        Err(_) => format!("@{seconds}"),
    }
}

/// The entry as JSON (names escaped as in [`quote`]).
pub fn entry_json(entry: &Entry) -> serde_json::Value {
    serde_json::json!({
        "name": quote(&entry.name),
        "type": entry.kind.letter().to_string(),
        "mode": entry.mode & 0o7777,
        "uid": entry.uid,
        "gid": entry.gid,
        "size": entry.size,
        "mtime": crate::tarwrite::pax_time(entry.mtime.0, entry.mtime.1),
        "link": entry.link.as_deref().map(quote),
    })
}

#[cfg(test)]
mod tests {
    use crate::paxread::parse_time;
    use crate::tarwrite::pax_time;

    #[test]
    fn pax_times_round_trip_with_nanoseconds_and_before_1970() {
        for (seconds, nanos) in [
            (0, 0),
            (1, 0),
            (1_600_000_000, 123_456_789),
            (-1, 250_000_000),
            (-2, 500_000_000),
            (-86_400, 0),
            (5, 1),
        ] {
            let text = pax_time(seconds, nanos);
            assert_eq!(parse_time(&text).unwrap(), (seconds, nanos), "{text}");
        }
        assert_eq!(pax_time(-1, 250_000_000), "-0.750000000");
        assert_eq!(parse_time("12.5").unwrap(), (12, 500_000_000));
        assert!(parse_time("1.x").is_none() && parse_time("").is_none());
    }
}
