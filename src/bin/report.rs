//! The main job: explore every scenario that exists under every explorer and print a table.
//!
//! For each scenario it runs the store as it is (every fix in place: must pass) and with the
//! scenario's historical fix reverted (must fail), under shuttle random, PCT depth 2 and 3, URW
//! and loom with preemption bound 2. Exit status 1 if any cell is not as expected.
//!
//! Knobs: `REPORT_EXECUTIONS` (shuttle executions per cell, default 2000), `REPORT_SEED`
//! (default 1).

use std::process::ExitCode;

use models::explore::{Exploration, Explorer, explore};
use models::scenarios::insert_sweep::InsertSweep;
use store::regressions::{Bug, Regressions};

fn env_number(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(text) => text.parse().map_err(|err| anyhow::anyhow!("{name}={text:?}: {err}")),
        Err(_) => Ok(default),
    }
}

fn row(scenario: &str, variant: &str, exploration: &Exploration, expect_failure: bool) -> bool {
    let found = exploration.failure.as_ref().map(|failure| failure.execution);
    let ok = found.is_some() == expect_failure;
    let verdict = match (ok, found) {
        (true, Some(_)) => "caught",
        (true, None) => "pass",
        (false, Some(_)) => "FAIL (unexpected violation)",
        (false, None) => "FAIL (violation missed)",
    };
    let first = found.map_or_else(|| "-".to_owned(), |execution| execution.to_string());
    println!(
        "{scenario:<14} {variant:<12} {:<9} {:>10} {:>12.0} {:>10}  {verdict}",
        exploration.explorer.to_string(),
        exploration.executions,
        exploration.executions_per_second(),
        first,
    );
    ok
}

/// Failing executions are expected here and summarised in the table, so panics print nothing.
/// Set before every exploration: shuttle wraps the hook it finds on its first run with one that
/// prints the failing task, and replacing the hook again removes that wrapper.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

fn main() -> anyhow::Result<ExitCode> {
    let executions = env_number("REPORT_EXECUTIONS", 2_000)? as usize;
    let seed = env_number("REPORT_SEED", 1)?;
    let explorers = [
        Explorer::Random,
        Explorer::Pct { depth: 2 },
        Explorer::Pct { depth: 3 },
        Explorer::Urw,
        Explorer::Loom { preemption_bound: Some(2) },
    ];
    println!("Scenario explorations (shuttle budget {executions} executions, seed {seed})");
    println!(
        "{:<14} {:<12} {:<9} {:>10} {:>12} {:>10}  verdict",
        "scenario", "store", "explorer", "executions", "exec/s", "first fail"
    );
    let mut all_ok = true;
    let variants = [
        ("as is", Regressions::none(), false),
        ("B4 reverted", Regressions::none().with(Bug::B4DuplicateInsertNoTouch), true),
    ];
    for (variant, regressions, expect_failure) in variants {
        for explorer in explorers {
            quiet_panics();
            let exploration = explore(&InsertSweep { regressions }, explorer, seed, executions);
            all_ok &= row("insert-sweep", variant, &exploration, expect_failure);
        }
    }
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
