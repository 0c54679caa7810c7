//! The exploration engine tested on itself: the canary, replay round trips, the determinism
//! check, counters, stack and step bounds, the knobs, and the sharded sweep.
//!
//! Stated budgets: every shuttle scheduler (random, PCT 2, PCT 3, URW) must catch the broken
//! canary within [`CANARY_BUDGET`] executions, and loom within its exhaustive exploration at
//! preemption bound 2.

use std::collections::BTreeMap;

use models::explore::{Budget, Explorer, Failure, Limits, Plan, shuttle_config};
use models::knobs::{KnobError, Knobs, LONG_FACTOR, Replay, Shard, shard_seed};
use models::scenario::Scenario;
use models::scenarios::canary::{self, Canary};
use models::scenarios::insert_sweep::{self, InsertSweep};
use models::scenarios::manifest_rmw::{self, ManifestRmw};
use models::scenarios::probes::{DeepStack, Leaky, Livelock};
use models::scenarios::{Expect, Visitor, visit_all};
use shuttle::MaxSteps;

/// Shuttle executions within which every shuttle scheduler must catch the broken canary.
const CANARY_BUDGET: usize = 100;

/// Shuttle executions per scheduler, per scenario and per sweep part in a default `cargo test`
/// (`EXPLORE_LONG=1` multiplies it by [`LONG_FACTOR`]).
const SWEEP_BUDGET: usize = 100;

/// Sweep parts: `sweep_part_<i>` tests, each with its own seed, to be split across machines.
const SWEEP_PARTS: u32 = 8;

/// A plan steered by the `EXPLORE_*` knobs, quiet (failures are printed by the assertion),
/// whose replay command is this very test.
pub(crate) fn env_plan(budget: Budget) -> Plan {
    let test = std::thread::current()
        .name()
        .unwrap_or("<test name>")
        .to_owned();
    Plan::new(budget)
        .quiet()
        .replay_command(format!("cargo test -p harness --test it {test} -- --exact"))
        .with_env()
        .unwrap_or_else(|err| panic!("{err}"))
}

/// A fixed plan (no knobs) saving failures in `dir`.
fn fixed_plan(budget: usize, dir: &tempfile::TempDir) -> Plan {
    Plan::new(Budget::executions(budget))
        .quiet()
        .failure_dir(dir.path())
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

#[test]
fn canary_with_its_lock_passes_every_explorer() {
    let dir = tempdir();
    let report = fixed_plan(CANARY_BUDGET, &dir).explore(&Canary::locked());
    report.assert_passed();
    assert_eq!(report.explorations.len(), 5, "{}", report.table());
    for exploration in &report.explorations {
        assert!(exploration.complete, "{}", report.table());
        // Either actor may win the claim: both outcome vectors show up, nothing else.
        assert_eq!(exploration.distinct_outcomes(), 2, "{}", report.table());
    }
}

#[test]
fn canary_without_its_lock_is_caught_by_every_explorer_within_budget() {
    let dir = tempdir();
    let report = fixed_plan(CANARY_BUDGET, &dir).explore(&Canary::unlocked());
    report.assert_caught(canary::VIOLATION);
    let caught: Vec<Explorer> = report.failures().map(|failure| failure.explorer).collect();
    assert_eq!(caught, Explorer::portfolio(Some(2)), "{}", report.table());
    for failure in report.failures() {
        if failure.explorer.is_shuttle() {
            assert!(failure.execution <= CANARY_BUDGET, "{failure}");
            assert!(failure.schedule.is_some(), "{failure}");
        } else {
            assert!(failure.loom_checkpoint.is_some(), "{failure}");
        }
        assert!(
            failure
                .record_file
                .as_ref()
                .is_some_and(|path| path.is_file()),
            "{failure}"
        );
    }
}

/// Replays `failure` from its record file and from its bare schedule: one execution each, the
/// same panic.
fn assert_replays(scenario: &impl Scenario, failure: &Failure) {
    let record = failure.record_file.as_ref().expect("the failure was saved");
    let from_file = Replay::parse(&record.display().to_string()).expect("the record parses");
    let mut replays = vec![from_file];
    if let Some(schedule) = &failure.schedule {
        replays.push(Replay::parse(schedule).expect("the schedule parses"));
    }
    for replay in replays {
        let plan = Plan {
            replay: Some(replay.clone()),
            ..Plan::new(Budget::executions(1)).quiet()
        };
        let report = plan.explore(scenario);
        assert_eq!(report.explorations.len(), 1);
        let exploration = &report.explorations[0];
        assert_eq!(exploration.explorer, Explorer::Replay);
        assert_eq!(exploration.executions, 1, "{replay:?}");
        let replayed = exploration
            .failure
            .as_ref()
            .unwrap_or_else(|| panic!("{replay:?} did not reproduce {failure}"));
        assert_eq!(replayed.message, failure.message, "{replay:?}");
    }
}

#[test]
fn shuttle_failures_replay_to_the_same_panic_in_one_execution() {
    let dir = tempdir();
    let plan = fixed_plan(CANARY_BUDGET, &dir).explorers(&Explorer::shuttle_portfolio());
    let report = plan.explore(&Canary::unlocked());
    assert_eq!(report.failures().count(), 4, "{}", report.table());
    for failure in report.failures() {
        assert_replays(&Canary::unlocked(), failure);
    }
    // The same with the real store: a reverted fix found under PCT.
    let plan = plan.explorers(&[Explorer::Pct { depth: 3 }]);
    let report = plan.explore(&InsertSweep::b4_reverted());
    report.assert_caught(insert_sweep::VIOLATION);
    for failure in report.failures() {
        assert_replays(&InsertSweep::b4_reverted(), failure);
    }
}

#[test]
fn random_failure_replays_from_its_execution_seed() {
    let dir = tempdir();
    let plan = fixed_plan(CANARY_BUDGET, &dir)
        .explorers(&[Explorer::Random])
        .seed(11);
    let report = plan.explore(&ManifestRmw::unlocked_writer());
    let failure = report
        .failures()
        .next()
        .expect("random finds the lost update");
    let seed = failure
        .execution_seed
        .expect("random reports the execution's seed");
    let again = Plan::new(Budget::executions(1))
        .quiet()
        .explorers(&[Explorer::Random])
        .seed(seed);
    let exploration = &again.explore(&ManifestRmw::unlocked_writer()).explorations[0];
    let replayed = exploration
        .failure
        .as_ref()
        .expect("the execution seed reproduces the failure");
    assert_eq!(
        (replayed.execution, &replayed.message),
        (1, &failure.message)
    );
}

#[test]
fn loom_failures_replay_from_their_checkpoint() {
    let dir = tempdir();
    let plan = fixed_plan(CANARY_BUDGET, &dir).explorers(&[Explorer::Loom {
        preemption_bound: Some(2),
    }]);
    for report in [
        plan.explore(&Canary::unlocked()),
        plan.explore(&ManifestRmw::unlocked_writer()),
    ] {
        let failure = report
            .failures()
            .next()
            .unwrap_or_else(|| panic!("{}", report.table()));
        assert!(
            failure
                .loom_checkpoint
                .as_ref()
                .is_some_and(|path| path.is_file()),
            "{failure}"
        );
        match report.scenario.as_str() {
            "canary/unlocked" => assert_replays(&Canary::unlocked(), failure),
            _ => {
                assert!(
                    failure.message.contains(manifest_rmw::LOST_UPDATE),
                    "{failure}"
                );
                assert_replays(&ManifestRmw::unlocked_writer(), failure);
            }
        }
    }
}

#[test]
fn a_replay_only_runs_the_scenario_it_was_recorded_for() {
    let dir = tempdir();
    let report = fixed_plan(CANARY_BUDGET, &dir)
        .explorers(&[Explorer::Random])
        .explore(&Canary::unlocked());
    let record = report
        .failures()
        .next()
        .and_then(|f| f.record_file.clone())
        .expect("a record");
    let replay = Replay::parse(&record.display().to_string()).expect("the record parses");
    let plan = Plan {
        replay: Some(replay),
        ..Plan::new(Budget::executions(1)).quiet()
    };
    let other = plan.explore(&Canary::locked());
    assert!(
        other
            .explorations
            .iter()
            .all(|e| e.skipped.is_some() && e.executions == 0)
    );
    other.assert_passed();
}

#[test]
fn unusable_replays_are_errors_not_crashes() {
    assert!(matches!(
        Replay::parse("not a schedule"),
        Err(KnobError::Invalid { .. })
    ));
    // Hex that shuttle cannot decode: a failed replay with a message, not a panic out of it.
    let plan = Plan {
        replay: Some(Replay::Schedule("00".into())),
        ..Plan::new(Budget::executions(1)).quiet()
    };
    let report = plan.explore(&Canary::locked());
    let failure = report
        .failures()
        .next()
        .expect("an undecodable schedule fails the replay");
    assert!(
        failure.message.contains("not a shuttle schedule"),
        "{failure}"
    );
    // A schedule of another scenario does not fit this one: the replay fails instead of passing.
    let dir = tempdir();
    let caught = fixed_plan(CANARY_BUDGET, &dir)
        .explorers(&[Explorer::Random])
        .explore(&InsertSweep::b4_reverted());
    let schedule = caught
        .failures()
        .next()
        .and_then(|f| f.schedule.clone())
        .expect("a schedule");
    let plan = Plan {
        replay: Some(Replay::Schedule(schedule)),
        ..Plan::new(Budget::executions(1)).quiet()
    };
    assert_eq!(plan.explore(&Canary::locked()).failures().count(), 1);
}

#[test]
fn failure_records_round_trip() {
    let failure = Failure {
        scenario: "canary/unlocked".into(),
        explorer: Explorer::Pct { depth: 3 },
        seed: 42,
        execution: 7,
        budget: 100,
        execution_seed: Some(u64::MAX),
        message: "two lines:\nsecond \\ line".into(),
        schedule: Some("9102ab".into()),
        loom_checkpoint: None,
        record_file: None,
        replay_command: None,
    };
    assert_eq!(
        Failure::from_record(&failure.to_record()).expect("parses"),
        failure
    );
    let loom = Failure {
        explorer: Explorer::Loom {
            preemption_bound: None,
        },
        schedule: None,
        loom_checkpoint: Some("/x.json".into()),
        ..failure.clone()
    };
    assert_eq!(
        Failure::from_record(&loom.to_record()).expect("parses"),
        loom
    );
    assert!(Failure::from_record("scenario: x\nexplorer: random\n").is_err());
    assert!(Failure::from_record(&failure.to_record().replace("seed: 42", "seed: many")).is_err());
    let printed = failure.to_string();
    for part in [
        "pct-3",
        "SEED=42",
        "schedule:   9102ab",
        "EXPLORE_SCHEDULER=pct-3 EXPLORE_SEED=42 EXPLORE_BUDGET=7",
        "EXPLORE_SEED=18446744073709551615",
    ] {
        assert!(printed.contains(part), "{part:?} missing from\n{printed}");
    }
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let plan = Plan::new(Budget::executions(60)).quiet();
    let canary = plan.check_determinism(&Canary::locked());
    assert!(canary.is_deterministic(), "{canary:?}");
    let sweep = plan.check_determinism(&InsertSweep::default());
    assert!(sweep.is_deterministic(), "{sweep:?}");
    let manifest = plan.check_determinism(&ManifestRmw::default());
    assert!(manifest.is_deterministic(), "{manifest:?}");
    assert_eq!(manifest.executions, 60);
    // The trace hash does depend on what ran: another seed, another trace.
    let other = plan
        .clone()
        .seed(2)
        .check_determinism(&ManifestRmw::default());
    assert!(other.is_deterministic(), "{other:?}");
    assert_ne!(other.first, manifest.first);
}

#[test]
fn uncontrolled_nondeterminism_is_detected() {
    let plan = Plan::new(Budget::executions(60)).quiet();
    let leaky = plan.check_determinism(&Leaky);
    assert!(!leaky.is_deterministic(), "{leaky:?}");
    let message = leaky.nondeterminism.expect("shuttle's checker notices");
    assert!(message.contains("nondeterminism"), "{message}");
    assert_ne!(leaky.first, leaky.second, "two runs of one seed differ");
}

#[test]
fn counters_count_executions_and_distinct_outcomes() {
    let plan = Plan::new(Budget::executions(150))
        .quiet()
        .explorers(&[Explorer::Random, Explorer::Pct { depth: 3 }]);
    let report = plan.explore(&ManifestRmw::default());
    report.assert_passed();
    for exploration in &report.explorations {
        assert_eq!(exploration.executions, 150);
        assert_eq!(exploration.outcomes.values().sum::<usize>(), 150);
        assert!(exploration.executions_per_second() > 0.0);
        // Under shuttle a contended manifest lock may time out: more than one outcome vector.
        assert!(exploration.distinct_outcomes() > 1, "{}", report.table());
        assert!(exploration.row().contains("150"), "{}", exploration.row());
    }
}

#[test]
fn stack_is_raised_and_steps_are_bounded() {
    let limits = Limits::default();
    let config = shuttle_config(&limits, None);
    assert!(config.stack_size >= 1 << 20, "stack {}", config.stack_size);
    assert!(matches!(config.max_steps, MaxSteps::FailAfter(steps) if steps == limits.max_steps));
    // Actors that need a quarter MiB of stack each (shuttle's own default is 60 KiB).
    Plan::new(Budget::executions(20))
        .quiet()
        .explore(&DeepStack)
        .assert_passed();
    // A spin loop nobody ends: the step bound fails the execution instead of hanging.
    let limits = Limits {
        max_steps: 2_000,
        loom_max_branches: 500,
        ..Limits::default()
    };
    let plan = Plan {
        limits,
        ..Plan::new(Budget::executions(5)).quiet()
    };
    let report = plan.explore(&Livelock);
    for exploration in &report.explorations {
        let failure = exploration
            .failure
            .as_ref()
            .unwrap_or_else(|| panic!("{}", report.table()));
        let bound = if exploration.explorer.is_shuttle() {
            "max_steps"
        } else {
            "maximum number of branches"
        };
        assert!(failure.message.contains(bound), "{failure}");
    }
}

#[test]
fn knobs_are_read_and_applied() {
    let vars: BTreeMap<&str, &str> = [
        ("EXPLORE_BUDGET", "7"),
        ("EXPLORE_TIME", "30"),
        ("EXPLORE_SEED", "99"),
        ("EXPLORE_SCHEDULER", "pct3,loom"),
        ("EXPLORE_LOOM_BOUND", "unbounded"),
        ("EXPLORE_SHARD", "2/3"),
        ("EXPLORE_FAILURE_DIR", "/tmp/failures"),
    ]
    .into_iter()
    .collect();
    let knobs =
        Knobs::from_vars(|name| vars.get(name).map(|v| v.to_string())).expect("valid knobs");
    let plan = knobs.apply(Plan::new(Budget::executions(1000)));
    assert_eq!(
        plan.explorers,
        [
            Explorer::Pct { depth: 3 },
            Explorer::Loom {
                preemption_bound: None
            }
        ]
    );
    assert_eq!(
        plan.budget,
        Budget::executions(7).with_time(std::time::Duration::from_secs(30))
    );
    assert_eq!(plan.seed, 99);
    assert_eq!(
        plan.failure_dir.as_deref(),
        Some(std::path::Path::new("/tmp/failures"))
    );
    assert_eq!(knobs.shard, Some(Shard { index: 2, count: 3 }));
    // Long sweeps multiply the test's own budget; no knobs leave a plan as it is.
    let long =
        Knobs::from_vars(|name| (name == "EXPLORE_LONG").then(|| "1".to_owned())).expect("valid");
    assert_eq!(
        long.apply(Plan::new(Budget::executions(10)))
            .budget
            .executions,
        10 * LONG_FACTOR
    );
    let none = Knobs::from_vars(|_| None)
        .expect("valid")
        .apply(Plan::new(Budget::executions(10)));
    assert_eq!(
        (none.budget.executions, none.seed, none.explorers.len()),
        (10, 1, 5)
    );
    // loom's own variable is honoured when ours is unset.
    let loom = Knobs::from_vars(|name| (name == "LOOM_MAX_PREEMPTIONS").then(|| "3".to_owned()))
        .expect("valid");
    assert_eq!(loom.loom_bound, Some(Some(3)));
    for (name, value) in [
        ("EXPLORE_BUDGET", "lots"),
        ("EXPLORE_BUDGET", "0"),
        ("EXPLORE_SCHEDULER", "fastest"),
        ("EXPLORE_LOOM_BOUND", "-1"),
        ("EXPLORE_LONG", "maybe"),
        ("EXPLORE_SHARD", "4/3"),
        ("EXPLORE_REPLAY", "no such thing"),
    ] {
        let result = Knobs::from_vars(|asked| (asked == name).then(|| value.to_owned()));
        assert!(
            matches!(result, Err(KnobError::Invalid { .. })),
            "{name}={value}: {result:?}"
        );
    }
}

#[test]
fn shards_split_the_sweep_and_own_their_seeds() {
    assert_eq!(Shard::parse("1/4"), Some(Shard { index: 1, count: 4 }));
    assert_eq!(Shard::parse("0/4"), None);
    let shards: Vec<Shard> = (1..=3).map(|index| Shard { index, count: 3 }).collect();
    for part in 0..12 {
        assert_eq!(
            shards.iter().filter(|shard| shard.selects(part)).count(),
            1,
            "part {part}"
        );
    }
    let seeds: std::collections::BTreeSet<u64> =
        (0..1000).map(|part| shard_seed(1, part)).collect();
    assert_eq!(seeds.len(), 1000);
    // A part's seed is part of the interface (it names the runs a failure record came from).
    assert_eq!(shard_seed(1, 0), shard_seed(1, 0));
    assert_ne!(shard_seed(1, 0), shard_seed(2, 0));
}

/// One part of the sweep: every must-pass scenario of the catalogue (known issues included,
/// reported but not failing the test) under the shuttle portfolio, seeded by the part. Loom is deterministic, so it runs in part 0 only (when
/// `EXPLORE_SCHEDULER` asks for it; the kernels' own tests run it anyway).
fn sweep(part: u32) {
    let knobs = Knobs::from_env().unwrap_or_else(|err| panic!("{err}"));
    if knobs.shard.is_some_and(|shard| !shard.selects(part)) {
        eprintln!("sweep part {part} is not in shard {:?}", knobs.shard);
        return;
    }
    let mut plan = env_plan(Budget::executions(SWEEP_BUDGET));
    plan.seed = shard_seed(plan.seed, part);
    if knobs.explorers.is_none() {
        plan.explorers = Explorer::shuttle_portfolio();
    }
    if part > 0 {
        plan.explorers.retain(Explorer::is_shuttle);
    }
    struct Sweep(Plan, Vec<String>);
    impl Visitor for Sweep {
        fn visit<Sc: Scenario>(&mut self, scenario: &Sc, expect: Expect) {
            if !expect.accepts_pass() {
                return;
            }
            let report = self.0.explore(scenario);
            eprintln!("{}", report.table());
            for failure in report.failures() {
                match expect {
                    Expect::KnownIssue { note, .. } if expect.accepts_failure(&failure.message) => {
                        eprintln!("known issue found again ({note}):\n{failure}");
                    }
                    _ => self.1.push(failure.to_string()),
                }
            }
        }
    }
    let mut sweep = Sweep(plan, Vec::new());
    visit_all(&mut sweep);
    assert!(sweep.1.is_empty(), "{}", sweep.1.join("\n"));
}

macro_rules! sweep_parts {
    ($($name:ident = $part:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                sweep($part);
            }
        )*
        const _: () = assert!([$($part),*].len() as u32 == SWEEP_PARTS);
    };
}

sweep_parts!(
    sweep_part_0 = 0,
    sweep_part_1 = 1,
    sweep_part_2 = 2,
    sweep_part_3 = 3,
    sweep_part_4 = 4,
    sweep_part_5 = 5,
    sweep_part_6 = 6,
    sweep_part_7 = 7,
);
