//! The oracle: does some serial order of the observed operations, consistent with their
//! real-time order, give every observed result and the observed final state under the
//! reference model ([`super::model`])?
//!
//! Each operation is observed with the ticks of its start and end (a shared counter, read
//! before the operation's first store call and after its last). `a` precedes `b` in real time
//! when `a` ended before `b` started; a serial order must keep that, and each actor's program
//! order. The search is a depth-first walk over such orders; at each step the next operation's
//! observed result must be the model's result, or a contention outcome that a conflicting
//! operation overlapping it in real time explains (it then has no effect, except a prune's
//! partial removals). A prune is one event for its listing and one per snapshot it tries to
//! remove ([`super::observe::Phase`]), so other operations may come between them. A contention
//! outcome with no such overlapping operation fails at once (liveness).

use super::case::Op;
use super::model::{self, Exists, Model, results};
use super::observe::{Final, Observed, Phase};

/// How many search nodes the oracle visits before giving up (a give-up is a failure: it says
/// so, never passes silently).
pub const NODE_LIMIT: usize = 200_000;

/// Checks the observed operations and final state; `Err` says why no serial order fits.
pub fn check(initial: &Model, ops: &[Observed], actors: usize, end: &Final) -> Result<(), String> {
    liveness(ops)?;
    let mut search = Search {
        ops,
        end,
        nodes: 0,
        deepest: (0, String::from("no operation")),
    };
    let mut next = vec![0usize; actors];
    let mut order = Vec::new();
    if search.walk(initial.clone(), &mut next, &mut order) {
        return Ok(());
    }
    if search.nodes >= NODE_LIMIT {
        return Err(format!("oracle gave up after {NODE_LIMIT} nodes"));
    }
    Err(format!(
        "no serial order consistent with real time explains the execution; longest order: {}",
        search.deepest.1
    ))
}

/// A contention outcome needs an overlapping conflicting operation.
fn liveness(ops: &[Observed]) -> Result<(), String> {
    for op in ops.iter().filter(|op| model::is_contention(&op.result)) {
        if !excused(ops, op) {
            return Err(format!(
                "liveness: {} ended `{}` with no overlapping conflicting operation",
                op.label(),
                op.result
            ));
        }
    }
    Ok(())
}

fn excused(ops: &[Observed], op: &Observed) -> bool {
    ops.iter().any(|other| {
        other.actor != op.actor && other.overlaps(op) && model::conflicts(&other.op, &op.op)
    })
}

struct Search<'a> {
    ops: &'a [Observed],
    end: &'a Final,
    nodes: usize,
    deepest: (usize, String),
}

impl Search<'_> {
    fn walk(&mut self, model: Model, next: &mut Vec<usize>, order: &mut Vec<usize>) -> bool {
        self.nodes += 1;
        if self.nodes >= NODE_LIMIT {
            return false;
        }
        if order.len() == self.ops.len() {
            return match self.end.matches(&model) {
                Ok(()) => true,
                Err(why) => {
                    self.note(order, &format!("final state: {why}"));
                    false
                }
            };
        }
        for actor in 0..next.len() {
            let Some(index) = self.position(actor, next[actor]) else {
                continue;
            };
            let op = &self.ops[index];
            let blocked = self
                .ops
                .iter()
                .enumerate()
                .any(|(i, other)| !order.contains(&i) && i != index && other.end < op.start);
            if blocked {
                continue;
            }
            let Some(after) = self.step(&model, op) else {
                let mut expected = model.result(&op.op).to_owned();
                if let Op::Prune { group, keep_last } = &op.op {
                    let set = model.prune_set(*group, *keep_last);
                    expected = format!(
                        "{expected}` removing {set:?}; the store's event was on {:?}`",
                        op.snapshots
                    );
                }
                self.note(
                    order,
                    &format!("{} ended `{}`, model: `{expected}`", op.label(), op.result),
                );
                continue;
            };
            next[actor] += 1;
            order.push(index);
            if self.walk(after, next, order) {
                return true;
            }
            order.pop();
            next[actor] -= 1;
        }
        false
    }

    /// The operation of `actor` at program position `position`.
    fn position(&self, actor: usize, position: usize) -> Option<usize> {
        self.ops
            .iter()
            .position(|op| op.actor == actor && op.step == position)
    }

    /// The model after `op`, if its observed result fits the model here.
    fn step(&self, model: &Model, op: &Observed) -> Option<Model> {
        let mut after = model.clone();
        let expected = model.result(&op.op);
        let result = op.result.as_str();
        match &op.op {
            Op::Prune { group, keep_last }
                if op.phase == Phase::PruneList && result == results::OK =>
            {
                let set = model.prune_set(*group, *keep_last);
                // A snapshot the model would remove that the store did not even try: only a
                // forget, prune or protect overlapping in time (that took it first, later in
                // this order) explains that.
                let untried = set.iter().any(|time| !op.snapshots.contains(time));
                if untried && !self.overlapping_remover(op, *group) {
                    return None;
                }
                after.decided.insert(op.actor, set);
            }
            Op::Prune { group, .. } if op.phase == Phase::PruneRemove => {
                let time = *op.snapshots.first()?;
                let there = model.groups[*group].snapshots.get(&time);
                match result {
                    results::OK => {
                        let decided = after.decided.get(&op.actor)?;
                        if !decided.contains(&time) || !after.removable(*group, time) {
                            return None;
                        }
                        after.remove(*group, time);
                    }
                    // Forgotten, or protected, by an operation that came first in this order.
                    results::NOT_FOUND if there.is_none() => {}
                    results::PROTECTED if there.is_some_and(|snap| snap.protected) => {}
                    // Excused by `liveness`: no effect.
                    _ if model::is_contention(result) => {}
                    _ => return None,
                }
            }
            Op::Owner { group }
                if result == results::GROUP_NOT_FOUND
                    && model.groups[*group].exists == Exists::Maybe =>
            {
                after.apply(&op.op, result, &[]);
            }
            // The known issue of `results::GROUP_VANISHED`, succeeding: the group directory a
            // first backup made (and then failed to remove again) takes the owner.
            Op::Owner { group }
                if result == results::OK
                    && model.groups[*group].exists == Exists::No
                    && self.overlapping_backup(op, *group) =>
            {
                after.apply(&op.op, result, &[]);
            }
            _ if result == expected => after.apply(&op.op, result, &[]),
            // Excused by `liveness`: no effect.
            _ if model::is_contention(result) => {}
            _ => return None,
        }
        // The owner op's first call sets the owner only: its group notes are the second's.
        if let (Op::Owner { group }, Phase::OwnerSet) = (&op.op, op.phase) {
            after.groups[*group].notes = model.groups[*group].notes.clone();
        }
        Some(after)
    }

    fn overlapping_remover(&self, op: &Observed, group: usize) -> bool {
        self.ops.iter().any(|other| {
            other.actor != op.actor
                && other.overlaps(op)
                && matches!(
                    other.op,
                    Op::Forget { group: g, .. } | Op::Prune { group: g, .. } | Op::Protect { group: g, .. }
                        if g == group
                )
        })
    }

    fn overlapping_backup(&self, op: &Observed, group: usize) -> bool {
        self.ops.iter().any(|other| {
            matches!(other.op, Op::Backup { group: g, .. } if g == group) && other.overlaps(op)
        })
    }

    fn note(&mut self, order: &[usize], why: &str) {
        if order.len() >= self.deepest.0 {
            let labels: Vec<String> = order.iter().map(|i| self.ops[*i].label()).collect();
            self.deepest = (order.len(), format!("[{}] then {why}", labels.join(", ")));
        }
    }
}
