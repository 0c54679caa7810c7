//! Garbage collection on both worlds: what is removed, what is kept and why, the locks that
//! exclude a second run, the access-time safety check, the touch cache, the status file, and
//! the group relist that closes race B18.
//!
//! Chunks are aged with [`Env::set_atime`] instead of waiting. Tests that need the store's clock
//! to move (a writer older than the cutoff) or the filesystem to misbehave (atime updates
//! ignored, a file replaced at a chosen moment) run the store on [`HookWorld`], a thin wrapper
//! around either world.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use store::backup_info::{BackupDir, BackupGroup};
use store::chunk_store::{Chunk, ChunkStoreConfig, ChunkStoreError, PrefixFanout, SyncLevel};
use store::datastore::backup::{ArchiveSpec, BackupOutcome, backup_snapshot};
use store::datastore::gc::{
    GC_CUTOFF_DEFAULT, GC_CUTOFF_MAX, GC_CUTOFF_MIN, GC_STATUS_FILE, GcOptions, GcOutcome,
    GcStatus, GcWarning,
};
use store::datastore::{Datastore, DatastoreConfig, Error};
use store::digest::Digest;
use store::index::DynamicIndex;
use store::world::{DirEntry, Metadata, OpenOptions, World, WorldFile};

use crate::both_worlds;
use crate::support::Env;

const DAY: i64 = 86_400;
const OWNER: &str = "gc@test";

both_worlds!(
    old_unreferenced_chunk_goes_referenced_one_is_touched,
    grace_window_keeps_unreferenced_chunks,
    forgotten_snapshot_chunks_go_once_aged,
    live_writer_older_than_cutoff_keeps_its_chunks,
    second_gc_is_refused_while_one_runs,
    missing_referenced_chunk_is_a_warning_and_bad_copies_stay,
    touch_cache_capacity_does_not_change_the_result,
    status_round_trip_and_corrupt_status_file,
    atime_check_passes_and_the_clock_moves,
    atime_check_fails_when_updates_are_ignored,
    atime_check_retries_once_when_the_probe_is_replaced,
    cutoff_out_of_range_is_rejected,
    touch_error_aborts_before_the_sweep,
    index_files_outside_the_hierarchy_are_marked,
    vanished_newest_snapshot_makes_gc_list_the_group_again,
    relists_end_under_the_group_lock,
);

// ------------------------------------------------------------------------------------------
// Fixtures

fn new_store<W: World>(world: W, base: &Path) -> Datastore<W> {
    let chunk_store = ChunkStoreConfig::new(PrefixFanout::SMALL).with_sync_level(SyncLevel::None);
    Datastore::create(world, base, DatastoreConfig::new(chunk_store)).expect("create the datastore")
}

/// GC options for tests: no safety check (on the real world it sleeps a second).
fn quick() -> GcOptions {
    GcOptions {
        atime_safety_check: false,
        ..GcOptions::default()
    }
}

fn snapshot(path: &str) -> BackupDir {
    BackupDir::from_relative_path(path).expect("valid snapshot path")
}

fn data(tag: &str) -> Vec<u8> {
    format!("chunk data of {tag}").repeat(8).into_bytes()
}

fn chunk(tag: &str) -> Chunk {
    Chunk::from_data(&data(tag)).expect("valid chunk")
}

fn backup<W: World>(store: &Datastore<W>, dir: &str, tags: &[&str]) -> BackupOutcome {
    let chunks = tags.iter().map(|tag| data(tag)).collect();
    backup_snapshot(
        store,
        &snapshot(dir),
        OWNER,
        &[ArchiveSpec::new("disk.didx", chunks)],
    )
    .expect("backup")
}

fn chunk_path<W: World>(store: &Datastore<W>, tag: &str) -> PathBuf {
    store.chunk_store().chunk_path(chunk(tag).digest())
}

fn stat<W: World>(store: &Datastore<W>, path: &Path) -> Option<Metadata> {
    store.world().try_metadata(path).expect("stat")
}

fn exists<W: World>(store: &Datastore<W>, tag: &str) -> bool {
    stat(store, &chunk_path(store, tag)).is_some()
}

fn atime<W: World>(store: &Datastore<W>, tag: &str) -> i64 {
    stat(store, &chunk_path(store, tag))
        .expect("chunk exists")
        .atime
}

fn insert<W: World>(store: &Datastore<W>, tag: &str) {
    store
        .chunk_store()
        .insert_chunk(&chunk(tag))
        .expect("insert");
}

fn age<E: Env, W: World>(env: &E, store: &Datastore<W>, tags: &[&str], atime: i64) {
    for tag in tags {
        env.set_atime(&chunk_path(store, tag), atime);
    }
}

fn encoded_len(tags: &[&str]) -> u64 {
    tags.iter().map(|tag| chunk(tag).blob().len() as u64).sum()
}

fn gc<W: World>(store: &Datastore<W>, options: &GcOptions) -> GcOutcome {
    store
        .garbage_collection(options)
        .expect("garbage collection")
}

/// Writes a valid dynamic index referencing `tags` at `path` (any name, any place).
fn write_index<W: World>(world: &W, path: &Path, tags: &[&str]) {
    let mut end = 0;
    let entries: Vec<(u64, Digest)> = tags
        .iter()
        .map(|tag| {
            end += data(tag).len() as u64;
            (end, *chunk(tag).digest())
        })
        .collect();
    let index = DynamicIndex::new([7; 16], 0, &entries).expect("index");
    if let Some(parent) = path.parent() {
        world.create_dir_all(parent).expect("mkdir");
    }
    let file = world
        .open(path, OpenOptions::create_new())
        .expect("create index");
    file.write_at(0, &index.to_bytes()).expect("write index");
}

// ------------------------------------------------------------------------------------------
// A world wrapper with a movable clock and hooks

type Hook<T> = Mutex<Option<Box<dyn FnMut(&T) -> bool + Send>>>;

struct Hooks {
    /// Added to the inner world's `now` (the store's clock only; file times stay the inner
    /// world's).
    skew: AtomicI64,
    /// `touch_atime` succeeds without changing anything (a filesystem ignoring updates).
    ignore_touch: AtomicBool,
    /// Number of `sleep` calls.
    sleeps: AtomicU64,
    /// Runs before every `open` until it returns `true`.
    on_open: Hook<Path>,
    /// Runs after every `sleep` until it returns `true`.
    on_sleep: Hook<()>,
}

/// The inner world plus [`Hooks`]. A hook is taken out while it runs, so the operations it
/// performs on the same world do not run it again.
#[derive(Clone)]
struct HookWorld<W> {
    inner: W,
    hooks: Arc<Hooks>,
}

impl<W: World> HookWorld<W> {
    fn new(inner: W) -> HookWorld<W> {
        let hooks = Hooks {
            skew: AtomicI64::new(0),
            ignore_touch: AtomicBool::new(false),
            sleeps: AtomicU64::new(0),
            on_open: Mutex::new(None),
            on_sleep: Mutex::new(None),
        };
        HookWorld {
            inner,
            hooks: Arc::new(hooks),
        }
    }

    fn on_open(&self, hook: impl FnMut(&Path) -> bool + Send + 'static) {
        *self
            .hooks
            .on_open
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Box::new(hook));
    }

    fn on_sleep(&self, mut hook: impl FnMut() -> bool + Send + 'static) {
        let hook = move |_: &()| hook();
        *self
            .hooks
            .on_sleep
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Box::new(hook));
    }

    fn sleeps(&self) -> u64 {
        self.hooks.sleeps.load(Ordering::SeqCst)
    }
}

fn run_hook<T: ?Sized>(slot: &Hook<T>, arg: &T) {
    let taken = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(mut hook) = taken
        && !hook(arg)
    {
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(hook);
    }
}

impl<W: World> World for HookWorld<W> {
    type Sync = W::Sync;
    type File = W::File;

    fn now(&self) -> i64 {
        self.inner.now() + self.hooks.skew.load(Ordering::SeqCst)
    }

    fn sleep(&self, duration: Duration) {
        self.inner.sleep(duration);
        self.hooks.sleeps.fetch_add(1, Ordering::SeqCst);
        run_hook(&self.hooks.on_sleep, &());
    }

    fn unique_id(&self) -> u64 {
        self.inner.unique_id()
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir(path)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        self.inner.read_dir(path)
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.inner.metadata(path)
    }

    fn touch_atime(&self, path: &Path) -> io::Result<()> {
        if self.hooks.ignore_touch.load(Ordering::SeqCst) {
            return self.inner.metadata(path).map(drop);
        }
        self.inner.touch_atime(path)
    }

    fn open(&self, path: &Path, options: OpenOptions) -> io::Result<W::File> {
        run_hook(&self.hooks.on_open, path);
        self.inner.open(path, options)
    }

    fn fsync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.fsync_dir(path)
    }

    fn syncfs(&self, path: &Path) -> io::Result<()> {
        self.inner.syncfs(path)
    }
}

// ------------------------------------------------------------------------------------------
// Tests

fn old_unreferenced_chunk_goes_referenced_one_is_touched(env: &impl Env) {
    let store = new_store(env.world(), &env.root().join("ds"));
    backup(&store, "vm/100/2024-01-01T00:00:00Z", &["a", "b"]);
    insert(&store, "u");
    let old = store.world().now() - 2 * DAY;
    age(env, &store, &["a", "b", "u"], old);

    let outcome = gc(&store, &quick());

    assert!(
        !exists(&store, "u"),
        "unreferenced and older than the cutoff"
    );
    for tag in ["a", "b"] {
        assert!(
            atime(&store, tag) >= outcome.phase1_start,
            "{tag} was marked"
        );
    }
    let status = &outcome.status;
    assert_eq!(
        (status.removed_chunks, status.removed_bytes),
        (1, encoded_len(&["u"]))
    );
    assert_eq!(
        (status.disk_chunks, status.disk_bytes),
        (2, encoded_len(&["a", "b"]))
    );
    assert_eq!(
        (status.pending_chunks, status.removed_bad, status.still_bad),
        (0, 0, 0)
    );
    assert_eq!(status.index_file_count, 1);
    assert_eq!(
        status.index_data_bytes,
        (data("a").len() + data("b").len()) as u64
    );
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    assert_eq!(outcome.oldest_writer, outcome.phase1_start, "no writer");
    let cutoff = GC_CUTOFF_DEFAULT.as_secs() as i64;
    assert_eq!(outcome.min_atime, outcome.phase1_start - cutoff);
}

fn grace_window_keeps_unreferenced_chunks(env: &impl Env) {
    let store = new_store(env.world(), &env.root().join("ds"));
    let now = store.world().now();
    for tag in ["old", "hour", "future"] {
        insert(&store, tag);
    }
    age(env, &store, &["old"], now - 2 * DAY);
    age(env, &store, &["hour"], now - 3600);
    age(env, &store, &["future"], now + 3600);

    let outcome = gc(&store, &quick());
    assert!(!exists(&store, "old"));
    assert!(exists(&store, "hour") && exists(&store, "future"));
    let status = &outcome.status;
    assert_eq!(status.removed_chunks, 1);
    assert_eq!(
        (status.pending_chunks, status.pending_bytes),
        (1, encoded_len(&["hour"]))
    );
    assert_eq!(
        (status.disk_chunks, status.disk_bytes),
        (1, encoded_len(&["future"]))
    );
    assert_eq!(
        atime(&store, "hour"),
        now - 3600,
        "GC did not touch an unreferenced chunk"
    );

    // With the shortest cutoff the hour-old chunk is outside the window.
    let shortest = GcOptions {
        cutoff: GC_CUTOFF_MIN,
        ..quick()
    };
    let outcome = gc(&store, &shortest);
    assert!(!exists(&store, "hour"));
    assert!(exists(&store, "future"));
    assert_eq!(outcome.status.removed_chunks, 1);
    assert_eq!(outcome.min_atime, outcome.phase1_start - 60);
}

fn forgotten_snapshot_chunks_go_once_aged(env: &impl Env) {
    let store = new_store(env.world(), &env.root().join("ds"));
    let s0 = backup(
        &store,
        "vm/100/2024-01-01T00:00:00Z",
        &["only-s0", "shared"],
    )
    .dir;
    backup(
        &store,
        "vm/100/2024-01-02T00:00:00Z",
        &["shared", "only-s1"],
    );
    store.forget_snapshot(&s0).expect("forget");

    // Freshly written: inside the grace window, kept although nothing references it.
    gc(&store, &quick());
    assert!(exists(&store, "only-s0"));

    let old = store.world().now() - 2 * DAY;
    age(env, &store, &["only-s0", "shared", "only-s1"], old);
    let outcome = gc(&store, &quick());
    assert!(!exists(&store, "only-s0"));
    assert!(exists(&store, "shared") && exists(&store, "only-s1"));
    assert_eq!(outcome.status.removed_chunks, 1);
    assert_eq!(outcome.status.index_file_count, 1);
}

fn live_writer_older_than_cutoff_keeps_its_chunks(env: &impl Env) {
    let world = HookWorld::new(env.world());
    let store = new_store(world.clone(), &env.root().join("ds"));
    let writer = store
        .process_locker()
        .try_shared_lock()
        .expect("a backup session");
    let start = writer.start_time();
    for tag in ["before-margin", "in-margin", "written"] {
        insert(&store, tag);
    }
    age(env, &store, &["before-margin"], start - 1000);
    age(env, &store, &["in-margin"], start - 200);
    age(env, &store, &["written"], start + 10);
    // The session has been running for three days when GC starts.
    world.hooks.skew.store(3 * DAY, Ordering::SeqCst);

    let outcome = gc(&store, &quick());
    assert_eq!(outcome.oldest_writer, start);
    assert_eq!(
        outcome.min_atime,
        start - 300,
        "the writer pulls the cutoff back"
    );
    assert!(!exists(&store, "before-margin"));
    assert!(exists(&store, "in-margin") && exists(&store, "written"));
    assert_eq!(outcome.status.removed_chunks, 1);
    assert_eq!(
        outcome.status.pending_chunks, 1,
        "in-margin predates the writer"
    );
    assert_eq!(outcome.status.disk_chunks, 1);

    // Without the writer the same chunks are far older than the cutoff.
    drop(writer);
    let outcome = gc(&store, &quick());
    assert_eq!(outcome.oldest_writer, outcome.phase1_start);
    assert!(!exists(&store, "in-margin") && !exists(&store, "written"));
    assert_eq!(outcome.status.removed_chunks, 2);
}

fn second_gc_is_refused_while_one_runs(env: &impl Env) {
    let store = new_store(env.world(), &env.root().join("ds"));
    insert(&store, "u");
    age(env, &store, &["u"], store.world().now() - 2 * DAY);

    let running = store.gc_mutex().try_lock().expect("the GC mutex is free");
    let err = store
        .garbage_collection(&quick())
        .expect_err("GC mutex held");
    assert!(
        matches!(err, Error::GcRunning) && err.is_contention(),
        "{err:?}"
    );
    drop(running);

    let exclusive = store
        .process_locker()
        .try_exclusive_lock()
        .expect("the process lock");
    let err = store
        .garbage_collection(&quick())
        .expect_err("process lock held");
    assert!(
        matches!(err, Error::GcRunning) && err.is_contention(),
        "{err:?}"
    );
    assert!(exists(&store, "u"), "a refused GC removes nothing");
    assert_eq!(store.last_gc_status().expect("status"), None);
    drop(exclusive);

    let outcome = gc(&store, &quick());
    assert!(!exists(&store, "u"));
    assert_eq!(outcome.status.removed_chunks, 1);
    // Both locks were released at the end of the run.
    gc(&store, &quick());
}

fn missing_referenced_chunk_is_a_warning_and_bad_copies_stay(env: &impl Env) {
    let store = new_store(env.world(), &env.root().join("ds"));
    let dir = backup(&store, "vm/100/2024-01-01T00:00:00Z", &["m", "ok"]).dir;
    insert(&store, "z");
    let chunks = store.chunk_store();
    let (m, z) = (chunk("m"), chunk("z"));
    chunks
        .rename_corrupt_chunk(m.digest())
        .expect("rename m")
        .expect("m existed");
    chunks
        .rename_corrupt_chunk(z.digest())
        .expect("rename z")
        .expect("z existed");
    let (m_bad, z_bad) = (
        chunks.bad_chunk_path(m.digest(), 0),
        chunks.bad_chunk_path(z.digest(), 0),
    );
    let old = store.world().now() - 2 * DAY;
    env.set_atime(&m_bad, old);
    env.set_atime(&z_bad, old);
    age(env, &store, &["ok"], old);

    let outcome = gc(&store, &quick());

    let index = store.snapshot_path(&dir).join("disk.didx");
    let expected = GcWarning::MissingChunk {
        digest: *m.digest(),
        index,
        bad_copies_touched: true,
    };
    assert_eq!(outcome.warnings, vec![expected]);
    let m_bad_meta = stat(&store, &m_bad).expect("the referenced .bad copy stays");
    assert!(m_bad_meta.atime >= outcome.phase1_start, "and was touched");
    assert!(
        stat(&store, &z_bad).is_none(),
        "an unreferenced old .bad copy goes"
    );
    assert!(exists(&store, "ok"));
    let status = &outcome.status;
    assert_eq!(
        (status.removed_bad, status.still_bad, status.removed_chunks),
        (1, 1, 0)
    );
}

fn touch_cache_capacity_does_not_change_the_result(env: &impl Env) {
    // Two snapshots of the same four-chunk stream a a b a: 8 references, 2 distinct digests.
    let mut results = Vec::new();
    for (capacity, expected_hits) in [(0, 0), (1, 3), (1 << 20, 6)] {
        let store = new_store(env.world(), &env.root().join(format!("ds-{capacity}")));
        backup(&store, "ct/7/2024-01-01T00:00:00Z", &["a", "a", "b", "a"]);
        backup(&store, "ct/7/2024-01-02T00:00:00Z", &["a", "a", "b", "a"]);
        insert(&store, "u");
        age(env, &store, &["a", "b", "u"], store.world().now() - 2 * DAY);

        let outcome = gc(
            &store,
            &GcOptions {
                cache_capacity: capacity,
                ..quick()
            },
        );
        let stats = outcome.status.cache_stats;
        assert_eq!(
            (stats.hits, stats.misses),
            (expected_hits, 8 - expected_hits),
            "capacity {capacity}"
        );
        assert!(
            atime(&store, "a") >= outcome.phase1_start
                && atime(&store, "b") >= outcome.phase1_start
        );
        let survivors = ["a", "b", "u"].map(|tag| exists(&store, tag));
        let status = GcStatus {
            cache_stats: Default::default(),
            ..outcome.status
        };
        results.push((survivors, status));
    }
    assert_eq!(results[0].0, [true, true, false]);
    assert!(
        results.iter().all(|result| *result == results[0]),
        "{results:#?}"
    );
}

fn status_round_trip_and_corrupt_status_file(env: &impl Env) {
    let store = new_store(env.world(), &env.root().join("ds"));
    assert_eq!(store.last_gc_status().expect("no status yet"), None);
    backup(&store, "host/web/2024-01-01T00:00:00Z", &["a"]);
    let options = GcOptions {
        upid: Some("UPID:gc:1".to_owned()),
        ..quick()
    };
    let outcome = gc(&store, &options);
    assert_eq!(outcome.status.upid.as_deref(), Some("UPID:gc:1"));
    assert_eq!(
        store.last_gc_status().expect("read"),
        Some(outcome.status.clone())
    );

    let path = store.base().join(GC_STATUS_FILE);
    let text = String::from_utf8(store.world().read_file(&path).expect("read")).expect("UTF-8");
    assert!(text.contains("\"index-file-count\": 1"), "{text}");
    assert!(text.contains("\"cache-stats\""), "{text}");

    for garbage in [&b"{ not json"[..], b"{\"upid\": null}", b""] {
        let file = store
            .world()
            .open(&path, OpenOptions::create_truncate())
            .expect("open");
        file.write_at(0, garbage).expect("write");
        drop(file);
        let err = store.last_gc_status().expect_err("corrupt");
        assert!(matches!(err, Error::GcStatusCorrupt { .. }), "{err:?}");
    }
    let outcome = gc(&store, &quick());
    assert_eq!(
        store.last_gc_status().expect("rewritten"),
        Some(outcome.status)
    );
    let leftovers: Vec<_> = store
        .world()
        .read_dir(store.base())
        .expect("list")
        .into_iter()
        .filter(|entry| entry.name_str().is_some_and(|name| name.contains(".tmp_")))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn atime_check_passes_and_the_clock_moves(env: &impl Env) {
    let store = new_store(env.world(), &env.root().join("ds"));
    backup(&store, "vm/1/2024-01-01T00:00:00Z", &["a"]);
    let before = store.world().now();
    let outcome = gc(&store, &GcOptions::default());
    assert!(
        store.world().now() > before,
        "a second of world time passed"
    );
    let probe = Chunk::from_data(&[]).expect("probe");
    let probe_meta = store
        .chunk_store()
        .chunk_metadata(probe.digest())
        .expect("stat");
    assert!(
        probe_meta.is_some_and(|meta| meta.atime > outcome.phase1_start),
        "the probe was touched after the sleep"
    );
    assert_eq!(outcome.status.disk_chunks, 2, "a and the probe");
}

fn atime_check_fails_when_updates_are_ignored(env: &impl Env) {
    let world = HookWorld::new(env.world());
    let store = new_store(world.clone(), &env.root().join("ds"));
    insert(&store, "u");
    age(env, &store, &["u"], store.world().now() - 2 * DAY);
    world.hooks.ignore_touch.store(true, Ordering::SeqCst);

    let err = store
        .garbage_collection(&GcOptions::default())
        .expect_err("atime stuck");
    assert!(matches!(err, Error::AtimeCheckFailed(_)), "{err:?}");
    assert!(exists(&store, "u"), "nothing was swept");
    assert_eq!(store.last_gc_status().expect("status"), None);
    // Switched off, the check is not run (and this GC, which would mark nothing, sweeps).
    let outcome = gc(&store, &quick());
    assert_eq!(outcome.status.removed_chunks, 1);
}

/// Replaces the probe chunk's file with a copy (a new inode), as a concurrent rewrite would.
fn replace_probe<W: World>(world: &W, path: &Path) {
    let bytes = world.read_file(path).expect("read the probe");
    let temp = path.with_extension("tmp_replace");
    let file = world
        .open(&temp, OpenOptions::create_new())
        .expect("create");
    file.write_at(0, &bytes).expect("write");
    drop(file);
    world.rename(&temp, path).expect("rename over the probe");
}

fn atime_check_retries_once_when_the_probe_is_replaced(env: &impl Env) {
    let world = HookWorld::new(env.world());
    let store = new_store(world.clone(), &env.root().join("ds"));
    let probe = Chunk::from_data(&[]).expect("probe");
    let path = store.chunk_store().chunk_path(probe.digest());

    // Replaced once: the check runs again and passes.
    let inner = env.world();
    let probe_path = path.clone();
    world.on_sleep(move || {
        replace_probe(&inner, &probe_path);
        true
    });
    gc(&store, &GcOptions::default());
    assert_eq!(world.sleeps(), 2, "one retry");

    // Replaced every time: the second failure is final.
    let inner = env.world();
    world.on_sleep(move || {
        replace_probe(&inner, &path);
        false
    });
    let err = store
        .garbage_collection(&GcOptions::default())
        .expect_err("replaced twice");
    assert!(matches!(err, Error::AtimeCheckFailed(_)), "{err:?}");
    assert_eq!(world.sleeps(), 4, "two probes, no third");
}

fn cutoff_out_of_range_is_rejected(env: &impl Env) {
    let store = new_store(env.world(), &env.root().join("ds"));
    insert(&store, "u");
    age(env, &store, &["u"], store.world().now() - 2 * DAY);
    let too_short = [
        Duration::ZERO,
        Duration::from_secs(59),
        Duration::from_millis(59_999),
    ];
    let too_long = [
        GC_CUTOFF_MAX + Duration::from_secs(1),
        GC_CUTOFF_MAX + Duration::from_nanos(1),
    ];
    for cutoff in too_short.into_iter().chain(too_long) {
        let options = GcOptions { cutoff, ..quick() };
        assert!(
            matches!(options.validate(), Err(Error::GcCutoffOutOfRange { .. })),
            "{cutoff:?}"
        );
        let err = store.garbage_collection(&options).expect_err("rejected");
        assert!(
            matches!(err, Error::GcCutoffOutOfRange { cutoff: c } if c == cutoff),
            "{err:?}"
        );
    }
    assert!(exists(&store, "u"), "a rejected run removes nothing");
    for cutoff in [GC_CUTOFF_MIN, GC_CUTOFF_MAX, GC_CUTOFF_DEFAULT] {
        GcOptions { cutoff, ..quick() }
            .validate()
            .expect("in range");
    }
    let outcome = gc(
        &store,
        &GcOptions {
            cutoff: GC_CUTOFF_MAX,
            ..quick()
        },
    );
    assert_eq!(outcome.min_atime, outcome.phase1_start - 2 * DAY);
}

fn touch_error_aborts_before_the_sweep(env: &impl Env) {
    let store = new_store(env.world(), &env.root().join("ds"));
    let prefix = |tag: &str| store.chunk_store().prefix_dir(chunk(tag).digest());
    // A referenced chunk and an unreferenced one whose prefix directory the sweep visits first.
    let referenced = (0..)
        .map(|i| format!("r{i}"))
        .find(|tag| !prefix(tag).ends_with("0"))
        .expect("tag");
    let unreferenced = (0..)
        .map(|i| format!("u{i}"))
        .find(|tag| prefix(tag) < prefix(&referenced))
        .expect("tag");
    backup(&store, "vm/100/2024-01-01T00:00:00Z", &[&referenced]);
    insert(&store, &unreferenced);
    age(env, &store, &[&unreferenced], store.world().now() - 2 * DAY);
    // The referenced chunk's prefix directory becomes a file: touching the chunk now fails with
    // "not a directory", which is not "not found".
    let world = store.world();
    let prefix_dir = prefix(&referenced);
    world
        .remove_file(&chunk_path(&store, &referenced))
        .expect("unlink");
    world.remove_dir(&prefix_dir).expect("rmdir");
    world
        .open(&prefix_dir, OpenOptions::create_new())
        .expect("a file in its place");

    let err = store
        .garbage_collection(&quick())
        .expect_err("touch failed");
    match &err {
        Error::ChunkStore(ChunkStoreError::Io(io_err)) if io_err.op == "touch" => {
            assert_eq!(io_err.kind(), io::ErrorKind::NotADirectory, "{err:?}")
        }
        other => panic!("expected the touch error, got {other:?}"),
    }
    assert!(exists(&store, &unreferenced), "GC aborted before sweeping");
    assert_eq!(store.last_gc_status().expect("status"), None);

    // Repaired (the chunk stays lost): GC runs, warns, and sweeps.
    world.remove_file(&prefix_dir).expect("unlink");
    world.create_dir(&prefix_dir).expect("mkdir");
    let outcome = gc(&store, &quick());
    assert!(
        matches!(
            outcome.warnings.as_slice(),
            [GcWarning::MissingChunk { .. }]
        ),
        "{:?}",
        outcome.warnings
    );
    assert!(!exists(&store, &unreferenced));
}

fn index_files_outside_the_hierarchy_are_marked(env: &impl Env) {
    let store = new_store(env.world(), &env.root().join("ds"));
    let base = store.base().to_owned();
    let stray = base.join("stray/old.didx");
    let odd = base.join("vm/100/not-a-time/disk.didx");
    write_index(store.world(), &stray, &["stray"]);
    write_index(store.world(), &odd, &["odd"]);
    // Not index files for GC: hidden entries and names still being written.
    write_index(store.world(), &base.join(".hidden/x.didx"), &["hidden"]);
    write_index(
        store.world(),
        &base.join("vm/100/2024-01-01T00:00:00Z/disk.tmp_didx"),
        &["temp"],
    );
    let tags = ["stray", "odd", "hidden", "temp"];
    for tag in tags {
        insert(&store, tag);
    }
    age(env, &store, &tags, store.world().now() - 2 * DAY);

    let outcome = gc(&store, &quick());
    assert!(exists(&store, "stray") && exists(&store, "odd"));
    assert!(!exists(&store, "hidden") && !exists(&store, "temp"));
    let mut warned: Vec<PathBuf> = outcome
        .warnings
        .iter()
        .map(|warning| match warning {
            GcWarning::IndexOutsideHierarchy { path } => path.clone(),
            other => panic!("unexpected warning {other:?}"),
        })
        .collect();
    warned.sort();
    let mut expected = vec![stray, odd];
    expected.sort();
    assert_eq!(warned, expected);
    assert_eq!(outcome.status.index_file_count, 2);
}

/// Race B18: while GC works through a group, a backup based on its newest snapshot finishes
/// and the base is forgotten. The chunks the new snapshot reused (without touching them) are
/// referenced only by it; GC finds the base gone and lists the group again.
fn vanished_newest_snapshot_makes_gc_list_the_group_again(env: &impl Env) {
    let world = HookWorld::new(env.world());
    let store = new_store(world.clone(), &env.root().join("ds"));
    let s0 = backup(&store, "vm/100/2024-01-01T00:00:00Z", &["x", "y"]).dir;
    age(env, &store, &["x", "y"], store.world().now() - 2 * DAY);

    let s0_index = store.snapshot_path(&s0).join("disk.didx");
    let in_hook = store.clone();
    let reused = Arc::new(AtomicU64::new(u64::MAX));
    let reused_in_hook = Arc::clone(&reused);
    world.on_open(move |path| {
        if path != s0_index {
            return false;
        }
        let s1 = backup(&in_hook, "vm/100/2024-01-02T00:00:00Z", &["x", "y", "z"]);
        reused_in_hook.store(s1.reused_chunks as u64, Ordering::SeqCst);
        in_hook.forget_snapshot(&s0).expect("prune the base");
        true
    });

    let outcome = gc(&store, &quick());
    assert_eq!(
        reused.load(Ordering::SeqCst),
        2,
        "x and y were reused, not uploaded"
    );
    assert!(exists(&store, "x") && exists(&store, "y") && exists(&store, "z"));
    assert!(
        atime(&store, "x") >= outcome.phase1_start,
        "marked through the new snapshot"
    );
    assert_eq!(outcome.status.index_file_count, 1);
    assert_eq!(outcome.status.removed_chunks, 0);
}

fn relists_end_under_the_group_lock(env: &impl Env) {
    for hold_group_lock in [false, true] {
        let world = HookWorld::new(env.world());
        let base = env.root().join(format!("ds-{hold_group_lock}"));
        let store = new_store(world.clone(), &base);
        let first = backup(&store, "vm/100/2024-01-01T00:00:00Z", &["x"]).dir;
        let group: BackupGroup = first.group.clone();
        // Every time GC opens the newest snapshot's index, the snapshot moves to a newer time.
        let (inner, group_dir) = (env.world(), store.group_path(&group));
        let calls = Arc::new(AtomicU64::new(0));
        let calls_in_hook = Arc::clone(&calls);
        world.on_open(move |path| {
            if path.extension().is_none_or(|ext| ext != "didx") {
                return false;
            }
            let n = calls_in_hook.fetch_add(1, Ordering::SeqCst) + 1;
            let from = path.parent().expect("snapshot dir");
            let to = group_dir.join(format!("2024-01-01T00:{:02}:{:02}Z", n / 60, n % 60));
            inner.rename(from, &to).expect("move the snapshot");
            false
        });
        let held = hold_group_lock.then(|| store.lock_group(&group).expect("a running backup"));

        let err = store
            .garbage_collection(&quick())
            .expect_err("the group never settles");
        if hold_group_lock {
            assert!(
                matches!(&err, Error::Lock(lock) if lock.is_contention()),
                "{err:?}"
            );
            assert_eq!(
                calls.load(Ordering::SeqCst),
                10,
                "ten relists, then the lock"
            );
        } else {
            assert!(
                matches!(&err, Error::GcGroupUnstable { relists: 10, .. }),
                "{err:?}"
            );
            assert_eq!(
                calls.load(Ordering::SeqCst),
                11,
                "the last pass ran under the lock"
            );
        }
        drop(held);
        assert!(exists(&store, "x"), "nothing was swept");
    }
}
