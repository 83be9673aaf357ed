//! A running member: the server plus its listeners (etcd's `embed`). Client URLs serve
//! gRPC and HTTP on the same port; peer URLs the peer transport; metrics URLs `/metrics`
//! and the health probes. Each is plaintext, TLS, or both on one port, over TCP or a unix
//! socket. `main` runs one member; tests run several in one process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use oxetcd_etcdserver::bootstrap;
use oxetcd_etcdserver::corrupt::{self, CorruptError};
use oxetcd_etcdserver::{EtcdServer, Fatal};
use oxetcd_tls::{ClientTls, Listener, ServerTls, TlsError, TlsInfo};
use oxetcd_v3rpc::{HttpAccess, Metrics};

use crate::config::{Config, Url};
use crate::serve::{ClientHttp2, serve_client_port};

/// How long open connections get to finish when the member closes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long a closing member waits, once stopped, for the tasks still holding the server
/// (one that found expired leases and is about to learn it can no longer propose, say)
/// to let go of it, so that its backend file is closed. Each returns at its next step;
/// none waits on a timer then, since the stop answered everything pending.
const BACKEND_RELEASE_WAIT: Duration = Duration::from_secs(5);
/// How often the backend file is checked meanwhile.
const BACKEND_RELEASE_POLL: Duration = Duration::from_millis(2);

/// HTTP/2 keepalive on the peer listener (the transport's senders use the same).
const PEER_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
const PEER_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a member did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Server(#[from] bootstrap::StartError),
    #[error("cannot listen on {url}: {error}")]
    Listen { url: String, error: std::io::Error },
    #[error("{side} TLS: {error}")]
    Tls { side: &'static str, error: TlsError },
    /// `--experimental-initial-corrupt-check` found this member's data differs from a
    /// peer's (etcd's "… found data inconsistency with peers").
    #[error(transparent)]
    Corrupt(#[from] CorruptError),
}

pub struct Member {
    pub server: Arc<EtcdServer>,
    /// The TCP addresses the client listeners are bound to (useful with port 0).
    pub client_addrs: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
}

/// The TLS a member serves and dials with, built from its flags before anything is bound.
struct MemberTls {
    client: Option<ServerTls>,
    peer: Option<ServerTls>,
}

impl MemberTls {
    /// Builds the servers' TLS, and puts into `cfg.server` how the member dials peers and
    /// the leader's client URLs.
    fn new(cfg: &mut Config) -> Result<MemberTls, StartError> {
        let data_dir = cfg.server.data_dir.clone();
        let options = &cfg.tls_options;
        let client = enabled(&cfg.client_tls)
            .map(|info| {
                let hosts = hosts(&cfg.listen_client_urls);
                ServerTls::new(info, options, &auto_tls_dir(&data_dir, "client"), &hosts)
            })
            .transpose()
            .map_err(|error| StartError::Tls { side: "client", error })?;
        let peer = enabled(&cfg.peer_tls)
            .map(|info| {
                let hosts = hosts(&cfg.listen_peer_urls);
                ServerTls::new_peer(info, options, &auto_tls_dir(&data_dir, "peer"), &hosts)
            })
            .transpose()
            .map_err(|error| StartError::Tls { side: "peer", error })?;
        if let Some(info) = enabled(&cfg.peer_tls) {
            let dial = ClientTls::new(info, options, &auto_tls_dir(&data_dir, "peer"))
                .map_err(|error| StartError::Tls { side: "peer", error })?;
            cfg.server.peer_dial_tls = Some(dial.config());
        }
        if let Some(info) = enabled(&cfg.client_tls) {
            // Only lease keep-alives forwarded to the leader dial client URLs; a member that
            // cannot verify them (no CA given) still serves everything else.
            match ClientTls::new(info, options, &auto_tls_dir(&data_dir, "client")) {
                Ok(dial) => cfg.server.client_dial_tls = Some(dial.config()),
                Err(error) => tracing::warn!(
                    %error,
                    "cannot dial other members' https client URLs; lease keep-alives sent to a follower will fail"
                ),
            }
        }
        Ok(MemberTls { client, peer })
    }
}

fn enabled(info: &TlsInfo) -> Option<&TlsInfo> {
    Some(info).filter(|info| info.is_enabled())
}

/// Where auto-TLS certificates live, as in etcd: `<data-dir>/fixtures/{client,peer}`.
fn auto_tls_dir(data_dir: &Path, side: &str) -> PathBuf {
    data_dir.join("fixtures").join(side)
}

/// The host names and addresses an auto-TLS certificate is made for: the listen URLs'.
fn hosts(urls: &[Url]) -> Vec<String> {
    urls.iter()
        .filter_map(|url| url.text.split_once("://").map(|(_, rest)| rest))
        .map(|rest| {
            let host_port = rest.split('/').next().unwrap_or(rest);
            let host = host_port.rsplit_once(':').map_or(host_port, |(host, _)| host);
            host.trim_start_matches('[').trim_end_matches(']').to_string()
        })
        .collect()
}

/// A bound listener, the URLs it serves, and whether it serves plaintext and TLS.
struct Bound {
    listener: Listener,
    urls: String,
    plain: bool,
    secure: bool,
}

impl Bound {
    /// etcd's lines saying how a listener serves `traffic`.
    fn log_serving(&self, traffic: &str, at: &str) {
        if self.secure {
            tracing::info!(address = %at, "serving {traffic} traffic securely");
        }
        if self.plain {
            tracing::info!(address = %at, "serving {traffic} traffic insecurely; this is strongly discouraged!");
        }
    }
}

/// Binds `urls`, one listener per address: URLs that share one (`http://` and
/// `https://` on the same port) are served together, told apart by their first byte, as
/// etcd's cmux does.
async fn bind(urls: &[Url], tls: Option<&ServerTls>) -> Result<Vec<Bound>, StartError> {
    let mut groups: Vec<(&oxetcd_tls::ListenAddr, Vec<&Url>)> = Vec::new();
    for url in urls {
        match groups.iter_mut().find(|(addr, _)| **addr == url.addr) {
            Some((_, group)) => group.push(url),
            None => groups.push((&url.addr, vec![url])),
        }
    }
    let mut bound = Vec::new();
    for (addr, group) in groups {
        let urls = group.iter().map(|u| u.text.as_str()).collect::<Vec<_>>().join(",");
        let plain = group.iter().any(|u| !u.scheme.is_tls());
        let secure = group.iter().any(|u| u.scheme.is_tls());
        // The configuration refuses TLS URLs without certificates; this is a backstop.
        let tls = match (secure, tls) {
            (false, _) => None,
            (true, Some(tls)) => Some(tls.clone()),
            (true, None) => {
                let error = std::io::Error::other("TLS URL without a certificate");
                return Err(StartError::Listen { url: urls, error });
            }
        };
        let listener = Listener::bind(addr, plain, tls)
            .await
            .map_err(|error| StartError::Listen { url: urls.clone(), error })?;
        bound.push(Bound { listener, urls, plain, secure });
    }
    Ok(bound)
}

/// Where a listener is, for log lines: its bound address, or its socket file.
fn where_bound(listener: &Listener) -> String {
    match (listener.local_addr(), listener.unix_path()) {
        (Ok(addr), _) => addr.to_string(),
        (Err(_), Some(path)) => path.display().to_string(),
        (Err(e), None) => e.to_string(),
    }
}

impl Member {
    /// Builds TLS, binds every URL, starts the server, and serves. Certificates and
    /// binding come first, so a bad certificate or a taken port fails before the data dir
    /// is written (auto-TLS aside, which writes its certificates there, as etcd does).
    pub async fn start(mut cfg: Config) -> Result<Member, StartError> {
        let tls = MemberTls::new(&mut cfg)?;
        let client_listeners = bind(&cfg.listen_client_urls, tls.client.as_ref()).await?;
        let peer_listeners = bind(&cfg.listen_peer_urls, tls.peer.as_ref()).await?;
        let metrics_listeners = bind(&cfg.listen_metrics_urls, tls.client.as_ref()).await?;
        // etcd's default (`u32::MAX`) means no limit, which is also HTTP/2's.
        let max_streams = Some(cfg.max_concurrent_streams).filter(|&n| n != u32::MAX);
        let gateway = if cfg.enable_grpc_gateway {
            oxetcd_v3rpc::Gateway::On { max_calls: max_streams }
        } else {
            oxetcd_v3rpc::Gateway::Off
        };
        // etcd pings idle clients only when both durations are set.
        let client_keepalive = (!cfg.grpc_keepalive_interval.is_zero()
            && !cfg.grpc_keepalive_timeout.is_zero())
        .then_some((cfg.grpc_keepalive_interval, cfg.grpc_keepalive_timeout));
        let access =
            HttpAccess { host_whitelist: cfg.host_whitelist.clone(), cors: cfg.cors.clone() };
        // A member joining a running cluster asks it who it is first (network I/O, so
        // here rather than in the synchronous start).
        // Only a member that had data before this start is checked against its peers.
        let initialized = corrupt::member_initialized(&cfg.server);
        bootstrap::join_existing(&cfg.server).await?;
        let server = EtcdServer::start(cfg.server)?;
        // One set of gRPC counters for every client listener, read by every `/metrics`.
        let metrics = Metrics::new(server.clone(), cfg.metrics);
        let (shutdown, _) = watch::channel(false);
        let mut client_addrs = Vec::new();
        let mut listeners = Vec::new();
        // Peers are served at once: members must talk before any of them is ready.
        for bound in peer_listeners {
            let at = where_bound(&bound.listener);
            bound.log_serving("peer", &at);
            let Bound { listener, urls, .. } = bound;
            let service = server.transport().service();
            let mut stop = shutdown.subscribe();
            listeners.push(server.peer_runtime().spawn(async move {
                // Connections are polled on the peer runtime, away from client load.
                let listener = match listener.move_to_current_runtime() {
                    Ok(listener) => listener,
                    Err(e) => {
                        tracing::error!(%urls, error = %e, "peer listener failed");
                        return;
                    }
                };
                // Keepalive lets this side notice a peer that died without closing.
                let serving = tonic::transport::Server::builder()
                    .http2_keepalive_interval(Some(PEER_KEEPALIVE_INTERVAL))
                    .http2_keepalive_timeout(Some(PEER_KEEPALIVE_TIMEOUT))
                    .http2_adaptive_window(Some(true))
                    .add_service(service)
                    .serve_with_incoming_shutdown(listener.into_incoming(), async move {
                        let _ = stop.wait_for(|&s| s).await;
                    });
                if let Err(e) = serving.await {
                    tracing::error!(%urls, error = %e, "peer listener failed");
                }
            }));
        }
        // etcd's initial corruption check: after the server starts (its peers must reach
        // it, and it them), before any client is served.
        if initialized
            && server.config().storage_policy.initial_corrupt_check
            && let Err(error) = corrupt::check_initial_hash_kv(&server).await
        {
            // The counters hold the server, and so its backend file, which closing waits for.
            drop(metrics);
            Member { server, client_addrs, shutdown, listeners }.close().await;
            return Err(error.into());
        }
        for bound in client_listeners {
            let at = where_bound(&bound.listener);
            bound.log_serving("client", &at);
            let Bound { listener, urls, .. } = bound;
            client_addrs.extend(listener.local_addr().ok());
            let client_port = oxetcd_v3rpc::client_port(metrics.clone(), access.clone(), gateway);
            let mut stop = shutdown.subscribe();
            let ready = server.clone();
            listeners.push(tokio::spawn(async move {
                // Connections wait in the listen backlog until the member is ready.
                tokio::select! {
                    _ = ready.wait_ready() => {}
                    _ = stop.wait_for(|&s| s) => return,
                }
                tracing::info!(address = %at, "ready to serve client requests");
                let http2 = ClientHttp2 {
                    max_concurrent_streams: max_streams,
                    keepalive: client_keepalive,
                };
                serve_client_port(listener.into_incoming(), client_port, http2, async move {
                    let _ = stop.wait_for(|&s| s).await;
                })
                .await;
                tracing::debug!(%urls, "client listener stopped");
            }));
        }
        for Bound { listener, urls, .. } in metrics_listeners {
            let at = where_bound(&listener);
            let router = oxetcd_v3rpc::metrics_router(metrics.clone());
            let mut stop = shutdown.subscribe();
            listeners.push(tokio::spawn(async move {
                let serving = tonic::transport::Server::builder()
                    .accept_http1(true)
                    .add_routes(tonic::service::Routes::from(router))
                    .serve_with_incoming_shutdown(listener.into_incoming(), async move {
                        let _ = stop.wait_for(|&s| s).await;
                    });
                if let Err(e) = serving.await {
                    tracing::error!(%urls, error = %e, "metrics listener failed");
                }
            }));
            tracing::info!(address = %at, "serving metrics");
        }
        Ok(Member { server, client_addrs, shutdown, listeners })
    }

    /// Stops serving, then stops the server (final backend commit included); answers the
    /// storage failure the member stopped on, if one did (the final commit's included).
    /// Returns once the backend file is closed, so the data dir can be opened again in
    /// this process at once (etcd's `Close` likewise waits for the server's goroutines):
    /// a caller that keeps a clone of [`Member::server`] meanwhile holds the file open.
    pub async fn close(self) -> Option<Fatal> {
        // Long-lived streams (peers', watches, lease keep-alives) end first; otherwise
        // the graceful shutdown of the listeners would wait for them.
        self.server.begin_close();
        let _ = self.shutdown.send(true);
        for mut listener in self.listeners {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut listener).await.is_err() {
                tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period; closing them");
                listener.abort();
                // Returns once the task is dropped, with the connections it owned.
                let _ = listener.await;
            }
        }
        let server = self.server;
        // Taken after the stop: the apply thread may have swapped in a snapshot's file.
        let stopped = tokio::task::spawn_blocking(move || {
            server.stop();
            (server.fatal(), server.backend_release())
        });
        let (fatal, release) = match stopped.await {
            Ok(stopped) => stopped,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down, and the process with it.
            Err(_) => return None,
        };
        let deadline = tokio::time::Instant::now() + BACKEND_RELEASE_WAIT;
        while !release.is_released() {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(waited = ?BACKEND_RELEASE_WAIT, "the backend file is still open after the member stopped: something still holds the server");
                break;
            }
            tokio::time::sleep(BACKEND_RELEASE_POLL).await;
        }
        fatal
    }
}
