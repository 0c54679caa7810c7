//! Differential test: the same operation sequences on the simulated and on the real filesystem
//! give the same observable results (values and error kinds), including flock conflicts between
//! two handles of one process and the record-lock rule "closing any handle drops all".

use std::io;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use sim::SimWorld;
use store::sync::StdSync;
use store::world::{FileKind, LockMode, LockWait, OpenOptions, World, WorldFile};

use crate::support::{Env, RealEnv, SimEnv};

/// Paths the generated operations name, relative to the test root.
const NAMES: [&str; 5] = ["a", "b", "a/x", "a/y", "b/x"];
/// How many handles a sequence can hold open at once.
const SLOTS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    CreateDir(usize),
    CreateDirAll(usize),
    RemoveDir(usize),
    RemoveFile(usize),
    Rename(usize, usize),
    WriteNew(usize, Vec<u8>),
    WriteTruncate(usize, Vec<u8>),
    Read(usize),
    Stat(usize),
    ReadDir(usize),
    Open(usize, usize),
    Close(usize),
    Flock(usize, LockMode),
    Unlock(usize),
    RecordLock(usize, Option<LockMode>),
    WriteHandle(usize, u64, Vec<u8>),
    ReadHandle(usize),
    ProbeRecordLock(usize),
}

fn mode() -> impl Strategy<Value = LockMode> {
    prop_oneof![Just(LockMode::Shared), Just(LockMode::Exclusive)]
}

fn op() -> impl Strategy<Value = Op> {
    let name = 0..NAMES.len();
    let slot = 0..SLOTS;
    let bytes = proptest::collection::vec(any::<u8>(), 0..8);
    prop_oneof![
        name.clone().prop_map(Op::CreateDir),
        name.clone().prop_map(Op::CreateDirAll),
        name.clone().prop_map(Op::RemoveDir),
        name.clone().prop_map(Op::RemoveFile),
        (name.clone(), name.clone()).prop_map(|(from, to)| Op::Rename(from, to)),
        (name.clone(), bytes.clone()).prop_map(|(at, data)| Op::WriteNew(at, data)),
        (name.clone(), bytes.clone()).prop_map(|(at, data)| Op::WriteTruncate(at, data)),
        name.clone().prop_map(Op::Read),
        name.clone().prop_map(Op::Stat),
        prop_oneof![Just(usize::MAX), name.clone()].prop_map(Op::ReadDir),
        (slot.clone(), name.clone()).prop_map(|(slot, at)| Op::Open(slot, at)),
        slot.clone().prop_map(Op::Close),
        (slot.clone(), mode()).prop_map(|(slot, mode)| Op::Flock(slot, mode)),
        slot.clone().prop_map(Op::Unlock),
        (slot.clone(), proptest::option::of(mode()))
            .prop_map(|(slot, mode)| Op::RecordLock(slot, mode)),
        (slot.clone(), 0..16u64, bytes)
            .prop_map(|(slot, at, data)| Op::WriteHandle(slot, at, data)),
        slot.prop_map(Op::ReadHandle),
        name.prop_map(Op::ProbeRecordLock),
    ]
}

/// What an operation returned, comparable across worlds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Done,
    Bytes(Vec<u8>),
    Stat(FileKind, Option<u64>),
    Listing(Vec<(String, FileKind)>),
    RecordLock(Option<LockMode>),
    NoHandle,
    Failed(io::ErrorKind),
}

fn seen<T>(result: io::Result<T>, value: impl FnOnce(T) -> Seen) -> Seen {
    match result {
        Ok(ok) => value(ok),
        Err(err) => Seen::Failed(err.kind()),
    }
}

/// How another process would see the record lock on a path: per world.
trait ProbeEnv: Env {
    fn probe_record_lock(&self, path: &Path) -> io::Result<Option<LockMode>>;
}

impl ProbeEnv for RealEnv {
    fn probe_record_lock(&self, path: &Path) -> io::Result<Option<LockMode>> {
        crate::support::real_record_lock_probe(path)
    }
}

impl ProbeEnv for SimEnv {
    fn probe_record_lock(&self, path: &Path) -> io::Result<Option<LockMode>> {
        sim_probe(&self.world(), path)
    }
}

/// Another simulated process tries each mode and releases what it got.
fn sim_probe(world: &SimWorld<StdSync>, path: &Path) -> io::Result<Option<LockMode>> {
    if !world.metadata(path)?.is_file() {
        return Err(io::ErrorKind::IsADirectory.into());
    }
    let other = world.new_process();
    let file = other.open(
        path,
        OpenOptions {
            read: true,
            write: true,
            ..OpenOptions::default()
        },
    )?;
    let would_block = |result: io::Result<()>| match result {
        Ok(()) => Ok(false),
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(true),
        Err(err) => Err(err),
    };
    if !would_block(file.record_lock(Some(LockMode::Exclusive)))? {
        file.record_lock(None)?;
        return Ok(None);
    }
    if !would_block(file.record_lock(Some(LockMode::Shared)))? {
        file.record_lock(None)?;
        return Ok(Some(LockMode::Shared));
    }
    Ok(Some(LockMode::Exclusive))
}

fn path_of(root: &Path, index: usize) -> PathBuf {
    if index == usize::MAX {
        root.to_owned()
    } else {
        root.join(NAMES[index])
    }
}

fn run_ops<E: ProbeEnv>(env: &E, ops: &[Op]) -> Vec<Seen> {
    let world = env.world();
    let root = env.root().to_owned();
    let mut slots: Vec<Option<<E::W as World>::File>> = (0..SLOTS).map(|_| None).collect();
    let mut results = Vec::new();
    for op in ops {
        let p = |index: usize| path_of(&root, index);
        let result = match op {
            Op::CreateDir(at) => seen(world.create_dir(&p(*at)), |()| Seen::Done),
            Op::CreateDirAll(at) => seen(world.create_dir_all(&p(*at)), |()| Seen::Done),
            Op::RemoveDir(at) => seen(world.remove_dir(&p(*at)), |()| Seen::Done),
            Op::RemoveFile(at) => seen(world.remove_file(&p(*at)), |()| Seen::Done),
            Op::Rename(from, to) => seen(world.rename(&p(*from), &p(*to)), |()| Seen::Done),
            Op::WriteNew(at, data) | Op::WriteTruncate(at, data) => {
                let options = if matches!(op, Op::WriteNew(..)) {
                    OpenOptions::create_new()
                } else {
                    OpenOptions::create_truncate()
                };
                let written = world
                    .open(&p(*at), options)
                    .and_then(|file| file.write_at(0, data));
                seen(written, |()| Seen::Done)
            }
            Op::Read(at) => seen(world.read_file(&p(*at)), Seen::Bytes),
            Op::Stat(at) => seen(world.metadata(&p(*at)), |metadata| {
                let len = (metadata.kind == FileKind::File).then_some(metadata.len);
                Seen::Stat(metadata.kind, len)
            }),
            Op::ReadDir(at) => seen(world.read_dir(&p(*at)), |entries| {
                let mut listing: Vec<_> = entries
                    .into_iter()
                    .map(|entry| (entry.name.to_string_lossy().into_owned(), entry.kind))
                    .collect();
                listing.sort();
                Seen::Listing(listing)
            }),
            Op::Open(slot, at) => match world.open(&p(*at), OpenOptions::create_keep()) {
                Ok(file) => {
                    slots[*slot] = Some(file);
                    Seen::Done
                }
                Err(err) => Seen::Failed(err.kind()),
            },
            Op::Close(slot) => match slots[*slot].take() {
                Some(file) => {
                    drop(file);
                    Seen::Done
                }
                None => Seen::NoHandle,
            },
            Op::Flock(slot, mode) => with_handle(&slots[*slot], |file| {
                seen(file.lock(*mode, LockWait::NonBlocking), |()| Seen::Done)
            }),
            Op::Unlock(slot) => {
                with_handle(&slots[*slot], |file| seen(file.unlock(), |()| Seen::Done))
            }
            Op::RecordLock(slot, mode) => with_handle(&slots[*slot], |file| {
                seen(file.record_lock(*mode), |()| Seen::Done)
            }),
            Op::WriteHandle(slot, at, data) => with_handle(&slots[*slot], |file| {
                seen(file.write_at(*at, data), |()| Seen::Done)
            }),
            Op::ReadHandle(slot) => {
                with_handle(&slots[*slot], |file| seen(file.read_to_end(), Seen::Bytes))
            }
            Op::ProbeRecordLock(at) => seen(env.probe_record_lock(&p(*at)), Seen::RecordLock),
        };
        results.push(result);
    }
    results
}

fn with_handle<F: WorldFile>(slot: &Option<F>, f: impl FnOnce(&F) -> Seen) -> Seen {
    match slot {
        Some(file) => f(file),
        None => Seen::NoHandle,
    }
}

fn compare(ops: &[Op]) -> Result<(), TestCaseError> {
    let real = run_ops(&RealEnv::new(), ops);
    let simulated = run_ops(&SimEnv::new(), ops);
    for (index, (real, simulated)) in real.iter().zip(&simulated).enumerate() {
        prop_assert_eq!(
            real,
            simulated,
            "operation {} ({:?}) differs; sequence {:?}",
            index,
            ops[index],
            ops
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn simulated_and_real_filesystems_agree(ops in proptest::collection::vec(op(), 1..40)) {
        compare(&ops)?;
    }
}

/// The two lock rules spelled out, so they are always covered whatever proptest generates.
#[test]
fn lock_rules_agree() {
    use LockMode::{Exclusive, Shared};
    let ops = vec![
        Op::WriteNew(0, vec![1]),
        Op::Open(0, 0),
        Op::Open(1, 0),
        Op::Flock(0, Exclusive),
        Op::Flock(1, Shared),
        Op::Unlock(0),
        Op::Flock(1, Shared),
        Op::Flock(0, Shared),
        Op::Flock(0, Exclusive),
        Op::Close(1),
        Op::Flock(0, Exclusive),
        Op::RecordLock(0, Some(Shared)),
        Op::ProbeRecordLock(0),
        Op::Open(2, 0),
        Op::RecordLock(2, Some(Exclusive)),
        Op::ProbeRecordLock(0),
        Op::Close(2),
        Op::ProbeRecordLock(0),
    ];
    let real = run_ops(&RealEnv::new(), &ops);
    let expected = [
        Seen::Done,
        Seen::Done,
        Seen::Done,
        Seen::Done,
        Seen::Failed(io::ErrorKind::WouldBlock),
        Seen::Done,
        Seen::Done,
        Seen::Done,
        Seen::Failed(io::ErrorKind::WouldBlock),
        Seen::Done,
        Seen::Done,
        Seen::Done,
        Seen::RecordLock(Some(Shared)),
        Seen::Done,
        Seen::Done,
        Seen::RecordLock(Some(Exclusive)),
        Seen::Done,
        Seen::RecordLock(None),
    ];
    assert_eq!(real, expected, "the real world's rules");
    assert_eq!(
        run_ops(&SimEnv::new(), &ops),
        expected,
        "the simulated world's rules"
    );
}
