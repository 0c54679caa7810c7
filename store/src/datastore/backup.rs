//! Backup sessions: writing a new snapshot, plus group ownership and notes.
//!
//! A backup writes one new snapshot `<type>/<id>/<time>/` of a group. It runs as a
//! [`BackupSession`], opened by [`Datastore::start_backup`] and ended by
//! [`BackupSession::finish`], [`BackupSession::abort`] or by dropping it. The client function
//! [`backup_snapshot`] runs a whole session from in-memory archives ([`ArchiveSpec`]).
//!
//! # Lock sequence of `start_backup`
//!
//! Every lock is tried without waiting, in the store's lock order (group → snapshot → process
//! locker), so contention is an error ([`Error::is_contention`]), never a hang:
//!
//! 1. `mkdir <type>/<id>`, remembering whether this call created the group.
//! 2. **Group lock**, exclusive: one writer per group (invariant I5). If it is busy, a group
//!    directory this call created is removed again while it is empty (best effort, without
//!    the lock). Under the lock the group directory is checked again (a forget or a start that
//!    lost the lock may have removed the empty group in between) and made again if needed; a
//!    group directory with neither an `owner` file nor a snapshot directory (whoever made it,
//!    or emptied by a crash before its owner file was durable) is claimed as if this call had
//!    created it. If the directory vanishes before the owner file is in, it is made again.
//! 3. A group this call created or claimed gets its `owner` file (`create_new`, one line); if
//!    the backup then fails before its snapshot exists, the group is removed again, under the
//!    lock. That includes a failed owner write (ENOSPC, EIO): a group left with no owner or an
//!    empty owner file would refuse every later backup (upstream B37). The recorded
//!    owner must equal the caller ([`Error::OwnerMismatch`]); a group without a recorded owner
//!    takes no backups ([`Error::NoOwner`]).
//! 4. **Base:** the newest *finished* snapshot (one with a manifest). The new time must be
//!    strictly newer than it ([`Error::BackupTimeNotNewer`]). It becomes the base unless its
//!    manifest says the last verify failed, or the manifest cannot be loaded (vanished,
//!    unreadable, corrupt): then there is no base and the client uploads every chunk, which is
//!    always safe. A `verify_state` of an unexpected shape counts as not failed.
//! 5. **Base lock**, shared: the base cannot be forgotten or pruned while the session runs
//!    (I4, I6). The base is checked to exist after locking, since a lock can be taken on a
//!    snapshot forgotten after the listing ([`Error::BaseVanished`]).
//! 6. **Snapshot lock**, exclusive, on the new snapshot, then `mkdir` of its directory
//!    ([`Error::SnapshotExists`] if it exists). Locking first means nobody can lock, read or
//!    forget the directory between its creation and our lock.
//! 7. **Process locker**, shared, held for the whole session and stamped with its start time,
//!    so a GC keeps every chunk this session uploads or touches (I2, race B19). Busy only if
//!    a GC of another process holds it exclusively.
//!
//! # The session
//!
//! * [`BackupSession::previous_index`] opens the base's index of an archive and registers all
//!   its digests (with their sizes) as *known*; [`BackupSession::upload_chunk`] inserts a
//!   chunk through the chunk store (which touches an existing copy, race B4) and registers it
//!   too. Only known digests may be appended to an index ([`Error::Protocol`] otherwise).
//!   Known chunks reused from the base are neither touched nor stat'ed (B24): the shared base
//!   lock and GC's newest-first marking keep them.
//! * Index writers ([`BackupSession::create_fixed_index`],
//!   [`BackupSession::create_dynamic_index`]) publish `<archive>` by temporary file and rename
//!   at [`BackupSession::close_index`]; blobs ([`BackupSession::add_blob`]) are CRC-checked
//!   and published the same way. A fixed index is assembled in memory and its temporary file
//!   is written at close, since its total size is only known then.
//! * [`BackupSession::finish`]: all writers closed and at least one file written; the client's
//!   manifest must name this snapshot and list exactly the files written (names, sizes,
//!   checksums). Everything written is made durable (see "Durability" below) → the manifest
//!   lock is taken (a busy wait here fails the backup before anything is published) → the
//!   manifest is stored as `index.json.blob` (from then on the snapshot lists as finished) →
//!   the base must still exist ([`Error::BaseVanished`], race B3) → the base lock and the
//!   process-locker guard are dropped → `update_manifest_locked` records the
//!   `chunk_upload_stats` under the same manifest lock, which is released then (a second,
//!   bounded wait for it after publication could fail the backup and remove a snapshot other
//!   clients have seen: `Bug::FinishRelocksManifestForStats`) →
//!   the snapshot and group locks are released *before* success is reported, so a following
//!   backup of the same group can start at once (B15).
//! * Any failure of `finish`, an explicit `abort`, or dropping an unfinished session removes
//!   the snapshot directory (its manifest first, so a partial removal never leaves a snapshot
//!   that looks finished) while the session still holds the snapshot and group locks; it also
//!   removes the group if no snapshot is left in it. Ownership of the locks is never given up
//!   and re-taken through a second handle (race B23).
//!
//! # Durability
//!
//! The manifest is the publication point: a snapshot is finished exactly when it exists. So
//! at the durable sync levels every file it names is durable before it is published, and it is
//! durable itself before `finish` reports success:
//!
//! | step | [`SyncLevel::File`] | [`SyncLevel::Filesystem`] |
//! |---|---|---|
//! | chunk insert | fsync temp file → rename → fsync prefix dir | rename only |
//! | index close, blob | fsync temp file → rename → fsync snapshot dir | rename only |
//! | owner file of a new group | fsync file → fsync group dir | the same |
//! | before the manifest | fsync group dir, type dir, base dir | one `syncfs` |
//! | manifest | fsync temp file → rename → fsync snapshot dir | the same |
//! | `chunk_upload_stats` update | fsync temp file → rename → fsync snapshot dir | the same |
//!
//! With [`SyncLevel::None`] nothing is fsynced; a process crash (the kernel survives) loses
//! nothing, a power loss may leave finished snapshots with damaged files.
//!
//! Every fsync error fails `finish` with the typed I/O error and is never retried: Linux
//! reports a writeback error once and then forgets the lost data, so a second fsync that
//! succeeds proves nothing. The failed session then removes its snapshot as any failed
//! session does. A chunk whose fsync failed is never left in place ([`crate::chunk_store`]).
//!
//! Recovery after a crash: temporary files (`*.tmp_*`, `*.tmp_didx`, `*.tmp_fidx`) have no
//! archive name, so listings, readers, verify and GC ignore them; GC removes stale temporary
//! chunk files. A snapshot directory without a manifest lists as unfinished and is never used
//! as a base or read; GC skips its indexes if a crash damaged them; its name stays taken (a
//! backup of the same time fails with [`Error::SnapshotExists`]) until
//! [`Datastore::forget_snapshot`] removes it. A group whose owner file a crash took away
//! (its removal stopped half-way) takes backups again once [`Datastore::set_group_owner`]
//! has run.
//!
//! # Owner and notes
//!
//! `<group>/owner` holds the owner name and a newline; `<group>/notes` holds the group notes
//! as UTF-8 text. Both are changed only under the group lock (tried without waiting, so a
//! running backup makes [`Datastore::set_group_owner`] and [`Datastore::set_group_notes`] fail
//! busy) and replaced atomically (temporary file + rename). Snapshot notes live in the
//! manifest's `unprotected.notes` and change through `update_manifest`.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use crate::backup_info::{BackupDir, BackupGroup};
use crate::blob;
use crate::chunk_store::{Chunk, SyncLevel};
use crate::digest::Digest;
use crate::index::{
    ArchiveKind, DynamicIndexWriter, FIXED_CHUNK_SIZE_MAX, FixedIndexWriter, IndexError, IndexFile,
};
use crate::locks::SharedProcessGuard;
use crate::manifest::{ChunkUploadStats, FileInfo, MANIFEST_BLOB_NAME, Manifest, VerifyState};
use crate::publish::{Durability, IoError, publish_file};
use crate::sync::SyncFamily;
use crate::world::{FileKind, LockMode, OpenOptions, World, WorldFile};

use super::{Datastore, Error, GroupLock, SnapshotLock};

/// Name of the owner file in a group directory.
pub const OWNER_FILE_NAME: &str = "owner";

/// Name of the notes file in a group directory.
pub const GROUP_NOTES_FILE_NAME: &str = "notes";

/// Chunk size of a fixed archive that has no chunk at all ([`backup_snapshot`]): 4 MiB.
pub const FIXED_CHUNK_SIZE_DEFAULT: u64 = 4 * 1024 * 1024;

/// A running backup of one new snapshot. See the [module documentation](self) for the
/// protocol. Dropping an unfinished session removes its snapshot (best effort).
#[must_use = "dropping a backup session removes its snapshot; call finish or abort"]
pub struct BackupSession<W: World> {
    store: Datastore<W>,
    dir: BackupDir,
    path: PathBuf,
    base: Option<BackupDir>,
    base_manifest: Option<Manifest>,
    /// Digests the client may append, with the plain size of each chunk.
    known: BTreeMap<Digest, u64>,
    /// Open index writers, by handle id.
    writers: BTreeMap<u64, OpenIndex<W>>,
    /// Every archive name used so far (open, closed or failed), so none is written twice.
    names: BTreeSet<String>,
    /// Files published, by name.
    written: BTreeMap<String, FileInfo>,
    stats: ChunkUploadStats,
    /// Identifies this session's writer handles.
    token: u64,
    next_writer: u64,
    // The locks, in the order they were taken. Each is `None` once released.
    group_lock: Option<GroupLock<W>>,
    /// This session made or claimed the group (wrote its owner file): a failed session removes
    /// it again while it holds no snapshot; a group somebody else owned is left alone.
    claimed_group: bool,
    base_lock: Option<SnapshotLock<W>>,
    snapshot_lock: Option<SnapshotLock<W>>,
    process_guard: Option<SharedProcessGuard<W>>,
    /// Finished successfully, or cleaned up: nothing left to do on drop.
    done: bool,
    /// Planted bug `ManifestBeforeIndexSync`: index files closed without their fsync, synced
    /// only after the manifest is published.
    #[cfg(feature = "regressions")]
    unsynced_indexes: Vec<PathBuf>,
}

/// Handle of an index being written in a [`BackupSession`]. Passed to
/// [`BackupSession::append_chunk`] and consumed by [`BackupSession::close_index`]; an index
/// whose handle is dropped without closing makes `finish` fail.
#[must_use = "an index writer must be closed with close_index"]
#[derive(Debug)]
pub struct WriterHandle {
    token: u64,
    id: u64,
    archive: String,
}

impl WriterHandle {
    /// The archive this writer produces.
    pub fn archive(&self) -> &str {
        &self.archive
    }
}

enum OpenIndex<W: World> {
    /// Fixed index, assembled in memory; the file is written at close.
    Fixed {
        chunk_size: u64,
        digests: Vec<Digest>,
        size: u64,
        /// A chunk shorter than `chunk_size` was appended: it must have been the last.
        short_tail: bool,
    },
    /// Dynamic index, streaming into its temporary file's writer.
    Dynamic {
        writer: DynamicIndexWriter<W>,
        end: u64,
    },
}

/// One archive of a snapshot as a client would upload it ([`backup_snapshot`]).
///
/// `name` ends in `.didx` (dynamic: chunks of any positive size) or `.fidx` (fixed: every chunk
/// but the last has the same size); a `.blob` name uploads the concatenated chunks as one
/// blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSpec {
    /// Archive file name.
    pub name: String,
    /// The plain data of each chunk, in order.
    pub chunks: Vec<Vec<u8>>,
}

impl ArchiveSpec {
    /// An archive named `name` made of `chunks`.
    pub fn new(name: impl Into<String>, chunks: Vec<Vec<u8>>) -> ArchiveSpec {
        ArchiveSpec {
            name: name.into(),
            chunks,
        }
    }
}

/// What [`backup_snapshot`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupOutcome {
    /// The new snapshot.
    pub dir: BackupDir,
    /// The snapshot whose chunks were offered for reuse, if any.
    pub base: Option<BackupDir>,
    /// Chunks sent to the chunk store's insert.
    pub uploaded_chunks: usize,
    /// Chunks appended without upload because the session already knew them (from the
    /// base, or identical to a chunk uploaded earlier in the same run).
    pub reused_chunks: usize,
    /// The manifest as stored, `chunk_upload_stats` included.
    pub manifest: Manifest,
}

impl<W: World> Datastore<W> {
    /// Starts a backup session of the new snapshot `dir` for `owner`; see the
    /// [module documentation](self) for the lock sequence and every check.
    pub fn start_backup(&self, dir: &BackupDir, owner: &str) -> Result<BackupSession<W>, Error> {
        check_owner(owner)?;
        let group = &dir.group;
        let group_dir = self.group_path(group);
        if let Some(type_dir) = group_dir.parent() {
            self.world()
                .create_dir_all(type_dir)
                .map_err(Error::io("mkdir -p", type_dir))?;
        }
        let mut created = create_dir_new(self, &group_dir)?;
        let group_lock = match self.lock_group(group) {
            Ok(lock) => lock,
            Err(err) => {
                if created {
                    // Best effort: rmdir only removes it while nobody has put anything in it.
                    // The lock holder may have seen it; it makes it again if needed.
                    let _ = self.world().remove_dir(&group_dir);
                }
                return Err(err);
            }
        };
        let prepared = prepare_backup(self, dir, owner, &group_lock, &mut created);
        let (base, base_lock) = match prepared {
            Ok(prepared) => prepared,
            Err(err) => {
                if created {
                    // Best effort, under our lock: the group holds no snapshot yet.
                    let _ = self.remove_group_locked(&group_lock);
                }
                return Err(err);
            }
        };
        let snapshot_lock = match create_snapshot_locked(self, dir) {
            Ok(lock) => lock,
            Err(err) => {
                if created {
                    let _ = self.remove_group_locked(&group_lock);
                }
                return Err(err);
            }
        };
        let (base, base_manifest) = match base {
            Some((base, manifest)) => (Some(base), Some(manifest)),
            None => (None, None),
        };
        let mut session = BackupSession {
            store: self.clone(),
            dir: dir.clone(),
            path: self.snapshot_path(dir),
            base,
            base_manifest,
            known: BTreeMap::new(),
            writers: BTreeMap::new(),
            names: BTreeSet::new(),
            written: BTreeMap::new(),
            stats: ChunkUploadStats::default(),
            token: self.world().unique_id(),
            next_writer: 0,
            group_lock: Some(group_lock),
            claimed_group: created,
            base_lock,
            snapshot_lock: Some(snapshot_lock),
            process_guard: None,
            done: false,
            #[cfg(feature = "regressions")]
            unsynced_indexes: Vec::new(),
        };
        // Race B19 reverted: only open index writers register (see `writer_guard`).
        if !crate::reverted!(
            self.config().chunk_store.regressions,
            B19LockerOnlyWhileWriting
        ) {
            match self.process_locker().try_shared_lock() {
                Ok(guard) => session.process_guard = Some(guard),
                Err(err) => {
                    // The cleanup error, if any, is secondary to why the start failed.
                    let _ = session.abort();
                    return Err(err.into());
                }
            }
        }
        Ok(session)
    }

    /// The recorded owner of a group: the first line of `<group>/owner`. `None` if the file
    /// is missing or its first line empty. No lock: the file is only ever replaced atomically.
    pub fn group_owner(&self, group: &BackupGroup) -> Result<Option<String>, Error> {
        read_owner(self, group)
    }

    /// Replaces a group's owner, under the group lock (without waiting: a running backup of
    /// the group makes this fail busy). The group must exist ([`Error::GroupNotFound`]).
    pub fn set_group_owner(&self, group: &BackupGroup, owner: &str) -> Result<(), Error> {
        check_owner(owner)?;
        let (_lock, group_dir) = lock_existing_group(self, group)?;
        replace_file(
            self,
            &group_dir,
            OWNER_FILE_NAME,
            format!("{owner}\n").as_bytes(),
        )
    }

    /// A group's notes; the empty string if it has none.
    pub fn group_notes(&self, group: &BackupGroup) -> Result<String, Error> {
        let path = self.group_path(group).join(GROUP_NOTES_FILE_NAME);
        Ok(read_text_file(self, &path)?.unwrap_or_default())
    }

    /// Replaces a group's notes, under the group lock (without waiting, as
    /// [`Datastore::set_group_owner`]). The group must exist.
    pub fn set_group_notes(&self, group: &BackupGroup, notes: &str) -> Result<(), Error> {
        let (_lock, group_dir) = lock_existing_group(self, group)?;
        replace_file(self, &group_dir, GROUP_NOTES_FILE_NAME, notes.as_bytes())
    }

    /// Sets a finished snapshot's notes (`unprotected.notes` of its manifest) through
    /// [`Datastore::update_manifest`]. [`Error::SnapshotNotFound`] if the snapshot does not
    /// exist; an unfinished snapshot has no manifest to hold them (a not-found
    /// [`Error::Manifest`]).
    pub fn set_snapshot_notes(&self, dir: &BackupDir, notes: &str) -> Result<(), Error> {
        match self.update_manifest(dir, |manifest| manifest.set_notes(Some(notes))) {
            Ok(_) => Ok(()),
            Err(Error::Manifest(err)) if err.is_not_found() && !self.snapshot_exists(dir)? => {
                Err(Error::SnapshotNotFound(dir.clone()))
            }
            Err(err) => Err(err),
        }
    }
}

/// Steps 2 to 5 of the lock sequence, under the group lock: group re-check, owner, base,
/// time check, base lock.
#[allow(clippy::type_complexity)]
fn prepare_backup<W: World>(
    store: &Datastore<W>,
    dir: &BackupDir,
    owner: &str,
    group_lock: &GroupLock<W>,
    created: &mut bool,
) -> Result<(Option<(BackupDir, Manifest)>, Option<SnapshotLock<W>>), Error> {
    let group = &group_lock.group;
    let group_dir = store.group_path(group);
    if crate::reverted!(
        store.config().chunk_store.regressions,
        StartTrustsMkdirBeforeLock
    ) {
        // The old rule: trust the `mkdir` made before the lock.
        if !*created && !store.exists(&group_dir)? {
            *created = create_dir_new(store, &group_dir)?;
        }
        if *created {
            let path = group_dir.join(OWNER_FILE_NAME);
            write_owner(store, &group_dir, owner).map_err(Error::io("create owner", &path))?;
        }
    } else {
        claim_group(store, &group_dir, owner, created)?;
    }
    match read_owner(store, group)? {
        None => return Err(Error::NoOwner(group.clone())),
        Some(recorded) if recorded != owner => {
            return Err(Error::OwnerMismatch {
                group: group.clone(),
                owner: recorded,
                requested: owner.to_owned(),
            });
        }
        Some(_) => {}
    }
    let newest = store
        .list_snapshots(group)?
        .into_iter()
        .rev()
        .find(|info| info.finished);
    let Some(newest) = newest else {
        return Ok((None, None));
    };
    if dir.time <= newest.dir.time {
        return Err(Error::BackupTimeNotNewer {
            dir: dir.clone(),
            base: newest.dir,
        });
    }
    let usable = match store.load_manifest(&newest.dir) {
        // A verify state of an unexpected shape does not disqualify the base.
        Ok(manifest) => match manifest.verify_state() {
            Ok(Some(state)) if state.state == VerifyState::Failed => None,
            _ => Some(manifest),
        },
        // Vanished, unreadable or corrupt: no base; uploading everything is always safe.
        Err(_) => None,
    };
    let Some(manifest) = usable else {
        return Ok((None, None));
    };
    if crate::reverted!(store.config().chunk_store.regressions, B3BaseNotPinned) {
        // Race B3: the base is used without pinning it.
        return Ok((Some((newest.dir, manifest)), None));
    }
    let base_lock = store.lock_snapshot(&newest.dir, LockMode::Shared)?;
    if !store.snapshot_exists(&newest.dir)? {
        return Err(Error::BaseVanished {
            dir: dir.clone(),
            base: newest.dir,
        });
    }
    Ok((Some((newest.dir, manifest)), Some(base_lock)))
}

/// Step 6: the exclusive lock of the new snapshot, then its directory.
fn create_snapshot_locked<W: World>(
    store: &Datastore<W>,
    dir: &BackupDir,
) -> Result<SnapshotLock<W>, Error> {
    let lock = store.lock_snapshot(dir, LockMode::Exclusive)?;
    let path = store.snapshot_path(dir);
    if !create_dir_new(store, &path)? {
        return Err(Error::SnapshotExists(dir.clone()));
    }
    Ok(lock)
}

/// Under the group lock: makes sure the group directory exists and, if it holds neither an
/// owner file nor a snapshot, claims it by writing the owner file. Sets `created` to whether
/// this call claimed the group (it then counts as created by this call and is removed again if
/// the backup fails before its snapshot exists).
///
/// Whoever made the directory does not matter: a start that lost the group lock leaves its
/// directory or removes it again while it is empty (without the lock), and a crash can empty a
/// group before its owner file was durable. A removal can only hit the directory while it is
/// empty, so when creating the owner file finds the directory gone, the directory is made
/// again; once the owner file is in, no such removal succeeds.
///
/// A failed owner write (ENOSPC, EIO) leaves `created` set, whoever made the directory: the
/// caller then removes the group under the lock, so no group is left without a usable owner
/// (B37).
fn claim_group<W: World>(
    store: &Datastore<W>,
    group_dir: &Path,
    owner: &str,
    created: &mut bool,
) -> Result<(), Error> {
    /// Each competing start removes at most its own directory once, so a few rounds suffice.
    const ROUNDS: usize = 8;
    let path = group_dir.join(OWNER_FILE_NAME);
    for _ in 0..ROUNDS {
        if !store.exists(group_dir)? {
            create_dir_new(store, group_dir)?;
        }
        if store.exists(&path)? || holds_snapshot(store, group_dir)? {
            *created = false;
            return Ok(());
        }
        match write_owner(store, group_dir, owner) {
            Ok(()) => {
                *created = true;
                return Ok(());
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => {
                // B37 reverted: the group is left as the failed write left it.
                *created = !crate::reverted!(
                    store.config().chunk_store.regressions,
                    B37OwnerWriteLeavesGroup
                );
                return Err(Error::io("create owner", &path)(err));
            }
        }
    }
    let vanished = io::Error::new(
        io::ErrorKind::NotFound,
        "the group directory kept vanishing",
    );
    Err(Error::io("create owner", &path)(vanished))
}

/// Creates a new group's owner file (`create_new`, one line), durable at both durable levels.
fn write_owner<W: World>(store: &Datastore<W>, group_dir: &Path, owner: &str) -> io::Result<()> {
    let file = store
        .world()
        .open(&group_dir.join(OWNER_FILE_NAME), OpenOptions::create_new())?;
    file.write_at(0, format!("{owner}\n").as_bytes())?;
    // At both durable levels: a group that survives a crash has its owner.
    if sync_level(store) != SyncLevel::None {
        file.sync_all()?;
        store.world().fsync_dir(group_dir)?;
    }
    Ok(())
}

/// Does the group directory hold a snapshot directory (finished or not)?
fn holds_snapshot<W: World>(store: &Datastore<W>, group_dir: &Path) -> Result<bool, Error> {
    let entries = match store.world().read_dir(group_dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(Error::io("readdir", group_dir)(err)),
    };
    Ok(entries.iter().any(|entry| entry.kind == FileKind::Dir))
}

/// `mkdir`: `Ok(true)` if this call created the directory, `Ok(false)` if it existed.
fn create_dir_new<W: World>(store: &Datastore<W>, path: &Path) -> Result<bool, Error> {
    match store.world().create_dir(path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(err) => Err(Error::io("mkdir", path)(err)),
    }
}

fn sync_level<W: World>(store: &Datastore<W>) -> SyncLevel {
    store.config().chunk_store.sync_level
}

/// Publishes `<dir>/<name>` atomically: writes `<name>.tmp_<16 hex>`, renames it over the
/// target; with [`SyncLevel::File`] fsyncs the file before and the directory after the
/// rename. A failed write leaves the old file untouched and removes the temporary one.
fn replace_file<W: World>(
    store: &Datastore<W>,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<(), Error> {
    let durability = Durability::when(sync_level(store) == SyncLevel::File);
    publish_file(store.world(), dir, name, bytes, durability).map_err(IoError::from)?;
    Ok(())
}

fn read_owner<W: World>(
    store: &Datastore<W>,
    group: &BackupGroup,
) -> Result<Option<String>, Error> {
    let path = store.group_path(group).join(OWNER_FILE_NAME);
    let Some(text) = read_text_file(store, &path)? else {
        return Ok(None);
    };
    let line = text.split('\n').next().unwrap_or("");
    Ok((!line.is_empty()).then(|| line.to_owned()))
}

/// Reads a UTF-8 file; `None` if it does not exist.
fn read_text_file<W: World>(store: &Datastore<W>, path: &Path) -> Result<Option<String>, Error> {
    let bytes = match store.world().read_file(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::io("read", path)(err)),
    };
    String::from_utf8(bytes).map(Some).map_err(|_| {
        Error::io("read", path)(io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"))
    })
}

/// Takes the group lock and checks that the group directory exists.
fn lock_existing_group<W: World>(
    store: &Datastore<W>,
    group: &BackupGroup,
) -> Result<(GroupLock<W>, PathBuf), Error> {
    let lock = store.lock_group(group)?;
    let group_dir = store.group_path(group);
    if !store.exists(&group_dir)? {
        return Err(Error::GroupNotFound(group.clone()));
    }
    Ok((lock, group_dir))
}

/// An owner is stored as one line: non-empty, no control characters.
fn check_owner(owner: &str) -> Result<(), Error> {
    if owner.is_empty() || owner.chars().any(char::is_control) {
        return Err(Error::InvalidOwner(owner.to_owned()));
    }
    Ok(())
}

impl<W: World> BackupSession<W> {
    /// The snapshot being written.
    pub fn dir(&self) -> &BackupDir {
        &self.dir
    }

    /// The base snapshot (the group's newest finished snapshot, shared-locked), if any.
    pub fn base(&self) -> Option<&BackupDir> {
        self.base.as_ref()
    }

    /// Is `digest` known to this session (registered from the base or uploaded), so that it
    /// may be appended without upload?
    pub fn is_known(&self, digest: &Digest) -> bool {
        self.known.contains_key(digest)
    }

    /// What this session has uploaded so far.
    pub fn upload_stats(&self) -> ChunkUploadStats {
        self.stats
    }

    #[cfg(feature = "regressions")]
    fn regressions(&self) -> crate::regressions::Regressions {
        self.store.config().chunk_store.regressions
    }

    fn protocol(&self, reason: impl Into<String>) -> Error {
        Error::Protocol {
            dir: self.dir.clone(),
            reason: reason.into(),
        }
    }

    /// Opens the base's index `archive` and registers every digest in it as known, with its
    /// size. `None` if there is no base or the base's manifest lists no such archive. An index
    /// the base lists but that is gone is an error: [`Error::BaseVanished`] if the base
    /// directory is gone (removed behind the base lock), an [`Error::Index`] otherwise.
    pub fn previous_index(&mut self, archive: &str) -> Result<Option<IndexFile>, Error> {
        if !ArchiveKind::from_name(archive).is_some_and(|kind| kind.is_index()) {
            return Err(self.protocol(format!("{archive:?} is not an index archive name")));
        }
        let (Some(base), Some(manifest)) = (&self.base, &self.base_manifest) else {
            return Ok(None);
        };
        if manifest.file(archive).is_none() {
            return Ok(None);
        }
        let path = self.store.snapshot_path(base).join(archive);
        let index = match IndexFile::open(self.store.world(), &path) {
            Ok(index) => index,
            Err(err) if err.is_not_found() && !self.store.snapshot_exists(base)? => {
                return Err(Error::BaseVanished {
                    dir: self.dir.clone(),
                    base: base.clone(),
                });
            }
            Err(err) => return Err(err.into()),
        };
        for position in 0..index.chunk_count() {
            let range = match &index {
                IndexFile::Fixed(fixed) => fixed.chunk_range(position),
                IndexFile::Dynamic(dynamic) => dynamic.chunk_range(position),
            };
            if let (Some(range), Some(digest)) = (range, index.digests().get(position)) {
                self.known.entry(*digest).or_insert(range.end - range.start);
            }
        }
        Ok(Some(index))
    }

    /// Stores `chunk` through the chunk store (an existing copy is touched) and registers it
    /// as known.
    pub fn upload_chunk(&mut self, chunk: &Chunk) -> Result<(), Error> {
        let outcome = self.store.chunk_store().insert_chunk(chunk)?;
        let size = chunk.data().len() as u64;
        self.stats.count += 1;
        self.stats.size += size;
        self.stats.compressed_size += chunk.blob().len() as u64;
        if outcome.duplicate {
            self.stats.duplicates += 1;
        }
        self.known.insert(*chunk.digest(), size);
        Ok(())
    }

    /// Checks an archive name of `kind` that this session has not used yet, and reserves it.
    fn claim_name(&mut self, archive: &str, kind: ArchiveKind) -> Result<(), Error> {
        if ArchiveKind::from_name(archive) != Some(kind) || archive == MANIFEST_BLOB_NAME {
            let expected = kind.extension();
            return Err(self.protocol(format!("{archive:?} is not a valid .{expected} name")));
        }
        if !self.names.insert(archive.to_owned()) {
            return Err(self.protocol(format!("archive {archive:?} is written twice")));
        }
        Ok(())
    }

    /// Race B19 reverted: the process locker's shared guard is taken when the first index
    /// writer opens and dropped when the last one closes, instead of for the whole session.
    #[cfg(feature = "regressions")]
    fn writer_guard(&mut self, opening: bool) -> Result<(), Error> {
        if !crate::reverted!(self.regressions(), B19LockerOnlyWhileWriting) {
            return Ok(());
        }
        if opening && self.process_guard.is_none() {
            self.process_guard = Some(self.store.process_locker().try_shared_lock()?);
        } else if !opening && self.writers.is_empty() {
            self.process_guard = None;
        }
        Ok(())
    }

    fn new_handle(&mut self, archive: &str, index: OpenIndex<W>) -> WriterHandle {
        let id = self.next_writer;
        self.next_writer += 1;
        self.writers.insert(id, index);
        WriterHandle {
            token: self.token,
            id,
            archive: archive.to_owned(),
        }
    }

    /// Starts the fixed index `archive` (`*.fidx`) of chunks of `chunk_size` bytes (a power of
    /// two, at most 16 MiB; otherwise [`IndexError::BadChunkSize`]). Every chunk but the last
    /// must have exactly that size; the last may be shorter.
    pub fn create_fixed_index(
        &mut self,
        archive: &str,
        chunk_size: u64,
    ) -> Result<WriterHandle, Error> {
        if !chunk_size.is_power_of_two() || chunk_size > FIXED_CHUNK_SIZE_MAX {
            return Err(IndexError::BadChunkSize { chunk_size }.into());
        }
        #[cfg(feature = "regressions")]
        self.writer_guard(true)?;
        self.claim_name(archive, ArchiveKind::FixedIndex)?;
        let index = OpenIndex::Fixed {
            chunk_size,
            digests: Vec::new(),
            size: 0,
            short_tail: false,
        };
        Ok(self.new_handle(archive, index))
    }

    /// Starts the dynamic index `archive` (`*.didx`): creates its temporary file
    /// `<stem>.tmp_didx` in the snapshot directory.
    pub fn create_dynamic_index(&mut self, archive: &str) -> Result<WriterHandle, Error> {
        #[cfg(feature = "regressions")]
        self.writer_guard(true)?;
        self.claim_name(archive, ArchiveKind::DynamicIndex)?;
        let writer = DynamicIndexWriter::create(self.store.world().clone(), &self.path, archive)?
            .with_sync_level(self.index_sync_level());
        Ok(self.new_handle(archive, OpenIndex::Dynamic { writer, end: 0 }))
    }

    /// Appends the chunk `digest` of `size` plain bytes to an open index. The digest must be
    /// known (uploaded in this session or registered from the base) with that size, and the
    /// chunk must fit the index ([`Error::Protocol`] otherwise). Known chunks are not touched.
    pub fn append_chunk(
        &mut self,
        writer: &WriterHandle,
        digest: &Digest,
        size: u64,
    ) -> Result<(), Error> {
        let owned = writer.token == self.token;
        let Some(index) = self.writers.get_mut(&writer.id).filter(|_| owned) else {
            let reason = format!("no open index writer for {:?}", writer.archive);
            return Err(self.protocol(reason));
        };
        let problem = match self.known.get(digest) {
            None => Some(format!("chunk {digest} is unknown to the session")),
            Some(&known) if known != size => {
                Some(format!("chunk {digest} has {known} bytes, not {size}"))
            }
            Some(_) if size == 0 => Some(format!("chunk {digest} is empty")),
            Some(_) => match index {
                OpenIndex::Fixed {
                    chunk_size,
                    digests,
                    size: total,
                    short_tail,
                } => {
                    if *short_tail {
                        Some(format!(
                            "a chunk follows a short chunk in {:?}",
                            writer.archive
                        ))
                    } else if size > *chunk_size {
                        Some(format!(
                            "chunk of {size} bytes exceeds the chunk size {chunk_size}"
                        ))
                    } else if let Some(new_total) = total.checked_add(size) {
                        digests.push(*digest);
                        *total = new_total;
                        *short_tail = size < *chunk_size;
                        None
                    } else {
                        Some(format!("{:?} grows beyond 2^64 bytes", writer.archive))
                    }
                }
                OpenIndex::Dynamic {
                    writer: dynamic,
                    end,
                } => match end.checked_add(size) {
                    None => Some(format!("{:?} grows beyond 2^64 bytes", writer.archive)),
                    Some(new_end) => {
                        dynamic.add_chunk(new_end, *digest)?;
                        *end = new_end;
                        None
                    }
                },
            },
        };
        match problem {
            Some(reason) => Err(self.protocol(reason)),
            None => Ok(()),
        }
    }

    /// Closes an index: publishes it under its final name (temporary file + rename) and
    /// returns its manifest entry.
    pub fn close_index(&mut self, writer: WriterHandle) -> Result<FileInfo, Error> {
        let owned = writer.token == self.token;
        let Some(index) = self.writers.remove(&writer.id).filter(|_| owned) else {
            let reason = format!("no open index writer for {:?}", writer.archive);
            return Err(self.protocol(reason));
        };
        let closed = match index {
            OpenIndex::Fixed {
                chunk_size,
                digests,
                size,
                ..
            } => {
                let world = self.store.world().clone();
                let mut fixed =
                    FixedIndexWriter::create(world, &self.path, &writer.archive, size, chunk_size)?
                        .with_sync_level(self.index_sync_level());
                for (position, digest) in (0u64..).zip(digests) {
                    fixed.add_digest(position, digest)?;
                }
                fixed.close()?
            }
            OpenIndex::Dynamic { writer, .. } => writer.close()?,
        };
        #[cfg(feature = "regressions")]
        self.writer_guard(false)?;
        #[cfg(feature = "regressions")]
        if self.index_sync_level() != sync_level(&self.store) {
            self.unsynced_indexes.push(closed.path.clone());
        }
        let info = FileInfo::for_index(&closed)?;
        self.written.insert(info.filename.clone(), info.clone());
        Ok(info)
    }

    /// Publishes the blob `name` (`*.blob`, not the manifest's name): `blob` must be a valid
    /// blob (magic and CRC checked, [`Error::Blob`]); it is written by temporary file + rename.
    /// Returns its manifest entry.
    pub fn add_blob(&mut self, name: &str, blob: &[u8]) -> Result<FileInfo, Error> {
        blob::decode(blob)?;
        self.claim_name(name, ArchiveKind::Blob)?;
        replace_file(&self.store, &self.path, name, blob)?;
        let info = FileInfo::for_blob(name, blob)?;
        self.written.insert(info.filename.clone(), info.clone());
        Ok(info)
    }

    /// Finishes the backup with the client's `manifest`; see the
    /// [module documentation](self). On any failure the snapshot is removed and the error
    /// returned.
    pub fn finish(mut self, manifest: Manifest) -> Result<BackupDir, Error> {
        self.finish_stored(manifest)?;
        Ok(self.dir.clone())
    }

    /// [`BackupSession::finish`], returning the manifest as stored.
    fn finish_stored(&mut self, manifest: Manifest) -> Result<Manifest, Error> {
        match self.try_finish(manifest) {
            Ok(stored) => {
                // Release before reporting success: the next backup of the group may start.
                let held = (self.snapshot_lock.take(), self.group_lock.take());
                if crate::reverted!(self.regressions(), B15LocksOutliveFinish) {
                    // Race B15: the locks go with the worker's teardown, which runs after the
                    // success has been reported.
                    let teardown = <W::Sync as SyncFamily>::spawn(move || drop(held));
                    drop(teardown);
                } else {
                    drop(held);
                }
                self.done = true;
                Ok(stored)
            }
            Err(err) => {
                // The cause is what the caller needs; a failed cleanup is secondary.
                let _ = self.cleanup();
                Err(err)
            }
        }
    }

    fn try_finish(&mut self, manifest: Manifest) -> Result<Manifest, Error> {
        if !self.writers.is_empty() {
            let reason = format!("{} index writer(s) still open", self.writers.len());
            return Err(self.protocol(reason));
        }
        if self.written.is_empty() {
            return Err(self.protocol("no file was written"));
        }
        self.check_manifest(&manifest)?;
        // Fix reverted (SyncfsAfterManifest): one syncfs after the manifest, stored unsynced.
        let late_syncfs = sync_level(&self.store) == SyncLevel::Filesystem
            && crate::reverted!(self.regressions(), SyncfsAfterManifest);
        let manifest_level = if late_syncfs {
            SyncLevel::None
        } else {
            sync_level(&self.store)
        };
        // Everything the manifest names is durable before the manifest is published.
        if !late_syncfs {
            self.sync_contents()?;
        }
        // The manifest lock is held from the publication to the statistics update: once the
        // manifest is in place, another client may update it (notes), and a busy wait after
        // publication would fail the backup and remove a snapshot others have seen.
        let manifest_lock = self.store.lock_manifest(&self.dir)?;
        manifest.store(self.store.world(), &self.path, manifest_level)?;
        let manifest_lock = if crate::reverted!(self.regressions(), FinishRelocksManifestForStats) {
            drop(manifest_lock);
            None
        } else {
            Some(manifest_lock)
        };
        #[cfg(feature = "regressions")]
        self.sync_indexes_late()?;
        if let Some(base) = &self.base
            && !crate::reverted!(self.regressions(), B3BaseNotPinned)
            && !self.store.snapshot_exists(base)?
        {
            return Err(Error::BaseVanished {
                dir: self.dir.clone(),
                base: base.clone(),
            });
        }
        self.base_lock = None;
        self.process_guard = None;
        let stats = self.stats;
        let record = |m: &mut Manifest| m.set_chunk_upload_stats(&stats);
        let stored = match &manifest_lock {
            Some(lock) => self.store.update_manifest_locked(lock, record)?,
            None => self.store.update_manifest(&self.dir, record)?,
        };
        drop(manifest_lock);
        if late_syncfs {
            self.store.chunk_store().ensure_sync_level()?;
        }
        Ok(stored)
    }

    /// Step 1 of the publication order (see the module documentation, "Durability"): at level
    /// `file` the chunks, indexes, blobs and the owner file are durable already, and the
    /// directories leading to the snapshot are fsynced (group, type, base), so the snapshot
    /// directory's own entry survives a crash; at level `filesystem` one `syncfs` makes every
    /// chunk, index, blob and directory written so far durable.
    fn sync_contents(&self) -> Result<(), Error> {
        match sync_level(&self.store) {
            SyncLevel::None => Ok(()),
            SyncLevel::File => {
                let mut dir = self.path.parent();
                while let Some(parent) = dir {
                    self.store.sync_dir(parent)?;
                    if parent == self.store.base() {
                        break;
                    }
                    dir = parent.parent();
                }
                Ok(())
            }
            SyncLevel::Filesystem => Ok(self.store.chunk_store().ensure_sync_level()?),
        }
    }

    /// The sync level of this session's index writers: the store's, except with the planted
    /// bug `ManifestBeforeIndexSync` at level `file`, where indexes are closed unsynced.
    fn index_sync_level(&self) -> SyncLevel {
        let level = sync_level(&self.store);
        if level == SyncLevel::File && crate::reverted!(self.regressions(), ManifestBeforeIndexSync)
        {
            return SyncLevel::None;
        }
        level
    }

    /// Planted bug `ManifestBeforeIndexSync`: the fsyncs the index writers skipped, run after
    /// the manifest was published.
    #[cfg(feature = "regressions")]
    fn sync_indexes_late(&mut self) -> Result<(), Error> {
        for path in std::mem::take(&mut self.unsynced_indexes) {
            let world = self.store.world();
            let file = world
                .open(&path, OpenOptions::read_only())
                .map_err(Error::io("open", &path))?;
            file.sync_all().map_err(Error::io("fsync", &path))?;
        }
        Ok(())
    }

    /// The client's manifest must name this snapshot and list exactly the files written.
    fn check_manifest(&self, manifest: &Manifest) -> Result<(), Error> {
        manifest.validate()?;
        let named = manifest.backup_dir();
        if named != self.dir {
            return Err(self.protocol(format!("the manifest describes snapshot {named}")));
        }
        for file in &manifest.files {
            match self.written.get(&file.filename) {
                None => {
                    let reason = format!(
                        "the manifest lists {:?}, which was not written",
                        file.filename
                    );
                    return Err(self.protocol(reason));
                }
                Some(written) if written != file => {
                    let reason = format!(
                        "the manifest lists {:?} with size {} and checksum {}, but it was written \
                         with size {} and checksum {}",
                        file.filename, file.size, file.csum, written.size, written.csum
                    );
                    return Err(self.protocol(reason));
                }
                Some(_) => {}
            }
        }
        if let Some(missing) = self
            .written
            .keys()
            .find(|name| manifest.file(name).is_none())
        {
            return Err(self.protocol(format!("the manifest does not list {missing:?}")));
        }
        Ok(())
    }

    /// Ends the session without a snapshot: removes the snapshot directory (and the group, if
    /// no snapshot is left in it) under the session's locks, then releases them.
    pub fn abort(mut self) -> Result<(), Error> {
        self.cleanup()
    }

    /// Removes everything the session wrote, still holding its snapshot and group locks.
    /// Idempotent; the first error is returned, but every step is attempted.
    fn cleanup(&mut self) -> Result<(), Error> {
        self.done = true;
        // Unclosed writers remove their temporary files.
        self.writers.clear();
        self.process_guard = None;
        self.base_lock = None;
        let mut result = Ok(());
        if let Some(snapshot_lock) = self.snapshot_lock.take() {
            result = self.remove_own_snapshot(snapshot_lock);
        }
        // A group this session did not claim (it existed with its owner, maybe set by
        // somebody else while this start waited for the group lock) is not ours to remove.
        let ours = self.claimed_group
            || crate::reverted!(self.regressions(), CleanupRemovesUnclaimedGroup);
        if let Some(group_lock) = self.group_lock.take().filter(|_| ours) {
            let removed = if crate::reverted!(self.regressions(), B23CleanupRelocksGroup) {
                // Race B23: a second handle on the group lock conflicts with our own, so the
                // empty group is skipped as "in use".
                let removed = self.store.remove_group_if_empty(&self.dir.group, None);
                drop(group_lock);
                removed
            } else {
                self.store.remove_group_locked(&group_lock)
            };
            if result.is_ok() {
                result = removed;
            }
        }
        result
    }

    /// Removes the snapshot directory (manifest first, so a partial removal is an unfinished
    /// snapshot), then the lock files of the snapshot while they are still held.
    fn remove_own_snapshot(&self, snapshot_lock: SnapshotLock<W>) -> Result<(), Error> {
        let world = self.store.world();
        // Waits out a manifest update in flight (the manifest may have been stored already).
        let manifest_lock = self.store.lock_manifest(&self.dir);
        let mut result = Ok(());
        if self.store.exists(&self.path)? {
            let manifest = self.path.join(MANIFEST_BLOB_NAME);
            result = match world.remove_file(&manifest) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => {
                    Err(Error::io("unlink", &manifest)(err))
                }
                _ => self.store.remove_snapshot_dir(&self.path),
            };
        }
        let manifest_result = match manifest_lock {
            Ok(lock) => lock.guard.remove(world).map_err(Error::from),
            Err(err) => Err(err),
        };
        let snapshot_result = snapshot_lock.guard.remove(world).map_err(Error::from);
        result.and(manifest_result).and(snapshot_result)
    }
}

impl<W: World> std::fmt::Debug for BackupSession<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupSession")
            .field("dir", &self.dir)
            .field("base", &self.base)
            .field("open_writers", &self.writers.len())
            .field("written", &self.written.keys().collect::<Vec<_>>())
            .field("known_chunks", &self.known.len())
            .field("stats", &self.stats)
            .field("done", &self.done)
            .finish()
    }
}

impl<W: World> Drop for BackupSession<W> {
    fn drop(&mut self) {
        if !self.done {
            // Best effort: a drop cannot report; whatever is left is an unfinished snapshot.
            let _ = self.cleanup();
        }
    }
}

/// A whole client run: [`Datastore::start_backup`], then for each archive in order: for an
/// index, [`BackupSession::previous_index`] (registering the base's chunks of the same
/// archive), upload of every chunk the session does not know yet, append, close; for a blob,
/// the concatenated chunks as one blob. Then the manifest listing every archive, and
/// [`BackupSession::finish`]. On any error the session is aborted (the snapshot removed).
///
/// A fixed archive's chunk size is the size of its first chunk when it has several (so that
/// must be a power of two); a single chunk may be short, so its size is rounded up to a power
/// of two; an archive without chunks uses [`FIXED_CHUNK_SIZE_DEFAULT`]. A non-last chunk of
/// another size is an [`Error::Protocol`], as are empty chunks and archive names that are
/// neither `.fidx`, `.didx` nor `.blob`.
pub fn backup_snapshot<W: World>(
    store: &Datastore<W>,
    dir: &BackupDir,
    owner: &str,
    archives: &[ArchiveSpec],
) -> Result<BackupOutcome, Error> {
    let mut session = store.start_backup(dir, owner)?;
    let mut manifest = Manifest::new(dir);
    let mut uploaded_chunks = 0;
    let mut reused_chunks = 0;
    for archive in archives {
        let info = match ArchiveKind::from_name(&archive.name) {
            Some(ArchiveKind::Blob) => {
                let blob = blob::encode(&archive.chunks.concat())?;
                session.add_blob(&archive.name, &blob)?
            }
            Some(kind) => {
                session.previous_index(&archive.name)?;
                let writer = if kind == ArchiveKind::FixedIndex {
                    let chunk_size = fixed_chunk_size(&session, archive)?;
                    session.create_fixed_index(&archive.name, chunk_size)?
                } else {
                    session.create_dynamic_index(&archive.name)?
                };
                for data in &archive.chunks {
                    let digest = Digest::of(data);
                    if session.is_known(&digest) {
                        reused_chunks += 1;
                    } else {
                        let chunk = Chunk::from_data(data).map_err(|problem| {
                            session.protocol(format!("chunk of {:?}: {problem}", archive.name))
                        })?;
                        session.upload_chunk(&chunk)?;
                        uploaded_chunks += 1;
                    }
                    session.append_chunk(&writer, &digest, data.len() as u64)?;
                }
                session.close_index(writer)?
            }
            None => {
                let reason = format!("{:?} is not an archive name", archive.name);
                return Err(session.protocol(reason));
            }
        };
        manifest.add_file(info)?;
    }
    let base = session.base().cloned();
    let manifest = session.finish_stored(manifest)?;
    Ok(BackupOutcome {
        dir: dir.clone(),
        base,
        uploaded_chunks,
        reused_chunks,
        manifest,
    })
}

/// The chunk size of a fixed archive built from `archive.chunks`; see [`backup_snapshot`].
fn fixed_chunk_size<W: World>(
    session: &BackupSession<W>,
    archive: &ArchiveSpec,
) -> Result<u64, Error> {
    match archive.chunks.as_slice() {
        [] => Ok(FIXED_CHUNK_SIZE_DEFAULT),
        [only] => Ok((only.len() as u64).max(1).next_power_of_two()),
        [first, rest @ ..] => {
            let chunk_size = first.len() as u64;
            let body = &rest[..rest.len() - 1];
            if let Some(position) = body
                .iter()
                .position(|chunk| chunk.len() as u64 != chunk_size)
            {
                let reason = format!(
                    "chunk {} of fixed archive {:?} has {} bytes, not the chunk size {chunk_size}",
                    position + 1,
                    archive.name,
                    body[position].len()
                );
                return Err(session.protocol(reason));
            }
            Ok(chunk_size)
        }
    }
}
