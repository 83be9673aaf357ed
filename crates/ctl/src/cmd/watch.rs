//! `watch`: a key, a range or a prefix, from a revision, printing each response; with a
//! command after `--`, running it for each event with `ETCD_WATCH_*` set; with `-i`,
//! reading `watch …` and `progress` lines from stdin.

use std::io::BufRead;
use std::sync::Arc;

use oxetcd_client::proto::etcdserverpb::WatchResponse;
use oxetcd_client::{Client, WatchOptions, Watcher};
use tokio::sync::Mutex;

use crate::commands::WATCH_FLAGS;
use crate::error::{CtlError, CtlResult, describe, exit};
use crate::flags::{self, Parsed};
use crate::global::Ctx;
use crate::go;
use crate::output::{self, Printer};

const BAD_ARGS_NUM: &str = "bad number of arguments";
const BAD_ARGS_CONFLICT_ENV: &str = "bad number of arguments (found conflicting environment key)";
const BAD_ARGS_SEPARATOR: &str = "bad number of arguments (found separator --, but no commands)";

/// What one watch is: its key (and range end), its flags and the command to run.
#[derive(Debug, Clone, PartialEq)]
struct WatchSpec {
    args: Vec<String>,
    exec: Vec<String>,
    prefix: bool,
    rev: i64,
    prev_kv: bool,
}

fn env_key() -> (String, String) {
    (
        std::env::var("ETCDCTL_WATCH_KEY").unwrap_or_default(),
        std::env::var("ETCDCTL_WATCH_RANGE_END").unwrap_or_default(),
    )
}

/// etcdctl's `parseWatchArgs` for the command line: positional arguments before `--`
/// (or the environment's key) are the watch; those after it the command.
fn spec_from(parsed: &Parsed, env: &(String, String)) -> Result<WatchSpec, String> {
    let (env_key, env_range) = env;
    let (watch_args, exec) = match parsed.dash_at {
        Some(at) => (parsed.args[..at].to_vec(), parsed.args[at..].to_vec()),
        None => (parsed.args.clone(), Vec::new()),
    };
    if parsed.dash_at.is_some() && exec.is_empty() {
        return Err(BAD_ARGS_SEPARATOR.to_string());
    }
    if parsed.dash_at.is_none() && watch_args.is_empty() && env_key.is_empty() {
        return Err(BAD_ARGS_NUM.to_string());
    }
    if !env_key.is_empty() && !watch_args.is_empty() {
        return Err(BAD_ARGS_CONFLICT_ENV.to_string());
    }
    let mut args = Vec::new();
    if !env_key.is_empty() {
        args.push(env_key.clone());
        if !env_range.is_empty() {
            args.push(env_range.clone());
        }
    }
    args.extend(watch_args);
    Ok(WatchSpec {
        args,
        exec,
        prefix: parsed.bool("prefix"),
        rev: parsed.int("rev"),
        prev_kv: parsed.bool("prev-kv"),
    })
}

fn options(spec: &WatchSpec) -> Result<(String, WatchOptions), String> {
    let Some(key) = spec.args.first() else {
        return Err(BAD_ARGS_NUM.to_string());
    };
    let mut options = WatchOptions::new().with_start_revision(spec.rev);
    if spec.args.len() == 2 {
        if spec.prefix {
            return Err("`range_end` and `--prefix` are mutually exclusive".to_string());
        }
        options = options.with_range(spec.args[1].clone());
    }
    if spec.prefix {
        options = options.with_prefix();
    }
    if spec.prev_kv {
        options = options.with_prev_kv();
    }
    // An empty key with a prefix is every key (clientv3's WithPrefix on "").
    Ok((key.clone(), options))
}

pub async fn watch(ctx: &Ctx) -> CtlResult {
    let env = env_key();
    if env.0.is_empty() && !env.1.is_empty() {
        return Err(CtlError::bad_args(format!(
            "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={}",
            go::quote(&env.1)
        )));
    }
    if ctx.flags.bool("interactive") {
        return interactive(ctx, &env).await;
    }
    let spec = spec_from(&ctx.flags, &env).map_err(CtlError::bad_args)?;
    let (key, options) = options(&spec).map_err(CtlError::bad_args)?;
    let client = watch_client(ctx).await?;
    match client.watch(key, Some(options)).await {
        Ok(watcher) => print_watch(ctx.printer, &client, watcher, spec.exec).await?,
        // A watch the server refused at once (compacted, permission denied) ends as one
        // it canceled later: clientv3 delivers both as a canceled response.
        Err(e) if cancel_reason(&e).is_some() => {
            let reason = cancel_reason(&e).unwrap_or_default();
            output::stderr(&format!("watch was canceled ({reason})\n"));
            if let oxetcd_client::Error::WatchCompacted { compact_revision } = e {
                print_compacted(ctx.printer, &client, compact_revision).await?;
            }
        }
        Err(e) => return Err(CtlError::client(exit::ERROR, &e)),
    }
    Err(CtlError::new(exit::INTERRUPTED, "watch is canceled by the server"))
}

/// etcdctl prints the server's canceling response too (its header without a revision,
/// the compact revision); the client reports only the compaction, so the header comes
/// from the member's status.
async fn print_compacted(printer: Printer, client: &Client, compact_revision: i64) -> CtlResult {
    let header = client.maintenance().status().await.ok().and_then(|s| s.header).map(|mut h| {
        h.revision = 0;
        h
    });
    let response = WatchResponse { header, compact_revision, canceled: true, ..Default::default() };
    printer.watch(&response)
}

/// Why the server canceled a watch, as clientv3's `WatchResponse.Err()` words it.
fn cancel_reason(err: &oxetcd_client::Error) -> Option<String> {
    match err {
        oxetcd_client::Error::WatchCompacted { .. } => {
            Some("etcdserver: mvcc: required revision has been compacted".to_string())
        }
        oxetcd_client::Error::WatchCanceled { reason } => Some(reason.clone()),
        _ => None,
    }
}

/// Watches ask members without a leader to refuse them (clientv3's WithRequireLeader).
async fn watch_client(ctx: &Ctx) -> CtlResult<Client> {
    let options = ctx.client_options()?.with_require_leader(true);
    Client::connect(&ctx.global.endpoints, options)
        .await
        .map_err(|e| CtlError::new(exit::BAD_CONNECTION, describe(&e)))
}

fn is_progress_notify(r: &WatchResponse) -> bool {
    r.events.is_empty()
        && !r.canceled
        && !r.created
        && r.compact_revision == 0
        && r.header.as_ref().is_some_and(|h| h.revision != 0)
}

/// Prints a watch's responses until it ends (etcdctl's `printWatchCh`).
async fn print_watch(
    printer: Printer,
    client: &Client,
    mut watcher: Watcher,
    exec: Vec<String>,
) -> CtlResult {
    loop {
        let response = match watcher.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(e) => {
                let reason = cancel_reason(&e).unwrap_or_else(|| describe(&e));
                output::stderr(&format!("watch was canceled ({reason})\n"));
                if let oxetcd_client::Error::WatchCompacted { compact_revision } = e {
                    print_compacted(printer, client, compact_revision).await?;
                }
                return Ok(());
            }
        };
        if response.canceled {
            output::stderr(&format!("watch was canceled ({})\n", response.cancel_reason));
        }
        if is_progress_notify(&response) {
            let revision = response.header.as_ref().map_or(0, |h| h.revision);
            output::stdout(&format!("progress notify: {revision}\n"));
        }
        printer.watch(&response)?;
        if !exec.is_empty() {
            run_for_events(&response, &exec).await?;
        }
    }
}

async fn run_for_events(response: &WatchResponse, exec: &[String]) -> CtlResult {
    let revision = response.header.as_ref().map_or(0, |h| h.revision);
    for event in &response.events {
        let kv = event.kv.clone().unwrap_or_default();
        let kind = if event.r#type == 1 { "DELETE" } else { "PUT" };
        let status = tokio::process::Command::new(&exec[0])
            .args(&exec[1..])
            .env("ETCD_WATCH_REVISION", revision.to_string())
            .env("ETCD_WATCH_EVENT_TYPE", go::quote(kind))
            .env("ETCD_WATCH_KEY", go::quote(&kv.key))
            .env("ETCD_WATCH_VALUE", go::quote(&kv.value))
            .status()
            .await;
        let failure = match status {
            Ok(s) if s.success() => None,
            Ok(s) => Some(match s.code() {
                Some(code) => format!("exit status {code}"),
                None => "signal: killed".to_string(),
            }),
            Err(e) => Some(format!("exec: {}: {}", go::quote(&exec[0]), e)),
        };
        if let Some(reason) = failure {
            let quoted: Vec<String> = exec.iter().map(go::quote).collect();
            output::stderr(&format!("command [{}] error ({reason})\n", quoted.join(" ")));
            return Err(CtlError::silent(exit::ERROR));
        }
    }
    Ok(())
}

/// `watch -i`: each stdin line `watch [options] key [range_end] [-- cmd…]` starts a
/// watch printed alongside the others; `progress` asks them all for a progress
/// notification.
async fn interactive(ctx: &Ctx, env: &(String, String)) -> CtlResult {
    let client = watch_client(ctx).await?;
    let watchers: Arc<Mutex<Vec<tokio::sync::mpsc::Sender<()>>>> = Arc::default();
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::channel::<std::io::Result<String>>(16);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            if lines_tx.blocking_send(line).is_err() {
                return;
            }
        }
        let _ = lines_tx.blocking_send(Err(std::io::ErrorKind::UnexpectedEof.into()));
    });
    loop {
        let line = match lines_rx.recv().await {
            Some(Ok(line)) => line,
            Some(Err(e)) => {
                let reason = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    "EOF".to_string()
                } else {
                    e.to_string()
                };
                return Err(CtlError::new(
                    exit::INVALID_INPUT,
                    format!("Error reading watch request line: {reason}"),
                ));
            }
            None => {
                return Err(CtlError::new(
                    exit::INVALID_INPUT,
                    "Error reading watch request line: EOF",
                ));
            }
        };
        let args = super::txn::argify(&line)?;
        let Some(first) = args.first() else {
            output::stderr(&format!("Invalid command: {line} (watch and progress supported)\n"));
            continue;
        };
        match first.as_str() {
            "watch" => {
                if args.len() < 2 && env.0.is_empty() {
                    output::stderr(&format!(
                        "Invalid command {line} (command type or key is not provided)\n"
                    ));
                    continue;
                }
                let parsed = flags::parse(WATCH_FLAGS, &args[1..]).map_err(CtlError::bad_args)?;
                let spec = interactive_spec(&parsed, env).map_err(CtlError::bad_args)?;
                let (key, options) = match options(&spec) {
                    Ok(o) => o,
                    Err(e) => {
                        output::stderr(&format!("Invalid command {line} ({e})\n"));
                        continue;
                    }
                };
                let watcher = client
                    .watch(key, Some(options))
                    .await
                    .map_err(|e| CtlError::client(exit::ERROR, &e))?;
                let (progress_tx, mut progress_rx) = tokio::sync::mpsc::channel::<()>(4);
                watchers.lock().await.push(progress_tx);
                let printer = ctx.printer;
                tokio::spawn(async move {
                    let mut watcher = watcher;
                    let (responses_tx, mut responses_rx) = tokio::sync::mpsc::channel(64);
                    loop {
                        tokio::select! {
                            Some(()) = progress_rx.recv() => {
                                let _ = watcher.request_progress().await;
                            }
                            message = watcher.message() => {
                                let end = !matches!(message, Ok(Some(_)));
                                let _ = responses_tx.send(message).await;
                                if end { break; }
                            }
                        }
                        while let Ok(message) = responses_rx.try_recv() {
                            if let Ok(Some(response)) = message {
                                if is_progress_notify(&response) {
                                    let revision =
                                        response.header.as_ref().map_or(0, |h| h.revision);
                                    output::stdout(&format!("progress notify: {revision}\n"));
                                }
                                let _ = printer.watch(&response);
                                if !spec.exec.is_empty()
                                    && run_for_events(&response, &spec.exec).await.is_err()
                                {
                                    std::process::exit(exit::ERROR);
                                }
                            }
                        }
                    }
                });
            }
            "progress" => {
                for watcher in watchers.lock().await.iter() {
                    let _ = watcher.send(()).await;
                }
            }
            _ => {
                output::stderr(&format!("Invalid command {line} (only support watch)\n"));
            }
        }
    }
}

/// `parseWatchArgs` for an interactive line (after its `watch`).
fn interactive_spec(parsed: &Parsed, env: &(String, String)) -> Result<WatchSpec, String> {
    if parsed.dash_at.is_some_and(|at| at == parsed.args.len()) {
        return Err(BAD_ARGS_SEPARATOR.to_string());
    }
    spec_from(parsed, env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Parsed {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        flags::parse(WATCH_FLAGS, &args).unwrap()
    }

    fn none() -> (String, String) {
        (String::new(), String::new())
    }

    #[test]
    fn exec_form_splits_at_the_separator() {
        let spec = spec_from(&parse(&["foo", "--", "echo", "hi"]), &none()).unwrap();
        assert_eq!(spec.args, ["foo"]);
        assert_eq!(spec.exec, ["echo", "hi"]);
    }

    #[test]
    fn bad_argument_counts_read_as_etcdctl() {
        assert_eq!(spec_from(&parse(&[]), &none()).unwrap_err(), BAD_ARGS_NUM);
        assert_eq!(spec_from(&parse(&["foo", "--"]), &none()).unwrap_err(), BAD_ARGS_SEPARATOR);
        let env = ("k".to_string(), String::new());
        assert_eq!(spec_from(&parse(&["foo"]), &env).unwrap_err(), BAD_ARGS_CONFLICT_ENV);
        let spec = spec_from(&parse(&["--", "echo"]), &env).unwrap();
        assert_eq!(spec.args, ["k"]);
    }

    #[test]
    fn a_range_end_excludes_prefix() {
        let spec = spec_from(&parse(&["a", "b", "--prefix"]), &none()).unwrap();
        assert!(options(&spec).is_err());
    }
}
