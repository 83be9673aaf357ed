//! Listeners (etcd's `NewListener` plus cmux's TLS/plaintext split): TCP or unix socket,
//! serving plaintext, TLS, or both on one port.
//!
//! The accept loop never runs a handshake itself: each TLS (or sniffed) connection gets a
//! task of its own, so a slow client cannot hold up the next accept. A failed handshake or
//! check is logged at warn ("rejected connection") and the listener carries on. Accepted
//! connections reach the consumer through a bounded channel: when it falls behind, accepting
//! stops and new clients wait in the kernel's backlog.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::Stream;

use crate::server::{HANDSHAKE_TIMEOUT, PeerIdentity, ServerTls};
use crate::socket::{Socket, delegate_io};

/// Connections accepted but not yet through their handshake (or sniff), at most. etcd spawns
/// a goroutine per connection without a bound; this bounds the memory and sockets a flood of
/// stalled clients can hold (each slot is freed by [`HANDSHAKE_TIMEOUT`] at the latest), while
/// being far above what members and clients need at once.
pub const MAX_PENDING_HANDSHAKES: usize = 1024;

/// Connections handed over but not yet taken by the server, at most: enough to absorb a
/// burst of reconnecting clients; beyond it accepting pauses (backpressure, not loss).
const ACCEPTED_QUEUE: usize = 128;

/// First and longest pause after an accept error such as EMFILE: Go's `net/http` server
/// backs off from 5 ms, doubling up to 1 s, so a file-descriptor shortage neither spins a
/// core nor stops the listener.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The first byte of a TLS handshake record, how cmux (and we) tell TLS from plaintext.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// A listen URL's scheme, as etcd accepts them for `--listen-client-urls` and
/// `--listen-peer-urls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenScheme {
    /// `http://`: TCP, plaintext.
    Http,
    /// `https://`: TCP, TLS.
    Https,
    /// `unix://`: unix socket, plaintext.
    Unix,
    /// `unixs://`: unix socket, TLS.
    Unixs,
}

impl ListenScheme {
    /// The scheme named `name` (`http`, `https`, `unix`, `unixs`), if etcd knows it.
    pub fn parse(name: &str) -> Option<ListenScheme> {
        match name {
            "http" => Some(ListenScheme::Http),
            "https" => Some(ListenScheme::Https),
            "unix" => Some(ListenScheme::Unix),
            "unixs" => Some(ListenScheme::Unixs),
            _ => None,
        }
    }

    /// Whether the scheme serves TLS (`https`, `unixs`).
    pub fn is_tls(self) -> bool {
        matches!(self, ListenScheme::Https | ListenScheme::Unixs)
    }

    /// Whether the scheme listens on a unix socket (`unix`, `unixs`).
    pub fn is_unix(self) -> bool {
        matches!(self, ListenScheme::Unix | ListenScheme::Unixs)
    }
}

/// Where a listener binds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A unix socket file. etcd's `unix://localhost:2379` names a file literally called
    /// `localhost:2379` in the working directory (etcd listens on the URL's host plus path).
    Unix(PathBuf),
}

/// What a served connection knows about its client (tonic's connect info for [`Conn`]).
#[derive(Debug, Clone, Default)]
pub struct ConnInfo {
    /// The client's address; None on a unix socket.
    pub remote: Option<SocketAddr>,
    /// The client's TLS identity; None when the connection is plaintext.
    pub identity: Option<PeerIdentity>,
}

/// A bound listener. [`Listener::into_incoming`] starts accepting.
#[derive(Debug)]
pub struct Listener {
    raw: RawListener,
    mode: Mode,
    unix_guard: Option<UnixSocketFile>,
}

#[derive(Debug)]
enum RawListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

#[derive(Debug, Clone)]
enum Mode {
    Plain,
    Tls(ServerTls),
    Both(ServerTls),
}

/// Removes the socket file when the listener goes away, as etcd's unix listener does on
/// close (and as it removes a stale one before binding).
#[derive(Debug)]
struct UnixSocketFile(PathBuf);

impl Drop for UnixSocketFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.0.display(), error = %e, "cannot remove unix socket file");
        }
    }
}

impl Listener {
    /// Binds `addr`. `plain`: serve plaintext; `tls`: serve TLS; both: one port serving both,
    /// told apart by the first byte (0x16 starts a TLS handshake), as etcd's cmux does when
    /// the same address is listed with `http://` and `https://`. A unix socket file left
    /// behind by an earlier run is removed first.
    pub async fn bind(
        addr: &ListenAddr,
        plain: bool,
        tls: Option<ServerTls>,
    ) -> io::Result<Listener> {
        let mode = match (plain, tls) {
            (true, None) => Mode::Plain,
            (false, Some(tls)) => Mode::Tls(tls),
            (true, Some(tls)) => Mode::Both(tls),
            (false, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a listener must serve plaintext, TLS or both",
                ));
            }
        };
        let (raw, unix_guard) = match addr {
            ListenAddr::Tcp(addr) => (RawListener::Tcp(TcpListener::bind(addr).await?), None),
            ListenAddr::Unix(path) => {
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                let l = UnixListener::bind(path)?;
                (RawListener::Unix(l), Some(UnixSocketFile(path.clone())))
            }
        };
        Ok(Listener { raw, mode, unix_guard })
    }

    /// The bound TCP address (with the port the OS chose for port 0); an error on a unix
    /// socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.raw {
            RawListener::Tcp(l) => l.local_addr(),
            RawListener::Unix(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a unix socket listener has no TCP address",
            )),
        }
    }

    /// The socket file of a unix listener.
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix_guard.as_ref().map(|g| g.0.as_path())
    }

    /// The same listener registered with the runtime this is called on, so its
    /// connections are polled there (a member serves peers on a runtime of their own, but
    /// binds before that runtime exists).
    pub fn move_to_current_runtime(self) -> io::Result<Listener> {
        let raw = match self.raw {
            RawListener::Tcp(l) => RawListener::Tcp(TcpListener::from_std(l.into_std()?)?),
            RawListener::Unix(l) => RawListener::Unix(UnixListener::from_std(l.into_std()?)?),
        };
        Ok(Listener { raw, ..self })
    }

    /// Yields the connections that pass the handshake and checks, accepting as it is
    /// polled (on the current tokio runtime). The stream never ends by itself and yields
    /// no errors (failures are logged). Dropping it closes the listening socket at once:
    /// the accept loop lives inside the stream, not in a task of its own, so a member that
    /// stopped serving can be started again on the same port straight away.
    pub fn into_incoming(self) -> impl Stream<Item = io::Result<Conn>> + Send + 'static {
        let (tx, rx) = mpsc::channel(ACCEPTED_QUEUE);
        Incoming { accepting: Box::pin(accept_loop(self, tx)), accepted: rx }
    }
}

/// The accept loop and the connections its handshake tasks hand over, as one stream.
struct Incoming<A> {
    /// Never finishes: it stops only when dropped with the stream.
    accepting: Pin<Box<A>>,
    accepted: mpsc::Receiver<io::Result<Conn>>,
}

impl<A: Future<Output = std::convert::Infallible>> Stream for Incoming<A> {
    type Item = io::Result<Conn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Accepts what is waiting and spawns its handshakes; registers for the next
        // connection with this task's waker.
        let Poll::Pending = self.accepting.as_mut().poll(cx);
        // The loop holds a sender, so the channel stays open while the stream lives.
        self.accepted.poll_recv(cx)
    }
}

async fn accept_loop(
    listener: Listener,
    tx: mpsc::Sender<io::Result<Conn>>,
) -> std::convert::Infallible {
    let Listener { raw, mode, unix_guard } = listener;
    let _unix_guard = unix_guard;
    let slots = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        // Each permit is returned when its handshake ends: waiting for one waits for a
        // handshake to end.
        let permit = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (stream, remote) = match accept(&raw).await {
            Ok(a) => {
                backoff = ACCEPT_BACKOFF_MIN;
                a
            }
            // The client gave up before we got to it: nothing to do but accept the next.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "accept error");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let mode = mode.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let conn = serve(stream, remote, &mode).await;
            if let Some(conn) = conn {
                // A send error means the consumer is gone: the connection is just dropped.
                let _ = tx.send(Ok(conn)).await;
            }
            drop(permit);
        });
    }
}

async fn accept(raw: &RawListener) -> io::Result<(Socket, Option<SocketAddr>)> {
    match raw {
        RawListener::Tcp(l) => {
            let (s, remote) = l.accept().await?;
            // etcd's connections go through Go's net package, which sets TCP_NODELAY; raft
            // and gRPC messages are small and latency-bound.
            if let Err(error) = s.set_nodelay(true) {
                tracing::debug!(%error, %remote, "cannot set TCP_NODELAY");
            }
            Ok((Socket::Tcp(s), Some(remote)))
        }
        RawListener::Unix(l) => {
            let (s, _) = l.accept().await?;
            Ok((Socket::Unix(s), None))
        }
    }
}

/// Handshake (or sniff, then maybe handshake) one connection; None if it was refused.
async fn serve(stream: Socket, remote: Option<SocketAddr>, mode: &Mode) -> Option<Conn> {
    let remote_text = remote.map_or_else(|| "unix socket".to_owned(), |r| r.to_string());
    let mut stream = Prefixed::new(stream);
    let tls = match mode {
        Mode::Plain => {
            return Some(Conn::plain(stream, remote));
        }
        Mode::Tls(tls) => tls,
        Mode::Both(tls) => {
            let mut first = [0u8; 1];
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.inner.read(&mut first)).await {
                Ok(Ok(1)) => {}
                Ok(Ok(_)) => return None,
                Ok(Err(error)) => {
                    tracing::debug!(remote = %remote_text, %error, "connection failed before its first byte");
                    return None;
                }
                Err(_) => {
                    tracing::warn!(remote = %remote_text, "rejected connection: nothing sent within {HANDSHAKE_TIMEOUT:?}");
                    return None;
                }
            }
            stream.prefix = Some(first[0]);
            if first[0] != TLS_HANDSHAKE_RECORD {
                return Some(Conn::plain(stream, remote));
            }
            tls
        }
    };
    match tls.accept(stream, remote).await {
        Ok((stream, identity)) => Some(Conn {
            inner: ConnInner::Tls(Box::new(stream)),
            info: ConnInfo { remote, identity: Some(identity) },
        }),
        Err(error) => {
            tracing::warn!(remote_addr = %remote_text, %error, "rejected connection");
            None
        }
    }
}

/// An accepted connection, plaintext or TLS (handshake done, checks passed).
#[derive(Debug)]
pub struct Conn {
    inner: ConnInner,
    info: ConnInfo,
}

enum ConnInner {
    Plain(Prefixed<Socket>),
    Tls(Box<tokio_rustls::server::TlsStream<Prefixed<Socket>>>),
}

impl std::fmt::Debug for ConnInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConnInner::Plain(_) => "Plain",
            ConnInner::Tls(_) => "Tls",
        })
    }
}

impl Conn {
    fn plain(stream: Prefixed<Socket>, remote: Option<SocketAddr>) -> Conn {
        Conn { inner: ConnInner::Plain(stream), info: ConnInfo { remote, identity: None } }
    }

    /// The client's address and TLS identity.
    pub fn info(&self) -> &ConnInfo {
        &self.info
    }

    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.inner, ConnInner::Tls(_))
    }

    /// The ALPN protocol the TLS handshake settled on (`h2`, `http/1.1`), if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match &self.inner {
            ConnInner::Plain(_) => None,
            ConnInner::Tls(s) => s.get_ref().1.alpn_protocol(),
        }
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

delegate_io!(ConnInner, ConnInner::Plain, ConnInner::Tls);
delegate_io!(Conn => inner);

/// A stream with the byte read while sniffing put back in front.
#[derive(Debug)]
struct Prefixed<S> {
    prefix: Option<u8>,
    inner: S,
}

impl<S> Prefixed<S> {
    fn new(inner: S) -> Self {
        Prefixed { prefix: None, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() > 0
            && let Some(b) = this.prefix.take()
        {
            buf.put_slice(&[b]);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
