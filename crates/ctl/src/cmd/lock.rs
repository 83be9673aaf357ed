//! `lock` and `elect`, on the client's concurrency recipes (the same keys and
//! algorithms as clientv3's), held until SIGINT or SIGTERM.

use oxetcd_client::GetOptions;
use oxetcd_client::concurrency::{Election, Mutex, Session, SessionOptions};
use oxetcd_client::proto::etcdserverpb::RangeResponse;

use crate::error::{CtlError, CtlResult, describe, exit};
use crate::global::Ctx;

/// Resolves on SIGINT or SIGTERM (etcdctl's signal.Notify for both).
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn failed(err: oxetcd_client::Error) -> CtlError {
    CtlError::error(describe(&err))
}

pub async fn lock(ctx: &Ctx) -> CtlResult {
    let args = &ctx.flags.args;
    if args.is_empty() {
        return Err(CtlError::bad_args(
            "lock takes a lock name argument and an optional command to execute",
        ));
    }
    let client = ctx.client().await?;
    let session = Session::new(&client, SessionOptions::new().with_ttl(ctx.flags.int("ttl")))
        .await
        .map_err(failed)?;
    let mut mutex = Mutex::new(&session, args[0].as_bytes());
    let signal = interrupted();
    tokio::pin!(signal);
    tokio::select! {
        locked = mutex.lock() => locked.map_err(failed)?,
        _ = &mut signal => {
            // clientv3's Mutex deletes its key when its wait is canceled, so that the
            // next waiter need not wait for the session's lease to expire.
            let _ = client.delete(mutex.key().clone(), None).await;
            return Err(CtlError::error("context canceled"));
        }
    }
    let key = mutex.key().clone();
    if args.len() > 1 {
        let revision = mutex.header().map_or(0, |h| h.revision);
        let status = tokio::process::Command::new(&args[1])
            .args(&args[2..])
            .env("ETCD_LOCK_KEY", String::from_utf8_lossy(&key).into_owned())
            .env("ETCD_LOCK_REV", revision.to_string())
            .status()
            .await;
        let unlocked = mutex.unlock().await;
        return match status {
            Ok(s) if s.success() => unlocked.map_err(failed),
            Ok(s) => Err(CtlError::error(match s.code() {
                Some(code) => format!("exit status {code}"),
                None => "signal: killed".to_string(),
            })),
            Err(e) => Err(CtlError::error(format!("exec: {}: {e}", crate::go::quote(&args[1])))),
        };
    }
    let response = client.get(key.clone(), None).await.map_err(failed)?;
    if response.kvs.is_empty() {
        return Err(CtlError::error("lock lost on init"));
    }
    ctx.printer.get(&response)?;
    tokio::select! {
        _ = &mut signal => mutex.unlock().await.map_err(failed),
        _ = session.done() => Err(CtlError::error("session expired")),
    }
}

pub async fn elect(ctx: &Ctx) -> CtlResult {
    let args = &ctx.flags.args;
    if args.len() != 1 && args.len() != 2 {
        return Err(CtlError::bad_args(
            "elect takes one election name argument and an optional proposal argument",
        ));
    }
    let listen = ctx.flags.bool("listen");
    if args.len() == 1 && !listen {
        return Err(CtlError::bad_args("no proposal argument but -l not set"));
    }
    if args.len() == 2 && listen {
        return Err(CtlError::bad_args("proposal given but -l is set"));
    }
    let client = ctx.client().await?;
    let signal = interrupted();
    tokio::pin!(signal);
    if listen {
        let observer = Election::observer(&client, args[0].as_bytes());
        let mut leaders = observer.observe();
        loop {
            tokio::select! {
                _ = &mut signal => return Ok(()),
                next = leaders.next() => match next {
                    Some(Ok(leader)) => {
                        let response = RangeResponse {
                            header: leader.header,
                            kvs: vec![leader.kv],
                            ..Default::default()
                        };
                        ctx.printer.get(&response)?;
                    }
                    Some(Err(_)) | None => return Err(CtlError::error("elect: observer lost")),
                },
            }
        }
    }
    let session = Session::new(&client, SessionOptions::new()).await.map_err(failed)?;
    let mut election = Election::new(&session, args[0].as_bytes());
    tokio::select! {
        campaigned = election.campaign(args[1].clone().into_bytes()) => campaigned.map_err(failed)?,
        _ = &mut signal => {
            // clientv3's Election resigns when its campaign is canceled: the candidate's
            // key (the election's prefix, then the session's lease in hex) goes.
            let prefix = if args[0].ends_with('/') { args[0].clone() } else { format!("{}/", args[0]) };
            let key = format!("{prefix}{:x}", session.lease_id());
            let _ = client.delete(key, None).await;
            return Err(CtlError::error("context canceled"));
        }
    }
    let key = election.key().cloned().unwrap_or_default();
    let response = client.get(key, Some(GetOptions::new())).await.map_err(failed)?;
    ctx.printer.get(&response)?;
    tokio::select! {
        _ = &mut signal => election.resign().await.map_err(failed),
        _ = session.done() => Err(CtlError::new(exit::ERROR, "elect: session expired")),
    }
}
