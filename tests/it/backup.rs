//! Backup sessions, reader sessions, group owner and notes, on both worlds.

use std::path::Path;

use store::backup_info::{BackupDir, BackupGroup, BackupTime};
use store::blob;
use store::chunk_store::Chunk;
use store::datastore::backup::{ArchiveSpec, BackupOutcome, backup_snapshot};
use store::datastore::{Datastore, Error};
use store::digest::Digest;
use store::index::{ArchiveKind, IndexError, IndexFile};
use store::manifest::{FileInfo, MANIFEST_BLOB_NAME, Manifest, SnapshotVerifyState, VerifyState};
use store::world::{OpenOptions, World, WorldFile};

use crate::both_worlds;
use crate::support::{Env, new_datastore, snapshot};

const OWNER: &str = "alice@pbs";

/// An access time far in the past, to see whether a chunk was touched.
const OLD_ATIME: i64 = 1_000_000;

/// `len` bytes that differ for every `seed`.
fn data(seed: u32, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len);
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(12_345);
    while bytes.len() < len {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        bytes.push((state >> 16) as u8);
    }
    bytes
}

/// A fixed image (three full 4 KiB chunks and a short tail), a dynamic stream and a blob.
fn first_archives() -> Vec<ArchiveSpec> {
    vec![
        ArchiveSpec::new(
            "drive-scsi0.img.fidx",
            vec![data(1, 4096), data(2, 4096), data(3, 4096), data(4, 100)],
        ),
        ArchiveSpec::new(
            "root.pxar.didx",
            vec![data(10, 100), data(11, 250), data(12, 7)],
        ),
        ArchiveSpec::new("qemu-server.conf.blob", vec![b"memory: 512\n".to_vec()]),
    ]
}

fn chunk_exists<W: World>(store: &Datastore<W>, digest: &Digest) -> bool {
    store
        .chunk_store()
        .chunk_metadata(digest)
        .expect("stat chunk")
        .is_some()
}

fn chunk_atime<W: World>(store: &Datastore<W>, digest: &Digest) -> i64 {
    store
        .chunk_store()
        .chunk_metadata(digest)
        .expect("stat chunk")
        .expect("chunk exists")
        .atime
}

/// Every digest of every index of a snapshot.
fn snapshot_digests<W: World>(store: &Datastore<W>, dir: &BackupDir) -> Vec<Digest> {
    let manifest = store.load_manifest(dir).expect("manifest");
    let mut digests = Vec::new();
    for file in &manifest.files {
        if file.kind().is_some_and(|kind| kind.is_index()) {
            let path = store.snapshot_path(dir).join(&file.filename);
            let index = IndexFile::open(store.world(), &path).expect("open index");
            digests.extend_from_slice(index.digests());
        }
    }
    digests
}

fn exists<W: World>(store: &Datastore<W>, path: &Path) -> bool {
    store.world().try_metadata(path).expect("stat").is_some()
}

/// Removes a snapshot directory directly through the world, bypassing every lock.
fn remove_behind_the_back<W: World>(store: &Datastore<W>, dir: &BackupDir) {
    let path = store.snapshot_path(dir);
    for entry in store.world().read_dir(&path).expect("readdir") {
        store
            .world()
            .remove_file(&path.join(&entry.name))
            .expect("unlink");
    }
    store.world().remove_dir(&path).expect("rmdir");
}

/// Uploads `chunks` into a new dynamic index and closes it.
fn write_dynamic<W: World>(
    session: &mut store::datastore::backup::BackupSession<W>,
    name: &str,
    chunks: &[Vec<u8>],
) -> FileInfo {
    let writer = session.create_dynamic_index(name).expect("create writer");
    for data in chunks {
        let chunk = Chunk::from_data(data).expect("chunk");
        session.upload_chunk(&chunk).expect("upload");
        session
            .append_chunk(&writer, chunk.digest(), data.len() as u64)
            .expect("append");
    }
    session.close_index(writer).expect("close")
}

fn backup<W: World>(
    store: &Datastore<W>,
    dir: &BackupDir,
    archives: &[ArchiveSpec],
) -> BackupOutcome {
    backup_snapshot(store, dir, OWNER, archives).expect("backup")
}

both_worlds!(
    full_then_incremental_reuses_base_chunks,
    several_archives_read_back_exactly,
    fixed_archive_rules,
    failed_verify_base_is_not_used,
    unreadable_base_manifest_means_no_base,
    backup_time_must_be_newer,
    one_backup_per_group,
    forget_of_base_or_running_snapshot_fails_busy,
    base_removed_behind_the_session_fails_finish,
    abort_and_drop_remove_the_snapshot,
    append_only_known_chunks,
    session_input_is_validated,
    manifest_must_list_exactly_the_written_files,
    owner_is_checked_and_can_be_changed,
    reader_blocks_forget_and_serves_as_base,
    reader_serves_only_announced_chunks,
    reader_needs_an_existing_unlocked_snapshot,
    notes_and_owner_round_trip_and_contend_with_a_backup,
    process_locker_counts_the_session,
);

fn full_then_incremental_reuses_base_chunks(env: &impl Env) {
    let store = new_datastore(env);
    let s1 = snapshot("vm/100", "2024-01-01T00:00:00Z");
    let first = backup(&store, &s1, &first_archives());
    assert_eq!(first.base, None);
    assert_eq!((first.uploaded_chunks, first.reused_chunks), (7, 0));
    assert_eq!(first.manifest.files.len(), 3);
    let stats = first
        .manifest
        .chunk_upload_stats()
        .expect("shape")
        .expect("stats recorded");
    assert_eq!((stats.count, stats.duplicates), (7, 0));
    assert_eq!(stats.size, 3 * 4096 + 100 + 100 + 250 + 7);
    assert_eq!(store.load_manifest(&s1).expect("stored"), first.manifest);
    // Age every chunk, so that a touch (or an upload) of a reused one would show.
    let old: Vec<Digest> = snapshot_digests(&store, &s1);
    assert_eq!(old.len(), 7);
    for digest in &old {
        env.set_atime(&store.chunk_store().chunk_path(digest), OLD_ATIME);
    }

    let s2 = snapshot("vm/100", "2024-01-02T00:00:00Z");
    let archives = vec![
        // Same first three chunks, a new tail.
        ArchiveSpec::new(
            "drive-scsi0.img.fidx",
            vec![data(1, 4096), data(2, 4096), data(3, 4096), data(5, 300)],
        ),
        // Two chunks kept, one new.
        ArchiveSpec::new(
            "root.pxar.didx",
            vec![data(10, 100), data(11, 250), data(13, 9)],
        ),
    ];
    let second = backup(&store, &s2, &archives);
    assert_eq!(second.base, Some(s1.clone()));
    assert_eq!((second.uploaded_chunks, second.reused_chunks), (2, 5));
    let stats = second
        .manifest
        .chunk_upload_stats()
        .expect("shape")
        .expect("stats recorded");
    assert_eq!(stats.count, 2);
    let new = snapshot_digests(&store, &s2);
    assert_eq!(new.len(), 7);
    for digest in &new {
        assert!(
            chunk_exists(&store, digest),
            "chunk {digest} of the new snapshot is missing"
        );
    }
    let reused: Vec<&Digest> = new.iter().filter(|digest| old.contains(digest)).collect();
    assert_eq!(reused.len(), 5);
    for digest in reused {
        assert_eq!(
            chunk_atime(&store, digest),
            OLD_ATIME,
            "reused chunk {digest} was touched"
        );
    }
    let fresh = Digest::of(&data(5, 300));
    assert!(
        chunk_atime(&store, &fresh) > OLD_ATIME,
        "an uploaded chunk is fresh"
    );
    let listed = store.list_snapshots(&s1.group).expect("list");
    assert!(listed.iter().all(|info| info.finished), "{listed:?}");
    assert_eq!(listed.len(), 2);
}

fn several_archives_read_back_exactly(env: &impl Env) {
    let store = new_datastore(env);
    let dir = snapshot("host/web", "2024-03-01T12:00:00Z");
    let repeated = data(40, 512);
    let archives = vec![
        ArchiveSpec::new(
            "a.img.fidx",
            vec![data(20, 1024), data(21, 1024), data(22, 1)],
        ),
        ArchiveSpec::new("b.img.fidx", vec![data(23, 3000)]),
        ArchiveSpec::new(
            "c.pxar.didx",
            vec![repeated.clone(), data(41, 33), repeated.clone()],
        ),
        ArchiveSpec::new("d.pxar.didx", vec![]),
        ArchiveSpec::new(
            "client.log.blob",
            vec![b"line 1\n".to_vec(), b"line 2\n".to_vec()],
        ),
    ];
    let outcome = backup(&store, &dir, &archives);
    // The repeated chunk is uploaded once and then known.
    assert_eq!((outcome.uploaded_chunks, outcome.reused_chunks), (6, 1));
    let names: Vec<&str> = outcome
        .manifest
        .files
        .iter()
        .map(|f| f.filename.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "a.img.fidx",
            "b.img.fidx",
            "c.pxar.didx",
            "d.pxar.didx",
            "client.log.blob"
        ]
    );

    let mut reader = store.open_reader(&dir).expect("reader");
    assert_eq!(reader.manifest(), &outcome.manifest);
    for archive in &archives[..4] {
        let index = reader.open_index(&archive.name).expect("open index");
        let expected_kind = ArchiveKind::from_name(&archive.name).expect("archive name");
        assert_eq!(index.kind(), expected_kind);
        let mut restored = Vec::new();
        for digest in index.digests() {
            restored.extend(reader.read_chunk(digest).expect("read chunk"));
        }
        assert_eq!(restored, archive.chunks.concat(), "{}", archive.name);
        assert_eq!(index.index_bytes(), restored.len() as u64);
        let listed = reader.manifest().file(&archive.name).expect("listed");
        assert_eq!((listed.csum, listed.size), index.compute_csum());
    }
    let IndexFile::Fixed(a) = reader.open_index("a.img.fidx").expect("a") else {
        panic!("a.img.fidx is a fixed index");
    };
    assert_eq!((a.chunk_size(), a.chunk_count()), (1024, 3));
    let IndexFile::Fixed(b) = reader.open_index("b.img.fidx").expect("b") else {
        panic!("b.img.fidx is a fixed index");
    };
    assert_eq!(
        (b.chunk_size(), b.index_bytes()),
        (4096, 3000),
        "a lone chunk rounds up"
    );
    let log = reader.download("client.log.blob").expect("blob");
    assert_eq!(
        &*blob::decode(&log).expect("valid blob"),
        b"line 1\nline 2\n"
    );
    // No temporary file is left in the snapshot.
    let entries = store
        .world()
        .read_dir(&store.snapshot_path(&dir))
        .expect("readdir");
    let mut names: Vec<String> = entries
        .iter()
        .filter_map(|entry| entry.name_str().map(str::to_owned))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "a.img.fidx",
            "b.img.fidx",
            "c.pxar.didx",
            "client.log.blob",
            "d.pxar.didx",
            MANIFEST_BLOB_NAME
        ]
    );
}

fn fixed_archive_rules(env: &impl Env) {
    let store = new_datastore(env);
    let dir = snapshot("vm/1", "2024-01-01T00:00:00Z");
    // A non-last chunk of another size.
    let uneven = ArchiveSpec::new(
        "disk.fidx",
        vec![data(1, 1024), data(2, 512), data(3, 1024)],
    );
    let err = backup_snapshot(&store, &dir, OWNER, &[uneven]).expect_err("uneven chunks");
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    // A chunk size that is not a power of two.
    let odd = ArchiveSpec::new("disk.fidx", vec![data(1, 1000), data(2, 1000)]);
    let err = backup_snapshot(&store, &dir, OWNER, &[odd]).expect_err("odd chunk size");
    assert!(
        matches!(
            err,
            Error::Index(IndexError::BadChunkSize { chunk_size: 1000 })
        ),
        "{err:?}"
    );
    // An empty chunk.
    let empty = ArchiveSpec::new("root.didx", vec![data(1, 10), Vec::new()]);
    let err = backup_snapshot(&store, &dir, OWNER, &[empty]).expect_err("empty chunk");
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    // Failed runs leave nothing behind; the next one succeeds.
    assert!(!store.snapshot_exists(&dir).expect("stat"));
    let good = ArchiveSpec::new(
        "disk.fidx",
        vec![data(1, 1024), data(3, 1024), data(2, 512)],
    );
    backup(&store, &dir, &[good]);
    // Directly: a chunk after a short one, and a chunk larger than the chunk size.
    let mut session = store
        .start_backup(&snapshot("vm/1", "2024-01-02T00:00:00Z"), OWNER)
        .expect("start");
    let writer = session.create_fixed_index("x.fidx", 1024).expect("writer");
    let short = Chunk::from_data(&data(7, 10)).expect("chunk");
    let big = Chunk::from_data(&data(8, 2048)).expect("chunk");
    session.upload_chunk(&short).expect("upload");
    session.upload_chunk(&big).expect("upload");
    let err = session
        .append_chunk(&writer, big.digest(), 2048)
        .expect_err("too big");
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    session
        .append_chunk(&writer, short.digest(), 10)
        .expect("short tail");
    let err = session
        .append_chunk(&writer, short.digest(), 10)
        .expect_err("after the tail");
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    let info = session.close_index(writer).expect("close");
    assert_eq!(info.size, 10);
    session.abort().expect("abort");
}

fn failed_verify_base_is_not_used(env: &impl Env) {
    let store = new_datastore(env);
    let s1 = snapshot("vm/100", "2024-01-01T00:00:00Z");
    backup(&store, &s1, &first_archives());
    let ok = SnapshotVerifyState {
        state: VerifyState::Ok,
        upid: "verify-1".to_owned(),
    };
    store
        .update_manifest(&s1, |m| m.set_verify_state(&ok))
        .expect("verify ok");
    let s2 = snapshot("vm/100", "2024-01-02T00:00:00Z");
    let second = backup(&store, &s2, &first_archives());
    assert_eq!(second.base, Some(s1.clone()), "a verified base is used");
    assert_eq!(second.uploaded_chunks, 0);

    let failed = SnapshotVerifyState {
        state: VerifyState::Failed,
        upid: "verify-2".to_owned(),
    };
    store
        .update_manifest(&s2, |m| m.set_verify_state(&failed))
        .expect("verify failed");
    let s3 = snapshot("vm/100", "2024-01-03T00:00:00Z");
    let third = backup(&store, &s3, &first_archives());
    assert_eq!(third.base, None, "a base that failed verify is not used");
    assert_eq!((third.uploaded_chunks, third.reused_chunks), (7, 0));
    let stats = third
        .manifest
        .chunk_upload_stats()
        .expect("shape")
        .expect("stats");
    assert_eq!(
        (stats.count, stats.duplicates),
        (7, 7),
        "every chunk was sent again"
    );
    // The failed snapshot still counts for the time check.
    let older = snapshot("vm/100", "2024-01-02T12:00:00Z");
    let err = store.start_backup(&older, OWNER).expect_err("not newer");
    assert!(matches!(err, Error::BackupTimeNotNewer { .. }), "{err:?}");
}

fn unreadable_base_manifest_means_no_base(env: &impl Env) {
    let store = new_datastore(env);
    let s1 = snapshot("ct/200", "2024-01-01T00:00:00Z");
    backup(&store, &s1, &first_archives());
    let manifest_path = store.snapshot_path(&s1).join(MANIFEST_BLOB_NAME);
    let file = store
        .world()
        .open(&manifest_path, OpenOptions::create_truncate())
        .expect("open");
    file.write_at(0, b"not a blob at all")
        .expect("corrupt the manifest");
    drop(file);
    // Decision: a base whose manifest cannot be loaded is not used; everything is uploaded.
    let s2 = snapshot("ct/200", "2024-01-02T00:00:00Z");
    let second = backup(&store, &s2, &first_archives());
    assert_eq!(second.base, None);
    assert_eq!((second.uploaded_chunks, second.reused_chunks), (7, 0));
    // It still is the newest finished snapshot for the time check.
    let err = store
        .start_backup(&snapshot("ct/200", "2024-01-01T12:00:00Z"), OWNER)
        .expect_err("not newer than the corrupt one");
    assert!(matches!(err, Error::BackupTimeNotNewer { .. }), "{err:?}");
}

fn backup_time_must_be_newer(env: &impl Env) {
    let store = new_datastore(env);
    let s1 = snapshot("vm/100", "2024-01-02T00:00:00Z");
    backup(&store, &s1, &first_archives());
    for time in [
        "2024-01-02T00:00:00Z",
        "2024-01-01T23:59:59Z",
        "2020-01-01T00:00:00Z",
    ] {
        let dir = snapshot("vm/100", time);
        match store.start_backup(&dir, OWNER) {
            Err(Error::BackupTimeNotNewer { dir: got, base }) => {
                assert_eq!((got, base), (dir.clone(), s1.clone()));
            }
            Err(other) => panic!("{time}: {other:?}"),
            Ok(_) => panic!("{time}: a backup not newer than the last one started"),
        }
    }
    assert_eq!(
        store.list_snapshots(&s1.group).expect("list").len(),
        1,
        "nothing was created"
    );
    // An unfinished snapshot does not count, but its name is taken.
    let crashed = snapshot("vm/100", "2024-01-03T00:00:00Z");
    store
        .world()
        .create_dir(&store.snapshot_path(&crashed))
        .expect("mkdir");
    let err = store.start_backup(&crashed, OWNER).expect_err("exists");
    assert!(
        matches!(err, Error::SnapshotExists(ref dir) if *dir == crashed),
        "{err:?}"
    );
    assert!(
        store.snapshot_exists(&crashed).expect("stat"),
        "not ours to remove"
    );
    let later = snapshot("vm/100", "2024-01-04T00:00:00Z");
    let outcome = backup(&store, &later, &first_archives());
    assert_eq!(
        outcome.base,
        Some(s1),
        "the base is the newest finished snapshot"
    );
}

fn one_backup_per_group(env: &impl Env) {
    let store = new_datastore(env);
    let running = store
        .start_backup(&snapshot("vm/100", "2024-01-01T00:00:00Z"), OWNER)
        .expect("first");
    let second = snapshot("vm/100", "2024-01-02T00:00:00Z");
    let err = store.start_backup(&second, OWNER).expect_err("group busy");
    assert!(err.is_contention(), "{err:?}");
    assert!(!store.snapshot_exists(&second).expect("stat"));
    // Another group is independent.
    backup(
        &store,
        &snapshot("vm/101", "2024-01-01T00:00:00Z"),
        &first_archives(),
    );
    // The first session finishes; finish releases the group lock before it returns.
    let mut running = running;
    let info = write_dynamic(&mut running, "root.pxar.didx", &[data(1, 10)]);
    let mut manifest = Manifest::new(running.dir());
    manifest.add_file(info).expect("add");
    running.finish(manifest).expect("finish");
    let outcome = backup(&store, &second, &first_archives());
    assert_eq!(
        outcome.base,
        Some(snapshot("vm/100", "2024-01-01T00:00:00Z"))
    );
}

fn forget_of_base_or_running_snapshot_fails_busy(env: &impl Env) {
    let store = new_datastore(env);
    let s1 = snapshot("vm/100", "2024-01-01T00:00:00Z");
    backup(&store, &s1, &first_archives());
    let s2 = snapshot("vm/100", "2024-01-02T00:00:00Z");
    let mut session = store.start_backup(&s2, OWNER).expect("start");
    assert_eq!(session.base(), Some(&s1));
    let previous = session
        .previous_index("root.pxar.didx")
        .expect("previous")
        .expect("listed");
    assert_eq!(previous.chunk_count(), 3);
    assert!(
        previous
            .digests()
            .iter()
            .all(|digest| session.is_known(digest))
    );
    assert_eq!(
        session.previous_index("absent.didx").expect("not listed"),
        None
    );
    for dir in [&s1, &s2] {
        let err = store.forget_snapshot(dir).expect_err("in use");
        assert!(err.is_contention(), "{dir}: {err:?}");
        assert!(store.snapshot_exists(dir).expect("stat"));
    }
    // Protection and shared users are unaffected by the base lock; the new one is exclusive.
    assert!(store.open_reader(&s1).is_ok(), "readers share the base");
    let err = store.open_reader(&s2).expect_err("being written");
    assert!(err.is_contention(), "{err:?}");
    let writer = session
        .create_dynamic_index("root.pxar.didx")
        .expect("writer");
    for (digest, size) in previous.digests().iter().zip([100, 250, 7]) {
        session
            .append_chunk(&writer, digest, size)
            .expect("append known");
    }
    let info = session.close_index(writer).expect("close");
    let mut manifest = Manifest::new(&s2);
    manifest.add_file(info).expect("add");
    session.finish(manifest).expect("finish");
    store
        .forget_snapshot(&s1)
        .expect("the base is free after finish");
    assert!(
        snapshot_digests(&store, &s2)
            .iter()
            .all(|digest| chunk_exists(&store, digest))
    );
}

fn base_removed_behind_the_session_fails_finish(env: &impl Env) {
    let store = new_datastore(env);
    let s1 = snapshot("vm/100", "2024-01-01T00:00:00Z");
    backup(&store, &s1, &first_archives());
    let s2 = snapshot("vm/100", "2024-01-02T00:00:00Z");
    let mut session = store.start_backup(&s2, OWNER).expect("start");
    assert_eq!(session.base(), Some(&s1));
    let info = write_dynamic(&mut session, "other.didx", &[data(50, 64)]);
    remove_behind_the_back(&store, &s1);
    let err = session
        .previous_index("root.pxar.didx")
        .expect_err("base gone");
    assert!(matches!(err, Error::BaseVanished { .. }), "{err:?}");
    let mut manifest = Manifest::new(&s2);
    manifest.add_file(info).expect("add");
    match session.finish(manifest) {
        Err(Error::BaseVanished { dir, base }) => assert_eq!((dir, base), (s2.clone(), s1.clone())),
        other => panic!("finish must fail: {other:?}"),
    }
    assert!(
        !store.snapshot_exists(&s2).expect("stat"),
        "the new snapshot is removed"
    );
    // The group existed before the session (it did not claim it): a failed session undoes
    // only its own changes, so the group stays, with its owner, though it is empty now.
    assert_eq!(store.list_groups().expect("groups").len(), 1);
    assert_eq!(
        store.group_owner(&s2.group).expect("owner").as_deref(),
        Some(OWNER)
    );
    let s3 = snapshot("vm/100", "2024-01-03T00:00:00Z");
    let outcome = backup(&store, &s3, &first_archives());
    assert_eq!(outcome.base, None);
}

fn abort_and_drop_remove_the_snapshot(env: &impl Env) {
    let store = new_datastore(env);
    // Abort in a new group: snapshot, group and every lock file go.
    let s1 = snapshot("host/db", "2024-01-01T00:00:00Z");
    let mut session = store.start_backup(&s1, OWNER).expect("start");
    assert_eq!(
        store.group_owner(&s1.group).expect("owner").as_deref(),
        Some(OWNER)
    );
    let snapshot_dir = store.snapshot_path(&s1);
    write_dynamic(&mut session, "done.didx", &[data(1, 10)]);
    let open = session.create_dynamic_index("open.didx").expect("writer");
    assert!(exists(&store, &snapshot_dir.join("open.tmp_didx")));
    let blob = blob::encode(b"conf").expect("blob");
    session.add_blob("conf.blob", &blob).expect("blob");
    drop(open);
    session.abort().expect("abort");
    assert!(!exists(&store, &snapshot_dir));
    assert!(
        !exists(&store, &store.group_path(&s1.group)),
        "the new group is removed"
    );
    let locks = store
        .world()
        .read_dir(&store.base().join(".locks"))
        .expect("lock dir");
    assert!(locks.is_empty(), "lock files left: {locks:?}");
    assert_eq!(store.process_locker().writer_count(), 0);
    backup(&store, &s1, &first_archives());

    // Drop in a group with a finished snapshot: only the new snapshot goes.
    let s2 = snapshot("host/db", "2024-01-02T00:00:00Z");
    let mut session = store.start_backup(&s2, OWNER).expect("start");
    write_dynamic(&mut session, "root.pxar.didx", &[data(2, 10)]);
    drop(session);
    assert!(!store.snapshot_exists(&s2).expect("stat"));
    let listed = store.list_snapshots(&s1.group).expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|info| info.dir.clone())
            .collect::<Vec<_>>(),
        vec![s1.clone()]
    );
    assert_eq!(store.process_locker().writer_count(), 0);
    let outcome = backup(&store, &s2, &first_archives());
    assert_eq!(outcome.base, Some(s1));
}

fn append_only_known_chunks(env: &impl Env) {
    let store = new_datastore(env);
    let dir = snapshot("vm/100", "2024-01-01T00:00:00Z");
    let mut session = store.start_backup(&dir, OWNER).expect("start");
    let writer = session
        .create_dynamic_index("root.pxar.didx")
        .expect("writer");
    let stranger = Digest::of(b"never uploaded");
    assert!(!session.is_known(&stranger));
    let err = session
        .append_chunk(&writer, &stranger, 14)
        .expect_err("unknown chunk");
    assert!(
        matches!(err, Error::Protocol { ref dir, .. } if *dir == *session.dir()),
        "{err:?}"
    );
    let chunk = Chunk::from_data(b"uploaded").expect("chunk");
    session.upload_chunk(&chunk).expect("upload");
    assert!(session.is_known(chunk.digest()));
    let err = session
        .append_chunk(&writer, chunk.digest(), 9)
        .expect_err("wrong size");
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    session
        .append_chunk(&writer, chunk.digest(), 8)
        .expect("known chunk");
    let info = session.close_index(writer).expect("close");
    assert_eq!(info.size, 8);
    let stats = session.upload_stats();
    assert_eq!((stats.count, stats.size), (1, 8));
    drop(session);
    assert!(!store.snapshot_exists(&dir).expect("stat"));
}

fn session_input_is_validated(env: &impl Env) {
    let store = new_datastore(env);
    let dir = snapshot("vm/100", "2024-01-01T00:00:00Z");
    let mut session = store.start_backup(&dir, OWNER).expect("start");
    for name in ["a/b.didx", "x.txt", "x.fidx", ".didx", "x.tmp_didx"] {
        let err = session
            .create_dynamic_index(name)
            .expect_err("bad dynamic name");
        assert!(matches!(err, Error::Protocol { .. }), "{name}: {err:?}");
    }
    let err = session
        .create_fixed_index("x.fidx", 3000)
        .expect_err("bad chunk size");
    assert!(
        matches!(
            err,
            Error::Index(IndexError::BadChunkSize { chunk_size: 3000 })
        ),
        "{err:?}"
    );
    let good = blob::encode(b"payload").expect("blob");
    let err = session
        .add_blob(MANIFEST_BLOB_NAME, &good)
        .expect_err("the manifest is no blob");
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    let mut corrupt = good.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    let err = session.add_blob("conf.blob", &corrupt).expect_err("CRC");
    assert!(
        matches!(err, Error::Blob(blob::BlobError::CrcMismatch { .. })),
        "{err:?}"
    );
    assert!(!exists(
        &store,
        &store.snapshot_path(&dir).join("conf.blob")
    ));
    session.add_blob("conf.blob", &good).expect("valid blob");
    let err = session.add_blob("conf.blob", &good).expect_err("twice");
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    let writer = session.create_dynamic_index("root.didx").expect("writer");
    let err = session
        .create_dynamic_index("root.didx")
        .expect_err("same archive twice");
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    // Finish with a writer still open fails and removes the snapshot.
    let mut manifest = Manifest::new(&dir);
    manifest
        .add_file(FileInfo::for_blob("conf.blob", &good).expect("info"))
        .expect("add");
    let _ = writer;
    let err = session.finish(manifest).expect_err("writer open");
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    assert!(!store.snapshot_exists(&dir).expect("stat"));
    // A session that wrote nothing cannot finish.
    let session = store.start_backup(&dir, OWNER).expect("start again");
    let err = session.finish(Manifest::new(&dir)).expect_err("no files");
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    assert!(!store.snapshot_exists(&dir).expect("stat"));
}

fn manifest_must_list_exactly_the_written_files(env: &impl Env) {
    let store = new_datastore(env);
    let dir = snapshot("vm/100", "2024-01-01T00:00:00Z");
    type Mutate = fn(&mut Manifest);
    let cases: [(&str, Mutate); 5] = [
        ("wrong checksum", |m| {
            m.files[0].csum = Digest::of(b"something else")
        }),
        ("wrong size", |m| m.files[0].size += 1),
        ("missing file", |m| {
            m.files.remove(1);
        }),
        ("extra file", |m| {
            let extra = FileInfo::new("ghost.didx", 0, Digest::of(b"")).expect("info");
            m.add_file(extra).expect("add");
        }),
        ("other snapshot", |m| {
            m.backup_time = BackupTime::from_epoch(0).expect("epoch")
        }),
    ];
    for (what, mutate) in cases {
        let mut session = store.start_backup(&dir, OWNER).expect("start");
        let index = write_dynamic(&mut session, "root.pxar.didx", &[data(1, 10), data(2, 20)]);
        let blob_bytes = blob::encode(b"conf").expect("blob");
        let blob_info = session.add_blob("conf.blob", &blob_bytes).expect("blob");
        let mut manifest = Manifest::new(&dir);
        manifest.add_file(index).expect("add");
        manifest.add_file(blob_info).expect("add");
        mutate(&mut manifest);
        let err = session.finish(manifest).expect_err(what);
        assert!(matches!(err, Error::Protocol { .. }), "{what}: {err:?}");
        assert!(
            !store.snapshot_exists(&dir).expect("stat"),
            "{what}: snapshot left"
        );
    }
    assert!(store.list_groups().expect("groups").is_empty());
}

fn owner_is_checked_and_can_be_changed(env: &impl Env) {
    let store = new_datastore(env);
    let s1 = snapshot("vm/100", "2024-01-01T00:00:00Z");
    backup(&store, &s1, &first_archives());
    let s2 = snapshot("vm/100", "2024-01-02T00:00:00Z");
    match store.start_backup(&s2, "bob@pbs") {
        Err(Error::OwnerMismatch {
            group,
            owner,
            requested,
        }) => {
            assert_eq!(
                (group, owner.as_str(), requested.as_str()),
                (s1.group.clone(), OWNER, "bob@pbs")
            );
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("bob may not back up alice's group"),
    }
    assert!(!store.snapshot_exists(&s2).expect("stat"));
    for bad in ["", "bob\nroot", "tab\there"] {
        let err = store.start_backup(&s2, bad).expect_err("invalid owner");
        assert!(matches!(err, Error::InvalidOwner(_)), "{bad:?}: {err:?}");
        let err = store
            .set_group_owner(&s1.group, bad)
            .expect_err("invalid owner");
        assert!(matches!(err, Error::InvalidOwner(_)), "{bad:?}: {err:?}");
    }
    store
        .set_group_owner(&s1.group, "bob@pbs")
        .expect("change owner");
    assert_eq!(
        store.group_owner(&s1.group).expect("owner").as_deref(),
        Some("bob@pbs")
    );
    let owner_file = store
        .world()
        .read_file(&store.group_path(&s1.group).join("owner"))
        .expect("read");
    assert_eq!(owner_file, b"bob@pbs\n");
    let err = store.start_backup(&s2, OWNER).expect_err("alice lost it");
    assert!(matches!(err, Error::OwnerMismatch { .. }), "{err:?}");
    backup_snapshot(&store, &s2, "bob@pbs", &first_archives()).expect("bob's backup");
    // A group without a recorded owner takes no backups until one is set.
    store
        .world()
        .remove_file(&store.group_path(&s1.group).join("owner"))
        .expect("unlink");
    assert_eq!(store.group_owner(&s1.group).expect("owner"), None);
    let s3 = snapshot("vm/100", "2024-01-03T00:00:00Z");
    let err = store.start_backup(&s3, OWNER).expect_err("no owner");
    assert!(
        matches!(err, Error::NoOwner(ref group) if *group == s1.group),
        "{err:?}"
    );
    let missing = BackupGroup::from_relative_path("ct/9").expect("group");
    assert!(matches!(
        store.set_group_owner(&missing, OWNER),
        Err(Error::GroupNotFound(_))
    ));
    assert_eq!(store.group_owner(&missing).expect("owner"), None);
}

fn reader_blocks_forget_and_serves_as_base(env: &impl Env) {
    let store = new_datastore(env);
    let s1 = snapshot("vm/100", "2024-01-01T00:00:00Z");
    backup(&store, &s1, &first_archives());
    let mut reader = store.open_reader(&s1).expect("reader");
    let err = store.forget_snapshot(&s1).expect_err("being read");
    assert!(err.is_contention(), "{err:?}");
    assert!(store.snapshot_exists(&s1).expect("stat"));
    // A backup uses the snapshot as its base while the reader runs.
    let s2 = snapshot("vm/100", "2024-01-02T00:00:00Z");
    let outcome = backup(&store, &s2, &first_archives());
    assert_eq!(outcome.base, Some(s1.clone()));
    assert_eq!((outcome.uploaded_chunks, outcome.reused_chunks), (0, 7));
    let index = reader.open_index("root.pxar.didx").expect("index");
    let first = reader.read_chunk(&index.digests()[0]).expect("chunk");
    assert_eq!(first, data(10, 100));
    drop(reader);
    store.forget_snapshot(&s1).expect("forget after the reader");
}

fn reader_serves_only_announced_chunks(env: &impl Env) {
    let store = new_datastore(env);
    let dir = snapshot("vm/100", "2024-01-01T00:00:00Z");
    backup(&store, &dir, &first_archives());
    let mut reader = store.open_reader(&dir).expect("reader");
    assert_eq!(reader.dir(), &dir);
    let fixed_digest = Digest::of(&data(1, 4096));
    let dynamic_digest = Digest::of(&data(10, 100));
    match reader.read_chunk(&fixed_digest) {
        Err(Error::ChunkNotAllowed { dir: got, digest }) => {
            assert_eq!((got, digest), (dir.clone(), fixed_digest));
        }
        other => panic!("an unannounced chunk was served: {other:?}"),
    }
    let bytes = reader
        .download("drive-scsi0.img.fidx")
        .expect("download index");
    assert_eq!(
        IndexFile::parse(&bytes).expect("parse").digests()[0],
        fixed_digest
    );
    assert_eq!(
        reader.read_chunk(&fixed_digest).expect("announced"),
        data(1, 4096)
    );
    // Announcing one index does not announce another's chunks.
    assert!(matches!(
        reader.read_chunk(&dynamic_digest),
        Err(Error::ChunkNotAllowed { .. })
    ));
    let err = reader.download("nope.blob").expect_err("not listed");
    assert!(
        matches!(err, Error::NotInManifest { ref name, .. } if name == "nope.blob"),
        "{err:?}"
    );
    let err = reader.download("../../etc/passwd").expect_err("not listed");
    assert!(matches!(err, Error::NotInManifest { .. }), "{err:?}");
    let manifest = reader
        .download(MANIFEST_BLOB_NAME)
        .expect("the manifest itself");
    assert_eq!(
        &Manifest::from_blob(&manifest).expect("parse"),
        reader.manifest()
    );
    let err = reader
        .open_index("qemu-server.conf.blob")
        .expect_err("a blob is no index");
    assert!(
        matches!(err, Error::Index(IndexError::BadArchiveName { .. })),
        "{err:?}"
    );
    let conf = reader.download("qemu-server.conf.blob").expect("blob");
    assert_eq!(&*blob::decode(&conf).expect("blob"), b"memory: 512\n");
}

fn reader_needs_an_existing_unlocked_snapshot(env: &impl Env) {
    let store = new_datastore(env);
    let missing = snapshot("vm/100", "2024-01-01T00:00:00Z");
    match store.open_reader(&missing) {
        Err(Error::SnapshotNotFound(dir)) => assert_eq!(dir, missing),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("a reader opened a missing snapshot"),
    }
    let session = store.start_backup(&missing, OWNER).expect("start");
    let err = store.open_reader(&missing).expect_err("being written");
    assert!(err.is_contention(), "{err:?}");
    drop(session);
    assert!(matches!(
        store.open_reader(&missing),
        Err(Error::SnapshotNotFound(_))
    ));
}

fn notes_and_owner_round_trip_and_contend_with_a_backup(env: &impl Env) {
    let store = new_datastore(env);
    let s1 = snapshot("vm/100", "2024-01-01T00:00:00Z");
    let group = s1.group.clone();
    let missing = BackupGroup::from_relative_path("ct/9").expect("group");
    assert_eq!(store.group_notes(&missing).expect("notes"), "");
    assert!(matches!(
        store.set_group_notes(&missing, "x"),
        Err(Error::GroupNotFound(_))
    ));
    backup(&store, &s1, &first_archives());
    assert_eq!(store.group_notes(&group).expect("notes"), "");
    store
        .set_group_notes(&group, "first\nsecond")
        .expect("set notes");
    assert_eq!(store.group_notes(&group).expect("notes"), "first\nsecond");
    store
        .set_group_notes(&group, "short")
        .expect("replace notes");
    assert_eq!(store.group_notes(&group).expect("notes"), "short");
    store
        .set_snapshot_notes(&s1, "snapshot note")
        .expect("snapshot notes");
    assert_eq!(
        store
            .load_manifest(&s1)
            .expect("manifest")
            .notes()
            .expect("shape"),
        Some("snapshot note")
    );
    let gone = snapshot("vm/100", "2023-01-01T00:00:00Z");
    assert!(matches!(
        store.set_snapshot_notes(&gone, "x"),
        Err(Error::SnapshotNotFound(_))
    ));
    // A running backup holds the group: owner and group notes fail busy, unchanged.
    let s2 = snapshot("vm/100", "2024-01-02T00:00:00Z");
    let session = store.start_backup(&s2, OWNER).expect("start");
    let err = store.set_group_notes(&group, "during").expect_err("busy");
    assert!(err.is_contention(), "{err:?}");
    let err = store.set_group_owner(&group, "bob@pbs").expect_err("busy");
    assert!(err.is_contention(), "{err:?}");
    assert_eq!(store.group_notes(&group).expect("notes"), "short");
    assert_eq!(
        store.group_owner(&group).expect("owner").as_deref(),
        Some(OWNER)
    );
    // Snapshot notes of the base only need its manifest lock.
    store
        .set_snapshot_notes(&s1, "while backing up")
        .expect("base notes");
    // The running snapshot has no manifest yet.
    let err = store.set_snapshot_notes(&s2, "x").expect_err("unfinished");
    assert!(
        matches!(err, Error::Manifest(ref inner) if inner.is_not_found()),
        "{err:?}"
    );
    drop(session);
    store.set_group_notes(&group, "after").expect("free again");
    assert_eq!(store.group_notes(&group).expect("notes"), "after");
    assert_eq!(
        store
            .load_manifest(&s1)
            .expect("manifest")
            .notes()
            .expect("shape"),
        Some("while backing up")
    );
}

fn process_locker_counts_the_session(env: &impl Env) {
    let store = new_datastore(env);
    let locker = store.process_locker().clone();
    assert_eq!(
        (locker.writer_count(), locker.oldest_shared_lock()),
        (0, None)
    );
    let before = store.world().now();
    let s1 = snapshot("vm/100", "2024-01-01T00:00:00Z");
    let mut session = store.start_backup(&s1, OWNER).expect("start");
    let after = store.world().now();
    assert_eq!(locker.writer_count(), 1);
    let started = locker.oldest_shared_lock().expect("a writer is registered");
    assert!(
        (before..=after).contains(&started),
        "{before} <= {started} <= {after}"
    );
    // A second session (another group) adds a writer; the oldest stays.
    let other = store
        .start_backup(&snapshot("vm/101", "2024-01-01T00:00:00Z"), OWNER)
        .expect("start");
    assert_eq!(locker.writer_count(), 2);
    assert_eq!(locker.oldest_shared_lock(), Some(started));
    other.abort().expect("abort");
    assert_eq!(locker.writer_count(), 1);
    let info = write_dynamic(&mut session, "root.pxar.didx", &[data(1, 10)]);
    let mut manifest = Manifest::new(&s1);
    manifest.add_file(info).expect("add");
    session.finish(manifest).expect("finish");
    assert_eq!(
        (locker.writer_count(), locker.oldest_shared_lock()),
        (0, None)
    );
    // A session dropped without finishing unregisters too.
    let session = store
        .start_backup(&snapshot("vm/100", "2024-01-02T00:00:00Z"), OWNER)
        .expect("start");
    assert_eq!(locker.writer_count(), 1);
    drop(session);
    assert_eq!(
        (locker.writer_count(), locker.oldest_shared_lock()),
        (0, None)
    );
}
