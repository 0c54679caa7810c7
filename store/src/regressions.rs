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
    /// B1: GC ignores running writers: the cutoff is `phase1_start − cutoff` whatever the oldest
    /// writer, so chunks a long backup uploaded early (not yet in any index) are swept.
    B1WriterCutoffIgnored,
    /// B2: the cutoff is computed from the sweep's start instead of phase 1's, so marks made
    /// early in a long phase 1 already count as old.
    B2CutoffAtSweepStart,
    /// B3: a backup neither pins its base (no shared lock) nor checks at `finish` that the base
    /// still exists, so the base can be forgotten and its reused chunks swept.
    B3BaseNotPinned,
    /// B4: a duplicate chunk insert reports "already stored" without touching the chunk, so a
    /// concurrent sweep that already decided the chunk is unreferenced removes it.
    B4DuplicateInsertNoTouch,
    /// B5: reader sessions and verify take no snapshot lock, so a snapshot can be forgotten
    /// while it is read.
    B5ReadersTakeNoLock,
    /// B6: prune removes snapshots without taking their locks (a forced removal).
    B6PruneForcesRemoval,
    /// B7: `update_manifest` runs its read-modify-write without the manifest lock: lost updates.
    B7ManifestWithoutLock,
    /// B8: forget goes on when it could not get the manifest lock.
    B8ForgetIgnoresManifestLock,
    /// B9: GC aborts when an index vanished between listing and opening (liveness).
    B9GcAbortsOnVanishedIndex,
    /// B10: the process locker keeps its record lock after the last shared guard is dropped
    /// while several were held (liveness: GC in another process never starts).
    B10LockerKeepsReadLock,
    /// B11: GC tolerates every touch error, not only "not found", so chunks it failed to mark
    /// are swept.
    B11GcToleratesTouchErrors,
    /// B13: opening a datastore again in the same process makes a second process locker, whose
    /// GC does not see the first one's writers.
    B13SecondProcessLocker,
    /// B15: a finished backup releases its group and snapshot locks only after `finish` has
    /// returned (liveness: an immediately following backup of the group fails busy).
    B15LocksOutliveFinish,
    /// B16: lock files are locked without the double-stat identity check, so a lock file
    /// unlinked while held can be owned twice.
    B16LockWithoutIdentityCheck,
    /// B17: a reader session takes the snapshot lock exclusively, so a backup cannot use the
    /// snapshot as its base (liveness).
    B17ReaderTakesExclusiveLock,
    /// B18: GC marks from the list of index files taken at phase-1 start, without the live
    /// newest-first iteration and relist.
    B18GcMarksFromStartList,
    /// B19: a backup session holds the process locker's shared guard only while an index writer
    /// is open, so GC in another process can start in between.
    B19LockerOnlyWhileWriting,
    /// B20: the touch that decides "chunk present, reuse it" runs outside the chunk-store mutex,
    /// so a sweep that already decided to remove the chunk removes it.
    B20TouchOutsideMutex,
    /// B21: renaming a corrupt chunk to `.bad` runs outside the chunk-store mutex, so a sweep's
    /// stat → unlink finds the file gone and aborts.
    B21RenameOutsideMutex,
    /// B23: a failed backup's cleanup takes the group lock again through a new file handle,
    /// which conflicts with the session's own lock, so the empty group is left behind.
    B23CleanupRelocksGroup,
    /// B37 (upstream, 2025-08): when writing the owner file of a group this backup created or
    /// claimed fails (ENOSPC, EIO), the group directory is left behind without a usable owner
    /// (no file, or an empty one), and every later backup of the group fails the owner check.
    /// The fix removes the group again, under the group lock, as for any start that fails
    /// before its snapshot exists.
    B37OwnerWriteLeavesGroup,
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
    /// Not in the historical catalogue: found by the real-thread twin of B23. A `start_backup`
    /// trusted the `mkdir` of the group directory it made before taking the group lock. When
    /// it lost the lock, the start that had created the directory removed it again (empty,
    /// without the lock); the holder, which had found the directory there, then failed with
    /// "no owner" or could not create its owner file, although nothing was wrong with the
    /// group. The fix decides under the lock, from what is there: an empty group without an
    /// owner is claimed, and a directory that vanishes before the owner file is in is made
    /// again.
    StartTrustsMkdirBeforeLock,
    /// Not a historical race: a planted durability bug for the crash tests (`models::crash`).
    /// At sync level `file`, index files are closed without their fsync, and `finish` syncs
    /// them only after the manifest has been renamed into place and its directory fsynced. A
    /// crash between the two leaves a snapshot that lists as finished but whose index lost its
    /// data: the backup reported success (or was about to) and the snapshot is unreadable.
    ManifestBeforeIndexSync,
    /// Durability fix reverted: at level `filesystem` the manifest is published without its
    /// fsyncs and the one `syncfs` runs at the end of `finish`, after it, so a crash can keep
    /// the manifest's rename but not the indexes (or the manifest's own data).
    SyncfsAfterManifest,
    /// Durability fix reverted: forget removes a snapshot without fsyncing the snapshot
    /// directory after the manifest's unlink and the group directory after the `rmdir`, so a
    /// crash can keep an index's removal without the manifest's, or undo a reported forget.
    ForgetWithoutDirSync,
    /// Durability fix reverted: an insert whose prefix-directory fsync failed leaves the chunk
    /// in place, so the next insert of the digest takes it for a durable duplicate.
    ChunkKeptAfterDirSyncError,
    /// Durability fix reverted: setting or clearing protection does not fsync the snapshot
    /// directory, so a reported protection can be lost in a crash.
    ProtectionWithoutDirSync,
    /// Recovery fix reverted: GC aborts on a damaged index of an unfinished snapshot (as a
    /// crash at level `filesystem` leaves it), so no GC runs until somebody removes it.
    GcAbortsOnDamagedUnfinishedIndex,
    /// Recovery fix reverted: the sweep leaves stale temporary chunk files alone forever.
    SweepKeepsChunkTemps,
    /// Race found by the generator, fix reverted: `finish` publishes the manifest under the
    /// manifest lock, releases it, and takes it again (with its bounded wait) to record the
    /// upload statistics. A notes update that takes the lock in between makes that second wait
    /// time out: the backup fails busy and removes the snapshot it had published, with the
    /// notes another client was told were saved.
    FinishRelocksManifestForStats,
    /// Forget (and each removal of prune) removes the group it emptied even when the group's
    /// owner or notes were written after the snapshot was removed: an owner or notes update
    /// that succeeded is lost with the group, by a forget that had already finished its
    /// removal of the snapshot (found by the generator).
    GroupRemovalIgnoresNewerWrites,
    /// A backup session that fails (here: at the process locker, busy with another process's
    /// GC) removes its group while it holds no snapshot even when the session did not claim
    /// it: the owner and notes another client set on the group (on the directory a first
    /// backup made before it had the group lock) are lost (found by the generator).
    CleanupRemovesUnclaimedGroup,
}

impl Bug {
    /// Every switch, in declaration order.
    pub const ALL: &'static [Bug] = &[
        Bug::B1WriterCutoffIgnored,
        Bug::B2CutoffAtSweepStart,
        Bug::B3BaseNotPinned,
        Bug::B4DuplicateInsertNoTouch,
        Bug::B5ReadersTakeNoLock,
        Bug::B6PruneForcesRemoval,
        Bug::B7ManifestWithoutLock,
        Bug::B8ForgetIgnoresManifestLock,
        Bug::B9GcAbortsOnVanishedIndex,
        Bug::B10LockerKeepsReadLock,
        Bug::B11GcToleratesTouchErrors,
        Bug::B13SecondProcessLocker,
        Bug::B15LocksOutliveFinish,
        Bug::B16LockWithoutIdentityCheck,
        Bug::B17ReaderTakesExclusiveLock,
        Bug::B18GcMarksFromStartList,
        Bug::B19LockerOnlyWhileWriting,
        Bug::B20TouchOutsideMutex,
        Bug::B21RenameOutsideMutex,
        Bug::B23CleanupRelocksGroup,
        Bug::B37OwnerWriteLeavesGroup,
        Bug::PlantedGcMarksNewestOnly,
        Bug::GcRelistIgnoresUnfinished,
        Bug::StartTrustsMkdirBeforeLock,
        Bug::ManifestBeforeIndexSync,
        Bug::SyncfsAfterManifest,
        Bug::ForgetWithoutDirSync,
        Bug::ChunkKeptAfterDirSyncError,
        Bug::ProtectionWithoutDirSync,
        Bug::GcAbortsOnDamagedUnfinishedIndex,
        Bug::SweepKeepsChunkTemps,
        Bug::FinishRelocksManifestForStats,
        Bug::GroupRemovalIgnoresNewerWrites,
        Bug::CleanupRemovesUnclaimedGroup,
    ];

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
