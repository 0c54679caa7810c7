//! The race regressions: how fast each explorer finds each reverted fix.
//!
//! For every scenario of `models::regressions` (part A: GC, chunk store, locks) and
//! `models::regressions_b` (part B: sessions, manifests, forget, prune), the variant with its fix
//! reverted runs under each shuttle scheduler (random, PCT depth 2 and 3, URW) with seeds
//! `1..=RACES_SEEDS`, each run stopping at its first failure or after `RACES_BUDGET`
//! executions. A row per (scenario, scheduler) gives how many seeds found the failure and the
//! median and maximum execution of the first failure over those seeds (a seed that missed counts
//! as "more than the budget"). Loom with preemption bound 2 runs once (it is deterministic) on
//! the scenarios small enough for it. The variant with the fix in place runs once per shuttle
//! scheduler with `RACES_PASS_BUDGET` executions and must pass.
//!
//! Exit status 1 if a fixed variant fails, a reverted one fails with another message than
//! expected, or an explorer its catalogue entry names as required misses it under some seed.
//!
//! Knobs: `RACES_SEEDS` (default 10), `RACES_BUDGET` (default 2000), `RACES_PASS_BUDGET`
//! (default 200), `RACES_FILTER` (only scenarios whose name contains it).
//!
//! A second table runs the real-world twins of `models::real` (same actors and check, real OS
//! threads on `RealWorld` in a fresh scratch directory per run) `RACES_REAL_RUNS` times (default
//! 100) with the fix reverted and counts the runs that found the violation; the same number of
//! runs with the fix in place must all pass. Bugs without a twin are listed with the reason.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use models::explore::{Budget, Explorer, Plan};
use models::failure::quiet_panics;
use models::scenario::Scenario;
use models::scenarios::{Expect, Visitor};

const SHUTTLE: [Explorer; 4] = [
    Explorer::Random,
    Explorer::Pct { depth: 2 },
    Explorer::Pct { depth: 3 },
    Explorer::Urw,
];

struct Races {
    seeds: usize,
    budget: usize,
    pass_budget: usize,
    filter: Option<String>,
    ok: bool,
}

fn median(sorted: &[usize]) -> usize {
    sorted[sorted.len() / 2]
}

impl Races {
    fn header() {
        println!(
            "{:<42} {:<14} {:>7} {:>8} {:>8} {:>8}  verdict",
            "scenario", "explorer", "found", "median", "max", "secs"
        );
    }

    fn caught<Sc: Scenario>(&mut self, scenario: &Sc, expect: Expect) {
        let name = scenario.name();
        for explorer in SHUTTLE {
            let started = Instant::now();
            let mut found = Vec::new();
            let mut wrong = None;
            for seed in 1..=self.seeds as u64 {
                quiet_panics();
                let plan = Plan::new(Budget::executions(self.budget))
                    .quiet()
                    .seed(seed)
                    .explorers(&[explorer]);
                let exploration = plan.explore_with(scenario, explorer);
                match exploration.failure {
                    Some(failure) if expect.accepts_failure(&failure.message) => {
                        found.push(failure.execution);
                    }
                    Some(failure) => wrong = Some(failure.message),
                    None => {}
                }
            }
            let required = !expect.accepts_pass_by(explorer);
            // A missed seed counts as "beyond the budget" for the median and maximum.
            let mut counted = found.clone();
            counted.resize(self.seeds, self.budget + 1);
            counted.sort_unstable();
            let show = |value: usize| {
                if value > self.budget {
                    format!(">{}", self.budget)
                } else {
                    value.to_string()
                }
            };
            let verdict = match (&wrong, found.len() == self.seeds, required) {
                (Some(message), _, _) => {
                    self.ok = false;
                    format!("FAIL (another failure: {message})")
                }
                (None, true, _) => "caught by every seed".to_owned(),
                (None, false, true) => {
                    self.ok = false;
                    "FAIL (a required explorer missed it)".to_owned()
                }
                (None, false, false) => "missed by some seeds (not required)".to_owned(),
            };
            println!(
                "{:<42} {:<14} {:>7} {:>8} {:>8} {:>8.1}  {verdict}",
                name,
                explorer.to_string(),
                format!("{}/{}", found.len(), self.seeds),
                show(median(&counted)),
                show(counted[counted.len() - 1]),
                started.elapsed().as_secs_f64(),
            );
        }
        let loom = Explorer::Loom {
            preemption_bound: Some(Explorer::DEFAULT_LOOM_BOUND),
        };
        if scenario.loom() {
            let started = Instant::now();
            quiet_panics();
            let plan = Plan::new(Budget::executions(self.budget))
                .quiet()
                .explorers(&[loom]);
            let exploration = plan.explore_with(scenario, loom);
            let required = !expect.accepts_pass_by(loom);
            let (found, at, verdict) = match exploration.failure {
                Some(failure) if expect.accepts_failure(&failure.message) => {
                    ("1/1", failure.execution.to_string(), "caught".to_owned())
                }
                Some(failure) => {
                    self.ok = false;
                    (
                        "0/1",
                        "-".to_owned(),
                        format!("FAIL (another failure: {})", failure.message),
                    )
                }
                None if required => {
                    self.ok = false;
                    (
                        "0/1",
                        format!("({})", exploration.executions),
                        "FAIL (missed)".to_owned(),
                    )
                }
                None => (
                    "0/1",
                    format!("({})", exploration.executions),
                    "missed (not required)".to_owned(),
                ),
            };
            println!(
                "{:<42} {:<14} {:>7} {:>8} {:>8} {:>8.1}  {verdict}",
                name,
                loom.to_string(),
                found,
                at,
                at,
                started.elapsed().as_secs_f64(),
            );
        }
    }

    fn passes<Sc: Scenario>(&mut self, scenario: &Sc) {
        let name = scenario.name();
        for explorer in SHUTTLE {
            let started = Instant::now();
            quiet_panics();
            let plan = Plan::new(Budget::executions(self.pass_budget))
                .quiet()
                .explorers(&[explorer]);
            let exploration = plan.explore_with(scenario, explorer);
            let verdict = match &exploration.failure {
                None => "pass".to_owned(),
                Some(failure) => {
                    self.ok = false;
                    format!("FAIL\n{failure}")
                }
            };
            println!(
                "{:<42} {:<14} {:>7} {:>8} {:>8} {:>8.1}  {verdict}",
                name,
                explorer.to_string(),
                "-",
                "-",
                "-",
                started.elapsed().as_secs_f64(),
            );
        }
    }
}

impl Visitor for Races {
    fn visit<Sc: Scenario>(&mut self, scenario: &Sc, expect: Expect) {
        if let Some(filter) = &self.filter
            && !scenario.name().contains(filter.as_str())
        {
            return;
        }
        if expect.must_fail() {
            self.caught(scenario, expect);
        } else {
            self.passes(scenario);
        }
    }
}

/// The real-threads column: each twin's reverted variant run `runs` times, and its fixed one.
fn real_column(runs: usize, races: &mut Races) {
    println!();
    println!("real threads on the real world: {runs} runs per variant, fix reverted / in place");
    println!(
        "{:<6} {:<28} {:>10} {:>10} {:>8}  verdict",
        "bug", "scenario", "reverted", "fixed", "secs"
    );
    for twin in models::real::twins() {
        if let Some(filter) = &races.filter
            && !twin.scenario.contains(filter.as_str())
        {
            continue;
        }
        let (reverted, fixed) = match (
            models::real::run_twin(&twin, true, runs),
            models::real::run_twin(&twin, false, runs),
        ) {
            (Ok(reverted), Ok(fixed)) => (reverted, fixed),
            (Err(err), _) | (_, Err(err)) => {
                races.ok = false;
                println!(
                    "{:<6} {:<28} FAIL (could not run: {err})",
                    twin.bug, twin.scenario
                );
                continue;
            }
        };
        let verdict = if fixed.found + fixed.other > 0 {
            races.ok = false;
            format!(
                "FAIL (the fixed variant failed: {})",
                fixed.first_other.as_deref().unwrap_or(twin.violation)
            )
        } else if let Some(message) = &reverted.first_other {
            races.ok = false;
            format!("FAIL (another failure: {message})")
        } else {
            format!("found in {} of {} runs", reverted.found, reverted.runs)
        };
        println!(
            "{:<6} {:<28} {:>10} {:>10} {:>8.1}  {verdict}",
            twin.bug,
            twin.scenario,
            format!("{}/{}", reverted.found, reverted.runs),
            format!("{}/{}", fixed.found + fixed.other, fixed.runs),
            (reverted.elapsed + fixed.elapsed).as_secs_f64(),
        );
    }
    for (bug, reason) in models::real::NOT_APPLICABLE {
        println!(
            "{bug:<6} {:<28} {:>10} {:>10} {:>8}  n/a: {reason}",
            "-", "-", "-", "-"
        );
    }
}

/// How fast each explorer finds each reverted fix.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Seeds per (scenario, scheduler).
    #[arg(long, env = "RACES_SEEDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// Executions per run of a reverted fix.
    #[arg(long, env = "RACES_BUDGET", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    budget: u64,
    /// Executions per scheduler of a fixed variant.
    #[arg(long, env = "RACES_PASS_BUDGET", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pass_budget: u64,
    /// Only scenarios whose name contains this.
    #[arg(long, env = "RACES_FILTER")]
    filter: Option<String>,
    /// Runs per real-world twin and variant.
    #[arg(long, env = "RACES_REAL_RUNS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    real_runs: u64,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let mut races = Races {
        seeds: args.seeds as usize,
        budget: args.budget as usize,
        pass_budget: args.pass_budget as usize,
        filter: args.filter,
        ok: true,
    };
    println!(
        "reverted fixes: first failing execution over seeds 1..={} (budget {} per run); \
         fixed variants: {} executions per scheduler",
        races.seeds, races.budget, races.pass_budget
    );
    Races::header();
    models::regressions::visit_regressions(&mut races);
    models::regressions_b::visit_regressions(&mut races);
    real_column(args.real_runs as usize, &mut races);
    Ok(if races.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
