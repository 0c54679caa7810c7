//! The crash-consistency and fault-injection report of the store (`models::crash`).
//!
//! For every workload and sync level: the persistence points of the operation, the crash
//! states recovered and checked, the fault runs, the violations found and the time taken.
//! Then the planted durability bug (`ManifestBeforeIndexSync`: the manifest renamed into place
//! before the index is synced, at level `file`) must be caught, with the crash point and crash
//! state that replay it, and the crash × interleaving scenario runs under shuttle.
//!
//! Exit status 1 if a case with every fix in place has a violation, or the planted bug is not
//! caught. Output is Markdown (`docs/crash.md` holds it).
//!
//! Options: `--quick` runs the reduced budget of `cargo test`; `--filter <text>` only the
//! workloads whose name contains the text.

use clap::Parser;
use models::failure::quiet_panics;
use std::process::ExitCode;
use std::time::Instant;

use models::crash::interleaving::CrashGcBackup;
use models::crash::{CaseReport, CrashBudget, REVERTED_FIXES, all_cases, level_name, replays};
use models::explore::{Budget, Plan};
use store::chunk_store::SyncLevel;
use store::regressions::Bug;

/// Shuttle executions of the crash × interleaving scenario, per scheduler and level.
const INTERLEAVING_BUDGET: usize = 1_000;

/// "every", "every 3rd", ... or "no".
fn every(n: u64) -> String {
    match n {
        0 => "no".to_owned(),
        1 => "every".to_owned(),
        2 => "every 2nd".to_owned(),
        3 => "every 3rd".to_owned(),
        n => format!("every {n}th"),
    }
}

fn row(report: &CaseReport) -> String {
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {:.1} |",
        report.workload,
        level_name(report.level),
        report.persistence_points,
        report.operations,
        report.crash_states,
        report.fault_points,
        report.violations.len(),
        report.elapsed.as_secs_f64()
    )
}

/// Crash consistency and fault injection over the store.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// The reduced budget of the tests instead of the full one.
    #[arg(long)]
    quick: bool,
    /// Only workloads whose name contains this.
    #[arg(long)]
    filter: Option<String>,
}

fn main() -> ExitCode {
    // Violations are reported as values; the panics the checks catch print nothing.
    quiet_panics();
    let Args { quick, filter } = Args::parse();
    let budget = if quick {
        CrashBudget::REDUCED
    } else {
        CrashBudget::FULL
    };
    let started = Instant::now();
    let mut ok = true;

    println!("# Crash consistency and fault injection\n");
    println!(
        "Output of `cargo run --release --bin crash{}` (see `models::crash`). At every \
         persistence point of each operation: the crash image keeping only the durable state, \
         the one keeping everything, {} seed-chosen subsets, every state of `crash_states({})` \
         at {} point, and the state keeping each single pending operation (with its \
         dependencies) at {} point (always at the last). Fault runs: the N-th \
         operation fails for {} N (EIO and ENOSPC, transient and persistent), and \
         the N-th sync call fails with EIO for every N; each is checked live and in the \
         durable-only crash image.\n",
        if quick { " -- --quick" } else { "" },
        budget.seeded_per_point,
        budget.state_limit,
        every(budget.enumerate_every),
        every(budget.singletons_every),
        every(budget.fault_stride)
    );
    println!(
        "| workload | sync level | persistence points | operations | crash states | fault runs | violations | seconds |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let mut totals = (0u64, 0u64, 0usize);
    let mut found = Vec::new();
    for case in all_cases() {
        if filter
            .as_ref()
            .is_some_and(|text| !case.workload.name().contains(text.as_str()))
        {
            continue;
        }
        let report = models::crash::run_case(&case, &budget);
        println!("{}", row(&report));
        totals.0 += report.crash_states;
        totals.1 += report.fault_points;
        totals.2 += report.violations.len();
        found.extend(report.violations);
    }
    println!(
        "| **total** | | | | {} | {} | {} | {:.1} |\n",
        totals.0,
        totals.1,
        totals.2,
        started.elapsed().as_secs_f64()
    );
    if !found.is_empty() {
        ok = false;
        println!("Violations (first 20):\n");
        for violation in found.iter().take(20) {
            println!("* {violation}");
        }
        println!();
    }

    // The planted bug, and every other durability fix reverted.
    println!("Fixes reverted one at a time (the first is the planted bug of the issue):\n");
    println!(
        "| switch | case | crash states | fault runs | violations | first violation | replay | seconds |"
    );
    println!("|---|---|---:|---:|---:|---|---|---:|");
    let mut planted_line = None;
    for fix in REVERTED_FIXES {
        let case = fix.case();
        let report = models::crash::run_case(&case, &budget);
        let first = report.violations.first();
        let replayed = first.is_some_and(|violation| replays(&case, violation));
        ok &= replayed;
        println!(
            "| `{:?}` | {} at {} | {} | {} | {} | {} | {} | {:.1} |",
            fix.bug,
            fix.workload,
            level_name(fix.level),
            report.crash_states,
            report.fault_points,
            report.violations.len(),
            first.map_or("**not caught**".to_owned(), |violation| violation
                .event
                .to_string()),
            if replayed { "reproduces" } else { "**no**" },
            report.elapsed.as_secs_f64()
        );
        if fix.bug == Bug::ManifestBeforeIndexSync {
            planted_line = Some(match first {
                Some(violation) => format!(
                    "Planted bug `ManifestBeforeIndexSync` (backup at level file): **caught by a {}** \
                     (`replay_crash` with that point and state reproduces it): {}",
                    violation.event, violation.message
                ),
                None => "Planted bug `ManifestBeforeIndexSync`: **NOT caught**".to_owned(),
            });
        }
    }
    println!();
    if let Some(line) = planted_line {
        println!("{line}\n");
    }

    // Crash × interleaving.
    if filter.is_none() {
        println!("Crash × interleaving (`crash-gc-backup`, GC × incremental backup × crash):\n");
        println!("```");
        for level in [SyncLevel::File, SyncLevel::Filesystem] {
            let plan = Plan::new(Budget::executions(INTERLEAVING_BUDGET)).quiet();
            let explored = plan.explore(&CrashGcBackup::new(level));
            println!("{}", explored.table().trim_end());
            if explored.failures().next().is_some() {
                ok = false;
            }
        }
        println!("```\n");
    }
    println!("Total time: {:.1} s", started.elapsed().as_secs_f64());
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
