//! Switches that re-introduce historical race bugs, for the race regression suite.
//!
//! Only with the cargo feature `regressions`. Each [`Bug`] names one historical bug of this kind
//! of store (the ids follow the project's race catalogue) and reverting it undoes exactly its
//! fix. The switches are runtime values carried by the store's configuration (never statics), so
//! parallel tests and simulated executions never see each other's switches.
//!
//! Store code asks through the [`reverted!`](crate::reverted) macro. Without the feature the
//! macro expands to `false` without evaluating its argument, so production builds carry no trace
//! of the switches.

/// A historical bug whose fix can be reverted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Bug {
    /// B4: a duplicate chunk insert reports "already stored" without touching the chunk, so a
    /// concurrent sweep that already decided the chunk is unreferenced removes it.
    B4DuplicateInsertNoTouch,
    /// Not a historical bug: planted for the model-based test, which must find it and shrink it.
    /// GC marks the chunks of each group's newest snapshot only, so chunks that only older
    /// snapshots reference are swept once they age past the cutoff.
    PlantedGcMarksNewestOnly,
    /// Not in the historical catalogue: a window of the B18 fix that this project's explorers
    /// found (scenario `gc_backup_prune`). GC relists a group only when the newest *listed*
    /// snapshot vanished. A running backup's unfinished snapshot, listed first, has no index
    /// yet; the backup finishes, prune removes its base, GC finds the base gone but not newest
    /// and skips it, and the chunks reused from the base are swept. The fix relists also when
    /// the newest finished snapshot vanished, and repeats a pass when a finished snapshot it
    /// did not list appeared meanwhile (its base may have been listed half-removed).
    GcRelistIgnoresUnfinished,
}

impl Bug {
    fn bit(self) -> u64 {
        1 << (self as u32)
    }
}

/// A set of reverted fixes; empty by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Regressions(u64);

impl Regressions {
    /// No fix reverted.
    pub fn none() -> Regressions {
        Regressions(0)
    }

    /// This set plus `bug` reverted.
    pub fn with(self, bug: Bug) -> Regressions {
        Regressions(self.0 | bug.bit())
    }

    /// Is the fix of `bug` reverted?
    pub fn is_reverted(&self, bug: Bug) -> bool {
        self.0 & bug.bit() != 0
    }
}

/// `reverted!(regressions, Bug)`: is the fix of `Bug` reverted in this configuration?
#[macro_export]
macro_rules! reverted {
    ($regressions:expr, $bug:ident) => {
        $regressions.is_reverted($crate::regressions::Bug::$bug)
    };
}
