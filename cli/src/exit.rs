//! Errors of the tool and their exit codes.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | failure: an I/O error (permission denied, no space), verify could not read something |
//! | 2 | bad input: usage, a bad name, a missing path, no datastore, a `--time` in the future |
//! | 3 | busy: a lock is held by another operation (backup, forget, reader, verify, GC) |
//! | 4 | not found: the snapshot, group or archive does not exist |
//! | 5 | damaged data: verify found damage, or a chunk, index or manifest does not parse |
//! | 6 | partial: the backup finished, but entries were skipped or changed while read (warnings) |

use std::fmt;

use store::datastore::Error as StoreError;

/// The exit-code table, for `--help`.
pub const HELP: &str = "Exit codes: 0 success, 1 failure, 2 bad input, 3 busy (a lock is held by \
another operation), 4 not found, 5 damaged data (verify found problems, or a store file does not \
parse), 6 partial backup (entries skipped or changed while read; see the warnings).";

/// Exit code of a backup that finished with warnings.
pub const PARTIAL: u8 = 6;

/// What went wrong, by exit code.
#[derive(Debug)]
pub enum CliError {
    /// Exit 1.
    Failure(String),
    /// Exit 2.
    BadInput(String),
    /// Exit 3.
    Busy(String),
    /// Exit 4.
    NotFound(String),
    /// Exit 5.
    Damaged(String),
}

impl CliError {
    /// The same kind of error with another text.
    pub fn with_text(self, text: String) -> CliError {
        match self {
            CliError::Failure(_) => CliError::Failure(text),
            CliError::BadInput(_) => CliError::BadInput(text),
            CliError::Busy(_) => CliError::Busy(text),
            CliError::NotFound(_) => CliError::NotFound(text),
            CliError::Damaged(_) => CliError::Damaged(text),
        }
    }

    /// The process exit code.
    pub fn code(&self) -> u8 {
        match self {
            CliError::Failure(_) => 1,
            CliError::BadInput(_) => 2,
            CliError::Busy(_) => 3,
            CliError::NotFound(_) => 4,
            CliError::Damaged(_) => 5,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Failure(text) | CliError::BadInput(text) | CliError::NotFound(text) => {
                f.write_str(text)
            }
            CliError::Busy(text) => write!(f, "busy: {text}"),
            CliError::Damaged(text) => write!(f, "damaged: {text}"),
        }
    }
}

impl From<StoreError> for CliError {
    fn from(err: StoreError) -> CliError {
        use store::chunk_store::ChunkStoreError;
        if err.is_contention() {
            let holder = match &err {
                StoreError::GcRunning => "another garbage collection".to_owned(),
                _ => "another operation: a backup or forget (exclusive), or a reader or verify \
                      (shared)"
                    .to_owned(),
            };
            return CliError::Busy(format!("{err}; held by {holder}"));
        }
        let text = err.to_string();
        match &err {
            StoreError::Name(_)
            | StoreError::InvalidOwner(_)
            | StoreError::OwnerMismatch { .. }
            | StoreError::BackupTimeNotNewer { .. }
            | StoreError::SnapshotExists(_)
            | StoreError::GcCutoffOutOfRange { .. }
            | StoreError::NoOwner(_)
            | StoreError::Protected(_) => CliError::BadInput(text),
            StoreError::SnapshotNotFound(_)
            | StoreError::GroupNotFound(_)
            | StoreError::NotInManifest { .. } => CliError::NotFound(text),
            StoreError::Index(err) if err.is_not_found() => CliError::NotFound(text),
            StoreError::Index(store::index::IndexError::BadArchiveName { .. }) => {
                CliError::BadInput(text)
            }
            StoreError::Manifest(err) if err.is_not_found() => CliError::NotFound(text),
            // Writing or reading failed (no space, permission): trouble, not damage.
            StoreError::Index(store::index::IndexError::Io(_))
            | StoreError::Manifest(store::manifest::ManifestError::Io(_)) => {
                CliError::Failure(text)
            }
            StoreError::Index(_)
            | StoreError::Blob(_)
            | StoreError::Manifest(_)
            | StoreError::GcStatusCorrupt { .. }
            | StoreError::IndexMismatch { .. }
            | StoreError::ChunkStore(ChunkStoreError::Corrupt { .. })
            | StoreError::ChunkStore(ChunkStoreError::Missing { .. }) => CliError::Damaged(text),
            _ => CliError::Failure(text),
        }
    }
}

impl From<store::backup_info::NameError> for CliError {
    fn from(err: store::backup_info::NameError) -> CliError {
        CliError::BadInput(err.to_string())
    }
}
