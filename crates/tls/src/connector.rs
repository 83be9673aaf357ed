//! Dialing a member: the connector given to tonic's `Endpoint::connect_with_connector`
//! for `http://`, `https://`, `unix://` and `unixs://` URLs, as etcd dials them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::Uri;

use crate::socket::{Socket, delegate_io};

/// Connects to the URI's host and port, over TLS for `https`/`unixs`. Cheap to clone.
///
/// A `unix://host:port` URL names the socket file `host:port` (relative to the working
/// directory), as etcd's unix listeners do. TLS names the server by the URL's host.
#[derive(Clone)]
pub struct Connector {
    tls: Option<TlsConnector>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").field("tls", &self.tls.is_some()).finish()
    }
}

impl Connector {
    /// A connector that dials `https`/`unixs` URLs with `tls`; without it, those URLs
    /// fail to connect (saying TLS is not configured) and only plaintext ones work.
    pub fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Connector {
        Connector { tls: tls.map(TlsConnector::from) }
    }

    async fn dial(tls: Option<TlsConnector>, uri: Uri) -> io::Result<Stream> {
        let invalid =
            |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{uri}: {why}"));
        let host = uri.host().ok_or_else(|| invalid("no host"))?;
        let (secure, unix) = match uri.scheme_str() {
            Some("http") => (false, false),
            Some("https") => (true, false),
            Some("unix") => (false, true),
            Some("unixs") => (true, true),
            _ => return Err(invalid("the scheme must be http, https, unix or unixs")),
        };
        let plain = if unix {
            let path = uri.authority().map(|a| a.as_str()).unwrap_or(host);
            Socket::Unix(UnixStream::connect(path).await?)
        } else {
            let port = uri.port_u16().ok_or_else(|| invalid("no port"))?;
            // Brackets are part of an IPv6 host in a URI, not of the address.
            let tcp =
                TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
                    .await?;
            // Raft messages and small replies are written once: no coalescing delay.
            tcp.set_nodelay(true)?;
            Socket::Tcp(tcp)
        };
        if !secure {
            return Ok(Stream::Plain(plain));
        }
        let Some(tls) = tls else {
            return Err(invalid("TLS is not configured for this client"));
        };
        let name = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let name =
            rustls::pki_types::ServerName::try_from(name).map_err(|e| invalid(&e.to_string()))?;
        Ok(Stream::Tls(Box::new(tls.connect(name, plain).await?)))
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<Stream>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move { Connector::dial(tls, uri).await.map(TokioIo::new) })
    }
}

/// A dialed connection: plaintext or TLS, over TCP or a unix socket.
#[derive(Debug)]
pub enum Stream {
    /// Plaintext (`http`, `unix`).
    Plain(Socket),
    /// TLS (`https`, `unixs`).
    Tls(Box<TlsStream<Socket>>),
}

delegate_io!(Stream, Stream::Plain, Stream::Tls);
