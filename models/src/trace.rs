//! Readable traces of a shrunk schedule.
//!
//! [`render`] replays a [`Shrunk`] schedule once more with the simulated world's operation
//! trace on ([`SimWorld::start_trace`]) and prints the execution the way a race is told: per
//! step, which actor did what to the disk (file operations, locks taken or refused, clock
//! moves), grouped into runs of one actor, with the points where the scheduler preempted an
//! actor that could have gone on, and the failure at the end.
//!
//! Task 0 is the scenario's main task (setup, spawning and joining the actors); the actors are
//! tasks 1.. in the order [`Scenario::actors`] lists them. The trace starts after the setup and
//! stops when the check starts, so it holds exactly what the actors did.
//!
//! # Attributing operations to steps
//!
//! The simulated world records its trace outside the scheduled state (its gate adds no
//! scheduling point), so the observing scheduler can collect the operations recorded since the
//! previous decision at every decision: they were performed by the step that decision chose.
//! Every operation is thereby placed at its exact step, and a preemption is printed exactly
//! where it happened.

use std::any::Any;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use shuttle::scheduler::ReplayScheduler;
use sim::{OpKind, ShuttleSync, SimWorld, TraceEvent};
use store::sync::SyncFamily;

use crate::explore::Limits;
use crate::scenario::{Actor, Outcomes, Scenario, ScenarioError};
use crate::shrink::{Decision, Drain, Run, ShrinkError, Shrunk, decode, run_observed};

/// How to read a trace, printed once above the traces.
pub const LEGEND: &str = "\
Reading a trace: the first line is the setup (the main task, before the actors start). Then \
one block per run of a task: `[<steps>] <actor>` opens a block, followed by the disk \
operations that task's steps performed, one per line: the step number, the operation, its \
path (relative to the datastore root), details, and `ok`, `REFUSED` (a lock not taken) or
the error. `main` is the \
scenario's own task (it spawns the actors and joins them). A line `~~ <actor> preempted ~~` \
marks a preemption: the scheduler switched away from an actor that could have gone on; every \
other switch is forced (the task blocked on a lock or a join, or finished). Steps without a \
disk operation (in-memory locks, joins) are counted in the block header only. The failure \
message ends the trace.
";

/// The name of every task: `main` for task 0, then the actors in spawn order.
pub fn task_names<Sc: Scenario>(scenario: &Sc) -> Vec<String> {
    let mut names = vec!["main".to_owned()];
    names.extend(
        scenario
            .actors::<ShuttleSync>()
            .iter()
            .map(|actor| actor.name().to_owned()),
    );
    names
}

/// The name of task `task`.
pub fn task_name(names: &[String], task: usize) -> String {
    names
        .get(task)
        .cloned()
        .unwrap_or_else(|| format!("task {task}"))
}

/// What the traced execution shares with its observer: the world (once set up) and the
/// operations recorded after the last decision.
#[derive(Default)]
struct Slot {
    world: Option<Box<dyn Any + Send>>,
    tail: Vec<TraceEvent>,
}

/// A scenario run with the world's trace on from the end of its setup to the start of its
/// check. Same name, actors and check as the wrapped scenario, so schedules of one replay on
/// the other.
#[derive(Clone)]
struct Traced<Sc> {
    inner: Sc,
    slot: Arc<Mutex<Slot>>,
}

impl<Sc: Scenario> Scenario for Traced<Sc> {
    type State<S: SyncFamily> = Sc::State<S>;

    fn name(&self) -> String {
        self.inner.name()
    }

    fn setup<S: SyncFamily>(&self, world: &SimWorld<S>) -> Result<Self::State<S>, ScenarioError> {
        let state = self.inner.setup(world)?;
        world.start_trace();
        lock(&self.slot).world = Some(Box::new(world.clone()));
        Ok(state)
    }

    fn actors<S: SyncFamily>(&self) -> Vec<Actor<Self::State<S>>> {
        self.inner.actors::<S>()
    }

    fn check<S: SyncFamily>(
        &self,
        state: &Self::State<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError> {
        let world = lock(&self.slot).world.take();
        if let Some(world) = world.as_ref().and_then(|w| w.downcast_ref::<SimWorld<S>>()) {
            let events = world.take_trace();
            lock(&self.slot).tail.extend(events);
        }
        // Dropped here, inside the execution that made it.
        drop(world);
        self.inner.check(state, outcomes)
    }

    fn world_seed(&self) -> u64 {
        self.inner.world_seed()
    }

    fn loom(&self) -> bool {
        false
    }
}

/// Replays `encoded` (a schedule of `scenario`) once with the operation trace on.
pub fn replay_traced<Sc: Scenario>(scenario: &Sc, encoded: &str) -> Result<Run, ShrinkError> {
    let schedule = decode(encoded)?;
    let slot = Arc::new(Mutex::new(Slot::default()));
    let traced = Traced {
        inner: scenario.clone(),
        slot: Arc::clone(&slot),
    };
    let drain: Drain = {
        let slot = Arc::clone(&slot);
        Arc::new(move || {
            let mut slot = lock(&slot);
            let mut events = std::mem::take(&mut slot.tail);
            if let Some(world) = slot
                .world
                .as_ref()
                .and_then(|w| w.downcast_ref::<SimWorld<ShuttleSync>>())
            {
                events.extend(world.take_trace());
                world.start_trace();
            }
            events
        })
    };
    let run = run_observed(
        &traced,
        &Limits::default(),
        ReplayScheduler::new_from_schedule(schedule),
        Some(drain),
    );
    // A failure before the check leaves the world behind; shuttle's primitives need no
    // execution to be dropped.
    lock(&slot).world = None;
    Ok(run)
}

/// The trace of `shrunk`'s execution of `scenario`: replayed with the operation trace on and
/// rendered by [`render_run`]; from the decisions alone if the replay does not give the same
/// failure back (it always should).
pub fn render<Sc: Scenario>(scenario: &Sc, shrunk: &Shrunk) -> String {
    let names = task_names(scenario);
    match replay_traced(scenario, &shrunk.encoded()) {
        Ok(run) if run.message() == shrunk.run.message() => render_run(&names, &run),
        _ => render_run(&names, &shrunk.run),
    }
}

/// Renders a run: a setup line, then one block per run of a task with its operations, the
/// preemptions, and the failure (or `passed`).
pub fn render_run(names: &[String], run: &Run) -> String {
    let decisions = &run.decisions;
    let root = common_root(run.events.iter().map(|(_, event)| event.path.as_path()));
    let mut text = String::new();
    // The setup: the main task's steps before the first operation of the trace and before
    // the first switch.
    let setup_end = decisions
        .iter()
        .position(|decision| decision.chosen != 0)
        .unwrap_or(decisions.len());
    let first_event = run.events.first().map_or(usize::MAX, |(step, _)| *step);
    let setup_end = setup_end.min(first_event);
    if setup_end > 0 {
        text.push_str(&format!(
            "[{}] main: setup, spawning the actors ({} steps)\n",
            steps_label(0, setup_end),
            setup_end
        ));
    }
    if let Some(root) = &root {
        text.push_str(&format!("(paths relative to {})\n", root.display()));
    }
    let mut events = run.events.iter().peekable();
    let mut index = setup_end;
    while index < decisions.len() {
        let first = &decisions[index];
        let task = first.chosen;
        let end = decisions[index..]
            .iter()
            .position(|decision| decision.chosen != task)
            .map_or(decisions.len(), |offset| index + offset);
        if first.is_preemption()
            && let Some(current) = first.current
        {
            text.push_str(&format!("~~ {} preempted ~~\n", task_name(names, current)));
        }
        text.push_str(&format!(
            "[{}] {}\n",
            steps_label(index, end),
            task_name(names, task)
        ));
        while let Some((step, event)) = events.next_if(|(step, _)| *step < end) {
            let actor = event.task.unwrap_or(decisions[*step].chosen);
            let who = if actor == task {
                String::new()
            } else {
                format!(" ({})", task_name(names, actor))
            };
            text.push_str(&format!(
                "  {:>5} {}{who}\n",
                step + 1,
                event_line(event, root.as_deref())
            ));
        }
        index = end;
    }
    // Operations after the last decision (none expected).
    for (step, event) in events {
        text.push_str(&format!(
            "  {:>5} {}\n",
            step + 1,
            event_line(event, root.as_deref())
        ));
    }
    match run.message() {
        Some(message) => text.push_str(&format!("FAILED: {message}\n")),
        None => text.push_str("passed\n"),
    }
    text
}

/// `a-b` (1-based, inclusive) or `a` for one step.
fn steps_label(start: usize, end: usize) -> String {
    if end <= start + 1 {
        format!("{}", start + 1)
    } else {
        format!("{}-{}", start + 1, end)
    }
}

/// One operation: kind, path, details, result; chunk digests cut to 12 hex digits.
pub fn event_line(event: &TraceEvent, root: Option<&Path>) -> String {
    let op = match event.op {
        OpKind::Open => "open",
        OpKind::Read => "read",
        OpKind::Write => "write",
        OpKind::SetLen => "set-len",
        OpKind::SyncAll => "fsync",
        OpKind::FsyncDir => "fsync-dir",
        OpKind::Syncfs => "syncfs",
        OpKind::CreateDir => "mkdir",
        OpKind::RemoveDir => "rmdir",
        OpKind::RemoveFile => "unlink",
        OpKind::Rename => "rename",
        OpKind::ReadDir => "readdir",
        OpKind::Metadata => "stat",
        OpKind::Touch => "touch",
        OpKind::Lock => "flock",
        OpKind::Unlock => "unlock",
        OpKind::RecordLock => "fcntl-lock",
        OpKind::Clock => "clock",
    };
    let mut line = format!("{op:<10}");
    let path = shorten(&event.path.display().to_string(), root);
    if !path.is_empty() {
        line.push(' ');
        line.push_str(&path);
    }
    if !event.detail.is_empty() {
        line.push_str(&format!(" ({})", shorten(&event.detail, root)));
    }
    match (event.result, event.op) {
        (Ok(()), _) => line.push_str(" -> ok"),
        (Err(kind), OpKind::Lock | OpKind::RecordLock) => {
            line.push_str(&format!(" -> REFUSED ({kind:?})"))
        }
        (Err(kind), _) => line.push_str(&format!(" -> error {kind:?}")),
    }
    line
}

/// `text` with the root prefix taken off paths and long hex names cut.
fn shorten(text: &str, root: Option<&Path>) -> String {
    let mut text = text.to_owned();
    if let Some(root) = root.map(|root| root.display().to_string())
        && root != "/"
    {
        text = text.replace(&format!("{root}/"), "").replace(&root, ".");
    }
    cut_digests(&text)
}

/// Runs of 20 or more hex digits cut to their first 12 and `…`.
fn cut_digests(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 20 {
            out.push_str(&run[..12]);
            out.push('…');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The first path component under `/` shared by every non-empty path (`/ds` for the race
/// scenarios), if there is one.
fn common_root<'a>(paths: impl Iterator<Item = &'a Path>) -> Option<std::path::PathBuf> {
    let mut root: Option<std::path::PathBuf> = None;
    for path in paths.filter(|path| !path.as_os_str().is_empty()) {
        let mut components = path.components();
        let first = components.next()?;
        let second = components.next()?;
        let candidate = Path::new(first.as_os_str()).join(second.as_os_str());
        match &root {
            None => root = Some(candidate),
            Some(existing) if *existing == candidate => {}
            Some(_) => return None,
        }
    }
    root
}

/// A trace from the scheduling decisions alone: one line per run of a task, with its steps.
pub fn render_decisions(names: &[String], decisions: &[Decision], message: &str) -> String {
    let run = Run {
        result: Err(message.to_owned()),
        decisions: decisions.to_vec(),
        schedule: Default::default(),
        events: Vec::new(),
    };
    render_run(names, &run)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_cut_and_paths_made_relative() {
        let digest = "011ce4f11931d3ee01dcd373ea2a819b52d20b284420fbfb8b72b22b17b1e8da";
        let text = format!("/ds/.chunks/011c/{digest}");
        assert_eq!(
            shorten(&text, Some(Path::new("/ds"))),
            ".chunks/011c/011ce4f11931…"
        );
        assert_eq!(shorten("/ds", Some(Path::new("/ds"))), ".");
        assert_eq!(cut_digests("vm/100 ab12"), "vm/100 ab12");
    }

    #[test]
    fn the_root_is_shared_by_every_path() {
        let paths = [
            Path::new("/ds/a"),
            Path::new(""),
            Path::new("/ds/.chunks/x"),
        ];
        assert_eq!(
            common_root(paths.iter().copied()),
            Some(std::path::PathBuf::from("/ds"))
        );
        let mixed = [Path::new("/ds/a"), Path::new("/other/b")];
        assert_eq!(common_root(mixed.iter().copied()), None);
    }
}
