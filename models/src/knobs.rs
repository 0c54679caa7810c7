//! The environment variables that steer explorations.
//!
//! | variable | values | effect |
//! |---|---|---|
//! | `EXPLORE_BUDGET` | executions | shuttle executions per explorer (overrides the test's own) |
//! | `EXPLORE_TIME` | seconds | wall time per explorer, on top of the execution budget |
//! | `EXPLORE_SEED` | u64 | seed of every shuttle run |
//! | `EXPLORE_SCHEDULER` | `random`, `pct2`, `pct3`, `urw`, `loom`, `shuttle`, `all` (comma list) | which explorers run |
//! | `EXPLORE_LOOM_BOUND` | N or `unbounded` | loom's preemption bound (default 2; `LOOM_MAX_PREEMPTIONS` is read if this is unset) |
//! | `EXPLORE_LONG` | `1` | long sweeps: the execution budget times [`LONG_FACTOR`] |
//! | `EXPLORE_REPLAY` | record file, loom checkpoint (`.json`) or schedule string | replay one failure instead of exploring |
//! | `EXPLORE_SHARD` | `k/n` | run only the sweep shards `i` with `i mod n = k - 1` |
//! | `EXPLORE_FAILURE_DIR` | directory | where failure records go (default `<target dir>/explore-failures`) |
//!
//! Knobs only ever apply to plans that ask for them ([`Plan::with_env`]): the harness's own
//! tests (canaries, replay round trips) run fixed plans whatever the environment says.

use std::path::PathBuf;
use std::time::Duration;

use crate::explore::{Explorer, Plan};

pub use crate::failure::{KnobError, Replay};

/// How much longer long sweeps (`EXPLORE_LONG=1`) run than the default budget.
pub const LONG_FACTOR: usize = 1_000;

/// One shard of a sweep split over `count` machines or processes: shard `index` of `count`
/// (1-based, like nextest's `--partition count:k/n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, from 1.
    pub index: u32,
    /// How many shards.
    pub count: u32,
}

impl Shard {
    /// Parses `k/n` with `1 <= k <= n`.
    pub fn parse(text: &str) -> Option<Shard> {
        let (index, count) = text.trim().split_once('/')?;
        let (index, count) = (index.trim().parse().ok()?, count.trim().parse().ok()?);
        (1..=count)
            .contains(&index)
            .then_some(Shard { index, count })
    }

    /// Does this shard run the sweep part numbered `part` (from 0)?
    pub fn selects(&self, part: u32) -> bool {
        part % self.count == self.index - 1
    }
}

/// The seed of sweep part `part` of a sweep seeded with `base` (SplitMix64 of both, so parts
/// never share seeds and a part's seed never changes).
pub fn shard_seed(base: u64, part: u32) -> u64 {
    let mut z = base ^ u64::from(part).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The knobs, as read from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Knobs {
    /// `EXPLORE_BUDGET`.
    pub budget: Option<usize>,
    /// `EXPLORE_TIME`.
    pub time: Option<Duration>,
    /// `EXPLORE_SEED`.
    pub seed: Option<u64>,
    /// `EXPLORE_SCHEDULER`.
    pub explorers: Option<Vec<Explorer>>,
    /// `EXPLORE_LOOM_BOUND` (or `LOOM_MAX_PREEMPTIONS`): `Some(None)` is unbounded.
    pub loom_bound: Option<Option<usize>>,
    /// `EXPLORE_LONG`.
    pub long: bool,
    /// `EXPLORE_REPLAY`.
    pub replay: Option<Replay>,
    /// `EXPLORE_SHARD`.
    pub shard: Option<Shard>,
    /// `EXPLORE_FAILURE_DIR`.
    pub failure_dir: Option<PathBuf>,
}

impl Knobs {
    /// Reads the process environment.
    pub fn from_env() -> Result<Knobs, KnobError> {
        Knobs::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the knobs through `get` (a variable's value, `None` if unset).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Knobs, KnobError> {
        let var = |name: &str| get(name).filter(|value| !value.trim().is_empty());
        let invalid = |name: &'static str, value: &str, reason: &str| KnobError::Invalid {
            name,
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let number = |name: &'static str| -> Result<Option<u64>, KnobError> {
            var(name)
                .map(|value| {
                    value
                        .trim()
                        .parse::<u64>()
                        .map_err(|_| invalid(name, &value, "not a number"))
                })
                .transpose()
        };
        let budget = number("EXPLORE_BUDGET")?.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        if budget == Some(0) {
            return Err(invalid("EXPLORE_BUDGET", "0", "at least one execution"));
        }
        let time = number("EXPLORE_TIME")?.map(Duration::from_secs);
        let seed = number("EXPLORE_SEED")?;
        let loom_bound = match var("EXPLORE_LOOM_BOUND")
            .map(|value| ("EXPLORE_LOOM_BOUND", value))
            .or_else(|| var("LOOM_MAX_PREEMPTIONS").map(|value| ("LOOM_MAX_PREEMPTIONS", value)))
        {
            None => None,
            Some((_, value)) if matches!(value.trim(), "unbounded" | "none") => Some(None),
            Some((name, value)) => match value.trim().parse::<usize>() {
                Ok(bound) => Some(Some(bound)),
                Err(_) => return Err(invalid(name, &value, "a number or `unbounded`")),
            },
        };
        let explorers = var("EXPLORE_SCHEDULER")
            .map(|value| parse_explorers(&value))
            .transpose()?;
        let long = match var("EXPLORE_LONG") {
            None => false,
            Some(value) => match value.trim() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" => false,
                _ => return Err(invalid("EXPLORE_LONG", &value, "1 or 0")),
            },
        };
        let replay = var("EXPLORE_REPLAY")
            .map(|value| Replay::parse(&value))
            .transpose()?;
        let shard = var("EXPLORE_SHARD")
            .map(|value| {
                Shard::parse(&value)
                    .ok_or_else(|| invalid("EXPLORE_SHARD", &value, "k/n with 1 <= k <= n"))
            })
            .transpose()?;
        let failure_dir = var("EXPLORE_FAILURE_DIR").map(PathBuf::from);
        Ok(Knobs {
            budget,
            time,
            seed,
            explorers,
            loom_bound,
            long,
            replay,
            shard,
            failure_dir,
        })
    }

    /// `plan` adjusted by these knobs. A plan without a failure directory gets the default one
    /// (see [`default_failure_dir`]).
    pub fn apply(&self, mut plan: Plan) -> Plan {
        if let Some(explorers) = &self.explorers {
            plan.explorers = explorers.clone();
        }
        if let Some(bound) = self.loom_bound {
            for explorer in &mut plan.explorers {
                if let Explorer::Loom { preemption_bound } = explorer {
                    *preemption_bound = bound;
                }
            }
        }
        if self.long {
            plan.budget.executions = plan.budget.executions.saturating_mul(LONG_FACTOR);
        }
        if let Some(executions) = self.budget {
            plan.budget.executions = executions;
        }
        if let Some(time) = self.time {
            plan.budget.time = Some(time);
        }
        if let Some(seed) = self.seed {
            plan.seed = seed;
        }
        if let Some(replay) = &self.replay {
            plan.replay = Some(replay.clone());
        }
        plan.failure_dir = self
            .failure_dir
            .clone()
            .or(plan.failure_dir)
            .or_else(default_failure_dir);
        plan
    }
}

fn parse_explorers(value: &str) -> Result<Vec<Explorer>, KnobError> {
    let mut explorers = Vec::new();
    for name in value
        .split([',', ' '])
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        match name.to_ascii_lowercase().as_str() {
            "all" => explorers.extend(Explorer::portfolio(Some(Explorer::DEFAULT_LOOM_BOUND))),
            "shuttle" => explorers.extend(Explorer::shuttle_portfolio()),
            _ => explorers.push(
                name.parse()
                    .map_err(|err: crate::explore::UnknownExplorer| KnobError::Invalid {
                        name: "EXPLORE_SCHEDULER",
                        value: value.to_owned(),
                        reason: err.to_string(),
                    })?,
            ),
        }
    }
    explorers.dedup();
    if explorers.is_empty() {
        return Err(KnobError::Invalid {
            name: "EXPLORE_SCHEDULER",
            value: value.to_owned(),
            reason: "no explorer named".to_owned(),
        });
    }
    Ok(explorers)
}

/// `<target dir>/explore-failures`, the target directory being the nearest ancestor of the
/// running executable that holds cargo's `CACHEDIR.TAG`; `None` outside a cargo target dir.
pub fn default_failure_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(|target| target.join("explore-failures"))
}

impl Plan {
    /// This plan adjusted by the `EXPLORE_*` environment variables (see [`Knobs`]).
    pub fn with_env(self) -> Result<Plan, KnobError> {
        Ok(Knobs::from_env()?.apply(self))
    }
}
