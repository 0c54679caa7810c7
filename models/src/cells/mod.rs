//! The locking table, executable: one scenario per interacting cell.
//!
//! `LOCKING.md` holds the locking table of the datastore: rows are the operation already
//! running, columns the operation starting, and every cell has a stable id
//! `<running>__<starting>` (e.g. `reader__forget`). This module is the same table in code:
//!
//! * [`Op`]: the operations (rows and columns);
//! * [`CELLS`]: every interacting cell, with the mechanism that makes the pair safe, the
//!   allowed outcomes of each side, the fix that protects it and the regression switch
//!   ([`Bug`]) that breaks it;
//! * [`NO_INTERACTION`]: every other cell, with the reason there is nothing to model;
//! * [`Cell`]: a cell as a [`Scenario`](crate::scenario::Scenario): in the simulated world, on
//!   the standard datastore (see [`ops::CellState`]), the running operation starts first (a
//!   gate: sessions are open before the other side starts), then the starting one runs
//!   concurrently with the rest of it; after every execution the invariants I1–I11 that the
//!   pair can touch are checked, and each side's outcome must be one the cell allows. The cell
//!   `b__a` is the same pair in the other start order.
//! * [`drift`]: compares the cell ids of `LOCKING.md` with this table, both ways.

use store::regressions::Bug;

pub mod drift;
pub mod matrix;
pub mod ops;
mod scenario;
mod table;

pub use scenario::{Cell, NAME_PREFIX, all};
pub use table::{CELLS, NO_INTERACTION};

/// An operation of the locking table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// Open an index file raw and read its chunks, without a lock (as GC and verify open
    /// indexes).
    ReadIndex,
    /// A backup session writing an index: the running side has its index writer open with
    /// chunks appended, not yet published.
    CreateIndex,
    /// Garbage collection, with the referenced chunks older than the cutoff: only the mark
    /// keeps them.
    GcMark,
    /// Garbage collection, with the referenced chunks recent and an old unreferenced one: the
    /// sweep's decisions matter.
    GcSweep,
    /// A manifest update (snapshot notes, upload statistics) through `update_manifest`.
    UpdateManifest,
    /// Forget one snapshot.
    Forget,
    /// Prune the group with keep-last 1.
    Prune,
    /// A whole backup session (incremental, base pinned); the running side has its session
    /// open.
    CreateBackup,
    /// Verify one snapshot.
    Verify,
    /// A reader session (restore): open, download the index, read every chunk.
    Reader,
    /// Protect a snapshot.
    SetProtection,
    /// Set the group's owner and notes.
    OwnerNotes,
}

impl Op {
    /// Every operation, in table order.
    pub const ALL: [Op; 12] = [
        Op::ReadIndex,
        Op::CreateIndex,
        Op::GcMark,
        Op::GcSweep,
        Op::UpdateManifest,
        Op::Forget,
        Op::Prune,
        Op::CreateBackup,
        Op::Verify,
        Op::Reader,
        Op::SetProtection,
        Op::OwnerNotes,
    ];

    /// The id used in cell ids and in `LOCKING.md`.
    pub const fn id(self) -> &'static str {
        match self {
            Op::ReadIndex => "read_index",
            Op::CreateIndex => "create_index",
            Op::GcMark => "gc_mark",
            Op::GcSweep => "gc_sweep",
            Op::UpdateManifest => "update_manifest",
            Op::Forget => "forget",
            Op::Prune => "prune",
            Op::CreateBackup => "create_backup",
            Op::Verify => "verify",
            Op::Reader => "reader",
            Op::SetProtection => "set_protection",
            Op::OwnerNotes => "owner_notes",
        }
    }

    /// A short column label for the matrix (at most 5 characters).
    pub const fn short(self) -> &'static str {
        match self {
            Op::ReadIndex => "rdidx",
            Op::CreateIndex => "mkidx",
            Op::GcMark => "gcmrk",
            Op::GcSweep => "gcswp",
            Op::UpdateManifest => "updmf",
            Op::Forget => "forgt",
            Op::Prune => "prune",
            Op::CreateBackup => "bkup",
            Op::Verify => "vrfy",
            Op::Reader => "readr",
            Op::SetProtection => "prot",
            Op::OwnerNotes => "ownnt",
        }
    }

    /// The operation with this id.
    pub fn from_id(id: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.id() == id)
    }

    /// Does this operation take part in a GC run?
    pub const fn is_gc(self) -> bool {
        matches!(self, Op::GcMark | Op::GcSweep)
    }

    /// Is it small enough for loom's exhaustive exploration (no backup, GC or prune)?
    const fn small(self) -> bool {
        !matches!(
            self,
            Op::CreateIndex | Op::CreateBackup | Op::GcMark | Op::GcSweep | Op::Prune
        )
    }
}

/// One interacting cell of the locking table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellSpec {
    /// The operation already running (the row).
    pub running: Op,
    /// The operation starting (the column).
    pub starting: Op,
    /// What makes the pair safe.
    pub mechanism: &'static str,
    /// The outcomes the running side may end in.
    pub running_outcomes: &'static [&'static str],
    /// The outcomes the starting side may end in.
    pub starting_outcomes: &'static [&'static str],
    /// The fix (lock, check or ordering) that protects the cell.
    pub fix: &'static str,
    /// The regression switch that takes that fix out, if there is one.
    pub bug: Option<Bug>,
}

impl CellSpec {
    /// The cell id, `<running>__<starting>`.
    pub fn id(&self) -> String {
        cell_id(self.running, self.starting)
    }

    /// Does either side run `op`?
    pub fn involves(&self, op: Op) -> bool {
        self.running == op || self.starting == op
    }

    /// Are the referenced chunks older than GC's cutoff in this cell's datastore? (Cells with
    /// a marking GC.)
    pub fn aged(&self) -> bool {
        self.involves(Op::GcMark)
    }

    /// Does loom explore this cell? Only cells whose both sides are small.
    pub fn loom(&self) -> bool {
        self.running.small() && self.starting.small()
    }
}

/// A cell without interaction, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoInteraction {
    /// The operation already running.
    pub running: Op,
    /// The operation starting.
    pub starting: Op,
    /// Why the pair cannot interact.
    pub reason: &'static str,
}

impl NoInteraction {
    /// The cell id, `<running>__<starting>`.
    pub fn id(&self) -> String {
        cell_id(self.running, self.starting)
    }
}

/// `<running>__<starting>`.
pub fn cell_id(running: Op, starting: Op) -> String {
    format!("{}__{}", running.id(), starting.id())
}

/// The modelled cell with this id.
pub fn find(id: &str) -> Option<&'static CellSpec> {
    CELLS.iter().find(|spec| spec.id() == id)
}

/// The modelled cell of this pair, if it is modelled.
pub fn cell(running: Op, starting: Op) -> Option<&'static CellSpec> {
    CELLS
        .iter()
        .find(|spec| spec.running == running && spec.starting == starting)
}

/// The explanation of this pair, if it has no interaction.
pub fn no_interaction(running: Op, starting: Op) -> Option<&'static NoInteraction> {
    NO_INTERACTION
        .iter()
        .find(|entry| entry.running == running && entry.starting == starting)
}
