//! [`SimWorld`]: the simulated world of one process — a shared in-memory disk, a shared clock,
//! and this process's identity.
//!
//! # Shared state and scheduling points
//!
//! A [`Disk`] is shared (through `Arc`) by every simulated process made from one
//! [`SimWorld::new`]. Besides the inodes (see [`crate::inode`]), it has a few small leaf mutexes:
//! the clock, the id counters, the sync statistics and the cross-directory rename lock. All are
//! `S::Mutex`es, so under shuttle and loom every access is a visible scheduling point; the sim
//! never calls `yield_now`. The exceptions are the operation gate (module `gate`) and the
//! durability record (module `durable`): bookkeeping behind std atomics and std mutexes that
//! no operation waits for, invisible to the schedulers (see the design rules in the crate
//! docs).
//!
//! # Lock order
//!
//! Inode locks are taken parent before child (see [`crate::namespace`]). The leaf mutexes
//! (clock, ids, stats, a process's lock registry) are taken either with no inode lock held or
//! as the innermost lock, and nothing is locked while one of them is held. The durability
//! record's std mutex is innermost of all (an operation logs its change while it holds its
//! inode locks); the gate's std mutex is taken with no lock held.
//!
//! # Determinism
//!
//! Inode numbers, process ids, open-file-description ids and `unique_id`s come from counters;
//! the listing order of `read_dir` is a pinned hash of the seed; time moves only through
//! [`SimWorld::set_time`] and [`SimWorld::advance`]. Nothing depends on addresses, real time or
//! std's random hashers.
//!
//! # Where the sim is simpler than Linux
//!
//! * Reads never update atime (as with `noatime`); only creation and `touch_atime` set it.
//! * A directory's mtime is its creation time; entry changes do not update it.
//! * `..` path components are refused (`InvalidInput`) and a trailing slash is ignored.
//! * `fsync_dir` of a regular file is `NotADirectory` (Linux would fsync the file).
//! * There are no hard links, symbolic links, permissions or free-space limits; I/O errors
//!   exist only where a scenario injects them ([`SimWorld::inject_fault`],
//!   [`SimWorld::fail_touch`]).
//! * Durability is modelled per change: an unsynced write survives a crash whole or not at
//!   all, except under [`CrashKeep::Torn`], where each of its 512-byte sectors is old, new or
//!   zeros (never random garbage); every rename is atomic across a crash; a cross-directory rename becomes durable with an fsync of either
//!   directory (journaling-filesystem behaviour, see module `durable`).
//! * Only a failed `sync_all` loses data (the file's unsynced writes); failed `fsync_dir` and
//!   `syncfs` lose nothing, and an injected write or namespace failure changes nothing.
//! * A crash keeps inode numbers and the `unique_id` counter (so temporary names of the old
//!   run never collide with new ones); real systems reuse neither reliably.
//!
//! # Crashes
//!
//! [`SimWorld::arm_crash`] picks a persistence point; when it is reached the durable record is
//! frozen and every operation fails. [`SimWorld::crash`] then (or at any time) builds the world
//! after reboot from the durable image and the pending changes a [`CrashKeep`] selects;
//! [`SimWorld::crash_states`] lists the selections the dependencies allow.

use std::any::Any;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use store::sync::{Mutex, SyncFamily};
use store::world::FileKind;

use crate::durable::{Change, CrashKeep, Durable, Image};
use crate::gate::{Fault, Gate, OpKind, Refusal, TraceEvent};
use crate::inode::{Content, Inode, Pid, TouchFault};

/// The simulated clock's start: 2023-11-14T22:13:20Z.
pub const START_TIME: i64 = 1_700_000_000;

/// Counts of the durability calls made on a disk (by all its processes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// [`store::world::WorldFile::sync_all`] calls.
    pub sync_all: u64,
    /// [`World::fsync_dir`] calls that succeeded.
    pub fsync_dir: u64,
    /// [`World::syncfs`] calls that succeeded.
    pub syncfs: u64,
}

/// Counters that hand out identities.
pub(crate) struct Ids {
    pub(crate) next_ino: u64,
    pub(crate) next_pid: Pid,
    pub(crate) next_unique: u64,
}

/// The disk and clock shared by all processes of one simulated world.
pub(crate) struct Disk<S: SyncFamily> {
    /// Seed of the world: picks the `read_dir` order.
    pub(crate) seed: u64,
    /// The root directory.
    pub(crate) root: Arc<Inode<S>>,
    /// Simulated wall-clock time, seconds since the Unix epoch.
    pub(crate) clock: Mutex<S, i64>,
    /// Identity counters.
    pub(crate) ids: Mutex<S, Ids>,
    /// Durability-call statistics.
    pub(crate) stats: Mutex<S, SimStats>,
    /// Serialises cross-directory renames, so directory ancestry is stable while one runs
    /// (Linux's `s_vfs_rename_mutex`).
    pub(crate) rename_lock: Mutex<S, ()>,
    /// The operation gate: counters, fault rules, crash point, trace.
    pub(crate) gate: Gate,
    /// What survives a crash: the durable image and the pending log (module `durable`). A
    /// std mutex, invisible to the schedulers, taken as the innermost lock.
    durable: std::sync::Mutex<Durable>,
}

impl<S: SyncFamily> Disk<S> {
    /// The simulated time.
    pub(crate) fn now(&self) -> i64 {
        *self.clock.lock()
    }

    /// Freezes the crash image: called by the gate exactly once, when the disk crashes.
    pub(crate) fn on_crash(&self) {
        self.durable().freeze();
    }

    /// The durable record (a leaf lock: nothing else is locked while it is held).
    /// The next process id to hand out (every process of the disk has a smaller one).
    pub(crate) fn next_pid(&self) -> Pid {
        self.ids.lock().next_pid
    }

    pub(crate) fn durable(&self) -> std::sync::MutexGuard<'_, Durable> {
        self.durable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fresh inode number.
    pub(crate) fn allocate_ino(&self) -> u64 {
        let mut ids = self.ids.lock();
        let ino = ids.next_ino;
        ids.next_ino += 1;
        ino
    }
}

/// One simulated process: its id, the inodes on which it may hold locks, and its registry of
/// shared objects.
pub(crate) struct Process<S: SyncFamily> {
    /// The process id.
    pub(crate) pid: Pid,
    /// Inodes on which this process took a flock or record lock (possibly released since), by
    /// inode number, so [`SimWorld::kill_process`] can find them even once unlinked.
    locked: Mutex<S, BTreeMap<u64, Arc<Inode<S>>>>,
    /// The registry of [`World::process_shared`], by key (weak: users keep the objects alive).
    pub(crate) shared: Mutex<S, BTreeMap<PathBuf, Weak<dyn Any + Send + Sync>>>,
}

impl<S: SyncFamily> Process<S> {
    fn new(pid: Pid) -> Arc<Self> {
        Arc::new(Process {
            pid,
            locked: Mutex::new(BTreeMap::new()),
            shared: Mutex::new(BTreeMap::new()),
        })
    }

    /// Notes that this process took a lock on `inode`.
    pub(crate) fn register_lock(&self, inode: &Arc<Inode<S>>) {
        self.locked
            .lock()
            .entry(inode.ino)
            .or_insert_with(|| Arc::clone(inode));
    }
}

/// One process of a simulated world: an in-memory filesystem with flock and record-lock tables,
/// a clock that only the scenario moves, all generic over the sync family `S`
/// (`StdSync`, [`crate::ShuttleSync`], [`crate::LoomSync`]).
///
/// A clone is the same process; [`SimWorld::new_process`] makes another process on the same
/// disk and clock. Under shuttle and loom, create it inside the test closure.
pub struct SimWorld<S: SyncFamily> {
    pub(crate) disk: Arc<Disk<S>>,
    pub(crate) process: Arc<Process<S>>,
}

impl<S: SyncFamily> Clone for SimWorld<S> {
    fn clone(&self) -> Self {
        SimWorld {
            disk: Arc::clone(&self.disk),
            process: Arc::clone(&self.process),
        }
    }
}

impl<S: SyncFamily> SimWorld<S> {
    /// A fresh world: an empty disk holding only `/`, the clock at [`START_TIME`], and process 1.
    /// `seed` picks the order of `read_dir` listings.
    pub fn new(seed: u64) -> Self {
        let root = Inode::new(1, FileKind::Dir, START_TIME);
        let ids = Ids {
            next_ino: 2,
            next_pid: 2,
            next_unique: 0,
        };
        Self::from_parts(seed, root, START_TIME, ids, Image::with_root(START_TIME))
    }

    /// A world on a new disk with root `root`, the clock at `time`, the given counters and
    /// durable image (which must describe `root`'s tree), and process 1.
    fn from_parts(seed: u64, root: Arc<Inode<S>>, time: i64, ids: Ids, image: Image) -> Self {
        let disk = Disk {
            seed,
            root,
            clock: Mutex::new(time),
            ids: Mutex::new(ids),
            stats: Mutex::new(SimStats::default()),
            rename_lock: Mutex::new(()),
            gate: Gate::default(),
            durable: std::sync::Mutex::new(Durable::new(image)),
        };
        SimWorld {
            disk: Arc::new(disk),
            process: Process::new(1),
        }
    }

    /// Changes not yet durable: writes, truncations and atime updates not followed by a
    /// `sync_all` of their file, entry changes not followed by an `fsync_dir` of their
    /// directory, nothing after a `syncfs`. Once crashed, those of the frozen crash image.
    /// [`CrashKeep::Subset`] indexes them, `0..pending_ops()`.
    pub fn pending_ops(&self) -> usize {
        self.disk.durable().pending_len()
    }

    /// Simulates a power loss and reboot: a **new** world (a fresh disk, process 1, the same
    /// clock, seed and id counters) holding the durable state plus the pending changes `keep`
    /// selects. Open handles, locks, fault rules, the trace and process registries do not
    /// carry over; inode numbers do. Works whether or not an armed crash fired: without one the
    /// crash image is the current state. This world is left as it is, so one world can be
    /// crashed several ways (see [`SimWorld::crash_states`]).
    pub fn crash(&self, keep: CrashKeep) -> SimWorld<S> {
        let image = self.disk.durable().image_for(&keep);
        let time = self.disk.now();
        let ids = {
            let ids = self.disk.ids.lock();
            Ids {
                next_ino: ids.next_ino,
                next_pid: 2,
                next_unique: ids.next_unique,
            }
        };
        let mut built = BTreeMap::new();
        let root = build_inode(&image, 1, &mut built);
        Self::from_parts(self.disk.seed, root, time, ids, image)
    }

    /// The crash states of the current (or frozen) pending log: every subset of the pending
    /// changes that is closed under their dependencies, at most `limit` of them, in a fixed
    /// order: [`CrashKeep::All`] first, then [`CrashKeep::DurableOnly`], then
    /// [`CrashKeep::Subset`]s in depth-first order. The same log always gives the same list.
    pub fn crash_states(&self, limit: usize) -> Vec<CrashKeep> {
        self.disk.durable().crash_states(limit)
    }

    /// Another simulated process (with a new pid) on the same disk and clock.
    pub fn new_process(&self) -> Self {
        let pid = {
            let mut ids = self.disk.ids.lock();
            let pid = ids.next_pid;
            ids.next_pid += 1;
            pid
        };
        SimWorld {
            disk: Arc::clone(&self.disk),
            process: Process::new(pid),
        }
    }

    /// This process's id (the first process is 1).
    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// The seed this world was made with.
    pub fn seed(&self) -> u64 {
        self.disk.seed
    }

    /// Sets the simulated clock to `time` (seconds since the Unix epoch; may go backwards).
    pub fn set_time(&self, time: i64) {
        *self.disk.clock.lock() = time;
        self.trace_clock(|| format!("= {time}"));
    }

    /// Moves the simulated clock by `secs` (may be negative).
    pub fn advance(&self, secs: i64) {
        *self.disk.clock.lock() += secs;
        self.trace_clock(|| format!("{secs:+} s"));
    }

    /// Records a clock move in the trace, if tracing.
    pub(crate) fn trace_clock(&self, detail: impl FnOnce() -> String) {
        if self.disk.gate.tracing() {
            self.record(OpKind::Clock, Path::new(""), detail(), Ok(()));
        }
    }

    /// Appends one event to the trace.
    fn record(&self, op: OpKind, path: &Path, detail: String, result: Result<(), io::ErrorKind>) {
        self.disk.gate.record(TraceEvent {
            task: S::current_task(),
            pid: self.process.pid,
            op,
            detail,
            path: path.to_owned(),
            result,
        });
    }

    /// Runs operation `op` on `path` through the disk's gate: counts it, fails it if a fault
    /// rule or a crash selects it, otherwise runs `run`; records it if tracing. `creates`: an
    /// `open` that may create; `detail` is evaluated only when tracing.
    pub(crate) fn gated<R>(
        &self,
        op: OpKind,
        creates: bool,
        path: &Path,
        detail: impl FnOnce() -> String,
        run: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        self.gated_or(op, creates, path, detail, || {}, run)
    }

    /// [`SimWorld::gated`], running `on_fault` when an injected fault fails the operation.
    pub(crate) fn gated_or<R>(
        &self,
        op: OpKind,
        creates: bool,
        path: &Path,
        detail: impl FnOnce() -> String,
        on_fault: impl FnOnce(),
        run: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        let result = match self.disk.gate.pass(op, creates, || self.disk.on_crash()) {
            Ok(()) => run(),
            Err(refusal) => {
                if matches!(refusal, Refusal::Fault(_)) {
                    on_fault();
                }
                Err(refusal.into_error())
            }
        };
        if self.disk.gate.tracing() {
            let outcome = result.as_ref().map(|_| ()).map_err(io::Error::kind);
            self.record(op, path, detail(), outcome);
        }
        result
    }

    /// Operations gated so far on this disk, by all processes (clock moves are not counted).
    pub fn op_count(&self) -> u64 {
        self.disk.gate.op_count()
    }

    /// Arms a fault-injection rule on the disk (for all processes). Several rules may be armed;
    /// each counts the operations it matches from now on. See [`Fault`].
    pub fn inject_fault(&self, fault: Fault) {
        self.disk.gate.inject(fault);
    }

    /// Disarms every [`Fault`] rule (rules of [`SimWorld::fail_touch`] stay).
    pub fn clear_faults(&self) {
        self.disk.gate.clear_faults();
    }

    /// Persistence points reached so far on this disk: calls of `sync_all`, `fsync_dir`,
    /// `syncfs`, `rename`, `remove_file` and `remove_dir` (failed ones included).
    pub fn persistence_points(&self) -> u64 {
        self.disk.gate.persistence_points()
    }

    /// Arms a crash: at the start of persistence point `at_point` (1-based, counted like
    /// [`SimWorld::persistence_points`] from the disk's start) the disk freezes its crash image;
    /// that operation and every later one, of every process, fails with `ErrorKind::Other`
    /// ("simulated crash"), so the workload stops. A point already passed crashes at the next
    /// persistence point.
    pub fn arm_crash(&self, at_point: u64) {
        self.disk.gate.arm_crash(at_point);
    }

    /// Has the disk crashed (an armed crash point was reached)?
    pub fn crashed(&self) -> bool {
        self.disk.gate.crashed()
    }

    /// Starts recording every gated operation and clock move of the disk (all processes),
    /// dropping any earlier trace. Tracing adds no scheduling point; while it is off it costs
    /// one atomic load per operation.
    pub fn start_trace(&self) {
        self.disk.gate.start_trace();
    }

    /// Stops recording and returns the trace, oldest event first.
    pub fn take_trace(&self) -> Vec<TraceEvent> {
        self.disk.gate.take_trace()
    }

    /// Counts of the durability calls made so far on this disk, by all processes.
    pub fn sim_stats(&self) -> SimStats {
        *self.disk.stats.lock()
    }

    /// Fault injection: from now on, [`World::touch_atime`] of the file or directory that `path`
    /// names fails with `kind` (e.g. `StorageFull`, `PermissionDenied`, or `Other` for EIO),
    /// the next `times` calls or, with `None`, until [`SimWorld::clear_touch_fault`]. The rule
    /// belongs to the inode, on the shared disk: it holds for every process, follows the file
    /// through renames and ends with the inode (a new file at the path does not fail). Other
    /// operations on the file are unaffected. Arming it is one step of the schedule like any
    /// other file operation, so an actor can "fill the disk" at a point the explorer chooses.
    pub fn fail_touch(
        &self,
        path: &Path,
        kind: io::ErrorKind,
        times: Option<u32>,
    ) -> io::Result<()> {
        self.disk.with_object(path, |_, state| {
            state.touch_fault = Some(TouchFault {
                kind,
                remaining: times,
            });
            Ok(())
        })
    }

    /// Ends a [`SimWorld::fail_touch`] rule on the inode `path` names.
    pub fn clear_touch_fault(&self, path: &Path) -> io::Result<()> {
        self.disk.with_object(path, |_, state| {
            state.touch_fault = None;
            Ok(())
        })
    }

    /// `touch_atime` past the gate: the inode's own `fail_touch` rule, then the new atime.
    pub(crate) fn touch(&self, path: &Path) -> io::Result<()> {
        let now = self.disk.now();
        self.disk.with_object(path, |inode, state| {
            if let Some(fault) = &mut state.touch_fault {
                let kind = fault.kind;
                match &mut fault.remaining {
                    None => {}
                    Some(1) => state.touch_fault = None,
                    Some(remaining) => *remaining = remaining.saturating_sub(1),
                }
                return Err(io::Error::new(kind, "touch: injected fault"));
            }
            state.atime = now;
            self.disk.durable().log(Change::Atime {
                ino: inode.ino,
                atime: now,
            });
            Ok(())
        })
    }

    /// Simulates the death of this process: releases every flock held by its open file
    /// descriptions and every record lock it holds, and wakes blocked flock waiters.
    ///
    /// Call it once the process's threads have stopped using the world: its handles stay
    /// usable, and locks they take afterwards are held again (and released on drop as usual).
    pub fn kill_process(&self) {
        let locked = std::mem::take(&mut *self.process.locked.lock());
        for inode in locked.values() {
            let released = inode.state.lock().release_process(self.process.pid);
            if released {
                inode.flock_released.notify_all();
            }
        }
    }
}

/// The inode `ino` of `image` and, for a directory, everything below it, as live inodes
/// (`built` shares inodes met twice and stops cycles).
fn build_inode<S: SyncFamily>(
    image: &Image,
    ino: u64,
    built: &mut BTreeMap<u64, Arc<Inode<S>>>,
) -> Arc<Inode<S>> {
    if let Some(inode) = built.get(&ino) {
        return Arc::clone(inode);
    }
    let Some(source) = image.inodes.get(&ino) else {
        return Inode::new(ino, FileKind::File, START_TIME);
    };
    let content = match source.kind {
        FileKind::Dir => {
            // Mark the directory as being built, so a cycle cannot recurse forever.
            built.insert(ino, Inode::new(ino, FileKind::Dir, source.mtime));
            let mut entries = BTreeMap::new();
            for (name, child) in &source.entries {
                let is_dir = image
                    .inodes
                    .get(child)
                    .is_some_and(|c| c.kind == FileKind::Dir);
                if !(is_dir && built.contains_key(child)) {
                    entries.insert(name.clone(), build_inode(image, *child, built));
                }
            }
            Content::Dir(entries)
        }
        _ => Content::File(source.data.clone()),
    };
    let inode = Inode::restored(ino, source.kind, content, source.atime, source.mtime);
    built.insert(ino, Arc::clone(&inode));
    inode
}
