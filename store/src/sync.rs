//! The sync family: mutex, condition variable and threads, chosen by the world.
//!
//! Store code never names `std::sync` or `std::thread`. It names a [`SyncFamily`] instead, so
//! the same source runs on real threads ([`StdSync`], in the real world module) and under the shuttle and loom
//! schedulers (`sim::ShuttleSync`, `sim::LoomSync`). All three are ordinary types in one build:
//! no `cfg(loom)`, no feature switch.
//!
//! # Contract
//!
//! * `lock` blocks until the mutex is free. It is not reentrant: locking a mutex the caller
//!   already holds deadlocks (shuttle and loom report it; std hangs).
//! * A panic while a guard is held does not poison the mutex for later users: the store treats
//!   poisoning as "the data is still consistent", because every critical section it writes leaves
//!   its data consistent at every panic point (they only hold `()` or plain counters).
//! * `wait` atomically releases the guard and sleeps until `notify_all`; spurious wake-ups are
//!   allowed, so callers wait in a loop on a predicate.
//! * `wait_timeout` may return `timed_out = true` once `timeout` has passed. Under shuttle the
//!   time-out is a scheduler-controlled choice, under loom it never fires, on real threads it is
//!   wall time.
//! * Every lock acquire and release is a scheduling point under shuttle and loom.

use std::ops::DerefMut;
use std::time::Duration;

/// Mutex, condition variable and thread primitives of one runtime.
pub trait SyncFamily: Send + Sync + 'static {
    /// A mutual-exclusion lock around a `T`.
    type Mutex<T: Send + 'static>: Send + Sync;
    /// Proof that a [`SyncFamily::Mutex`] is held; releases it on drop.
    type Guard<'a, T: Send + 'static>: DerefMut<Target = T>
    where
        T: 'a;
    /// A condition variable used with [`SyncFamily::Mutex`].
    type Condvar: Send + Sync;
    /// A handle to a spawned thread that yields its result on `join`.
    type JoinHandle<T: Send + 'static>: JoinHandle<T>;

    /// A new mutex holding `value`.
    fn mutex<T: Send + 'static>(value: T) -> Self::Mutex<T>;
    /// Blocks until the mutex is held.
    fn lock<'a, T: Send + 'static>(mutex: &'a Self::Mutex<T>) -> Self::Guard<'a, T>;
    /// Takes the mutex if it is free, without blocking.
    fn try_lock<'a, T: Send + 'static>(mutex: &'a Self::Mutex<T>) -> Option<Self::Guard<'a, T>>;
    /// A new condition variable.
    fn condvar() -> Self::Condvar;
    /// Releases `guard`, sleeps until notified, and re-acquires the mutex.
    fn wait<'a, T: Send + 'static>(
        condvar: &Self::Condvar,
        guard: Self::Guard<'a, T>,
    ) -> Self::Guard<'a, T>;
    /// Like [`SyncFamily::wait`], but may give up after `timeout`; the flag says it did.
    fn wait_timeout<'a, T: Send + 'static>(
        condvar: &Self::Condvar,
        guard: Self::Guard<'a, T>,
        timeout: Duration,
    ) -> (Self::Guard<'a, T>, bool);
    /// Wakes every waiter of `condvar`.
    fn notify_all(condvar: &Self::Condvar);
    /// Starts `f` on a new thread of this runtime.
    fn spawn<F, T>(f: F) -> Self::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static;

    /// The scheduler's number for the calling task, where the runtime has one (shuttle: the
    /// main task is 0 and spawned tasks follow in spawn order); `None` otherwise. Used only for
    /// diagnostics (operation traces), never for decisions.
    fn current_task() -> Option<usize> {
        None
    }
}

/// A thread's result: its value, or the payload it panicked with.
pub type ThreadResult<T> = Result<T, Box<dyn std::any::Any + Send + 'static>>;

/// A spawned thread's handle.
pub trait JoinHandle<T>: Send {
    /// Waits for the thread; `Err` carries its panic payload.
    fn join(self) -> ThreadResult<T>;
}

/// A mutex of family `S`, with method syntax.
pub struct Mutex<S: SyncFamily, T: Send + 'static>(S::Mutex<T>);

impl<S: SyncFamily, T: Send + 'static> Mutex<S, T> {
    /// A new mutex holding `value`.
    pub fn new(value: T) -> Self {
        Mutex(S::mutex(value))
    }

    /// Blocks until the mutex is held.
    pub fn lock(&self) -> S::Guard<'_, T> {
        S::lock(&self.0)
    }

    /// Takes the mutex if it is free.
    pub fn try_lock(&self) -> Option<S::Guard<'_, T>> {
        S::try_lock(&self.0)
    }
}

/// A condition variable of family `S`, with method syntax.
pub struct Condvar<S: SyncFamily>(S::Condvar);

impl<S: SyncFamily> Condvar<S> {
    /// A new condition variable.
    pub fn new() -> Self {
        Condvar(S::condvar())
    }

    /// See [`SyncFamily::wait`].
    pub fn wait<'a, T: Send + 'static>(&self, guard: S::Guard<'a, T>) -> S::Guard<'a, T> {
        S::wait(&self.0, guard)
    }

    /// See [`SyncFamily::wait_timeout`].
    pub fn wait_timeout<'a, T: Send + 'static>(
        &self,
        guard: S::Guard<'a, T>,
        timeout: Duration,
    ) -> (S::Guard<'a, T>, bool) {
        S::wait_timeout(&self.0, guard, timeout)
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        S::notify_all(&self.0)
    }
}

impl<S: SyncFamily> Default for Condvar<S> {
    fn default() -> Self {
        Condvar::new()
    }
}

pub use crate::world::real::StdSync;
