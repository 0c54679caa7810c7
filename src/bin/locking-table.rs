//! The main job: the locking table of `LOCKING.md`, executed.
//!
//! Runs every modelled cell of the locking table (`models::cells`) under shuttle random, PCT
//! depth 2 and 3, URW, and loom with preemption bound 2 for the cells small enough for it,
//! then prints the matrix (rows: the operation already running, columns: the operation
//! starting; `pass` or `FAIL` in each interacting cell, `·` for a cell without interaction)
//! and one line per cell:
//! executions explored, explorers, seconds, verdict, and the outcome classes seen. It ends
//! with a generator run of at most 20 s and 240 cases (`models::generate`: generated cases
//! judged by the reference model): cases, executions, failures. Progress goes to stderr while it runs. Exit status 1 if
//! any cell or generated case failed; each failure is printed with its replay record.
//!
//! Options:
//!
//! * `--json`: print the results as one JSON object instead of the tables;
//! * `--executions N`: shuttle executions per explorer and cell (default 500);
//! * `--seed N`: seed of the shuttle explorers (default 1);
//! * `--cell TEXT`: only the cells whose id contains `TEXT`;
//! * `--markdown`: print the cell sections of `LOCKING.md` generated from the code's table
//!   (the matrix, the modelled cells, the cells without interaction) and exit;
//! * `--reverted`: instead, run each cell that names a regression switch with that fix
//!   reverted, and print which explorers caught it (exit status 1 if one was not caught).
//!
//! The `EXPLORE_*` knobs of `models::knobs` apply on top (`EXPLORE_BUDGET`, `EXPLORE_SEED`,
//! `EXPLORE_SCHEDULER`, `EXPLORE_LOOM_BOUND`, `EXPLORE_TIME`, `EXPLORE_LONG`, ...).

use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;
use clap::Parser;
use models::cells::Cell;
use models::cells::matrix::{self, CellResult};
use models::explore::{Budget, Plan};
use models::failure::quiet_panics;

/// Shuttle executions per explorer and cell by default.
const DEFAULT_EXECUTIONS: usize = 500;

/// The locking table of `LOCKING.md`, executed.
#[derive(Parser)]
#[command(about)]
struct Options {
    /// Print the results as one JSON object instead of the tables.
    #[arg(long)]
    json: bool,
    /// Print the cell sections of `LOCKING.md` generated from the code's table and exit.
    #[arg(long)]
    markdown: bool,
    /// Run each cell that names a regression switch with that fix reverted instead.
    #[arg(long)]
    reverted: bool,
    /// Shuttle executions per explorer and cell.
    #[arg(long, default_value_t = DEFAULT_EXECUTIONS)]
    executions: usize,
    /// Seed of the shuttle explorers.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Only the cells whose id contains this.
    #[arg(long = "cell", default_value = "")]
    filter: String,
}

/// Seconds of the generator run that ends the main job.
const GENERATOR_SECONDS: u64 = 20;

/// Cases of that run at most, so that the main job explores the same cases on a faster
/// machine.
const GENERATOR_CASES: u64 = 240;

/// Ends the main job with a generator run (`models::generate`) under a time budget against the
/// fixed store: cases, executions, failures (the first one with its replay command).
fn run_generator(seed: u64) -> usize {
    let mut hunt = models::generate::hunt::Hunt::new(seed, GENERATOR_CASES, 10);
    hunt.time = Some(std::time::Duration::from_secs(GENERATOR_SECONDS));
    quiet_panics();
    let report = hunt.run();
    let failures = usize::from(report.found.is_some());
    println!(
        "generator ({GENERATOR_SECONDS} s or {GENERATOR_CASES} cases, seed {seed}, 10 executions per shuttle explorer and case): {} cases, {} executions, {:.0} executions/s, {failures} failures",
        report.cases,
        report.executions,
        report.executions_per_second()
    );
    if let Some(found) = &report.found {
        eprintln!(
            "generated case {} FAILED:\n{}\n{}replay: cargo run --release --bin generate -- replay --seed {seed} --case {} --executions 10",
            found.index, found.failure.message, found.case, found.index
        );
    }
    failures
}

/// Runs every selected cell that names a switch with its fix reverted: each must be caught.
fn run_reverted(plan: &Plan, filter: &str) -> anyhow::Result<ExitCode> {
    let cells: Vec<_> = matrix::select(filter)
        .into_iter()
        .filter_map(|spec| Cell::reverted(spec).map(|variant| (spec, variant)))
        .collect();
    println!(
        "{:<32} {:<28} {:>10}  {:<34} first failure",
        "cell", "switch reverted", "executions", "caught by"
    );
    let mut missed = 0;
    for (index, (spec, variant)) in cells.iter().enumerate() {
        quiet_panics();
        let report = plan.explore(variant);
        let executions: usize = report.explorations.iter().map(|e| e.executions).sum();
        let caught_by: Vec<String> = report
            .explorations
            .iter()
            .filter(|exploration| exploration.failure.is_some())
            .map(|exploration| exploration.explorer.to_string())
            .collect();
        let first: String = report
            .failures()
            .next()
            .map(|failure| failure.message.chars().take(160).collect())
            .unwrap_or_else(|| "MISSED".to_owned());
        if caught_by.is_empty() {
            missed += 1;
        }
        eprintln!("[{:>3}/{}] {}", index + 1, cells.len(), spec.id());
        println!(
            "{:<32} {:<28} {:>10}  {:<34} {first}",
            spec.id(),
            spec.bug.map(|bug| format!("{bug:?}")).unwrap_or_default(),
            executions,
            caught_by.join(",")
        );
    }
    println!(
        "{} cells with a switch, {} caught, {} missed",
        cells.len(),
        cells.len() - missed,
        missed
    );
    Ok(if missed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn main() -> anyhow::Result<ExitCode> {
    let options = Options::parse();
    if options.markdown {
        print!("{}", matrix::markdown());
        return Ok(ExitCode::SUCCESS);
    }
    let plan = Plan::new(Budget::executions(options.executions))
        .seed(options.seed)
        .quiet()
        .replay_command("cargo run --release --bin locking-table --")
        .with_env()?;
    if plan.replay.is_some() {
        bail!("EXPLORE_REPLAY: replay a cell's failure with `cargo run --release --bin report`");
    }
    if options.reverted {
        return run_reverted(&plan, &options.filter);
    }
    let cells = matrix::select(&options.filter);
    if cells.is_empty() {
        bail!("no cell id contains {:?}", options.filter);
    }
    let explorers: Vec<String> = plan.explorers.iter().map(ToString::to_string).collect();
    eprintln!(
        "locking table: {} cells, {} shuttle executions per explorer and cell, seed {}, explorers {}",
        cells.len(),
        plan.budget.executions,
        plan.seed,
        explorers.join(",")
    );
    let started = Instant::now();
    let mut results: Vec<CellResult> = Vec::new();
    for (index, spec) in cells.iter().enumerate() {
        quiet_panics();
        let result = matrix::run_cell(&plan, spec);
        eprintln!(
            "[{:>3}/{}] {:<32} {:>7} executions {:>6.1} s  {}",
            index + 1,
            cells.len(),
            spec.id(),
            result.executions,
            result.elapsed.as_secs_f64(),
            result.verdict()
        );
        results.push(result);
    }
    let failed = results.iter().filter(|result| !result.passed()).count();
    if options.json {
        println!("{}", matrix::to_json(&results, &plan));
    } else {
        println!(
            "Locking table ({} shuttle executions per explorer and cell, seed {}; loom exhaustive within its bound on the small cells)\n",
            plan.budget.executions, plan.seed
        );
        println!("{}", matrix::render_matrix(&results));
        println!("{}", matrix::render_table(&results));
        println!(
            "{} cells, {} passed, {} failed, {:.1} s",
            results.len(),
            results.len() - failed,
            failed,
            started.elapsed().as_secs_f64()
        );
    }
    for result in &results {
        for failure in &result.failures {
            eprintln!("\ncell {} FAILED:\n{failure}", result.spec.id());
        }
    }
    let generated_failures = if options.json {
        0
    } else {
        run_generator(plan.seed)
    };
    Ok(if failed == 0 && generated_failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
