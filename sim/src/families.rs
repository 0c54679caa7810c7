//! The shuttle and loom sync families.
//!
//! [`ShuttleSync`] and [`LoomSync`] implement [`store::sync::SyncFamily`] with the primitives of
//! the two schedulers, so the same store (and simulated-world) code runs under `shuttle::check_*`
//! and `loom::model`. Each family may only be used inside its own runner: both schedulers' types
//! panic outside an execution.
//!
//! # Scheduling and time
//!
//! * Every mutex acquire and release is a scheduling point of the scheduler; nothing here adds
//!   any other (no `yield_now`, which would void PCT's depth bound).
//! * Poisoning is recovered from (`into_inner`), as the [`SyncFamily`] contract requires.
//! * Neither scheduler models time. Under shuttle, [`SyncFamily::wait_timeout`] makes the
//!   time-out a scheduler-controlled random choice (replayable, and both outcomes get explored);
//!   shuttle's own `wait_timeout` is not used because it never fires. Under loom a timed wait is
//!   a plain wait that never times out: write separate models for the time-out outcome.
//! * Consequence under shuttle: in schedules where the coin says "wait", a timed wait that no
//!   one will ever notify is reported as a deadlock, although real time would have ended it.

use std::time::Duration;

use shuttle::rand::Rng;
use store::sync::{JoinHandle, SyncFamily};

/// Stack size of threads spawned under loom: the store hashes chunks (SHA-256) in threads, and
/// loom's default coroutine stack (32 KiB) is too small for that.
const LOOM_STACK_SIZE: usize = 1 << 20;

/// The shuttle runtime: `shuttle::sync` primitives and `shuttle::thread` tasks.
///
/// Thread stacks are sized by the shuttle runner's `Config::stack_size`, not here.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShuttleSync;

/// A shuttle task's handle.
#[derive(Debug)]
pub struct ShuttleJoinHandle<T>(shuttle::thread::JoinHandle<T>);

impl<T: Send> JoinHandle<T> for ShuttleJoinHandle<T> {
    fn join(self) -> std::thread::Result<T> {
        self.0.join()
    }
}

impl SyncFamily for ShuttleSync {
    type Mutex<T: Send + 'static> = shuttle::sync::Mutex<T>;
    type Guard<'a, T: Send + 'static>
        = shuttle::sync::MutexGuard<'a, T>
    where
        T: 'a;
    type Condvar = shuttle::sync::Condvar;
    type JoinHandle<T: Send + 'static> = ShuttleJoinHandle<T>;

    fn mutex<T: Send + 'static>(value: T) -> Self::Mutex<T> {
        shuttle::sync::Mutex::new(value)
    }

    fn lock<'a, T: Send + 'static>(mutex: &'a Self::Mutex<T>) -> Self::Guard<'a, T> {
        mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn try_lock<'a, T: Send + 'static>(mutex: &'a Self::Mutex<T>) -> Option<Self::Guard<'a, T>> {
        match mutex.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    fn condvar() -> Self::Condvar {
        shuttle::sync::Condvar::new()
    }

    fn wait<'a, T: Send + 'static>(
        condvar: &Self::Condvar,
        guard: Self::Guard<'a, T>,
    ) -> Self::Guard<'a, T> {
        condvar
            .wait(guard)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The time-out is a scheduler-controlled coin flip taken before waiting: either the wait
    /// "times out" at once (the guard is returned untouched), or it is a plain [`Self::wait`]
    /// that never times out. Real time plays no part.
    fn wait_timeout<'a, T: Send + 'static>(
        condvar: &Self::Condvar,
        guard: Self::Guard<'a, T>,
        _timeout: Duration,
    ) -> (Self::Guard<'a, T>, bool) {
        if shuttle::rand::thread_rng().r#gen::<bool>() {
            (guard, true)
        } else {
            (Self::wait(condvar, guard), false)
        }
    }

    fn notify_all(condvar: &Self::Condvar) {
        condvar.notify_all()
    }

    fn spawn<F, T>(f: F) -> Self::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        ShuttleJoinHandle(shuttle::thread::spawn(f))
    }

    /// Shuttle's task id: the main task is 0, spawned tasks follow in spawn order.
    fn current_task() -> Option<usize> {
        shuttle::current::try_get_current_task().map(usize::from)
    }
}

/// The loom runtime: `loom::sync` primitives and `loom::thread` threads (at most 4 spawned per
/// model, a loom limit).
#[derive(Debug, Clone, Copy, Default)]
pub struct LoomSync;

/// A loom thread's handle.
#[derive(Debug)]
pub struct LoomJoinHandle<T>(loom::thread::JoinHandle<T>);

impl<T: Send + 'static> JoinHandle<T> for LoomJoinHandle<T> {
    fn join(self) -> std::thread::Result<T> {
        self.0.join()
    }
}

impl SyncFamily for LoomSync {
    type Mutex<T: Send + 'static> = loom::sync::Mutex<T>;
    type Guard<'a, T: Send + 'static>
        = loom::sync::MutexGuard<'a, T>
    where
        T: 'a;
    type Condvar = loom::sync::Condvar;
    type JoinHandle<T: Send + 'static> = LoomJoinHandle<T>;

    fn mutex<T: Send + 'static>(value: T) -> Self::Mutex<T> {
        loom::sync::Mutex::new(value)
    }

    fn lock<'a, T: Send + 'static>(mutex: &'a Self::Mutex<T>) -> Self::Guard<'a, T> {
        mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn try_lock<'a, T: Send + 'static>(mutex: &'a Self::Mutex<T>) -> Option<Self::Guard<'a, T>> {
        match mutex.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    fn condvar() -> Self::Condvar {
        loom::sync::Condvar::new()
    }

    fn wait<'a, T: Send + 'static>(
        condvar: &Self::Condvar,
        guard: Self::Guard<'a, T>,
    ) -> Self::Guard<'a, T> {
        condvar
            .wait(guard)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A plain wait: loom does not model time, so this never times out.
    fn wait_timeout<'a, T: Send + 'static>(
        condvar: &Self::Condvar,
        guard: Self::Guard<'a, T>,
        _timeout: Duration,
    ) -> (Self::Guard<'a, T>, bool) {
        (Self::wait(condvar, guard), false)
    }

    fn notify_all(condvar: &Self::Condvar) {
        condvar.notify_all()
    }

    fn spawn<F, T>(f: F) -> Self::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let handle = loom::thread::Builder::new()
            .stack_size(LOOM_STACK_SIZE)
            .spawn(f)
            // loom's `Builder::spawn` always returns `Ok` (it has no OS thread to fail to create);
            // the `Result` only mirrors std's signature.
            .expect("loom::thread::Builder::spawn is infallible");
        LoomJoinHandle(handle)
    }
}
