//! `lease grant|revoke|timetolive|list|keep-alive`.

use std::time::Duration;

use crate::error::{CtlError, CtlResult, exit};
use crate::global::Ctx;
use crate::go;
use crate::output::Format;

/// A lease id argument, in hex (etcdctl's `leaseFromArgs`).
fn lease_id(arg: &str) -> CtlResult<i64> {
    go::parse_int(arg, 16)
        .map_err(|e| CtlError::bad_args(format!("bad lease ID arg ({e}), expecting ID in Hex")))
}

pub async fn grant(ctx: &Ctx) -> CtlResult {
    let args = &ctx.flags.args;
    if args.len() != 1 {
        return Err(CtlError::bad_args("lease grant command needs TTL argument"));
    }
    let ttl =
        go::parse_int(&args[0], 10).map_err(|e| CtlError::bad_args(format!("bad TTL ({e})")))?;
    let client = ctx.client().await?;
    let response = ctx.timed(client.lease_grant(ttl, 0)).await.map_err(|e| {
        CtlError::error(format!("failed to grant lease ({})", crate::error::describe(&e)))
    })?;
    ctx.printer.grant(&response)
}

pub async fn revoke(ctx: &Ctx) -> CtlResult {
    let args = &ctx.flags.args;
    if args.len() != 1 {
        return Err(CtlError::bad_args("lease revoke command needs 1 argument"));
    }
    let id = lease_id(&args[0])?;
    let client = ctx.client().await?;
    let response = ctx.timed(client.lease_revoke(id)).await.map_err(|e| {
        CtlError::error(format!("failed to revoke lease ({})", crate::error::describe(&e)))
    })?;
    ctx.printer.revoke(id, &response)
}

pub async fn time_to_live(ctx: &Ctx) -> CtlResult {
    let args = &ctx.flags.args;
    if args.len() != 1 {
        return Err(CtlError::bad_args("lease timetolive command needs lease ID as argument"));
    }
    let keys = ctx.flags.bool("keys");
    let id = lease_id(&args[0])?;
    let client = ctx.client().await?;
    let response = ctx
        .logged(client.lease_time_to_live(id, keys))
        .await
        .map_err(|e| CtlError::client(exit::BAD_CONNECTION, &e))?;
    ctx.printer.time_to_live(&response, keys)
}

pub async fn list(ctx: &Ctx) -> CtlResult {
    let client = ctx.client().await?;
    let response = ctx
        .logged(client.lease_leases())
        .await
        .map_err(|e| CtlError::client(exit::BAD_CONNECTION, &e))?;
    ctx.printer.leases(&response)
}

pub async fn keep_alive(ctx: &Ctx) -> CtlResult {
    let args = &ctx.flags.args;
    if args.len() != 1 {
        return Err(CtlError::bad_args("lease keep-alive command needs lease ID as argument"));
    }
    let id = lease_id(&args[0])?;
    let client = ctx.client().await?;
    if ctx.flags.bool("once") {
        let response = client
            .lease_keep_alive_once(id)
            .await
            .map_err(|e| CtlError::client(exit::BAD_CONNECTION, &e))?;
        if response.ttl <= 0 {
            // clientv3's KeepAliveOnce reports a lease the server no longer has so.
            return Err(CtlError::new(
                exit::BAD_CONNECTION,
                "etcdserver: requested lease not found",
            ));
        }
        return ctx.printer.keep_alive(&response);
    }
    // clientv3's KeepAlive renews at a third of the TTL and its channel closes when the
    // lease is gone; each renewal is printed.
    loop {
        match client.lease_keep_alive_once(id).await {
            Ok(response) if response.ttl > 0 => {
                ctx.printer.keep_alive(&response)?;
                let wait = Duration::from_secs((response.ttl as u64 / 3).max(1));
                tokio::time::sleep(wait).await;
            }
            Ok(_) => break,
            Err(e) if e.etcd_kind() == Some(oxetcd_client::EtcdErrorKind::LeaseNotFound) => break,
            Err(e) if e.etcd_kind().is_some() => {
                return Err(CtlError::client(exit::BAD_CONNECTION, &e));
            }
            // Unreachable for now: clientv3 keeps trying, and so does this loop.
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    if ctx.printer.format == Format::Simple {
        crate::output::stdout(&format!("lease {id:016x} expired or revoked.\n"));
    }
    Ok(())
}
