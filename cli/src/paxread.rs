//! A streaming reader of the directory stream (`docs/format.md`): POSIX.1-2001 PAX tar, with
//! the ustar, GNU long-name and base-256 forms other writers use.
//!
//! PAX records are parsed by their length prefix, so every byte but NUL is allowed in names,
//! link targets and extended-attribute values (a newline included). The reader never panics
//! on any input and always makes progress: every call consumes stream bytes or ends. Bad input
//! is a [`ReadError::Malformed`] naming the stream offset.
//!
//! When the stream is read over damaged chunks (zero-filled, see [`Damage`]), a header that
//! touches a damaged range is reported as [`ReadError::Lost`]; the next call resynchronises
//! on the first valid header after the damage, so the entries after it are still read.

use std::cell::RefCell;
use std::ffi::OsString;
use std::io::{self, Read};
use std::ops::Range;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::rc::Rc;

/// Tar block size.
const BLOCK: u64 = 512;
/// Largest PAX extended header or GNU long name accepted (a path, a link target and the
/// extended attributes of one entry).
pub const MAX_EXTENDED: u64 = 64 << 20;
/// PAX record marking a file whose source had holes; restore leaves zero blocks as holes.
pub const SPARSE_KEY: &[u8] = b"CHUNKSTORE.sparse";
/// Prefix of the PAX records holding extended attributes by name (GNU tar, bsdtar).
pub const XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";
/// Prefix of the PAX records holding extended attributes whose name is not plain text (not
/// UTF-8, or holding `=`, `%` or a control byte): the name percent-encoded.
pub const XATTR_ENCODED_PREFIX: &[u8] = b"CHUNKSTORE.xattr.";

/// The kind of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `0` (or NUL, `7`).
    Regular,
    /// `1`: a later name of an inode already in the stream.
    HardLink,
    /// `2`.
    Symlink,
    /// `3`.
    Char,
    /// `4`.
    Block,
    /// `5`.
    Directory,
    /// `6`.
    Fifo,
    /// Any other type flag (its data is skipped).
    Other(u8),
}

impl Kind {
    fn from_flag(flag: u8) -> Kind {
        match flag {
            b'0' | 0 | b'7' => Kind::Regular,
            b'1' => Kind::HardLink,
            b'2' => Kind::Symlink,
            b'3' => Kind::Char,
            b'4' => Kind::Block,
            b'5' => Kind::Directory,
            b'6' => Kind::Fifo,
            other => Kind::Other(other),
        }
    }

    /// One letter, as `ls -l` shows it.
    pub fn letter(self) -> char {
        match self {
            Kind::Directory => 'd',
            Kind::Symlink => 'l',
            Kind::HardLink => 'h',
            Kind::Fifo => 'p',
            Kind::Char => 'c',
            Kind::Block => 'b',
            Kind::Regular | Kind::Other(_) => '-',
        }
    }
}

/// One entry's header, with its PAX records applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its kind.
    pub kind: Kind,
    /// Its name in the stream.
    pub name: PathBuf,
    /// Symbolic link target, or the first name of a hard link.
    pub link: Option<PathBuf>,
    /// Data bytes that follow.
    pub size: u64,
    /// Mode bits (`0o7777`).
    pub mode: u32,
    /// Numeric owner.
    pub uid: u32,
    /// Numeric group.
    pub gid: u32,
    /// Seconds and nanoseconds (0..1e9) since the epoch.
    pub mtime: (i64, i64),
    /// Major and minor device number of a device node.
    pub device: (u32, u32),
    /// The source had holes.
    pub sparse: bool,
    /// Extended attributes, in stream order.
    pub xattrs: Vec<(OsString, Vec<u8>)>,
    /// Stream offset of the entry's first header block.
    pub offset: u64,
}

/// Why a stream could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The underlying stream failed.
    Io(io::Error),
    /// The bytes at `offset` are not a valid stream.
    Malformed {
        /// Stream offset of the block or record.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// The header at `range.start` lies in damaged data: the entries up to the next valid
    /// header are lost (the next call goes on after them).
    Lost {
        /// Stream bytes whose entries are lost (the end is known once resynchronised).
        range: Range<u64>,
    },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(err) => write!(f, "{err}"),
            ReadError::Malformed { offset, what } => {
                write!(f, "malformed archive stream at byte {offset}: {what}")
            }
            ReadError::Lost { range } => write!(
                f,
                "entries from stream byte {} lost in damaged data",
                range.start
            ),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(err: io::Error) -> ReadError {
        ReadError::Io(err)
    }
}

/// Stream ranges whose bytes are zeros standing in for chunks that could not be read; shared
/// between the chunk stream that fills them and the reader that must not trust them.
#[derive(Debug, Clone, Default)]
pub struct Damage(Rc<RefCell<Vec<Range<u64>>>>);

impl Damage {
    /// Records a damaged range.
    pub fn add(&self, range: Range<u64>) {
        self.0.borrow_mut().push(range);
    }

    /// The end of the last damaged range that overlaps `range`, if any.
    pub fn overlap_end(&self, range: &Range<u64>) -> Option<u64> {
        self.0
            .borrow()
            .iter()
            .filter(|bad| bad.start < range.end && range.start < bad.end)
            .map(|bad| bad.end)
            .max()
    }

    /// Every damaged range so far.
    pub fn ranges(&self) -> Vec<Range<u64>> {
        self.0.borrow().clone()
    }
}

/// Reads entries from a stream: [`PaxReader::next_entry`], then the entry's data through
/// [`PaxReader::data`] (whatever is not read is skipped by the next call).
pub struct PaxReader<R> {
    inner: R,
    offset: u64,
    data_left: u64,
    pad_left: u64,
    ended: bool,
    marker: bool,
    damage: Damage,
    /// Set after a [`ReadError::Lost`]: skip to this offset, then search for a header.
    resync_from: Option<u64>,
}

impl<R: Read> PaxReader<R> {
    /// A reader of `inner` from its first byte.
    #[cfg(test)]
    pub fn new(inner: R) -> PaxReader<R> {
        PaxReader::with_damage(inner, Damage::default())
    }

    /// A reader that treats the ranges in `damage` as unreadable.
    pub fn with_damage(inner: R, damage: Damage) -> PaxReader<R> {
        PaxReader {
            inner,
            offset: 0,
            data_left: 0,
            pad_left: 0,
            ended: false,
            marker: false,
            damage,
            resync_from: None,
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Has the end-of-archive marker (a zero block) been read? A stream that just stops
    /// between entries has none.
    pub fn marked_end(&self) -> bool {
        self.marker
    }

    /// The data of the entry last returned, up to its size.
    pub fn data(&mut self) -> DataReader<'_, R> {
        DataReader { reader: self }
    }

    /// The next entry, or `None` at the end-of-archive marker (two zero blocks, or one zero
    /// block followed by the end of the stream, or the end of the stream between entries).
    pub fn next_entry(&mut self) -> Result<Option<Entry>, ReadError> {
        if self.ended {
            return Ok(None);
        }
        let skip = std::mem::take(&mut self.data_left) + std::mem::take(&mut self.pad_left);
        if let Err(err) = self.skip(skip) {
            // The stream ended inside the last entry: nothing more to read.
            self.ended = true;
            return Err(err);
        }
        if let Some(from) = self.resync_from.take() {
            return self.resync(from);
        }
        let start = self.offset;
        let result = self.read_entry(start);
        self.settle(start, result)
    }

    /// A header read from `start` on: lost if it touched damaged data; after malformed bytes,
    /// the next call searches for the next valid header.
    fn settle(
        &mut self,
        start: u64,
        result: Result<Option<Entry>, ReadError>,
    ) -> Result<Option<Entry>, ReadError> {
        match result {
            Err(ReadError::Malformed { .. }) | Ok(_) if self.damaged_since(start) => {
                self.lost(start)
            }
            Err(err @ ReadError::Malformed { .. }) => {
                self.data_left = 0;
                self.pad_left = 0;
                self.ended = false;
                self.marker = false;
                self.resync_from = Some(self.offset);
                Err(err)
            }
            other => other,
        }
    }

    fn damaged_since(&self, start: u64) -> bool {
        self.damage
            .overlap_end(&(start..self.offset.max(start + 1)))
            .is_some()
    }

    fn lost(&mut self, start: u64) -> Result<Option<Entry>, ReadError> {
        let end = self
            .damage
            .overlap_end(&(start..self.offset.max(start + 1)))
            .unwrap_or(self.offset);
        self.data_left = 0;
        self.pad_left = 0;
        self.ended = false;
        self.marker = false;
        self.resync_from = Some(end);
        Err(ReadError::Lost { range: start..end })
    }

    /// Skips to `from` (rounded up to a block), then to the first block that is a valid
    /// header outside damaged data, and reads the entry there.
    fn resync(&mut self, from: u64) -> Result<Option<Entry>, ReadError> {
        let from = from.div_ceil(BLOCK) * BLOCK;
        if from > self.offset {
            self.skip(from - self.offset)?;
        }
        loop {
            let mut block = [0u8; BLOCK as usize];
            let start = self.offset;
            if !self.read_block_or_eof(&mut block)? {
                self.ended = true;
                return Ok(None);
            }
            if let Some(end) = self.damage.overlap_end(&(start..self.offset)) {
                let to = end.div_ceil(BLOCK) * BLOCK;
                if to > self.offset {
                    self.skip(to - self.offset)?;
                }
                continue;
            }
            if block.iter().all(|&b| b == 0) || !is_header(&block) {
                continue;
            }
            let result = self.entry_from(block, start);
            return self.settle(start, result);
        }
    }

    fn read_entry(&mut self, start: u64) -> Result<Option<Entry>, ReadError> {
        let mut block = [0u8; BLOCK as usize];
        if !self.read_block_or_eof(&mut block)? {
            self.ended = true;
            return Ok(None);
        }
        if block.iter().all(|&b| b == 0) {
            // The second zero block may be missing (a stream cut after the first).
            let mut second = [0u8; BLOCK as usize];
            if self.read_block_or_eof(&mut second)? && second.iter().any(|&b| b != 0) {
                return Err(malformed(
                    start + BLOCK,
                    "data after an end-of-archive block",
                ));
            }
            self.ended = true;
            self.marker = true;
            return Ok(None);
        }
        self.entry_from(block, start)
    }

    /// Reads the headers that start with `block` (extended headers first) and returns the
    /// entry they describe.
    fn entry_from(
        &mut self,
        mut block: [u8; BLOCK as usize],
        start: u64,
    ) -> Result<Option<Entry>, ReadError> {
        let mut pax: Vec<Record> = Vec::new();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut block_offset = start;
        loop {
            check_header(&block, block_offset)?;
            let flag = block[156];
            let size = numeric(&block[124..136], block_offset, "size")?;
            match flag {
                b'x' | b'g' | b'L' | b'K' => {
                    if size > MAX_EXTENDED {
                        let what = format!("extended header of {size} bytes");
                        return Err(malformed(block_offset, &what));
                    }
                    let data_offset = self.offset;
                    let data = self.read_exact_padded(size)?;
                    match flag {
                        b'x' => pax.extend(parse_records(&data, data_offset)?),
                        // Global records apply to the whole archive; none of ours is global.
                        b'g' => {
                            parse_records(&data, data_offset)?;
                        }
                        b'L' => long_name = Some(until_nul(&data).to_vec()),
                        _ => long_link = Some(until_nul(&data).to_vec()),
                    }
                }
                _ => break,
            }
            block_offset = self.offset;
            if !self.read_block_or_eof(&mut block)? {
                return Err(malformed(
                    block_offset,
                    "stream ends after an extended header",
                ));
            }
        }
        let mut entry = ustar_entry(&block, block_offset, start)?;
        if let Some(name) = long_name {
            entry.name = path_of(name);
        }
        if let Some(link) = long_link {
            entry.link = Some(path_of(link));
        }
        apply_records(&mut entry, pax, block_offset)?;
        if matches!(entry.kind, Kind::HardLink | Kind::Symlink) && entry.link.is_none() {
            entry.link = Some(PathBuf::new());
        }
        if entry.name.as_os_str().is_empty() {
            return Err(malformed(block_offset, "entry with an empty name"));
        }
        // Links, devices, FIFOs and directories carry no data in this format whatever their
        // size field says (POSIX); a hard link with data is read as having none.
        let has_data = matches!(entry.kind, Kind::Regular | Kind::Other(_));
        if !has_data {
            entry.size = 0;
        }
        self.data_left = entry.size;
        self.pad_left = (BLOCK - entry.size % BLOCK) % BLOCK;
        Ok(Some(entry))
    }

    fn read_block_or_eof(&mut self, block: &mut [u8; BLOCK as usize]) -> Result<bool, ReadError> {
        let mut filled = 0;
        while filled < block.len() {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(ReadError::Io(err)),
            }
        }
        self.offset += filled as u64;
        match filled {
            0 => Ok(false),
            512 => Ok(true),
            _ => Err(malformed(
                self.offset - filled as u64,
                "stream ends inside a block",
            )),
        }
    }

    fn read_exact_padded(&mut self, size: u64) -> Result<Vec<u8>, ReadError> {
        let start = self.offset;
        let mut data = Vec::new();
        let got = (&mut self.inner).take(size).read_to_end(&mut data)?;
        self.offset += got as u64;
        if (got as u64) < size {
            return Err(malformed(start, "stream ends inside an extended header"));
        }
        self.skip((BLOCK - size % BLOCK) % BLOCK)?;
        Ok(data)
    }

    fn skip(&mut self, count: u64) -> Result<(), ReadError> {
        let start = self.offset;
        let got = io::copy(&mut (&mut self.inner).take(count), &mut io::sink())?;
        self.offset += got;
        if got < count {
            return Err(malformed(start, "stream ends inside an entry"));
        }
        Ok(())
    }
}

/// The data of one entry (see [`PaxReader::data`]). A stream that ends early is an error of
/// kind `UnexpectedEof`.
pub struct DataReader<'a, R> {
    reader: &'a mut PaxReader<R>,
}

impl<R: Read> Read for DataReader<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let reader = &mut *self.reader;
        let want = out
            .len()
            .min(usize::try_from(reader.data_left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = reader.inner.read(&mut out[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("stream ends inside an entry at byte {}", reader.offset),
            ));
        }
        reader.offset += n as u64;
        reader.data_left -= n as u64;
        Ok(n)
    }
}

fn malformed(offset: u64, what: &str) -> ReadError {
    ReadError::Malformed {
        offset,
        what: what.to_owned(),
    }
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

fn path_of(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(OsString::from_vec(bytes))
}

/// The stored and computed checksums of a header block agree (unsigned or signed sum, as old
/// writers used either).
fn is_header(block: &[u8; BLOCK as usize]) -> bool {
    let Ok(stored) = numeric(&block[148..156], 0, "checksum") else {
        return false;
    };
    let field = 148..156;
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if field.contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || i64::try_from(stored).is_ok_and(|stored| stored == signed)
}

fn check_header(block: &[u8; BLOCK as usize], offset: u64) -> Result<(), ReadError> {
    if is_header(block) {
        Ok(())
    } else {
        Err(malformed(offset, "header checksum mismatch"))
    }
}

/// A numeric header field: octal digits (leading spaces, ending at a space or NUL), or GNU
/// base-256 (first byte 0x80; 0xff for a negative number, refused).
fn numeric(field: &[u8], offset: u64, name: &str) -> Result<u64, ReadError> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        if field[0] != 0x80 {
            return Err(malformed(offset, &format!("negative {name} field")));
        }
        let mut value: u64 = 0;
        for &b in &field[1..] {
            value = value
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or_else(|| malformed(offset, &format!("{name} field out of range")))?;
        }
        return Ok(value);
    }
    let digits = field
        .iter()
        .skip_while(|&&b| b == b' ')
        .take_while(|&&b| b != b' ' && b != 0);
    let mut value: u64 = 0;
    for &b in digits {
        if !(b'0'..=b'7').contains(&b) {
            return Err(malformed(
                offset,
                &format!("bad octal digit in the {name} field"),
            ));
        }
        value = value
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or_else(|| malformed(offset, &format!("{name} field out of range")))?;
    }
    Ok(value)
}

fn small(value: u64, offset: u64, name: &str) -> Result<u32, ReadError> {
    u32::try_from(value).map_err(|_| malformed(offset, &format!("{name} {value} out of range")))
}

/// The entry an ustar (or GNU, or v7) header block describes, before PAX records.
fn ustar_entry(block: &[u8; BLOCK as usize], offset: u64, start: u64) -> Result<Entry, ReadError> {
    let magic = &block[257..265];
    let mut name = until_nul(&block[0..100]).to_vec();
    // POSIX ustar splits long names into a prefix; GNU uses those bytes for other fields.
    if magic == b"ustar\x0000" {
        let prefix = until_nul(&block[345..500]);
        if !prefix.is_empty() {
            let mut joined = prefix.to_vec();
            joined.push(b'/');
            joined.extend_from_slice(&name);
            name = joined;
        }
    }
    let kind = Kind::from_flag(block[156]);
    let link = until_nul(&block[157..257]);
    let link = (!link.is_empty()).then(|| path_of(link.to_vec()));
    let has_devices = matches!(kind, Kind::Char | Kind::Block);
    let device = if has_devices {
        let major = numeric(&block[329..337], offset, "device major")?;
        let minor = numeric(&block[337..345], offset, "device minor")?;
        (
            small(major, offset, "device major")?,
            small(minor, offset, "device minor")?,
        )
    } else {
        (0, 0)
    };
    let mtime = numeric(&block[136..148], offset, "mtime")?;
    Ok(Entry {
        kind,
        name: path_of(name),
        link,
        size: numeric(&block[124..136], offset, "size")?,
        mode: small(numeric(&block[100..108], offset, "mode")?, offset, "mode")? & 0o7777,
        uid: small(numeric(&block[108..116], offset, "uid")?, offset, "uid")?,
        gid: small(numeric(&block[116..124], offset, "gid")?, offset, "gid")?,
        mtime: (i64::try_from(mtime).unwrap_or(i64::MAX), 0),
        device,
        sparse: false,
        xattrs: Vec::new(),
        offset: start,
    })
}

/// One PAX record: key and value bytes.
pub type Record = (Vec<u8>, Vec<u8>);

/// Splits PAX extended-header data into `(key, value)` records, each `"<len> <key>=<value>\n"`
/// where `<len>` counts the whole record; `offset` is the data's stream offset.
pub fn parse_records(data: &[u8], offset: u64) -> Result<Vec<Record>, ReadError> {
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        let rest = &data[at..];
        let here = offset + at as u64;
        if rest.iter().all(|&b| b == 0) {
            break; // NUL padding some writers leave after the last record
        }
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 20 || rest.get(digits) != Some(&b' ') {
            return Err(malformed(here, "PAX record without a length"));
        }
        let length: usize = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| malformed(here, "PAX record length out of range"))?;
        if length < digits + 3 || length > rest.len() {
            return Err(malformed(
                here,
                &format!("PAX record length {length} out of range"),
            ));
        }
        let record = &rest[..length];
        if record[length - 1] != b'\n' {
            return Err(malformed(here, "PAX record does not end in a newline"));
        }
        let body = &record[digits + 1..length - 1];
        let Some(equals) = body.iter().position(|&b| b == b'=') else {
            return Err(malformed(here, "PAX record without '='"));
        };
        if equals == 0 {
            return Err(malformed(here, "PAX record with an empty key"));
        }
        records.push((body[..equals].to_vec(), body[equals + 1..].to_vec()));
        at += length;
    }
    Ok(records)
}

fn text_value<'v>(value: &'v [u8], key: &str, offset: u64) -> Result<&'v str, ReadError> {
    std::str::from_utf8(value).map_err(|_| malformed(offset, &format!("PAX {key} is not text")))
}

fn number_value(value: &[u8], key: &str, offset: u64) -> Result<u64, ReadError> {
    let text = text_value(value, key, offset)?;
    // A fractional part (some writers give one for ids or sizes) is ignored.
    let whole = text.split_once('.').map_or(text, |(whole, _)| whole);
    whole
        .parse()
        .map_err(|_| malformed(offset, &format!("PAX {key} {text:?} is not a number")))
}

fn apply_records(entry: &mut Entry, records: Vec<Record>, offset: u64) -> Result<(), ReadError> {
    for (key, value) in records {
        match key.as_slice() {
            b"path" => entry.name = path_of(value),
            b"linkpath" => entry.link = Some(path_of(value)),
            b"size" => entry.size = number_value(&value, "size", offset)?,
            b"uid" => entry.uid = small(number_value(&value, "uid", offset)?, offset, "uid")?,
            b"gid" => entry.gid = small(number_value(&value, "gid", offset)?, offset, "gid")?,
            b"mtime" => {
                let text = text_value(&value, "mtime", offset)?;
                entry.mtime = parse_time(text).ok_or_else(|| {
                    malformed(offset, &format!("PAX mtime {text:?} is not a time"))
                })?;
            }
            SPARSE_KEY => entry.sparse = value == b"1",
            _ => {
                if let Some(name) = key.strip_prefix(XATTR_PREFIX) {
                    entry
                        .xattrs
                        .push((OsString::from_vec(name.to_vec()), value));
                } else if let Some(encoded) = key.strip_prefix(XATTR_ENCODED_PREFIX) {
                    let name = percent_decode(encoded).ok_or_else(|| {
                        malformed(offset, "bad percent-encoding in an attribute name")
                    })?;
                    entry.xattrs.push((OsString::from_vec(name), value));
                }
                // Other records (atime, ctime, charset, ...) are not restored.
            }
        }
    }
    Ok(())
}

/// A PAX time (`[-]seconds[.fraction]`) as seconds and nanoseconds (0..1e9).
pub fn parse_time(text: &str) -> Option<(i64, i64)> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nanos: i64 = 0;
    for digit in fraction.bytes().chain(std::iter::repeat(b'0')).take(9) {
        nanos = nanos * 10 + i64::from(digit - b'0');
    }
    if !negative {
        return Some((whole, nanos));
    }
    if nanos == 0 {
        return Some((-whole, 0));
    }
    Some((-whole - 1, 1_000_000_000 - nanos))
}

/// Does an attribute name need the percent-encoded record (not UTF-8, or a byte that would
/// confuse a reader of the plain record)?
pub fn needs_encoding(name: &[u8]) -> bool {
    std::str::from_utf8(name).is_err()
        || name
            .iter()
            .any(|&b| b == b'=' || b == b'%' || b.is_ascii_control())
}

/// `name` with every byte outside printable ASCII, and `%` and `=`, as `%XX`.
pub fn percent_encode(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name {
        if b.is_ascii_graphic() && b != b'%' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    use proptest::prelude::*;
    use tar::{EntryType, Header};

    use super::*;
    use crate::tarwrite::{append_entry, pax_time, xattr_key};

    /// One entry as the test writes it.
    #[derive(Debug, Clone)]
    struct Spec {
        kind: Kind,
        name: Vec<u8>,
        link: Vec<u8>,
        xattrs: Vec<(Vec<u8>, Vec<u8>)>,
        data: Vec<u8>,
        mtime: (i64, i64),
    }

    fn write_stream(specs: &[Spec]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for spec in specs {
            let mut header = Header::new_ustar();
            let entry_type = match spec.kind {
                Kind::Regular => EntryType::Regular,
                Kind::Symlink => EntryType::Symlink,
                Kind::HardLink => EntryType::Link,
                _ => EntryType::Directory,
            };
            header.set_entry_type(entry_type);
            header.set_mode(0o640);
            header.set_size(spec.data.len() as u64);
            let mut pax = vec![
                ("path".to_owned(), spec.name.clone()),
                (
                    "mtime".to_owned(),
                    pax_time(spec.mtime.0, spec.mtime.1).into_bytes(),
                ),
                ("uid".to_owned(), b"1000".to_vec()),
                ("gid".to_owned(), b"100".to_vec()),
                ("size".to_owned(), spec.data.len().to_string().into_bytes()),
            ];
            let link = Path::new(OsStr::from_bytes(&spec.link));
            if matches!(spec.kind, Kind::Symlink | Kind::HardLink) {
                pax.push(("linkpath".to_owned(), spec.link.clone()));
            }
            for (name, value) in &spec.xattrs {
                pax.push((xattr_key(name), value.clone()));
            }
            let link = if pax.iter().any(|(key, _)| key == "linkpath") {
                link
            } else {
                Path::new("")
            };
            append_entry(&mut builder, (header, pax), link, spec.data.as_slice()).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn read_all(stream: &[u8]) -> Result<Vec<(Entry, Vec<u8>)>, ReadError> {
        let mut reader = PaxReader::new(stream);
        let mut all = Vec::new();
        while let Some(entry) = reader.next_entry()? {
            let mut data = Vec::new();
            reader.data().read_to_end(&mut data)?;
            all.push((entry, data));
        }
        assert!(reader.marked_end());
        Ok(all)
    }

    /// Bytes but NUL (and `/` for a name).
    fn bytes_without(excluded: &'static [u8], max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 1..max)
            .prop_map(move |bytes| {
                bytes
                    .into_iter()
                    .filter(|b| !excluded.contains(b))
                    .collect::<Vec<u8>>()
            })
            .prop_filter("not empty", |bytes: &Vec<u8>| !bytes.is_empty())
    }

    fn spec() -> impl Strategy<Value = Spec> {
        let kind = prop_oneof![
            Just(Kind::Regular),
            Just(Kind::Symlink),
            Just(Kind::HardLink),
            Just(Kind::Directory)
        ];
        (
            kind,
            proptest::collection::vec(bytes_without(b"\0/", 40), 1..4),
            bytes_without(b"\0", 300),
            proptest::collection::vec(
                (
                    bytes_without(b"\0", 30),
                    proptest::collection::vec(any::<u8>(), 0..200),
                ),
                0..4,
            ),
            proptest::collection::vec(any::<u8>(), 0..2000),
            (-3_000_000_000i64..5_000_000_000, 0i64..1_000_000_000),
        )
            .prop_map(|(kind, parts, link, xattrs, data, mtime)| Spec {
                kind,
                name: parts.join(&b'/'),
                link,
                xattrs,
                data: if kind == Kind::Regular {
                    data
                } else {
                    Vec::new()
                },
                mtime,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every byte but NUL in names, link targets and attribute names and values (a newline,
        /// '=' and '%' included) comes back exactly.
        #[test]
        fn arbitrary_bytes_round_trip(specs in proptest::collection::vec(spec(), 1..6)) {
            let stream = write_stream(&specs);
            let read = read_all(&stream).unwrap();
            prop_assert_eq!(read.len(), specs.len());
            for (spec, (entry, data)) in specs.iter().zip(&read) {
                prop_assert_eq!(entry.kind, spec.kind);
                prop_assert_eq!(entry.name.as_os_str().as_bytes(), spec.name.as_slice());
                if matches!(spec.kind, Kind::Symlink | Kind::HardLink) {
                    let link = entry.link.as_ref().unwrap();
                    prop_assert_eq!(link.as_os_str().as_bytes(), spec.link.as_slice());
                }
                let xattrs: Vec<(Vec<u8>, Vec<u8>)> = entry
                    .xattrs
                    .iter()
                    .map(|(name, value)| (name.as_bytes().to_vec(), value.clone()))
                    .collect();
                prop_assert_eq!(&xattrs, &spec.xattrs);
                prop_assert_eq!(data, &spec.data);
                prop_assert_eq!(entry.mtime, spec.mtime);
                prop_assert_eq!((entry.uid, entry.gid, entry.mode), (1000, 100, 0o640));
            }
        }

        /// Any mutation of a valid stream (bytes changed, cut, inserted) gives entries or typed
        /// errors, never a panic, and the reader ends after a bounded number of calls.
        #[test]
        fn mutated_streams_never_panic_or_hang(
            specs in proptest::collection::vec(spec(), 1..4),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..12),
        ) {
            let mut stream = write_stream(&specs);
            for (at, byte, how) in edits {
                let i = at.index(stream.len().max(1));
                match how {
                    0 | 1 => if let Some(b) = stream.get_mut(i) { *b = byte },
                    2 => stream.truncate(i),
                    _ => stream.insert(i.min(stream.len()), byte),
                }
            }
            let mut reader = PaxReader::new(stream.as_slice());
            let mut calls = 0usize;
            let bound = stream.len() / 512 + 4;
            loop {
                calls += 1;
                prop_assert!(calls <= 2 * bound, "{calls} calls on {} bytes", stream.len());
                match reader.next_entry() {
                    Ok(Some(_)) => {
                        let _ = std::io::copy(&mut reader.data(), &mut std::io::sink());
                    }
                    Ok(None) => break,
                    Err(ReadError::Io(_)) => break,
                    Err(_) => {}
                }
            }
        }

        /// Damaged ranges (zeros) cost only the entries whose headers they cover: every entry
        /// whose header and data lie outside the damage is read intact.
        #[test]
        fn damage_loses_only_the_entries_it_covers(
            specs in proptest::collection::vec(spec(), 2..8),
            start in any::<prop::sample::Index>(),
            length in 1usize..3000,
        ) {
            let clean = write_stream(&specs);
            let expected = read_all(&clean).unwrap();
            let from = start.index(clean.len());
            let to = (from + length).min(clean.len());
            let mut stream = clean.clone();
            stream[from..to].fill(0);
            let damage = Damage::default();
            damage.add(from as u64..to as u64);
            let mut reader = PaxReader::with_damage(stream.as_slice(), damage);
            let mut got = Vec::new();
            let mut calls = 0;
            loop {
                calls += 1;
                prop_assert!(calls < 100);
                match reader.next_entry() {
                    Ok(Some(entry)) => {
                        let mut data = Vec::new();
                        reader.data().read_to_end(&mut data).unwrap();
                        got.push((entry, data));
                    }
                    Ok(None) => break,
                    Err(ReadError::Lost { .. }) => {}
                    Err(err) => prop_assert!(false, "unexpected {err}"),
                }
            }
            // Each entry spans from its header to the next entry's header.
            let mut bounds: Vec<u64> = expected.iter().map(|(entry, _)| entry.offset).collect();
            bounds.push(clean.len() as u64);
            for (i, (entry, data)) in expected.iter().enumerate() {
                let span = bounds[i]..bounds[i + 1];
                let touched = span.start < to as u64 && (from as u64) < span.end;
                if !touched {
                    prop_assert!(
                        got.iter().any(|(e, d)| e == entry && d == data),
                        "entry {} at {} lost though outside the damage {from}..{to}",
                        i, entry.offset
                    );
                }
            }
        }
    }

    #[test]
    fn records_are_split_by_length_not_by_newline() {
        let records = parse_records(b"15 path=a\nb=c\n\n10 uid=42\n", 0).unwrap();
        assert_eq!(records[0], (b"path".to_vec(), b"a\nb=c\n".to_vec()));
        assert_eq!(records[1], (b"uid".to_vec(), b"42".to_vec()));
        for bad in [
            &b"5 a=b\n"[..],
            b"x path=a\n",
            b"12 path=a\n",
            b"9 =value\n",
            b"8 path\n\n",
        ] {
            assert!(
                parse_records(bad, 0).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn attribute_names_that_are_not_plain_text_are_percent_encoded() {
        for name in [
            &b"user.a=b"[..],
            b"user.%41",
            b"user.\n\xff\x01",
            b"user.plain",
        ] {
            let key = xattr_key(name);
            let encoded = key.strip_prefix("CHUNKSTORE.xattr.");
            assert_eq!(encoded.is_some(), name != b"user.plain", "{key}");
            if let Some(encoded) = encoded {
                assert!(!encoded.contains('='));
                assert_eq!(percent_decode(encoded.as_bytes()).unwrap(), name);
            }
        }
    }
}
