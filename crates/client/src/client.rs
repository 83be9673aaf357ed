//! The client handle: endpoints, connections, round-robin with failover, and the retry
//! policy of unary calls.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use oxetcd_api::etcdserverpb::AuthenticateRequest;
use oxetcd_api::etcdserverpb::auth_client::AuthClient;
use oxetcd_api::etcdserverpb::cluster_client::ClusterClient;
use oxetcd_api::etcdserverpb::kv_client::KvClient;
use oxetcd_api::etcdserverpb::lease_client::LeaseClient;
use oxetcd_api::etcdserverpb::maintenance_client::MaintenanceClient;
use oxetcd_api::etcdserverpb::watch_client::WatchClient;
use oxetcd_api::v3electionpb::election_client::ElectionClient;
use oxetcd_api::v3lockpb::lock_client::LockClient;
use tokio::time::Instant;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::error::{Error, EtcdErrorKind, Result};

/// How long an endpoint that refused a connection is skipped by the round-robin (it is
/// still used when every endpoint is down).
const ENDPOINT_COOLDOWN: Duration = Duration::from_secs(1);

/// The metadata key that carries the auth token (etcd's `token`).
pub(crate) const TOKEN_METADATA_KEY: &str = "token";
/// The metadata key that asks a member to refuse the request when it has no leader.
pub(crate) const REQUIRE_LEADER_METADATA_KEY: &str = "hasleader";

/// Settings of a [`Client`]. Start from [`ClientOptions::default`] and adjust with the
/// `with_*` methods:
///
/// ```
/// use std::time::Duration;
/// use oxetcd_client::ClientOptions;
///
/// let options = ClientOptions::default()
///     .with_dial_timeout(Duration::from_secs(2))
///     .with_request_timeout(Duration::from_secs(5))
///     .with_max_retries(20);
/// assert_eq!(options.dial_timeout(), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    dial_timeout: Duration,
    request_timeout: Option<Duration>,
    max_send_message_size: usize,
    max_recv_message_size: usize,
    max_retries: u32,
    backoff: Duration,
    backoff_jitter: f64,
    keep_alive: Option<(Duration, Duration)>,
    user: Option<(String, String)>,
    token: Option<AsciiMetadataValue>,
    require_leader: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for ClientOptions {
    /// etcd clientv3's defaults: a 5 s dial timeout, no request timeout, 2 MiB sent and
    /// unbounded (`i32::MAX`) received messages, 100 retries with 25 ms (±10 %) between
    /// rounds over a quorum of endpoints.
    fn default() -> Self {
        ClientOptions {
            dial_timeout: Duration::from_secs(5),
            request_timeout: None,
            max_send_message_size: 2 * 1024 * 1024,
            max_recv_message_size: i32::MAX as usize,
            max_retries: 100,
            backoff: Duration::from_millis(25),
            backoff_jitter: 0.10,
            keep_alive: None,
            user: None,
            token: None,
            require_leader: false,
            tls: None,
        }
    }
}

impl ClientOptions {
    /// How long [`Client::connect`] (and each later reconnection) waits for a TCP
    /// connection to an endpoint.
    pub fn with_dial_timeout(mut self, timeout: Duration) -> Self {
        self.dial_timeout = timeout;
        self
    }

    /// A bound on every unary call, retries included; past it the call fails with
    /// [`Error::Timeout`]. It also bounds the creation of a watch and the first renewal
    /// of a keep-alive, not the streams' lives.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// The largest message the client sends (requests above it fail locally).
    pub fn with_max_send_message_size(mut self, bytes: usize) -> Self {
        self.max_send_message_size = bytes;
        self
    }

    /// The largest message the client accepts from a server.
    pub fn with_max_recv_message_size(mut self, bytes: usize) -> Self {
        self.max_recv_message_size = bytes;
        self
    }

    /// How many times a failed unary call may be retried (0 turns retries off).
    pub fn with_max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The wait between rounds of retries (one round tries a quorum of the endpoints),
    /// and the fraction by which it is randomly stretched.
    pub fn with_backoff(mut self, wait: Duration, jitter_fraction: f64) -> Self {
        self.backoff = wait;
        self.backoff_jitter = jitter_fraction.clamp(0.0, 1.0);
        self
    }

    /// HTTP/2 keep-alive pings: every `interval`, failing the connection when no answer
    /// comes within `timeout` (etcd's `--keepalive-time`/`--keepalive-timeout` on the
    /// client side).
    pub fn with_keep_alive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keep_alive = Some((interval, timeout));
        self
    }

    /// Authenticates as `user` on connect and attaches the token to every request,
    /// authenticating again when the server says the token is no longer valid.
    pub fn with_user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.user = Some((user.into(), password.into()));
        self
    }

    /// Attaches `token`, an auth token obtained elsewhere, to every request as it is (a
    /// server acting for one of its callers passes the caller's token on so). It is not
    /// renewed; [`ClientOptions::with_user`] takes precedence over it.
    pub fn with_token(mut self, token: &str) -> Result<Self> {
        let token = AsciiMetadataValue::try_from(token)
            .map_err(|_| Error::InvalidArgument("an auth token must be ASCII".into()))?;
        self.token = Some(token);
        Ok(self)
    }

    /// Asks members to refuse requests (`etcdserver: no leader`) while they know no
    /// leader, instead of waiting (etcd's `WithRequireLeader`).
    pub fn with_require_leader(mut self, require: bool) -> Self {
        self.require_leader = require;
        self
    }

    /// How `https://` and `unixs://` endpoints are dialed (etcdctl's `--cacert`, `--cert`,
    /// `--key`; [`oxetcd_tls`] builds such configurations from files). Without it only
    /// plaintext endpoints can be reached.
    pub fn with_tls(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// TLS from certificate files, as etcdctl's `--cacert`, `--cert`, `--key` and
    /// `--insecure-skip-tls-verify` give it: servers are verified against `trusted_ca`
    /// (without one, only with `insecure_skip_verify`, which accepts any server
    /// certificate); `cert` and `key` are presented as the client certificate.
    pub fn with_tls_files(self, files: &TlsFiles) -> Result<Self> {
        let info = oxetcd_tls::TlsInfo {
            cert_file: files.cert.clone(),
            key_file: files.key.clone(),
            trusted_ca_file: files.trusted_ca.clone(),
            ..Default::default()
        };
        let tls = oxetcd_tls::ClientTls::for_client(&info, files.insecure_skip_verify)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        Ok(self.with_tls(tls.config()))
    }

    /// The dial timeout.
    pub fn dial_timeout(&self) -> Duration {
        self.dial_timeout
    }

    /// The request timeout, if any.
    pub fn request_timeout(&self) -> Option<Duration> {
        self.request_timeout
    }

    /// The retry bound.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The TLS configuration `https://` endpoints are dialed with, if any (for a caller
    /// that reaches the same servers over other protocols, such as their `/metrics`).
    pub fn tls_config(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.tls.clone()
    }
}

/// Certificate files for [`ClientOptions::with_tls_files`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The client certificate (PEM) presented to servers that ask for one.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key: Option<PathBuf>,
    /// The CA bundle (PEM) servers' certificates must chain to.
    pub trusted_ca: Option<PathBuf>,
    /// Accept any server certificate (for testing only).
    pub insecure_skip_verify: bool,
}

/// Whether a unary call may be sent again after a failure (etcd clientv3's
/// `repeatable`/`nonRepeatable` policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reads and idempotent calls: retried on any `Unavailable`, against the next endpoint.
    Repeatable,
    /// Calls with effects: retried only when the request provably never left the
    /// client (no connection could be made to the endpoint).
    NonRepeatable,
}

/// A connection to one endpoint, with the message-size limits applied to each stub.
#[derive(Clone)]
pub(crate) struct Conn {
    channel: Channel,
    max_send: usize,
    max_recv: usize,
}

macro_rules! stub {
    ($name:ident, $client:ident) => {
        pub(crate) fn $name(self) -> $client<Channel> {
            $client::new(self.channel)
                .max_encoding_message_size(self.max_send)
                .max_decoding_message_size(self.max_recv)
        }
    };
}

impl Conn {
    stub!(kv, KvClient);
    stub!(watch, WatchClient);
    stub!(lease, LeaseClient);
    stub!(cluster, ClusterClient);
    stub!(maintenance, MaintenanceClient);
    stub!(auth, AuthClient);
    stub!(lock, LockClient);
    stub!(election, ElectionClient);
}

struct EndpointSlot {
    uri: String,
    channel: Channel,
    /// Skipped by the round-robin until this many nanoseconds after `Inner::epoch`
    /// (after a failed connection); 0 when up. An atomic, so picking an endpoint takes
    /// no lock.
    down_until: AtomicU64,
}

struct Inner {
    endpoints: Vec<EndpointSlot>,
    /// The origin of the endpoints' `down_until` times.
    epoch: Instant,
    next: AtomicUsize,
    options: ClientOptions,
    token: RwLock<Option<AsciiMetadataValue>>,
    /// Serialises re-authentication, so a burst of rejected calls authenticates once.
    auth_lock: tokio::sync::Mutex<()>,
    /// Bumped on every re-authentication, so a call can tell whether someone else
    /// already refreshed the token it was rejected with.
    token_generation: AtomicU64,
    jitter_state: AtomicU64,
}

/// A client of an etcd v3 cluster (etcd or oxetcd), over one or more endpoints.
///
/// Cheap to clone: clones share the connections. Unary calls go round-robin over the
/// endpoints; an endpoint that refuses connections is skipped for a while. Reads and
/// other idempotent calls are retried on `Unavailable` against the next endpoint;
/// writes are retried only when they provably were never sent.
///
/// ```no_run
/// use oxetcd_client::{Client, ClientOptions, GetOptions};
///
/// # async fn example() -> oxetcd_client::Result<()> {
/// let client = Client::connect(["127.0.0.1:2379", "http://127.0.0.1:22379"], ClientOptions::default()).await?;
/// client.put("greeting", "hello", None).await?;
/// let resp = client.get("greeting", None).await?;
/// assert_eq!(resp.kvs[0].value.as_ref(), b"hello");
/// let all = client.get("", Some(GetOptions::new().with_from_key().with_count_only())).await?;
/// println!("{} keys", all.count);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("endpoints", &self.endpoints()).finish_non_exhaustive()
    }
}

/// `host:port` becomes `http://host:port`; `http://`, `https://`, `unix://` and
/// `unixs://` URLs stay as written (less a trailing `/`).
pub(crate) fn normalize_endpoint(endpoint: &str) -> Result<String> {
    let invalid = |reason: &str| Error::InvalidEndpoint {
        endpoint: endpoint.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = endpoint.trim().trim_end_matches('/');
    let uri = match trimmed.split_once("://") {
        Some(("http" | "https" | "unix" | "unixs", "")) => return Err(invalid("no host")),
        Some(("http" | "https" | "unix" | "unixs", _)) => trimmed.to_string(),
        Some(_) => return Err(invalid("unknown scheme")),
        None if trimmed.is_empty() => return Err(invalid("empty")),
        None => format!("http://{trimmed}"),
    };
    let parsed: tonic::transport::Uri = uri.parse().map_err(|e| invalid(&format!("{e}")))?;
    if parsed.host().is_none() || parsed.port().is_none() {
        return Err(invalid("expected host:port"));
    }
    Ok(uri)
}

impl Client {
    /// Connects to a cluster through `endpoints` (`host:port` or `http://host:port`).
    ///
    /// Returns once one endpoint accepts a connection (each attempt bounded by the dial
    /// timeout), or [`Error::Unreachable`] when none does; the others are connected
    /// on first use. With [`ClientOptions::with_user`], also authenticates.
    ///
    /// ```no_run
    /// # async fn example() -> oxetcd_client::Result<()> {
    /// use std::time::Duration;
    /// use oxetcd_client::{Client, ClientOptions};
    ///
    /// let options = ClientOptions::default().with_dial_timeout(Duration::from_secs(1));
    /// let client = Client::connect(["10.0.0.1:2379", "10.0.0.2:2379", "10.0.0.3:2379"], options).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect<E, S>(endpoints: E, options: ClientOptions) -> Result<Client>
    where
        E: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let uris = endpoints
            .into_iter()
            .map(|e| normalize_endpoint(e.as_ref()))
            .collect::<Result<Vec<String>>>()?;
        if uris.is_empty() {
            return Err(Error::InvalidArgument("no endpoints given".into()));
        }
        let builders = uris
            .iter()
            .map(|uri| endpoint_builder(uri, &options))
            .collect::<Result<Vec<Dialer>>>()?;

        // Dial all endpoints at once; the first that answers ends the wait, the rest are
        // connected lazily on first use.
        let mut dials = tokio::task::JoinSet::new();
        for (i, builder) in builders.iter().enumerate() {
            let builder = builder.clone();
            dials.spawn(async move { (i, builder.connect().await) });
        }
        let mut connected: Option<(usize, Channel)> = None;
        let mut failed = vec![false; uris.len()];
        let mut last_error = String::from("no attempt finished");
        while let Some(joined) = dials.join_next().await {
            match joined {
                Ok((i, Ok(channel))) => {
                    connected = Some((i, channel));
                    break;
                }
                Ok((i, Err(e))) => {
                    failed[i] = true;
                    last_error = format!("{}: {}", uris[i], oxetcd_tls::describe(&e));
                }
                Err(e) => last_error = format!("dial task failed: {e}"),
            }
        }
        dials.abort_all();
        let Some((first, channel)) = connected else {
            return Err(Error::Unreachable { endpoints: uris.join(","), last_error });
        };
        let mut channel = Some(channel);
        let epoch = Instant::now();
        let endpoints = builders
            .into_iter()
            .zip(uris)
            .enumerate()
            .map(|(i, (builder, uri))| EndpointSlot {
                uri,
                channel: if i == first {
                    channel.take().unwrap_or_else(|| builder.connect_lazy())
                } else {
                    builder.connect_lazy()
                },
                // Endpoints that refused the first dial start out of the rotation.
                down_until: AtomicU64::new(if failed[i] {
                    nanos_since(epoch) + cooldown_nanos()
                } else {
                    0
                }),
            })
            .collect();
        let client = Client::with_endpoints(endpoints, epoch, options);
        if client.inner.options.user.is_some() {
            client.refresh_token(u64::MAX).await?;
        }
        Ok(client)
    }

    /// A client over one channel the caller made, named `endpoint` (for instance a
    /// server's in-process connection to its own services). Options that concern
    /// dialing (timeouts, keep-alive, TLS) do not apply.
    pub fn from_channel(
        endpoint: impl Into<String>,
        channel: Channel,
        options: ClientOptions,
    ) -> Client {
        let slot = EndpointSlot { uri: endpoint.into(), channel, down_until: AtomicU64::new(0) };
        Client::with_endpoints(vec![slot], Instant::now(), options)
    }

    fn with_endpoints(
        endpoints: Vec<EndpointSlot>,
        epoch: Instant,
        options: ClientOptions,
    ) -> Client {
        Client {
            inner: Arc::new(Inner {
                endpoints,
                epoch,
                // The rotation starts with the first endpoint given (unless it is down).
                next: AtomicUsize::new(0),
                options,
                token: RwLock::new(None),
                auth_lock: tokio::sync::Mutex::new(()),
                token_generation: AtomicU64::new(0),
                jitter_state: AtomicU64::new(seed()),
            }),
        }
    }

    /// A channel to the next endpoint in the rotation, for calls this crate does not
    /// wrap (custom streams, other services on the same port). Calls made on it get no
    /// retries, no auth token and no require-leader flag.
    ///
    /// ```no_run
    /// # async fn example(client: oxetcd_client::Client) -> Result<(), tonic::Status> {
    /// use oxetcd_client::proto::etcdserverpb::{kv_client::KvClient, RangeRequest};
    ///
    /// let mut kv = KvClient::new(client.channel());
    /// kv.range(RangeRequest { key: "k".into(), ..Default::default() }).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn channel(&self) -> Channel {
        self.pick().1.channel
    }

    /// The endpoints, normalized (`http://host:port`).
    pub fn endpoints(&self) -> Vec<String> {
        self.inner.endpoints.iter().map(|e| e.uri.clone()).collect()
    }

    /// The base wait between retries.
    pub(crate) fn options_backoff(&self) -> Duration {
        self.inner.options.backoff
    }

    /// A client over one endpoint where nothing listens, connected lazily: for unit
    /// tests of code that needs a client but never calls it.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Client {
        let options = ClientOptions::default().with_user("test", "test");
        let uri = "http://127.0.0.1:1".to_string();
        let channel = endpoint_builder(&uri, &options).expect("valid").connect_lazy();
        Client::from_channel(uri, channel, options)
    }

    #[cfg(test)]
    pub(crate) fn set_token_for_tests(&self, token: &'static str) {
        *self.inner.token.write().unwrap_or_else(|e| e.into_inner()) =
            Some(AsciiMetadataValue::from_static(token));
    }

    /// The options this client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// The current auth token, if the client has authenticated.
    pub fn auth_token(&self) -> Option<String> {
        let token = self.inner.token.read().unwrap_or_else(|e| e.into_inner());
        token.as_ref().and_then(|t| t.to_str().ok()).map(str::to_string)
    }

    /// The next endpoint in round-robin order, skipping those that recently refused a
    /// connection unless all did.
    pub(crate) fn pick(&self) -> (usize, Conn) {
        let n = self.inner.endpoints.len();
        let start = if n == 1 { 0 } else { self.inner.next.fetch_add(1, Ordering::Relaxed) };
        let mut chosen = start % n;
        let mut now = None;
        for k in 0..n {
            let i = (start + k) % n;
            let until = self.inner.endpoints[i].down_until.load(Ordering::Relaxed);
            if until == 0 || until <= *now.get_or_insert_with(|| nanos_since(self.inner.epoch)) {
                chosen = i;
                break;
            }
        }
        (chosen, self.conn(chosen))
    }

    fn conn(&self, i: usize) -> Conn {
        Conn {
            channel: self.inner.endpoints[i].channel.clone(),
            max_send: self.inner.options.max_send_message_size,
            max_recv: self.inner.options.max_recv_message_size,
        }
    }

    /// Records the outcome of a call on endpoint `i`: a failed connection takes it out
    /// of the rotation for a while; anything the server answered puts it back.
    pub(crate) fn report(&self, i: usize, status: Option<&Status>) {
        let down = &self.inner.endpoints[i].down_until;
        match status {
            Some(status) if never_sent(status) => {
                down.store(nanos_since(self.inner.epoch) + cooldown_nanos(), Ordering::Relaxed)
            }
            _ => {
                if down.load(Ordering::Relaxed) != 0 {
                    down.store(0, Ordering::Relaxed);
                }
            }
        }
    }

    /// A request carrying the auth token and the require-leader flag.
    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        self.decorate(request.metadata_mut());
        request
    }

    fn decorate(&self, metadata: &mut MetadataMap) {
        // Only a client with a user ever holds a token: the others take no lock here.
        if self.inner.options.user.is_some() {
            if let Some(token) = self.inner.token.read().unwrap_or_else(|e| e.into_inner()).as_ref()
            {
                metadata.insert(TOKEN_METADATA_KEY, token.clone());
            }
        } else if let Some(token) = &self.inner.options.token {
            metadata.insert(TOKEN_METADATA_KEY, token.clone());
        }
        if self.inner.options.require_leader {
            metadata.insert(REQUIRE_LEADER_METADATA_KEY, AsciiMetadataValue::from_static("true"));
        }
    }

    /// The wait before retry `attempt` (1-based): one backoff per round over a quorum of
    /// the endpoints, none within a round.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let n = self.inner.endpoints.len() as u32;
        let quorum = n / 2 + 1;
        if !attempt.is_multiple_of(quorum) {
            return Duration::ZERO;
        }
        self.jittered(self.inner.options.backoff)
    }

    /// `base` stretched by up to the configured jitter fraction.
    pub(crate) fn jittered(&self, base: Duration) -> Duration {
        // xorshift: enough randomness to spread retries, no dependency.
        let mut x = self.inner.jitter_state.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.inner.jitter_state.store(x, Ordering::Relaxed);
        let fraction = (x % 10_000) as f64 / 10_000.0 * self.inner.options.backoff_jitter;
        Duration::try_from_secs_f64(base.as_secs_f64() * (1.0 + fraction)).unwrap_or(base)
    }

    /// Runs a unary call with the retry policy, the request timeout and token refresh.
    pub(crate) async fn unary<Req, Resp, F, Fut>(
        &self,
        policy: Retry,
        message: Req,
        call: F,
    ) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(Conn, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, Status>>,
    {
        match self.inner.options.request_timeout {
            Some(timeout) => tokio::time::timeout(timeout, self.unary_inner(policy, message, call))
                .await
                .unwrap_or(Err(Error::Timeout)),
            None => self.unary_inner(policy, message, call).await,
        }
    }

    async fn unary_inner<Req, Resp, F, Fut>(
        &self,
        policy: Retry,
        message: Req,
        call: F,
    ) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(Conn, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, Status>>,
    {
        let max_retries = self.inner.options.max_retries;
        let mut refreshed = false;
        let mut attempt: u32 = 0;
        loop {
            let (i, conn) = self.pick();
            let generation = self.inner.token_generation.load(Ordering::Acquire);
            let result = call(conn, self.request(message.clone())).await;
            let status = match result {
                Ok(response) => {
                    self.report(i, None);
                    return Ok(response.into_inner());
                }
                Err(status) => status,
            };
            self.report(i, Some(&status));
            if !refreshed && self.should_refresh_token(&status) {
                // Counted apart from the retries: at most one per call.
                refreshed = true;
                self.refresh_token(generation).await?;
                continue;
            }
            if attempt >= max_retries || !retryable(policy, &status) {
                return Err(Error::from(status));
            }
            attempt += 1;
            tracing::debug!(
                endpoint = %self.inner.endpoints[i].uri,
                attempt,
                code = ?status.code(),
                message = status.message(),
                "retrying"
            );
            let wait = self.backoff(attempt);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
    }

    fn should_refresh_token(&self, status: &Status) -> bool {
        let kind = EtcdErrorKind::from_message(status.message());
        // A request checked against an older auth store was refused, not applied:
        // clientv3 sends it once more whether or not it has a token to refresh (a client
        // known by its certificate's common name has none).
        if kind == Some(EtcdErrorKind::AuthOldRevision) {
            return true;
        }
        if self.inner.options.user.is_none() {
            return false;
        }
        matches!(kind, Some(EtcdErrorKind::InvalidAuthToken | EtcdErrorKind::UserEmpty))
    }

    /// Authenticates with the configured user and stores the token, unless another
    /// call already did since `seen_generation`.
    pub(crate) async fn refresh_token(&self, seen_generation: u64) -> Result<()> {
        let Some((name, password)) = self.inner.options.user.clone() else {
            return Ok(());
        };
        let _guard = self.inner.auth_lock.lock().await;
        if seen_generation != u64::MAX
            && self.inner.token_generation.load(Ordering::Acquire) != seen_generation
        {
            return Ok(());
        }
        let request = AuthenticateRequest { name, password };
        let response = self.authenticate_raw(request).await;
        let token = match response {
            Ok(response) => Some(response.token),
            // A server without auth enabled needs no token.
            Err(e) if e.etcd_kind() == Some(EtcdErrorKind::AuthNotEnabled) => None,
            Err(e) => return Err(e),
        };
        let value = match token {
            Some(token) if !token.is_empty() => Some(
                AsciiMetadataValue::try_from(token.as_str())
                    .map_err(|_| Error::MalformedResponse("auth token is not ASCII"))?,
            ),
            _ => None,
        };
        *self.inner.token.write().unwrap_or_else(|e| e.into_inner()) = value;
        self.inner.token_generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Authenticate without attaching the (possibly stale) token.
    async fn authenticate_raw(
        &self,
        request: AuthenticateRequest,
    ) -> Result<oxetcd_api::etcdserverpb::AuthenticateResponse> {
        let max_retries = self.inner.options.max_retries;
        let mut attempt = 0;
        loop {
            let (i, conn) = self.pick();
            let result = conn.auth().authenticate(tonic::Request::new(request.clone())).await;
            match result {
                Ok(response) => {
                    self.report(i, None);
                    return Ok(response.into_inner());
                }
                Err(status) => {
                    self.report(i, Some(&status));
                    if attempt >= max_retries || !retryable(Retry::NonRepeatable, &status) {
                        return Err(Error::from(status));
                    }
                    attempt += 1;
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
            }
        }
    }
}

fn nanos_since(epoch: Instant) -> u64 {
    // Never 0 (which means "up"), and far from overflowing (584 years).
    Instant::now().saturating_duration_since(epoch).as_nanos() as u64 | 1
}

fn cooldown_nanos() -> u64 {
    ENDPOINT_COOLDOWN.as_nanos() as u64
}

/// How one endpoint is dialed: its HTTP/2 settings and the connector (TCP or unix
/// socket, plaintext or TLS).
#[derive(Clone)]
struct Dialer {
    endpoint: Endpoint,
    connector: oxetcd_tls::Connector,
}

impl Dialer {
    async fn connect(&self) -> std::result::Result<Channel, tonic::transport::Error> {
        self.endpoint.connect_with_connector(self.connector.clone()).await
    }

    fn connect_lazy(&self) -> Channel {
        self.endpoint.connect_with_connector_lazy(self.connector.clone())
    }
}

fn endpoint_builder(uri: &str, options: &ClientOptions) -> Result<Dialer> {
    let mut endpoint = Endpoint::from_shared(uri.to_string())
        .map_err(|e| Error::InvalidEndpoint { endpoint: uri.to_string(), reason: e.to_string() })?
        .connect_timeout(options.dial_timeout);
    if let Some((interval, timeout)) = options.keep_alive {
        endpoint = endpoint
            .http2_keep_alive_interval(interval)
            .keep_alive_timeout(timeout)
            .keep_alive_while_idle(true);
    }
    Ok(Dialer { endpoint, connector: oxetcd_tls::Connector::new(options.tls.clone()) })
}

/// Whether the status says the request never left the client: the connection to the
/// endpoint could not be established.
pub(crate) fn never_sent(status: &Status) -> bool {
    if status.code() != Code::Unavailable {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(err) = source {
        if err.is::<tonic::ConnectError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Whether a failed call may be sent again under `policy`.
pub(crate) fn retryable(policy: Retry, status: &Status) -> bool {
    match policy {
        Retry::Repeatable => status.code() == Code::Unavailable,
        Retry::NonRepeatable => never_sent(status),
    }
}

/// Whether a stream (watch, keep-alive) that failed with `status` should be opened
/// again on another endpoint rather than reported to the caller.
pub(crate) fn stream_retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::Internal
            | Code::Cancelled
            | Code::Aborted
            | Code::DeadlineExceeded
    )
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::process::id() as u64);
    hasher.finish() | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_normalize_to_http_uris() {
        assert_eq!(normalize_endpoint("127.0.0.1:2379").unwrap(), "http://127.0.0.1:2379");
        assert_eq!(normalize_endpoint("http://localhost:2379/").unwrap(), "http://localhost:2379");
        assert_eq!(normalize_endpoint("https://localhost:2379").unwrap(), "https://localhost:2379");
        assert_eq!(normalize_endpoint("unix://localhost:2379").unwrap(), "unix://localhost:2379");
        assert!(normalize_endpoint("https://").is_err());
        assert!(normalize_endpoint("localhost").is_err());
        assert!(normalize_endpoint("").is_err());
        assert!(normalize_endpoint("ftp://x:1").is_err());
    }

    #[test]
    fn retry_policy_follows_clientv3() {
        let unavailable = Status::unavailable("etcdserver: leader changed");
        assert!(retryable(Retry::Repeatable, &unavailable));
        // Sent and maybe applied: a write is not sent again.
        assert!(!retryable(Retry::NonRepeatable, &unavailable));
        let refused = Status::from_error(Box::new(tonic::ConnectError(Box::new(
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"),
        ))));
        assert_eq!(refused.code(), Code::Unavailable);
        assert!(never_sent(&refused));
        assert!(retryable(Retry::NonRepeatable, &refused));
        assert!(!retryable(
            Retry::Repeatable,
            &Status::out_of_range("etcdserver: mvcc: required revision has been compacted")
        ));
        assert!(!retryable(Retry::Repeatable, &Status::cancelled("Timeout expired")));
    }

    #[tokio::test]
    async fn connect_fails_when_no_endpoint_answers() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let options = ClientOptions::default().with_dial_timeout(Duration::from_millis(500));
        let err = Client::connect([addr.to_string()], options).await.unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err}");
        let err =
            Client::connect(Vec::<String>::new(), ClientOptions::default()).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)));
    }
}
