//! Index files and the manifest through the world: writer → rename → reader, on the real and
//! the simulated world; plus property tests of the pure parsers (round trips, no panics).

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use store::backup_info::{
    BACKUP_TIME_MAX, BACKUP_TIME_MIN, BackupDir, BackupId, BackupTime, CivilTime,
};
use store::chunk_store::SyncLevel;
use store::digest::Digest;
use store::index::{
    ArchiveKind, DynamicIndex, DynamicIndexWriter, FixedIndex, FixedIndexWriter, IndexError,
    IndexFile,
};
use store::manifest::{
    FileInfo, MANIFEST_BLOB_NAME, Manifest, ManifestError, SnapshotVerifyState, VerifyState,
};
use store::world::World;

use crate::both_worlds;
use crate::support::{Env, new_datastore, overwrite};
use store::datastore::Error;

both_worlds!(
    fixed_index_publish_and_read,
    dynamic_index_publish_and_read,
    unclosed_writer_leaves_nothing,
    damaged_index_files_are_typed,
    manifest_store_and_load,
    synced_writers,
);

fn snapshot_dir(env: &impl Env) -> (BackupDir, PathBuf) {
    let snapshot = BackupDir::from_relative_path("vm/100/2024-01-02T03:04:05Z").expect("valid");
    let dir = env.root().join(snapshot.relative_path());
    env.world()
        .create_dir_all(&dir)
        .expect("create the snapshot directory");
    (snapshot, dir)
}

fn digest(n: u64) -> Digest {
    Digest::of(&n.to_le_bytes())
}

/// The archive names of a directory, as listings and GC see them (temporary files excluded).
fn archives(world: &impl World, dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = world
        .read_dir(dir)
        .expect("list the snapshot directory")
        .into_iter()
        .filter_map(|entry| entry.name_str().map(str::to_owned))
        .filter(|name| ArchiveKind::from_name(name).is_some())
        .collect();
    names.sort();
    names
}

fn all_names(world: &impl World, dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = world
        .read_dir(dir)
        .expect("list the snapshot directory")
        .into_iter()
        .filter_map(|entry| entry.name_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

fn fixed_index_publish_and_read(env: &impl Env) {
    let world = env.world();
    let (_, dir) = snapshot_dir(env);
    let name = "drive-scsi0.img.fidx";
    // 9 MiB in 4 MiB chunks: three chunks, the last one partial.
    let size = 9 << 20;
    let before = world.now();
    let mut writer =
        FixedIndexWriter::create(world.clone(), &dir, name, size, 4 << 20).expect("create");
    assert_eq!(writer.chunk_count(), 3);
    assert_eq!(writer.temp_path(), dir.join("drive-scsi0.img.tmp_fidx"));
    assert!(
        world
            .try_metadata(writer.temp_path())
            .expect("stat")
            .is_some()
    );
    assert!(
        archives(&world, &dir).is_empty(),
        "an in-progress index must be invisible"
    );
    // Digests arrive out of order, and a chunk may be set twice.
    for index in [2, 0, 1, 0] {
        writer.add_digest(index, digest(index)).expect("in range");
    }
    assert!(matches!(
        writer.add_digest(3, digest(3)),
        Err(IndexError::ChunkIndexOutOfRange { index: 3, count: 3 })
    ));
    let closed = writer.close().expect("close");
    assert_eq!(closed.path, dir.join(name));
    assert_eq!(all_names(&world, &dir), vec![name.to_owned()]);
    let index = FixedIndex::open(&world, &closed.path).expect("open");
    assert_eq!(index.digests(), &[digest(0), digest(1), digest(2)]);
    assert_eq!(index.index_bytes(), size);
    assert_eq!(index.chunk_size(), 4 << 20);
    assert!((before..=world.now()).contains(&index.ctime()));
    assert_eq!(index.compute_csum(), (closed.csum, closed.index_bytes));
    let any = IndexFile::open(&world, &closed.path).expect("open as any index");
    assert_eq!(any.kind(), ArchiveKind::FixedIndex);
    assert_eq!(any.digests(), index.digests());
    assert_eq!(any.uuid(), index.uuid());
}

fn dynamic_index_publish_and_read(env: &impl Env) {
    let world = env.world();
    let (_, dir) = snapshot_dir(env);
    let mut writer = DynamicIndexWriter::create(world.clone(), &dir, "root.pxar.didx")
        .expect("create")
        .with_uuid(*b"fixed uuid bytes");
    assert_eq!(writer.temp_path(), dir.join("root.pxar.tmp_didx"));
    for (n, end) in [100u64, 4196, 4197, 10_000].into_iter().enumerate() {
        writer.add_chunk(end, digest(n as u64)).expect("increasing");
    }
    assert!(matches!(
        writer.add_chunk(10_000, digest(9)),
        Err(IndexError::OffsetsNotMonotone {
            index: 4,
            previous: 10_000,
            end: 10_000
        })
    ));
    assert_eq!(writer.chunk_count(), 4);
    let closed = writer.close().expect("close");
    assert_eq!((closed.index_bytes, closed.chunk_count), (10_000, 4));
    let index = DynamicIndex::open(&world, &closed.path).expect("open");
    assert_eq!(index.uuid(), b"fixed uuid bytes");
    assert_eq!(index.end_offsets(), &[100, 4196, 4197, 10_000]);
    assert_eq!(index.compute_csum(), (closed.csum, 10_000));
    assert_eq!(all_names(&world, &dir), vec!["root.pxar.didx".to_owned()]);
    // A second writer of another archive gets another uuid.
    let mut other = DynamicIndexWriter::create(world.clone(), &dir, "b.didx").expect("create");
    other.add_chunk(1, digest(0)).expect("first chunk");
    let other = other.close().expect("close");
    let other = IndexFile::open(&world, &other.path).expect("open");
    assert_ne!(other.uuid(), index.uuid());
}

fn unclosed_writer_leaves_nothing(env: &impl Env) {
    let world = env.world();
    let (_, dir) = snapshot_dir(env);
    let mut dynamic = DynamicIndexWriter::create(world.clone(), &dir, "a.didx").expect("create");
    dynamic.add_chunk(10, digest(1)).expect("chunk");
    let fixed = FixedIndexWriter::create(world.clone(), &dir, "b.fidx", 10, 4096).expect("create");
    assert_eq!(
        all_names(&world, &dir),
        vec!["a.tmp_didx".to_owned(), "b.tmp_fidx".to_owned()]
    );
    drop(dynamic);
    drop(fixed);
    assert!(all_names(&world, &dir).is_empty());
    // A close that fails before the rename also cleans up.
    let mut missing =
        FixedIndexWriter::create(world.clone(), &dir, "c.fidx", 3 << 12, 4096).expect("create");
    missing.add_digest(0, digest(0)).expect("in range");
    missing.add_digest(2, digest(2)).expect("in range");
    assert!(matches!(
        missing.close(),
        Err(IndexError::MissingDigest { index: 1 })
    ));
    assert!(all_names(&world, &dir).is_empty());
    // Names that are not archives of the writer's kind are refused before touching the disk.
    for name in ["c.didx", "c.tmp_fidx", ".fidx", "x/c.fidx", "c.blob"] {
        assert!(matches!(
            FixedIndexWriter::create(world.clone(), &dir, name, 1, 4096),
            Err(IndexError::BadArchiveName { .. })
        ));
    }
    assert!(matches!(
        FixedIndexWriter::create(world.clone(), &dir, "d.fidx", 1, 3),
        Err(IndexError::BadChunkSize { chunk_size: 3 })
    ));
    assert!(all_names(&world, &dir).is_empty());
    // A writer in a missing directory is an I/O error with the path.
    let gone = dir.join("missing");
    match DynamicIndexWriter::create(world.clone(), &gone, "a.didx") {
        Err(error @ IndexError::Io { .. }) => assert!(error.is_not_found()),
        other => panic!("expected a not-found I/O error, got {:?}", other.err()),
    }
}

fn damaged_index_files_are_typed(env: &impl Env) {
    let world = env.world();
    let (_, dir) = snapshot_dir(env);
    let mut writer =
        FixedIndexWriter::create(world.clone(), &dir, "a.fidx", 8192, 4096).expect("create");
    writer.add_digest(0, digest(0)).expect("in range");
    writer.add_digest(1, digest(1)).expect("in range");
    let path = writer.close().expect("close").path;
    let good = world.read_file(&path).expect("read");
    overwrite(&world, &path, &good[..100]);
    assert!(matches!(
        FixedIndex::open(&world, &path),
        Err(IndexError::TooShort { len: 100 })
    ));
    overwrite(&world, &path, &good[..good.len() - 1]);
    assert!(matches!(
        FixedIndex::open(&world, &path),
        Err(IndexError::BodyLength { .. })
    ));
    let mut flipped = good.clone();
    flipped[4096 + 3] ^= 1;
    overwrite(&world, &path, &flipped);
    assert!(matches!(
        IndexFile::open(&world, &path),
        Err(IndexError::ChecksumMismatch { .. })
    ));
    // A dynamic index under a fixed-index name.
    let dynamic = DynamicIndex::new([0; 16], 0, &[(5, digest(5))]).expect("valid");
    overwrite(&world, &path, &dynamic.to_bytes());
    assert!(matches!(
        IndexFile::open(&world, &path),
        Err(IndexError::BadMagic { .. })
    ));
    assert!(IndexFile::parse(&dynamic.to_bytes()).is_ok());
    // Missing files and non-index names.
    let missing = IndexFile::open(&world, &dir.join("gone.didx")).expect_err("missing");
    assert!(missing.is_not_found(), "{missing}");
    assert!(matches!(
        IndexFile::open(&world, &dir.join("x.blob")),
        Err(IndexError::BadArchiveName { .. })
    ));
}

fn manifest_store_and_load(env: &impl Env) {
    let store = new_datastore(env);
    let world = env.world();
    let snapshot = BackupDir::from_relative_path("vm/100/2024-01-02T03:04:05Z").expect("valid");
    let dir = store.snapshot_path(&snapshot);
    world.create_dir_all(&dir).expect("mkdir snapshot");
    let missing = Manifest::load_from_dir(&world, &dir).expect_err("no manifest yet");
    assert!(missing.is_not_found(), "{missing}");
    let mut writer =
        DynamicIndexWriter::create(world.clone(), &dir, "root.pxar.didx").expect("create");
    writer.add_chunk(42, digest(1)).expect("chunk");
    let closed = writer.close().expect("close");
    let mut manifest = Manifest::new(&snapshot);
    manifest
        .add_file(FileInfo::for_index(&closed).expect("archive name"))
        .expect("add");
    let conf = b"a configuration blob";
    manifest
        .add_file(FileInfo::for_blob("qemu-server.conf.blob", conf).expect("name"))
        .expect("add");
    let lock = store.lock_manifest(&snapshot).expect("manifest lock");
    store
        .store_manifest_locked(&lock, &manifest)
        .expect("store");
    let path = dir.join(MANIFEST_BLOB_NAME);
    assert_eq!(
        all_names(&world, &dir),
        vec![MANIFEST_BLOB_NAME.to_owned(), "root.pxar.didx".to_owned()]
    );
    let loaded = Manifest::load(&world, &path).expect("load");
    assert_eq!(loaded, manifest);
    assert_eq!(loaded.backup_dir(), snapshot);
    let entry = loaded.file("root.pxar.didx").expect("listed");
    // The manifest's (size, csum) of an index is what the reader recomputes.
    let index = IndexFile::open(&world, &dir.join(&entry.filename)).expect("open");
    assert_eq!(index.compute_csum(), (entry.csum, entry.size));
    // Replacing it leaves no temporary file behind.
    let mut updated = loaded;
    updated.set_notes(Some("checked by hand"));
    let state = SnapshotVerifyState {
        state: VerifyState::Ok,
        upid: "verify-1".to_owned(),
    };
    updated.set_verify_state(&state);
    store
        .store_manifest_locked(&lock, &updated)
        .expect("replace");
    assert_eq!(all_names(&world, &dir).len(), 2);
    let reloaded = Manifest::load_from_dir(&world, &dir).expect("load");
    assert_eq!(reloaded.notes().expect("shape"), Some("checked by hand"));
    assert_eq!(reloaded.verify_state().expect("shape"), Some(state));
    // A manifest of another snapshot is refused under this lock, and nothing changes.
    let other = BackupDir::from_relative_path("vm/100/2024-01-02T03:04:06Z").expect("valid");
    assert!(matches!(
        store.store_manifest_locked(&lock, &Manifest::new(&other)),
        Err(Error::ManifestLockMismatch { manifest, locked }) if manifest == other && locked == snapshot
    ));
    assert_eq!(Manifest::load(&world, &path).expect("load"), reloaded);
    drop(lock);
    // Damage is typed.
    let mut bytes = world.read_file(&path).expect("read");
    let last = bytes.len() - 2;
    bytes[last] ^= 0x20;
    overwrite(&world, &path, &bytes);
    assert!(matches!(
        Manifest::load(&world, &path),
        Err(ManifestError::Blob(_))
    ));
    // Storing into a missing directory fails with the path and leaves nothing.
    let gone = BackupDir::from_relative_path("vm/101/2024-01-02T03:04:05Z").expect("valid");
    let lock = store.lock_manifest(&gone).expect("manifest lock");
    let error = store
        .store_manifest_locked(&lock, &Manifest::new(&gone))
        .expect_err("no dir");
    assert!(
        matches!(&error, Error::Manifest(err) if err.is_not_found()),
        "{error}"
    );
    assert_eq!(
        world
            .try_metadata(&store.snapshot_path(&gone))
            .expect("stat"),
        None
    );
}

fn synced_writers(env: &impl Env) {
    let world = env.world();
    let (_, dir) = snapshot_dir(env);
    for (n, sync_level) in [SyncLevel::None, SyncLevel::File, SyncLevel::Filesystem]
        .into_iter()
        .enumerate()
    {
        let name = format!("disk{n}.fidx");
        let mut fixed = FixedIndexWriter::create(world.clone(), &dir, &name, 1, 4096)
            .expect("create")
            .with_sync_level(sync_level);
        fixed.add_digest(0, digest(0)).expect("in range");
        let fixed = fixed.close().expect("close");
        assert_eq!(
            FixedIndex::open(&world, &fixed.path)
                .expect("open")
                .chunk_count(),
            1
        );
        let name = format!("stream{n}.didx");
        let mut dynamic = DynamicIndexWriter::create(world.clone(), &dir, &name)
            .expect("create")
            .with_sync_level(sync_level);
        dynamic.add_chunk(7, digest(7)).expect("chunk");
        let dynamic = dynamic.close().expect("close");
        assert_eq!(
            DynamicIndex::open(&world, &dynamic.path)
                .expect("open")
                .index_bytes(),
            7
        );
    }
    assert_eq!(archives(&world, &dir).len(), 6);
    assert_eq!(all_names(&world, &dir).len(), 6);
}

fn digest_strategy() -> impl Strategy<Value = Digest> {
    any::<[u8; 32]>().prop_map(Digest)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any valid fixed index survives encode → parse; any single-byte change outside the
    /// ignored header bytes (uuid, ctime, reserved) is rejected; no prefix panics.
    #[test]
    fn fixed_index_round_trip_and_damage(
        chunk_shift in 0u32..=24,
        chunks in 0u64..12,
        short_last in 0u64..4096,
        seed in any::<[u8; 32]>(),
        ctime in any::<i64>(),
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let chunk_size = 1u64 << chunk_shift;
        let shorter_by = short_last.min(chunk_size - 1);
        let size = (chunks * chunk_size).saturating_sub(shorter_by);
        let count = size.div_ceil(chunk_size);
        let digests: Vec<Digest> =
            (0..count).map(|n| Digest::of(&[&seed[..], &n.to_le_bytes()].concat())).collect();
        let uuid: [u8; 16] = seed[..16].try_into().expect("16 bytes");
        let index = FixedIndex::new(uuid, ctime, size, chunk_size, digests)
            .expect("valid by construction");
        let bytes = index.to_bytes();
        prop_assert_eq!(FixedIndex::parse(&bytes).expect("round trip"), index.clone());
        let at = position.index(bytes.len());
        let mut damaged = bytes.clone();
        damaged[at] ^= flip;
        let ignored = (8..32).contains(&at) || (80..4096).contains(&at);
        match FixedIndex::parse(&damaged) {
            Ok(parsed) if ignored => prop_assert_eq!(parsed.digests(), index.digests()),
            Ok(parsed) => {
                // Only a size or chunk size that keeps the chunk count passes; the index read
                // then differs from the one written.
                prop_assert!((64..80).contains(&at), "flip at {} accepted", at);
                prop_assert_ne!(parsed, index.clone());
            }
            Err(error) => prop_assert!(!ignored, "flip at {} rejected: {}", at, error),
        }
        let cut = position.index(bytes.len());
        prop_assert!(IndexFile::parse(&bytes[..cut]).is_err());
    }

    /// Any valid dynamic index survives encode → parse; arbitrary bytes never panic.
    #[test]
    fn dynamic_index_round_trip_and_garbage(
        steps in proptest::collection::vec((1u64..1 << 24, digest_strategy()), 0..20),
        garbage in proptest::collection::vec(any::<u8>(), 0..200),
        ctime in any::<i64>(),
    ) {
        let mut end = 0;
        let mut entries = Vec::new();
        for (len, digest) in steps {
            end += len;
            entries.push((end, digest));
        }
        let index = DynamicIndex::new([7; 16], ctime, &entries).expect("increasing");
        let bytes = index.to_bytes();
        prop_assert_eq!(DynamicIndex::parse(&bytes).expect("round trip"), index.clone());
        prop_assert_eq!(index.index_bytes(), end);
        let mut with_garbage = bytes.clone();
        with_garbage.extend_from_slice(&garbage);
        let parsed = IndexFile::parse(&with_garbage);
        prop_assert_eq!(parsed.is_ok(), garbage.is_empty());
        let mut header_then_garbage = bytes[..4096].to_vec();
        header_then_garbage.extend_from_slice(&garbage);
        let _ = IndexFile::parse(&header_then_garbage);
    }

    /// Backup times round-trip through RFC 3339 over the whole range, and the calendar
    /// fields agree with the text.
    #[test]
    fn backup_time_round_trip(
        epoch in BACKUP_TIME_MIN..=BACKUP_TIME_MAX,
        offset in -86_399i32..=86_399,
    ) {
        let time = BackupTime::from_epoch(epoch).expect("in range");
        let text = time.to_string();
        prop_assert_eq!(BackupTime::parse(&text).expect("canonical form parses"), time);
        let civil = CivilTime::from_epoch(epoch, 0).expect("UTC");
        let expected = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            civil.year, civil.month, civil.day, civil.hour, civil.minute, civil.second
        );
        prop_assert_eq!(text, expected);
        let shifted = CivilTime::from_epoch(epoch, offset).expect("valid offset");
        prop_assert!((1..=53).contains(&shifted.iso_week));
        prop_assert!((1..=7).contains(&shifted.weekday));
    }

    /// Arbitrary text never panics the name parsers, and every accepted id is one plain,
    /// non-hidden path component.
    #[test]
    fn names_never_panic(
        text in ".{0,140}",
        bytes in proptest::collection::vec(any::<u8>(), 0..24),
    ) {
        let ascii: String = bytes.iter().map(|&b| char::from(b & 0x7f)).collect();
        for candidate in [text.as_str(), ascii.as_str()] {
            if let Ok(id) = BackupId::parse(candidate) {
                let path = Path::new(id.as_str());
                prop_assert_eq!(path.components().count(), 1);
                prop_assert!(!id.as_str().starts_with('.'));
                prop_assert!(!id.as_str().contains(['/', '\0']));
            }
            let _ = BackupTime::parse(candidate);
            let _ = BackupDir::from_relative_path(candidate);
            let _ = ArchiveKind::from_name(candidate);
        }
    }
}
