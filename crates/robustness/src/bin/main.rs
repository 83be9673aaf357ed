//! `oxetcd-robustness`: runs seeded fault scenarios against the real binary and checks
//! their histories (`run`), or checks a history a failing run kept (`check`).
//! `scripts/robustness.sh` builds everything and calls `run`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use oxetcd_robustness::history::History;
use oxetcd_robustness::linearizability::MAX_EXPLORED;
use oxetcd_robustness::nemesis::{ALL_CLASSES, FaultClass};
use oxetcd_robustness::scenario::{self, RunReport, Scenario};
use oxetcd_robustness::workload::Workload;

const USAGE: &str = "\
usage: oxetcd-robustness run --oxetcd PATH [--duration SECS]
                             [--faults kill,pause,failpoint,partition,delay]
                             [--seed N] [--runs N] [--scenario-secs SECS] [--members N]
                             [--out DIR] [--keep-all]
       oxetcd-robustness check HISTORY.json

run: one history after another, each SCENARIO-SECS long (default 20) with one fault class
(taken in turn) and seed N, N+1, ..., until DURATION (default 60) or RUNS histories;
prints `N histories, M anomalies`. A history with an anomaly is kept under DIR (default
robustness-runs) with its member logs and the command that replays it; --keep-all keeps
every history. partition and delay need root and iproute2 (network namespaces).";

struct RunArgs {
    binary: PathBuf,
    duration: Duration,
    faults: Vec<FaultClass>,
    seed: u64,
    runs: Option<u64>,
    scenario: Duration,
    members: usize,
    out: PathBuf,
    keep_all: bool,
}

fn parse_run(args: &[String]) -> Result<RunArgs, String> {
    let mut run = RunArgs {
        binary: PathBuf::new(),
        duration: Duration::from_secs(60),
        faults: ALL_CLASSES.to_vec(),
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs()),
        runs: None,
        scenario: Duration::from_secs(20),
        members: 3,
        out: PathBuf::from("robustness-runs"),
        keep_all: false,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        if flag == "--keep-all" {
            run.keep_all = true;
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|e| format!("{flag} {value}: {e}"));
        match flag.as_str() {
            "--oxetcd" => run.binary = PathBuf::from(value),
            "--duration" => run.duration = Duration::from_secs(number()?),
            "--faults" => {
                run.faults = value.split(',').map(str::parse).collect::<Result<_, _>>()?;
            }
            "--seed" => run.seed = number()?,
            "--runs" => run.runs = Some(number()?),
            "--scenario-secs" => run.scenario = Duration::from_secs(number()?),
            "--members" => run.members = number()? as usize,
            "--out" => run.out = PathBuf::from(value),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if run.binary.as_os_str().is_empty() {
        return Err("--oxetcd PATH is required".into());
    }
    if run.faults.is_empty() {
        return Err("--faults names no class".into());
    }
    Ok(run)
}

fn print_report(n: u64, class: FaultClass, report: &RunReport) {
    println!(
        "history {n}: seed {} faults {class}: {} operations ({} unknown), {} watch responses, \
         {} compactions ({} watches canceled by one), {} faults, {} anomalies{}",
        report.seed,
        report.operations,
        report.unknown_outcomes,
        report.watch_responses,
        report.compactions,
        report.watches_compacted,
        report.faults.len(),
        report.anomalies.len(),
        if report.inconclusive.is_empty() {
            String::new()
        } else {
            format!(", inconclusive keys {:?}", report.inconclusive)
        }
    );
    for fault in &report.faults {
        println!("  fault {fault}");
    }
    for anomaly in &report.anomalies {
        println!("  ANOMALY {anomaly}");
    }
    if let Some(dir) = &report.kept {
        println!("  kept {} (replay: {}/replay.txt)", dir.display(), dir.display());
    }
}

async fn run(args: RunArgs) -> ExitCode {
    let started = Instant::now();
    let (mut histories, mut anomalies) = (0u64, 0usize);
    loop {
        if args.runs.is_some_and(|runs| histories >= runs)
            || (args.runs.is_none() && histories > 0 && started.elapsed() >= args.duration)
        {
            break;
        }
        let class = args.faults[(histories % args.faults.len() as u64) as usize];
        let scenario = Scenario {
            binary: args.binary.clone(),
            seed: args.seed + histories,
            faults: vec![class],
            duration: args.scenario,
            members: args.members,
            workload: Workload::default(),
            work_dir: args.out.clone(),
            max_explored: MAX_EXPLORED,
            keep_always: args.keep_all,
        };
        let report = scenario::run(&scenario).await;
        histories += 1;
        anomalies += report.anomalies.len();
        print_report(histories, class, &report);
    }
    println!("{histories} histories, {anomalies} anomalies ({:.0?})", started.elapsed());
    if anomalies == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn check(path: &str) -> ExitCode {
    let history: History = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(history) => history,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut report = RunReport { seed: history.seed, ..RunReport::default() };
    scenario::check(&history, MAX_EXPLORED, &mut report);
    println!(
        "seed {}: {} operations, {} anomalies, inconclusive keys {:?}",
        report.seed,
        report.operations,
        report.anomalies.len(),
        report.inconclusive
    );
    for anomaly in &report.anomalies {
        println!("  ANOMALY {anomaly}");
    }
    if report.anomalies.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match args.first().map(String::as_str) {
        Some("run") => match parse_run(&args[1..]) {
            Ok(run_args) => runtime.block_on(run(run_args)),
            Err(e) => {
                eprintln!("{e}\n{USAGE}");
                ExitCode::from(2)
            }
        },
        Some("check") if args.len() == 2 => check(&args[1]),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
