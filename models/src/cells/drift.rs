//! Drift between `LOCKING.md` and the code's table of cells.
//!
//! `LOCKING.md` lists the cells in two sections, with a fixed syntax:
//!
//! * under the heading `## Modelled cells`, one table row per interacting cell, whose first
//!   column is the cell id in backticks: ``| `reader__forget` | ... |``;
//! * under the heading `## Cells without interaction`, one list item per other cell, the id in
//!   backticks, a colon and the reason: ``* `reader__reader`: both hold the lock shared.``
//!
//! [`check`] parses both and compares them with [`CELLS`] and
//! [`NO_INTERACTION`]: every cell of the matrix must be in exactly one
//! of the two lists, on both sides, and the two sides must agree.

use std::collections::BTreeSet;
use std::fmt;

use super::{CELLS, NO_INTERACTION, Op, cell_id};

/// The heading of the section listing the modelled cells.
pub const MODELLED_HEADING: &str = "## Modelled cells";
/// The heading of the section listing the cells without interaction.
pub const NO_INTERACTION_HEADING: &str = "## Cells without interaction";

/// The cell ids of a `LOCKING.md` text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Ids of the modelled cells, in text order.
    pub modelled: Vec<String>,
    /// Ids of the cells without interaction, in text order.
    pub explained: Vec<String>,
}

/// Parses the two cell sections of `text` (see the [module documentation](self)).
pub fn parse(text: &str) -> Parsed {
    #[derive(PartialEq)]
    enum Section {
        Other,
        Modelled,
        Explained,
    }
    let mut section = Section::Other;
    let mut parsed = Parsed::default();
    for line in text.lines() {
        let trimmed = line.trim_end();
        if trimmed.starts_with("## ") {
            section = if trimmed == MODELLED_HEADING {
                Section::Modelled
            } else if trimmed == NO_INTERACTION_HEADING {
                Section::Explained
            } else {
                Section::Other
            };
            continue;
        }
        let (prefix, list) = match section {
            Section::Modelled => ("| `", &mut parsed.modelled),
            Section::Explained => ("* `", &mut parsed.explained),
            Section::Other => continue,
        };
        if let Some(rest) = trimmed.strip_prefix(prefix)
            && let Some((id, _)) = rest.split_once('`')
        {
            list.push(id.to_owned());
        }
    }
    parsed
}

/// One disagreement between `LOCKING.md` and the code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mismatch {
    /// A modelled cell of the code that the document does not list as modelled.
    ModelWithoutCell(String),
    /// A cell the document lists as modelled that has no model in the code.
    CellWithoutModel(String),
    /// A cell the code explains as non-interacting that the document does not explain.
    ReasonMissingInDocument(String),
    /// A cell the document explains as non-interacting that the code does not.
    ReasonMissingInCode(String),
    /// An id listed more than once (in one or both sections, on one side).
    Duplicate(String),
    /// An id that is not `<op>__<op>` for two operations of the table.
    UnknownId(String),
    /// A cell of the matrix that is neither modelled nor explained.
    Uncovered(String),
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::ModelWithoutCell(id) => {
                write!(
                    f,
                    "{id}: modelled in code, not listed under \"{MODELLED_HEADING}\""
                )
            }
            Mismatch::CellWithoutModel(id) => {
                write!(
                    f,
                    "{id}: listed under \"{MODELLED_HEADING}\", no model in code"
                )
            }
            Mismatch::ReasonMissingInDocument(id) => write!(
                f,
                "{id}: explained in code, not under \"{NO_INTERACTION_HEADING}\""
            ),
            Mismatch::ReasonMissingInCode(id) => write!(
                f,
                "{id}: explained under \"{NO_INTERACTION_HEADING}\", not in code"
            ),
            Mismatch::Duplicate(id) => write!(f, "{id}: listed more than once"),
            Mismatch::UnknownId(id) => write!(f, "{id}: not a cell of the table"),
            Mismatch::Uncovered(id) => write!(f, "{id}: neither modelled nor explained"),
        }
    }
}

fn is_cell_id(id: &str) -> bool {
    id.split_once("__").is_some_and(|(running, starting)| {
        Op::from_id(running).is_some() && Op::from_id(starting).is_some()
    })
}

fn duplicates<'a>(ids: impl Iterator<Item = &'a String>, found: &mut BTreeSet<Mismatch>) {
    let mut seen = BTreeSet::new();
    for id in ids {
        if !seen.insert(id.as_str()) {
            found.insert(Mismatch::Duplicate(id.clone()));
        }
    }
}

/// Compares the document `text` with the code's table; the mismatches, sorted (empty if the
/// two agree).
pub fn check(text: &str) -> Vec<Mismatch> {
    let parsed = parse(text);
    let mut found = BTreeSet::new();
    let code_modelled: Vec<String> = CELLS.iter().map(|spec| spec.id()).collect();
    let code_explained: Vec<String> = NO_INTERACTION.iter().map(|entry| entry.id()).collect();
    duplicates(parsed.modelled.iter().chain(&parsed.explained), &mut found);
    duplicates(code_modelled.iter().chain(&code_explained), &mut found);
    for id in parsed.modelled.iter().chain(&parsed.explained) {
        if !is_cell_id(id) {
            found.insert(Mismatch::UnknownId(id.clone()));
        }
    }
    let doc_modelled: BTreeSet<&String> = parsed.modelled.iter().collect();
    let doc_explained: BTreeSet<&String> = parsed.explained.iter().collect();
    for id in &code_modelled {
        if !doc_modelled.contains(id) {
            found.insert(Mismatch::ModelWithoutCell(id.clone()));
        }
    }
    for id in &parsed.modelled {
        if !code_modelled.contains(id) {
            found.insert(Mismatch::CellWithoutModel(id.clone()));
        }
    }
    for id in &code_explained {
        if !doc_explained.contains(id) {
            found.insert(Mismatch::ReasonMissingInDocument(id.clone()));
        }
    }
    for id in &parsed.explained {
        if !code_explained.contains(id) {
            found.insert(Mismatch::ReasonMissingInCode(id.clone()));
        }
    }
    for running in Op::ALL {
        for starting in Op::ALL {
            let id = cell_id(running, starting);
            if !code_modelled.contains(&id) && !code_explained.contains(&id) {
                found.insert(Mismatch::Uncovered(id));
            }
        }
    }
    found.into_iter().collect()
}
