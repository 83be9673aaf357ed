//! The `oxetcdutl` binary: flags in etcdutl's words, then the library's commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use oxetcd_utl::error::{EXIT_BAD_ARGS, EXIT_BAD_FEATURE, EXIT_ERROR};
use oxetcd_utl::print::{self, Format};
use oxetcd_utl::progress::Progress;
use oxetcd_utl::restore::{
    DEFAULT_INITIAL_CLUSTER, DEFAULT_NAME, DEFAULT_PEER_URLS, DEFAULT_TOKEN, RestoreConfig,
};
use oxetcd_utl::{UtlError, defrag, hashkv, layout, migrate, restore, status};

/// A simple command line client for etcd3 data files (oxetcd's etcdutl).
#[derive(Debug, Parser)]
#[command(name = "oxetcdutl", version, disable_help_subcommand = true)]
struct Cli {
    /// Set the output format (simple, json, table, fields).
    #[arg(short = 'w', long = "write-out", global = true, default_value = "simple")]
    write_out: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manages etcd node snapshots.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Defragments the storage of the etcd (a data dir no member runs on).
    Defrag {
        /// Required. Defragments a data directory not in use by etcd.
        #[arg(long = "data-dir")]
        data_dir: PathBuf,
    },
    /// Prints the KV history hash of a given file (or data dir).
    Hashkv {
        /// A snapshot file, a backend file, or a data dir.
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Maximum revision to hash (default: latest revision).
        #[arg(long, default_value_t = 0)]
        rev: i64,
    },
    /// Ends or undoes a move from etcd (a data dir oxetcd converted from etcd's).
    Migrate {
        /// Required. The data directory of a stopped member.
        #[arg(long = "data-dir")]
        data_dir: PathBuf,
        /// The member's WAL directory, if it was run with --wal-dir (default:
        /// <data-dir>/member/wal).
        #[arg(long = "wal-dir")]
        wal_dir: Option<PathBuf>,
        /// Removes etcd's backend kept as member/snap/db.etcd since the conversion.
        #[arg(long)]
        finalize: bool,
        /// Turns the data dir of a stopped member into one etcd 3.4 starts on as the same
        /// member ("etcd"), in place.
        #[arg(long, value_name = "etcd")]
        to: Option<String>,
    },
    /// Prints the version of oxetcdutl.
    Version,
}

#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// Gets backend snapshot status of a given file.
    ///
    /// With --write-out=simple, prints a comma-separated list: hash, revision, total
    /// keys, total size.
    Status {
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Restores an etcd member snapshot to an etcd directory.
    Restore {
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Path to the data directory.
        #[arg(long = "data-dir")]
        data_dir: Option<PathBuf>,
        /// Path to the WAL directory (use --data-dir if none given).
        #[arg(long = "wal-dir")]
        wal_dir: Option<PathBuf>,
        /// Initial cluster configuration for restore bootstrap.
        #[arg(long = "initial-cluster", default_value = DEFAULT_INITIAL_CLUSTER)]
        initial_cluster: String,
        /// Initial cluster token for the etcd cluster during restore bootstrap.
        #[arg(long = "initial-cluster-token", default_value = DEFAULT_TOKEN)]
        initial_cluster_token: String,
        /// List of this member's peer URLs to advertise to the rest of the cluster.
        #[arg(long = "initial-advertise-peer-urls", default_value = DEFAULT_PEER_URLS)]
        initial_advertise_peer_urls: String,
        /// Human-readable name for this member.
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
        /// Ignore snapshot integrity hash value (required if copied from data directory).
        #[arg(long = "skip-hash-check", num_args = 0..=1, default_missing_value = "true",
              default_value = "false")]
        skip_hash_check: bool,
    },
}

/// A failure: the message printed after `Error: ` and the exit code.
struct Failure(String, i32);

impl From<UtlError> for Failure {
    fn from(e: UtlError) -> Failure {
        Failure(e.to_string(), EXIT_ERROR)
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_ERROR } else { 0 };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    match run(cli) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(Failure(message, code)) => {
            eprintln!("Error: {message}");
            ExitCode::from(code as u8)
        }
    }
}

fn format(name: &str) -> Result<Format, Failure> {
    Format::parse(name).ok_or_else(|| Failure("unsupported output format".into(), EXIT_BAD_FEATURE))
}

fn one(files: Vec<PathBuf>, what: &str) -> Result<PathBuf, Failure> {
    match <[PathBuf; 1]>::try_from(files) {
        Ok([file]) => Ok(file),
        Err(_) => Err(Failure(format!("{what} requires exactly one argument"), EXIT_BAD_ARGS)),
    }
}

fn run(cli: Cli) -> Result<String, Failure> {
    match cli.command {
        Command::Snapshot { command: SnapshotCommand::Status { files } } => {
            let file = one(files, "snapshot status")?;
            let format = format(&cli.write_out)?;
            let status = status::status(&file, &Progress::hidden())?;
            Ok(print::status(&status, format))
        }
        Command::Snapshot {
            command:
                SnapshotCommand::Restore {
                    files,
                    data_dir,
                    wal_dir,
                    initial_cluster,
                    initial_cluster_token,
                    initial_advertise_peer_urls,
                    name,
                    skip_hash_check,
                },
        } => {
            let file = one(files, "snapshot restore")?;
            let cfg = RestoreConfig {
                snapshot: file,
                name,
                initial_cluster,
                initial_cluster_token,
                initial_advertise_peer_urls,
                data_dir,
                wal_dir,
                skip_hash_check,
            };
            restore::restore(&cfg, &Progress::on_tty("restoring"))?;
            Ok(String::new())
        }
        Command::Defrag { data_dir } => {
            match defrag::defrag(&data_dir, Progress::on_tty("defragmenting")) {
                // etcd prints nothing when an offline defragmentation succeeds.
                Ok(_) => Ok(String::new()),
                Err(e) => Err(Failure(
                    format!("Failed to defragment etcd data[{}] ({e})", data_dir.display()),
                    EXIT_ERROR,
                )),
            }
        }
        Command::Hashkv { files, rev } => {
            let file = match <[PathBuf; 1]>::try_from(files) {
                Ok([file]) => file,
                Err(files) => {
                    let n = files.len();
                    return Err(Failure(format!("accepts 1 arg(s), received {n}"), EXIT_ERROR));
                }
            };
            let format = format(&cli.write_out)?;
            let hash = hashkv::hashkv(&file, rev, &Progress::hidden())?;
            print::hashkv(&hash, format).ok_or_else(|| {
                Failure("fields not supported as output format".into(), EXIT_BAD_FEATURE)
            })
        }
        Command::Migrate { data_dir, wal_dir, finalize, to } => {
            let wal_dir = wal_dir.unwrap_or_else(|| layout::wal_dir(&data_dir));
            migrate(&data_dir, &wal_dir, finalize, to.as_deref())
        }
        Command::Version => Ok(oxetcd_utl::version()),
    }
}

/// `migrate`: exactly one of `--finalize` and `--to etcd`.
fn migrate(
    data_dir: &Path,
    wal_dir: &Path,
    finalize: bool,
    to: Option<&str>,
) -> Result<String, Failure> {
    match (finalize, to) {
        (true, None) => {
            let done = migrate::finalize(data_dir, wal_dir)?;
            Ok(format!("removed etcd's backend {} ({} bytes)\n", done.path.display(), done.bytes))
        }
        (false, Some("etcd")) => {
            let moved = migrate::to_etcd(data_dir, wal_dir)?;
            Ok(print::moved_out(data_dir, &moved))
        }
        (false, Some(other)) => {
            Err(Failure(format!("--to {other:?}: the only target is \"etcd\""), EXIT_ERROR))
        }
        _ => Err(Failure("give exactly one of --finalize and --to etcd".into(), EXIT_ERROR)),
    }
}
