//! member, endpoint, move-leader, alarm, defrag and snapshot save: the commands about
//! the cluster's members rather than its keys.

use std::time::Instant;

use oxetcd_client::proto::etcdserverpb::{AlarmResponse, MemberListResponse};
use oxetcd_client::{AlarmAction, AlarmType, Client, EtcdErrorKind};
use oxetcd_utl::progress::Progress;

use tokio::io::AsyncWriteExt;

use crate::error::{CtlError, CtlResult, describe, exit};
use crate::global::Ctx;
use crate::go;
use crate::json::{self, Obj};
use crate::output::{self, EndpointAnswer, EndpointHealth, Format};

/// A member id argument, in hex.
fn member_id(arg: &str) -> CtlResult<u64> {
    go::parse_uint(arg, 16)
        .map_err(|e| CtlError::bad_args(format!("bad member ID arg ({e}), expecting ID in Hex")))
}

fn failed(err: oxetcd_client::Error) -> CtlError {
    CtlError::client(exit::ERROR, &err)
}

pub async fn member_add(ctx: &Ctx) -> CtlResult {
    let args = &ctx.flags.args;
    if args.is_empty() {
        return Err(CtlError::bad_args("member name not provided"));
    }
    if args.len() > 1 {
        let mut message = "too many arguments".to_string();
        for arg in args {
            if arg.to_lowercase().starts_with("http") {
                message.push_str(&format!(", did you mean --peer-urls={arg}"));
            }
        }
        return Err(CtlError::bad_args(message));
    }
    let name = &args[0];
    let peer_urls = ctx.flags.str("peer-urls");
    if peer_urls.is_empty() {
        return Err(CtlError::bad_args("member peer urls not provided"));
    }
    let urls: Vec<String> = peer_urls.split(',').map(str::to_string).collect();
    let client = ctx.client().await?;
    let response = ctx
        .timed(client.cluster().member_add(urls, ctx.flags.bool("learner")))
        .await
        .map_err(failed)?;
    let new_member = response.member.clone().unwrap_or_default();
    let cluster_id = response.header.as_ref().map_or(0, |h| h.cluster_id);
    ctx.printer.member_change(
        format!("Member {:>16x} added to cluster {cluster_id:>16x}", new_member.id),
        response.header.as_ref(),
        || {
            Obj::new()
                .obj("header", json::header(response.header.as_ref()))
                .obj("member", response.member.as_ref().map(json::member))
                .list("members", &json::members(&response.members))
                .finish()
        },
        &response,
    )?;
    if ctx.printer.format == Format::Simple {
        let mut conf = Vec::new();
        for member in &response.members {
            let member_name = if member.id == new_member.id { name } else { &member.name };
            for url in &member.peer_ur_ls {
                conf.push(format!("{member_name}={url}"));
            }
        }
        output::stdout(&format!(
            "\nETCD_NAME={}\nETCD_INITIAL_CLUSTER={}\nETCD_INITIAL_ADVERTISE_PEER_URLS={}\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
            go::quote(name),
            go::quote(conf.join(",")),
            go::quote(&peer_urls)
        ));
    }
    Ok(())
}

fn one_member_id(ctx: &Ctx) -> CtlResult<u64> {
    let args = &ctx.flags.args;
    if args.len() != 1 {
        return Err(CtlError::bad_args("member ID is not provided"));
    }
    member_id(&args[0])
}

pub async fn member_remove(ctx: &Ctx) -> CtlResult {
    let id = one_member_id(ctx)?;
    let client = ctx.client().await?;
    let response = ctx.timed(client.cluster().member_remove(id)).await.map_err(failed)?;
    let cluster_id = response.header.as_ref().map_or(0, |h| h.cluster_id);
    ctx.printer.member_change(
        format!("Member {id:>16x} removed from cluster {cluster_id:>16x}"),
        response.header.as_ref(),
        || members_json(response.header.as_ref(), &response.members),
        &response,
    )
}

fn members_json(
    header: Option<&oxetcd_client::ResponseHeader>,
    members: &[oxetcd_client::proto::etcdserverpb::Member],
) -> String {
    Obj::new().obj("header", json::header(header)).list("members", &json::members(members)).finish()
}

pub async fn member_update(ctx: &Ctx) -> CtlResult {
    let id = one_member_id(ctx)?;
    let peer_urls = ctx.flags.str("peer-urls");
    if peer_urls.is_empty() {
        return Err(CtlError::bad_args("member peer urls not provided"));
    }
    let urls: Vec<String> = peer_urls.split(',').map(str::to_string).collect();
    let client = ctx.client().await?;
    let response = ctx.timed(client.cluster().member_update(id, urls)).await.map_err(failed)?;
    let cluster_id = response.header.as_ref().map_or(0, |h| h.cluster_id);
    ctx.printer.member_change(
        format!("Member {id:>16x} updated in cluster {cluster_id:>16x}"),
        response.header.as_ref(),
        || members_json(response.header.as_ref(), &response.members),
        &response,
    )
}

pub async fn member_promote(ctx: &Ctx) -> CtlResult {
    let id = one_member_id(ctx)?;
    let client = ctx.client().await?;
    let response = ctx.timed(client.cluster().member_promote(id)).await.map_err(failed)?;
    let cluster_id = response.header.as_ref().map_or(0, |h| h.cluster_id);
    ctx.printer.member_change(
        format!("Member {id:>16x} promoted in cluster {cluster_id:>16x}"),
        response.header.as_ref(),
        || members_json(response.header.as_ref(), &response.members),
        &response,
    )
}

pub async fn member_list(ctx: &Ctx) -> CtlResult {
    let client = ctx.client().await?;
    let response: MemberListResponse =
        ctx.timed(client.cluster().member_list()).await.map_err(failed)?;
    ctx.printer.member_list(&response)
}

/// The endpoints an endpoint command works on: `--endpoints`, or with `--cluster` every
/// member's client URLs (asked without credentials, as etcdctl does).
async fn target_endpoints(ctx: &Ctx) -> CtlResult<Vec<String>> {
    if !ctx.flags.bool("cluster") {
        return Ok(ctx.global.endpoints.clone());
    }
    let options = ctx.client_options_without_user()?;
    let client = Client::connect(&ctx.global.endpoints, options).await.map_err(|e| {
        ctx.note_for_hint(&e, &ctx.global.endpoints);
        CtlError::error(describe(&e))
    })?;
    let members = ctx.timed(client.cluster().member_list()).await.map_err(|e| {
        CtlError::error(format!(
            "failed to fetch endpoints from etcd cluster member list: {}",
            describe(&e)
        ))
    })?;
    Ok(members.members.into_iter().flat_map(|m| m.client_ur_ls).collect())
}

pub async fn endpoint_health(ctx: &Ctx) -> CtlResult {
    let endpoints = target_endpoints(ctx).await?;
    let checks = endpoints.iter().map(|endpoint| async move {
        let client = match ctx.client_for(std::slice::from_ref(endpoint)).await {
            Ok(c) => c,
            Err(e) => {
                return EndpointHealth {
                    endpoint: endpoint.clone(),
                    health: false,
                    took: String::new(),
                    error: e.message.unwrap_or_default(),
                };
            }
        };
        let start = Instant::now();
        let result = ctx.timed(client.get("health", None)).await;
        let took = go::duration_string(start.elapsed());
        let (health, error) = match result {
            Ok(_) => (true, String::new()),
            Err(e) if e.etcd_kind() == Some(EtcdErrorKind::PermissionDenied) => {
                (true, String::new())
            }
            Err(e) => (false, describe(&e)),
        };
        EndpointHealth { endpoint: endpoint.clone(), health, took, error }
    });
    let list: Vec<EndpointHealth> = futures_join_all(checks).await;
    ctx.printer.endpoint_health(&list)?;
    if list.iter().any(|h| !h.error.is_empty()) {
        return Err(CtlError::error("unhealthy cluster"));
    }
    Ok(())
}

/// Runs the futures concurrently and returns their outputs in order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

pub async fn endpoint_status(ctx: &Ctx) -> CtlResult {
    let endpoints = target_endpoints(ctx).await?;
    let mut list = Vec::new();
    let mut failed_any = false;
    for endpoint in endpoints {
        let result = match ctx.client_for(std::slice::from_ref(&endpoint)).await {
            Ok(client) => ctx.timed(client.maintenance().status()).await.map_err(|e| describe(&e)),
            Err(e) => Err(e.message.unwrap_or_default()),
        };
        match result {
            Ok(response) => list.push(EndpointAnswer { endpoint, response }),
            Err(e) => {
                failed_any = true;
                output::stderr(&format!("Failed to get the status of endpoint {endpoint} ({e})\n"));
            }
        }
    }
    ctx.printer.endpoint_status(&list)?;
    if failed_any {
        return Err(CtlError::silent(exit::ERROR));
    }
    Ok(())
}

pub async fn endpoint_hash_kv(ctx: &Ctx) -> CtlResult {
    let endpoints = target_endpoints(ctx).await?;
    let revision = ctx.flags.int("rev");
    let mut list = Vec::new();
    let mut last_error = None;
    for endpoint in endpoints {
        let result = match ctx.client_for(std::slice::from_ref(&endpoint)).await {
            Ok(client) => {
                ctx.timed(client.maintenance().hash_kv(revision)).await.map_err(|e| describe(&e))
            }
            Err(e) => Err(e.message.unwrap_or_default()),
        };
        match result {
            Ok(response) => list.push(EndpointAnswer { endpoint, response }),
            Err(e) => {
                output::stderr(&format!("Failed to get the hash of endpoint {endpoint} ({e})\n"));
                last_error = Some(e);
            }
        }
    }
    ctx.printer.endpoint_hash_kv(&list)?;
    match last_error {
        Some(e) => Err(CtlError::error(e)),
        None => Ok(()),
    }
}

pub async fn move_leader(ctx: &Ctx) -> CtlResult {
    let args = &ctx.flags.args;
    if args.len() != 1 {
        return Err(CtlError::bad_args("move-leader command needs 1 argument"));
    }
    let target = go::parse_uint(&args[0], 16).map_err(CtlError::bad_args)?;
    let endpoints = ctx.global.endpoints.clone();
    let mut leader = None;
    for endpoint in &endpoints {
        let client = ctx.client_for(std::slice::from_ref(endpoint)).await?;
        let status = ctx.timed(client.maintenance().status()).await.map_err(failed)?;
        let member = status.header.as_ref().map_or(0, |h| h.member_id);
        if member == status.leader {
            leader = Some((client, status.leader));
            break;
        }
    }
    let Some((client, leader_id)) = leader else {
        return Err(CtlError::bad_args(format!(
            "no leader endpoint given at [{}]",
            endpoints.join(" ")
        )));
    };
    let response = ctx.timed(client.maintenance().move_leader(target)).await.map_err(failed)?;
    match ctx.printer.format {
        Format::Simple => {
            output::stdout(&format!(
                "Leadership transferred from {} to {}\n",
                go::id_hex(leader_id),
                go::id_hex(target)
            ));
            Ok(())
        }
        Format::Json | Format::Protobuf => ctx.printer.other(
            String::new(),
            || json::header_only(response.header.as_ref()),
            &response,
        ),
        other => Err(CtlError::new(
            exit::BAD_FEATURE,
            format!("{} not supported as output format", format_name(other)),
        )),
    }
}

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Simple => "simple",
        Format::Json => "json",
        Format::Protobuf => "protobuf",
        Format::Fields => "fields",
        Format::Table => "table",
    }
}

pub async fn alarm(ctx: &Ctx, disarm: bool) -> CtlResult {
    if !ctx.flags.args.is_empty() {
        let which = if disarm { "disarm" } else { "list" };
        return Err(CtlError::bad_args(format!("alarm {which} command accepts no arguments")));
    }
    let client = ctx.client().await?;
    let maintenance = client.maintenance();
    let listed =
        ctx.timed(maintenance.alarm(AlarmAction::Get, 0, AlarmType::None)).await.map_err(failed)?;
    let response = if disarm {
        // clientv3's AlarmDisarm with no member and no alarm clears each raised alarm.
        let mut cleared = AlarmResponse { header: listed.header, alarms: Vec::new() };
        for raised in &listed.alarms {
            let alarm_type = AlarmType::try_from(raised.alarm).unwrap_or(AlarmType::None);
            let answer = ctx
                .timed(maintenance.alarm(AlarmAction::Deactivate, raised.member_id, alarm_type))
                .await
                .map_err(failed)?;
            cleared.header = answer.header;
            cleared.alarms.extend(answer.alarms);
        }
        cleared
    } else {
        listed
    };
    ctx.printer.alarm(&response)
}

pub async fn defrag(ctx: &Ctx) -> CtlResult {
    if !ctx.flags.str("data-dir").is_empty() {
        return super::offline::defrag_data_dir(ctx);
    }
    let endpoints = target_endpoints(ctx).await?;
    let mut failures = 0;
    for endpoint in endpoints {
        let result = match ctx.client_for(std::slice::from_ref(&endpoint)).await {
            Ok(client) => ctx
                .timed(client.maintenance().defragment())
                .await
                .map(|_| ())
                .map_err(|e| describe(&e)),
            Err(e) => Err(e.message.unwrap_or_default()),
        };
        match result {
            Ok(()) => output::stdout(&format!("Finished defragmenting etcd member[{endpoint}]\n")),
            Err(e) => {
                output::stderr(&format!("Failed to defragment etcd member[{endpoint}] ({e})\n"));
                failures += 1;
            }
        }
    }
    if failures != 0 {
        return Err(CtlError::silent(exit::ERROR));
    }
    Ok(())
}

pub async fn snapshot_save(ctx: &Ctx) -> CtlResult {
    let args = &ctx.flags.args;
    if args.len() != 1 {
        return Err(CtlError::bad_args("snapshot save expects one argument"));
    }
    let path = args[0].clone();
    let endpoints = &ctx.global.endpoints;
    if endpoints.len() != 1 {
        return Err(CtlError::new(
            exit::INTERRUPTED,
            format!(
                "snapshot must be requested to one selected node, not multiple [{}]",
                endpoints.join(" ")
            ),
        ));
    }
    let save = async {
        let client = ctx.client().await?;
        let interrupted = |e: String| CtlError::new(exit::INTERRUPTED, e);
        let partial = format!("{path}.part");
        // etcd writes snapshots readable by their owner only: they hold every key.
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .await
            .map_err(|e| interrupted(format!("could not open {partial} ({e})")))?;
        let mut stream =
            client.maintenance().snapshot().await.map_err(|e| interrupted(describe(&e)))?;
        // On a terminal, a bar on stderr; scripts see etcdctl's output only.
        let progress = Progress::on_tty("snapshot save");
        let mut started = false;
        while let Some(chunk) = stream.message().await.map_err(|e| interrupted(describe(&e)))? {
            if !started {
                // The server says how much is left after each chunk: the first gives the
                // size.
                progress.start(chunk.blob.len() as u64 + chunk.remaining_bytes);
                started = true;
            }
            file.write_all(&chunk.blob).await.map_err(|e| interrupted(e.to_string()))?;
            progress.advance(chunk.blob.len() as u64);
        }
        progress.finish();
        file.sync_all().await.map_err(|e| interrupted(e.to_string()))?;
        drop(file);
        tokio::fs::rename(&partial, &path)
            .await
            .map_err(|e| interrupted(format!("could not rename {partial} to {path} ({e})")))?;
        Ok::<(), CtlError>(())
    };
    // Only an explicit --command-timeout bounds a snapshot (it may take long).
    if ctx.flags.changed("command-timeout") {
        tokio::time::timeout(ctx.global.command_timeout, save)
            .await
            .map_err(|_| CtlError::new(exit::INTERRUPTED, "context deadline exceeded"))??;
    } else {
        save.await?;
    }
    output::stdout(&format!("Snapshot saved at {path}\n"));
    Ok(())
}
