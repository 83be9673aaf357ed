//! Shared fixtures: a recording raft handler and members served on 127.0.0.1.

#![allow(dead_code)]

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oxetcd_api::etcdserverpb::HashKvResponse;
use oxetcd_api::oxetcdpb::MembersResponse;
use oxetcd_api::oxetcdpb::peer_client::PeerClient;
use oxetcd_raft::{Message, MessageType, SnapshotStatus};
use oxetcd_transport::{
    CLUSTER_ID_HEADER, Dropped, FROM_HEADER, HashKvError, RaftHandler, TO_HEADER, Transport,
    TransportConfig,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Channel;

/// How long any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// A handler that records every call.
#[derive(Default)]
pub struct Recorder {
    inbox: Mutex<Option<mpsc::UnboundedSender<Message>>>,
    pub unreachable: Mutex<Vec<u64>>,
    pub snapshot_reports: Mutex<Vec<(u64, SnapshotStatus)>>,
    pub snapshots: Mutex<Vec<(Message, PathBuf)>>,
    pub removed: Mutex<HashSet<u64>>,
    pub removed_by: Mutex<Vec<u64>>,
    /// When set, `process` refuses everything (a full receive queue).
    pub full: AtomicBool,
    /// What `members` answers.
    pub members: Mutex<Option<MembersResponse>>,
    /// What `hash_kv` answers (`None`: `Unavailable`); the revisions asked for.
    pub hash_kv: Mutex<Option<Result<HashKvResponse, HashKvError>>>,
    pub hash_kv_asked: Mutex<Vec<i64>>,
}

impl Recorder {
    pub fn unreachable_count(&self, id: u64) -> usize {
        self.unreachable.lock().unwrap().iter().filter(|&&x| x == id).count()
    }
}

impl RaftHandler for Recorder {
    fn process(&self, msg: Message) -> Result<(), Dropped> {
        if self.full.load(Ordering::Relaxed) {
            return Err(Dropped);
        }
        if let Some(inbox) = self.inbox.lock().unwrap().as_ref() {
            let _ = inbox.send(msg);
        }
        Ok(())
    }

    fn is_removed(&self, id: u64) -> bool {
        self.removed.lock().unwrap().contains(&id)
    }

    fn report_unreachable(&self, id: u64) {
        self.unreachable.lock().unwrap().push(id);
    }

    fn report_snapshot(&self, id: u64, status: SnapshotStatus) {
        self.snapshot_reports.lock().unwrap().push((id, status));
    }

    fn receive_snapshot(&self, msg: Message, db_path: PathBuf) {
        self.snapshots.lock().unwrap().push((msg, db_path));
    }

    fn removed_by_peer(&self, by_peer: u64) {
        self.removed_by.lock().unwrap().push(by_peer);
    }

    fn members(&self) -> Option<MembersResponse> {
        self.members.lock().unwrap().clone()
    }

    fn hash_kv(&self, revision: i64) -> Result<HashKvResponse, HashKvError> {
        self.hash_kv_asked.lock().unwrap().push(revision);
        let answer = self.hash_kv.lock().unwrap().clone();
        answer.unwrap_or_else(|| Err(HashKvError::Unavailable("nothing to hash".into())))
    }
}

/// Log lines show up with the output of a failing test.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
}

/// Polls `cond` until it holds; panics with `what` after [`WAIT`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `fut`, or a panic naming `what` after [`WAIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A listener on a fresh 127.0.0.1 port.
pub async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// A URL where nothing listens (the port was just released).
pub async fn dead_url() -> (String, SocketAddr) {
    let addr = listener().await.local_addr().unwrap();
    (format!("http://{addr}"), addr)
}

/// Settings that make tests quick: short backoff and dial timeout.
pub fn test_config(cluster_id: u64, id: u64, dir: &std::path::Path) -> TransportConfig {
    let mut config = TransportConfig::new(cluster_id, id, dir.join(format!("snap-{id:x}")));
    config.backoff_min = Duration::from_millis(20);
    config.backoff_max = Duration::from_millis(200);
    config.dial_timeout = Duration::from_secs(2);
    config
}

/// One member: its transport, handler, inbox and peer listener.
pub struct Node {
    pub id: u64,
    pub transport: Transport,
    pub handler: Arc<Recorder>,
    pub inbox: mpsc::UnboundedReceiver<Message>,
    pub addr: SocketAddr,
    pub url: String,
    pub snapshot_dir: PathBuf,
    server: Option<Server>,
}

impl Node {
    pub async fn start(config: TransportConfig) -> Node {
        Node::start_on(config, listener().await).await
    }

    pub async fn start_on(config: TransportConfig, listener: TcpListener) -> Node {
        init_logs();
        let handler = Arc::new(Recorder::default());
        let (tx, inbox) = mpsc::unbounded_channel();
        *handler.inbox.lock().unwrap() = Some(tx);
        let id = config.member_id;
        let snapshot_dir = config.snapshot_dir.clone();
        let transport = Transport::new(config, handler.clone());
        let addr = listener.local_addr().unwrap();
        let server = Server::start(&transport, listener);
        Node {
            id,
            transport,
            handler,
            inbox,
            addr,
            url: format!("http://{addr}"),
            snapshot_dir,
            server: Some(server),
        }
    }

    /// Stops the transport and the listener, and waits for both.
    pub async fn shutdown(&mut self) {
        self.transport.stop();
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    /// The next message delivered to this member.
    pub async fn recv(&mut self) -> Message {
        within("a delivered message", self.inbox.recv()).await.expect("inbox open")
    }

    /// Whether nothing is delivered within `quiet`.
    pub async fn nothing_delivered(&mut self, quiet: Duration) -> bool {
        tokio::time::timeout(quiet, self.inbox.recv()).await.is_err()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.transport.stop();
    }
}

/// A tonic server with a transport's service on a listener.
pub struct Server {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    pub fn start(transport: &Transport, listener: TcpListener) -> Server {
        let (stop, stopped) = oneshot::channel();
        let service = transport.service();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Server { stop: Some(stop), task }
    }

    /// Stops accepting and waits for open calls to end (stop the transport first).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        within("server shutdown", &mut self.task).await.unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A raft message from `from` to `to`, told apart by `index`.
pub fn msg(t: MessageType, from: u64, to: u64, index: u64) -> Message {
    let mut m = Message::new(t);
    m.from = from;
    m.to = to;
    m.term = 1;
    m.index = index;
    m
}

/// A raw gRPC client to `url`, for sending hand-made (or bad) calls.
pub async fn raw_client(url: &str) -> PeerClient<Channel> {
    PeerClient::connect(url.to_owned()).await.unwrap()
}

/// `request` with the three peer headers set.
pub fn with_headers<T>(message: T, cluster: u64, from: u64, to: u64) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let md = request.metadata_mut();
    md.insert(CLUSTER_ID_HEADER, format!("{cluster:x}").parse().unwrap());
    md.insert(FROM_HEADER, format!("{from:x}").parse().unwrap());
    md.insert(TO_HEADER, format!("{to:x}").parse().unwrap());
    request
}
