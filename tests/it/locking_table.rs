//! The locking table of `LOCKING.md`, executable (`models::cells`).
//!
//! * The document and the code's table agree: every cell of the matrix is either modelled or
//!   explained, on both sides; the comparison reports a cell deleted from the document.
//! * Both start orders of every interacting pair are modelled.
//! * `LOCKING.md` is still the `store::locking` API documentation, and valid rustdoc.
//! * Every modelled cell passes under the shuttle portfolio with a small budget (the main job,
//!   `cargo run --release --bin locking-table`, runs the same with a larger one and loom).
//! * With its fix reverted, a cell is caught (for the cells whose switch the store implements
//!   and whose model reaches the window within a small budget).

use std::path::Path;

use models::cells::drift::{self, Mismatch};
use models::cells::matrix::{self, CellResult};
use models::cells::{CELLS, Cell, NO_INTERACTION, Op, cell, find};
use models::explore::{Budget, Explorer, Plan};
use store::regressions::Bug;

fn locking_md() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("LOCKING.md");
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

#[test]
fn locking_md_and_the_cell_table_agree() {
    let mismatches = drift::check(&locking_md());
    let listed: Vec<String> = mismatches.iter().map(ToString::to_string).collect();
    assert!(
        listed.is_empty(),
        "LOCKING.md and models::cells disagree (regenerate the cell sections with \
         `cargo run --release --bin locking-table -- --markdown`):\n{}",
        listed.join("\n")
    );
    let parsed = drift::parse(&locking_md());
    assert_eq!(parsed.modelled.len(), CELLS.len());
    assert_eq!(parsed.explained.len(), NO_INTERACTION.len());
    assert_eq!(
        CELLS.len() + NO_INTERACTION.len(),
        Op::ALL.len() * Op::ALL.len()
    );
}

#[test]
fn locking_md_holds_the_generated_cell_sections_verbatim() {
    // The mechanism, outcomes, fix and switch of every cell, as the code states them.
    assert!(
        locking_md().contains(&matrix::markdown()),
        "the cell sections of LOCKING.md differ from the code's table; regenerate them with \
         `cargo run --release --bin locking-table -- --markdown`"
    );
}

/// The text without the lines that start with `prefix`.
fn without_line(text: &str, prefix: &str) -> String {
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with(prefix))
        .collect();
    assert!(
        kept.len() < text.lines().count(),
        "no line starts with {prefix:?}"
    );
    kept.join("\n")
}

#[test]
fn the_drift_check_reports_a_cell_removed_from_the_document() {
    let text = locking_md();
    let modelled_removed = without_line(&text, "| `reader__forget` |");
    assert_eq!(
        drift::check(&modelled_removed),
        vec![Mismatch::ModelWithoutCell("reader__forget".to_owned())]
    );
    let explained_removed = without_line(&text, "* `reader__owner_notes`:");
    assert_eq!(
        drift::check(&explained_removed),
        vec![Mismatch::ReasonMissingInDocument(
            "reader__owner_notes".to_owned()
        )]
    );
}

#[test]
fn the_drift_check_reports_cells_the_code_does_not_know() {
    let text = locking_md().replace(
        "\n| `reader__forget` |",
        "\n| `reader__teleport` | x |\n| `reader__owner_notes` | y |\n| `reader__forget` |",
    );
    let mismatches = drift::check(&text);
    assert!(mismatches.contains(&Mismatch::UnknownId("reader__teleport".to_owned())));
    assert!(mismatches.contains(&Mismatch::CellWithoutModel("reader__teleport".to_owned())));
    assert!(mismatches.contains(&Mismatch::CellWithoutModel(
        "reader__owner_notes".to_owned()
    )));
    assert!(mismatches.contains(&Mismatch::Duplicate("reader__owner_notes".to_owned())));
}

#[test]
fn both_start_orders_of_every_interacting_pair_are_modelled() {
    for spec in CELLS {
        assert!(
            cell(spec.starting, spec.running).is_some(),
            "{} is modelled, its other order {}__{} is not",
            spec.id(),
            spec.starting.id(),
            spec.running.id()
        );
    }
}

#[test]
fn every_modelled_cell_states_its_mechanism_outcomes_and_fix() {
    for spec in CELLS {
        assert!(!spec.mechanism.is_empty(), "{}: no mechanism", spec.id());
        assert!(!spec.fix.is_empty(), "{}: no fix", spec.id());
        assert!(!spec.running_outcomes.is_empty(), "{}", spec.id());
        assert!(!spec.starting_outcomes.is_empty(), "{}", spec.id());
    }
    for entry in NO_INTERACTION {
        assert!(!entry.reason.is_empty(), "{}: no reason", entry.id());
    }
}

#[test]
fn locking_md_is_the_store_locking_api_documentation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let module = std::fs::read_to_string(root.join("store/src/locking.rs")).expect("locking.rs");
    assert!(
        module.contains("#![doc = include_str!(\"../../LOCKING.md\")]"),
        "store/src/locking.rs no longer includes LOCKING.md"
    );
    // Rustdoc compiles untyped code fences as Rust doctests: every fence names its language.
    let mut open = false;
    for (number, line) in locking_md().lines().enumerate() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            if !open {
                assert!(
                    !info.trim().is_empty(),
                    "LOCKING.md:{}: a code fence without a language (use ```text)",
                    number + 1
                );
            }
            open = !open;
        }
    }
    assert!(!open, "LOCKING.md: an unclosed code fence");
}

/// Shuttle executions per scheduler and cell in the default test run (before `EXPLORE_*`).
const MATRIX_BUDGET: usize = 30;

fn matrix_plan() -> Plan {
    Plan::new(Budget::executions(MATRIX_BUDGET))
        .explorers(&Explorer::shuttle_portfolio())
        .quiet()
        .replay_command("cargo run --release --bin locking-table --")
        .with_env()
        .unwrap_or_else(|err| panic!("{err}"))
}

#[test]
fn every_modelled_cell_passes_under_the_shuttle_portfolio() {
    let plan = matrix_plan();
    let results: Vec<CellResult> = CELLS
        .iter()
        .map(|spec| matrix::run_cell(&plan, spec))
        .collect();
    let failures: Vec<String> = results
        .iter()
        .flat_map(|result| {
            result
                .failures
                .iter()
                .map(move |failure| format!("{}: {failure}", result.spec.id()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{}\n{}",
        matrix::render_table(&results),
        failures.join("\n")
    );
    for result in &results {
        assert!(result.executions > 0, "{} did not run", result.spec.id());
    }
}

/// The matrix prints a verdict in every interacting cell: `pass`, or `FAIL` where a cell
/// failed, and `-` for a cell that did not run.
#[test]
fn the_matrix_prints_pass_or_fail_in_every_interacting_cell() {
    let result = |spec: &'static models::cells::CellSpec, failed: bool| CellResult {
        spec,
        executions: 1,
        explorers: vec!["random".to_owned()],
        outcome_classes: Default::default(),
        elapsed: std::time::Duration::ZERO,
        failures: if failed {
            vec![models::explore::Failure {
                scenario: spec.id(),
                explorer: Explorer::Random,
                seed: 1,
                execution: 1,
                budget: 1,
                execution_seed: None,
                message: "planted".to_owned(),
                schedule: None,
                loom_checkpoint: None,
                record_file: None,
                replay_command: None,
            }]
        } else {
            Vec::new()
        },
    };
    let count = |text: &str, word: &str| text.split_whitespace().filter(|w| *w == word).count();
    let mut results: Vec<CellResult> = CELLS.iter().map(|spec| result(spec, false)).collect();
    let text = matrix::render_matrix(&results);
    assert_eq!(count(&text, "pass"), CELLS.len(), "{text}");
    assert_eq!(count(&text, "FAIL"), 0, "{text}");
    results[0] = result(&CELLS[0], true);
    results.pop();
    let text = matrix::render_matrix(&results);
    assert_eq!(count(&text, "pass"), CELLS.len() - 2, "{text}");
    assert_eq!(count(&text, "FAIL"), 1, "{text}");
    assert_eq!(count(&text, "-"), 1, "{text}");
}

#[test]
fn small_cells_pass_under_loom() {
    let plan = Plan::new(Budget::executions(1))
        .explorers(&[Explorer::Loom {
            preemption_bound: Some(Explorer::DEFAULT_LOOM_BOUND),
        }])
        .quiet();
    for id in ["reader__forget", "update_manifest__update_manifest"] {
        let spec = find(id).expect("a modelled cell");
        assert!(spec.loom(), "{id} is too large for loom");
        let result = matrix::run_cell(&plan, spec);
        assert!(result.passed(), "{id}: {:?}", result.failures);
        assert!(result.executions > 1, "{id}: loom explored nothing");
    }
}

/// Cells whose model catches its switch with every shuttle scheduler within this budget.
const CATCH_BUDGET: usize = 200;

fn caught(id: &str, bug: Bug) {
    let spec = find(id).expect("a modelled cell");
    assert_eq!(spec.bug, Some(bug), "{id} names another switch");
    let variant = Cell::reverted(spec).expect("a switch");
    let report = Plan::new(Budget::executions(CATCH_BUDGET))
        .explorers(&Explorer::shuttle_portfolio())
        .quiet()
        .explore(&variant);
    assert!(
        report.failures().next().is_some(),
        "{id} with {bug:?} reverted passed every explorer"
    );
    // The same cell with the fix in place passes the same plan.
    let fixed = Plan::new(Budget::executions(CATCH_BUDGET))
        .explorers(&Explorer::shuttle_portfolio())
        .quiet()
        .explore(&Cell::new(spec));
    fixed.assert_passed();
}

#[test]
fn reader_sessions_pin_the_snapshot_against_forget() {
    caught("reader__forget", Bug::B5ReadersTakeNoLock);
}

#[test]
fn manifest_updates_are_serialised() {
    caught(
        "update_manifest__update_manifest",
        Bug::B7ManifestWithoutLock,
    );
}

#[test]
fn gc_keeps_what_a_long_backup_wrote() {
    caught("create_index__gc_sweep", Bug::B1WriterCutoffIgnored);
}

#[test]
fn the_sweep_and_a_duplicate_insert_are_serialised() {
    caught("gc_sweep__create_backup", Bug::B4DuplicateInsertNoTouch);
}
