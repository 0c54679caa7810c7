//! Generative exploration: random store states × random concurrent operations × schedules,
//! judged by the sequential reference model of `models::generate`.
//!
//! * `cargo run --release --bin generate -- hunt [--seed S] [--cases N] [--executions E]
//!   [--seconds T] [--bug BUG]`: draws cases of seed `S` (default 1) and explores each under
//!   shuttle random, PCT 2, PCT 3, URW (`E` executions each, default 20) and loom on small
//!   cases, against the fixed store or with `BUG`'s fix reverted (`B15`, or a full switch name
//!   of `store::regressions::Bug`). Prints cases, executions, executions/s and failures; a
//!   failure is shrunk (case, then schedule) and printed with its minimal case, its trace and
//!   the command that replays it. Exit status 1 on a failure against the fixed store.
//! * `cargo run --release --bin generate -- switches [--cases N] [--executions E] [BUG...]`:
//!   for each switch, a hunt with only that fix reverted: found or not, cases and executions
//!   to the first failure, and the size of the shrunk case.
//! * `... -- replay --seed S --case I [--bug BUG] [--executions E]`: explores case `I` of seed
//!   `S` again (the same case, the same schedules), shrinks it and prints the trace.

use std::process::ExitCode;
use std::time::Duration;

use models::explorer::Explorer;
use models::generate::hunt::{Found, Hunt};
use models::generate::run::Generated;
use models::shrink::Shrinker;
use models::trace;
use store::regressions::{Bug, Regressions};

struct Args {
    command: String,
    seed: u64,
    cases: u64,
    executions: usize,
    seconds: Option<u64>,
    case: Option<u64>,
    bugs: Vec<Bug>,
}

fn parse_bug(text: &str) -> Result<Bug, String> {
    Bug::ALL
        .iter()
        .copied()
        .find(|bug| {
            let name = format!("{bug:?}");
            name.eq_ignore_ascii_case(text)
                || (name.len() > text.len()
                    && name[..text.len()].eq_ignore_ascii_case(text)
                    && !name.as_bytes()[text.len()].is_ascii_digit())
        })
        .ok_or_else(|| format!("unknown switch {text:?}"))
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args {
        command: args.first().cloned().unwrap_or_else(|| "hunt".to_owned()),
        seed: 1,
        cases: 200,
        executions: 20,
        seconds: None,
        case: None,
        bugs: Vec::new(),
    };
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let mut value = || rest.next().ok_or(format!("{arg} needs a value")).cloned();
        let number = |text: String| text.parse::<u64>().map_err(|err| format!("{arg}: {err}"));
        match arg.as_str() {
            "--seed" => parsed.seed = number(value()?)?,
            "--cases" => parsed.cases = number(value()?)?,
            "--executions" => parsed.executions = number(value()?)? as usize,
            "--seconds" => parsed.seconds = Some(number(value()?)?),
            "--case" => parsed.case = Some(number(value()?)?),
            "--bug" => parsed.bugs.push(parse_bug(&value()?)?),
            other => parsed.bugs.push(parse_bug(other)?),
        }
    }
    Ok(parsed)
}

fn hunt_of(args: &Args, bug: Option<Bug>) -> Hunt {
    let regressions = bug.map_or(Regressions::none(), |bug| Regressions::none().with(bug));
    let mut hunt = Hunt::new(args.seed, args.cases, args.executions).against(regressions);
    hunt.time = args.seconds.map(Duration::from_secs);
    hunt
}

/// Shrinks `found` (case, then schedule) and prints the minimal case, its trace and replay.
fn show(hunt: &Hunt, found: &Found, bug: Option<Bug>) -> usize {
    println!("first failure: case {} of seed {}", found.index, hunt.seed);
    println!("{}", found.failure.message);
    println!(
        "size {} before shrinking:\n{}",
        found.case.size(),
        found.case
    );
    let (case, failure, tried) = hunt.shrink(found);
    println!(
        "shrunk to size {} ({tried} candidate cases explored):\n{case}",
        case.size()
    );
    println!(
        "failure of the shrunk case ({}):\n{}",
        failure.explorer, failure.message
    );
    // As the hunt ran it: the liveness phase only after random executions.
    let liveness = failure.explorer == Explorer::Random;
    let scenario = Generated::new(failure.scenario.clone(), case.clone(), hunt.regressions)
        .with_liveness(liveness);
    if failure.schedule.is_some() {
        match Shrinker::default().shrink_failure(&scenario, &failure) {
            Ok(shrunk) => {
                println!(
                    "schedule: {} steps, {} preemptions -> {} steps, {} preemptions",
                    shrunk.before.steps,
                    shrunk.before.preemptions,
                    shrunk.after.steps,
                    shrunk.after.preemptions
                );
                println!("trace:\n{}", trace::render(&scenario, &shrunk));
            }
            Err(err) => println!("schedule not shrunk: {err}"),
        }
    }
    let bug = bug.map_or(String::new(), |bug| format!(" --bug {bug:?}"));
    println!(
        "replay: cargo run --release --bin generate -- replay --seed {} --case {} --executions {}{bug}",
        hunt.seed, found.index, hunt.executions
    );
    case.size()
}

fn hunt_command(args: &Args) -> ExitCode {
    let bug = args.bugs.first().copied();
    let hunt = hunt_of(args, bug);
    let report = hunt.run();
    println!(
        "generator: {} cases, {} executions, {:.1} s, {:.0} executions/s, {} failures",
        report.cases,
        report.executions,
        report.elapsed.as_secs_f64(),
        report.executions_per_second(),
        usize::from(report.found.is_some())
    );
    match &report.found {
        Some(found) => {
            show(&hunt, found, bug);
            if bug.is_none() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        None => ExitCode::SUCCESS,
    }
}

fn switches_command(args: &Args) -> ExitCode {
    let bugs = if args.bugs.is_empty() {
        Bug::ALL.to_vec()
    } else {
        args.bugs.clone()
    };
    println!(
        "budget: up to {} cases of seed {}, {} executions per explorer and case",
        args.cases, args.seed, args.executions
    );
    println!(
        "{:<36} {:<9} {:>7} {:>11} {:>8} {:>7}",
        "switch", "found", "cases", "executions", "seconds", "shrunk"
    );
    for bug in bugs {
        let hunt = hunt_of(args, Some(bug));
        let report = hunt.run();
        let (found, shrunk) = match &report.found {
            Some(found) => ("found", hunt.shrink(found).0.size().to_string()),
            None => ("not found", "-".to_owned()),
        };
        println!(
            "{:<36} {:<9} {:>7} {:>11} {:>8.1} {:>7}",
            format!("{bug:?}"),
            found,
            report.cases,
            report.executions,
            report.elapsed.as_secs_f64(),
            shrunk
        );
    }
    ExitCode::SUCCESS
}

fn replay_command(args: &Args) -> ExitCode {
    let Some(index) = args.case else {
        eprintln!("replay needs --case");
        return ExitCode::from(2);
    };
    let bug = args.bugs.first().copied();
    let hunt = hunt_of(args, bug);
    let case = models::generate::strategy::draw(hunt.seed, index, hunt.shape);
    let (executions, failure) = hunt.explore(&hunt.name(index), &case);
    println!(
        "case {index} of seed {}: {executions} executions",
        hunt.seed
    );
    match failure {
        Some(failure) => {
            show(
                &hunt,
                &Found {
                    index,
                    case,
                    failure,
                },
                bug,
            );
            ExitCode::FAILURE
        }
        None => {
            println!("passed:\n{case}");
            ExitCode::SUCCESS
        }
    }
}

fn main() -> ExitCode {
    // Failing executions panic by design (the explorers catch it); their messages are printed
    // with the failure, not by the default hook (`EXPLORE_SHOW_PANICS=1` keeps it).
    models::failure::quiet_panics();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&args) {
        Ok(args) => args,
        Err(err) => {
            eprintln!("generate: {err}");
            return ExitCode::from(2);
        }
    };
    match args.command.as_str() {
        "hunt" => hunt_command(&args),
        "switches" => switches_command(&args),
        "replay" => replay_command(&args),
        other => {
            eprintln!("generate: unknown command {other:?} (hunt, switches, replay)");
            ExitCode::from(2)
        }
    }
}
