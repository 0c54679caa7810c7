//! `chunkstore`: the command-line tool for a chunk store on a real disk.
//!
//! ```text
//! chunkstore -s /srv/store init
//! chunkstore -s /srv/store backup host/web /etc          # a directory: tar stream, FastCDC chunks
//! chunkstore -s /srv/store backup vm/100 disk.img        # a file: fixed 4 MiB chunks
//! chunkstore -s /srv/store list
//! chunkstore -s /srv/store restore host/web /tmp/etc     # the group's newest finished snapshot
//! chunkstore -s /srv/store prune host/web --keep-daily 7
//! chunkstore -s /srv/store gc
//! chunkstore -s /srv/store verify
//! ```
//!
//! Exit codes: see [`exit`]. Every command takes `--json` for machine-readable output.

mod archive;
mod backup;
mod beneath;
mod commands;
mod exit;
mod filecache;
mod paxread;
mod progress;
mod restore;
mod tarread;
mod tarwrite;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// A chunk store in the style of a Proxmox Backup Server datastore, on a real disk.
#[derive(Debug, Parser)]
#[command(name = "chunkstore", version, about, after_help = exit::HELP)]
pub struct Cli {
    /// The datastore directory.
    #[arg(short, long, env = "CHUNKSTORE", global = true, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Directory for the lock files instead of `<store>/.locks`, for a read-only datastore
    /// or a user without write access to it. Locks taken there do not exclude processes that
    /// use the datastore's own lock directory (a backup, prune or GC running meanwhile).
    #[arg(long, env = "CHUNKSTORE_LOCK_DIR", global = true, value_name = "DIR")]
    pub lock_dir: Option<PathBuf>,
    /// Print results as JSON on stdout (no progress bars).
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Durability of writes: none, file (fsync every file and directory), filesystem (one syncfs
    /// at the end of a backup).
    #[arg(long, global = true, value_enum, default_value_t = SyncArg::Filesystem)]
    pub sync_level: SyncArg,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// `--sync-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SyncArg {
    /// No fsync at all.
    None,
    /// fsync each file and its directory.
    File,
    /// One syncfs at the end of a backup.
    Filesystem,
}

/// `chunkstore backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The group, `<type>/<id>` with type vm, ct or host.
    pub group: String,
    /// The directories or files to back up. One directory is archived as the stream's root;
    /// several sources are archived under their file names.
    #[arg(required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// Archive name (default: `root.tar.didx` for a tree, `<file name>.fidx` for one file).
    #[arg(long)]
    pub archive: Option<String>,
    /// Backup time, RFC 3339 UTC (default: now); at most 5 minutes in the future.
    #[arg(long)]
    pub time: Option<String>,
    /// Owner recorded for a new group, checked for an existing one.
    #[arg(long, default_value = "root@local")]
    pub owner: String,
    /// Fixed chunk size for a file image, in bytes (a power of two).
    #[arg(long, default_value_t = 4 << 20)]
    pub chunk_size: u64,
    /// Leave out entries matching a shell pattern: against the file name; against the path
    /// in the archive when the pattern has a `/`; against the absolute path on disk when it
    /// starts with `/` (repeatable). An excluded directory is left out with its contents.
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Read exclude patterns from a file, one a line (blank lines and `#` comments skipped;
    /// repeatable).
    #[arg(long, value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// Do not descend into directories on other filesystems than their source's (mount
    /// points are archived as empty directories).
    #[arg(long)]
    pub one_file_system: bool,
    /// zstd level of the chunks written (1 fast to 19 small; 0 stores them uncompressed).
    #[arg(long, default_value_t = 3, value_name = "LEVEL",
          value_parser = clap::value_parser!(i32).range(0..=19))]
    pub compress: i32,
    /// Read every file, ignoring (and not writing) the file metadata cache.
    #[arg(long)]
    pub no_file_cache: bool,
    /// Directory of the file metadata cache (default `$XDG_CACHE_HOME/chunkstore` or
    /// `~/.cache/chunkstore`).
    #[arg(long, env = "CHUNKSTORE_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a datastore.
    Init {
        /// Hex digits of the chunk prefix directories: 2 (256 directories) suits a store of up
        /// to a few million chunks; 4 (65536) is Proxmox Backup Server's layout; 1 makes 16.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=4))]
        fanout: u8,
    },
    /// Back up directories and files (one tar stream in a dynamic index), or one file as an
    /// image (fixed chunks).
    Backup(BackupArgs),
    /// List groups and snapshots.
    List {
        /// Only this group.
        group: Option<String>,
    },
    /// Restore an archive of a snapshot.
    Restore {
        /// A snapshot `<type>/<id>/<time>`, or a group for its newest finished snapshot.
        snapshot: String,
        /// Where to restore: a directory for a directory archive, a file for an image.
        target: PathBuf,
        /// Which archive (default: the snapshot's only index archive).
        #[arg(long)]
        archive: Option<String>,
        /// What may be replaced in a target that already holds content: `same-kind` (a file by
        /// a file, a link by a link; directories merged; anything else is an error naming it),
        /// `never`, or `always` (a directory in the way is removed with its contents).
        #[arg(long, value_enum, default_value_t = tarread::Overwrite::SameKind)]
        overwrite: tarread::Overwrite,
        /// Restore only entries whose path matches this shell pattern, and everything beneath
        /// a matching directory (repeatable; the directories on the way are made).
        #[arg(long, value_name = "PATTERN")]
        include: Vec<String>,
    },
    /// List the entries of a directory archive of a snapshot.
    Ls {
        /// A snapshot `<type>/<id>/<time>`, or a group for its newest finished snapshot.
        snapshot: String,
        /// Which archive (default: the snapshot's only index archive).
        #[arg(long)]
        archive: Option<String>,
    },
    /// Write an archive to stdout: a directory archive as its tar stream (GNU tar and bsdtar
    /// read it: `chunkstore cat host/web | tar -t`), an image as its bytes, or with a path the
    /// data of that one file.
    Cat {
        /// A snapshot `<type>/<id>/<time>`, or a group for its newest finished snapshot.
        snapshot: String,
        /// A regular file of a directory archive (`etc/hosts`); omit for the whole stream.
        path: Option<PathBuf>,
        /// Which archive (default: the snapshot's only index archive).
        #[arg(long)]
        archive: Option<String>,
    },
    /// Remove one snapshot.
    Forget {
        /// `<type>/<id>/<time>`.
        snapshot: String,
    },
    /// Remove the snapshots of a group (or of every group) that no keep option selects.
    Prune {
        /// `<type>/<id>` (omit with `--all`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        group: Option<String>,
        /// Prune every group with the same keep options.
        #[arg(long)]
        all: bool,
        /// Keep the newest N snapshots.
        #[arg(long, default_value_t = 0)]
        keep_last: u32,
        /// Keep the newest snapshot of each of the last N hours.
        #[arg(long, default_value_t = 0)]
        keep_hourly: u32,
        /// ... of each of the last N days.
        #[arg(long, default_value_t = 0)]
        keep_daily: u32,
        /// ... of each of the last N ISO weeks.
        #[arg(long, default_value_t = 0)]
        keep_weekly: u32,
        /// ... of each of the last N months.
        #[arg(long, default_value_t = 0)]
        keep_monthly: u32,
        /// ... of each of the last N years.
        #[arg(long, default_value_t = 0)]
        keep_yearly: u32,
        /// Offset of the local time zone from UTC in minutes, for the calendar periods.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        utc_offset_minutes: i32,
        /// Only show what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Garbage collection: remove chunks no snapshot references.
    Gc {
        /// Chunks not referenced for this many minutes are removed (default 1445: 24 h 5 min).
        #[arg(long)]
        cutoff_minutes: Option<u64>,
        /// Skip the check that the filesystem honours access-time updates.
        #[arg(long)]
        no_atime_check: bool,
    },
    /// Re-read and re-hash every chunk of a snapshot, a group or the whole datastore.
    Verify {
        /// A snapshot or a group (default: everything).
        target: Option<String>,
        /// Skip snapshots that already have a verify state.
        #[arg(long)]
        skip_verified: bool,
        /// Write nothing: no verify state saved, damaged chunks not renamed to `.bad` (implied
        /// when the datastore directory is not writable).
        #[arg(long)]
        read_only: bool,
    },
    /// Protect a snapshot from forget and prune (or lift the protection).
    Protect {
        /// `<type>/<id>/<time>`.
        snapshot: String,
        /// Lift the protection.
        #[arg(long)]
        off: bool,
    },
    /// Show or set a snapshot's notes.
    Notes {
        /// `<type>/<id>/<time>`.
        snapshot: String,
        /// New notes (omit to show them).
        text: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(&cli) {
        Ok(code) => code,
        Err(err) => {
            if cli.json {
                let value =
                    serde_json::json!({ "error": err.to_string(), "exit-code": err.code() });
                commands::print_out(&format!("{value:#}"));
            } else {
                eprintln!("chunkstore: {err}");
            }
            ExitCode::from(err.code())
        }
    }
}
