//! Shrunk race traces: for every bug of the race regression suite, the smallest failing
//! schedule found and the race it shows, step by step.
//!
//! For each scenario of `models::regressions` and `models::regressions_b` with its fix
//! reverted, the failure is found the way the regression tests find it (the first shuttle
//! scheduler the test requires, seed 1), its schedule is shrunk with `models::shrink`
//! (replay as the oracle: the same kind of violation), and the report prints the bug, the
//! scenario, steps / context switches / preemptions before -> after, the replays spent, the
//! shrunk schedule (shuttle's encoding: `EXPLORE_REPLAY=<schedule>` replays it) and the trace
//! of its execution (`models::trace`).
//!
//! `cargo run --release --bin shrink [BUG...]` (e.g. `B16 B18`; no argument: every bug).
//! `SHRINK_REPLAYS` caps the replays per bug (default: [`Shrinker`]'s). Exit status 1 if a
//! bug's failure was not found, did not shrink, or its shrunk schedule does not replay to the
//! same failure.
//!
//! `cargo run --release --bin shrink -- --trace BUG SCHEDULE` replays one schedule (shuttle's
//! encoding, or a failure record file of the race tests) of that bug's reverted scenario and
//! prints its trace; `--shrink` in front of `BUG` shrinks it first.

use clap::Parser;
use models::failure::quiet_panics;
use std::process::ExitCode;
use std::time::Instant;

use models::knobs::Replay;
use models::scenario::Scenario;
use models::scenarios::{Expect, Visitor};
use models::shrink::{Shrinker, bug_of, find_suite_failure, suite_signature, visit_race_suite};
use models::trace;

/// `[--shrink] --trace BUG SCHEDULE`: the trace of one schedule of one bug's scenario.
struct TraceOne {
    bug: String,
    schedule: String,
    shrink: bool,
    done: Option<Result<String, String>>,
}

impl Visitor for TraceOne {
    fn visit<Sc: Scenario>(&mut self, scenario: &Sc, expect: Expect) {
        let name = scenario.name();
        if self.done.is_some() || !bug_of(&name).is_some_and(|b| b.eq_ignore_ascii_case(&self.bug))
        {
            return;
        }
        self.done = Some(trace_one(scenario, &expect, &self.schedule, self.shrink));
    }
}

fn trace_one<Sc: Scenario>(
    scenario: &Sc,
    expect: &Expect,
    schedule: &str,
    shrink: bool,
) -> Result<String, String> {
    let schedule = match Replay::parse(schedule).map_err(|err| err.to_string())? {
        Replay::Record(record) => record
            .schedule
            .ok_or("the record holds no shuttle schedule")?,
        Replay::Schedule(schedule) => schedule,
        Replay::LoomCheckpoint(_) => return Err("a loom checkpoint holds no schedule".to_owned()),
    };
    let names = trace::task_names(scenario);
    let mut text = format!("{}\n", scenario.name());
    let schedule = if shrink {
        let signature = suite_signature(expect).ok_or("no expected violation")?;
        let shrunk = Shrinker::default()
            .shrink(scenario, &schedule, &signature)
            .map_err(|err| err.to_string())?;
        text.push_str(&format!(
            "before: {}\nafter:  {}\nschedule: {}\n",
            shrunk.before,
            shrunk.after,
            shrunk.encoded()
        ));
        shrunk.encoded()
    } else {
        schedule
    };
    let run = trace::replay_traced(scenario, &schedule).map_err(|err| err.to_string())?;
    text.push_str(&format!("{}\n", run.counts()));
    text.push_str(&trace::render_run(&names, &run));
    Ok(text)
}

struct Report {
    bugs: Vec<String>,
    shrinker: Shrinker,
    rows: Vec<String>,
    details: Vec<String>,
    ok: bool,
}

impl Report {
    fn fail(&mut self, bug: &str, name: &str, why: String) {
        self.ok = false;
        self.rows
            .push(format!("| {bug} | `{name}` | FAIL: {why} | | | | |"));
    }
}

impl Visitor for Report {
    fn visit<Sc: Scenario>(&mut self, scenario: &Sc, expect: Expect) {
        let name = scenario.name();
        let bug = bug_of(&name).unwrap_or("?").to_owned();
        if !self.bugs.is_empty() && !self.bugs.iter().any(|b| b.eq_ignore_ascii_case(&bug)) {
            return;
        }
        let started = Instant::now();
        let Some(failure) = find_suite_failure(scenario, &expect) else {
            return self.fail(&bug, &name, "no failure found".to_owned());
        };
        let Some(signature) = suite_signature(&expect) else {
            return self.fail(&bug, &name, "no expected violation".to_owned());
        };
        let Some(schedule) = failure.schedule.as_deref() else {
            return self.fail(&bug, &name, "no schedule".to_owned());
        };
        let shrunk = match self.shrinker.shrink(scenario, schedule, &signature) {
            Ok(shrunk) => shrunk,
            Err(err) => return self.fail(&bug, &name, err.to_string()),
        };
        // The shrunk schedule must replay through the explorers' own replay path.
        let replayed = models::explore::Plan::new(models::explore::Budget::executions(1))
            .quiet()
            .replay(scenario, &Replay::Schedule(shrunk.encoded()));
        let replays_same = replayed
            .failure
            .as_ref()
            .is_some_and(|f| f.message == shrunk.message());
        let shrank = shrunk.after.preemptions <= shrunk.before.preemptions
            && shrunk.after.steps <= shrunk.before.steps;
        if !replays_same || !shrank {
            self.ok = false;
        }
        let (before, after) = (shrunk.before, shrunk.after);
        self.rows.push(format!(
            "| {bug} | `{name}` | {} {} | {} -> {} | {} -> {} | {} -> {} | {} | {:.1} |{}",
            failure.explorer,
            failure.execution,
            before.steps,
            after.steps,
            before.switches,
            after.switches,
            before.preemptions,
            after.preemptions,
            shrunk.replays,
            started.elapsed().as_secs_f64(),
            match (replays_same, shrank) {
                (true, true) => "",
                (false, _) => " FAIL: the shrunk schedule does not replay",
                (_, false) => " FAIL: not smaller",
            }
        ));
        let mut text = format!("### {bug}: `{name}`\n\n");
        text.push_str(&format!(
            "Found by {} (seed {}, execution {}); shrunk from `{}` in {} replays.\n\n",
            failure.explorer, failure.seed, failure.execution, shrunk.start, shrunk.replays
        ));
        text.push_str(&format!(
            "* before: {before}\n* after:  {after}\n* schedule: `{}`\n\n",
            shrunk.encoded()
        ));
        text.push_str("```text\n");
        text.push_str(&trace::render(scenario, &shrunk));
        text.push_str("```\n");
        self.details.push(text);
    }
}

/// Shrunk race schedules with readable traces.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Print the trace of one schedule (or failure record) of bug `BUG` instead of the report.
    #[arg(long, num_args = 2, value_names = ["BUG", "SCHEDULE"])]
    trace: Option<Vec<String>>,
    /// With `--trace`: shrink the schedule first.
    #[arg(long, requires = "trace")]
    shrink: bool,
    /// The shrinker's replay budget per bug.
    #[arg(long, env = "SHRINK_REPLAYS")]
    replays: Option<usize>,
    /// Only these bugs (all of the race suite if none).
    bugs: Vec<String>,
}

fn main() -> anyhow::Result<ExitCode> {
    quiet_panics();
    let args = Args::parse();
    if let Some([bug, schedule]) = args.trace.as_deref() {
        let mut one = TraceOne {
            bug: bug.clone(),
            schedule: schedule.clone(),
            shrink: args.shrink,
            done: None,
        };
        visit_race_suite(&mut one);
        return match one.done {
            Some(Ok(text)) => {
                print!("{text}");
                Ok(ExitCode::SUCCESS)
            }
            Some(Err(err)) => anyhow::bail!("{err}"),
            None => anyhow::bail!("no bug {bug} in the race suite"),
        };
    }
    let mut shrinker = Shrinker::default();
    if let Some(replays) = args.replays {
        shrinker.max_replays = replays;
    }
    let mut report = Report {
        bugs: args.bugs,
        shrinker,
        rows: Vec::new(),
        details: Vec::new(),
        ok: true,
    };
    let started = Instant::now();
    visit_race_suite(&mut report);
    println!("# Shrunk race traces\n");
    println!(
        "Output of `cargo run --release --bin shrink` (see `models::shrink` and \
         `models::trace`): for every bug of the race regression suite, the failure found by \
         the regression tests' explorer (the first shuttle scheduler they require, seed 1) is \
         shrunk with replay as the oracle (the shrunk schedule must fail with the bug's \
         violation). A step is one scheduling decision, a context switch a step that runs \
         another task than the one before, a preemption a switch away from a task that could \
         have gone on. The table gives them before -> after shrinking, the replays the search \
         spent (PCT probes included) and its time.\n\n\
         Each schedule below is in shuttle's encoding: `EXPLORE_REPLAY=<schedule>` replays it \
         on its scenario, and `cargo run --release --bin shrink -- --trace <BUG> <schedule>` \
         prints its trace again (`--shrink --trace <BUG> <record or schedule>` shrinks any \
         failure record of the race tests first).\n"
    );
    println!(
        "| bug | scenario | found by, execution | steps | switches | preemptions | replays | secs |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in &report.rows {
        println!("{row}");
    }
    println!("\nTotal: {:.1} s.\n", started.elapsed().as_secs_f64());
    println!("## Traces\n");
    println!("{}", trace::LEGEND);
    for detail in &report.details {
        println!("{detail}");
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
