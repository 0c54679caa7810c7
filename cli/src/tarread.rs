//! Unpacks a directory stream (see `docs/format.md`) with all of its metadata: ownership (as
//! root, by number), mode bits, nanosecond mtimes of files, directories (set after their
//! children) and symlinks, hard links, FIFOs and device nodes (as root), sparse files and
//! extended attributes.

use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use tar::EntryType;

use crate::exit::CliError;
use crate::tarwrite::{SPARSE_KEY, XATTR_PREFIX};

/// The metadata of one entry, from its ustar header and PAX records.
#[derive(Debug, Clone, Default)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    sparse: bool,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// What an unpack did.
#[derive(Debug, Default)]
pub struct Unpacked {
    /// Entries restored.
    pub entries: u64,
    /// Problems that did not stop the restore (ownership or attributes not settable).
    pub warnings: Vec<String>,
}

/// One entry of a directory stream, as `chunkstore ls` shows it.
#[derive(Debug)]
pub struct Listed {
    kind: EntryType,
    meta: Meta,
    size: u64,
    name: PathBuf,
    link: Option<PathBuf>,
}

impl Listed {
    fn kind_char(&self) -> char {
        match self.kind {
            EntryType::Directory => 'd',
            EntryType::Symlink => 'l',
            EntryType::Link => 'h',
            EntryType::Fifo => 'p',
            EntryType::Char => 'c',
            EntryType::Block => 'b',
            _ => '-',
        }
    }

    fn mtime_text(&self) -> String {
        match store::backup_info::BackupTime::from_epoch(self.meta.mtime.0) {
            Ok(time) => time.to_string(),
            Err(_) => format!("@{}", self.meta.mtime.0),
        }
    }

    /// `d 0755 0/0 4096 2024-01-01T00:00:00Z etc`, with ` -> target` for links.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{} {:04o} {}/{} {:>12} {} {}",
            self.kind_char(),
            self.meta.mode & 0o7777,
            self.meta.uid,
            self.meta.gid,
            self.size,
            self.mtime_text(),
            self.name.display()
        );
        if let Some(link) = &self.link {
            line.push_str(&format!(" -> {}", link.display()));
        }
        line
    }

    /// The entry as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name.to_string_lossy(),
            "type": self.kind_char().to_string(),
            "mode": self.meta.mode & 0o7777,
            "uid": self.meta.uid,
            "gid": self.meta.gid,
            "size": self.size,
            "mtime": crate::tarwrite::pax_time(self.meta.mtime.0, self.meta.mtime.1),
            "link": self.link.as_ref().map(|link| link.to_string_lossy().into_owned()),
        })
    }
}

/// The entries of a directory stream, in stream order.
pub fn list_entries(stream: impl Read) -> Result<Vec<Listed>, CliError> {
    let bad = |err: io::Error| CliError::Damaged(format!("archive stream: {err}"));
    let mut archive = tar::Archive::new(stream);
    let mut all = Vec::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let meta = read_meta(&mut entry).map_err(bad)?;
        let link = entry
            .link_name()
            .map_err(bad)?
            .map(|link| link.into_owned());
        all.push(Listed {
            kind: entry.header().entry_type(),
            size: entry.size(),
            name: entry.path().map_err(bad)?.into_owned(),
            link,
            meta,
        });
    }
    Ok(all)
}

/// Unpacks `stream` into `target` (created if missing). Entries whose path would leave
/// `target` are refused as damage.
pub fn unpack(stream: impl Read, target: &Path) -> Result<Unpacked, CliError> {
    fs::create_dir_all(target)
        .map_err(|err| CliError::Failure(format!("mkdir {}: {err}", target.display())))?;
    let as_root = euid_is_root();
    let mut done = Unpacked::default();
    let mut dirs: Vec<(PathBuf, Meta)> = Vec::new();
    let mut archive = tar::Archive::new(stream);
    let bad = |err: io::Error| CliError::Damaged(format!("archive stream: {err}"));
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = entry.path().map_err(bad)?.into_owned();
        let dest = inside(target, &name)?;
        let meta = read_meta(&mut entry).map_err(bad)?;
        let fail =
            |err: io::Error| CliError::Failure(format!("restoring {}: {err}", dest.display()));
        let kind = entry.header().entry_type();
        if kind != EntryType::Directory {
            clear(&dest).map_err(fail)?;
        }
        match kind {
            EntryType::Directory => {
                if !dest.is_dir() {
                    fs::create_dir_all(&dest).map_err(fail)?;
                }
                dirs.push((dest, meta));
                done.entries += 1;
                continue;
            }
            EntryType::Regular | EntryType::Continuous => {
                write_file(&mut entry, &dest, meta.sparse).map_err(fail)?;
            }
            EntryType::Link => {
                let first = link_target(&entry, target)?;
                fs::hard_link(&first, &dest).map_err(fail)?;
                done.entries += 1;
                continue;
            }
            EntryType::Symlink => {
                let link = entry.link_name().map_err(bad)?.unwrap_or_default();
                std::os::unix::fs::symlink(&link, &dest).map_err(fail)?;
            }
            EntryType::Fifo | EntryType::Char | EntryType::Block => {
                make_node(&entry, &dest, meta.mode).map_err(fail)?;
            }
            other => {
                done.warnings
                    .push(format!("{}: skipped entry type {other:?}", name.display()));
                continue;
            }
        }
        let is_symlink = kind == EntryType::Symlink;
        apply(&dest, &meta, as_root, is_symlink, &mut done.warnings);
        done.entries += 1;
    }
    // Children come after their directory, so the reverse order finishes children first.
    for (dir, meta) in dirs.iter().rev() {
        apply(dir, meta, as_root, false, &mut done.warnings);
    }
    Ok(done)
}

fn euid_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `target/name`, refusing names that are absolute or climb out with `..`.
fn inside(target: &Path, name: &Path) -> Result<PathBuf, CliError> {
    let mut dest = target.to_owned();
    for part in name.components() {
        match part {
            Component::Normal(part) => dest.push(part),
            Component::CurDir => {}
            _ => {
                return Err(CliError::Damaged(format!(
                    "archive entry {} would land outside {}",
                    name.display(),
                    target.display()
                )));
            }
        }
    }
    Ok(dest)
}

fn link_target<R: Read>(entry: &tar::Entry<'_, R>, target: &Path) -> Result<PathBuf, CliError> {
    let link = entry
        .link_name()
        .map_err(|err| CliError::Damaged(format!("archive stream: {err}")))?
        .unwrap_or_default();
    inside(target, &link)
}

/// Removes a non-directory in the way of an entry (restore overwrites).
fn clear(dest: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dest) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(dest),
        Ok(_) => fs::remove_file(dest),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent)?;
            }
            Ok(())
        }
        Err(err) => Err(err),
    }
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let header = entry.header();
    let mut meta = Meta {
        mode: header.mode()?,
        uid: u32::try_from(header.uid()?).unwrap_or(u32::MAX),
        gid: u32::try_from(header.gid()?).unwrap_or(u32::MAX),
        mtime: (i64::try_from(header.mtime()?).unwrap_or(i64::MAX), 0),
        ..Meta::default()
    };
    let Some(records) = entry.pax_extensions()? else {
        return Ok(meta);
    };
    for record in records {
        let record = record?;
        let Ok(key) = record.key() else { continue };
        let value = record.value_bytes();
        let text = std::str::from_utf8(value).unwrap_or("");
        match key {
            "uid" => meta.uid = text.parse().map_err(io::Error::other)?,
            "gid" => meta.gid = text.parse().map_err(io::Error::other)?,
            "mtime" => meta.mtime = parse_time(text)?,
            SPARSE_KEY => meta.sparse = text == "1",
            _ => {
                if let Some(name) = key.strip_prefix(XATTR_PREFIX) {
                    meta.xattrs.push((name.to_owned(), value.to_vec()));
                }
            }
        }
    }
    Ok(meta)
}

/// A PAX time (`[-]seconds[.fraction]`) as seconds and nanoseconds (0..1e9).
pub fn parse_time(text: &str) -> io::Result<(i64, i64)> {
    let bad = || io::Error::other(format!("bad PAX time {text:?}"));
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let mut nanos: i64 = 0;
    for digit in fraction.bytes().chain(std::iter::repeat(b'0')).take(9) {
        nanos = nanos * 10 + i64::from(digit - b'0');
    }
    if !negative {
        return Ok((whole, nanos));
    }
    if nanos == 0 {
        return Ok((-whole, 0));
    }
    Ok((-whole - 1, 1_000_000_000 - nanos))
}

/// Writes a file's data; for a sparse source, all-zero blocks become holes.
fn write_file(data: &mut impl Read, dest: &Path, sparse: bool) -> io::Result<()> {
    let mut file = File::create(dest)?;
    if !sparse {
        io::copy(data, &mut file)?;
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

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)
}

fn make_node<R: Read>(entry: &tar::Entry<'_, R>, dest: &Path, mode: u32) -> io::Result<()> {
    let header = entry.header();
    let kind = match header.entry_type() {
        EntryType::Fifo => libc::S_IFIFO,
        EntryType::Char => libc::S_IFCHR,
        _ => libc::S_IFBLK,
    };
    let major = header.device_major()?.unwrap_or(0);
    let minor = header.device_minor()?.unwrap_or(0);
    let path = c_path(dest)?;
    let device = libc::makedev(major, minor);
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    let rc = unsafe { libc::mknod(path.as_ptr(), kind | (mode & 0o7777), device) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Owner (as root), extended attributes, mode bits, then the mtime (last, as the others may
/// change the ctime only). A failure is a warning: the data is restored.
fn apply(path: &Path, meta: &Meta, as_root: bool, is_symlink: bool, warnings: &mut Vec<String>) {
    let mut warn = |what: &str, err: io::Error| {
        warnings.push(format!("{}: {what} not restored: {err}", path.display()));
    };
    if as_root && let Err(err) = std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid)) {
        warn("owner", err);
    }
    if !is_symlink {
        for (name, value) in &meta.xattrs {
            if let Err(err) = xattr::set(path, name, value) {
                warn(&format!("extended attribute {name}"), err);
            }
        }
        let mode = fs::Permissions::from_mode(meta.mode & 0o7777);
        if let Err(err) = fs::set_permissions(path, mode) {
            warn("mode", err);
        }
    }
    if let Err(err) = set_mtime(path, meta.mtime) {
        warn("mtime", err);
    }
}

fn set_mtime(path: &Path, (seconds, nanos): (i64, i64)) -> io::Result<()> {
    let path = c_path(path)?;
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: seconds as libc::time_t,
            tv_nsec: nanos as libc::c_long,
        },
    ];
    // SAFETY: `path` is NUL-terminated and `times` has the two elements utimensat reads.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            path.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_time;
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
        assert!(parse_time("1.x").is_err() && parse_time("").is_err());
    }
}
