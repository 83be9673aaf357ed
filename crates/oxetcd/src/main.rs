//! `oxetcd`: runs one member, with etcd's flags.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use oxetcd::config::{self, Flags};
use oxetcd::embed::Member;
use oxetcd::logging;

fn main() -> ExitCode {
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
    oxetcd_etcdserver::failpoints_from_env();
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
            _ = wait_for_signal() => {
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
        member.close().await;
        // The final backend commit on close can fail too.
        if server.fatal().is_some() {
            tracing::info!("stopped after a storage failure");
            return ExitCode::FAILURE;
        }
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
