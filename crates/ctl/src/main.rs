//! oxetcdctl: etcd's etcdctl (v3 API) on the oxetcd client: the same commands, flags,
//! `ETCDCTL_*` environment, output formats and exit codes as etcdctl 3.4, so scripts and
//! runbooks written for etcdctl work unchanged.

mod cli;
mod clientlog;
mod cmd;
mod commands;
mod completion;
mod error;
mod flags;
mod global;
mod go;
mod hint;
mod json;
mod output;
mod prompt;
mod usage;

/// The etcdctl release whose behaviour oxetcdctl reproduces, reported by `version` (etcd's
/// own test suite and scripts compare it).
pub const VERSION: &str = "3.4.23";
/// The API version etcdctl 3.4 reports.
pub const API_VERSION: &str = "3.4";

fn main() {
    // etcdctl chooses its v2 or v3 command set by ETCDCTL_API; only v3 is here.
    if let Ok(api) = std::env::var("ETCDCTL_API")
        && !api.is_empty()
        && api != "3"
    {
        output::stderr(&format!("unsupported API version {api}\n"));
        std::process::exit(error::exit::ERROR);
    }
    let args: Vec<String> =
        std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    std::process::exit(cli::run(args));
}
