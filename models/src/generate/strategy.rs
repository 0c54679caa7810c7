//! The proptest strategies that draw a [`Case`], and the deterministic draw from a seed.
//!
//! Raw draws name groups and snapshots by small indexes; [`resolve`] turns them into a case
//! with absolute times and existing groups, so every reference points at something the case
//! can have: a planted snapshot, or the snapshot of one of the case's backups (which may not
//! exist yet, or any more, when the operation runs). A quarter of the backups take such a
//! time too (a re-created snapshot, or two backups of one time).

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::case::{
    ActorSpec, Archive, CHUNK_POOL, CUTOFF, Case, DAY, Group, Op, Planted, Step, T0,
};

/// Ages of planted snapshots (seconds before [`T0`]): at the GC cutoff, one second either
/// side of it, and well inside and outside it.
pub const AGES: &[i64] = &[CUTOFF - 1, CUTOFF, CUTOFF + 1, 3600, 2 * DAY, 10 * DAY];

/// Clock moves between steps: none, seconds, exactly one cutoff, days.
pub const ADVANCES: &[i64] = &[0, 0, 1, 60, 3600, CUTOFF, CUTOFF + 1, 2 * DAY];

/// GC cutoffs: the store's minimum (one minute), one hour, the default, two days.
pub const GC_CUTOFFS: &[i64] = &[60, 3600, CUTOFF, 2 * DAY];

/// How large a case may get.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Most actors (2 to 4).
    pub max_actors: usize,
    /// Most steps per actor (1 to 3).
    pub max_steps: usize,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            max_actors: 4,
            max_steps: 3,
        }
    }
}

fn archive() -> impl Strategy<Value = Archive> {
    (any::<bool>(), vec(0..CHUNK_POOL, 1..=3)).prop_map(|(fixed, chunks)| Archive { fixed, chunks })
}

fn planted() -> impl Strategy<Value = (usize, Vec<Archive>, bool, bool)> {
    (
        0..AGES.len(),
        vec(archive(), 1..=3),
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.3),
    )
}

fn group() -> impl Strategy<Value = Group> {
    (
        vec(planted(), 0..=3),
        prop::bool::weighted(0.25),
        any::<bool>(),
    )
        .prop_map(|(snaps, unfinished, notes)| {
            // Oldest first, one snapshot per age.
            let mut ages: Vec<(usize, Vec<Archive>, bool, bool)> = snaps;
            ages.sort_by_key(|(age, ..)| std::cmp::Reverse(AGES[*age]));
            ages.dedup_by_key(|(age, ..)| *age);
            let snapshots = ages
                .into_iter()
                .map(|(age, archives, protected, notes)| Planted {
                    time: T0 - AGES[age],
                    archives,
                    protected,
                    notes,
                })
                .collect();
            Group {
                snapshots,
                unfinished: unfinished.then_some(T0 - 30),
                notes,
            }
        })
}

/// An operation before resolution: kind, group index, target index, argument.
type RawOp = (u8, usize, usize, usize, Vec<Archive>);

fn raw_op() -> impl Strategy<Value = RawOp> {
    (
        0u8..9,
        0usize..3,
        0usize..8,
        0usize..4,
        vec(archive(), 1..=3),
    )
}

fn actor(max_steps: usize) -> impl Strategy<Value = (usize, Vec<(usize, RawOp)>)> {
    (0usize..2, vec((0..ADVANCES.len(), raw_op()), 1..=max_steps))
}

/// The strategy of a whole case of at most `shape`.
pub fn case(shape: Shape) -> impl Strategy<Value = Case> {
    (
        1usize..=2,
        vec(group(), 1..=3),
        vec(actor(shape.max_steps), 2..=shape.max_actors),
    )
        .prop_map(|(processes, groups, actors)| resolve(processes, groups, actors))
}

/// Turns raw draws into a case: group indexes modulo the groups, backup times unique and
/// after every planted snapshot, snapshot targets among the group's planted and backup times.
fn resolve(
    processes: usize,
    groups: Vec<Group>,
    actors: Vec<(usize, Vec<(usize, RawOp)>)>,
) -> Case {
    let n = groups.len();
    let mut backup_times: Vec<Vec<i64>> = vec![Vec::new(); n];
    let mut next_time = T0 + 60;
    for (_, steps) in &actors {
        for (_, (kind, group, ..)) in steps {
            if *kind == 0 {
                backup_times[group % n].push(next_time);
            }
            next_time += 60;
        }
    }
    let mut next_time = T0 + 60;
    let actors = actors
        .into_iter()
        .map(|(process, steps)| ActorSpec {
            process: process % processes,
            steps: steps
                .into_iter()
                .map(|(advance, (kind, group, target, arg, archives))| {
                    let group = group % n;
                    let mut targets: Vec<i64> =
                        groups[group].snapshots.iter().map(|s| s.time).collect();
                    targets.extend(&backup_times[group]);
                    // No snapshot to name: a time nothing has (the operation finds nothing).
                    let time = targets.get(target % targets.len().max(1)).copied();
                    let time = time.unwrap_or(T0 + 59);
                    let op = match kind {
                        // One backup in four re-uses a time the case has: a planted snapshot's
                        // (refused unless somebody forgot or pruned it first: a re-created
                        // snapshot, as sync jobs and `--time` make) or another backup's (two
                        // backups of one time).
                        0 if arg == 3 && !targets.is_empty() => Op::Backup {
                            group,
                            time: targets[target % targets.len()],
                            archives,
                        },
                        0 => Op::Backup {
                            group,
                            time: next_time,
                            archives,
                        },
                        1 => Op::Reader { group, time },
                        2 => Op::Gc {
                            cutoff: GC_CUTOFFS[arg],
                        },
                        3 => Op::Forget { group, time },
                        4 => Op::Prune {
                            group,
                            keep_last: arg as u32,
                        },
                        5 => Op::Verify { group, time },
                        6 => Op::Notes { group, time },
                        7 => Op::Protect {
                            group,
                            time,
                            on: arg % 2 == 0,
                        },
                        _ => Op::Owner { group },
                    };
                    next_time += 60;
                    Step {
                        advance: ADVANCES[advance],
                        op,
                    }
                })
                .collect(),
        })
        .collect();
    Case {
        processes,
        groups,
        actors,
    }
}

/// The `index`-th case of the generator seeded with `seed`: the same pair always gives the
/// same case.
pub fn draw(seed: u64, index: u64, shape: Shape) -> Case {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&index.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    case(shape)
        .new_tree(&mut runner)
        .map(|tree| tree.current())
        .unwrap_or_else(|_| Case {
            processes: 1,
            groups: Vec::new(),
            actors: Vec::new(),
        })
}
