//! Transport settings, with etcd-like defaults.

use std::path::PathBuf;
use std::time::Duration;

/// Largest gRPC message the transport sends or accepts (64 MiB). A raft batch or a
/// snapshot chunk must fit in one gRPC message; tonic's own default (4 MiB) is smaller
/// than one large append (`--max-request-bytes` may be raised to 10 MiB and a `MsgApp`
/// can carry several entries), so the limit is set explicitly on both ends.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How a [`crate::Transport`] behaves. Build one with [`TransportConfig::new`] and
/// adjust the public fields.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// This member's cluster id: sent with every call, and required of every caller.
    pub cluster_id: u64,
    /// This member's id: sent as the sender of every call, and required as the
    /// recipient of every incoming call.
    pub member_id: u64,
    /// Where received snapshot files are written (created on first use).
    pub snapshot_dir: PathBuf,
    /// This member's advertised peer URLs, sent with every call: a peer that does not
    /// know this member yet answers it there (etcd's `X-PeerURLs`). Empty: not sent.
    pub peer_urls: Vec<String>,
    /// Raft messages queued per peer before [`crate::Transport::send`] starts dropping
    /// (etcd: 4096).
    pub queue_len: usize,
    /// Most raft messages in one outgoing batch (etcd flushes at 2048).
    pub max_batch_messages: usize,
    /// Most encoded bytes in one outgoing batch (a single larger message still goes
    /// alone, up to `max_message_bytes`).
    pub max_batch_bytes: usize,
    /// Largest gRPC message sent or accepted, on the stream and snapshot calls.
    pub max_message_bytes: usize,
    /// Time allowed to connect to one peer URL, including the HTTP/2 handshake
    /// (etcd: 1 s plus the election timeout).
    pub dial_timeout: Duration,
    /// First delay before reconnecting to a peer after a failure.
    pub backoff_min: Duration,
    /// Longest delay between reconnection attempts (the delay doubles up to it).
    pub backoff_max: Duration,
    /// HTTP/2 ping interval on outgoing connections, so a silently dead peer is
    /// noticed.
    pub keepalive_interval: Duration,
    /// How long an unanswered ping may take before the connection is closed (etcd's
    /// connection read/write timeout: 5 s).
    pub keepalive_timeout: Duration,
    /// Size of the file data in each outgoing snapshot chunk.
    pub snapshot_chunk_bytes: usize,
    /// Largest snapshot file accepted from a peer; it must exceed the backend quota.
    pub max_snapshot_bytes: u64,
    /// How `https://` and `unixs://` peer URLs are dialed (the peer-side TLS flags);
    /// `None` dials only plaintext URLs.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl TransportConfig {
    /// A configuration for member `member_id` of cluster `cluster_id`, with defaults
    /// for everything else.
    pub fn new(cluster_id: u64, member_id: u64, snapshot_dir: impl Into<PathBuf>) -> Self {
        TransportConfig {
            cluster_id,
            member_id,
            snapshot_dir: snapshot_dir.into(),
            peer_urls: Vec::new(),
            queue_len: 4096,
            max_batch_messages: 2048,
            max_batch_bytes: 4 * 1024 * 1024,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            dial_timeout: Duration::from_secs(2),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(5),
            snapshot_chunk_bytes: 1024 * 1024,
            max_snapshot_bytes: 64 * 1024 * 1024 * 1024,
            tls: None,
        }
    }

    /// The same settings with every limit brought into a workable range: nothing is
    /// zero, a batch and a snapshot chunk fit in one gRPC message, and the backoff
    /// bounds are ordered.
    pub(crate) fn normalized(mut self) -> Self {
        self.queue_len = self.queue_len.max(1);
        self.max_batch_messages = self.max_batch_messages.max(1);
        self.max_message_bytes = self.max_message_bytes.max(64 * 1024);
        self.max_batch_bytes = self.max_batch_bytes.clamp(1, self.max_message_bytes);
        self.snapshot_chunk_bytes =
            self.snapshot_chunk_bytes.clamp(1, self.max_message_bytes - FRAME_OVERHEAD);
        self.backoff_min = self.backoff_min.max(Duration::from_millis(1));
        self.backoff_max = self.backoff_max.max(self.backoff_min);
        self
    }
}

/// Room left in a gRPC message for protobuf framing around one payload.
pub(crate) const FRAME_OVERHEAD: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_keeps_limits_consistent() {
        let mut c = TransportConfig::new(1, 2, "/tmp");
        c.queue_len = 0;
        c.max_batch_bytes = usize::MAX;
        c.snapshot_chunk_bytes = usize::MAX;
        c.backoff_min = Duration::from_secs(10);
        c.backoff_max = Duration::from_secs(1);
        let c = c.normalized();
        assert_eq!(c.queue_len, 1);
        assert_eq!(c.max_batch_bytes, c.max_message_bytes);
        assert!(c.snapshot_chunk_bytes < c.max_message_bytes);
        assert_eq!(c.backoff_max, c.backoff_min);
    }

    #[test]
    fn defaults_are_etcd_like() {
        let c = TransportConfig::new(1, 2, "/tmp");
        assert_eq!(c.queue_len, 4096);
        assert_eq!(c.backoff_min, Duration::from_millis(100));
        assert_eq!(c.backoff_max, Duration::from_secs(5));
        assert_eq!(c.max_message_bytes, 64 << 20);
    }
}
