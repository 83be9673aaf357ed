//! The member's connection to its own gRPC services, in process: the Lock and Election
//! services run the client crate's recipes over it, as etcd's run clientv3's recipes
//! over `v3client`, its in-process client to its own server.
//!
//! The recipes' calls travel as gRPC over an in-memory HTTP/2 connection to the
//! member's KV, Lease and Watch services behind their edge, so each is checked and
//! answered as the same call from a remote client would be (a learner's refusals,
//! auth, etcd's errors). A loopback connection to the member's client URL would do the
//! same through the network stack and TLS, and break where the member cannot reach its
//! own URL.
//!
//! Each call carries the caller's token, as etcd's in-process calls carry the caller's
//! metadata, so the recipes act with the caller's permissions. A client certificate's
//! common name is not carried: with auth enabled, a caller known only by its
//! certificate acts as nobody here (etcd would take it as that user).

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use oxetcd_client::{Client, ClientOptions};
use tokio::io::DuplexStream;
use tonic::Request;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::caller;
use crate::edge::{CoreServices, Edge};

/// The in-memory pipe's buffer, each way: larger messages pass in pieces.
const PIPE_BYTES: usize = 256 * 1024;

/// What the in-process endpoint is called (its URI is never resolved).
const LOCAL_ENDPOINT: &str = "http://in-process.oxetcd";

/// A connection to the member's own services, made on first use and shared by every
/// call (HTTP/2 multiplexes them).
pub(crate) struct Local {
    services: Edge<CoreServices>,
    /// Made by the first call: a channel starts a task, so it needs the runtime that
    /// calls run on, which building the services does not.
    channel: OnceLock<Channel>,
}

impl Local {
    /// A connection to `services` (KV, Lease and Watch among them, behind their
    /// edge). They are served on the connection for as long as this `Local` or a
    /// client made from it lives.
    pub(crate) fn new(services: Edge<CoreServices>) -> Local {
        Local { services, channel: OnceLock::new() }
    }

    /// A client acting for the caller of `request`: its token goes with every call.
    /// Nothing is retried (etcd's in-process client does not retry either: a failure
    /// here is the member's answer, not a lost connection), and the sizes are not
    /// bounded again (the caller's request was, by the service).
    pub(crate) fn client_for<T>(&self, request: &Request<T>) -> Client {
        let options = ClientOptions::default()
            .with_max_retries(0)
            .with_max_send_message_size(usize::MAX)
            .with_max_recv_message_size(usize::MAX);
        // A token is metadata that reads as visible ASCII, which `with_token` takes.
        let options = match caller::credentials(request).token {
            Some(token) => options.clone().with_token(token).unwrap_or(options),
            None => options,
        };
        let channel = self.channel.get_or_init(|| {
            let connector = Connector { services: self.services.clone() };
            Endpoint::from_static(LOCAL_ENDPOINT).connect_with_connector_lazy(connector)
        });
        Client::from_channel(LOCAL_ENDPOINT, channel.clone(), options)
    }
}

/// Makes the in-process connection: one end of an in-memory pipe for the channel, the
/// other served the services by a tonic server of its own, which ends with the
/// connection. It sets no limit on concurrent streams: each one serves a call the
/// member's listeners accepted under their own limits, and a limit here could leave
/// a lock holder's unlock waiting behind the waiters' watches.
#[derive(Clone)]
struct Connector {
    services: Edge<CoreServices>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<DuplexStream>;
    type Error = tonic::transport::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let services = self.services.clone();
        Box::pin(async move {
            let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
            // Returns once the one connection is accepted; its task serves it from there.
            tonic::transport::Server::builder()
                .max_concurrent_streams(None)
                .serve_with_incoming(services, tokio_stream::once(Ok::<_, std::io::Error>(theirs)))
                .await?;
            Ok(TokioIo::new(ours))
        })
    }
}
