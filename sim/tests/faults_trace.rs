//! The operation gate: counting, nth-operation faults (transient and persistent), armed crash
//! points and the operation trace.

use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sim::{Fault, OpFilter, OpKind, ShuttleSync, SimWorld};
use store::sync::{JoinHandle, StdSync, SyncFamily};
use store::world::{LockMode, LockWait, OpenOptions, World, WorldFile};

type W = SimWorld<StdSync>;

fn write_file(world: &W, path: &str, data: &[u8]) -> std::io::Result<()> {
    let file = world.open(Path::new(path), OpenOptions::create_truncate())?;
    file.write_at(0, data)
}

#[test]
fn every_operation_is_counted() {
    let world = W::new(1);
    assert_eq!(world.op_count(), 0);
    world.create_dir(Path::new("/d")).expect("mkdir");
    let file = world
        .open(Path::new("/d/f"), OpenOptions::create_new())
        .expect("open");
    file.write_at(0, b"abc").expect("write");
    file.sync_all().expect("sync");
    file.lock(LockMode::Exclusive, LockWait::NonBlocking)
        .expect("lock");
    file.unlock().expect("unlock");
    world.metadata(Path::new("/d/f")).expect("stat");
    world.advance(10);
    assert_eq!(
        world.op_count(),
        7,
        "mkdir, open, write, sync, lock, unlock, stat"
    );
    // Another process shares the disk's counter.
    world.new_process().read_dir(Path::new("/d")).expect("ls");
    assert_eq!(world.op_count(), 8);
}

#[test]
fn transient_fault_fails_only_the_nth_matching_operation() {
    let world = W::new(1);
    world.inject_fault(Fault::eio(2, OpFilter::Write));
    let file = world
        .open(Path::new("/f"), OpenOptions::create_new())
        .expect("open");
    file.write_at(0, b"one").expect("first write passes");
    let err = file.write_at(3, b"two").expect_err("second write fails");
    assert_eq!(err.kind(), ErrorKind::Other);
    assert_eq!(err.to_string(), "I/O error (injected)");
    file.write_at(3, b"three").expect("third write passes");
    assert_eq!(file.read_to_end().expect("read"), b"onethree");
}

#[test]
fn persistent_fault_fails_from_the_nth_on_until_cleared() {
    let world = W::new(1);
    world.create_dir(Path::new("/d")).expect("mkdir");
    world.inject_fault(Fault::enospc(2, OpFilter::Namespace).persistent());
    world.create_dir(Path::new("/d/a")).expect("first passes");
    for name in ["/d/b", "/d/c"] {
        let err = world.create_dir(Path::new(name)).expect_err("fails");
        assert_eq!(err.kind(), ErrorKind::StorageFull);
    }
    // An open that may create is a namespace operation; a plain open is not.
    let err = world
        .open(Path::new("/d/f"), OpenOptions::create_new())
        .err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::StorageFull));
    world
        .metadata(Path::new("/d/a"))
        .expect("stat is not matched");
    world.clear_faults();
    world.create_dir(Path::new("/d/b")).expect("cleared");
    assert!(
        world.metadata(Path::new("/d/c")).is_err(),
        "failed mkdir created nothing"
    );
}

#[test]
fn exact_kind_filter_and_several_rules() {
    let world = W::new(1);
    world.inject_fault(Fault::eio(1, OpFilter::Op(OpKind::FsyncDir)));
    world.inject_fault(Fault {
        nth: 1,
        ops: OpFilter::Sync,
        kind: ErrorKind::PermissionDenied,
        persistent: false,
    });
    // Both rules match the first fsync_dir; the rule armed first decides the error.
    let err = world.fsync_dir(Path::new("/")).expect_err("fails");
    assert_eq!(err.kind(), ErrorKind::Other);
    world.fsync_dir(Path::new("/")).expect("both rules spent");
    world.syncfs(Path::new("/")).expect("syncfs passes");
}

#[test]
fn fail_touch_still_works_next_to_the_gate() {
    let world = W::new(1);
    write_file(&world, "/c", b"x").expect("write");
    world
        .fail_touch(Path::new("/c"), ErrorKind::StorageFull, Some(1))
        .expect("arm");
    let err = world.touch_atime(Path::new("/c")).err().map(|e| e.kind());
    assert_eq!(err, Some(ErrorKind::StorageFull));
    world.touch_atime(Path::new("/c")).expect("spent");
    world.inject_fault(Fault::eio(1, OpFilter::Touch));
    assert!(world.touch_atime(Path::new("/c")).is_err());
}

#[test]
fn armed_crash_stops_the_workload_at_the_point() {
    let world = W::new(1);
    world.arm_crash(2);
    let file = world
        .open(Path::new("/f"), OpenOptions::create_new())
        .expect("open");
    file.write_at(0, b"data").expect("write");
    file.sync_all().expect("point 1");
    assert!(!world.crashed());
    let err = world
        .rename(Path::new("/f"), Path::new("/g"))
        .expect_err("point 2 crashes");
    assert_eq!(
        (err.kind(), err.to_string()),
        (ErrorKind::Other, "simulated crash".to_owned())
    );
    assert!(world.crashed());
    assert_eq!(world.persistence_points(), 2);
    assert!(file.read_to_end().is_err(), "every later operation fails");
    assert!(world.new_process().metadata(Path::new("/f")).is_err());
}

#[test]
fn trace_is_off_by_default_and_records_what_was_done() {
    let world = W::new(7);
    write_file(&world, "/before", b"x").expect("write");
    assert!(
        world.take_trace().is_empty(),
        "nothing is recorded while off"
    );

    world.start_trace();
    let file = world
        .open(Path::new("/f"), OpenOptions::create_new())
        .expect("open");
    file.write_at(0, b"abc").expect("write");
    file.lock(LockMode::Exclusive, LockWait::NonBlocking)
        .expect("lock");
    world
        .rename(Path::new("/f"), Path::new("/g"))
        .expect("rename");
    assert!(world.remove_file(Path::new("/missing")).is_err());
    world.advance(3600);
    world.sleep(Duration::from_millis(1500));
    let trace = world.take_trace();
    let ops: Vec<OpKind> = trace.iter().map(|event| event.op).collect();
    assert_eq!(
        ops,
        [
            OpKind::Open,
            OpKind::Write,
            OpKind::Lock,
            OpKind::Rename,
            OpKind::RemoveFile,
            OpKind::Clock,
            OpKind::Clock
        ]
    );
    assert!(
        trace
            .iter()
            .all(|event| event.pid == 1 && event.task.is_none())
    );
    assert_eq!(trace[0].path, Path::new("/f"));
    assert_eq!(
        trace[1].path,
        Path::new("/f"),
        "handle events carry the opening path"
    );
    assert_eq!(trace[2].detail, "exclusive, no wait");
    assert_eq!(trace[3].detail, "-> /g");
    assert_eq!(trace[4].result, Err(ErrorKind::NotFound));
    assert_eq!(trace[5].detail, "+3600 s");
    assert_eq!(trace[6].detail, "+2 s (sleep)");
    assert_eq!(trace[3].to_string(), "task - pid 1 Rename /f (-> /g): ok");
    assert_eq!(
        trace[4].to_string(),
        "task - pid 1 RemoveFile /missing: NotFound"
    );
    // Taking the trace stopped it.
    world.advance(1);
    assert!(world.take_trace().is_empty());
}

#[test]
fn trace_names_shuttle_tasks() {
    let traces = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&traces);
    shuttle::check_random(
        move || {
            let world = SimWorld::<ShuttleSync>::new(3);
            world.start_trace();
            world.create_dir(Path::new("/main")).expect("mkdir");
            let child = world.new_process();
            let handle = ShuttleSync::spawn(move || {
                child.create_dir(Path::new("/child")).expect("mkdir");
            });
            handle.join().expect("join");
            let trace = world.take_trace();
            let tasks: Vec<(Option<usize>, u32)> =
                trace.iter().map(|event| (event.task, event.pid)).collect();
            sink.lock().expect("sink").push(tasks);
        },
        3,
    );
    let traces = traces.lock().expect("traces");
    assert_eq!(traces.len(), 3);
    for tasks in traces.iter() {
        assert_eq!(tasks, &[(Some(0), 1), (Some(1), 2)]);
    }
}
