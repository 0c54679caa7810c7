//! Verify on both worlds (what it checks, what it skips, the job-wide chunk cache), and the
//! bad-input group: hostile names and paths, and parsers fed arbitrary or damaged bytes.

use std::path::{Component, Path};

use proptest::prelude::*;
use store::backup_info::{
    BACKUP_ID_LEN_MAX, BackupDir, BackupGroup, BackupId, BackupTime, NameError,
};
use store::blob::{self, BlobError};
use store::chunk_store::{ChunkName, ChunkProblem};
use store::datastore::backup::{ArchiveSpec, backup_snapshot};
use store::datastore::verify::{
    SkipReason, VerifyJob, VerifyOptions, VerifyOutcome, VerifyProblem, verified_at, verify_upid,
};
use store::datastore::{Datastore, Error};
use store::digest::Digest;
use store::index::{
    ArchiveKind, DynamicIndex, DynamicIndexWriter, FixedIndex, FixedIndexWriter, IndexError,
    IndexFile,
};
use store::manifest::{
    FileInfo, MANIFEST_BLOB_NAME, Manifest, ManifestError, SnapshotVerifyState, VerifyState,
};
use store::world::{LockMode, OpenOptions, World, WorldFile};
use store::{Chunk, ChunkStoreError};

use crate::both_worlds;
use crate::support::{Env, SimEnv, new_datastore, overwrite, plant_manifest, snapshot};

const DAY: i64 = 86_400;

/// Chunk size of the fixed indexes of these tests.
const FIXED_CHUNK: usize = 16;

/// Writes a finished snapshot as a backup would: chunks into the chunk store, each archive
/// (`*.didx`, `*.fidx` with 16-byte chunks, or `*.blob` of the parts concatenated), then the
/// manifest.
fn plant<W: World>(store: &Datastore<W>, dir: &BackupDir, archives: &[(&str, &[&[u8]])]) {
    let world = store.world();
    let path = store.snapshot_path(dir);
    world.create_dir_all(&path).expect("mkdir snapshot");
    let mut manifest = Manifest::new(dir);
    for &(name, parts) in archives {
        for part in parts {
            let chunk = Chunk::from_data(part).expect("small chunk");
            store
                .chunk_store()
                .insert_chunk(&chunk)
                .expect("insert chunk");
        }
        let info = match ArchiveKind::from_name(name).expect("archive name") {
            ArchiveKind::DynamicIndex => {
                let mut writer =
                    DynamicIndexWriter::create(world.clone(), &path, name).expect("create didx");
                let mut end = 0;
                for part in parts {
                    end += part.len() as u64;
                    writer.add_chunk(end, Digest::of(part)).expect("append");
                }
                FileInfo::for_index(&writer.close().expect("close didx")).expect("entry")
            }
            ArchiveKind::FixedIndex => {
                let size: usize = parts.iter().map(|part| part.len()).sum();
                let mut writer = FixedIndexWriter::create(
                    world.clone(),
                    &path,
                    name,
                    size as u64,
                    FIXED_CHUNK as u64,
                )
                .expect("create fidx");
                for (index, part) in parts.iter().enumerate() {
                    writer
                        .add_digest(index as u64, Digest::of(part))
                        .expect("in range");
                }
                FileInfo::for_index(&writer.close().expect("close fidx")).expect("entry")
            }
            ArchiveKind::Blob => {
                let bytes = blob::encode(&parts.concat()).expect("small blob");
                overwrite(world, &path.join(name), &bytes);
                FileInfo::for_blob(name, &bytes).expect("entry")
            }
        };
        manifest.add_file(info).expect("unique names");
    }
    plant_manifest(store, dir, &manifest);
}

fn truncate(world: &impl World, path: &Path, len: u64) {
    let file = world
        .open(path, OpenOptions::create_keep())
        .expect("open for truncating");
    file.set_len(len).expect("truncate");
}

fn flip_byte(world: &impl World, path: &Path, at_from_end: usize) {
    let mut bytes = world.read_file(path).expect("read");
    let at = bytes.len() - at_from_end;
    bytes[at] ^= 0x40;
    overwrite(world, path, &bytes);
}

fn verify<W: World>(store: &Datastore<W>, job: &mut VerifyJob, dir: &BackupDir) -> VerifyOutcome {
    store
        .verify_snapshot(job, &VerifyOptions::default(), dir)
        .expect("verify")
}

fn always() -> VerifyOptions {
    VerifyOptions {
        ignore_verified: false,
        ..VerifyOptions::default()
    }
}

fn stored_state<W: World>(store: &Datastore<W>, dir: &BackupDir) -> Option<SnapshotVerifyState> {
    store
        .load_manifest(dir)
        .expect("load")
        .verify_state()
        .expect("shape")
}

const A: &[u8] = b"chunk a: some data";
const B: &[u8] = b"chunk b: other data";
const C: &[u8] = b"chunk c: yet more";
const F0: &[u8] = b"0123456789abcdef";
const F1: &[u8] = b"fedcba98765";

both_worlds!(
    good_snapshot_verifies_and_records_state,
    outdated_state_is_verified_again,
    damaged_chunks_are_typed_and_renamed,
    damaged_index_files_are_typed,
    damaged_blobs_are_typed,
    damaged_manifest_is_reported,
    busy_and_vanished_snapshots_are_skipped,
    job_reads_shared_chunks_once,
    group_and_datastore_order,
    unsaved_state_fails_the_snapshot,
    hostile_input_never_leaves_the_base,
    verify_alongside_backups,
);

fn good_snapshot_verifies_and_records_state(env: &impl Env) {
    let store = new_datastore(env);
    let dir = snapshot("vm/100", "2024-01-01T00:00:00Z");
    plant(
        &store,
        &dir,
        &[
            ("root.pxar.didx", &[A, B, A]),
            ("disk.fidx", &[F0, F1]),
            ("conf.blob", &[C]),
        ],
    );
    assert_eq!(stored_state(&store, &dir), None);
    let mut job = VerifyJob::new();
    let before = store.world().now();
    let outcome = verify(&store, &mut job, &dir);
    let after = store.world().now();
    assert!(outcome.is_ok(), "{outcome:?}");
    assert!(outcome.problems().is_empty());
    // A, B and the two fixed chunks; the repeated A is read once. Blobs are no chunks.
    assert_eq!(job.chunks_hashed(), 4);
    let expected: std::collections::BTreeSet<Digest> =
        [A, B, F0, F1].iter().map(|data| Digest::of(data)).collect();
    assert_eq!(job.verified_chunks(), &expected);
    assert!(job.corrupt_chunks().is_empty());
    let state = stored_state(&store, &dir).expect("a verify state");
    assert_eq!(state.state, VerifyState::Ok);
    let at = verified_at(&state.upid).expect("the time is in the upid");
    assert!(
        (before..=after).contains(&at),
        "{at} not in {before}..={after}"
    );
    assert!(state.upid.starts_with("verify@"), "{}", state.upid);

    // A second run skips it (ignore_verified is the default), reading nothing.
    let mut second = VerifyJob::new();
    let outcome = verify(&store, &mut second, &dir);
    assert_eq!(
        outcome.skip_reason(),
        Some(&SkipReason::AlreadyVerified(state.clone()))
    );
    assert_eq!(second.chunks_hashed(), 0);
    // Unless verified snapshots are not ignored.
    let options = VerifyOptions {
        upid: "again".to_owned(),
        ..always()
    };
    let outcome = store
        .verify_snapshot(&mut second, &options, &dir)
        .expect("verify");
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(second.chunks_hashed(), 4);
    assert!(
        stored_state(&store, &dir)
            .expect("state")
            .upid
            .starts_with("again@")
    );
}

fn set_state<W: World>(store: &Datastore<W>, dir: &BackupDir, state: VerifyState, upid: &str) {
    let state = SnapshotVerifyState {
        state,
        upid: upid.to_owned(),
    };
    store
        .update_manifest(dir, |manifest| manifest.set_verify_state(&state))
        .expect("update");
}

fn outdated_state_is_verified_again(env: &impl Env) {
    let store = new_datastore(env);
    let dir = snapshot("vm/100", "2024-01-01T00:00:00Z");
    plant(&store, &dir, &[("root.pxar.didx", &[A])]);
    let now = store.world().now();
    let outdated = |days| VerifyOptions {
        outdated_after_days: Some(days),
        ..Default::default()
    };
    let check = |options: &VerifyOptions| {
        store
            .verify_snapshot(&mut VerifyJob::new(), options, &dir)
            .expect("verify")
    };

    // A failed state verified three days ago (with a margin: the real clock moves).
    let old = verify_upid("nightly", now - 3 * DAY - 60);
    set_state(&store, &dir, VerifyState::Failed, &old);
    for skipping in [VerifyOptions::default(), outdated(3), outdated(10)] {
        let outcome = check(&skipping);
        assert!(
            matches!(outcome.skip_reason(), Some(SkipReason::AlreadyVerified(state))
                if state.state == VerifyState::Failed && state.upid == old),
            "{skipping:?}: {outcome:?}"
        );
    }
    for verifying in [outdated(2), outdated(0)] {
        set_state(&store, &dir, VerifyState::Failed, &old);
        let outcome = check(&verifying);
        assert!(outcome.is_ok(), "{verifying:?}: {outcome:?}");
        assert_eq!(
            stored_state(&store, &dir).expect("state").state,
            VerifyState::Ok
        );
    }

    // A Proxmox task id carries its start time in hex as the fifth field.
    let pbs = format!(
        "UPID:pbs:000003E8:0000ABCD:00000001:{:08X}:verify:store1:root@pam:",
        now - 5 * DAY
    );
    assert_eq!(verified_at(&pbs), Some(now - 5 * DAY));
    set_state(&store, &dir, VerifyState::Ok, &pbs);
    assert!(check(&outdated(7)).skip_reason().is_some());
    assert!(check(&outdated(4)).is_ok());

    // A state whose time cannot be read is current without an age limit, stale with one.
    set_state(&store, &dir, VerifyState::Ok, "hand-written");
    assert!(check(&VerifyOptions::default()).skip_reason().is_some());
    set_state(&store, &dir, VerifyState::Ok, "hand-written");
    assert!(check(&outdated(1000)).is_ok());
}

/// The age limit follows the clock: a state is outdated after more than `n` whole days.
#[test]
fn outdated_state_after_the_clock_moves() {
    let env = SimEnv::new();
    let world = env.world();
    let store = new_datastore(&env);
    let dir = snapshot("ct/7", "2024-01-01T00:00:00Z");
    plant(&store, &dir, &[("root.pxar.didx", &[A, B])]);
    let options = VerifyOptions {
        outdated_after_days: Some(1),
        ..VerifyOptions::default()
    };
    let mut job = VerifyJob::new();
    assert!(
        store
            .verify_snapshot(&mut job, &options, &dir)
            .expect("verify")
            .is_ok()
    );
    let first = stored_state(&store, &dir).expect("state");
    assert_eq!(verified_at(&first.upid), Some(world.now()));
    world.advance(2 * DAY - 1);
    let outcome = store
        .verify_snapshot(&mut job, &options, &dir)
        .expect("verify");
    assert_eq!(
        outcome.skip_reason(),
        Some(&SkipReason::AlreadyVerified(first.clone()))
    );
    world.advance(1);
    let outcome = store
        .verify_snapshot(&mut job, &options, &dir)
        .expect("verify");
    assert!(outcome.is_ok(), "{outcome:?}");
    let second = stored_state(&store, &dir).expect("state");
    assert_eq!(verified_at(&second.upid), Some(world.now()));
    // The chunks were found good by this job already: not read again.
    assert_eq!(job.chunks_hashed(), 2);
}

fn damaged_chunks_are_typed_and_renamed(env: &impl Env) {
    let store = new_datastore(env);
    let world = store.world();
    let cs = store.chunk_store();
    let dir = snapshot("vm/100", "2024-01-01T00:00:00Z");
    let [flipped, truncated, missing, foreign, good]: [&[u8]; 5] = [
        b"flipped chunk",
        b"truncated chunk",
        b"missing chunk",
        b"foreign chunk",
        b"good",
    ];
    plant(
        &store,
        &dir,
        &[(
            "root.pxar.didx",
            &[flipped, truncated, missing, foreign, good],
        )],
    );
    let digest = |data: &[u8]| Digest::of(data);
    flip_byte(world, &cs.chunk_path(&digest(flipped)), 1);
    truncate(world, &cs.chunk_path(&digest(truncated)), 5);
    world
        .remove_file(&cs.chunk_path(&digest(missing)))
        .expect("remove chunk");
    // A well-formed blob, but of other data than its name says.
    overwrite(
        world,
        &cs.chunk_path(&digest(foreign)),
        &blob::encode(b"impostor").expect("blob"),
    );

    let mut job = VerifyJob::new();
    let outcome = verify(&store, &mut job, &dir);
    assert!(outcome.is_failed(), "{outcome:?}");
    let problems = outcome.problems();
    assert_eq!(problems.len(), 4, "{problems:?}");
    let problem_of = |data: &[u8]| {
        problems
            .iter()
            .find(|problem| match problem {
                VerifyProblem::ChunkCorrupt { digest, .. }
                | VerifyProblem::ChunkDigestMismatch { digest, .. }
                | VerifyProblem::ChunkMissing { digest, .. } => *digest == Digest::of(data),
                _ => false,
            })
            .unwrap_or_else(|| panic!("no problem for {data:?} in {problems:?}"))
    };
    let bad0 = |data: &[u8]| cs.bad_chunk_path(&Digest::of(data), 0);
    assert!(matches!(
        problem_of(flipped),
        VerifyProblem::ChunkCorrupt {
            problem: ChunkProblem::Blob(BlobError::CrcMismatch { .. }),
            renamed_to: Some(to),
            archive,
            ..
        } if *to == bad0(flipped) && archive == "root.pxar.didx"
    ));
    assert!(matches!(
        problem_of(truncated),
        VerifyProblem::ChunkCorrupt {
            problem: ChunkProblem::Blob(BlobError::TooShort { len: 5 }),
            renamed_to: Some(to),
            ..
        } if *to == bad0(truncated)
    ));
    assert!(matches!(
        problem_of(missing),
        VerifyProblem::ChunkMissing { .. }
    ));
    assert!(matches!(
        problem_of(foreign),
        VerifyProblem::ChunkDigestMismatch { actual, renamed_to: Some(to), .. }
            if *actual == Digest::of(b"impostor") && *to == bad0(foreign)
    ));
    // Damaged chunks moved aside; nothing was made up for the missing one.
    for data in [flipped, truncated, foreign] {
        assert!(cs.chunk_metadata(&digest(data)).expect("stat").is_none());
        assert!(world.try_metadata(&bad0(data)).expect("stat").is_some());
    }
    assert!(world.try_metadata(&bad0(missing)).expect("stat").is_none());
    assert!(cs.chunk_metadata(&digest(good)).expect("stat").is_some());
    assert_eq!(job.corrupt_chunks().len(), 4);
    assert_eq!(job.verified_chunks().len(), 1);
    assert_eq!(
        stored_state(&store, &dir).expect("state").state,
        VerifyState::Failed
    );

    // The next backup that has the data stores it again; a new job then finds it good, and
    // the one chunk still absent missing.
    for data in [flipped, truncated, foreign] {
        cs.insert_chunk(&Chunk::from_data(data).expect("chunk"))
            .expect("re-upload");
    }
    let outcome = store
        .verify_snapshot(&mut VerifyJob::new(), &always(), &dir)
        .expect("verify");
    assert!(
        matches!(outcome.problems(), [VerifyProblem::ChunkMissing { digest, .. }]
            if *digest == Digest::of(missing)),
        "{outcome:?}"
    );
    // Damaging a re-uploaded chunk again takes the next `.bad` slot.
    flip_byte(world, &cs.chunk_path(&digest(flipped)), 2);
    store
        .verify_snapshot(&mut VerifyJob::new(), &always(), &dir)
        .expect("verify");
    let bad1 = cs.bad_chunk_path(&digest(flipped), 1);
    assert!(world.try_metadata(&bad1).expect("stat").is_some());
}

fn damaged_index_files_are_typed(env: &impl Env) {
    let store = new_datastore(env);
    let world = store.world();
    let dir = snapshot("vm/100", "2024-01-01T00:00:00Z");
    plant(
        &store,
        &dir,
        &[("root.pxar.didx", &[A, B]), ("disk.fidx", &[F0, F0, F1])],
    );
    let snapshot_dir = store.snapshot_path(&dir);
    let didx = snapshot_dir.join("root.pxar.didx");
    let fidx = snapshot_dir.join("disk.fidx");
    let good_didx = world.read_file(&didx).expect("read");
    let good_fidx = world.read_file(&fidx).expect("read");
    let run = || {
        store
            .verify_snapshot(&mut VerifyJob::new(), &always(), &dir)
            .expect("verify")
    };
    let only_problem = |outcome: &VerifyOutcome| {
        assert!(outcome.is_failed(), "{outcome:?}");
        assert_eq!(outcome.problems().len(), 1, "{outcome:?}");
    };

    // A flipped byte in the body: the index's own checksum catches it.
    flip_byte(world, &didx, 3);
    assert!(matches!(
        IndexFile::open(world, &didx),
        Err(IndexError::ChecksumMismatch { .. })
    ));
    let outcome = run();
    only_problem(&outcome);
    assert!(matches!(
        &outcome.problems()[0],
        VerifyProblem::IndexOpen { file, source: IndexError::ChecksumMismatch { .. } }
            if file == "root.pxar.didx"
    ));
    // Truncated inside the header, and inside the body.
    truncate(world, &didx, 100);
    assert!(matches!(
        IndexFile::open(world, &didx),
        Err(IndexError::TooShort { len: 100 })
    ));
    let outcome = run();
    only_problem(&outcome);
    assert!(matches!(
        &outcome.problems()[0],
        VerifyProblem::IndexOpen {
            source: IndexError::TooShort { len: 100 },
            ..
        }
    ));
    overwrite(world, &didx, &good_didx[..good_didx.len() - 7]);
    let outcome = run();
    only_problem(&outcome);
    assert!(matches!(
        &outcome.problems()[0],
        VerifyProblem::IndexOpen {
            source: IndexError::BodyNotWholeEntries { .. },
            ..
        }
    ));
    // Missing.
    world.remove_file(&didx).expect("remove");
    let outcome = run();
    only_problem(&outcome);
    assert!(matches!(
        &outcome.problems()[0],
        VerifyProblem::IndexOpen { source, .. } if source.is_not_found()
    ));
    // A valid index, but not the one the manifest vouches for.
    let other = DynamicIndex::new([1; 16], 0, &[(5, Digest::of(A))]).expect("valid index");
    overwrite(world, &didx, &other.to_bytes());
    let outcome = run();
    only_problem(&outcome);
    assert!(matches!(
        &outcome.problems()[0],
        VerifyProblem::IndexChecksum { actual, .. } if actual == other.csum()
    ));
    overwrite(world, &didx, &good_didx);
    assert!(run().is_ok());

    // A fixed index whose size field changed within the same chunk count: its checksum (of
    // the digests) still holds, the size does not match the manifest.
    let mut resized = good_fidx.clone();
    resized[64..72].copy_from_slice(&40u64.to_le_bytes());
    overwrite(world, &fidx, &resized);
    assert_eq!(
        FixedIndex::open(world, &fidx)
            .expect("still parses")
            .index_bytes(),
        40
    );
    let outcome = run();
    only_problem(&outcome);
    assert!(matches!(
        &outcome.problems()[0],
        VerifyProblem::IndexSize { file, expected: 43, actual: 40 } if file == "disk.fidx"
    ));
    // A dynamic index under the fixed index's name.
    overwrite(world, &fidx, &good_didx);
    assert!(matches!(
        IndexFile::open(world, &fidx),
        Err(IndexError::BadMagic { .. })
    ));
    let outcome = run();
    only_problem(&outcome);
    assert!(matches!(
        &outcome.problems()[0],
        VerifyProblem::IndexOpen {
            source: IndexError::BadMagic { .. },
            ..
        }
    ));
    overwrite(world, &fidx, &good_fidx);
    assert!(run().is_ok());
}

fn damaged_blobs_are_typed(env: &impl Env) {
    let store = new_datastore(env);
    let world = store.world();
    let dir = snapshot("host/web", "2024-01-01T00:00:00Z");
    plant(
        &store,
        &dir,
        &[
            ("qemu-server.conf.blob", &[b"memory: 512\n"]),
            ("root.pxar.didx", &[A]),
        ],
    );
    let path = store.snapshot_path(&dir).join("qemu-server.conf.blob");
    let good = world.read_file(&path).expect("read");
    let run = || {
        store
            .verify_snapshot(&mut VerifyJob::new(), &always(), &dir)
            .expect("verify")
    };
    let problem = |outcome: VerifyOutcome| match outcome {
        VerifyOutcome::Verified {
            ok: false,
            mut problems,
        } if problems.len() == 1 => problems.remove(0),
        other => panic!("expected one problem: {other:?}"),
    };

    flip_byte(world, &path, 1);
    assert!(matches!(
        problem(run()),
        VerifyProblem::BlobChecksum { file, expected, .. }
            if file == "qemu-server.conf.blob" && expected == Digest::of(&good)
    ));
    truncate(world, &path, 7);
    let expected = good.len() as u64;
    assert!(matches!(
        problem(run()),
        VerifyProblem::BlobSize { expected: e, actual: 7, .. } if e == expected
    ));
    world.remove_file(&path).expect("remove");
    assert!(matches!(
        problem(run()),
        VerifyProblem::BlobUnreadable { source, .. } if source.kind() == std::io::ErrorKind::NotFound
    ));
    overwrite(world, &path, &good);
    assert!(run().is_ok());

    // Bytes that match the manifest but are no blob: the manifest vouches for garbage.
    let garbage = b"not a blob at all".to_vec();
    overwrite(world, &path, &garbage);
    let mut manifest = store.load_manifest(&dir).expect("load");
    manifest
        .files
        .retain(|file| file.filename != "qemu-server.conf.blob");
    manifest
        .add_file(FileInfo::for_blob("qemu-server.conf.blob", &garbage).expect("entry"))
        .expect("add");
    plant_manifest(&store, &dir, &manifest);
    assert!(matches!(
        problem(run()),
        VerifyProblem::BlobDecode {
            source: BlobError::UnknownMagic { .. },
            ..
        }
    ));
}

fn damaged_manifest_is_reported(env: &impl Env) {
    let store = new_datastore(env);
    let world = store.world();
    let dir = snapshot("vm/100", "2024-01-01T00:00:00Z");
    plant(&store, &dir, &[("root.pxar.didx", &[A])]);
    let path = store.snapshot_path(&dir).join(MANIFEST_BLOB_NAME);
    let good = world.read_file(&path).expect("read");
    let manifest_problem = |outcome: VerifyOutcome| match outcome {
        VerifyOutcome::Verified {
            ok: false,
            mut problems,
        } if problems.len() == 1 => match problems.remove(0) {
            VerifyProblem::ManifestUnreadable(err) => err,
            other => panic!("not a manifest problem: {other:?}"),
        },
        other => panic!("expected one problem: {other:?}"),
    };
    let run = || {
        store
            .verify_snapshot(&mut VerifyJob::new(), &always(), &dir)
            .expect("verify")
    };

    flip_byte(world, &path, 10);
    assert!(matches!(
        store.load_manifest(&dir),
        Err(Error::Manifest(ManifestError::Blob(
            BlobError::CrcMismatch { .. }
        )))
    ));
    assert!(matches!(
        manifest_problem(run()),
        ManifestError::Blob(BlobError::CrcMismatch { .. })
    ));
    truncate(world, &path, 8);
    assert!(matches!(
        store.load_manifest(&dir),
        Err(Error::Manifest(ManifestError::Blob(BlobError::TooShort {
            len: 8
        })))
    ));
    assert!(matches!(
        manifest_problem(run()),
        ManifestError::Blob(BlobError::TooShort { len: 8 })
    ));
    // An intact blob holding cut-off JSON.
    let json = blob::decode(&good).expect("valid blob");
    overwrite(
        world,
        &path,
        &blob::encode(&json[..json.len() / 2]).expect("blob"),
    );
    assert!(matches!(manifest_problem(run()), ManifestError::Json(_)));
    // Nothing was written into the broken manifest.
    assert!(store.load_manifest(&dir).is_err());
    overwrite(world, &path, &good);
    assert!(run().is_ok());

    // A manifest copied from another snapshot.
    let other = snapshot("vm/100", "2023-01-01T00:00:00Z");
    let mut foreign = store.load_manifest(&dir).expect("load");
    foreign.backup_time = other.time;
    plant_manifest(&store, &dir, &foreign);
    let outcome = run();
    assert!(
        matches!(outcome.problems(), [VerifyProblem::ManifestMismatch { found }] if *found == other),
        "{outcome:?}"
    );
}

fn busy_and_vanished_snapshots_are_skipped(env: &impl Env) {
    let store = new_datastore(env);
    let dir = snapshot("vm/100", "2024-01-01T00:00:00Z");
    plant(&store, &dir, &[("root.pxar.didx", &[A])]);
    let mut job = VerifyJob::new();

    // A forget in progress holds the snapshot exclusively.
    let forget = store
        .lock_snapshot(&dir, LockMode::Exclusive)
        .expect("forget's lock");
    let outcome = verify(&store, &mut job, &dir);
    assert_eq!(outcome.skip_reason(), Some(&SkipReason::LockBusy));
    assert_eq!(job.chunks_hashed(), 0);
    drop(forget);

    // A running backup: group lock, its new snapshot without manifest, exclusively locked.
    let running = snapshot("vm/100", "2024-01-02T00:00:00Z");
    let group = store
        .lock_group(&running.group)
        .expect("backup's group lock");
    store
        .world()
        .create_dir_all(&store.snapshot_path(&running))
        .expect("mkdir");
    let writer = store
        .lock_snapshot(&running, LockMode::Exclusive)
        .expect("backup's lock");
    let outcome = verify(&store, &mut job, &running);
    assert_eq!(outcome.skip_reason(), Some(&SkipReason::LockBusy));
    drop(writer);
    drop(group);

    // Readers share the lock with verify, and verify does not keep forget out afterwards.
    let reader = store.lock_snapshot(&dir, LockMode::Shared).expect("reader");
    assert!(verify(&store, &mut job, &dir).is_ok());
    assert!(
        store
            .forget_snapshot(&dir)
            .expect_err("the reader holds it")
            .is_contention()
    );
    drop(reader);
    store.forget_snapshot(&dir).expect("forget");

    // Vanished, and never existing at all.
    let outcome = verify(&store, &mut job, &dir);
    assert_eq!(outcome.skip_reason(), Some(&SkipReason::Vanished));
    let never = snapshot("ct/1", "2020-01-01T00:00:00Z");
    assert_eq!(
        verify(&store, &mut job, &never).skip_reason(),
        Some(&SkipReason::Vanished)
    );
    assert!(
        store
            .world()
            .try_metadata(&store.snapshot_path(&never))
            .expect("stat")
            .is_none()
    );
}

fn job_reads_shared_chunks_once(env: &impl Env) {
    let store = new_datastore(env);
    let world = store.world();
    let cs = store.chunk_store();
    let s1 = snapshot("vm/100", "2024-01-01T00:00:00Z");
    let s2 = snapshot("vm/100", "2024-01-02T00:00:00Z");
    let s3 = snapshot("vm/200", "2024-01-01T00:00:00Z");
    let x: &[u8] = b"chunk x: shared and damaged";
    plant(&store, &s1, &[("root.pxar.didx", &[A, B, x])]);
    plant(
        &store,
        &s2,
        &[("root.pxar.didx", &[A, B, C]), ("disk.fidx", &[F0, F1])],
    );
    plant(&store, &s3, &[("root.pxar.didx", &[x, C])]);
    flip_byte(world, &cs.chunk_path(&Digest::of(x)), 1);

    let mut job = VerifyJob::new();
    let first = verify(&store, &mut job, &s1);
    assert!(
        matches!(first.problems(), [VerifyProblem::ChunkCorrupt { .. }]),
        "{first:?}"
    );
    assert_eq!(job.chunks_hashed(), 3);
    // A and B are known good: only C and the two fixed chunks are read.
    assert!(verify(&store, &mut job, &s2).is_ok());
    assert_eq!(job.chunks_hashed(), 6);
    // X is known bad: an error again, without reading it; C is known good.
    let third = verify(&store, &mut job, &s3);
    assert!(
        matches!(third.problems(), [VerifyProblem::ChunkKnownBad { digest, archive }]
            if *digest == Digest::of(x) && archive == "root.pxar.didx"),
        "{third:?}"
    );
    assert_eq!(job.chunks_hashed(), 6);
    assert_eq!(
        stored_state(&store, &s3).expect("state").state,
        VerifyState::Failed
    );
    // A new job knows nothing and reads again: X is missing by now (renamed to .bad).
    let mut fresh = VerifyJob::new();
    let again = store
        .verify_snapshot(&mut fresh, &always(), &s3)
        .expect("verify");
    assert!(
        matches!(again.problems(), [VerifyProblem::ChunkMissing { .. }]),
        "{again:?}"
    );
    assert_eq!(fresh.chunks_hashed(), 2);
}

fn group_and_datastore_order(env: &impl Env) {
    let store = new_datastore(env);
    let old = snapshot("vm/100", "2024-01-01T00:00:00Z");
    let unfinished = snapshot("vm/100", "2024-01-02T00:00:00Z");
    let busy = snapshot("vm/100", "2024-01-03T00:00:00Z");
    let other = snapshot("host/web", "2024-01-01T00:00:00Z");
    plant(&store, &old, &[("root.pxar.didx", &[A])]);
    store
        .world()
        .create_dir_all(&store.snapshot_path(&unfinished))
        .expect("mkdir");
    plant(&store, &busy, &[("root.pxar.didx", &[A])]);
    plant(&store, &other, &[("root.pxar.didx", &[B])]);
    // Verify takes no group lock: a backup holding one does not stop it.
    let _group = store.lock_group(&old.group).expect("a backup's group lock");
    let _writer = store
        .lock_snapshot(&busy, LockMode::Exclusive)
        .expect("busy");

    let mut job = VerifyJob::new();
    let reports = store
        .verify_group(&mut job, &always(), &old.group)
        .expect("verify group");
    let dirs: Vec<&BackupDir> = reports.iter().map(|report| &report.dir).collect();
    assert_eq!(dirs, [&busy, &unfinished, &old], "newest first");
    let outcomes: Vec<&VerifyOutcome> = reports
        .iter()
        .map(|report| report.result.as_ref().expect("no error"))
        .collect();
    assert_eq!(outcomes[0].skip_reason(), Some(&SkipReason::LockBusy));
    assert!(
        matches!(outcomes[1].problems(), [VerifyProblem::ManifestUnreadable(err)]
            if err.is_not_found()),
        "{:?}",
        outcomes[1]
    );
    assert!(outcomes[2].is_ok());

    let mut job = VerifyJob::new();
    let reports = store.verify_all(&mut job, &always()).expect("verify all");
    let dirs: Vec<&BackupDir> = reports.iter().map(|report| &report.dir).collect();
    assert_eq!(
        dirs,
        [&busy, &unfinished, &old, &other],
        "groups in listing order"
    );
    assert_eq!(job.chunks_hashed(), 2);
}

fn unsaved_state_fails_the_snapshot(env: &impl Env) {
    let store = new_datastore(env);
    let dir = snapshot("vm/100", "2024-01-01T00:00:00Z");
    plant(&store, &dir, &[("root.pxar.didx", &[A])]);
    // A slow manifest update outlasts verify's bounded wait.
    let updater = store.lock_manifest(&dir).expect("manifest lock");
    let outcome = verify(&store, &mut VerifyJob::new(), &dir);
    assert!(
        matches!(outcome.problems(), [VerifyProblem::StateNotSaved { source }]
            if source.is_contention()),
        "{outcome:?}"
    );
    assert!(outcome.is_failed());
    drop(updater);
    assert_eq!(stored_state(&store, &dir), None);
    assert!(verify(&store, &mut VerifyJob::new(), &dir).is_ok());
}

fn verify_alongside_backups(env: &impl Env) {
    let store = new_datastore(env);
    let world = store.world();
    let owner = "backup@pbs";
    let archives = [
        ArchiveSpec::new("root.pxar.didx", vec![A.to_vec(), B.to_vec()]),
        ArchiveSpec::new("disk.fidx", vec![F0.to_vec(), F1.to_vec()]),
        ArchiveSpec::new("qemu-server.conf.blob", vec![C.to_vec()]),
    ];
    let s1 = snapshot("vm/100", "2024-01-01T00:00:00Z");
    let s2 = snapshot("vm/100", "2024-01-02T00:00:00Z");
    let s3 = snapshot("vm/100", "2024-01-03T00:00:00Z");
    backup_snapshot(&store, &s1, owner, &archives).expect("first backup");
    assert!(verify(&store, &mut VerifyJob::new(), &s1).is_ok());

    // A running backup holds its snapshot exclusively and its base shared: verify skips the
    // one and still checks the other.
    let session = store.start_backup(&s2, owner).expect("start");
    assert_eq!(session.base(), Some(&s1));
    let outcome = verify(&store, &mut VerifyJob::new(), &s2);
    assert_eq!(outcome.skip_reason(), Some(&SkipReason::LockBusy));
    let outcome = store
        .verify_snapshot(&mut VerifyJob::new(), &always(), &s1)
        .expect("verify");
    assert!(outcome.is_ok(), "{outcome:?}");
    session.abort().expect("abort");

    // Damage found by verify: the chunk goes to `.bad`, the snapshot is marked failed, the
    // next backup does not build on it and uploads everything again, which repairs the store.
    let b = Digest::of(B);
    flip_byte(world, &store.chunk_store().chunk_path(&b), 1);
    let outcome = store
        .verify_snapshot(&mut VerifyJob::new(), &always(), &s1)
        .expect("verify");
    assert!(
        matches!(outcome.problems(), [VerifyProblem::ChunkCorrupt { digest, .. }] if *digest == b)
    );
    let backup = backup_snapshot(&store, &s3, owner, &archives).expect("next backup");
    assert_eq!(backup.base, None, "a failed snapshot is no base");
    assert_eq!((backup.uploaded_chunks, backup.reused_chunks), (4, 0));
    let mut job = VerifyJob::new();
    assert!(verify(&store, &mut job, &s3).is_ok());
    let outcome = store
        .verify_snapshot(&mut job, &always(), &s1)
        .expect("verify");
    assert!(
        outcome.is_ok(),
        "the old snapshot is whole again: {outcome:?}"
    );
    assert_eq!(
        stored_state(&store, &s1).expect("state").state,
        VerifyState::Ok
    );
    assert!(
        world
            .try_metadata(&store.chunk_store().bad_chunk_path(&b, 0))
            .expect("stat")
            .is_some()
    );
}

/// Everything under `dir`, as (relative path, bytes or `None` for a directory), sorted.
fn tree<W: World>(world: &W, dir: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        for entry in world.read_dir(&current).expect("readdir") {
            let path = current.join(&entry.name);
            let relative = path.strip_prefix(dir).expect("below").display().to_string();
            let metadata = world.metadata(&path).expect("stat");
            if metadata.is_dir() {
                stack.push(path);
                out.push((relative, None));
            } else {
                out.push((relative, Some(world.read_file(&path).expect("read"))));
            }
        }
    }
    out.sort();
    out
}

fn hostile_input_never_leaves_the_base(env: &impl Env) {
    let store = new_datastore(env);
    let world = store.world();
    // Something outside the datastore that a path escape would reach.
    let outside = env.root().join("outside");
    world.create_dir_all(&outside).expect("mkdir");
    let secret = blob::encode(b"secret").expect("blob");
    overwrite(world, &outside.join("secret.blob"), &secret);
    let before = tree(world, env.root());

    // Hostile names never become snapshot names.
    for path in [
        "vm/../../outside",
        "vm/../../outside/2024-01-01T00:00:00Z",
        "vm/..",
        "vm/100/../../../outside",
        "../outside/x/2024-01-01T00:00:00Z",
        "vm/./2024-01-01T00:00:00Z",
        "vm/a\0b/2024-01-01T00:00:00Z",
        "/vm/100/2024-01-01T00:00:00Z",
        "vm/100/2024-01-01T00:00:00Z/..",
    ] {
        assert!(BackupDir::from_relative_path(path).is_err(), "{path:?}");
    }
    assert_eq!(tree(world, env.root()), before, "parsing touched nothing");

    // Hostile entries inside the datastore are not groups or snapshots.
    let base = store.base().to_owned();
    world
        .create_dir_all(&base.join("vm/.hidden/2024-01-01T00:00:00Z"))
        .expect("mkdir");
    world
        .create_dir_all(&base.join("vm/a b/2024-01-01T00:00:00Z"))
        .expect("mkdir");
    world
        .create_dir_all(&base.join("qemu/100/2024-01-01T00:00:00Z"))
        .expect("mkdir");
    // A manifest naming files outside its snapshot: written by hand, no constructor allows it.
    let dir = snapshot("host/web", "2024-01-01T00:00:00Z");
    let snapshot_dir = store.snapshot_path(&dir);
    world.create_dir_all(&snapshot_dir).expect("mkdir");
    for name in [
        "../../../../outside/secret.blob",
        "../../../../outside/x.didx",
        "/etc/passwd.blob",
    ] {
        let json = serde_json_text(&dir, name, &secret);
        overwrite(
            world,
            &snapshot_dir.join(MANIFEST_BLOB_NAME),
            &blob::encode(json.as_bytes()).expect("blob"),
        );
        assert!(matches!(
            store.load_manifest(&dir),
            Err(Error::Manifest(ManifestError::BadFilename { filename })) if filename == name
        ));
        let mut job = VerifyJob::new();
        let reports = store.verify_all(&mut job, &always()).expect("verify all");
        assert_eq!(
            reports.len(),
            1,
            "only the real snapshot is listed: {reports:?}"
        );
        let outcome = reports[0].result.as_ref().expect("no error");
        assert!(
            matches!(
                outcome.problems(),
                [VerifyProblem::ManifestUnreadable(
                    ManifestError::BadFilename { .. }
                )]
            ),
            "{outcome:?}"
        );
        assert_eq!(job.chunks_hashed(), 0);
    }
    let after = tree(world, env.root());
    let outside_entries = |tree: &[(String, Option<Vec<u8>>)]| {
        tree.iter()
            .filter(|(path, _)| !path.starts_with("ds"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        outside_entries(&after),
        outside_entries(&before),
        "nothing outside changed"
    );
    // Every valid snapshot name stays below the base (see also the property test).
    assert!(store.snapshot_path(&dir).starts_with(&base));
}

/// Manifest JSON for `dir` listing one file `name` with the size and checksum of `bytes`.
fn serde_json_text(dir: &BackupDir, name: &str, bytes: &[u8]) -> String {
    format!(
        r#"{{"backup-type":"{}","backup-id":"{}","backup-time":{},"files":[{{"filename":"{}","size":{},"csum":"{}"}}],"unprotected":{{}}}}"#,
        dir.group.ty,
        dir.group.id,
        dir.time.epoch(),
        name,
        bytes.len(),
        Digest::of(bytes)
    )
}

#[test]
fn hostile_names_are_typed_errors() {
    let bad_char = |id: &str, position| {
        assert_eq!(
            BackupId::parse(id),
            Err(NameError::BackupIdBadChar {
                id: id.to_owned(),
                position
            }),
            "{id:?}"
        );
    };
    bad_char("../x", 0);
    bad_char("a/b", 1);
    bad_char(".", 0);
    bad_char("..", 0);
    bad_char("a\0", 1);
    bad_char("\0", 0);
    bad_char("é", 0);
    bad_char("vm100é", 5);
    bad_char("a b", 1);
    bad_char("-x", 0);
    bad_char("x\\y", 1);
    assert_eq!(BackupId::parse(""), Err(NameError::EmptyBackupId));
    let long = "x".repeat(BACKUP_ID_LEN_MAX + 1);
    assert_eq!(
        BackupId::parse(&long),
        Err(NameError::BackupIdTooLong { len: long.len() })
    );
    assert!(BackupId::parse(&"x".repeat(BACKUP_ID_LEN_MAX)).is_ok());

    for (ty, id) in [
        ("vm", "../x"),
        ("vm", ".."),
        ("vm", ""),
        ("vm", "a/b"),
        ("ct", "\0"),
    ] {
        assert!(
            matches!(
                BackupGroup::parse(ty, id),
                Err(NameError::BackupIdBadChar { .. } | NameError::EmptyBackupId)
            ),
            "{ty}/{id:?}"
        );
    }
    for ty in ["..", "", "VM", "vm/", "v\0m"] {
        assert!(matches!(
            BackupGroup::parse(ty, "100"),
            Err(NameError::UnknownBackupType { .. })
        ));
    }
    let time = "2024-01-01T00:00:00Z";
    type Expected = fn(&NameError) -> bool;
    let cases: [(String, Expected); 9] = [
        (format!("vm/../{time}"), |e| {
            matches!(e, NameError::BackupIdBadChar { .. })
        }),
        (format!("vm/./{time}"), |e| {
            matches!(e, NameError::BackupIdBadChar { .. })
        }),
        (format!("vm//{time}"), |e| {
            matches!(e, NameError::EmptyBackupId)
        }),
        (format!("../100/{time}"), |e| {
            matches!(e, NameError::UnknownBackupType { .. })
        }),
        ("vm/100/..".to_owned(), |e| {
            matches!(e, NameError::BackupTimeSyntax { .. })
        }),
        ("vm/100".to_owned(), |e| {
            matches!(
                e,
                NameError::BadPath {
                    expected: "snapshot",
                    ..
                }
            )
        }),
        (format!("vm/100/{time}/x"), |e| {
            matches!(e, NameError::BadPath { .. })
        }),
        (format!("vm/a/b/{time}"), |e| {
            matches!(e, NameError::BadPath { .. })
        }),
        (format!("vm/{}/{time}", "y".repeat(200)), |e| {
            matches!(e, NameError::BackupIdTooLong { len: 200 })
        }),
    ];
    for (path, expected) in cases {
        let err = BackupDir::from_relative_path(&path).expect_err(&path);
        assert!(expected(&err), "{path:?}: {err:?}");
    }
    assert!(matches!(
        BackupDir::from_relative_path("vm/100/2024-01-01T00:00:00Z\0"),
        Err(NameError::BackupTimeSyntax { .. })
    ));
}

#[test]
fn verify_upid_round_trip() {
    for (task, time) in [
        ("verify", 0),
        ("job@5", 1_700_000_000),
        ("root@pam", -3),
        ("", i64::MAX),
    ] {
        assert_eq!(
            verified_at(&verify_upid(task, time)),
            Some(time),
            "{task:?}"
        );
    }
    for text in [
        "",
        "@",
        "x@",
        "x@-",
        "x@1a",
        "root@pam",
        "UPID:",
        "UPID:a:b:c:d:",
        "UPID:a:b:c:d:zz:",
    ] {
        assert_eq!(verified_at(text), None, "{text:?}");
    }
    assert_eq!(
        verified_at("UPID:n:0:0:0:00000010:verify:x:root@pam:"),
        Some(16)
    );
}

fn valid_blob() -> Vec<u8> {
    blob::encode(b"a configuration file\nwith two lines\n").expect("blob")
}

fn valid_index(fixed: bool) -> Vec<u8> {
    let digests: Vec<Digest> = (0u8..3).map(|n| Digest::of(&[n])).collect();
    if fixed {
        FixedIndex::new([3; 16], 7, 40, 16, digests)
            .expect("valid")
            .to_bytes()
    } else {
        let entries: Vec<(u64, Digest)> = digests
            .into_iter()
            .zip([10, 20, 35])
            .map(|(digest, end)| (end, digest))
            .collect();
        DynamicIndex::new([4; 16], 7, &entries)
            .expect("valid")
            .to_bytes()
    }
}

fn valid_manifest() -> Vec<u8> {
    let dir = snapshot("vm/100", "2024-01-02T03:04:05Z");
    let mut manifest = Manifest::new(&dir);
    let index = FileInfo::new("root.pxar.didx", 35, Digest::of(b"csum")).expect("entry");
    manifest.add_file(index).expect("add");
    manifest
        .add_file(FileInfo::for_blob("conf.blob", &valid_blob()).expect("entry"))
        .expect("add");
    let state = SnapshotVerifyState {
        state: VerifyState::Ok,
        upid: verify_upid("v", 5),
    };
    manifest.set_verify_state(&state);
    manifest.set_notes(Some("notes"));
    manifest.to_blob().expect("encode")
}

/// `bytes` cut at `cut` and with one byte changed (`flip` is never 0).
fn damage(
    bytes: &[u8],
    cut: prop::sample::Index,
    at: prop::sample::Index,
    flip: u8,
) -> [Vec<u8>; 2] {
    let truncated = bytes[..cut.index(bytes.len())].to_vec();
    let mut mutated = bytes.to_vec();
    mutated[at.index(bytes.len())] ^= flip;
    [truncated, mutated]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Blob decoding never panics; a blob cut short or with one byte changed is always
    /// rejected (the CRC catches every single-byte change of the payload).
    #[test]
    fn blob_decode_rejects_damage(
        noise in proptest::collection::vec(any::<u8>(), 0..64),
        cut in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let _ = blob::decode(&noise);
        let _ = Chunk::from_blob(Digest::of(&noise), noise.clone());
        for damaged in damage(&valid_blob(), cut, at, flip) {
            prop_assert!(blob::decode(&damaged).is_err());
            let chunk = Chunk::from_blob(Digest::of(b"a configuration file\nwith two lines\n"), damaged);
            prop_assert!(chunk.is_err());
        }
    }

    /// Index parsing never panics on noise (with or without a valid magic) nor on damaged
    /// valid files; a damaged file that still parses lists the same chunks or is detected by
    /// the manifest's (checksum, size).
    #[test]
    fn index_parse_never_panics(
        noise in proptest::collection::vec(any::<u8>(), 0..5000),
        fixed in any::<bool>(),
        cut in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let _ = IndexFile::parse(&noise);
        let good_bytes = valid_index(fixed);
        let mut with_magic = good_bytes[..8].to_vec();
        with_magic.extend_from_slice(&noise);
        let _ = IndexFile::parse(&with_magic);
        let good = IndexFile::parse(&good_bytes).expect("valid");
        let [truncated, mutated] = damage(&good_bytes, cut, at, flip);
        prop_assert!(IndexFile::parse(&truncated).is_err());
        if let Ok(parsed) = IndexFile::parse(&mutated) {
            prop_assert!(
                parsed.digests() == good.digests() || parsed.compute_csum() != good.compute_csum()
            );
        }
    }

    /// Manifest decoding never panics on noise, on damaged blobs or on damaged JSON inside an
    /// intact blob; whatever it accepts encodes and decodes to the same manifest.
    #[test]
    fn manifest_parse_never_panics(
        noise in proptest::collection::vec(any::<u8>(), 0..300),
        cut in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let _ = Manifest::from_blob(&noise);
        let _ = Manifest::from_json(&noise);
        let good = valid_manifest();
        for damaged in damage(&good, cut, at, flip) {
            prop_assert!(Manifest::from_blob(&damaged).is_err());
        }
        let json = blob::decode(&good).expect("valid").to_vec();
        for damaged in damage(&json, cut, at, flip) {
            if let Ok(manifest) = Manifest::from_blob(&blob::encode(&damaged).expect("blob")) {
                let again = Manifest::from_blob(&manifest.to_blob().expect("re-encode"));
                prop_assert_eq!(again.expect("round trip"), manifest.clone());
                let _ = manifest.verify_state();
                let _ = manifest.notes();
                let _ = manifest.chunk_upload_stats();
            }
        }
    }

    /// Time, name, path, digest, chunk-name and task-id parsers never panic, and whatever they
    /// accept is canonical: it prints back as the input (chunk names up to hex case), and a
    /// snapshot path stays three plain components below the base.
    #[test]
    fn name_parsers_accept_only_canonical_text(
        text in "\\PC{0,90}",
        bytes in proptest::collection::vec(any::<u8>(), 0..80),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=127,
    ) {
        let digest = Digest::of(&bytes);
        let mut candidates = vec![
            text.clone(),
            String::from_utf8_lossy(&bytes).into_owned(),
            format!("vm/{text}/2024-01-01T00:00:00Z"),
            format!("host/{text}"),
            format!("{digest}{text}"),
            format!("{digest}.{text}.bad"),
        ];
        for valid in [
            "2024-02-29T23:59:59Z".to_owned(),
            "vm/web-01.example/2024-02-29T23:59:59Z".to_owned(),
            digest.to_hex(),
            format!("{digest}.7.bad"),
        ] {
            let mut changed = valid.into_bytes();
            let position = at.index(changed.len());
            changed[position] ^= flip;
            candidates.push(String::from_utf8_lossy(&changed).into_owned());
        }
        let base = Path::new("/base");
        for candidate in &candidates {
            if let Ok(time) = BackupTime::parse(candidate) {
                prop_assert_eq!(&time.to_string(), candidate);
            }
            if let Ok(group) = BackupGroup::from_relative_path(candidate) {
                prop_assert_eq!(&group.to_string(), candidate);
            }
            if let Ok(dir) = BackupDir::from_relative_path(candidate) {
                prop_assert_eq!(&dir.to_string(), candidate);
                let relative = dir.relative_path();
                let components: Vec<Component> = relative.components().collect();
                prop_assert_eq!(components.len(), 3);
                prop_assert!(components.iter().all(|c| matches!(c, Component::Normal(_))));
                prop_assert!(base.join(&relative).starts_with(base));
            }
            if let Some(parsed) = Digest::from_hex(candidate) {
                prop_assert_eq!(parsed.to_hex(), candidate.to_ascii_lowercase());
            }
            match ChunkName::parse(candidate) {
                Some(ChunkName::Chunk(d)) => {
                    prop_assert_eq!(d.to_hex(), candidate.to_ascii_lowercase());
                }
                Some(ChunkName::Bad(d, n)) => {
                    prop_assert!(n < 10);
                    prop_assert_eq!(format!("{d}.{n}.bad"), candidate.to_ascii_lowercase());
                }
                None => {}
            }
            let _ = ArchiveKind::from_name(candidate);
            let _ = verified_at(candidate);
        }
    }

    /// A verify state survives any task id: the time written is the time read.
    #[test]
    fn verify_upid_carries_the_time(task in "\\PC{0,40}", time in any::<i64>()) {
        prop_assert_eq!(verified_at(&verify_upid(&task, time)), Some(time));
    }
}

/// The chunk-store error a damaged chunk produces is typed all the way down.
#[test]
fn chunk_load_errors_are_typed() {
    let env = SimEnv::new();
    let store = new_datastore(&env);
    let chunk = Chunk::from_data(A).expect("chunk");
    store.chunk_store().insert_chunk(&chunk).expect("insert");
    truncate(
        store.world(),
        &store.chunk_store().chunk_path(chunk.digest()),
        3,
    );
    assert!(matches!(
        store.chunk_store().load_chunk(chunk.digest()),
        Err(ChunkStoreError::Corrupt {
            problem: ChunkProblem::Blob(BlobError::TooShort { len: 3 }),
            ..
        })
    ));
}
