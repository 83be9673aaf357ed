//! oxetcd-bench: a load generator for any etcd v3 endpoint (etcd or oxetcd), in
//! the spirit of etcd's tools/benchmark. See the crate's README for usage.

mod args;
mod client;
mod error;
mod floor;
mod floor_server;
mod histogram;
mod keys;
mod progress;
mod report;
mod runner;
mod tls;
mod workloads;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::args::{Cli, Command, Workload};
use crate::error::BenchError;
use crate::report::Report;
use crate::workloads::Ctx;

fn max_duration(cli: &Cli) -> Option<Duration> {
    (cli.max_seconds > 0).then(|| Duration::from_secs(cli.max_seconds))
}

async fn bench(cli: &Cli, workload: &Workload) -> Result<Report, BenchError> {
    let max_duration = max_duration(cli);
    let timeout = Duration::from_secs(cli.dial_timeout);
    let tls = tls::client_tls(&cli.tls)?;
    let conns = client::connect(
        &cli.endpoints,
        cli.conns,
        cli.target_leader,
        tls.as_ref(),
        cli.user.as_ref(),
        timeout,
    )
    .await?;
    let ctx = Ctx {
        conns,
        clients: cli.clients,
        total: cli.total,
        progress: !cli.json,
        max_duration,
        via_client: cli.via_client,
        rate: (cli.rate > 0).then_some(cli.rate),
        latency_log: cli.latency_log.is_some(),
    };
    workloads::run(workload, &ctx).await
}

/// Runs the workload on a runtime of worker threads.
fn run_workload(cli: &Cli, workload: &Workload) -> Result<Report, BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::Setup(format!("runtime: {e}")))?;
    runtime.block_on(bench(cli, workload))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Command::Workload(workload) => run_workload(&cli, workload),
        // Blocking, no runtime: nothing but the disk and the loopback on the way.
        Command::Floor(args) => floor::measure(args, cli.total, max_duration(&cli)),
        // Its own runtime of one thread; serves until killed.
        Command::FloorServer(args) => floor_server::serve(args).map(|()| Report::default()),
    };
    match outcome {
        Ok(report) => {
            if let Some(path) = &cli.latency_log {
                let written = std::fs::File::create(path).and_then(|f| {
                    let mut out = std::io::BufWriter::new(f);
                    match &report.log {
                        Some(log) => log.write_tsv(&mut out)?,
                        None => writeln!(out, "sent_unix_ns\tlatency_ns\tok")?,
                    }
                    out.flush()
                });
                if let Err(e) = written {
                    eprintln!("oxetcd-bench: writing {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            let text = if cli.json { format!("{}\n", report.to_json()) } else { report.to_text() };
            // A closed pipe (`| head`) is not a failure of the benchmark.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            if report.ok() == 0 && report.failed() > 0 {
                eprintln!("oxetcd-bench: every request failed");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("oxetcd-bench: {err}");
            ExitCode::FAILURE
        }
    }
}
