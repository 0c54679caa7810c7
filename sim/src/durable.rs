//! Durability: what of the simulated disk survives a crash.
//!
//! # Model
//!
//! The inodes (module `inode`) hold the *volatile* state: what every process sees, at once.
//! Beside it each disk keeps a [`Durable`] record:
//!
//! * the **durable image**: per inode (by inode number) its data, size, atime, mtime and, for a
//!   directory, its entries (name → inode number); this is what a crash keeps for sure;
//! * the **pending log**: every change not yet durable, in the order it happened, each with the
//!   earlier pending changes it depends on.
//!
//! A change is logged while the inode locks of the operation are held, so for changes to one
//! file or one directory the log order is the order in which they took effect.
//!
//! | change | logged by | durable on |
//! |---|---|---|
//! | `Write`, `SetLen` (also `O_TRUNC`) | `write_at`, `set_len`, `open` | `sync_all` of the file, `syncfs` |
//! | `Atime` | `touch_atime` | `sync_all` of the file, `syncfs` |
//! | `Link` (new file or directory) | `open(create)`, `create_dir(_all)` | `fsync_dir` of the parent, `syncfs` |
//! | `Unlink` | `remove_file`, `remove_dir` | `fsync_dir` of the parent, `syncfs` |
//! | `Rename` | `rename` | `fsync_dir` of **either** parent, `syncfs` |
//!
//! A cross-directory rename is one change, as in a journaling filesystem (ext4 and XFS commit
//! it in one transaction, so an fsync of either directory makes all of it durable); a crash
//! keeps all of it or none of it, so a name is never lost by a rename (atomicity), and a rename
//! is never half durable. Store code that wants POSIX guarantees still fsyncs the target's
//! directory; this model does not catch a store that fsyncs only the source's.
//!
//! # Dependencies
//!
//! Each pending change lists the pending changes it depends on:
//! * *hard*: the previous pending change on the same directory entry (parent inode, name), for
//!   each entry a `Link`, `Unlink` or `Rename` touches (so a rename depends on the creation of
//!   its source, an unlink on the creation of what it removes). A change made durable brings its
//!   hard dependencies along (journal order), so for every entry the durable changes are always
//!   a prefix of its history.
//! * *soft*: an entry in a directory whose own entry is still pending depends on the change
//!   that made that entry (a file in a new directory is reachable only with the directory).
//!   Without it the entry would be unreachable anyway: the soft dependency only removes crash
//!   states that look the same.
//!
//! Data changes (`Write`, `SetLen`, `Atime`) depend on nothing: unsynced writes to one file or
//! to different files reach the disk in any order, and a file's data does not need its name.
//!
//! # Crash images
//!
//! A crash image is the durable image plus a subset of the pending log that is closed under
//! both kinds of dependencies ([`CrashKeep`]), replayed in log order onto a copy of the image.
//! Nothing is copied per operation: the log holds only the changes themselves (the bytes of a
//! write), and a sync moves its changes from the log into the image.
//!
//! [`CrashKeep::Torn`] also tears unsynced writes at [`SECTOR`] granularity (each sector old,
//! new or zeros), like SQLite's crash VFS and ALICE's "append exposes zeros": a file can then
//! hold a mix of old and new sectors, or a grown size with a zero tail.
//!
//! # fsync errors
//!
//! A `sync_all` that fails (an injected fault) drops the file's pending `Write` and `SetLen`
//! changes without making them durable, as Linux does after a writeback error (the pages are
//! marked clean): the volatile data stays readable, and a later successful `sync_all` does not
//! bring the dropped changes back. Failed `fsync_dir` and `syncfs` drop nothing.
//!
//! # Crashed disks
//!
//! Once the disk crashed (an armed crash point was reached) the record is frozen: operations
//! that were already past the gate may still change the volatile state, but nothing is logged
//! or made durable any more.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;

use store::world::FileKind;

use crate::path::splitmix64;

/// Which pending changes a crash image keeps (see [`crate::SimWorld::crash`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CrashKeep {
    /// None: only the durable state survives.
    DurableOnly,
    /// Every pending change (the crash image is the volatile state, minus the changes dropped
    /// by failed `sync_all`s).
    All,
    /// A subset chosen by the seed: each change, in log order, survives with probability one
    /// half if everything it depends on survived.
    Seeded(u64),
    /// These pending changes (indices into the pending log, `0..pending_ops()`), plus
    /// everything they depend on, transitively (the sim closes the set); indices out of range
    /// are ignored.
    Subset(Vec<usize>),
    /// Like [`CrashKeep::Seeded`], but every unsynced write may also be torn: each 512-byte
    /// sector it covers (aligned to file offsets) independently ends up with its old bytes,
    /// its new bytes or zeros, as the seed picks. A write that grew the file grows it as far as
    /// its last sector that did not keep its old (absent) bytes. Never listed by
    /// [`crate::SimWorld::crash_states`]: ask for it with seeds.
    Torn(u64),
}

/// The sector size of torn writes ([`CrashKeep::Torn`]).
pub const SECTOR: u64 = 512;

/// What a torn write left in one sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sector {
    Old,
    New,
    Zero,
}

/// One change of the pending log.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// A new entry `name` in directory `dir` for a new inode `ino`.
    Link { dir: u64, name: OsString, ino: u64 },
    /// Entry `name` of directory `dir` removed.
    Unlink { dir: u64, name: OsString },
    /// Entry `from_name` of `from_dir` moved to `to_name` of `to_dir` (replacing what was there).
    Rename {
        from_dir: u64,
        from_name: OsString,
        to_dir: u64,
        to_name: OsString,
        ino: u64,
    },
    /// `data` written at `offset` of file `ino`, at time `mtime`.
    Write {
        ino: u64,
        offset: u64,
        data: Vec<u8>,
        mtime: i64,
    },
    /// File `ino` truncated or zero-extended to `len`, at time `mtime`.
    SetLen { ino: u64, len: u64, mtime: i64 },
    /// The atime of `ino` set to `atime`.
    Atime { ino: u64, atime: i64 },
}

impl Change {
    /// The inode whose data this change alters (data changes only).
    fn data_ino(&self) -> Option<u64> {
        match self {
            Change::Write { ino, .. } | Change::SetLen { ino, .. } | Change::Atime { ino, .. } => {
                Some(*ino)
            }
            _ => None,
        }
    }

    /// Does this change alter an entry of directory `dir`?
    fn touches_dir(&self, dir: u64) -> bool {
        match self {
            Change::Link { dir: parent, .. } | Change::Unlink { dir: parent, .. } => *parent == dir,
            Change::Rename {
                from_dir, to_dir, ..
            } => *from_dir == dir || *to_dir == dir,
            _ => false,
        }
    }

    /// The entry slots (directory, name) this change alters.
    fn slots(&self) -> [Option<(u64, &OsString)>; 2] {
        match self {
            Change::Link { dir, name, .. } | Change::Unlink { dir, name } => {
                [Some((*dir, name)), None]
            }
            Change::Rename {
                from_dir,
                from_name,
                to_dir,
                to_name,
                ..
            } => [Some((*from_dir, from_name)), Some((*to_dir, to_name))],
            _ => [None, None],
        }
    }

    /// The directories that get a new entry (for soft dependencies).
    fn target_dir(&self) -> Option<u64> {
        match self {
            Change::Link { dir, .. } => Some(*dir),
            Change::Rename { to_dir, .. } => Some(*to_dir),
            _ => None,
        }
    }

    /// The inode that gets a (new) entry.
    fn linked_ino(&self) -> Option<u64> {
        match self {
            Change::Link { ino, .. } | Change::Rename { ino, .. } => Some(*ino),
            _ => None,
        }
    }
}

/// A logged change and its dependencies (by sequence number).
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// Sequence number, unique on the disk.
    seq: u64,
    /// The change.
    change: Change,
    /// Earlier pending changes that must be durable for this one to be (journal order).
    hard: [Option<u64>; 2],
    /// Earlier pending changes without which this one is unreachable.
    soft: Option<u64>,
}

impl Pending {
    /// Every pending change this one depends on (hard and soft), by sequence number.
    fn deps(&self) -> impl Iterator<Item = &u64> {
        self.hard.iter().flatten().chain(&self.soft)
    }
}

/// One inode of the durable image.
#[derive(Debug, Clone)]
pub(crate) struct ImageInode {
    /// File or directory.
    pub(crate) kind: FileKind,
    /// A file's bytes.
    pub(crate) data: Vec<u8>,
    /// Access time.
    pub(crate) atime: i64,
    /// Modification time.
    pub(crate) mtime: i64,
    /// A directory's entries.
    pub(crate) entries: BTreeMap<OsString, u64>,
}

/// The durable image: inodes by number (inode 1 is the root).
#[derive(Debug, Clone, Default)]
pub(crate) struct Image {
    /// Inodes by number.
    pub(crate) inodes: BTreeMap<u64, ImageInode>,
}

/// Kind and creation time of every inode ever linked, to create image inodes on demand.
type Births = BTreeMap<u64, (FileKind, i64)>;

impl Image {
    /// An image holding only the root directory, created at `now`.
    pub(crate) fn with_root(now: i64) -> Self {
        let mut image = Image::default();
        image.inodes.insert(1, ImageInode::new(FileKind::Dir, now));
        image
    }

    /// The image inode `ino`, created empty (as it was born) if missing.
    fn inode(&mut self, ino: u64, births: &Births) -> &mut ImageInode {
        self.inodes.entry(ino).or_insert_with(|| {
            let (kind, born) = births.get(&ino).copied().unwrap_or((FileKind::File, 0));
            ImageInode::new(kind, born)
        })
    }

    /// Applies one change. Changes that no longer fit (a missing source) are skipped.
    fn apply(&mut self, change: &Change, births: &Births) {
        match change {
            Change::Link { dir, name, ino } => {
                self.inode(*ino, births);
                self.inode(*dir, births).entries.insert(name.clone(), *ino);
            }
            Change::Unlink { dir, name } => {
                self.inode(*dir, births).entries.remove(name);
            }
            Change::Rename {
                from_dir,
                from_name,
                to_dir,
                to_name,
                ino,
            } => {
                let source = self.inode(*from_dir, births).entries.remove(from_name);
                let moved = source.unwrap_or(*ino);
                self.inode(*to_dir, births)
                    .entries
                    .insert(to_name.clone(), moved);
            }
            Change::Write {
                ino,
                offset,
                data,
                mtime,
            } => {
                let inode = self.inode(*ino, births);
                let Ok(start) = usize::try_from(*offset) else {
                    return;
                };
                let end = start.saturating_add(data.len());
                if inode.data.len() < end {
                    inode.data.resize(end, 0);
                }
                inode.data[start..end].copy_from_slice(data);
                inode.mtime = *mtime;
            }
            Change::SetLen { ino, len, mtime } => {
                let inode = self.inode(*ino, births);
                inode
                    .data
                    .resize(usize::try_from(*len).unwrap_or(usize::MAX), 0);
                inode.mtime = *mtime;
            }
            Change::Atime { ino, atime } => self.inode(*ino, births).atime = *atime,
        }
    }

    /// [`Image::apply`], moving a write's bytes in when they replace the whole file.
    fn apply_owned(&mut self, change: Change, births: &Births) {
        match change {
            Change::Write {
                ino,
                offset: 0,
                data,
                mtime,
            } => {
                let inode = self.inode(ino, births);
                if inode.data.len() <= data.len() {
                    inode.data = data;
                } else {
                    inode.data[..data.len()].copy_from_slice(&data);
                }
                inode.mtime = mtime;
            }
            change => self.apply(&change, births),
        }
    }

    /// Applies write `change` torn: `pick(sector index)` says what each covered sector holds.
    fn apply_torn(&mut self, change: &Change, births: &Births, pick: impl Fn(u64) -> Sector) {
        let Change::Write {
            ino,
            offset,
            data,
            mtime,
        } = change
        else {
            return self.apply(change, births);
        };
        let (Ok(start), Some(end)) = (
            usize::try_from(*offset),
            offset.checked_add(data.len() as u64),
        ) else {
            return;
        };
        let Ok(end) = usize::try_from(end) else {
            return;
        };
        let inode = self.inode(*ino, births);
        let mut changed = false;
        let mut sector = *offset / SECTOR;
        loop {
            let sector_start = usize::try_from(sector * SECTOR).unwrap_or(usize::MAX);
            if sector_start >= end {
                break;
            }
            let from = sector_start.max(start);
            let to = (sector_start + SECTOR as usize).min(end);
            let choice = pick(sector);
            if choice != Sector::Old {
                if inode.data.len() < to {
                    inode.data.resize(to, 0);
                }
                match choice {
                    Sector::New => {
                        inode.data[from..to].copy_from_slice(&data[from - start..to - start])
                    }
                    _ => inode.data[from..to].fill(0),
                }
                changed = true;
            }
            sector += 1;
        }
        if changed {
            inode.mtime = *mtime;
        }
    }
}

impl ImageInode {
    fn new(kind: FileKind, now: i64) -> Self {
        ImageInode {
            kind,
            data: Vec::new(),
            atime: now,
            mtime: now,
            entries: BTreeMap::new(),
        }
    }
}

/// The durable side of a disk: image, pending log and the indexes that find dependencies.
#[derive(Debug)]
pub(crate) struct Durable {
    /// The crash image was frozen: log and image no longer change.
    frozen: bool,
    /// What survives any crash.
    image: Image,
    /// Changes not yet durable, in log order.
    pending: Vec<Pending>,
    /// Kind and creation time of every inode linked so far.
    births: Births,
    /// The next sequence number.
    next_seq: u64,
    /// The last pending change of each directory entry, by directory and name.
    slots: BTreeMap<u64, BTreeMap<OsString, u64>>,
    /// The pending change that gave each inode its current entry.
    linked: BTreeMap<u64, u64>,
    /// Files whose unsynced writes a failed `sync_all` dropped from the log: their durable
    /// data may differ from what processes see.
    lost_data: BTreeSet<u64>,
}

impl Durable {
    /// A record whose durable image is `image` with nothing pending.
    pub(crate) fn new(image: Image) -> Self {
        let births = image
            .inodes
            .iter()
            .map(|(ino, inode)| (*ino, (inode.kind, inode.mtime)))
            .collect();
        Durable {
            frozen: false,
            image,
            pending: Vec::new(),
            births,
            next_seq: 0,
            slots: BTreeMap::new(),
            linked: BTreeMap::new(),
            lost_data: BTreeSet::new(),
        }
    }

    /// Has the record been frozen (an armed crash fired)?
    pub(crate) fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Files whose writes a failed `sync_all` dropped (see the field).
    pub(crate) fn lost_data(&self) -> &BTreeSet<u64> {
        &self.lost_data
    }

    /// Freezes the record (the disk crashed).
    pub(crate) fn freeze(&mut self) {
        self.frozen = true;
    }

    /// Notes the birth of inode `ino` (kind, creation time) before its `Link` is logged.
    pub(crate) fn born(&mut self, ino: u64, kind: FileKind, now: i64) {
        if !self.frozen {
            self.births.insert(ino, (kind, now));
        }
    }

    /// Appends a change to the pending log with its dependencies.
    pub(crate) fn log(&mut self, change: Change) {
        if self.frozen {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut hard = [None, None];
        for (dir, name) in change.slots().into_iter().flatten() {
            let names = self.slots.entry(dir).or_default();
            let previous = match names.get_mut(name.as_os_str()) {
                Some(last) => Some(std::mem::replace(last, seq)),
                None => names.insert(name.clone(), seq),
            };
            if let Some(previous) = previous {
                if hard[0].is_none() {
                    hard[0] = Some(previous);
                } else if hard[0] != Some(previous) {
                    hard[1] = Some(previous);
                }
            }
        }
        let soft = change
            .target_dir()
            .and_then(|dir| self.linked.get(&dir).copied());
        if let Some(ino) = change.linked_ino() {
            self.linked.insert(ino, seq);
        }
        self.pending.push(Pending {
            seq,
            change,
            hard,
            soft,
        });
    }

    /// Number of pending changes.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// `sync_all` of inode `ino` (`is_dir`: a directory handle, which syncs its entries).
    pub(crate) fn sync_inode(&mut self, ino: u64, is_dir: bool) {
        if is_dir {
            self.sync_dir(ino);
        } else {
            self.make_durable(|change| change.data_ino() == Some(ino));
        }
    }

    /// `fsync_dir` of directory `dir`.
    pub(crate) fn sync_dir(&mut self, dir: u64) {
        self.make_durable(|change| change.touches_dir(dir));
    }

    /// `syncfs`: everything.
    pub(crate) fn sync_all_changes(&mut self) {
        self.make_durable(|_| true);
    }

    /// A failed `sync_all` of file `ino`: its pending data writes are lost for good.
    pub(crate) fn drop_data(&mut self, ino: u64) {
        if self.frozen {
            return;
        }
        self.lost_data.insert(ino);
        self.pending.retain(|pending| {
            !matches!(pending.change, Change::Write { ino: i, .. } | Change::SetLen { ino: i, .. } if i == ino)
        });
    }

    /// Moves the changes `select` picks, and their hard dependencies, into the image.
    fn make_durable(&mut self, select: impl Fn(&Change) -> bool) {
        if self.frozen {
            return;
        }
        let Some(last) = self
            .pending
            .iter()
            .rposition(|pending| select(&pending.change))
        else {
            return;
        };
        // Dependencies come earlier in the log: one backward pass closes the choice.
        let mut chosen = vec![false; last + 1];
        for index in (0..=last).rev() {
            if chosen[index] || select(&self.pending[index].change) {
                chosen[index] = true;
                for dep in self.pending[index].hard.iter().flatten() {
                    if let Ok(position) = self.pending.binary_search_by_key(dep, |p| p.seq) {
                        chosen[position] = true;
                    }
                }
            }
        }
        let mut position = 0;
        let leaving = self.pending.extract_if(..=last, |_| {
            position += 1;
            chosen[position - 1]
        });
        for entry in leaving {
            forget(&mut self.slots, &mut self.linked, &entry);
            self.image.apply_owned(entry.change, &self.births);
        }
    }

    /// Which pending changes (by position) a crash with `keep` keeps, closed under dependencies.
    pub(crate) fn kept(&self, keep: &CrashKeep) -> Vec<bool> {
        let count = self.pending.len();
        let position: BTreeMap<u64, usize> = self
            .pending
            .iter()
            .enumerate()
            .map(|(index, pending)| (pending.seq, index))
            .collect();
        let deps = |index: usize| {
            let pending = &self.pending[index];
            pending
                .deps()
                .filter_map(|seq| position.get(seq).copied())
                .collect::<Vec<usize>>()
        };
        match keep {
            CrashKeep::DurableOnly => vec![false; count],
            CrashKeep::All => vec![true; count],
            CrashKeep::Subset(indices) => {
                let mut kept = vec![false; count];
                for &index in indices {
                    if index < count {
                        kept[index] = true;
                    }
                }
                // Dependencies come earlier in the log: one backward pass closes the set.
                for index in (0..count).rev() {
                    if kept[index] {
                        for dep in deps(index) {
                            kept[dep] = true;
                        }
                    }
                }
                kept
            }
            CrashKeep::Seeded(seed) | CrashKeep::Torn(seed) => {
                let mut kept = vec![false; count];
                for index in 0..count {
                    let coin = splitmix64(seed ^ splitmix64(self.pending[index].seq)) & 1 == 1;
                    kept[index] = coin && deps(index).iter().all(|dep| kept[*dep]);
                }
                kept
            }
        }
    }

    /// Every dependency-closed subset of the pending log, up to `limit`, in a fixed order:
    /// all of it first, then nothing, then the others in depth-first order (deciding each
    /// change in log order, "drop" before "keep").
    pub(crate) fn crash_states(&self, limit: usize) -> Vec<CrashKeep> {
        let count = self.pending.len();
        let position: BTreeMap<u64, usize> = self
            .pending
            .iter()
            .enumerate()
            .map(|(index, pending)| (pending.seq, index))
            .collect();
        let deps: Vec<Vec<usize>> = self
            .pending
            .iter()
            .map(|pending| {
                pending
                    .deps()
                    .filter_map(|seq| position.get(seq).copied())
                    .collect()
            })
            .collect();
        let mut states = Vec::new();
        if limit == 0 {
            return states;
        }
        states.push(CrashKeep::All);
        if count == 0 || states.len() >= limit {
            return states;
        }
        states.push(CrashKeep::DurableOnly);
        enumerate(&deps, limit, &mut states);
        states
    }

    /// The crash image for `keep`: the durable image plus the kept changes, replayed in order.
    pub(crate) fn image_for(&self, keep: &CrashKeep) -> Image {
        let kept = self.kept(keep);
        let mut image = self.image.clone();
        for (pending, kept) in self.pending.iter().zip(kept) {
            match (keep, &pending.change) {
                (CrashKeep::Torn(seed), Change::Write { .. }) => {
                    let salt = splitmix64(seed ^ splitmix64(pending.seq ^ 0x7045_7277));
                    let pick = |sector: u64| match splitmix64(salt ^ sector) % 3 {
                        0 => Sector::Old,
                        1 => Sector::New,
                        _ => Sector::Zero,
                    };
                    image.apply_torn(&pending.change, &self.births, pick);
                }
                _ if kept => image.apply(&pending.change, &self.births),
                _ => {}
            }
        }
        image
    }
}

/// Drops the dependency indexes that point at `entry` (which is leaving the log).
fn forget(
    slots: &mut BTreeMap<u64, BTreeMap<OsString, u64>>,
    linked: &mut BTreeMap<u64, u64>,
    entry: &Pending,
) {
    for (dir, name) in entry.change.slots().into_iter().flatten() {
        if let Some(names) = slots.get_mut(&dir)
            && names.get(name.as_os_str()) == Some(&entry.seq)
        {
            names.remove(name.as_os_str());
            if names.is_empty() {
                slots.remove(&dir);
            }
        }
    }
    if let Some(ino) = entry.change.linked_ino()
        && linked.get(&ino) == Some(&entry.seq)
    {
        linked.remove(&ino);
    }
}

/// Depth-first enumeration of the dependency-closed subsets, deciding each change in log
/// order, "drop" before "keep" (skipping the empty and the full set, which the caller lists
/// first). Iterative, so a long log cannot overflow a small task stack.
fn enumerate(deps: &[Vec<usize>], limit: usize, states: &mut Vec<CrashKeep>) {
    /// How far the decision at one position has got.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Step {
        /// Not decided yet: drop it next.
        Fresh,
        /// Dropped: keep it next (if its dependencies are kept).
        Dropped,
        /// Both tried: backtrack.
        Done,
    }
    let count = deps.len();
    let mut kept = vec![false; count];
    let mut steps = vec![Step::Fresh; count];
    let mut index = 0;
    loop {
        if states.len() >= limit {
            return;
        }
        if index == count {
            let chosen: Vec<usize> = (0..count).filter(|i| kept[*i]).collect();
            if !chosen.is_empty() && chosen.len() != count {
                states.push(CrashKeep::Subset(chosen));
            }
            if count == 0 {
                return;
            }
            index -= 1;
            continue;
        }
        match steps[index] {
            Step::Fresh => {
                kept[index] = false;
                steps[index] = Step::Dropped;
                index += 1;
            }
            Step::Dropped => {
                steps[index] = Step::Done;
                if deps[index].iter().all(|dep| kept[*dep]) {
                    kept[index] = true;
                    index += 1;
                }
            }
            Step::Done => {
                kept[index] = false;
                steps[index] = Step::Fresh;
                if index == 0 {
                    return;
                }
                index -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every closed subset, by brute force over all 2^n subsets.
    fn brute_force(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
        let count = deps.len();
        let mut sets = Vec::new();
        for mask in 0u32..(1 << count) {
            let kept = |i: usize| mask & (1 << i) != 0;
            if (0..count).all(|i| !kept(i) || deps[i].iter().all(|d| kept(*d))) {
                sets.push((0..count).filter(|i| kept(*i)).collect());
            }
        }
        sets.sort();
        sets
    }

    #[test]
    fn enumeration_finds_exactly_the_closed_subsets() {
        let shapes: [Vec<Vec<usize>>; 4] = [
            vec![],
            vec![vec![]],
            vec![vec![], vec![0], vec![], vec![1, 2], vec![0]],
            vec![vec![], vec![], vec![], vec![], vec![], vec![], vec![3]],
        ];
        for deps in shapes {
            let mut states = Vec::new();
            enumerate(&deps, usize::MAX, &mut states);
            let mut found: Vec<Vec<usize>> = states
                .into_iter()
                .map(|keep| match keep {
                    CrashKeep::Subset(kept) => kept,
                    other => panic!("{other:?}"),
                })
                .collect();
            // The caller lists the empty and the full set itself.
            found.push(Vec::new());
            if !deps.is_empty() {
                found.push((0..deps.len()).collect());
            }
            found.sort();
            assert_eq!(found, brute_force(&deps), "{deps:?}");
        }
    }

    #[test]
    fn enumeration_stops_at_the_limit() {
        let deps = vec![Vec::new(); 40];
        let mut states = Vec::new();
        enumerate(&deps, 5, &mut states);
        assert_eq!(states.len(), 5);
    }
}
