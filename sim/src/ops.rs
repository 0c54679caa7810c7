//! The [`World`] implementation of [`SimWorld`]: every operation passes the disk's gate once
//! (counted, maybe failed or traced), then acts on the namespace (module `namespace`) or opens
//! a [`SimFile`] (module `file`).

use std::io;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use store::sync::SyncFamily;
use store::world::{DirEntry, Metadata, OpenOptions, SharedObject, World};

use crate::file::SimFile;
use crate::gate::OpKind;
use crate::world::SimWorld;

impl<S: SyncFamily> World for SimWorld<S> {
    type Sync = S;
    type File = SimFile<S>;

    fn now(&self) -> i64 {
        self.disk.now()
    }

    fn sleep(&self, duration: Duration) {
        let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        *self.disk.clock.lock() += secs;
        self.trace_clock(|| format!("{secs:+} s (sleep)"));
    }

    fn unique_id(&self) -> u64 {
        let mut ids = self.disk.ids.lock();
        let id = ids.next_unique;
        ids.next_unique += 1;
        id
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.gated(OpKind::CreateDir, false, path, String::new, || {
            self.disk.create_dir(path)
        })
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let detail = || "all".to_owned();
        self.gated(OpKind::CreateDir, false, path, detail, || {
            self.disk.create_dir_all(path)
        })
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.gated(OpKind::RemoveDir, false, path, String::new, || {
            self.disk.remove_dir(path)
        })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.gated(OpKind::RemoveFile, false, path, String::new, || {
            self.disk.remove_file(path)
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let detail = || format!("-> {}", to.display());
        self.gated(OpKind::Rename, false, from, detail, || {
            self.disk.rename(from, to)
        })
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        self.gated(OpKind::ReadDir, false, path, String::new, || {
            self.disk.read_dir(path)
        })
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.gated(OpKind::Metadata, false, path, String::new, || {
            self.disk.with_object(path, |inode, state| {
                Ok(state.metadata(inode.ino, inode.kind))
            })
        })
    }

    fn touch_atime(&self, path: &Path) -> io::Result<()> {
        self.gated(OpKind::Touch, false, path, String::new, || self.touch(path))
    }

    fn process_shared(&self, key: &Path, make: &mut dyn FnMut() -> SharedObject) -> SharedObject {
        let mut registry = self.process.shared.lock();
        registry.retain(|_, object| object.strong_count() > 0);
        if let Some(object) = registry.get(key).and_then(Weak::upgrade) {
            return object;
        }
        let object = make();
        registry.insert(key.to_owned(), Arc::downgrade(&object));
        object
    }

    fn open(&self, path: &Path, options: OpenOptions) -> io::Result<SimFile<S>> {
        let creates = options.create || options.create_new;
        self.gated(
            OpKind::Open,
            creates,
            path,
            || open_detail(options),
            || {
                let (inode, ofd) = self.disk.open_inode(path, options)?;
                let traced_path = self.disk.gate.tracing().then(|| path.to_owned());
                Ok(SimFile::new(self.clone(), inode, ofd, options, traced_path))
            },
        )
    }

    fn fsync_dir(&self, path: &Path) -> io::Result<()> {
        self.gated(OpKind::FsyncDir, false, path, String::new, || {
            let ino = self.disk.check_live_dir(path)?;
            self.disk.durable().sync_dir(ino);
            self.disk.stats.lock().fsync_dir += 1;
            Ok(())
        })
    }

    fn syncfs(&self, path: &Path) -> io::Result<()> {
        self.gated(OpKind::Syncfs, false, path, String::new, || {
            self.disk.with_object(path, |_, _| Ok(()))?;
            self.disk.durable().sync_all_changes();
            self.disk.stats.lock().syncfs += 1;
            Ok(())
        })
    }
}

/// The trace detail of an `open`: its access and creation flags.
fn open_detail(options: OpenOptions) -> String {
    let flags = [
        (options.read, "read"),
        (options.write, "write"),
        (options.create, "create"),
        (options.create_new, "create_new"),
        (options.truncate, "truncate"),
    ];
    let set: Vec<&str> = flags
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect();
    set.join(", ")
}
