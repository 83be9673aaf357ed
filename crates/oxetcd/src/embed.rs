//! A running member: the server plus its client listeners (gRPC and HTTP on the same
//! port). `main` runs one; tests run several in one process.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use oxetcd_etcdserver::EtcdServer;
use oxetcd_etcdserver::bootstrap::StartError;

use crate::config::Config;

/// How long open connections get to finish when the member closes.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// HTTP/2 keepalive on the peer listener (the transport's senders use the same).
const PEER_KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
const PEER_KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub struct Member {
    pub server: Arc<EtcdServer>,
    /// The addresses the client listeners are bound to (useful with port 0).
    pub client_addrs: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
}

/// Accepted connections with Nagle's algorithm off: responses are small and written
/// once, and waiting to coalesce them meets the client's delayed ACK (a 40 ms stall).
fn no_delay(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

impl Member {
    /// Binds the client URLs, starts the server, and serves. Binding comes first, so a
    /// taken port fails before the data dir is touched.
    pub async fn start(cfg: Config) -> Result<Member, StartError> {
        let mut bound = Vec::new();
        for url in &cfg.listen_client_urls {
            let listener = TcpListener::bind(url.addr)
                .await
                .map_err(|error| StartError::Listen { url: url.text.clone(), error })?;
            bound.push(listener);
        }
        let mut peer_listeners = Vec::new();
        for url in &cfg.listen_peer_urls {
            let listener = TcpListener::bind(url.addr)
                .await
                .map_err(|error| StartError::Listen { url: url.text.clone(), error })?;
            peer_listeners.push(listener);
        }
        // etcd's default (`u32::MAX`) means no limit, which is also HTTP/2's.
        let max_streams = Some(cfg.max_concurrent_streams).filter(|&n| n != u32::MAX);
        let server = EtcdServer::start(cfg.server)?;
        let (shutdown, _) = watch::channel(false);
        let mut client_addrs = Vec::new();
        let mut listeners = Vec::new();
        // Peers are served at once: members must talk before any of them is ready.
        for listener in peer_listeners {
            let addr = listener
                .local_addr()
                .map_err(|error| StartError::Listen { url: "peer".into(), error })?;
            let service = server.transport().service();
            let mut stop = shutdown.subscribe();
            // Re-registered on the peer runtime, so its events are polled there too.
            let listener = listener
                .into_std()
                .map_err(|error| StartError::Listen { url: addr.to_string(), error })?;
            listeners.push(server.peer_runtime().spawn(async move {
                let listener = match TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(e) => {
                        tracing::error!(address = %addr, error = %e, "peer listener failed");
                        return;
                    }
                };
                // Keepalive lets this side notice a peer that died without closing.
                let serving = tonic::transport::Server::builder()
                    .http2_keepalive_interval(Some(PEER_KEEPALIVE_INTERVAL))
                    .http2_keepalive_timeout(Some(PEER_KEEPALIVE_TIMEOUT))
                    .http2_adaptive_window(Some(true))
                    .add_service(service)
                    .serve_with_incoming_shutdown(no_delay(listener), async move {
                        let _ = stop.wait_for(|&s| s).await;
                    });
                if let Err(e) = serving.await {
                    tracing::error!(address = %addr, error = %e, "peer listener failed");
                }
            }));
            tracing::info!(address = %addr, "serving peer traffic insecurely; this is strongly discouraged!");
        }
        for listener in bound {
            let addr = listener
                .local_addr()
                .map_err(|error| StartError::Listen { url: "client".into(), error })?;
            client_addrs.push(addr);
            let routes = oxetcd_v3rpc::routes(server.clone());
            let mut stop = shutdown.subscribe();
            let ready = server.clone();
            listeners.push(tokio::spawn(async move {
                // Connections wait in the listen backlog until the member is ready.
                tokio::select! {
                    _ = ready.wait_ready() => {}
                    _ = stop.wait_for(|&s| s) => return,
                }
                tracing::info!(address = %addr, "ready to serve client requests");
                let serving = tonic::transport::Server::builder()
                    .accept_http1(true)
                    .max_concurrent_streams(max_streams)
                    .add_routes(routes)
                    .serve_with_incoming_shutdown(no_delay(listener), async move {
                        let _ = stop.wait_for(|&s| s).await;
                    });
                if let Err(e) = serving.await {
                    tracing::error!(address = %addr, error = %e, "client listener failed");
                }
            }));
            tracing::info!(address = %addr, "serving client traffic insecurely; this is strongly discouraged!");
        }
        Ok(Member { server, client_addrs, shutdown, listeners })
    }

    /// Stops serving, then stops the server (final backend commit included).
    pub async fn close(self) {
        // Long-lived streams (peers', watches, lease keep-alives) end first; otherwise
        // the graceful shutdown of the listeners would wait for them.
        self.server.begin_close();
        let _ = self.shutdown.send(true);
        for mut listener in self.listeners {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut listener).await.is_err() {
                tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period; closing them");
                listener.abort();
            }
        }
        let server = self.server;
        let _ = tokio::task::spawn_blocking(move || server.stop()).await;
    }
}
