//! Chunk-store behaviour, one generic body per test, run on the real and the simulated world.

use std::io;
use std::path::PathBuf;

use store::chunk_store::{BadRename, ChunkName, ChunkProblem, SweepStats};
use store::world::{OpenOptions, World, WorldFile};
use store::{Chunk, ChunkStore, ChunkStoreConfig, ChunkStoreError, PrefixFanout, SyncLevel};

use crate::both_worlds;
use crate::support::Env;

const DAY: i64 = 86_400;

fn small_config() -> ChunkStoreConfig {
    ChunkStoreConfig::new(PrefixFanout::SMALL).with_sync_level(SyncLevel::None)
}

fn new_store<E: Env>(env: &E, config: ChunkStoreConfig) -> (ChunkStore<E::W>, PathBuf) {
    let base = env.root().join("ds");
    let store = ChunkStore::create(env.world(), &base, config).expect("create the chunk store");
    (store, base)
}

fn chunk(data: &[u8]) -> Chunk {
    Chunk::from_data(data).expect("a small chunk")
}

both_worlds!(
    insert_then_load,
    duplicate_insert_touches,
    sweep_by_cutoff,
    bad_rename_and_touch,
    conditional_bad_rename_rechecks_the_file,
    empty_file_is_overwritten,
    size_mismatch_policy,
    corrupt_chunk_is_typed,
    sync_levels_round_trip,
    create_and_open_errors,
    something_else_at_chunk_path,
);

fn insert_then_load(env: &impl Env) {
    let (store, _) = new_store(env, small_config());
    let x = chunk(b"chunk x");
    let outcome = store.insert_chunk(&x).expect("insert");
    assert!(!outcome.duplicate);
    assert_eq!(outcome.encoded_len, x.blob().len() as u64);
    let loaded = store.load_chunk(x.digest()).expect("load");
    assert_eq!(loaded.data(), b"chunk x");
    let metadata = store
        .chunk_metadata(x.digest())
        .expect("stat")
        .expect("chunk exists");
    assert_eq!(metadata.len, x.blob().len() as u64);
    assert_eq!(
        store.list_chunk_names().expect("list"),
        vec![ChunkName::Chunk(*x.digest())]
    );
    let missing = chunk(b"never stored");
    assert!(matches!(
        store.load_chunk(missing.digest()),
        Err(ChunkStoreError::Missing { .. })
    ));
}

fn duplicate_insert_touches(env: &impl Env) {
    let (store, _) = new_store(env, small_config());
    let x = chunk(b"chunk x");
    store.insert_chunk(&x).expect("first insert");
    let path = store.chunk_path(x.digest());
    let long_ago = env.world().now() - 10 * DAY;
    env.set_atime(&path, long_ago);
    assert_eq!(
        store
            .chunk_metadata(x.digest())
            .expect("stat")
            .expect("exists")
            .atime,
        long_ago
    );
    let before = env.world().now();
    let outcome = store.insert_chunk(&x).expect("second insert");
    assert!(outcome.duplicate);
    let atime = store
        .chunk_metadata(x.digest())
        .expect("stat")
        .expect("exists")
        .atime;
    assert!(
        atime >= before,
        "duplicate insert must touch: atime {atime} < {before}"
    );
    assert!(
        store
            .cond_touch_chunk(x.digest(), true)
            .expect("touch existing")
    );
    let missing = chunk(b"missing");
    assert!(
        !store
            .cond_touch_chunk(missing.digest(), false)
            .expect("touch missing")
    );
    assert!(matches!(
        store.cond_touch_chunk(missing.digest(), true),
        Err(ChunkStoreError::Missing { .. })
    ));
}

fn sweep_by_cutoff(env: &impl Env) {
    let (store, _) = new_store(env, small_config());
    let now = env.world().now();
    let (old, pending, live, old_bad) = (
        chunk(b"old"),
        chunk(b"pending"),
        chunk(b"live"),
        chunk(b"bad"),
    );
    for c in [&old, &pending, &live, &old_bad] {
        store.insert_chunk(c).expect("insert");
    }
    let bad_path = store
        .rename_corrupt_chunk(old_bad.digest())
        .expect("rename")
        .expect("present");
    let temp = store
        .prefix_dir(live.digest())
        .join(format!("{}.tmp_0000000000000007", live.digest()));
    let temp_file = env
        .world()
        .open(&temp, OpenOptions::create_new())
        .expect("temp file");
    drop(temp_file);
    env.set_atime(&store.chunk_path(old.digest()), now - 3 * DAY);
    env.set_atime(&bad_path, now - 3 * DAY);
    env.set_atime(&temp, now - 3 * DAY);
    env.set_atime(&store.chunk_path(pending.digest()), now - DAY);
    env.set_atime(&store.chunk_path(live.digest()), now + 10);

    let stats = store
        .sweep_unused_chunks(now - 2 * DAY, now - 3600)
        .expect("sweep");
    let expected = SweepStats {
        removed_chunks: 1,
        removed_bad: 1,
        removed_bytes: (old.blob().len() + old_bad.blob().len()) as u64,
        pending_chunks: 1,
        pending_bytes: pending.blob().len() as u64,
        still_bad: 0,
        disk_chunks: 1,
        disk_bytes: live.blob().len() as u64,
    };
    assert_eq!(stats, expected);
    assert!(store.chunk_metadata(old.digest()).expect("stat").is_none());
    assert!(env.world().try_metadata(&bad_path).expect("stat").is_none());
    assert!(
        env.world().try_metadata(&temp).expect("stat").is_some(),
        "temp files are left alone"
    );
    assert!(
        store
            .chunk_metadata(pending.digest())
            .expect("stat")
            .is_some()
    );
    assert!(store.chunk_metadata(live.digest()).expect("stat").is_some());
}

/// Verify's rename re-reads the chunk under the mutex: a damaged file is renamed, but a file
/// that an insert has meanwhile replaced with a good copy stays, and a vanished one is reported.
fn conditional_bad_rename_rechecks_the_file(env: &impl Env) {
    let (store, _) = new_store(env, small_config());
    let x = chunk(b"chunk x");
    assert_eq!(
        store.rename_chunk_if_corrupt(x.digest()).expect("missing"),
        BadRename::Vanished
    );
    store.insert_chunk(&x).expect("insert");
    assert_eq!(
        store.rename_chunk_if_corrupt(x.digest()).expect("intact"),
        BadRename::Intact
    );
    assert!(
        store.chunk_metadata(x.digest()).expect("stat").is_some(),
        "a good chunk stays"
    );
    // Damage it: an empty file, as a crash before the data reached the disk leaves it.
    let path = store.chunk_path(x.digest());
    env.world()
        .open(&path, OpenOptions::create_truncate())
        .expect("truncate");
    // An insert rewrites the empty file: a verifier that read the damaged file must not rename
    // the good copy.
    store.insert_chunk(&x).expect("repairing insert");
    assert_eq!(
        store.rename_chunk_if_corrupt(x.digest()).expect("repaired"),
        BadRename::Intact
    );
    assert!(store.load_chunk(x.digest()).is_ok());
    env.world()
        .open(&path, OpenOptions::create_truncate())
        .expect("truncate again");
    let renamed = store.rename_chunk_if_corrupt(x.digest()).expect("corrupt");
    assert_eq!(
        renamed,
        BadRename::Renamed(store.bad_chunk_path(x.digest(), 0))
    );
    assert!(store.chunk_metadata(x.digest()).expect("stat").is_none());
}

fn bad_rename_and_touch(env: &impl Env) {
    let (store, _) = new_store(env, small_config());
    let x = chunk(b"x");
    assert_eq!(
        store
            .rename_corrupt_chunk(x.digest())
            .expect("rename missing"),
        None
    );
    assert!(!store.cond_touch_bad_chunks(x.digest()).expect("touch none"));
    store.insert_chunk(&x).expect("insert");
    let first = store
        .rename_corrupt_chunk(x.digest())
        .expect("rename")
        .expect("present");
    assert_eq!(first, store.bad_chunk_path(x.digest(), 0));
    assert!(store.chunk_metadata(x.digest()).expect("stat").is_none());
    let reinserted = store.insert_chunk(&x).expect("re-insert");
    assert!(
        !reinserted.duplicate,
        "after a rename the chunk is written afresh"
    );
    let second = store
        .rename_corrupt_chunk(x.digest())
        .expect("rename")
        .expect("present");
    assert_eq!(second, store.bad_chunk_path(x.digest(), 1));
    let long_ago = env.world().now() - 5 * DAY;
    env.set_atime(&first, long_ago);
    assert!(store.cond_touch_bad_chunks(x.digest()).expect("touch bad"));
    let atime = env.world().metadata(&first).expect("stat").atime;
    assert!(atime > long_ago);
    let mut names = store.list_chunk_names().expect("list");
    names.sort_by_key(|name| format!("{name:?}"));
    assert_eq!(
        names,
        vec![
            ChunkName::Bad(*x.digest(), 0),
            ChunkName::Bad(*x.digest(), 1)
        ]
    );
}

fn empty_file_is_overwritten(env: &impl Env) {
    let (store, _) = new_store(env, small_config());
    let x = chunk(b"x after a crash");
    let path = store.chunk_path(x.digest());
    drop(
        env.world()
            .open(&path, OpenOptions::create_new())
            .expect("empty leftover"),
    );
    let outcome = store.insert_chunk(&x).expect("insert over empty file");
    assert!(!outcome.duplicate);
    assert_eq!(
        store.load_chunk(x.digest()).expect("load").data(),
        b"x after a crash"
    );
}

fn size_mismatch_policy(env: &impl Env) {
    let (store, _) = new_store(env, small_config());
    let x = chunk(b"some chunk data");
    let path = store.chunk_path(x.digest());
    // A bigger file at the path is replaced by the (smaller) new blob.
    let mut bigger = x.blob().to_vec();
    bigger.extend_from_slice(b"trailing");
    let file = env
        .world()
        .open(&path, OpenOptions::create_new())
        .expect("create");
    file.write_at(0, &bigger).expect("write");
    drop(file);
    assert!(!store.insert_chunk(&x).expect("insert").duplicate);
    assert_eq!(env.world().read_file(&path).expect("read"), x.blob());
    // A smaller (non-empty) file is kept and counts as a duplicate.
    let file = env
        .world()
        .open(&path, OpenOptions::create_truncate())
        .expect("truncate");
    file.write_at(0, &x.blob()[..4]).expect("write");
    drop(file);
    let outcome = store.insert_chunk(&x).expect("insert");
    assert!(outcome.duplicate);
    assert_eq!(outcome.encoded_len, 4);
}

fn corrupt_chunk_is_typed(env: &impl Env) {
    let (store, _) = new_store(env, small_config());
    let x = chunk(b"soon corrupt");
    store.insert_chunk(&x).expect("insert");
    let path = store.chunk_path(x.digest());
    let file = env
        .world()
        .open(&path, OpenOptions::create_keep())
        .expect("open");
    file.write_at(x.blob().len() as u64 - 1, b"!")
        .expect("flip the last byte");
    drop(file);
    match store.load_chunk(x.digest()) {
        Err(ChunkStoreError::Corrupt {
            problem: ChunkProblem::Blob(_),
            ..
        }) => {}
        other => panic!("expected a CRC error, got {other:?}"),
    }
    // A well-formed blob under the wrong name is a digest mismatch.
    let y = chunk(b"another chunk");
    let file = env
        .world()
        .open(&path, OpenOptions::create_truncate())
        .expect("open");
    file.write_at(0, y.blob()).expect("write");
    drop(file);
    match store.load_chunk(x.digest()) {
        Err(ChunkStoreError::Corrupt {
            problem: ChunkProblem::DigestMismatch { actual },
            ..
        }) => {
            assert_eq!(actual, *y.digest())
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    let file = env
        .world()
        .open(&path, OpenOptions::create_truncate())
        .expect("open");
    file.write_at(0, b"short").expect("write");
    drop(file);
    assert!(matches!(
        store.load_chunk(x.digest()),
        Err(ChunkStoreError::Corrupt { .. })
    ));
}

fn sync_levels_round_trip(env: &impl Env) {
    for (index, level) in [SyncLevel::None, SyncLevel::File, SyncLevel::Filesystem]
        .into_iter()
        .enumerate()
    {
        let base = env.root().join(format!("ds-{index}"));
        let config = ChunkStoreConfig::new(PrefixFanout::SMALL).with_sync_level(level);
        let store = ChunkStore::create(env.world(), &base, config).expect("create");
        let x = chunk(format!("data at {level:?}").as_bytes());
        assert!(!store.insert_chunk(&x).expect("insert").duplicate);
        assert!(store.insert_chunk(&x).expect("insert again").duplicate);
        store.ensure_sync_level().expect("sync");
        let reopened = ChunkStore::open(env.world(), &base, config).expect("reopen");
        assert_eq!(
            reopened.load_chunk(x.digest()).expect("load").data(),
            x.data()
        );
    }
}

fn create_and_open_errors(env: &impl Env) {
    let (_store, base) = new_store(env, small_config());
    assert!(matches!(
        ChunkStore::create(env.world(), &base, small_config()),
        Err(ChunkStoreError::AlreadyExists { .. })
    ));
    let wrong_fanout = ChunkStoreConfig::new(PrefixFanout::new(2).expect("2 digits"));
    assert!(matches!(
        ChunkStore::open(env.world(), &base, wrong_fanout),
        Err(ChunkStoreError::NotAChunkStore { .. })
    ));
    assert!(matches!(
        ChunkStore::open(env.world(), &env.root().join("nothing"), small_config()),
        Err(ChunkStoreError::NotAChunkStore { .. })
    ));
    let too_big = vec![0u8; store::chunk_store::CHUNK_LEN_MAX + 1];
    assert!(matches!(
        Chunk::from_data(&too_big),
        Err(ChunkProblem::TooLarge { .. })
    ));
}

fn something_else_at_chunk_path(env: &impl Env) {
    let (store, _) = new_store(env, small_config());
    let x = chunk(b"x");
    env.world()
        .create_dir(&store.chunk_path(x.digest()))
        .expect("a directory in the way");
    assert!(matches!(
        store.insert_chunk(&x),
        Err(ChunkStoreError::NotAFile { .. })
    ));
    let stats = store
        .sweep_unused_chunks(i64::MAX, i64::MAX)
        .expect("sweep skips directories");
    assert_eq!(stats, SweepStats::default());
    let err = store
        .load_chunk(x.digest())
        .expect_err("a directory is no chunk");
    assert!(
        matches!(err, ChunkStoreError::Io(ref io_err) if io_err.kind() == io::ErrorKind::IsADirectory),
        "{err:?}"
    );
}

/// The PBS layout: 65,536 prefix directories, checked once on a real disk.
#[test]
fn default_fanout_on_real_disk() {
    let env = crate::support::RealEnv::new();
    let base = env.root().join("ds");
    let config = ChunkStoreConfig::default().with_sync_level(SyncLevel::None);
    let store = ChunkStore::create(env.world(), &base, config).expect("create");
    let entries = env
        .world()
        .read_dir(&base.join(".chunks"))
        .expect("list .chunks");
    assert_eq!(entries.len(), 65_536);
    let x = chunk(b"x");
    store.insert_chunk(&x).expect("insert");
    assert!(
        store
            .chunk_path(x.digest())
            .starts_with(base.join(".chunks").join(&x.digest().to_hex()[..4]))
    );
}

/// What each sync level makes durable, counted in the simulated world: `file` fsyncs every new
/// chunk file and its prefix directory, `none` nothing, `filesystem` one `syncfs` when asked.
#[test]
fn sync_levels_issue_the_right_syncs() {
    use sim::SimWorld;
    use store::sync::StdSync;
    for (index, level) in [SyncLevel::None, SyncLevel::File, SyncLevel::Filesystem]
        .into_iter()
        .enumerate()
    {
        let world = SimWorld::<StdSync>::new(index as u64);
        let config = ChunkStoreConfig::new(PrefixFanout::SMALL).with_sync_level(level);
        let store =
            ChunkStore::create(world.clone(), std::path::Path::new("/ds"), config).expect("create");
        let before = world.sim_stats();
        store.insert_chunk(&chunk(b"one")).expect("insert");
        store.insert_chunk(&chunk(b"two")).expect("insert");
        store.insert_chunk(&chunk(b"one")).expect("duplicate");
        let after_inserts = world.sim_stats();
        store.ensure_sync_level().expect("sync");
        let after_ensure = world.sim_stats();
        let file_syncs = after_inserts.sync_all - before.sync_all;
        let dir_syncs = after_inserts.fsync_dir - before.fsync_dir;
        let syncfs = after_ensure.syncfs - after_inserts.syncfs;
        let expected = match level {
            SyncLevel::None => (0, 0, 0),
            SyncLevel::File => (2, 2, 0),
            SyncLevel::Filesystem => (0, 0, 1),
        };
        assert_eq!((file_syncs, dir_syncs, syncfs), expected, "{level:?}");
    }
}
