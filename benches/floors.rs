//! The store against its floor, side by side in one run, on a tmpfs (`/dev/shm`) when there
//! is one (a fresh store on a disk filesystem measures the filesystem's allocator):
//!
//! * `insert_4k`: `insert_chunk` of a new 4 KiB chunk without fsync, against the raw syscall
//!   sequence it cannot avoid: stat, create, write, close, rename.
//! * `gc`: one garbage collection (mark + sweep) over `BENCH_GC_CHUNKS` chunks (default
//!   1 000 000), every chunk referenced once, so a run touches each unique chunk once and keeps
//!   it, against the floor: one `utimensat` per chunk plus `readdir` + `fstatat` of every
//!   chunk file.
//! * `verify`: verify of a 256 MiB snapshot (4 MiB chunks) against SHA-256 over the same bytes
//!   in memory.
//!
//! `cargo bench --bench floors`; the ratio of each pair is the store's overhead.

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sha2::{Digest as _, Sha256};
use store::backup_info::{BackupDir, BackupGroup, BackupTime};
use store::chunk_store::{Chunk, ChunkStore, ChunkStoreConfig, PrefixFanout, SyncLevel};
use store::datastore::gc::GcOptions;
use store::datastore::verify::{VerifyJob, VerifyOptions};
use store::datastore::{Datastore, DatastoreConfig};
use store::manifest::Manifest;
use store::world::RealWorld;

fn scratch(name: &str) -> tempfile::TempDir {
    let mut builder = tempfile::Builder::new();
    builder.prefix(name);
    if Path::new("/dev/shm").is_dir() {
        builder.tempdir_in("/dev/shm").expect("tempdir in /dev/shm")
    } else {
        builder.tempdir().expect("tempdir")
    }
}

fn config() -> ChunkStoreConfig {
    ChunkStoreConfig::new(PrefixFanout::DEFAULT).with_sync_level(SyncLevel::None)
}

/// `len` bytes of xorshift noise from `seed`.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn insert(c: &mut Criterion) {
    let dir = scratch("bench-insert");
    let store = ChunkStore::create(RealWorld::new(), &dir.path().join("store"), config())
        .expect("create the chunk store");
    let raw_root = dir.path().join("raw");
    fs::create_dir_all(&raw_root).expect("mkdir raw");
    let fanout = PrefixFanout::DEFAULT;
    for index in 0..fanout.dir_count() {
        fs::create_dir(raw_root.join(fanout.dir_name(index))).expect("mkdir prefix");
    }
    let mut seed = 0u64;
    let mut next_chunk = || {
        seed += 1;
        Chunk::from_data(&noise(4096, seed)).expect("a 4 KiB chunk")
    };
    let mut group = c.benchmark_group("insert_4k");
    group.throughput(Throughput::Elements(1));
    group.bench_function("store", |b| {
        b.iter_batched(
            &mut next_chunk,
            |chunk| store.insert_chunk(&chunk).expect("insert"),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("raw_syscalls", |b| {
        b.iter_batched(
            &mut next_chunk,
            |chunk| {
                let hex = chunk.digest().to_hex();
                let path = raw_root.join(fanout.prefix_of(chunk.digest())).join(&hex);
                assert!(fs::symlink_metadata(&path).is_err(), "a new chunk");
                let temp = path.with_extension("tmp");
                let mut file = fs::File::create(&temp).expect("create");
                file.write_all(chunk.blob()).expect("write");
                drop(file);
                fs::rename(&temp, &path).expect("rename");
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn gc(c: &mut Criterion) {
    let chunks: u64 = std::env::var("BENCH_GC_CHUNKS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1_000_000);
    let dir = scratch("bench-gc");
    let base = dir.path().join("store");
    let datastore = Datastore::create(RealWorld::new(), &base, DatastoreConfig::new(config()))
        .expect("create the datastore");
    // One snapshot referencing every chunk once.
    let group = BackupGroup::from_relative_path("host/bench").expect("group");
    let snapshot = BackupDir::new(group, BackupTime::from_epoch(1_700_000_000).expect("time"));
    let mut session = datastore
        .start_backup(&snapshot, "bench@local")
        .expect("start");
    let writer = session.create_dynamic_index("all.didx").expect("index");
    let mut paths = Vec::with_capacity(chunks as usize);
    for n in 0..chunks {
        let chunk = Chunk::from_data(&n.to_le_bytes()).expect("chunk");
        session.upload_chunk(&chunk).expect("upload");
        session
            .append_chunk(&writer, chunk.digest(), 8)
            .expect("append");
        let path = datastore.chunk_store().chunk_path(chunk.digest());
        paths.push(CString::new(path.as_os_str().as_bytes()).expect("path"));
    }
    let info = session.close_index(writer).expect("close");
    let mut manifest = Manifest::new(&snapshot);
    manifest.add_file(info).expect("manifest entry");
    session.finish(manifest).expect("finish");
    let prefix_dirs: Vec<PathBuf> = {
        let fanout = PrefixFanout::DEFAULT;
        (0..fanout.dir_count())
            .map(|i| base.join(".chunks").join(fanout.dir_name(i)))
            .collect()
    };

    let mut group = c.benchmark_group(format!("gc_{chunks}_chunks"));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(chunks));
    let options = GcOptions {
        atime_safety_check: false,
        cache_capacity: chunks as usize,
        ..GcOptions::default()
    };
    group.bench_function("store_mark_and_sweep", |b| {
        b.iter(|| {
            let outcome = datastore.garbage_collection(&options).expect("gc");
            assert_eq!(
                outcome.status.disk_chunks + outcome.status.pending_chunks,
                chunks
            );
        })
    });
    group.bench_function("raw_utimensat_readdir_fstatat", |b| {
        b.iter(|| {
            let times = [
                libc::timespec {
                    tv_sec: 0,
                    tv_nsec: libc::UTIME_NOW,
                },
                libc::timespec {
                    tv_sec: 0,
                    tv_nsec: libc::UTIME_OMIT,
                },
            ];
            for path in &paths {
                // SAFETY: a valid C string and two timespecs, as utimensat(2) requires.
                let rc =
                    unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), 0) };
                assert_eq!(rc, 0, "utimensat");
            }
            let mut seen = 0u64;
            for dir in &prefix_dirs {
                for entry in fs::read_dir(dir).expect("readdir") {
                    let entry = entry.expect("entry");
                    // DirEntry::metadata is fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW).
                    let metadata = entry.metadata().expect("fstatat");
                    seen += u64::from(metadata.is_file());
                }
            }
            assert_eq!(seen, chunks, "every chunk file");
        })
    });
    group.finish();
}

fn verify(c: &mut Criterion) {
    const CHUNK: usize = 4 << 20;
    const CHUNKS: usize = 64;
    let dir = scratch("bench-verify");
    let datastore = Datastore::create(
        RealWorld::new(),
        &dir.path().join("store"),
        DatastoreConfig::new(config()),
    )
    .expect("create the datastore");
    let data: Vec<Vec<u8>> = (0..CHUNKS).map(|n| noise(CHUNK, n as u64 + 1)).collect();
    let group = BackupGroup::from_relative_path("vm/bench").expect("group");
    let snapshot = BackupDir::new(group, BackupTime::from_epoch(1_700_000_000).expect("time"));
    let mut session = datastore
        .start_backup(&snapshot, "bench@local")
        .expect("start");
    let writer = session
        .create_fixed_index("disk.fidx", CHUNK as u64)
        .expect("index");
    for bytes in &data {
        let chunk = Chunk::from_data(bytes).expect("chunk");
        session.upload_chunk(&chunk).expect("upload");
        session
            .append_chunk(&writer, chunk.digest(), bytes.len() as u64)
            .expect("append");
    }
    let info = session.close_index(writer).expect("close");
    let mut manifest = Manifest::new(&snapshot);
    manifest.add_file(info).expect("manifest entry");
    session.finish(manifest).expect("finish");

    let mut group = c.benchmark_group("verify_256MiB");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((CHUNK * CHUNKS) as u64));
    let options = VerifyOptions {
        ignore_verified: false,
        ..VerifyOptions::default()
    };
    group.bench_function("store_verify", |b| {
        b.iter(|| {
            let mut job = VerifyJob::new();
            let outcome = datastore
                .verify_snapshot(&mut job, &options, &snapshot)
                .expect("verify");
            assert!(outcome.is_ok(), "{outcome:?}");
        })
    });
    group.bench_function("raw_sha256", |b| {
        b.iter(|| {
            let mut acc = 0u8;
            for bytes in &data {
                acc ^= Sha256::digest(bytes)[0];
            }
            acc
        })
    });
    group.finish();
}

criterion_group!(benches, insert, gc, verify);
criterion_main!(benches);
