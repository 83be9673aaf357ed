//! `oxetcd`: runs one member, with etcd's flags.

use std::process::ExitCode;

use clap::Parser;
use oxetcd::config::Flags;
use oxetcd::embed::Member;
use oxetcd::logging;

fn main() -> ExitCode {
    let cfg = match Flags::parse().into_config() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("oxetcd: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(cfg.log_level, cfg.logger);
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
        wait_for_signal().await;
        tracing::info!("received signal; shutting down");
        member.close().await;
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
