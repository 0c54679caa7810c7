//! The explorers: which scheduler (or model checker) explores a scenario's interleavings, and
//! their names as the knobs, failure records and reports spell them.

use std::fmt;
use std::str::FromStr;

/// Which scheduler explores the interleavings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Explorer {
    /// shuttle's uniformly random scheduler.
    Random,
    /// shuttle's PCT scheduler with this bug depth.
    Pct {
        /// Bug depth `d` (d − 1 priority change points).
        depth: usize,
    },
    /// shuttle's uniform-random-walk scheduler (uniform over interleavings).
    Urw,
    /// loom's exhaustive exploration, with an optional preemption bound.
    Loom {
        /// `None` explores without a bound.
        preemption_bound: Option<usize>,
    },
    /// One execution replaying a recorded failure (shuttle schedule or loom checkpoint).
    Replay,
}

impl Explorer {
    /// Loom's preemption bound when none is asked for.
    pub const DEFAULT_LOOM_BOUND: usize = 2;

    /// The portfolio: random, PCT depth 2 and 3, URW, and loom with `loom_bound`.
    pub fn portfolio(loom_bound: Option<usize>) -> Vec<Explorer> {
        let mut explorers = Explorer::shuttle_portfolio();
        explorers.push(Explorer::Loom {
            preemption_bound: loom_bound,
        });
        explorers
    }

    /// The shuttle part of the portfolio: random, PCT depth 2 and 3, URW.
    pub fn shuttle_portfolio() -> Vec<Explorer> {
        vec![
            Explorer::Random,
            Explorer::Pct { depth: 2 },
            Explorer::Pct { depth: 3 },
            Explorer::Urw,
        ]
    }

    /// Is this one of shuttle's schedulers?
    pub fn is_shuttle(&self) -> bool {
        matches!(
            self,
            Explorer::Random | Explorer::Pct { .. } | Explorer::Urw
        )
    }
}

impl fmt::Display for Explorer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Explorer::Random => write!(f, "random"),
            Explorer::Pct { depth } => write!(f, "pct-{depth}"),
            Explorer::Urw => write!(f, "urw"),
            Explorer::Loom {
                preemption_bound: Some(bound),
            } => write!(f, "loom-pb{bound}"),
            Explorer::Loom {
                preemption_bound: None,
            } => write!(f, "loom-unbounded"),
            Explorer::Replay => write!(f, "replay"),
        }
    }
}

/// An explorer name that is not one of `random`, `pct<N>`, `urw`, `loom`, `loom-pb<N>`,
/// `loom-unbounded`, `replay`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown explorer {0:?} (random, pct2, pct3, urw, loom, loom-pb<N>, loom-unbounded)")]
pub struct UnknownExplorer(pub String);

impl FromStr for Explorer {
    type Err = UnknownExplorer;

    /// Parses the printed form (`pct-3`, `loom-pb2`) and the short one (`pct3`, `loom`: loom with
    /// the default bound).
    fn from_str(text: &str) -> Result<Explorer, UnknownExplorer> {
        let unknown = || UnknownExplorer(text.to_owned());
        let lower = text.trim().to_ascii_lowercase();
        let number = |digits: &str| digits.parse::<usize>().ok().filter(|n| *n > 0);
        Ok(match lower.as_str() {
            "random" => Explorer::Random,
            "urw" => Explorer::Urw,
            "replay" => Explorer::Replay,
            "loom" => Explorer::Loom {
                preemption_bound: Some(Explorer::DEFAULT_LOOM_BOUND),
            },
            "loom-unbounded" => Explorer::Loom {
                preemption_bound: None,
            },
            other => {
                if let Some(depth) = other.strip_prefix("pct") {
                    let depth = number(depth.trim_start_matches('-')).ok_or_else(unknown)?;
                    Explorer::Pct { depth }
                } else if let Some(bound) = other.strip_prefix("loom-pb") {
                    let bound = bound.parse::<usize>().map_err(|_| unknown())?;
                    Explorer::Loom {
                        preemption_bound: Some(bound),
                    }
                } else {
                    return Err(unknown());
                }
            }
        })
    }
}
