//! Recording shuttle schedules.
//!
//! `Recorder` wraps any shuttle scheduler and writes down every decision it passes through
//! (which task runs next, and where a random value was drawn), exactly as shuttle's engine
//! records the current schedule. After a failing run the recording is the failing
//! execution's schedule, encoded the way shuttle prints schedules, so `shuttle::replay`,
//! `ReplayScheduler::new_from_encoded` and `EXPLORE_REPLAY` all accept it. Shuttle's own
//! reporting goes through a panic hook installed once per process with the first run's
//! configuration, which is why the engine does not rely on it.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use shuttle::scheduler::{ReplayScheduler, Schedule, Scheduler, Task, TaskId};
use shuttle_engine::scheduler::ScheduleStep;
use shuttle_engine::scheduler::serialization::serialize_schedule;

use crate::scenario::Fnv;
use crate::scenario::catch_panic;

/// Shuttle's encoding of `schedule`, on one line (shuttle wraps it at 76 columns).
pub fn encode_schedule(schedule: &Schedule) -> String {
    serialize_schedule(schedule).split_whitespace().collect()
}

/// Turns an encoded schedule into a replay scheduler, refusing what shuttle cannot decode
/// (shuttle itself panics on it).
pub(crate) fn decode_schedule(encoded: &str) -> Result<ReplayScheduler, String> {
    let trimmed: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let valid_hex = trimmed.len() >= 2
        && trimmed.len().is_multiple_of(2)
        && trimmed.chars().all(|c| c.is_ascii_hexdigit());
    if !valid_hex {
        return Err(format!("not a shuttle schedule: {encoded:?}"));
    }
    catch_panic(|| ReplayScheduler::new_from_encoded(&trimmed))
        .map_err(|err| format!("not a shuttle schedule ({err}): {encoded:?}"))
}

/// What the recorder saw, shared between the scheduler (inside the runner) and the explorer.
#[derive(Debug, Default)]
pub(crate) struct RecorderState {
    /// Executions started.
    pub(crate) executions: usize,
    /// The schedule of the current (last) execution so far.
    pub(crate) current: Schedule,
    /// Hash of every finished execution's schedule.
    pub(crate) finished: u64,
}

impl RecorderState {
    pub(crate) fn schedules_hash(&self) -> u64 {
        let mut hasher = Fnv::new();
        self.finished.hash(&mut hasher);
        hash_schedule(&self.current, &mut hasher);
        hasher.finish()
    }
}

fn hash_schedule(schedule: &Schedule, hasher: &mut Fnv) {
    schedule.seed.hash(hasher);
    for step in &schedule.steps {
        match step {
            ScheduleStep::Task(task) => usize::from(*task).hash(hasher),
            ScheduleStep::Random => usize::MAX.hash(hasher),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Recording(Arc<Mutex<RecorderState>>);

impl Recording {
    pub(crate) fn lock_state(&self) -> MutexGuard<'_, RecorderState> {
        lock(&self.0)
    }
}

/// A scheduler that passes every decision through to `inner` and records it, so the failing
/// execution's schedule is known without shuttle's panic hook.
///
/// `inner` is only ever `None` while the recorder is dropped during a failing run: shuttle's
/// random scheduler prints a replay hint on drop after a failure, naming shuttle entry points
/// that cannot replay an exploration of this engine, so it is leaked instead (a few hundred
/// bytes, once per failing run). The engine prints its own, working instructions.
#[derive(Debug)]
pub(crate) struct Recorder<Sch> {
    inner: Option<Sch>,
    recording: Recording,
}

impl<Sch> Drop for Recorder<Sch> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            std::mem::forget(self.inner.take());
        }
    }
}

impl<Sch: Scheduler> Recorder<Sch> {
    pub(crate) fn new(inner: Sch) -> Recorder<Sch> {
        Recorder {
            inner: Some(inner),
            recording: Recording::default(),
        }
    }

    pub(crate) fn recording(&self) -> Recording {
        self.recording.clone()
    }
}

impl<Sch: Scheduler> Scheduler for Recorder<Sch> {
    fn new_execution(&mut self) -> Option<Schedule> {
        let schedule = self.inner.as_mut()?.new_execution()?;
        let mut state = self.recording.lock_state();
        if state.executions > 0 {
            let mut hasher = Fnv::new();
            state.finished.hash(&mut hasher);
            hash_schedule(&state.current, &mut hasher);
            state.finished = hasher.finish();
        }
        state.executions += 1;
        state.current = schedule.clone();
        Some(schedule)
    }

    fn next_task(
        &mut self,
        runnable_tasks: &[&Task],
        current_task: Option<TaskId>,
        is_yielding: bool,
    ) -> Option<TaskId> {
        let next = self
            .inner
            .as_mut()?
            .next_task(runnable_tasks, current_task, is_yielding);
        if let Some(task) = next {
            self.recording.lock_state().current.push_task(task);
        }
        next
    }

    fn next_u64(&mut self) -> u64 {
        self.recording.lock_state().current.push_random();
        self.inner.as_mut().map_or(0, Scheduler::next_u64)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
