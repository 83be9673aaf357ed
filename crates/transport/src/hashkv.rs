//! Asking a peer for its HashKV (etcd's `getPeerHashKVHTTP` over the peer port), for the
//! corruption checks.

use std::time::Duration;

use oxetcd_api::etcdserverpb::{HashKvRequest, HashKvResponse};
use oxetcd_api::oxetcdpb::peer_client::PeerClient;
use tracing::warn;

use crate::Transport;
use crate::dial::connect;
use crate::handler::HashKvError;
use crate::header::CallIds;
use crate::server::hash_kv_error;
use crate::shared::HexId;

impl Transport {
    /// Asks member `to` for its HashKV at `revision` (0: its current one), trying each of
    /// `urls` in turn, as etcd does, until one answers; each URL gets at most `timeout`,
    /// connecting and answering together. The call carries this member's ids, so a peer
    /// of another cluster, or one that removed this member, refuses it. A compacted or
    /// future revision ends the attempts at once (another URL of the same member would say
    /// the same); otherwise the last URL's failure is returned. A connection is made per
    /// call: the checks ask rarely, and the raft streams stay untouched.
    pub async fn hash_kv(
        &self,
        to: u64,
        urls: &[String],
        revision: i64,
        timeout: Duration,
    ) -> Result<HashKvResponse, HashKvError> {
        let config = &self.shared().config;
        let ids = CallIds { cluster_id: config.cluster_id, from: config.member_id, to };
        let mut last = HashKvError::Unavailable("the member has no peer URLs".to_owned());
        for url in urls {
            if self.is_stopped() {
                return Err(HashKvError::Unavailable("the peer transport stopped".to_owned()));
            }
            let attempt = async {
                let channel = connect(config, url).await.map_err(HashKvError::Unavailable)?;
                let mut request = tonic::Request::new(HashKvRequest { revision });
                request.set_timeout(timeout);
                ids.stamp(request.metadata_mut());
                PeerClient::new(channel)
                    .max_decoding_message_size(config.max_message_bytes)
                    .hash_kv(request)
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(|status| hash_kv_error(&status))
            };
            let error = match tokio::time::timeout(timeout, attempt).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(error)) => error,
                Err(_) => HashKvError::Unavailable(format!("no answer within {timeout:?}")),
            };
            warn!(
                local_member_id = %HexId(config.member_id),
                requested_revision = revision,
                remote_peer_endpoint = %url,
                %error,
                "failed hash kv request"
            );
            if matches!(error, HashKvError::Compacted | HashKvError::FutureRevision) {
                return Err(error);
            }
            last = error;
        }
        Err(last)
    }
}
