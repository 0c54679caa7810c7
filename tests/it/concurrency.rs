//! Insert vs sweep under the schedulers (scenario `models::scenarios::insert_sweep`).
//!
//! With touch-on-duplicate in place no schedule breaks the invariant; with it reverted (B4),
//! shuttle's random and PCT schedulers and loom must each find a schedule that does.

use models::explore::{Explorer, explore};
use models::scenarios::insert_sweep::{InsertSweep, VIOLATION};
use store::regressions::{Bug, Regressions};

/// Shuttle executions per check; loom explores exhaustively within its preemption bound.
const EXECUTIONS: usize = 1_000;

const EXPLORERS: [Explorer; 4] = [
    Explorer::Random,
    Explorer::Pct { depth: 2 },
    Explorer::Pct { depth: 3 },
    Explorer::Loom { preemption_bound: Some(2) },
];

fn check_passes(explorer: Explorer) {
    let exploration = explore(&InsertSweep::default(), explorer, 1, EXECUTIONS);
    assert!(exploration.failure.is_none(), "{explorer}: {:?}", exploration.failure);
    assert!(exploration.executions > 1, "{explorer} explored a single execution");
}

fn check_finds_b4(explorer: Explorer) {
    let scenario = InsertSweep { regressions: Regressions::none().with(Bug::B4DuplicateInsertNoTouch) };
    let exploration = explore(&scenario, explorer, 1, EXECUTIONS);
    let failure = exploration.failure.unwrap_or_else(|| {
        panic!("{explorer} missed B4 in {} executions", exploration.executions)
    });
    assert!(failure.message.contains(VIOLATION), "{explorer}: {}", failure.message);
}

#[test]
fn fixed_store_passes_every_explorer() {
    for explorer in EXPLORERS {
        check_passes(explorer);
    }
}

#[test]
fn every_explorer_finds_missing_touch() {
    for explorer in EXPLORERS {
        check_finds_b4(explorer);
    }
}
