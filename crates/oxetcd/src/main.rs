//! `oxetcd`: runs one member, with etcd's flags; `oxetcd gateway start` runs etcd's gateway,
//! `oxetcd grpc-proxy start` etcd's gRPC proxy.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use oxetcd::config::{self, Flags};
use oxetcd::embed::Member;
use oxetcd::{gateway, grpc_proxy, logging, signal};

/// mimalloc rather than glibc's malloc: a request allocates a few dozen small blocks
/// across threads (connection task, raft loop, apply), which glibc serves with arena
/// locks and a small per-thread cache; measured in docs/benchmarks.md (issue #19).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // etcd's own subcommands, named first (etcdmain.Main); anything else is a member's flags.
    match std::env::args_os().nth(1).as_ref().and_then(|a| a.to_str()) {
        Some("gateway") => return gateway::main(std::env::args_os().skip(1)),
        Some("grpc-proxy") => return grpc_proxy::main(std::env::args_os().skip(1)),
        _ => {}
    }
    let flags = match Flags::try_parse() {
        Ok(flags) => flags,
        // `--help` and `--version` print on stdout and exit 0.
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            eprintln!("oxetcd: {}", config::command_line_error(&e));
            return ExitCode::from(config::COMMAND_LINE_EXIT_CODE);
        }
    };
    let cfg = match flags.into_config() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("oxetcd: {e}");
            return ExitCode::from(config::CONFIG_EXIT_CODE);
        }
    };
    if let Err(e) = logging::init(cfg.log_level, cfg.logger, &cfg.log_outputs) {
        eprintln!("oxetcd: {e}");
        return ExitCode::FAILURE;
    }
    exit_on_panic();
    if let Err(e) = oxetcd_etcdserver::failpoints_from_env() {
        eprintln!("oxetcd: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("oxetcd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let member = match Member::start(cfg).await {
            Ok(member) => member,
            Err(e) => {
                tracing::error!(error = %e, "failed to start");
                eprintln!("oxetcd: {e}");
                return ExitCode::FAILURE;
            }
        };
        let server = member.server.clone();
        tokio::select! {
            () = signal::terminated() => {
                tracing::info!("received signal; shutting down");
                // A leader hands leadership over first, so a rolling restart never
                // waits an election timeout for a new leader (etcd does the same).
                if let Err(e) = server.transfer_leadership().await {
                    tracing::warn!(error = %e, "leadership transfer failed; stopping anyway");
                }
            }
            // Logged where it was recorded, once.
            _ = server.wait_fatal() => {}
            _ = server.wait_removed() => {}
        }
        // Closing waits for the backend file to close, which a clone held here would keep
        // open.
        drop(server);
        // The final backend commit on close can fail too.
        if member.close().await.is_some() {
            tracing::info!("stopped after a storage failure");
            return ExitCode::FAILURE;
        }
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// The exit code after a panic: Go's, which etcd exits with when it panics.
const PANIC_EXIT_CODE: i32 = 2;

/// Makes a panic in any thread end the process, as a panic ends etcd's: otherwise a
/// member whose raft loop or backend committer died would live on, answering
/// serializable reads from a store that no longer changes and taking requests it never
/// completes. The default hook prints the panic (and the backtrace, if asked) first.
fn exit_on_panic() {
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        print(info);
        tracing::error!(panic = %info, "a thread panicked; the member stops");
        std::process::exit(PANIC_EXIT_CODE);
    }));
}
