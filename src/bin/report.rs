//! The main job: explore every catalogued scenario under every explorer and print a table.
//!
//! Each scenario of `models::scenarios` runs under shuttle random, PCT depth 2 and 3, URW and
//! loom with preemption bound 2 (loom skips scenarios too large for it). A scenario with every
//! fix in place must pass; a variant with a protection taken out must be caught by every
//! explorer. Per cell the table shows executions, executions per second, the distinct outcome
//! vectors seen and the first failing execution. A determinism section follows: the same seed
//! twice gives the same trace hash, and shuttle's uncontrolled-nondeterminism check passes.
//! Exit status 1 if any cell is not as expected.
//!
//! Knobs: `REPORT_EXECUTIONS` (shuttle executions per cell, default 2000; a cell that must
//! catch its violation goes on to `REPORT_CATCH_EXECUTIONS`, default 10000, and stops at the
//! first failure), `REPORT_SEED`
//! (default 1), and the `EXPLORE_*` knobs of `models::knobs` (which win). With
//! `EXPLORE_REPLAY=<failure record>` the report replays that one failure instead.
//!
//! Every failure found is saved as a record under `target/explore-failures/`; the expected
//! ones (caught variants) too, so `EXPLORE_REPLAY=<record> cargo run --release --bin report`
//! shows a replay.

use std::process::ExitCode;

use clap::Parser;
use models::explore::{Budget, Exploration, Plan};
use models::failure::quiet_panics;
use models::knobs::Replay;
use models::scenario::Scenario;
use models::scenarios::{Expect, Visitor, visit_all, visit_named};

fn verdict(exploration: &Exploration, expect: Expect) -> (bool, &'static str) {
    if exploration.skipped.is_some() {
        return (true, "skipped");
    }
    match (&exploration.failure, expect) {
        (None, Expect::CaughtBy { .. }) if expect.accepts_pass_by(exploration.explorer) => {
            (true, "missed (not required)")
        }
        (None, _) if expect.accepts_pass_by(exploration.explorer) => (true, "pass"),
        (None, _) => (false, "FAIL (violation missed)"),
        (Some(failure), Expect::Caught(_) | Expect::CaughtBy { .. })
            if expect.accepts_failure(&failure.message) =>
        {
            (true, "caught")
        }
        (Some(failure), _) if expect.accepts_failure(&failure.message) => (true, "KNOWN ISSUE"),
        (Some(_), Expect::Caught(_) | Expect::CaughtBy { .. }) => (false, "FAIL (another failure)"),
        (Some(_), _) => (false, "FAIL (unexpected violation)"),
    }
}

struct Table {
    plan: Plan,
    /// Shuttle executions within which a cell that must catch its violation has to.
    catch_executions: usize,
    all_ok: bool,
    unexpected: Vec<String>,
    known: Vec<String>,
}

impl Visitor for Table {
    fn visit<Sc: Scenario>(&mut self, scenario: &Sc, expect: Expect) {
        for explorer in self.plan.explorers.clone() {
            quiet_panics();
            // A cell that must catch its violation may take more executions to get there (it
            // stops at the first failure), as the regression tests allow.
            let mut plan = self.plan.clone();
            if !expect.accepts_pass_by(explorer) {
                plan.budget.executions = plan.budget.executions.max(self.catch_executions);
            }
            let exploration = plan.explore_with(scenario, explorer);
            let (ok, verdict) = verdict(&exploration, expect);
            self.all_ok &= ok;
            println!("{}  {verdict}", exploration.row());
            match (ok, &exploration.failure, expect) {
                (false, Some(failure), _) => self.unexpected.push(failure.to_string()),
                (true, Some(failure), Expect::KnownIssue { note, .. }) => {
                    self.known.push(format!("known issue: {note}\n{failure}"));
                }
                _ => {}
            }
        }
    }
}

struct Determinism {
    plan: Plan,
    all_ok: bool,
}

impl Visitor for Determinism {
    fn visit<Sc: Scenario>(&mut self, scenario: &Sc, expect: Expect) {
        if !expect.accepts_pass() {
            return;
        }
        quiet_panics();
        let check = self.plan.check_determinism(scenario);
        // A known issue may fail a run; determinism is about equal traces and the checker.
        let failed_as_known = check
            .failure
            .as_deref()
            .is_some_and(|m| expect.accepts_failure(m));
        let ok = check.first == check.second
            && check.nondeterminism.is_none()
            && (check.failure.is_none() || failed_as_known);
        self.all_ok &= ok;
        println!(
            "{:<30} {:>10} {:>18x} {:>18x} {:<24} {}",
            scenario.name(),
            check.executions,
            check.first,
            check.second,
            check
                .nondeterminism
                .as_deref()
                .map_or("passed", |_| "NONDETERMINISM"),
            if ok { "deterministic" } else { "FAIL" },
        );
    }
}

struct ReplayOne {
    plan: Plan,
    reproduced: bool,
}

impl Visitor for ReplayOne {
    fn visit<Sc: Scenario>(&mut self, scenario: &Sc, _: Expect) {
        let report = self.plan.explore(scenario);
        let recorded = self
            .plan
            .replay
            .as_ref()
            .and_then(Replay::record)
            .map(|r| r.message.clone());
        for exploration in &report.explorations {
            match &exploration.failure {
                Some(failure) => {
                    println!(
                        "replayed {} in {} execution(s):",
                        scenario.name(),
                        exploration.executions
                    );
                    println!("  panic: {}", failure.message);
                    let same = recorded.as_ref() == Some(&failure.message);
                    println!(
                        "  same panic as recorded: {}",
                        if same { "yes" } else { "no" }
                    );
                    self.reproduced = same;
                }
                None => println!(
                    "replayed {}: no failure (the schedule no longer fails)",
                    scenario.name()
                ),
            }
        }
    }
}

/// Every catalogued scenario under every explorer.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Shuttle executions per cell.
    #[arg(long, env = "REPORT_EXECUTIONS", default_value_t = 2_000)]
    executions: usize,
    /// Executions within which a cell that must catch its violation has to (stops at the
    /// first failure).
    #[arg(long, env = "REPORT_CATCH_EXECUTIONS", default_value_t = 10_000)]
    catch_executions: usize,
    /// Seed of the shuttle runs.
    #[arg(long, env = "REPORT_SEED", default_value_t = 1)]
    seed: u64,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let (executions, seed) = (args.executions, args.seed);
    let plan = Plan::new(Budget::executions(executions))
        .seed(seed)
        .quiet()
        .replay_command("cargo run --release --bin report")
        .with_env()?;
    if let Some(replay) = plan.replay.clone() {
        quiet_panics();
        let Some(name) = replay.scenario().map(str::to_owned) else {
            anyhow::bail!(
                "EXPLORE_REPLAY for the report must be a failure record (it names the scenario)"
            );
        };
        let mut one = ReplayOne {
            plan,
            reproduced: false,
        };
        if !visit_named(&name, &mut one) {
            anyhow::bail!("no scenario called {name:?}");
        }
        return Ok(if one.reproduced {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    println!(
        "Scenario explorations (shuttle budget {} executions per cell, seed {}; loom exhaustive within its bound)",
        plan.budget.executions, plan.seed
    );
    println!("{}  verdict", models::explore::Report::header());
    let mut table = Table {
        plan: plan.clone(),
        catch_executions: args.catch_executions,
        all_ok: true,
        unexpected: Vec::new(),
        known: Vec::new(),
    };
    visit_all(&mut table);
    let determinism_budget = executions.min(200);
    println!();
    println!(
        "Determinism (random scheduler, seed {seed}, {determinism_budget} executions, run twice; then shuttle's uncontrolled-nondeterminism check)"
    );
    println!(
        "{:<30} {:>10} {:>18} {:>18} {:<24} verdict",
        "scenario", "executions", "trace hash 1", "trace hash 2", "nondeterminism check"
    );
    let mut determinism = Determinism {
        plan: Plan {
            budget: Budget::executions(determinism_budget),
            ..plan
        },
        all_ok: true,
    };
    visit_all(&mut determinism);
    for known in &table.known {
        println!("\n{known}");
    }
    for failure in &table.unexpected {
        eprintln!("\nunexpected:\n{failure}");
    }
    let all_ok = table.all_ok && determinism.all_ok;
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
