//! `make-mirror`: copies every key under `--prefix` to another cluster, then keeps
//! copying the changes, one transaction per source revision (etcd's mirror syncer).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use oxetcd_client::{
    Client, ClientOptions, GetOptions, PutOptions, TlsFiles, Txn, TxnOp, WatchOptions,
};

use oxetcd_utl::progress::Progress;

use crate::error::{CtlError, CtlResult, describe, exit};
use crate::global::Ctx;

/// How many keys one read of the initial copy takes (etcd's syncer: 1000).
const BATCH: i64 = 1000;
/// How often the number of keys copied so far is printed (etcd: every 30 s).
const REPORT_EVERY: Duration = Duration::from_secs(30);

pub async fn make_mirror(ctx: &Ctx) -> CtlResult {
    let [destination] = ctx.flags.args.as_slice() else {
        return Err(CtlError::bad_args("make-mirror takes one destination argument"));
    };
    let prefix = ctx.flags.str("prefix");
    let mut dest_prefix = ctx.flags.str("dest-prefix");
    let no_dest_prefix = ctx.flags.bool("no-dest-prefix");
    let dest = destination_client(ctx, destination).await?;
    let source = ctx.client().await?;
    if no_dest_prefix && !dest_prefix.is_empty() {
        return Err(CtlError::bad_args(
            "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one",
        ));
    }
    if !no_dest_prefix && dest_prefix.is_empty() {
        dest_prefix = prefix.clone();
    }
    // Go's strings.Replace(key, prefix, dest, 1): the first occurrence.
    let rename = |key: &[u8]| -> Vec<u8> {
        let key = String::from_utf8_lossy(key).into_owned();
        key.replacen(prefix.as_str(), &dest_prefix, 1).into_bytes()
    };
    let total = Arc::new(AtomicI64::new(0));
    // On a terminal, the bytes copied and their rate on stderr; scripts see etcdctl's
    // output only.
    let progress = Progress::on_tty_open_ended("make-mirror");
    progress.start(0);
    let reporter = {
        let total = total.clone();
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REPORT_EVERY).await;
                let line = format!("{}\n", total.load(Ordering::Relaxed));
                progress.suspend(|| crate::output::stdout(&line));
            }
        })
    };
    let copied = Copied { keys: &total, progress: &progress };
    let result = mirror(&source, &dest, &prefix, &rename, &copied).await;
    reporter.abort();
    progress.finish();
    Err(CtlError::new(exit::ERROR, result.err().unwrap_or_else(|| "mirror ended".to_string())))
}

async fn destination_client(ctx: &Ctx, endpoint: &str) -> CtlResult<Client> {
    let flags = &ctx.flags;
    let g = &ctx.global;
    let mut options = ClientOptions::default()
        .with_dial_timeout(if g.dial_timeout.is_zero() {
            g.command_timeout
        } else {
            g.dial_timeout
        })
        .with_keep_alive(g.keepalive_time, g.keepalive_timeout);
    let file = |name: &str| {
        let v = flags.str(name);
        if v.is_empty() { None } else { Some(std::path::PathBuf::from(v)) }
    };
    let files = TlsFiles {
        cert: file("dest-cert"),
        key: file("dest-key"),
        trusted_ca: file("dest-cacert"),
        insecure_skip_verify: false,
    };
    let tls = files.cert.is_some()
        || files.key.is_some()
        || files.trusted_ca.is_some()
        || !flags.bool("dest-insecure-transport");
    if tls {
        options = options.with_tls_files(&files).map_err(|e| CtlError::bad_args(e.to_string()))?;
    }
    Client::connect([endpoint], options).await.map_err(|e| {
        crate::hint::record(&e, tls, &[endpoint.to_string()]);
        CtlError::new(exit::BAD_CONNECTION, describe(&e))
    })
}

async fn mirror(
    source: &Client,
    dest: &Client,
    prefix: &str,
    rename: &impl Fn(&[u8]) -> Vec<u8>,
    copied: &Copied<'_>,
) -> Result<(), String> {
    // The initial copy, at one revision, in batches.
    let first =
        source.get(prefix, Some(range(prefix).with_limit(1))).await.map_err(|e| describe(&e))?;
    let revision = first.header.map_or(0, |h| h.revision);
    let mut next = if prefix.is_empty() { b"\0".to_vec() } else { prefix.as_bytes().to_vec() };
    let end = oxetcd_client::prefix_range_end(prefix.as_bytes());
    loop {
        let options =
            GetOptions::new().with_range(end.clone()).with_revision(revision).with_limit(BATCH);
        let batch = source.get(next.clone(), Some(options)).await.map_err(|e| describe(&e))?;
        for kv in &batch.kvs {
            dest.put(rename(&kv.key), kv.value.clone(), None).await.map_err(|e| describe(&e))?;
            copied.one(kv.key.len() + kv.value.len());
        }
        match batch.kvs.last() {
            Some(last) if batch.more => {
                next = last.key.to_vec();
                next.push(0);
            }
            _ => break,
        }
    }
    // Then every change after it, a source revision per transaction.
    let watch = range_watch(prefix).with_start_revision(revision + 1);
    let mut watcher = source.watch(prefix, Some(watch)).await.map_err(|e| describe(&e))?;
    while let Some(response) = watcher.message().await.map_err(|e| describe(&e))? {
        if response.compact_revision != 0 {
            return Err("etcdserver: mvcc: required revision has been compacted".to_string());
        }
        let mut ops = Vec::new();
        let mut last_revision = 0;
        for event in &response.events {
            let kv = event.kv.clone().unwrap_or_default();
            if last_revision != 0 && kv.mod_revision > last_revision {
                apply(dest, std::mem::take(&mut ops)).await?;
            }
            last_revision = kv.mod_revision;
            ops.push(if event.r#type == 1 {
                TxnOp::delete(rename(&kv.key), None)
            } else {
                TxnOp::put(rename(&kv.key), kv.value.clone(), Some(PutOptions::new()))
            });
            copied.one(kv.key.len() + kv.value.len());
        }
        if !ops.is_empty() {
            apply(dest, ops).await?;
        }
    }
    Ok(())
}

/// What has been copied: the keys (etcdctl's count, printed every 30 s) and the bytes
/// (the progress shown on a terminal).
struct Copied<'a> {
    keys: &'a AtomicI64,
    progress: &'a Progress,
}

impl Copied<'_> {
    fn one(&self, bytes: usize) {
        self.keys.fetch_add(1, Ordering::Relaxed);
        self.progress.advance(bytes as u64);
    }
}

async fn apply(dest: &Client, ops: Vec<TxnOp>) -> Result<(), String> {
    dest.txn(Txn::new().and_then(ops)).await.map(|_| ()).map_err(|e| describe(&e))
}

/// Every key under `prefix` (every key at all for an empty one).
fn range(prefix: &str) -> GetOptions {
    if prefix.is_empty() {
        GetOptions::new().with_from_key()
    } else {
        GetOptions::new().with_prefix()
    }
}

fn range_watch(prefix: &str) -> WatchOptions {
    if prefix.is_empty() {
        WatchOptions::new().with_from_key()
    } else {
        WatchOptions::new().with_prefix()
    }
}
