//! The file metadata cache of incremental backups: for each large regular file of the last
//! backup of a group (and archive), its metadata and the chunks its contents became. A file
//! whose metadata is unchanged, and whose chunks the previous snapshot's index lists, is
//! archived by reusing those chunks without reading it (as restic's and borg's files caches and
//! PBS's metadata change detection do).
//!
//! A file counts as unchanged when its size, mtime and ctime (both with nanoseconds), inode and
//! device are the same. Files modified within [`RACY_SECONDS`] of the backup's start are not
//! cached: a write in the same clock tick would not change the mtime.

use std::collections::{HashMap, HashSet};
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use store::digest::Digest;

/// Files at least this large are cut into chunks of their own and cached; smaller ones stay in
/// the shared stream.
pub const FILE_CUT_MIN: u64 = 1 << 20;

/// A file modified this recently (seconds before the backup started) is not cached.
pub const RACY_SECONDS: i64 = 1;

/// What identifies an unchanged file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    inode: (u64, u64),
}

impl Stamp {
    /// The stamp of a file's metadata.
    pub fn of(meta: &Metadata) -> Stamp {
        Stamp {
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            inode: (meta.dev(), meta.ino()),
        }
    }

    fn to_json(&self) -> Value {
        json!([
            self.size,
            self.mtime.0,
            self.mtime.1,
            self.ctime.0,
            self.ctime.1,
            self.inode.0,
            self.inode.1
        ])
    }

    fn from_json(value: &Value) -> Option<Stamp> {
        let n: Vec<i64> = value
            .as_array()?
            .iter()
            .map(Value::as_i64)
            .collect::<Option<_>>()?;
        let [size, ms, mn, cs, cn, dev, ino] = n[..] else {
            return None;
        };
        Some(Stamp {
            size: u64::try_from(size).ok()?,
            mtime: (ms, mn),
            ctime: (cs, cn),
            inode: (dev as u64, ino as u64),
        })
    }
}

/// The chunks (digest, length) of one file's contents.
pub type FileChunks = Vec<(Digest, u64)>;

/// The cache of one group and archive: read from the last backup, written by this one.
#[derive(Debug, Default)]
pub struct FileCache {
    old: HashMap<String, (Stamp, FileChunks)>,
    known: HashSet<Digest>,
    started: i64,
}

impl FileCache {
    /// The cache loaded from `path` (empty if missing or unreadable), usable with the chunks
    /// `known` (those of the previous snapshot's index) by a backup that started at `started`.
    pub fn load(path: Option<&Path>, known: HashSet<Digest>, started: i64) -> FileCache {
        let old = path
            .and_then(|path| std::fs::read(path).ok())
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .and_then(|value| value.as_object().cloned())
            .map(|files| {
                files
                    .iter()
                    .filter_map(|(name, entry)| Some((name.clone(), parse_entry(entry)?)))
                    .collect()
            })
            .unwrap_or_default();
        FileCache {
            old,
            known,
            started,
        }
    }

    /// The chunks of `name` if it is unchanged since the last backup and they are all known.
    pub fn lookup(&self, name: &str, stamp: &Stamp) -> Option<FileChunks> {
        let (old_stamp, chunks) = self.old.get(name)?;
        let whole: u64 = chunks.iter().map(|(_, len)| len).sum();
        let usable = old_stamp == stamp
            && whole == stamp.size
            && chunks.iter().all(|(digest, _)| self.known.contains(digest));
        usable.then(|| chunks.clone())
    }

    /// May a file with this stamp be cached (not modified too recently)?
    pub fn cacheable(&self, stamp: &Stamp) -> bool {
        stamp.mtime.0 < self.started - RACY_SECONDS && stamp.ctime.0 < self.started - RACY_SECONDS
    }
}

fn parse_entry(entry: &Value) -> Option<(Stamp, FileChunks)> {
    let stamp = Stamp::from_json(entry.get("stamp")?)?;
    let chunks = entry
        .get("chunks")?
        .as_array()?
        .iter()
        .map(|pair| {
            let digest = Digest::from_hex(pair.get(0)?.as_str()?)?;
            Some((digest, pair.get(1)?.as_u64()?))
        })
        .collect::<Option<_>>()?;
    Some((stamp, chunks))
}

/// The entries of the cache a backup writes: name → stamp and chunks.
#[derive(Debug, Default)]
pub struct NewCache {
    files: serde_json::Map<String, Value>,
}

impl NewCache {
    /// Records a file.
    pub fn insert(&mut self, name: String, stamp: &Stamp, chunks: &[(Digest, u64)]) {
        let chunks: Vec<Value> = chunks
            .iter()
            .map(|(digest, len)| json!([digest.to_hex(), len]))
            .collect();
        self.files
            .insert(name, json!({ "stamp": stamp.to_json(), "chunks": chunks }));
    }

    /// Writes the cache to `path` (temporary file, then rename).
    pub fn save(self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let temp = path.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&temp, serde_json::to_vec(&Value::Object(self.files))?)?;
        std::fs::rename(&temp, path)
    }
}

/// Where the cache of `group`'s archive `archive` in the datastore `store` lives: under
/// `dir` (default `$XDG_CACHE_HOME/chunkstore` or `~/.cache/chunkstore`).
pub fn cache_path(dir: Option<&Path>, store: &Path, group: &str, archive: &str) -> Option<PathBuf> {
    let dir = match dir {
        Some(dir) => dir.to_owned(),
        None => match std::env::var_os("XDG_CACHE_HOME") {
            Some(base) if !base.is_empty() => PathBuf::from(base).join("chunkstore"),
            _ => PathBuf::from(std::env::var_os("HOME")?).join(".cache/chunkstore"),
        },
    };
    let store = std::fs::canonicalize(store).unwrap_or_else(|_| store.to_owned());
    let key = format!("{}\n{group}\n{archive}", store.display());
    Some(dir.join(format!(
        "files-{}.json",
        &Digest::of(key.as_bytes()).to_hex()[..32]
    )))
}
