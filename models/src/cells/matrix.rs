//! Running the cells under a [`Plan`] and printing the matrix: per cell the executions
//! explored, the explorers that ran, the outcome classes seen and the verdict.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use crate::explore::{Failure, Plan};

use super::{CELLS, Cell, CellSpec, Op, cell, no_interaction};

/// What exploring one cell gave.
#[derive(Debug, Clone)]
pub struct CellResult {
    /// The cell.
    pub spec: &'static CellSpec,
    /// Executions explored, over every explorer.
    pub executions: usize,
    /// The explorers that ran (loom is left out for cells too large for it).
    pub explorers: Vec<String>,
    /// Every outcome vector seen (`running=..., starting=...`).
    pub outcome_classes: BTreeSet<String>,
    /// Wall time spent.
    pub elapsed: Duration,
    /// Failures found, at most one per explorer.
    pub failures: Vec<Failure>,
}

impl CellResult {
    /// No explorer found a failure.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// `pass` or `FAIL`.
    pub fn verdict(&self) -> &'static str {
        if self.passed() { "pass" } else { "FAIL" }
    }
}

/// Explores `spec` (every fix in place) under every explorer of `plan`.
pub fn run_cell(plan: &Plan, spec: &'static CellSpec) -> CellResult {
    let scenario = Cell::new(spec);
    let mut result = CellResult {
        spec,
        executions: 0,
        explorers: Vec::new(),
        outcome_classes: BTreeSet::new(),
        elapsed: Duration::ZERO,
        failures: Vec::new(),
    };
    for explorer in &plan.explorers {
        let exploration = plan.explore_with(&scenario, *explorer);
        if exploration.skipped.is_some() {
            continue;
        }
        result.executions += exploration.executions;
        result.elapsed += exploration.elapsed;
        result.explorers.push(explorer.to_string());
        result
            .outcome_classes
            .extend(exploration.outcomes.keys().map(ToString::to_string));
        if let Some(failure) = exploration.failure {
            result.failures.push(failure);
        }
    }
    result
}

/// The matrix: one row per running operation, one column per starting one; `pass`, `FAIL`,
/// `·` for a cell without interaction, `-` for a modelled cell that did not run.
pub fn render_matrix(results: &[CellResult]) -> String {
    let mut text = String::new();
    let _ = write!(text, "{:<16}", "running \\ start");
    for op in Op::ALL {
        let _ = write!(text, " {:>5}", op.short());
    }
    text.push('\n');
    for running in Op::ALL {
        let _ = write!(text, "{:<16}", running.id());
        for starting in Op::ALL {
            let mark = match cell(running, starting) {
                // Matched by operations: `CELLS` is a constant, so its items have no one address.
                Some(spec) => results
                    .iter()
                    .find(|result| {
                        result.spec.running == spec.running && result.spec.starting == spec.starting
                    })
                    .map_or("-", CellResult::verdict),
                None if no_interaction(running, starting).is_some() => "·",
                None => "?",
            };
            let _ = write!(text, " {mark:>5}");
        }
        text.push('\n');
    }
    text.push_str("columns: ");
    let legend: Vec<String> = Op::ALL
        .iter()
        .map(|op| format!("{} = {}", op.short(), op.id()))
        .collect();
    text.push_str(&legend.join(", "));
    text.push('\n');
    text
}

/// One line per cell: id, executions, explorers, outcome classes, verdict.
pub fn render_table(results: &[CellResult]) -> String {
    let mut text = format!(
        "{:<32} {:>10} {:>8}  {:<34} {:<7} outcome classes seen\n",
        "cell", "executions", "seconds", "explorers", "verdict"
    );
    for result in results {
        let classes: Vec<&str> = result.outcome_classes.iter().map(String::as_str).collect();
        let _ = writeln!(
            text,
            "{:<32} {:>10} {:>8.1}  {:<34} {:<7} {}",
            result.spec.id(),
            result.executions,
            result.elapsed.as_secs_f64(),
            result.explorers.join(","),
            result.verdict(),
            classes.join(" | ")
        );
    }
    text
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.map(json_string).collect();
    format!("[{}]", items.join(","))
}

/// The results as one JSON object: `{"passed": bool, "seed": n, "budget": n, "cells": [...],
/// "no_interaction": [...]}`; each cell with its id, operations, executions, explorers,
/// outcome classes, allowed outcomes, fix, regression switch, verdict and failures (message
/// and replay record).
pub fn to_json(results: &[CellResult], plan: &Plan) -> String {
    let mut cells = Vec::new();
    for result in results {
        let spec = result.spec;
        let failures: Vec<String> = result
            .failures
            .iter()
            .map(|failure| {
                format!(
                    "{{\"explorer\":{},\"execution\":{},\"message\":{},\"record\":{}}}",
                    json_string(&failure.explorer.to_string()),
                    failure.execution,
                    json_string(&failure.message),
                    failure
                        .record_file
                        .as_ref()
                        .map_or("null".to_owned(), |path| {
                            json_string(&path.display().to_string())
                        })
                )
            })
            .collect();
        cells.push(format!(
            "{{\"id\":{},\"running\":{},\"starting\":{},\"executions\":{},\"seconds\":{:.3},\
             \"explorers\":{},\"outcome_classes\":{},\"allowed_running\":{},\
             \"allowed_starting\":{},\"fix\":{},\"regression\":{},\"verdict\":{},\"failures\":[{}]}}",
            json_string(&spec.id()),
            json_string(spec.running.id()),
            json_string(spec.starting.id()),
            result.executions,
            result.elapsed.as_secs_f64(),
            json_list(result.explorers.iter().map(String::as_str)),
            json_list(result.outcome_classes.iter().map(String::as_str)),
            json_list(spec.running_outcomes.iter().copied()),
            json_list(spec.starting_outcomes.iter().copied()),
            json_string(spec.fix),
            spec.bug
                .map_or("null".to_owned(), |bug| json_string(&format!("{bug:?}"))),
            json_string(result.verdict()),
            failures.join(",")
        ));
    }
    let explained: Vec<String> = super::NO_INTERACTION
        .iter()
        .map(|entry| {
            format!(
                "{{\"id\":{},\"reason\":{}}}",
                json_string(&entry.id()),
                json_string(entry.reason)
            )
        })
        .collect();
    format!(
        "{{\"passed\":{},\"seed\":{},\"budget\":{},\"cells\":[{}],\"no_interaction\":[{}]}}",
        results.iter().all(CellResult::passed),
        plan.seed,
        plan.budget.executions,
        cells.join(","),
        explained.join(",")
    )
}

/// The cells whose id contains `filter` (all of them for the empty filter).
pub fn select(filter: &str) -> Vec<&'static CellSpec> {
    CELLS
        .iter()
        .filter(|spec| spec.id().contains(filter))
        .collect()
}

/// The cell sections of `LOCKING.md`, generated from the table: the matrix of ids, the
/// modelled cells (the syntax [`super::drift`] parses) and the cells without interaction.
pub fn markdown() -> String {
    let mut text = String::new();
    text.push_str("| running ↓ / starting → |");
    for op in Op::ALL {
        let _ = write!(text, " {} |", op.id());
    }
    text.push_str("\n|---|");
    for _ in Op::ALL {
        text.push_str("---|");
    }
    text.push('\n');
    for running in Op::ALL {
        let _ = write!(text, "| **{}** |", running.id());
        for starting in Op::ALL {
            let mark = match cell(running, starting) {
                Some(spec) => match spec.bug {
                    Some(_) => "model, switch",
                    None => "model",
                },
                None => "—",
            };
            let _ = write!(text, " {mark} |");
        }
        text.push('\n');
    }
    let _ = writeln!(text, "\n{}\n", super::drift::MODELLED_HEADING);
    text.push_str(
        "| cell | mechanism | outcomes (running; starting) | fix | switch that breaks it |\n\
         |---|---|---|---|---|\n",
    );
    for spec in CELLS {
        let outcomes = |set: &[&str]| -> String {
            set.iter()
                .map(|label| format!("`{label}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            text,
            "| `{}` | {} | {}; {} | {} | {} |",
            spec.id(),
            spec.mechanism,
            outcomes(spec.running_outcomes),
            outcomes(spec.starting_outcomes),
            spec.fix,
            spec.bug.map_or("none: no switch".to_owned(), |bug| format!(
                "`Bug::{bug:?}`"
            ))
        );
    }
    let _ = writeln!(text, "\n{}\n", super::drift::NO_INTERACTION_HEADING);
    for entry in super::NO_INTERACTION {
        let _ = writeln!(text, "* `{}`: {}.", entry.id(), entry.reason);
    }
    text
}
