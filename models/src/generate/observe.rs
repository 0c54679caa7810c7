//! What an execution is judged on: each operation with its result and real-time interval, and
//! the final state read back from the store.

use std::collections::BTreeMap;

use store::backup_info::BackupGroup;
use store::datastore::Datastore;
use store::index::IndexFile;
use store::manifest::VerifyState;
use store::world::World;

use super::case::{Op, chunk_id};
use super::model::{Exists, Model};

/// One operation as it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The actor's index.
    pub actor: usize,
    /// Its position in the actor's sequence of observed events.
    pub step: usize,
    /// Which part of the operation this is.
    pub phase: Phase,
    /// The operation.
    pub op: Op,
    /// Its result class (see [`super::model::results`]), or `error: ...`.
    pub result: String,
    /// A prune's listing: the snapshots the store decided to remove, in removal order; one of
    /// its removals: the one snapshot it tried to remove. Empty otherwise.
    pub snapshots: Vec<i64>,
    /// Tick read before its first store call.
    pub start: u64,
    /// Tick read after its last store call.
    pub end: u64,
}

/// A prune is judged as one event for its listing, which decides what to remove, and one event
/// per snapshot it then tries to remove, in the order the store removes them: each removal is
/// a forget of its own (its own locks, at its own time), and other operations may come between
/// them. (Judged as one event, a reader that found the first removal done and a verify that ran
/// before the last one cannot both be explained.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The whole operation.
    Whole,
    /// A prune's listing and decision.
    PruneList,
    /// One of a prune's removals (of [`Observed::snapshots`]`[0]`).
    PruneRemove,
    /// The owner op's first call, setting the owner (its effect stays when the second fails).
    OwnerSet,
    /// The owner op's second call, setting the group notes.
    GroupNotes,
}

impl Observed {
    /// `a<actor>.<step> <operation>`.
    pub fn label(&self) -> String {
        let phase = match (self.phase, self.snapshots.first()) {
            (Phase::Whole, _) => String::new(),
            (Phase::PruneList, _) => format!(" (listing: remove {:?})", self.snapshots),
            (Phase::PruneRemove, Some(time)) => format!(" (removal of {time})"),
            (Phase::PruneRemove, None) => " (removal)".to_owned(),
            (Phase::OwnerSet, _) => " (owner)".to_owned(),
            (Phase::GroupNotes, _) => " (group notes)".to_owned(),
        };
        format!("a{}.{} {:?}{phase}", self.actor, self.step, self.op)
    }

    /// Did the two run at the same time (neither ended before the other started)?
    pub fn overlaps(&self, other: &Observed) -> bool {
        !(self.end < other.start || other.end < self.start)
    }
}

/// A snapshot as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalSnap {
    /// Has a manifest.
    pub finished: bool,
    /// Protected.
    pub protected: bool,
    /// Notes from the manifest.
    pub notes: Option<String>,
    /// `ok` or `failed` from the manifest's verify state.
    pub verify: Option<String>,
    /// Per index file of the manifest: the chunk ids of its chunks, each loaded from the chunk
    /// store (`None` for a chunk that is missing, damaged or foreign).
    pub archives: BTreeMap<String, Vec<Option<u8>>>,
}

/// A group as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalGroup {
    /// Its directory exists.
    pub exists: bool,
    /// Its notes ("" if none).
    pub notes: String,
    /// Its owner.
    pub owner: Option<String>,
    /// Its snapshots by time.
    pub snapshots: BTreeMap<i64, FinalSnap>,
}

/// The final state of every group of the case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Final {
    /// By case index.
    pub groups: Vec<FinalGroup>,
}

impl Final {
    /// Reads the final state of `groups` from `store`.
    pub fn read<W: World>(store: &Datastore<W>, groups: &[BackupGroup]) -> Result<Final, String> {
        let groups = groups
            .iter()
            .map(|group| read_group(store, group))
            .collect::<Result<_, _>>()?;
        Ok(Final { groups })
    }

    /// Is this the model's state? (`Err`: the first difference.)
    pub fn matches(&self, model: &Model) -> Result<(), String> {
        for (index, (seen, want)) in self.groups.iter().zip(&model.groups).enumerate() {
            let name = format!("vm/{}", 100 + index);
            match (want.exists, seen.exists) {
                (Exists::Yes, false) => return Err(format!("{name} is gone")),
                (Exists::No, true) => return Err(format!("{name} exists")),
                _ => {}
            }
            if seen.exists && seen.owner.as_deref() != Some(super::case::OWNER) {
                return Err(format!("{name} has owner {:?}", seen.owner));
            }
            if let Some(notes) = &want.notes
                && seen.exists
                && want.exists == Exists::Yes
                && &seen.notes != notes
            {
                return Err(format!(
                    "{name} has notes {:?}, model {notes:?}",
                    seen.notes
                ));
            }
            let times: Vec<&i64> = seen.snapshots.keys().collect();
            let want_times: Vec<&i64> = want.snapshots.keys().collect();
            if times != want_times {
                return Err(format!("{name} holds {times:?}, model {want_times:?}"));
            }
            for (time, snap) in &want.snapshots {
                let seen = &seen.snapshots[time];
                let archives: BTreeMap<String, Vec<Option<u8>>> = snap
                    .archives
                    .iter()
                    .map(|(name, ids)| (name.clone(), ids.iter().map(|id| Some(*id)).collect()))
                    .collect();
                let same = seen.finished == snap.finished
                    && seen.protected == snap.protected
                    && seen.notes == snap.notes
                    && seen.verify == snap.verify
                    && (!snap.finished || seen.archives == archives);
                if !same {
                    return Err(format!("{name} at {time}: {seen:?}, model {snap:?}"));
                }
            }
        }
        Ok(())
    }
}

fn read_group<W: World>(store: &Datastore<W>, group: &BackupGroup) -> Result<FinalGroup, String> {
    let failed =
        |what: &str, err: &dyn std::fmt::Display| format!("reading {group}: {what}: {err}");
    let exists = store
        .world()
        .try_metadata(&store.group_path(group))
        .map_err(|err| failed("stat", &err))?
        .is_some();
    let mut snapshots = BTreeMap::new();
    if exists {
        for info in store
            .list_snapshots(group)
            .map_err(|err| failed("list", &err))?
        {
            let mut snap = FinalSnap {
                finished: info.finished,
                protected: info.protected,
                notes: None,
                verify: None,
                archives: BTreeMap::new(),
            };
            if info.finished {
                read_manifest(store, &info.dir, &mut snap)
                    .map_err(|err| failed("snapshot", &err))?;
            }
            snapshots.insert(info.dir.time.epoch(), snap);
        }
    }
    Ok(FinalGroup {
        exists,
        notes: store
            .group_notes(group)
            .map_err(|err| failed("notes", &err))?,
        owner: store
            .group_owner(group)
            .map_err(|err| failed("owner", &err))?,
        snapshots,
    })
}

fn read_manifest<W: World>(
    store: &Datastore<W>,
    dir: &store::backup_info::BackupDir,
    snap: &mut FinalSnap,
) -> Result<(), String> {
    let manifest = store.load_manifest(dir).map_err(|err| err.to_string())?;
    snap.notes = manifest
        .notes()
        .map_err(|err| err.to_string())?
        .map(str::to_owned);
    snap.verify = match manifest.verify_state().map_err(|err| err.to_string())? {
        Some(state) if state.state == VerifyState::Ok => Some("ok".into()),
        Some(_) => Some("failed".into()),
        None => None,
    };
    let path = store.snapshot_path(dir);
    for file in manifest
        .files
        .iter()
        .filter(|f| f.kind().is_some_and(|k| k.is_index()))
    {
        let index = IndexFile::open(store.world(), &path.join(&file.filename))
            .map_err(|err| format!("{}: {err}", file.filename))?;
        let ids = index
            .digests()
            .iter()
            .map(|digest| {
                let chunk = store.chunk_store().load_chunk(digest).ok()?;
                chunk_id(chunk.data())
            })
            .collect();
        snap.archives.insert(file.filename.clone(), ids);
    }
    Ok(())
}
