//! The sequential reference model of the datastore: what each operation does when it runs
//! alone. It never calls store code; every rule of the model is in this file.
//!
//! # The rules
//!
//! State: per group whether it exists (yes, no, or maybe: emptied by a forget or prune, whose
//! removal of the empty group is skipped when someone holds the group lock), its notes (or
//! unknown), and its snapshots by time: finished or not, protected, notes, verify state, and
//! the archives with their chunk ids.
//!
//! | operation | result alone | effect |
//! |---|---|---|
//! | backup `t` | `not-newer` if a finished snapshot of the group is at `t` or later; else `ok` | a finished snapshot at `t` with its archives; the group exists (notes unknown if it was new) |
//! | reader `t` | `not-found` unless a finished snapshot is at `t`; else `ok` (every chunk read) | none |
//! | GC | `ok` | none visible (every chunk of a finished snapshot stays loadable) |
//! | forget `t` | `not-found` if no snapshot; `protected`; else `ok` | removed; an emptied group: maybe removed |
//! | prune keep-last `n` | `ok`, removing exactly the set below | as forget, for each |
//! | verify `t` | `not-found` unless finished; else `ok` | verify state `ok` |
//! | notes `t` | `not-found` unless finished; else `ok` | snapshot notes set |
//! | protect `t` on/off | `not-found` unless finished; else `ok` | protection set |
//! | owner | `group-not-found` if the group is gone (either, if maybe); else `ok` | group notes set; the group exists, or not after `group-not-found` |
//!
//! The owner operation is two store calls, judged as two events with the rule above each: the
//! owner (the group exists after `ok`) and then, if that succeeded, the group notes. A busy
//! notes call leaves the owner set.
//!
//! Prune is several steps: its listing decides the set below from the state it sees; then each
//! snapshot the store decided to remove is one step of its own, in the store's order (oldest
//! first), which removes it if it is still there and not protected; one that somebody else
//! forgot or protected meanwhile ends `not-found` or `protected` (no effect), one whose lock is
//! held ends `busy`.
//!
//! Prune's set, newest first: unfinished snapshots newer than the newest finished one are
//! kept, older unfinished ones removed; protected snapshots are kept and use no slot; the first
//! `n` other finished ones are kept, the rest removed; `n = 0` keeps everything.
//!
//! # Conflicts
//!
//! Two operations conflict when one can make the other fail busy (or time out, lose its base,
//! or find the snapshot a running backup is writing without its manifest) while both run; [`conflicts`] is the table. Only a conflicting operation that overlaps
//! in real time excuses such an outcome.

use std::collections::BTreeMap;

use super::case::{Archive, Case, Op, T0};

/// The result classes an operation can end with.
pub mod results {
    /// Success.
    pub const OK: &str = "ok";
    /// A lock held by somebody else (busy, timed out).
    pub const BUSY: &str = "busy";
    /// The snapshot is not there (or not finished).
    pub const NOT_FOUND: &str = "not-found";
    /// A backup not newer than the newest finished snapshot.
    pub const NOT_NEWER: &str = "not-newer";
    /// Forget of a protected snapshot.
    pub const PROTECTED: &str = "protected";
    /// The group is gone.
    pub const GROUP_NOT_FOUND: &str = "group-not-found";
    /// A backup whose base vanished while it started (contention with a forget or prune).
    pub const BASE_VANISHED: &str = "base-vanished";
    /// A verify whose state could not be saved (the manifest lock was busy).
    pub const STATE_NOT_SAVED: &str = "state-not-saved";
    /// The snapshot was there without its manifest: a backup was writing it.
    pub const UNFINISHED: &str = "unfinished";
    /// Known issue, found by this generator: setting a group's owner or notes fails with an
    /// I/O error ("no such file"), not [`store::datastore::Error::GroupNotFound`], when a
    /// first backup of the group that lost the group lock to it removes the directory it had
    /// just made (without the lock, by design). Counted as contention: allowed only with an
    /// overlapping backup of the group. Its other face: when the directory is not removed yet,
    /// the owner is set on a group no backup made, which stays without snapshots; the oracle
    /// allows that `ok` too, only with an overlapping backup of the group.
    pub const GROUP_VANISHED: &str = "group-vanished";
}

/// Is `result` a contention outcome, allowed only with an overlapping conflicting operation?
pub fn is_contention(result: &str) -> bool {
    use results::*;
    [
        BUSY,
        BASE_VANISHED,
        STATE_NOT_SAVED,
        UNFINISHED,
        GROUP_VANISHED,
    ]
    .contains(&result)
}

/// Can `a` and `b` make each other fail with a contention outcome while both run?
pub fn conflicts(a: &Op, b: &Op) -> bool {
    use Op::*;
    match (a, b) {
        // One GC at a time; a backup session and GC meet at the process locker (another
        // process) and at the GC mutex.
        (Gc { .. }, Gc { .. }) => true,
        (Gc { .. }, Backup { .. }) | (Backup { .. }, Gc { .. }) => true,
        (Gc { .. }, _) | (_, Gc { .. }) => false,
        _ if a.group() != b.group() => false,
        // A running backup holds its new snapshot's lock exclusively.
        (Backup { time, .. }, other) | (other, Backup { time, .. })
            if other.time() == Some(*time) =>
        {
            true
        }
        // Shared snapshot locks: readers among themselves, readers and verify, readers and
        // backups using their snapshot as base.
        (Reader { .. }, Reader { .. } | Verify { .. } | Backup { .. })
        | (Verify { .. } | Backup { .. }, Reader { .. }) => false,
        (Backup { .. }, Verify { .. } | Notes { .. })
        | (Verify { .. } | Notes { .. }, Backup { .. }) => false,
        (Reader { .. }, Notes { .. }) | (Notes { .. }, Reader { .. }) => false,
        _ => true,
    }
}

/// A snapshot in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snap {
    /// Has a manifest.
    pub finished: bool,
    /// Protected.
    pub protected: bool,
    /// Snapshot notes.
    pub notes: Option<String>,
    /// Verify state: `Some("ok")` once verified.
    pub verify: Option<String>,
    /// The archives (file name → chunk ids).
    pub archives: BTreeMap<String, Vec<u8>>,
}

/// Does the group exist?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exists {
    /// Yes.
    Yes,
    /// No.
    No,
    /// Either: emptied, and its removal may have been skipped.
    Maybe,
}

/// A group in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelGroup {
    /// Does it exist?
    pub exists: Exists,
    /// Its notes; `None`: unknown (not compared).
    pub notes: Option<String>,
    /// Its snapshots by time.
    pub snapshots: BTreeMap<i64, Snap>,
}

/// The model's whole state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// The groups, by case index.
    pub groups: Vec<ModelGroup>,
    /// Per actor, what its running prune decided at its listing.
    pub decided: BTreeMap<usize, Vec<i64>>,
}

/// The group notes of the setup.
pub const GROUP_NOTES: &str = "group notes";

/// The group notes the owner operation writes.
pub const OWNER_NOTES: &str = "owner notes";

/// The notes an actor's notes operation writes, and those of the setup.
pub fn notes_text(time: i64) -> String {
    format!("notes at T0{:+}", time - T0)
}

/// The archives of a snapshot, by file name.
pub fn archive_map(archives: &[Archive]) -> BTreeMap<String, Vec<u8>> {
    archives
        .iter()
        .enumerate()
        .map(|(i, a)| (super::case::archive_name(i, a), a.chunks.clone()))
        .collect()
}

impl Model {
    /// The state the setup of `case` builds.
    pub fn initial(case: &Case) -> Model {
        let groups = case
            .groups
            .iter()
            .map(|group| {
                let mut snapshots: BTreeMap<i64, Snap> = group
                    .snapshots
                    .iter()
                    .map(|s| {
                        let snap = Snap {
                            finished: true,
                            protected: s.protected,
                            notes: s.notes.then(|| notes_text(s.time)),
                            verify: None,
                            archives: archive_map(&s.archives),
                        };
                        (s.time, snap)
                    })
                    .collect();
                if let Some(time) = group.unfinished {
                    let snap = Snap {
                        finished: false,
                        protected: false,
                        notes: None,
                        verify: None,
                        archives: BTreeMap::new(),
                    };
                    snapshots.insert(time, snap);
                }
                // The setup makes a group only for a snapshot, and notes only in a group.
                let exists = if snapshots.is_empty() {
                    Exists::No
                } else {
                    Exists::Yes
                };
                let notes = if group.notes && exists == Exists::Yes {
                    GROUP_NOTES
                } else {
                    ""
                };
                ModelGroup {
                    exists,
                    notes: Some(notes.to_owned()),
                    snapshots,
                }
            })
            .collect();
        Model {
            groups,
            decided: BTreeMap::new(),
        }
    }

    fn finished(&self, group: usize, time: i64) -> Option<&Snap> {
        self.groups[group]
            .snapshots
            .get(&time)
            .filter(|s| s.finished)
    }

    /// What `op` gives when it runs alone now.
    pub fn result(&self, op: &Op) -> &'static str {
        use results::*;
        match op {
            Op::Backup { group, time, .. } => {
                let newer = self.groups[*group]
                    .snapshots
                    .iter()
                    .any(|(t, s)| s.finished && t >= time);
                if newer { NOT_NEWER } else { OK }
            }
            Op::Gc { .. } | Op::Prune { .. } => OK,
            Op::Forget { group, time } => match self.groups[*group].snapshots.get(time) {
                None => NOT_FOUND,
                Some(s) if s.protected => PROTECTED,
                Some(_) => OK,
            },
            Op::Reader { group, time }
            | Op::Verify { group, time }
            | Op::Notes { group, time }
            | Op::Protect { group, time, .. } => {
                if self.finished(*group, *time).is_some() {
                    OK
                } else {
                    NOT_FOUND
                }
            }
            Op::Owner { group } => match self.groups[*group].exists {
                Exists::No => GROUP_NOT_FOUND,
                Exists::Yes | Exists::Maybe => OK,
            },
        }
    }

    /// The snapshots prune with keep-last `n` removes from `group` now, oldest first.
    pub fn prune_set(&self, group: usize, keep_last: u32) -> Vec<i64> {
        if keep_last == 0 {
            return Vec::new();
        }
        let snapshots = &self.groups[group].snapshots;
        let newest_finished = snapshots
            .iter()
            .rev()
            .find(|(_, s)| s.finished)
            .map(|(t, _)| *t);
        let mut kept = 0;
        let mut removed = Vec::new();
        for (time, snap) in snapshots.iter().rev() {
            if !snap.finished {
                if newest_finished.is_some_and(|newest| *time < newest) {
                    removed.push(*time);
                }
            } else if snap.protected {
            } else if kept < keep_last {
                kept += 1;
            } else {
                removed.push(*time);
            }
        }
        removed.sort_unstable();
        removed
    }

    /// Is the snapshot there and unprotected (a prune's removal can take it)?
    pub fn removable(&self, group: usize, time: i64) -> bool {
        self.groups[group]
            .snapshots
            .get(&time)
            .is_some_and(|snap| !snap.protected)
    }

    /// Removes a snapshot (forget, or one removal of prune).
    pub fn remove(&mut self, group: usize, time: i64) {
        let g = &mut self.groups[group];
        g.snapshots.remove(&time);
        if g.snapshots.is_empty() && g.exists == Exists::Yes {
            g.exists = Exists::Maybe;
        }
    }

    /// Applies `op`, which ended with `result` (the model's own result, or for prune `removed`
    /// the snapshots it removed).
    pub fn apply(&mut self, op: &Op, result: &str, removed: &[i64]) {
        if result != results::OK {
            if let (results::GROUP_NOT_FOUND, Op::Owner { group }) = (result, op) {
                self.groups[*group].exists = Exists::No;
            }
            return;
        }
        match op {
            Op::Backup {
                group,
                time,
                archives,
            } => {
                let g = &mut self.groups[*group];
                if g.exists != Exists::Yes {
                    g.notes = None;
                }
                g.exists = Exists::Yes;
                let snap = Snap {
                    finished: true,
                    protected: false,
                    notes: None,
                    verify: None,
                    archives: archive_map(archives),
                };
                g.snapshots.insert(*time, snap);
            }
            Op::Forget { group, time } => self.remove(*group, *time),
            Op::Prune { group, .. } => {
                for time in removed {
                    self.remove(*group, *time);
                }
            }
            Op::Verify { group, time } => {
                self.snap_mut(*group, *time, |s| s.verify = Some("ok".into()))
            }
            Op::Notes { group, time } => {
                self.snap_mut(*group, *time, |s| s.notes = Some(notes_text(*time)))
            }
            Op::Protect { group, time, on } => self.snap_mut(*group, *time, |s| s.protected = *on),
            Op::Owner { group } => {
                let g = &mut self.groups[*group];
                g.exists = Exists::Yes;
                g.notes = Some(OWNER_NOTES.to_owned());
            }
            Op::Reader { .. } | Op::Gc { .. } => {}
        }
    }

    fn snap_mut(&mut self, group: usize, time: i64, f: impl FnOnce(&mut Snap)) {
        if let Some(snap) = self.groups[group].snapshots.get_mut(&time) {
            f(snap);
        }
    }
}
