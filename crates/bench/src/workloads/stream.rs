//! A bidirectional gRPC stream driven one message at a time.

use std::future::Future;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status, Streaming};

/// Requests go through a small bounded channel; responses come off the stream.
pub struct Bidi<Req, Resp> {
    tx: mpsc::Sender<Req>,
    rx: Streaming<Resp>,
}

impl<Req: Send + 'static, Resp> Bidi<Req, Resp> {
    /// Opens the stream with `first` already queued: etcd sends the response
    /// headers only with its first response, so the call would not return before
    /// a request is on its way.
    pub async fn open<F, Fut>(first: Req, call: F) -> Result<Self, Status>
    where
        F: FnOnce(ReceiverStream<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Streaming<Resp>>, Status>>,
    {
        let (tx, rx) = mpsc::channel(4);
        tx.send(first).await.expect("receiver is alive");
        let rx = call(ReceiverStream::new(rx)).await?.into_inner();
        Ok(Self { tx, rx })
    }

    pub async fn send(&mut self, req: Req) -> Result<(), Status> {
        self.tx.send(req).await.map_err(|_| Status::unavailable("stream closed"))
    }

    pub async fn recv(&mut self) -> Result<Resp, Status> {
        self.rx.message().await?.ok_or_else(|| Status::unavailable("stream ended by the server"))
    }
}
