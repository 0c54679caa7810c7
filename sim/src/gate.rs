//! The operation gate: every filesystem and lock operation of a simulated disk passes here once.
//!
//! The gate counts operations ([`crate::SimWorld::op_count`]) and persistence points
//! ([`crate::SimWorld::persistence_points`]), fails operations that an armed [`Fault`] rule or a
//! simulated crash selects, and, while tracing is on, records every operation as a
//! [`TraceEvent`].
//!
//! # Invisible to the schedulers
//!
//! The gate's bookkeeping lives in std atomics and one `std::sync::Mutex`, not in the sync
//! family's primitives, so passing the gate adds no scheduling point under shuttle or loom and
//! does not make operations on unrelated files look dependent to loom. That is sound because
//! under shuttle and loom only one task runs at a time and the mutex is never held across a
//! scheduling point (it is a leaf: nothing else is locked while it is held); under real threads
//! it is an ordinary mutex. The price: loom does not treat the global operation order as a
//! dependency, so a rule that fails "the nth operation of the whole disk" is explored only over
//! the interleavings loom tells apart for other reasons. Rules on one file's operations
//! ([`OpFilter::Op`]) do not have that gap when that file is the only one matched.
//!
//! When no rule, crash or trace is armed, passing the gate costs two atomic increments and an
//! atomic load.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The kind of a gated operation (and of a clock move, in traces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpKind {
    /// `World::open` (with or without creating the file).
    Open,
    /// `WorldFile::read_at` and `read_to_end`.
    Read,
    /// `WorldFile::write_at`.
    Write,
    /// `WorldFile::set_len`.
    SetLen,
    /// `WorldFile::sync_all` (fsync of a file).
    SyncAll,
    /// `World::fsync_dir`.
    FsyncDir,
    /// `World::syncfs`.
    Syncfs,
    /// `World::create_dir` and `create_dir_all` (one operation per call).
    CreateDir,
    /// `World::remove_dir`.
    RemoveDir,
    /// `World::remove_file`.
    RemoveFile,
    /// `World::rename`.
    Rename,
    /// `World::read_dir`.
    ReadDir,
    /// `World::metadata` and `WorldFile::metadata`.
    Metadata,
    /// `World::touch_atime`.
    Touch,
    /// `WorldFile::lock` (flock).
    Lock,
    /// `WorldFile::unlock`.
    Unlock,
    /// `WorldFile::record_lock` (fcntl).
    RecordLock,
    /// A move of the simulated clock (`set_time`, `advance`, `World::sleep`). Traced only:
    /// clock moves are not gated, never fail and are not counted by `op_count`.
    Clock,
}

impl OpKind {
    /// Is this one of the persistence points a crash can be armed at (`sync_all`, `fsync_dir`,
    /// `syncfs`, `rename`, `remove_file`, `remove_dir`)?
    pub fn is_persistence_point(self) -> bool {
        matches!(
            self,
            OpKind::SyncAll
                | OpKind::FsyncDir
                | OpKind::Syncfs
                | OpKind::Rename
                | OpKind::RemoveFile
                | OpKind::RemoveDir
        )
    }
}

/// Which operations a [`Fault`] rule counts and may fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpFilter {
    /// Every gated operation.
    Any,
    /// `sync_all`, `fsync_dir` and `syncfs`.
    Sync,
    /// `write_at` and `set_len`.
    Write,
    /// Operations that change names: `create_dir(_all)`, `remove_dir`, `remove_file`,
    /// `rename`, and `open` with `create` or `create_new` (whether or not the file existed).
    Namespace,
    /// `touch_atime`.
    Touch,
    /// Exactly this kind.
    Op(OpKind),
}

impl OpFilter {
    /// Does the filter match an operation of `kind` (`creates`: an `open` that may create)?
    pub(crate) fn matches(self, kind: OpKind, creates: bool) -> bool {
        match self {
            OpFilter::Any => true,
            OpFilter::Sync => matches!(kind, OpKind::SyncAll | OpKind::FsyncDir | OpKind::Syncfs),
            OpFilter::Write => matches!(kind, OpKind::Write | OpKind::SetLen),
            OpFilter::Namespace => match kind {
                OpKind::CreateDir | OpKind::RemoveDir | OpKind::RemoveFile | OpKind::Rename => true,
                OpKind::Open => creates,
                _ => false,
            },
            OpFilter::Touch => kind == OpKind::Touch,
            OpFilter::Op(exact) => kind == exact,
        }
    }
}

/// A fault-injection rule of [`crate::SimWorld::inject_fault`]: fail the `nth` operation matching
/// `ops`, counted from when the rule is armed (1-based), with an error of `kind`.
///
/// A transient rule fails that one operation and is then spent; a persistent rule fails it and
/// every later matching operation, until [`crate::SimWorld::clear_faults`]. The message of an
/// `ErrorKind::Other` fault reads "I/O error (injected)" (EIO); `StorageFull` is ENOSPC.
///
/// A failed `sync_all` loses the file's unsynced writes on the durable side, as Linux does after
/// a writeback error: see [`crate::SimWorld`]'s durability section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fault {
    /// Which matching operation fails first (1 = the next one).
    pub nth: u64,
    /// Which operations the rule counts.
    pub ops: OpFilter,
    /// The error kind of the failure.
    pub kind: io::ErrorKind,
    /// Keep failing every later matching operation too.
    pub persistent: bool,
}

impl Fault {
    /// A transient EIO (`ErrorKind::Other`) of the `nth` operation matching `ops`.
    pub fn eio(nth: u64, ops: OpFilter) -> Self {
        Fault {
            nth,
            ops,
            kind: io::ErrorKind::Other,
            persistent: false,
        }
    }

    /// A transient ENOSPC (`ErrorKind::StorageFull`) of the `nth` operation matching `ops`.
    pub fn enospc(nth: u64, ops: OpFilter) -> Self {
        Fault {
            nth,
            ops,
            kind: io::ErrorKind::StorageFull,
            persistent: false,
        }
    }

    /// The same rule, made persistent.
    pub fn persistent(self) -> Self {
        Fault {
            persistent: true,
            ..self
        }
    }

    /// The error an operation failed by this rule returns.
    pub(crate) fn error(&self) -> io::Error {
        if self.kind == io::ErrorKind::Other {
            io::Error::other("I/O error (injected)")
        } else {
            io::Error::new(self.kind, format!("{} (injected)", self.kind))
        }
    }
}

/// One recorded operation of [`crate::SimWorld::start_trace`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    /// The scheduler's task number ([`store::sync::SyncFamily::current_task`]), if it has one.
    pub task: Option<usize>,
    /// The simulated process.
    pub pid: u32,
    /// What was done.
    pub op: OpKind,
    /// Arguments worth reading, e.g. "exclusive, no wait", "-> /ds/.chunks/ab/...", "+3600 s".
    pub detail: String,
    /// The path operated on: the path given, or for a file handle the path it was opened by
    /// (empty for handles opened while tracing was off, and for clock moves).
    pub path: PathBuf,
    /// The outcome.
    pub result: Result<(), io::ErrorKind>,
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.task {
            Some(task) => write!(f, "task {task} ")?,
            None => write!(f, "task - ")?,
        }
        write!(f, "pid {} {:?}", self.pid, self.op)?;
        if !self.path.as_os_str().is_empty() {
            write!(f, " {}", self.path.display())?;
        }
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        match self.result {
            Ok(()) => write!(f, ": ok"),
            Err(kind) => write!(f, ": {kind:?}"),
        }
    }
}

/// Why the gate refused an operation.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// An armed [`Fault`] rule selected it.
    Fault(io::Error),
    /// The disk has crashed (this is the crash point or a later operation).
    Crash,
}

impl Refusal {
    /// The error the operation returns.
    pub(crate) fn into_error(self) -> io::Error {
        match self {
            Refusal::Fault(err) => err,
            Refusal::Crash => crash_error(),
        }
    }
}

/// The error of every operation at and after a simulated crash.
pub(crate) fn crash_error() -> io::Error {
    io::Error::other("simulated crash")
}

/// An armed fault rule and how many matching operations it has seen.
#[derive(Debug)]
struct Armed {
    fault: Fault,
    seen: u64,
}

/// The part of the gate behind its mutex.
#[derive(Debug, Default)]
struct Rules {
    /// Armed fault rules, in arming order.
    faults: Vec<Armed>,
    /// The persistence point to crash at.
    crash_at: Option<u64>,
    /// The trace being recorded.
    trace: Vec<TraceEvent>,
}

/// The gate of one disk (shared by all its processes).
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// Operations passed (or refused) so far.
    ops: AtomicU64,
    /// Persistence points reached so far.
    points: AtomicU64,
    /// Some fault rule or crash point is armed: take the slow path.
    armed: AtomicBool,
    /// The disk crashed: refuse everything.
    crashed: AtomicBool,
    /// Tracing is on.
    tracing: AtomicBool,
    /// Rules and trace.
    rules: Mutex<Rules>,
}

impl Gate {
    fn rules(&self) -> MutexGuard<'_, Rules> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts an operation of `kind` and decides whether it may run. `creates`: an `open` that
    /// may create. On `Err(Refusal::Crash)` for the crash point itself, the caller freezes the
    /// crash image: `on_crash` runs once, exactly when the crash happens.
    pub(crate) fn pass(
        &self,
        kind: OpKind,
        creates: bool,
        on_crash: impl FnOnce(),
    ) -> Result<(), Refusal> {
        self.ops.fetch_add(1, Ordering::Relaxed);
        let point = if kind.is_persistence_point() {
            Some(self.points.fetch_add(1, Ordering::Relaxed) + 1)
        } else {
            None
        };
        if self.crashed.load(Ordering::Relaxed) {
            return Err(Refusal::Crash);
        }
        if !self.armed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut rules = self.rules();
        if let (Some(point), Some(at)) = (point, rules.crash_at)
            && point >= at
        {
            rules.crash_at = None;
            self.crashed.store(true, Ordering::Relaxed);
            self.update_armed(&rules);
            drop(rules);
            on_crash();
            return Err(Refusal::Crash);
        }
        let mut failure = None;
        for armed in &mut rules.faults {
            if !armed.fault.ops.matches(kind, creates) {
                continue;
            }
            armed.seen += 1;
            let fails = if armed.fault.persistent {
                armed.seen >= armed.fault.nth
            } else {
                armed.seen == armed.fault.nth
            };
            if fails && failure.is_none() {
                failure = Some(armed.fault);
            }
        }
        // Spent transient rules go.
        rules
            .faults
            .retain(|armed| armed.fault.persistent || armed.seen < armed.fault.nth);
        self.update_armed(&rules);
        match failure {
            Some(fault) => Err(Refusal::Fault(fault.error())),
            None => Ok(()),
        }
    }

    fn update_armed(&self, rules: &Rules) {
        let armed = !rules.faults.is_empty() || rules.crash_at.is_some();
        self.armed.store(armed, Ordering::Relaxed);
    }

    /// Operations gated so far.
    pub(crate) fn op_count(&self) -> u64 {
        self.ops.load(Ordering::Relaxed)
    }

    /// Persistence points reached so far.
    pub(crate) fn persistence_points(&self) -> u64 {
        self.points.load(Ordering::Relaxed)
    }

    /// Arms a fault rule.
    pub(crate) fn inject(&self, fault: Fault) {
        let mut rules = self.rules();
        rules.faults.push(Armed { fault, seen: 0 });
        self.update_armed(&rules);
    }

    /// Disarms every fault rule (not an armed crash).
    pub(crate) fn clear_faults(&self) {
        let mut rules = self.rules();
        rules.faults.clear();
        self.update_armed(&rules);
    }

    /// Arms a crash at persistence point `at` (1-based, counted from the disk's start).
    pub(crate) fn arm_crash(&self, at: u64) {
        let mut rules = self.rules();
        rules.crash_at = Some(at);
        self.update_armed(&rules);
    }

    /// Has the disk crashed?
    pub(crate) fn crashed(&self) -> bool {
        self.crashed.load(Ordering::Relaxed)
    }

    /// Is tracing on?
    #[inline]
    pub(crate) fn tracing(&self) -> bool {
        self.tracing.load(Ordering::Relaxed)
    }

    /// Starts a new trace.
    pub(crate) fn start_trace(&self) {
        let mut rules = self.rules();
        rules.trace.clear();
        self.tracing.store(true, Ordering::Relaxed);
    }

    /// Stops tracing and hands the trace out.
    pub(crate) fn take_trace(&self) -> Vec<TraceEvent> {
        let mut rules = self.rules();
        self.tracing.store(false, Ordering::Relaxed);
        std::mem::take(&mut rules.trace)
    }

    /// Appends an event (if tracing is on).
    pub(crate) fn record(&self, event: TraceEvent) {
        let mut rules = self.rules();
        if self.tracing() {
            rules.trace.push(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_their_kinds() {
        assert!(OpFilter::Sync.matches(OpKind::FsyncDir, false));
        assert!(!OpFilter::Sync.matches(OpKind::Write, false));
        assert!(OpFilter::Write.matches(OpKind::SetLen, false));
        assert!(OpFilter::Namespace.matches(OpKind::Open, true));
        assert!(!OpFilter::Namespace.matches(OpKind::Open, false));
        assert!(OpFilter::Namespace.matches(OpKind::Rename, false));
        assert!(OpFilter::Op(OpKind::Lock).matches(OpKind::Lock, false));
        assert!(!OpFilter::Op(OpKind::Lock).matches(OpKind::Unlock, false));
        assert!(OpFilter::Any.matches(OpKind::Metadata, false));
    }

    #[test]
    fn transient_and_persistent_rules() {
        let gate = Gate::default();
        gate.inject(Fault::eio(2, OpFilter::Write));
        let results: Vec<bool> = (0..4)
            .map(|_| gate.pass(OpKind::Write, false, || {}).is_ok())
            .collect();
        assert_eq!(results, [true, false, true, true]);
        gate.inject(Fault::enospc(2, OpFilter::Write).persistent());
        let results: Vec<bool> = (0..4)
            .map(|_| gate.pass(OpKind::Write, false, || {}).is_ok())
            .collect();
        assert_eq!(results, [true, false, false, false]);
        gate.clear_faults();
        assert!(gate.pass(OpKind::Write, false, || {}).is_ok());
        assert_eq!(gate.op_count(), 9);
    }

    #[test]
    fn crash_refuses_the_point_and_everything_after() {
        let gate = Gate::default();
        gate.arm_crash(2);
        let mut froze = 0;
        assert!(gate.pass(OpKind::SyncAll, false, || froze += 1).is_ok());
        assert!(gate.pass(OpKind::Write, false, || froze += 1).is_ok());
        assert!(matches!(
            gate.pass(OpKind::Rename, false, || froze += 1),
            Err(Refusal::Crash)
        ));
        assert!(matches!(
            gate.pass(OpKind::Read, false, || froze += 1),
            Err(Refusal::Crash)
        ));
        assert_eq!(froze, 1);
        assert!(gate.crashed());
        assert_eq!(gate.persistence_points(), 2);
    }
}
