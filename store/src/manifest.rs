//! The snapshot manifest `index.json.blob`: which archives a snapshot has, and their checksums.
//!
//! The manifest is a [blob] (uncompressed) whose payload is pretty-printed JSON
//! with kebab-case field names, as in PBS (example in `docs/format.md`):
//!
//! * `backup-type`, `backup-id`, `backup-time` name the snapshot ([`crate::backup_info`]);
//! * `files` lists every archive with its `size` and `csum` ([`FileInfo`]);
//! * `unprotected` is a free JSON object that the server changes after the backup: the
//!   `verify_state` of the last verify, the snapshot `notes`, the `chunk_upload_stats`.
//!
//! A snapshot counts as finished exactly when its manifest exists, so the manifest is written
//! last by a backup and always published atomically: [`Manifest::store`] writes
//! `index.json.blob.tmp_<id>` and renames it over `index.json.blob`.
//!
//! # Durability
//!
//! At the durable sync levels ([`SyncLevel::File`] and [`SyncLevel::Filesystem`]) the temporary
//! file is fsynced before the rename and the snapshot directory after it, so a crash leaves the
//! old manifest or the complete new one, and a manifest that has been reported stored survives
//! a crash. A failed fsync fails the store and is never retried: before the rename the temporary
//! file is removed and the old manifest stays; after it the caller learns that the new manifest
//! may not be durable. The order of a whole backup is in [`crate::datastore::backup`].
//!
//! # Design
//!
//! * The JSON is mapped through private raw structs, then validated into typed fields
//!   ([`BackupType`], [`BackupId`], [`BackupTime`], [`Digest`]); every failure is a typed
//!   [`ManifestError`], never a panic. Unknown top-level or per-file fields are rejected (this
//!   store writes none, and dropping one silently on rewrite would lose data); keys inside
//!   `unprotected` are free, and kept as they are.
//! * Validation runs in both directions: [`Manifest::to_blob`] refuses to write a manifest that
//!   [`Manifest::from_blob`] would refuse to read.
//! * `files[].size` is the size of the indexed data for an index (`index_bytes`, as
//!   [`crate::index::ClosedIndex`] reports it) and the file size for a blob; `files[].csum` is
//!   the index checksum (`index_csum`) for an index and the SHA-256 of the whole file for a
//!   blob.
//!
//! # Locking
//!
//! This module only encodes, decodes, loads and stores. Whoever calls [`Manifest::store`] on an
//! existing snapshot must hold that snapshot's manifest lock (read-modify-write goes through
//! the store's `update_manifest`), or two updates could each overwrite the other's change.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::backup_info::{BackupDir, BackupGroup, BackupId, BackupTime, BackupType, NameError};
use crate::blob::{self, BlobError};
use crate::chunk_store::SyncLevel;
use crate::digest::Digest;
use crate::index::{ArchiveKind, ClosedIndex};
use crate::publish::{Durability, IoError, publish_file};
use crate::world::World;

/// File name of the manifest in a snapshot directory.
pub const MANIFEST_BLOB_NAME: &str = "index.json.blob";

/// `unprotected` key of the last verify result ([`SnapshotVerifyState`]).
pub const VERIFY_STATE_KEY: &str = "verify_state";

/// `unprotected` key of the snapshot notes (a string).
pub const NOTES_KEY: &str = "notes";

/// `unprotected` key of the upload counters of the backup ([`ChunkUploadStats`]).
pub const CHUNK_UPLOAD_STATS_KEY: &str = "chunk_upload_stats";

/// Why a manifest could not be built, read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The world failed an operation.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The blob around the JSON is damaged (or the JSON is too large for a blob).
    #[error("manifest blob: {0}")]
    Blob(#[from] BlobError),
    /// The payload is not JSON of the manifest's shape (syntax, missing, mistyped or unknown
    /// field).
    #[error("manifest JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The backup type, id or time is invalid.
    #[error("manifest names an invalid snapshot: {0}")]
    Name(#[from] NameError),
    /// A file's `csum` is not 64 hex digits.
    #[error("file {filename:?} has a csum that is not 64 hex digits: {csum:?}")]
    BadCsum {
        /// The file.
        filename: String,
        /// The text found.
        csum: String,
    },
    /// A file name is not an archive name (`*.fidx`, `*.didx`, `*.blob`), or is the
    /// manifest's own name.
    #[error("{filename:?} is not an archive name a manifest may list")]
    BadFilename {
        /// The name found.
        filename: String,
    },
    /// A file is listed twice.
    #[error("file {filename:?} is listed twice")]
    DuplicateFile {
        /// The name found twice.
        filename: String,
    },
    /// A known `unprotected` key holds a value of the wrong shape.
    #[error("unprotected.{key} has an unexpected shape: {source}")]
    BadUnprotected {
        /// The key.
        key: &'static str,
        /// What did not match.
        #[source]
        source: serde_json::Error,
    },
}

impl ManifestError {
    fn io<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> ManifestError + 'p {
        move |source| ManifestError::Io(IoError::new(op, path, source))
    }

    /// Did the world report the manifest (or its directory) as missing? A snapshot without a
    /// manifest is unfinished, not broken.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ManifestError::Io(err) if err.kind() == io::ErrorKind::NotFound)
    }
}

/// One archive listed in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Archive file name in the snapshot directory (`*.fidx`, `*.didx`, `*.blob`).
    pub filename: String,
    /// Indexed data size for an index, file size for a blob.
    pub size: u64,
    /// `index_csum` for an index, SHA-256 of the file for a blob.
    pub csum: Digest,
}

impl FileInfo {
    /// A checked entry: `filename` must be an archive name other than the manifest's own.
    pub fn new(filename: &str, size: u64, csum: Digest) -> Result<FileInfo, ManifestError> {
        check_filename(filename)?;
        Ok(FileInfo {
            filename: filename.to_owned(),
            size,
            csum,
        })
    }

    /// The entry of an index a writer has just published.
    pub fn for_index(closed: &ClosedIndex) -> Result<FileInfo, ManifestError> {
        let filename = closed
            .path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("");
        FileInfo::new(filename, closed.index_bytes, closed.csum)
    }

    /// The entry of a blob file whose complete bytes are `blob`.
    pub fn for_blob(filename: &str, blob: &[u8]) -> Result<FileInfo, ManifestError> {
        FileInfo::new(filename, blob.len() as u64, Digest::of(blob))
    }

    /// What the name says the file is.
    pub fn kind(&self) -> Option<ArchiveKind> {
        ArchiveKind::from_name(&self.filename)
    }
}

/// Result of the last verify of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyState {
    /// Every chunk was found and intact.
    Ok,
    /// Something was missing or corrupt.
    Failed,
}

/// `unprotected.verify_state`: the outcome and the id of the job that verified.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SnapshotVerifyState {
    /// The outcome.
    pub state: VerifyState,
    /// Id of the verify job (task id), free text.
    pub upid: String,
}

/// `unprotected.chunk_upload_stats`: what the backup uploaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChunkUploadStats {
    /// Chunks uploaded (duplicates included).
    pub count: u64,
    /// Plain bytes uploaded.
    pub size: u64,
    /// Encoded bytes uploaded.
    pub compressed_size: u64,
    /// Uploaded chunks that were already stored.
    pub duplicates: u64,
}

/// The manifest of one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Type of the snapshot's group.
    pub backup_type: BackupType,
    /// Id of the snapshot's group.
    pub backup_id: BackupId,
    /// Start time of the snapshot.
    pub backup_time: BackupTime,
    /// The archives, in upload order; names are unique.
    pub files: Vec<FileInfo>,
    /// Server-side data, outside what the client vouches for.
    pub unprotected: Map<String, Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct RawManifestOut<'a> {
    backup_type: &'a str,
    backup_id: &'a str,
    backup_time: i64,
    files: Vec<RawFileInfo>,
    unprotected: &'a Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawManifestIn {
    backup_type: String,
    backup_id: String,
    backup_time: i64,
    files: Vec<RawFileInfo>,
    #[serde(default)]
    unprotected: Map<String, Value>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawFileInfo {
    filename: String,
    size: u64,
    csum: String,
}

impl Manifest {
    /// An empty manifest of the snapshot `dir`.
    pub fn new(dir: &BackupDir) -> Manifest {
        Manifest {
            backup_type: dir.group.ty,
            backup_id: dir.group.id.clone(),
            backup_time: dir.time,
            files: Vec::new(),
            unprotected: Map::new(),
        }
    }

    /// The snapshot this manifest belongs to.
    pub fn backup_dir(&self) -> BackupDir {
        BackupDir::new(
            BackupGroup::new(self.backup_type, self.backup_id.clone()),
            self.backup_time,
        )
    }

    /// Appends a file; [`ManifestError::DuplicateFile`] if its name is listed already.
    pub fn add_file(&mut self, file: FileInfo) -> Result<(), ManifestError> {
        check_filename(&file.filename)?;
        if self.file(&file.filename).is_some() {
            return Err(ManifestError::DuplicateFile {
                filename: file.filename,
            });
        }
        self.files.push(file);
        Ok(())
    }

    /// The entry of `filename`, if listed.
    pub fn file(&self, filename: &str) -> Option<&FileInfo> {
        self.files.iter().find(|file| file.filename == filename)
    }

    /// Checks what the types cannot: file names are archive names and unique.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let mut seen = BTreeSet::new();
        for file in &self.files {
            check_filename(&file.filename)?;
            if !seen.insert(file.filename.as_str()) {
                return Err(ManifestError::DuplicateFile {
                    filename: file.filename.clone(),
                });
            }
        }
        Ok(())
    }

    /// The manifest as pretty-printed JSON.
    pub fn to_json(&self) -> Result<Vec<u8>, ManifestError> {
        self.validate()?;
        let files = self
            .files
            .iter()
            .map(|file| RawFileInfo {
                filename: file.filename.clone(),
                size: file.size,
                csum: file.csum.to_hex(),
            })
            .collect();
        let raw = RawManifestOut {
            backup_type: self.backup_type.as_str(),
            backup_id: self.backup_id.as_str(),
            backup_time: self.backup_time.epoch(),
            files,
            unprotected: &self.unprotected,
        };
        Ok(serde_json::to_vec_pretty(&raw)?)
    }

    /// Parses and validates manifest JSON.
    pub fn from_json(json: &[u8]) -> Result<Manifest, ManifestError> {
        let raw: RawManifestIn = serde_json::from_slice(json)?;
        let mut files = Vec::with_capacity(raw.files.len());
        for file in raw.files {
            let Some(csum) = Digest::from_hex(&file.csum) else {
                return Err(ManifestError::BadCsum {
                    filename: file.filename,
                    csum: file.csum,
                });
            };
            files.push(FileInfo {
                filename: file.filename,
                size: file.size,
                csum,
            });
        }
        let manifest = Manifest {
            backup_type: BackupType::parse(&raw.backup_type)?,
            backup_id: BackupId::parse(&raw.backup_id)?,
            backup_time: BackupTime::from_epoch(raw.backup_time)?,
            files,
            unprotected: raw.unprotected,
        };
        manifest.validate()?;
        Ok(manifest)
    }

    /// The bytes of `index.json.blob`: the JSON in an uncompressed blob.
    pub fn to_blob(&self) -> Result<Vec<u8>, ManifestError> {
        Ok(blob::encode(&self.to_json()?)?)
    }

    /// Parses the bytes of `index.json.blob`.
    pub fn from_blob(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        Manifest::from_json(&blob::decode(bytes)?)
    }

    /// Reads and parses the manifest file at `path` (usually
    /// `<snapshot>/`[`MANIFEST_BLOB_NAME`]). No lock is needed: the file is only ever replaced
    /// by an atomic rename.
    pub fn load<W: World>(world: &W, path: &Path) -> Result<Manifest, ManifestError> {
        Manifest::from_blob(
            &world
                .read_file(path)
                .map_err(ManifestError::io("read", path))?,
        )
    }

    /// Reads `<snapshot_dir>/index.json.blob`.
    pub fn load_from_dir<W: World>(
        world: &W,
        snapshot_dir: &Path,
    ) -> Result<Manifest, ManifestError> {
        Manifest::load(world, &snapshot_dir.join(MANIFEST_BLOB_NAME))
    }

    /// Publishes this manifest as `<snapshot_dir>/index.json.blob`: writes
    /// `index.json.blob.tmp_<16 hex>`, fsyncs it (at [`SyncLevel::File`] and
    /// [`SyncLevel::Filesystem`]), renames it over the manifest, then fsyncs the directory (at
    /// the same levels). On failure before the
    /// rename the temporary file is removed (best effort) and the old manifest, if any, is
    /// untouched. Returns the manifest's path.
    ///
    /// The caller holds the snapshot's manifest lock (see the module documentation): within the
    /// crate only; others go through [`crate::datastore::Datastore::store_manifest_locked`] or
    /// [`crate::datastore::Datastore::update_manifest`].
    pub(crate) fn store<W: World>(
        &self,
        world: &W,
        snapshot_dir: &Path,
        sync_level: SyncLevel,
    ) -> Result<PathBuf, ManifestError> {
        let blob = self.to_blob()?;
        // A manifest is the publication point of a snapshot: at both durable levels its data
        // must be on disk before its name, and its name before success is reported.
        let durability = Durability::when(sync_level != SyncLevel::None);
        Ok(
            publish_file(world, snapshot_dir, MANIFEST_BLOB_NAME, &blob, durability)
                .map_err(IoError::from)?,
        )
    }

    /// `unprotected.verify_state`, if set.
    pub fn verify_state(&self) -> Result<Option<SnapshotVerifyState>, ManifestError> {
        self.unprotected_entry(VERIFY_STATE_KEY)
    }

    /// Sets `unprotected.verify_state`.
    pub fn set_verify_state(&mut self, state: &SnapshotVerifyState) {
        self.set_unprotected_entry(VERIFY_STATE_KEY, state);
    }

    /// `unprotected.notes`, if set.
    pub fn notes(&self) -> Result<Option<&str>, ManifestError> {
        let Some(value) = self.unprotected.get(NOTES_KEY) else {
            return Ok(None);
        };
        <&str>::deserialize(value)
            .map(Some)
            .map_err(|source| ManifestError::BadUnprotected {
                key: NOTES_KEY,
                source,
            })
    }

    /// Sets (`Some`) or removes (`None`) `unprotected.notes`.
    pub fn set_notes(&mut self, notes: Option<&str>) {
        match notes {
            Some(notes) => {
                self.unprotected
                    .insert(NOTES_KEY.to_owned(), Value::String(notes.to_owned()));
            }
            None => {
                self.unprotected.remove(NOTES_KEY);
            }
        }
    }

    /// `unprotected.chunk_upload_stats`, if set.
    pub fn chunk_upload_stats(&self) -> Result<Option<ChunkUploadStats>, ManifestError> {
        self.unprotected_entry(CHUNK_UPLOAD_STATS_KEY)
    }

    /// Sets `unprotected.chunk_upload_stats`.
    pub fn set_chunk_upload_stats(&mut self, stats: &ChunkUploadStats) {
        self.set_unprotected_entry(CHUNK_UPLOAD_STATS_KEY, stats);
    }

    fn unprotected_entry<T: serde::de::DeserializeOwned>(
        &self,
        key: &'static str,
    ) -> Result<Option<T>, ManifestError> {
        let Some(value) = self.unprotected.get(key) else {
            return Ok(None);
        };
        T::deserialize(value)
            .map(Some)
            .map_err(|source| ManifestError::BadUnprotected { key, source })
    }

    fn set_unprotected_entry<T: Serialize>(&mut self, key: &'static str, value: &T) {
        // Our plain structs of strings and integers always convert; `Null` is unreachable.
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.unprotected.insert(key.to_owned(), value);
    }
}

fn check_filename(filename: &str) -> Result<(), ManifestError> {
    if ArchiveKind::from_name(filename).is_none() || filename == MANIFEST_BLOB_NAME {
        return Err(ManifestError::BadFilename {
            filename: filename.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let dir = BackupDir::from_relative_path("vm/100/2024-01-02T03:04:05Z").expect("valid dir");
        let mut manifest = Manifest::new(&dir);
        let disk = FileInfo::new("drive-scsi0.img.fidx", 1 << 30, Digest::of(b"disk"));
        manifest
            .add_file(disk.expect("valid file"))
            .expect("first file");
        let conf = FileInfo::for_blob("qemu-server.conf.blob", b"blob bytes").expect("valid file");
        manifest.add_file(conf).expect("second file");
        manifest
    }

    fn json_of(manifest: &Manifest) -> Value {
        serde_json::from_slice(&manifest.to_json().expect("encode")).expect("valid JSON")
    }

    fn from_value(value: &Value) -> Result<Manifest, ManifestError> {
        let json = serde_json::to_vec(value).expect("re-encode");
        Manifest::from_blob(&blob::encode(&json).expect("small"))
    }

    #[test]
    fn round_trip_and_field_names() {
        let mut manifest = sample();
        manifest.set_notes(Some("first line\nsecond"));
        let state = SnapshotVerifyState {
            state: VerifyState::Failed,
            upid: "job-7".to_owned(),
        };
        manifest.set_verify_state(&state);
        let stats = ChunkUploadStats {
            count: 3,
            size: 30,
            compressed_size: 20,
            duplicates: 1,
        };
        manifest.set_chunk_upload_stats(&stats);
        manifest
            .unprotected
            .insert("other".to_owned(), Value::from(42));
        let blob = manifest.to_blob().expect("encode");
        let decoded = Manifest::from_blob(&blob).expect("decode");
        assert_eq!(decoded, manifest);
        assert_eq!(decoded.verify_state().expect("shape"), Some(state));
        assert_eq!(decoded.notes().expect("shape"), Some("first line\nsecond"));
        assert_eq!(decoded.chunk_upload_stats().expect("shape"), Some(stats));
        assert_eq!(
            decoded.backup_dir().to_string(),
            "vm/100/2024-01-02T03:04:05Z"
        );
        let json = json_of(&manifest);
        assert_eq!(json["backup-type"], "vm");
        assert_eq!(json["backup-id"], "100");
        assert_eq!(json["backup-time"], 1_704_164_645);
        assert_eq!(json["files"][0]["filename"], "drive-scsi0.img.fidx");
        assert_eq!(json["files"][0]["size"], 1u64 << 30);
        assert_eq!(json["files"][0]["csum"], Digest::of(b"disk").to_hex());
        assert_eq!(json["unprotected"]["verify_state"]["state"], "failed");
        assert_eq!(json["unprotected"]["verify_state"]["upid"], "job-7");
        assert_eq!(
            json["unprotected"]["chunk_upload_stats"]["compressed_size"],
            20
        );
        manifest.set_notes(None);
        assert_eq!(manifest.notes().expect("shape"), None);
        let ok = SnapshotVerifyState {
            state: VerifyState::Ok,
            upid: String::new(),
        };
        manifest.set_verify_state(&ok);
        assert_eq!(
            json_of(&manifest)["unprotected"]["verify_state"]["state"],
            "ok"
        );
    }

    #[test]
    fn missing_unprotected_is_empty() {
        let mut json = json_of(&sample());
        json.as_object_mut().expect("object").remove("unprotected");
        let manifest = from_value(&json).expect("decode");
        assert!(manifest.unprotected.is_empty());
        assert_eq!(manifest.verify_state().expect("shape"), None);
    }

    #[test]
    fn blob_and_json_errors() {
        let blob = sample().to_blob().expect("encode");
        assert!(matches!(
            Manifest::from_blob(&blob[..5]),
            Err(ManifestError::Blob(_))
        ));
        let mut flipped = blob.clone();
        *flipped.last_mut().expect("non-empty") ^= 1;
        assert!(matches!(
            Manifest::from_blob(&flipped),
            Err(ManifestError::Blob(_))
        ));
        for payload in [
            &b""[..],
            b"[]",
            b"{",
            b"null",
            b"{\"backup-type\":\"vm\"}",
            b"\xff",
        ] {
            let blob = blob::encode(payload).expect("small");
            assert!(
                matches!(Manifest::from_blob(&blob), Err(ManifestError::Json(_))),
                "{payload:?}"
            );
        }
        // Truncating the JSON inside an intact blob.
        let json = sample().to_json().expect("encode");
        for len in 0..json.len() {
            let blob = blob::encode(&json[..len]).expect("small");
            assert!(Manifest::from_blob(&blob).is_err(), "prefix {len}");
        }
    }

    #[test]
    fn field_validation() {
        let good = json_of(&sample());
        let with = |edit: &dyn Fn(&mut Value)| {
            let mut json = good.clone();
            edit(&mut json);
            from_value(&json)
        };
        assert!(matches!(
            with(&|json| json["backup-type"] = "qemu".into()),
            Err(ManifestError::Name(NameError::UnknownBackupType { .. }))
        ));
        assert!(matches!(
            with(&|json| json["backup-id"] = "../x".into()),
            Err(ManifestError::Name(NameError::BackupIdBadChar { .. }))
        ));
        assert!(matches!(
            with(&|json| json["backup-time"] = i64::MAX.into()),
            Err(ManifestError::Name(NameError::EpochOutOfRange { .. }))
        ));
        assert!(matches!(
            with(&|json| json["backup-time"] = "2024-01-02T03:04:05Z".into()),
            Err(ManifestError::Json(_))
        ));
        for csum in ["", "ab", &"g".repeat(64), &"a".repeat(63), &"a".repeat(65)] {
            assert!(matches!(
                with(&|json| json["files"][0]["csum"] = csum.into()),
                Err(ManifestError::BadCsum { csum: c, .. }) if c == csum
            ));
        }
        for filename in ["a.tmp_fidx", "x", "../a.fidx", "index.json.blob", ""] {
            assert!(matches!(
                with(&|json| json["files"][0]["filename"] = filename.into()),
                Err(ManifestError::BadFilename { .. })
            ));
        }
        assert!(matches!(
            with(&|json| json["files"][1]["filename"] = "drive-scsi0.img.fidx".into()),
            Err(ManifestError::DuplicateFile { .. })
        ));
        assert!(matches!(
            with(&|json| json["files"][0]["size"] = (-1).into()),
            Err(ManifestError::Json(_))
        ));
        assert!(matches!(
            with(&|json| json["signature"] = Value::Null),
            Err(ManifestError::Json(_))
        ));
        assert!(matches!(
            with(&|json| json["files"][0]["crypt-mode"] = "none".into()),
            Err(ManifestError::Json(_))
        ));
    }

    #[test]
    fn unprotected_shapes_are_checked() {
        let mut manifest = sample();
        manifest
            .unprotected
            .insert(VERIFY_STATE_KEY.to_owned(), Value::from("ok"));
        manifest
            .unprotected
            .insert(NOTES_KEY.to_owned(), Value::from(7));
        manifest
            .unprotected
            .insert(CHUNK_UPLOAD_STATS_KEY.to_owned(), Value::from(-1));
        // Free-form keys survive encoding; the typed accessors report the wrong shapes.
        let decoded = Manifest::from_blob(&manifest.to_blob().expect("encode")).expect("decode");
        assert!(matches!(
            decoded.verify_state(),
            Err(ManifestError::BadUnprotected {
                key: "verify_state",
                ..
            })
        ));
        assert!(matches!(
            decoded.notes(),
            Err(ManifestError::BadUnprotected { key: "notes", .. })
        ));
        assert!(matches!(
            decoded.chunk_upload_stats(),
            Err(ManifestError::BadUnprotected {
                key: "chunk_upload_stats",
                ..
            })
        ));
        let mut bad_state = sample();
        let state = serde_json::json!({ "state": "maybe", "upid": "x" });
        bad_state
            .unprotected
            .insert(VERIFY_STATE_KEY.to_owned(), state);
        assert!(matches!(
            bad_state.verify_state(),
            Err(ManifestError::BadUnprotected { .. })
        ));
    }

    #[test]
    fn writing_refuses_what_reading_refuses() {
        let mut manifest = sample();
        let duplicate = manifest.files[0].clone();
        assert!(matches!(
            manifest.add_file(duplicate.clone()),
            Err(ManifestError::DuplicateFile { .. })
        ));
        assert!(matches!(
            FileInfo::new("index.json.blob", 1, Digest::of(b"")),
            Err(ManifestError::BadFilename { .. })
        ));
        manifest.files.push(duplicate);
        assert!(matches!(
            manifest.to_blob(),
            Err(ManifestError::DuplicateFile { .. })
        ));
        manifest.files.pop();
        manifest.files[0].filename = "x.tmp_didx".to_owned();
        assert!(matches!(
            manifest.to_blob(),
            Err(ManifestError::BadFilename { .. })
        ));
    }
}
