//! The cells of the locking table: every interacting cell with its mechanism, allowed
//! outcomes, fix and regression switch, and every other cell with its reason.
//!
//! Outcome labels: `ok`; `busy` (a lock held by the other side, or a bounded wait that gave
//! up); `not-found` (the snapshot was gone); `exists` (a backup found its snapshot already
//! written); `base-vanished` (a backup's base was removed before it was pinned, and the backup
//! failed cleanly); `protected` (forget refused a protected snapshot); `warned` (prune could
//! not remove a snapshot it marked and went on); `state-not-saved` (verify checked everything
//! but its state update timed out).

use store::regressions::Bug;

use super::{CellSpec, NoInteraction, Op};
use Op::*;

const OK: &[&str] = &["ok"];
const OK_BUSY: &[&str] = &["ok", "busy"];
const BUSY_EXISTS: &[&str] = &["busy", "exists"];
const OK_WARNED: &[&str] = &["ok", "warned"];
const OK_NOT_FOUND: &[&str] = &["ok", "not-found"];
const OK_BUSY_NOT_FOUND: &[&str] = &["ok", "busy", "not-found"];
const BACKUP_VS_REMOVAL: &[&str] = &["ok", "busy", "base-vanished"];
const FORGET_VS_PROTECT: &[&str] = &["ok", "busy", "protected"];
const VERIFY_STATE: &[&str] = &["ok", "state-not-saved"];

#[allow(clippy::too_many_arguments)]
const fn m(
    running: Op,
    starting: Op,
    running_outcomes: &'static [&'static str],
    starting_outcomes: &'static [&'static str],
    mechanism: &'static str,
    fix: &'static str,
    bug: Option<Bug>,
) -> CellSpec {
    CellSpec {
        running,
        starting,
        mechanism,
        running_outcomes,
        starting_outcomes,
        fix,
        bug,
    }
}

const fn n(running: Op, starting: Op, reason: &'static str) -> NoInteraction {
    NoInteraction {
        running,
        starting,
        reason,
    }
}

// Mechanisms shared by several cells.
const UNLINK_KEEPS_OPEN: &str = "forget unlinks the snapshot's files; an index already read \
    stays usable and no chunk is removed; a later raw open is not-found, which GC and verify \
    treat as a vanished snapshot";
const ONE_WRITER: &str = "one writer per group: the group lock (exclusive, non-blocking) for \
    the whole session; a start after the first session finished finds the snapshot written";
const WRITER_CUTOFF: &str = "writer cutoff: the session holds the process locker shared, \
    stamped with its start; GC's cutoff reaches back before the oldest writer, so chunks the \
    session wrote or touched are kept, and the duplicate insert touches under the chunk-store \
    mutex; reused chunks are reached through the pinned base";
const SWEEP_VS_INSERT: &str = "insert and duplicate touch run under the chunk-store mutex, as \
    does the sweep's stat -> decide -> unlink per chunk; a chunk the backup re-uploads is \
    touched before the sweep decides, or written afresh after it removed it";
const BASE_PINNED: &str = "the session holds its base shared from start to finish; forget \
    needs it exclusive without waiting and fails busy; a forget that won the race makes the \
    backup pick an older base or fail with base-vanished";
const BASE_PINNED_PRUNE: &str = "prune keeps the running backup (keep-partial) and the newest \
    finished snapshot; removing the pinned base fails busy, a warning";
const BASE_SHARED: &str = "the session holds its base shared; the other side's shared lock \
    is compatible";
const BASE_VS_PROTECT: &str = "the session holds its base shared; protection needs it \
    exclusive without waiting and fails busy until the session ends";
const GROUP_BUSY: &str = "the group lock (exclusive, non-blocking): owner and notes fail busy \
    while a backup session holds it, and a start fails busy while they hold it";
const GC_EXCLUSIVE: &str = "the GC mutex (try_lock) and the process locker's exclusive lock: \
    a second GC fails with GcRunning";
const GC_VS_FORGET: &str = "GC marks newest snapshot first and treats a vanished index \
    (not-found only) as removed; when the newest snapshot vanished it lists the group again; \
    the remaining snapshots' chunks are marked";
const MANIFEST_RMW: &str = "manifest lock (bounded wait): read-modify-write updates are \
    serialised and replaced atomically; a wait that gives up is busy";
const FORGET_VS_UPDATE: &str = "forget takes the manifest lock after the exclusive snapshot \
    lock, so it waits for an update in flight; an update after the removal is not-found";
const SNAPSHOT_EXCL: &str = "the snapshot lock, exclusive and non-blocking on both sides: \
    the second fails busy, or finds the snapshot gone";
const SHARED_VS_DESTROY: &str = "the shared snapshot lock, held for the whole read: forget \
    needs it exclusive without waiting and fails busy; a read that starts after the removal \
    is not-found";
const PROTECT_VS_FORGET: &str = "both take the snapshot lock exclusively without waiting; \
    forget checks the protection under it, so it refuses a snapshot protected first, and \
    protection of a removed snapshot is not-found";
const REMOVE_GROUP_TRY: &str = "after each removal forget tries the group lock, to remove the \
    group if it became empty, and leaves the group alone when the lock is busy; owner and notes \
    fail busy while forget holds it";
const SHARED_SHARED: &str = "both take the snapshot lock shared; shared locks are compatible";
const PROTECT_VS_SHARED: &str = "protection needs the snapshot lock exclusive without \
    waiting: busy while the other side holds it shared, and the other side is busy while \
    protection holds it";
const VERIFY_VS_UPDATE: &str = "verify records its state through update_manifest (manifest \
    lock, bounded wait): both updates land, or one gives up busy";

/// Every interacting cell of the locking table, in matrix order.
pub const CELLS: &[CellSpec] = &[
    // -- read_index: an index opened raw, its chunks read without a lock --
    m(
        ReadIndex,
        Forget,
        OK,
        OK,
        UNLINK_KEEPS_OPEN,
        "unlink-only removal; GC/verify skip a vanished index",
        None,
    ),
    m(
        ReadIndex,
        Prune,
        OK,
        OK_WARNED,
        UNLINK_KEEPS_OPEN,
        "unlink-only removal; GC/verify skip a vanished index",
        None,
    ),
    // -- create_index: a long session with its index writer open --
    m(
        CreateIndex,
        CreateIndex,
        OK,
        BUSY_EXISTS,
        ONE_WRITER,
        "group lock for the whole session (I5)",
        None,
    ),
    m(
        CreateIndex,
        GcMark,
        OK,
        OK,
        WRITER_CUTOFF,
        "GC cutoff at the oldest writer's start minus 5 min (I2)",
        Some(Bug::B1WriterCutoffIgnored),
    ),
    m(
        CreateIndex,
        GcSweep,
        OK,
        OK,
        WRITER_CUTOFF,
        "GC cutoff at the oldest writer's start minus 5 min (I2); touch on duplicate insert",
        Some(Bug::B1WriterCutoffIgnored),
    ),
    m(
        CreateIndex,
        Forget,
        OK,
        OK_BUSY,
        BASE_PINNED,
        "base pinned shared, checked at finish (I4)",
        Some(Bug::B3BaseNotPinned),
    ),
    m(
        CreateIndex,
        Prune,
        OK,
        OK_WARNED,
        BASE_PINNED_PRUNE,
        "keep-partial and newest kept; removal through forget's locks (I11)",
        Some(Bug::B6PruneForcesRemoval),
    ),
    m(
        CreateIndex,
        CreateBackup,
        OK,
        BUSY_EXISTS,
        ONE_WRITER,
        "group lock for the whole session (I5)",
        None,
    ),
    m(
        CreateIndex,
        Verify,
        OK,
        OK,
        BASE_SHARED,
        "verify pins shared (I6)",
        None,
    ),
    m(
        CreateIndex,
        Reader,
        OK,
        OK,
        BASE_SHARED,
        "readers lock shared, not exclusive (B17)",
        Some(Bug::B17ReaderTakesExclusiveLock),
    ),
    m(
        CreateIndex,
        SetProtection,
        OK,
        OK_BUSY,
        BASE_VS_PROTECT,
        "base pinned shared (I4, I6)",
        None,
    ),
    m(
        CreateIndex,
        OwnerNotes,
        OK,
        OK_BUSY,
        GROUP_BUSY,
        "group lock (I5)",
        None,
    ),
    // -- gc_mark: GC with every referenced chunk older than the cutoff --
    m(
        GcMark,
        CreateIndex,
        OK,
        OK,
        SWEEP_VS_INSERT,
        "duplicate insert touches under the chunk-store mutex (I3)",
        Some(Bug::B4DuplicateInsertNoTouch),
    ),
    m(
        GcMark,
        GcMark,
        OK_BUSY,
        OK_BUSY,
        GC_EXCLUSIVE,
        "GC mutex + process locker exclusive (I5)",
        None,
    ),
    m(
        GcMark,
        Forget,
        OK,
        OK,
        GC_VS_FORGET,
        "vanished index skipped, newest-first relist (I1)",
        Some(Bug::B9GcAbortsOnVanishedIndex),
    ),
    m(
        GcMark,
        Prune,
        OK,
        OK_WARNED,
        GC_VS_FORGET,
        "vanished index skipped, newest-first relist (I1)",
        Some(Bug::B9GcAbortsOnVanishedIndex),
    ),
    m(
        GcMark,
        CreateBackup,
        OK,
        OK,
        SWEEP_VS_INSERT,
        "duplicate insert touches under the chunk-store mutex (I3); base pinned (I4)",
        Some(Bug::B4DuplicateInsertNoTouch),
    ),
    // -- gc_sweep: GC with recent referenced chunks and an old unreferenced one --
    m(
        GcSweep,
        CreateIndex,
        OK,
        OK,
        SWEEP_VS_INSERT,
        "duplicate insert touches under the chunk-store mutex (I3)",
        Some(Bug::B4DuplicateInsertNoTouch),
    ),
    m(
        GcSweep,
        GcSweep,
        OK_BUSY,
        OK_BUSY,
        GC_EXCLUSIVE,
        "GC mutex + process locker exclusive (I5)",
        None,
    ),
    m(
        GcSweep,
        CreateBackup,
        OK,
        OK,
        SWEEP_VS_INSERT,
        "duplicate insert touches under the chunk-store mutex (I3)",
        Some(Bug::B4DuplicateInsertNoTouch),
    ),
    m(
        GcSweep,
        Verify,
        OK,
        OK,
        "the sweep removes only chunks no index references, each under the chunk-store mutex; verify reads referenced chunks (renaming a corrupt one, which this model has none of, also runs under that mutex)",
        "per-chunk sweep under the chunk-store mutex (I3)",
        None,
    ),
    // -- update_manifest --
    m(
        UpdateManifest,
        UpdateManifest,
        OK_BUSY,
        OK_BUSY,
        MANIFEST_RMW,
        "manifest lock around the read-modify-write (I7)",
        Some(Bug::B7ManifestWithoutLock),
    ),
    m(
        UpdateManifest,
        Forget,
        OK_BUSY_NOT_FOUND,
        OK_BUSY,
        FORGET_VS_UPDATE,
        "forget holds the manifest lock while it removes (I7)",
        Some(Bug::B8ForgetIgnoresManifestLock),
    ),
    m(
        UpdateManifest,
        Prune,
        OK_BUSY_NOT_FOUND,
        OK_WARNED,
        FORGET_VS_UPDATE,
        "forget holds the manifest lock while it removes (I7)",
        Some(Bug::B8ForgetIgnoresManifestLock),
    ),
    m(
        UpdateManifest,
        Verify,
        OK_BUSY,
        VERIFY_STATE,
        VERIFY_VS_UPDATE,
        "manifest lock around the read-modify-write (I7)",
        Some(Bug::B7ManifestWithoutLock),
    ),
    // -- forget --
    m(
        Forget,
        ReadIndex,
        OK,
        OK_NOT_FOUND,
        UNLINK_KEEPS_OPEN,
        "unlink-only removal; GC/verify skip a vanished index",
        None,
    ),
    m(
        Forget,
        CreateIndex,
        OK_BUSY,
        BACKUP_VS_REMOVAL,
        BASE_PINNED,
        "base pinned shared, checked at finish (I4)",
        Some(Bug::B3BaseNotPinned),
    ),
    m(
        Forget,
        GcMark,
        OK,
        OK,
        GC_VS_FORGET,
        "vanished index skipped, newest-first relist (I1)",
        Some(Bug::B9GcAbortsOnVanishedIndex),
    ),
    m(
        Forget,
        UpdateManifest,
        OK_BUSY,
        OK_BUSY_NOT_FOUND,
        FORGET_VS_UPDATE,
        "forget holds the manifest lock while it removes (I7)",
        Some(Bug::B8ForgetIgnoresManifestLock),
    ),
    m(
        Forget,
        Forget,
        OK_BUSY_NOT_FOUND,
        OK_BUSY_NOT_FOUND,
        SNAPSHOT_EXCL,
        "exclusive snapshot lock, lock files removed while held (I9)",
        None,
    ),
    m(
        Forget,
        Prune,
        OK_BUSY_NOT_FOUND,
        OK_WARNED,
        SNAPSHOT_EXCL,
        "exclusive snapshot lock; prune removes only through forget's locks",
        Some(Bug::B6PruneForcesRemoval),
    ),
    m(
        Forget,
        CreateBackup,
        OK_BUSY,
        BACKUP_VS_REMOVAL,
        BASE_PINNED,
        "base pinned shared, checked at finish (I4)",
        Some(Bug::B3BaseNotPinned),
    ),
    m(
        Forget,
        Verify,
        OK_BUSY,
        OK_BUSY_NOT_FOUND,
        SHARED_VS_DESTROY,
        "verify pins the snapshot shared (I6)",
        Some(Bug::B5ReadersTakeNoLock),
    ),
    m(
        Forget,
        Reader,
        OK_BUSY,
        OK_BUSY_NOT_FOUND,
        SHARED_VS_DESTROY,
        "reader sessions pin the snapshot shared (I6)",
        Some(Bug::B5ReadersTakeNoLock),
    ),
    m(
        Forget,
        SetProtection,
        FORGET_VS_PROTECT,
        OK_BUSY_NOT_FOUND,
        PROTECT_VS_FORGET,
        "protection checked under the exclusive snapshot lock (I10)",
        None,
    ),
    m(
        Forget,
        OwnerNotes,
        OK,
        OK_BUSY,
        REMOVE_GROUP_TRY,
        "group removal only under a try of the group lock",
        None,
    ),
    // -- prune (keep-last 1): removes S0 --
    m(
        Prune,
        ReadIndex,
        OK,
        OK_NOT_FOUND,
        UNLINK_KEEPS_OPEN,
        "unlink-only removal; GC/verify skip a vanished index",
        None,
    ),
    m(
        Prune,
        CreateIndex,
        OK_WARNED,
        OK_BUSY,
        BASE_PINNED_PRUNE,
        "keep-partial and newest kept; removal through forget's locks (I11)",
        None,
    ),
    m(
        Prune,
        GcMark,
        OK,
        OK,
        GC_VS_FORGET,
        "vanished index skipped, newest-first relist (I1)",
        Some(Bug::B9GcAbortsOnVanishedIndex),
    ),
    m(
        Prune,
        UpdateManifest,
        OK_WARNED,
        OK_BUSY_NOT_FOUND,
        FORGET_VS_UPDATE,
        "forget holds the manifest lock while it removes (I7)",
        Some(Bug::B8ForgetIgnoresManifestLock),
    ),
    m(
        Prune,
        Forget,
        OK_WARNED,
        OK_BUSY_NOT_FOUND,
        SNAPSHOT_EXCL,
        "exclusive snapshot lock; prune removes only through forget's locks",
        Some(Bug::B6PruneForcesRemoval),
    ),
    m(
        Prune,
        Prune,
        OK_WARNED,
        OK_WARNED,
        SNAPSHOT_EXCL,
        "exclusive snapshot lock per removal; failures are warnings",
        None,
    ),
    m(
        Prune,
        CreateBackup,
        OK_WARNED,
        OK_BUSY,
        BASE_PINNED_PRUNE,
        "keep-partial and newest kept; removal through forget's locks (I11)",
        None,
    ),
    m(
        Prune,
        Verify,
        OK_WARNED,
        OK_BUSY_NOT_FOUND,
        SHARED_VS_DESTROY,
        "verify pins the snapshot shared (I6)",
        Some(Bug::B6PruneForcesRemoval),
    ),
    m(
        Prune,
        Reader,
        OK_WARNED,
        OK_BUSY_NOT_FOUND,
        SHARED_VS_DESTROY,
        "reader sessions pin the snapshot shared (I6)",
        Some(Bug::B6PruneForcesRemoval),
    ),
    m(
        Prune,
        SetProtection,
        OK_WARNED,
        OK_BUSY_NOT_FOUND,
        PROTECT_VS_FORGET,
        "protection checked under the exclusive snapshot lock (I10)",
        Some(Bug::B6PruneForcesRemoval),
    ),
    m(
        Prune,
        OwnerNotes,
        OK,
        OK_BUSY,
        REMOVE_GROUP_TRY,
        "group removal only under a try of the group lock",
        None,
    ),
    // -- create_backup: a session just started (locks taken, base pinned) --
    m(
        CreateBackup,
        CreateIndex,
        OK,
        BUSY_EXISTS,
        ONE_WRITER,
        "group lock for the whole session (I5)",
        None,
    ),
    m(
        CreateBackup,
        GcMark,
        OK,
        OK,
        SWEEP_VS_INSERT,
        "duplicate insert touches under the chunk-store mutex (I3); base pinned (I4)",
        Some(Bug::B4DuplicateInsertNoTouch),
    ),
    m(
        CreateBackup,
        GcSweep,
        OK,
        OK,
        SWEEP_VS_INSERT,
        "duplicate insert touches under the chunk-store mutex (I3)",
        Some(Bug::B4DuplicateInsertNoTouch),
    ),
    m(
        CreateBackup,
        Forget,
        OK,
        OK_BUSY,
        BASE_PINNED,
        "base pinned shared, checked at finish (I4)",
        Some(Bug::B3BaseNotPinned),
    ),
    m(
        CreateBackup,
        Prune,
        OK,
        OK_WARNED,
        BASE_PINNED_PRUNE,
        "keep-partial and newest kept; removal through forget's locks (I11)",
        Some(Bug::B6PruneForcesRemoval),
    ),
    m(
        CreateBackup,
        CreateBackup,
        OK,
        BUSY_EXISTS,
        ONE_WRITER,
        "group lock for the whole session (I5)",
        None,
    ),
    m(
        CreateBackup,
        Verify,
        OK,
        OK,
        BASE_SHARED,
        "verify pins shared (I6)",
        None,
    ),
    m(
        CreateBackup,
        Reader,
        OK,
        OK,
        BASE_SHARED,
        "readers lock shared, not exclusive (B17)",
        Some(Bug::B17ReaderTakesExclusiveLock),
    ),
    m(
        CreateBackup,
        SetProtection,
        OK,
        OK_BUSY,
        BASE_VS_PROTECT,
        "base pinned shared (I4, I6)",
        None,
    ),
    m(
        CreateBackup,
        OwnerNotes,
        OK,
        OK_BUSY,
        GROUP_BUSY,
        "group lock (I5)",
        None,
    ),
    // -- verify --
    m(
        Verify,
        GcSweep,
        OK,
        OK,
        "the sweep removes only chunks no index references, each under the chunk-store mutex; verify reads referenced chunks (renaming a corrupt one, which this model has none of, also runs under that mutex)",
        "per-chunk sweep under the chunk-store mutex (I3)",
        None,
    ),
    m(
        Verify,
        UpdateManifest,
        VERIFY_STATE,
        OK_BUSY,
        VERIFY_VS_UPDATE,
        "manifest lock around the read-modify-write (I7)",
        Some(Bug::B7ManifestWithoutLock),
    ),
    m(
        Verify,
        Forget,
        OK_BUSY_NOT_FOUND,
        OK_BUSY,
        SHARED_VS_DESTROY,
        "verify pins the snapshot shared (I6)",
        Some(Bug::B5ReadersTakeNoLock),
    ),
    m(
        Verify,
        Prune,
        OK_BUSY_NOT_FOUND,
        OK_WARNED,
        SHARED_VS_DESTROY,
        "verify pins the snapshot shared (I6)",
        Some(Bug::B5ReadersTakeNoLock),
    ),
    m(
        Verify,
        CreateIndex,
        OK,
        OK,
        BASE_SHARED,
        "verify pins shared (I6)",
        None,
    ),
    m(
        Verify,
        CreateBackup,
        OK,
        OK,
        BASE_SHARED,
        "verify pins shared (I6)",
        None,
    ),
    m(
        Verify,
        Verify,
        VERIFY_STATE,
        VERIFY_STATE,
        "both pin the snapshot shared; their state updates are serialised by the manifest lock, the last one wins",
        "manifest lock around the read-modify-write (I7)",
        None,
    ),
    m(
        Verify,
        Reader,
        OK,
        OK,
        SHARED_SHARED,
        "readers lock shared, not exclusive (B17)",
        Some(Bug::B17ReaderTakesExclusiveLock),
    ),
    m(
        Verify,
        SetProtection,
        OK_BUSY,
        OK_BUSY,
        PROTECT_VS_SHARED,
        "shared vs exclusive snapshot lock (I6, I10)",
        None,
    ),
    // -- reader: a session open on the snapshot --
    m(
        Reader,
        CreateIndex,
        OK,
        OK,
        BASE_SHARED,
        "readers lock shared, not exclusive (B17)",
        Some(Bug::B17ReaderTakesExclusiveLock),
    ),
    m(
        Reader,
        Forget,
        OK,
        OK_BUSY,
        SHARED_VS_DESTROY,
        "reader sessions pin the snapshot shared (I6)",
        Some(Bug::B5ReadersTakeNoLock),
    ),
    m(
        Reader,
        Prune,
        OK,
        OK_WARNED,
        SHARED_VS_DESTROY,
        "reader sessions pin the snapshot shared (I6)",
        Some(Bug::B5ReadersTakeNoLock),
    ),
    m(
        Reader,
        CreateBackup,
        OK,
        OK,
        BASE_SHARED,
        "readers lock shared, not exclusive (B17)",
        Some(Bug::B17ReaderTakesExclusiveLock),
    ),
    m(
        Reader,
        Verify,
        OK,
        OK,
        SHARED_SHARED,
        "readers lock shared, not exclusive (B17)",
        Some(Bug::B17ReaderTakesExclusiveLock),
    ),
    m(
        Reader,
        Reader,
        OK,
        OK,
        SHARED_SHARED,
        "readers lock shared, not exclusive (B17)",
        Some(Bug::B17ReaderTakesExclusiveLock),
    ),
    m(
        Reader,
        SetProtection,
        OK,
        OK_BUSY,
        PROTECT_VS_SHARED,
        "shared vs exclusive snapshot lock (I6, I10)",
        None,
    ),
    // -- set_protection --
    m(
        SetProtection,
        CreateIndex,
        OK_BUSY,
        OK_BUSY,
        BASE_VS_PROTECT,
        "base pinned shared (I4, I6)",
        None,
    ),
    m(
        SetProtection,
        Forget,
        OK_BUSY_NOT_FOUND,
        FORGET_VS_PROTECT,
        PROTECT_VS_FORGET,
        "protection checked under the exclusive snapshot lock (I10)",
        None,
    ),
    m(
        SetProtection,
        Prune,
        OK_BUSY_NOT_FOUND,
        OK_WARNED,
        PROTECT_VS_FORGET,
        "protection checked under the exclusive snapshot lock (I10)",
        Some(Bug::B6PruneForcesRemoval),
    ),
    m(
        SetProtection,
        CreateBackup,
        OK_BUSY,
        OK_BUSY,
        BASE_VS_PROTECT,
        "base pinned shared (I4, I6)",
        None,
    ),
    m(
        SetProtection,
        Verify,
        OK_BUSY,
        OK_BUSY,
        PROTECT_VS_SHARED,
        "shared vs exclusive snapshot lock (I6, I10)",
        None,
    ),
    m(
        SetProtection,
        Reader,
        OK_BUSY,
        OK_BUSY,
        PROTECT_VS_SHARED,
        "shared vs exclusive snapshot lock (I6, I10)",
        None,
    ),
    m(
        SetProtection,
        SetProtection,
        OK_BUSY,
        OK_BUSY,
        SNAPSHOT_EXCL,
        "exclusive snapshot lock",
        None,
    ),
    // -- owner_notes --
    m(
        OwnerNotes,
        CreateIndex,
        OK_BUSY,
        OK_BUSY,
        GROUP_BUSY,
        "group lock (I5)",
        None,
    ),
    m(
        OwnerNotes,
        Forget,
        OK_BUSY,
        OK,
        REMOVE_GROUP_TRY,
        "group removal only under a try of the group lock",
        None,
    ),
    m(
        OwnerNotes,
        Prune,
        OK_BUSY,
        OK,
        REMOVE_GROUP_TRY,
        "group removal only under a try of the group lock",
        None,
    ),
    m(
        OwnerNotes,
        CreateBackup,
        OK_BUSY,
        OK_BUSY,
        GROUP_BUSY,
        "group lock (I5)",
        None,
    ),
    m(
        OwnerNotes,
        OwnerNotes,
        OK_BUSY,
        OK_BUSY,
        "the group lock, exclusive and non-blocking: the second fails busy; each file is replaced atomically",
        "group lock",
        None,
    ),
];

// Reasons shared by several cells.
const R_LOCKLESS_READS: &str = "both only read, and neither removes anything";
const R_OTHER_SNAPSHOT: &str = "the backup writes a new snapshot; the other side reads or \
    changes a finished one and takes no lock the session holds exclusively";
const R_INDEX_TMP: &str = "read_index opens finished snapshots' indexes; the index being \
    written is a temporary file until its rename, and nothing lists temporary names (n2)";
const R_GC_KEEPS_REFERENCED: &str = "the snapshot stays, so GC marks its chunks (I1) and the \
    sweep keeps them; the other side takes no lock GC takes";
const R_GC_NO_MANIFEST: &str = "GC ignores manifests, notes, owners and protection markers; \
    the other side changes nothing GC reads";
const R_ONE_GC_RUN: &str = "a GC run is mark then sweep; a second run is refused, which \
    gc_mark__gc_mark and gc_sweep__gc_sweep model";
const R_SWEEP_AFTER_MARK: &str = "in this cell the referenced chunks are recent, so only the \
    sweep matters, and removing a snapshot removes no chunk; gc_mark__forget and \
    gc_mark__prune model the marking";
const R_MANIFEST_VS_FILES: &str = "the update replaces only the manifest, atomically, and \
    only its unprotected section; the other side does not write the manifest";
const R_MARKER: &str = "protection writes only its marker file under the snapshot lock; the \
    other side neither takes that lock exclusively nor reads the marker";
const R_GROUP_ONLY: &str = "owner and notes are group files replaced atomically under the \
    group lock, which the other side never takes";
const R_NO_LOCK_SHARED: &str = "the other side takes the snapshot lock shared or none, and \
    removes nothing; the raw read needs no lock";

/// Every cell without interaction, and why, in matrix order.
pub const NO_INTERACTION: &[NoInteraction] = &[
    n(ReadIndex, ReadIndex, R_LOCKLESS_READS),
    n(ReadIndex, CreateIndex, R_OTHER_SNAPSHOT),
    n(ReadIndex, GcMark, R_GC_KEEPS_REFERENCED),
    n(ReadIndex, GcSweep, R_GC_KEEPS_REFERENCED),
    n(ReadIndex, UpdateManifest, R_MANIFEST_VS_FILES),
    n(ReadIndex, CreateBackup, R_OTHER_SNAPSHOT),
    n(ReadIndex, Verify, R_NO_LOCK_SHARED),
    n(ReadIndex, Reader, R_NO_LOCK_SHARED),
    n(ReadIndex, SetProtection, R_MARKER),
    n(ReadIndex, OwnerNotes, R_GROUP_ONLY),
    n(CreateIndex, ReadIndex, R_INDEX_TMP),
    n(CreateIndex, UpdateManifest, R_OTHER_SNAPSHOT),
    n(GcMark, ReadIndex, R_GC_KEEPS_REFERENCED),
    n(GcMark, GcSweep, R_ONE_GC_RUN),
    n(GcMark, UpdateManifest, R_GC_NO_MANIFEST),
    n(GcMark, Verify, R_GC_KEEPS_REFERENCED),
    n(GcMark, Reader, R_GC_KEEPS_REFERENCED),
    n(GcMark, SetProtection, R_GC_NO_MANIFEST),
    n(GcMark, OwnerNotes, R_GC_NO_MANIFEST),
    n(GcSweep, ReadIndex, R_GC_KEEPS_REFERENCED),
    n(GcSweep, GcMark, R_ONE_GC_RUN),
    n(GcSweep, UpdateManifest, R_GC_NO_MANIFEST),
    n(GcSweep, Forget, R_SWEEP_AFTER_MARK),
    n(GcSweep, Prune, R_SWEEP_AFTER_MARK),
    n(GcSweep, Reader, R_GC_KEEPS_REFERENCED),
    n(GcSweep, SetProtection, R_GC_NO_MANIFEST),
    n(GcSweep, OwnerNotes, R_GC_NO_MANIFEST),
    n(UpdateManifest, ReadIndex, R_MANIFEST_VS_FILES),
    n(UpdateManifest, CreateIndex, R_OTHER_SNAPSHOT),
    n(UpdateManifest, GcMark, R_GC_NO_MANIFEST),
    n(UpdateManifest, GcSweep, R_GC_NO_MANIFEST),
    n(UpdateManifest, CreateBackup, R_OTHER_SNAPSHOT),
    n(
        UpdateManifest,
        Reader,
        "the manifest is replaced atomically: the reader loads the old or the new one, whole (I8)",
    ),
    n(UpdateManifest, SetProtection, R_MARKER),
    n(UpdateManifest, OwnerNotes, R_GROUP_ONLY),
    n(Forget, GcSweep, R_SWEEP_AFTER_MARK),
    n(Prune, GcSweep, R_SWEEP_AFTER_MARK),
    n(CreateBackup, ReadIndex, R_OTHER_SNAPSHOT),
    n(CreateBackup, UpdateManifest, R_OTHER_SNAPSHOT),
    n(Verify, ReadIndex, R_NO_LOCK_SHARED),
    n(Verify, GcMark, R_GC_KEEPS_REFERENCED),
    n(Verify, OwnerNotes, R_GROUP_ONLY),
    n(Reader, ReadIndex, R_NO_LOCK_SHARED),
    n(Reader, GcMark, R_GC_KEEPS_REFERENCED),
    n(Reader, GcSweep, R_GC_KEEPS_REFERENCED),
    n(
        Reader,
        UpdateManifest,
        "the manifest is replaced atomically: the reader loaded it whole when it opened (I8)",
    ),
    n(Reader, OwnerNotes, R_GROUP_ONLY),
    n(SetProtection, ReadIndex, R_MARKER),
    n(SetProtection, GcMark, R_GC_NO_MANIFEST),
    n(SetProtection, GcSweep, R_GC_NO_MANIFEST),
    n(SetProtection, UpdateManifest, R_MARKER),
    n(SetProtection, OwnerNotes, R_GROUP_ONLY),
    n(OwnerNotes, ReadIndex, R_GROUP_ONLY),
    n(OwnerNotes, GcMark, R_GC_NO_MANIFEST),
    n(OwnerNotes, GcSweep, R_GC_NO_MANIFEST),
    n(OwnerNotes, UpdateManifest, R_GROUP_ONLY),
    n(OwnerNotes, Verify, R_GROUP_ONLY),
    n(OwnerNotes, Reader, R_GROUP_ONLY),
    n(OwnerNotes, SetProtection, R_GROUP_ONLY),
];
