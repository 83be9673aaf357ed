//! The connection to the leader's client URL, for requests only the leader can answer
//! (lease keep-alives and time-to-live, promoting a learner): one `oxetcd-client`
//! connection kept per leader and shared by every forwarded call until the leader
//! changes or a call fails.

use std::sync::{Arc, Mutex, MutexGuard};

use oxetcd_client::{Client, ClientOptions};
use oxetcd_etcdserver::{EtcdServer, ServerError};
use tonic::transport::Channel;
use tonic::{Response, Status};

use crate::status;

pub(crate) struct LeaderLink {
    server: Arc<EtcdServer>,
    /// The leader's client URL and a client connected to it.
    cached: Mutex<Option<(String, Client)>>,
}

impl LeaderLink {
    pub(crate) fn new(server: Arc<EtcdServer>) -> LeaderLink {
        LeaderLink { server, cached: Mutex::new(None) }
    }

    /// A channel to the current leader's client URL.
    pub(crate) async fn channel(&self) -> Result<Channel, Status> {
        let url = self.server.leader_client_url().ok_or_else(|| status(ServerError::NoLeader))?;
        if let Some((cached, client)) = &*self.lock()
            && *cached == url
        {
            return Ok(client.channel());
        }
        let mut options = ClientOptions::default();
        if let Some(tls) = &self.server.config().client_dial_tls {
            options = options.with_tls(tls.clone());
        }
        let client = Client::connect([url.as_str()], options).await.map_err(|e| {
            Status::unavailable(format!("etcdserver: cannot reach the leader: {e}"))
        })?;
        let channel = client.channel();
        *self.lock() = Some((url, client));
        Ok(channel)
    }

    /// A call forwarded to the leader, bounded by an election timeout: a leader that is
    /// going away may hold the connection open without answering, and by then another
    /// leader is due. On failure the connection is dropped, so the next call dials the
    /// leader anew.
    pub(crate) async fn forwarded<T>(
        &self,
        call: impl Future<Output = Result<Response<T>, Status>>,
    ) -> Result<Response<T>, Status> {
        let cfg = self.server.config();
        let election_timeout = cfg.heartbeat * cfg.election_ticks as u32;
        let answer = match tokio::time::timeout(election_timeout, call).await {
            Ok(answer) => answer,
            Err(_) => Err(status(ServerError::Timeout)),
        };
        if answer.is_err() {
            self.lock().take();
        }
        answer
    }

    fn lock(&self) -> MutexGuard<'_, Option<(String, Client)>> {
        // A panic while holding the lock leaves at worst a connection to drop.
        self.cached.lock().unwrap_or_else(|e| e.into_inner())
    }
}
