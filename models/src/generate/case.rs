//! A generated case: the initial store state and the concurrent workload, as plain data.
//!
//! Every time in a case is absolute (seconds since the epoch) and every reference is resolved
//! (a snapshot is named by its group and time), so the runner, the reference model and the
//! shrinker all read the same values. `Display` prints a case readably, followed by its
//! `Debug` form (a Rust struct literal of these types).

use std::fmt;

/// One day in seconds.
pub const DAY: i64 = 86_400;

/// The default GC cutoff of the store (24 h 5 min), around which chunk ages are spread.
pub const CUTOFF: i64 = 24 * 3600 + 5 * 60;

/// The clock when the actors start: setup plants every snapshot before it.
pub const T0: i64 = sim::START_TIME + 20 * DAY;

/// The owner of every backup and every group.
pub const OWNER: &str = "gen@pam";

/// Archives per snapshot, chunks per archive and the size of the chunk pool are small, so
/// archives share chunks often.
pub const CHUNK_POOL: u8 = 6;

/// An archive: fixed (`.fidx`) or dynamic (`.didx`), and its chunks (ids into the pool).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Archive {
    /// A fixed index (all chunks of one size) rather than a dynamic one.
    pub fixed: bool,
    /// The chunk ids, in order.
    pub chunks: Vec<u8>,
}

/// A finished snapshot planted by the setup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Planted {
    /// Its backup time, which is also when its chunks were written (their atime).
    pub time: i64,
    /// Its archives.
    pub archives: Vec<Archive>,
    /// Protected after the backup.
    pub protected: bool,
    /// Snapshot notes set after the backup.
    pub notes: bool,
}

/// A group of the initial state (`vm/<100 + index>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Group {
    /// Finished snapshots, oldest first.
    pub snapshots: Vec<Planted>,
    /// The time of an unfinished snapshot (a directory without a manifest), if any.
    pub unfinished: Option<i64>,
    /// Group notes set by the setup.
    pub notes: bool,
}

/// One operation of the locking table, with resolved arguments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// A whole backup of `group` at `time` (incremental: chunks of the base are reused).
    Backup {
        /// Group index.
        group: usize,
        /// Backup time.
        time: i64,
        /// Its archives.
        archives: Vec<Archive>,
    },
    /// A reader session: download every index and read every chunk.
    Reader {
        /// Group index.
        group: usize,
        /// Snapshot time.
        time: i64,
    },
    /// Garbage collection with this cutoff in seconds.
    Gc {
        /// The cutoff.
        cutoff: i64,
    },
    /// Forget one snapshot.
    Forget {
        /// Group index.
        group: usize,
        /// Snapshot time.
        time: i64,
    },
    /// Prune a group with keep-last `keep_last`.
    Prune {
        /// Group index.
        group: usize,
        /// Keep-last count (0 keeps everything).
        keep_last: u32,
    },
    /// Verify one snapshot.
    Verify {
        /// Group index.
        group: usize,
        /// Snapshot time.
        time: i64,
    },
    /// Set a snapshot's notes (`update_manifest`).
    Notes {
        /// Group index.
        group: usize,
        /// Snapshot time.
        time: i64,
    },
    /// Set or clear protection.
    Protect {
        /// Group index.
        group: usize,
        /// Snapshot time.
        time: i64,
        /// Protect (true) or unprotect.
        on: bool,
    },
    /// Set the group's owner (to [`OWNER`]) and its notes.
    Owner {
        /// Group index.
        group: usize,
    },
}

impl Op {
    /// The snapshot time the operation is about (a backup: the one it makes).
    pub fn time(&self) -> Option<i64> {
        match self {
            Op::Gc { .. } | Op::Prune { .. } | Op::Owner { .. } => None,
            Op::Backup { time, .. }
            | Op::Reader { time, .. }
            | Op::Forget { time, .. }
            | Op::Verify { time, .. }
            | Op::Notes { time, .. }
            | Op::Protect { time, .. } => Some(*time),
        }
    }

    /// The group the operation is about (`None` for GC).
    pub fn group(&self) -> Option<usize> {
        match self {
            Op::Gc { .. } => None,
            Op::Backup { group, .. }
            | Op::Reader { group, .. }
            | Op::Forget { group, .. }
            | Op::Prune { group, .. }
            | Op::Verify { group, .. }
            | Op::Notes { group, .. }
            | Op::Protect { group, .. }
            | Op::Owner { group } => Some(*group),
        }
    }
}

/// One step of an actor: move the clock, then run the operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Step {
    /// Seconds the clock moves before the operation.
    pub advance: i64,
    /// The operation.
    pub op: Op,
}

/// An actor: its process (0 or 1) and its steps, run in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActorSpec {
    /// The simulated process it runs in.
    pub process: usize,
    /// Its steps.
    pub steps: Vec<Step>,
}

/// A generated case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Case {
    /// Simulated processes (1 or 2).
    pub processes: usize,
    /// The groups of the initial state.
    pub groups: Vec<Group>,
    /// The concurrent actors (1 to 4).
    pub actors: Vec<ActorSpec>,
}

impl Case {
    /// The size the shrinker minimises: actors, steps, groups, snapshots, archives, chunks,
    /// plus one per day (rounded up) of clock moves.
    pub fn size(&self) -> usize {
        let steps: usize = self.actors.iter().map(|a| a.steps.len()).sum();
        let planted: usize = self.groups.iter().map(|g| g.snapshots.len()).sum();
        let chunks: usize = self
            .groups
            .iter()
            .flat_map(|g| &g.snapshots)
            .flat_map(|s| &s.archives)
            .map(|a| a.chunks.len())
            .sum();
        let days: i64 = self
            .actors
            .iter()
            .flat_map(|a| &a.steps)
            .map(|s| (s.advance + DAY - 1) / DAY)
            .sum();
        self.actors.len() + steps + self.groups.len() + planted + chunks + days as usize
    }

    /// Number of operations over all actors.
    pub fn steps(&self) -> usize {
        self.actors.iter().map(|a| a.steps.len()).sum()
    }
}

/// The data of chunk `id`: 32 bytes, the same length for every id so fixed archives take any
/// sequence of them.
pub fn chunk_data(id: u8) -> Vec<u8> {
    format!("{CHUNK_PREFIX}{id:03}......").into_bytes()
}

const CHUNK_PREFIX: &str = "generated chunk number ";

/// The chunk id of `data`, if it is a chunk of [`chunk_data`].
pub fn chunk_id(data: &[u8]) -> Option<u8> {
    let text = std::str::from_utf8(data).ok()?;
    let id: u8 = text.strip_prefix(CHUNK_PREFIX)?.get(..3)?.parse().ok()?;
    (chunk_data(id) == data).then_some(id)
}

/// The archive's file name: `a<position>.fidx` or `a<position>.didx`.
pub fn archive_name(position: usize, archive: &Archive) -> String {
    let kind = if archive.fixed { "fidx" } else { "didx" };
    format!("a{position}.{kind}")
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "case: {} process(es), T0 = {T0}", self.processes)?;
        for (index, group) in self.groups.iter().enumerate() {
            writeln!(f, "  group vm/{} notes={}", 100 + index, group.notes)?;
            for snap in &group.snapshots {
                writeln!(
                    f,
                    "    snapshot T0{:+} protected={} notes={} archives={:?}",
                    snap.time - T0,
                    snap.protected,
                    snap.notes,
                    snap.archives
                )?;
            }
            if let Some(time) = group.unfinished {
                writeln!(f, "    unfinished T0{:+}", time - T0)?;
            }
        }
        for (index, actor) in self.actors.iter().enumerate() {
            writeln!(f, "  actor a{index} (process {}):", actor.process)?;
            for step in &actor.steps {
                writeln!(f, "    +{}s {:?}", step.advance, step.op)?;
            }
        }
        writeln!(f, "  record: {self:?}")
    }
}
