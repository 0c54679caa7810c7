//! Datastore layout, listing, manifest updates, protection and forget, on both worlds.

use store::backup_info::BackupGroup;
use store::datastore::Error;
use store::world::{LockMode, World};

use crate::both_worlds;
use crate::support::{Env, new_datastore, plant_manifest, plant_snapshot, snapshot};

both_worlds!(
    listing_sees_groups_and_snapshots,
    update_manifest_changes_only_unprotected,
    forget_removes_snapshot_and_empty_group,
    forget_fails_busy_while_snapshot_in_use,
    protected_snapshot_is_not_forgotten,
    forget_waits_for_manifest_lock_then_gives_up,
    forget_leaves_group_held_by_a_backup,
);

fn listing_sees_groups_and_snapshots(env: &impl Env) {
    let store = new_datastore(env);
    let s1 = snapshot("vm/100", "2024-01-01T00:00:00Z");
    let s2 = snapshot("vm/100", "2024-01-02T00:00:00Z");
    let s3 = snapshot("host/web", "2024-01-01T00:00:00Z");
    plant_snapshot(&store, &s2, false);
    plant_snapshot(&store, &s1, true);
    plant_snapshot(&store, &s3, true);
    // Entries that are not groups or snapshots are ignored.
    store
        .world()
        .create_dir_all(&store.base().join("vm/..bad"))
        .ok();
    store
        .world()
        .create_dir_all(&store.base().join("vm/100/not-a-time"))
        .expect("mkdir");
    let groups = store.list_groups().expect("groups");
    assert_eq!(
        groups,
        vec![s1.group.clone(), s3.group.clone()],
        "vm before host"
    );
    let listed = store.list_snapshots(&s1.group).expect("snapshots");
    let summary: Vec<_> = listed
        .iter()
        .map(|info| (info.dir.clone(), info.finished))
        .collect();
    assert_eq!(summary, vec![(s1.clone(), true), (s2.clone(), false)]);
    let vanished = BackupGroup::from_relative_path("ct/1").expect("group");
    assert!(store.list_snapshots(&vanished).expect("empty").is_empty());
}

fn update_manifest_changes_only_unprotected(env: &impl Env) {
    let store = new_datastore(env);
    let dir = snapshot("vm/100", "2024-01-01T00:00:00Z");
    plant_snapshot(&store, &dir, true);
    let blob = b"client log";
    store
        .update_manifest(&dir, |_| {})
        .expect("an update that changes nothing");
    let mut manifest = store.load_manifest(&dir).expect("load");
    let info = store::manifest::FileInfo::for_blob("client.log.blob", blob).expect("file info");
    manifest.add_file(info).expect("add");
    plant_manifest(&store, &dir, &manifest);
    store
        .update_manifest(&dir, |manifest| manifest.set_notes(Some("first")))
        .expect("notes");
    assert_eq!(
        store
            .load_manifest(&dir)
            .expect("load")
            .notes()
            .expect("notes"),
        Some("first")
    );
    let err = store
        .update_manifest(&dir, |manifest| manifest.files.clear())
        .expect_err("protected field");
    assert!(matches!(err, Error::ProtectedManifestFields(_)), "{err:?}");
    let reloaded = store.load_manifest(&dir).expect("load");
    assert_eq!(reloaded.files.len(), 1);
    assert_eq!(reloaded.notes().expect("notes"), Some("first"));
    let missing = snapshot("vm/100", "2024-02-01T00:00:00Z");
    let err = store
        .update_manifest(&missing, |_| {})
        .expect_err("no manifest");
    assert!(
        matches!(err, Error::Manifest(ref inner) if inner.is_not_found()),
        "{err:?}"
    );
}

fn forget_removes_snapshot_and_empty_group(env: &impl Env) {
    let store = new_datastore(env);
    let (s1, s2) = (
        snapshot("vm/100", "2024-01-01T00:00:00Z"),
        snapshot("vm/100", "2024-01-02T00:00:00Z"),
    );
    plant_snapshot(&store, &s1, true);
    plant_snapshot(&store, &s2, true);
    store.forget_snapshot(&s1).expect("forget s1");
    assert!(!store.snapshot_exists(&s1).expect("stat"));
    assert!(
        store
            .world()
            .try_metadata(&store.group_path(&s1.group))
            .expect("stat")
            .is_some()
    );
    store.forget_snapshot(&s2).expect("forget s2");
    assert!(
        store
            .world()
            .try_metadata(&store.group_path(&s1.group))
            .expect("stat")
            .is_none()
    );
    assert!(store.list_groups().expect("groups").is_empty());
    let lock_files = store
        .world()
        .read_dir(&store.base().join(".locks"))
        .expect("lock dir");
    assert!(lock_files.is_empty(), "lock files left: {lock_files:?}");
    assert!(matches!(
        store.forget_snapshot(&s1),
        Err(Error::SnapshotNotFound(_))
    ));
}

fn forget_fails_busy_while_snapshot_in_use(env: &impl Env) {
    let store = new_datastore(env);
    let dir = snapshot("ct/7", "2024-01-01T00:00:00Z");
    plant_snapshot(&store, &dir, true);
    let reader = store
        .lock_snapshot(&dir, LockMode::Shared)
        .expect("reader session");
    let err = store.forget_snapshot(&dir).expect_err("in use");
    assert!(err.is_contention(), "{err:?}");
    assert!(store.snapshot_exists(&dir).expect("stat"));
    drop(reader);
    store
        .forget_snapshot(&dir)
        .expect("forget after the reader");
}

fn protected_snapshot_is_not_forgotten(env: &impl Env) {
    let store = new_datastore(env);
    let dir = snapshot("host/web", "2024-01-01T00:00:00Z");
    plant_snapshot(&store, &dir, true);
    store.set_protection(&dir, true).expect("protect");
    assert!(store.list_snapshots(&dir.group).expect("list")[0].protected);
    assert!(matches!(
        store.forget_snapshot(&dir),
        Err(Error::Protected(_))
    ));
    assert!(store.snapshot_exists(&dir).expect("stat"));
    store.set_protection(&dir, false).expect("unprotect");
    store.forget_snapshot(&dir).expect("forget");
    let missing = snapshot("host/web", "2025-01-01T00:00:00Z");
    assert!(matches!(
        store.set_protection(&missing, true),
        Err(Error::SnapshotNotFound(_))
    ));
}

fn forget_waits_for_manifest_lock_then_gives_up(env: &impl Env) {
    let store = new_datastore(env);
    let dir = snapshot("vm/100", "2024-01-01T00:00:00Z");
    plant_snapshot(&store, &dir, true);
    let updater = store.lock_manifest(&dir).expect("a slow manifest update");
    let err = store.forget_snapshot(&dir).expect_err("manifest locked");
    assert!(err.is_contention(), "{err:?}");
    assert!(store.snapshot_exists(&dir).expect("stat"));
    drop(updater);
    store.forget_snapshot(&dir).expect("forget");
}

fn forget_leaves_group_held_by_a_backup(env: &impl Env) {
    let store = new_datastore(env);
    let dir = snapshot("vm/100", "2024-01-01T00:00:00Z");
    plant_snapshot(&store, &dir, true);
    let backup = store.lock_group(&dir.group).expect("a running backup");
    store
        .forget_snapshot(&dir)
        .expect("forget the last snapshot");
    assert!(
        store
            .world()
            .try_metadata(&store.group_path(&dir.group))
            .expect("stat")
            .is_some()
    );
    store
        .remove_group_locked(&backup)
        .expect("the holder cleans up");
    assert!(store.list_groups().expect("groups").is_empty());
}
