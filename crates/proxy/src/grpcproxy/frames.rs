//! gRPC's message framing, read only as far as the size limits need: each message is a
//! 1-byte compression flag and a 4-byte big-endian length, then that many bytes. The
//! messages themselves are never decoded.
//!
//! [`Metered`] wraps a body (a call's request stream or its response stream) and stops it
//! at the first message longer than its [`MessageLimit`], before any byte of that message
//! is passed on; what came before is passed on unchanged, without copying, except when a
//! length prefix straddles two chunks (at most 4 bytes are held back, and the next chunk
//! is joined to them).

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use hyper::http;
use tonic::Status;

/// The length prefix of every gRPC message (gRPC's HTTP/2 protocol, "Length-Prefixed-Message").
const PREFIX_LEN: usize = 5;

/// One of the size checks a message meets on its way through the proxy, in grpc-go's
/// words (etcd's proxy is a grpc-go server in front of a grpc-go client).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SizeCheck {
    pub max: usize,
    /// grpc-go's refusal, completed with ` (<length> vs. <max>)`.
    pub refusal: &'static str,
}

/// The checks a message meets, in the order it meets them: a request is received by the
/// proxy's server, then sent by its client; a response the other way round.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MessageLimit(pub [SizeCheck; 2]);

impl MessageLimit {
    fn threshold(&self) -> usize {
        self.0.iter().map(|c| c.max).min().unwrap_or(usize::MAX)
    }

    /// The status grpc-go answers a message of `len` bytes with (`len` is over the
    /// threshold, so some check refuses it).
    fn refusal(&self, len: usize) -> Status {
        let check = self.0.iter().find(|c| len > c.max).unwrap_or(&self.0[0]);
        Status::resource_exhausted(format!("{} ({len} vs. {})", check.refusal, check.max))
    }
}

/// Where a chunk's messages stand against the limit.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// The first `forward` bytes may go on; the rest (part of a length prefix) waits for
    /// the next chunk.
    Pass { forward: usize },
    /// A message of `len` bytes, over the limit, starts at `at`.
    TooLarge { at: usize, len: usize },
}

/// Follows message boundaries across chunks.
#[derive(Debug)]
struct Framer {
    threshold: usize,
    /// Bytes of the current message's body still to come.
    remaining: usize,
}

impl Framer {
    fn scan(&mut self, chunk: &[u8]) -> Scan {
        let mut at = 0;
        while at < chunk.len() {
            if self.remaining > 0 {
                let skip = self.remaining.min(chunk.len() - at);
                self.remaining -= skip;
                at += skip;
                continue;
            }
            let Some(prefix) = chunk.get(at..at + PREFIX_LEN) else {
                return Scan::Pass { forward: at };
            };
            let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
            if len > self.threshold {
                return Scan::TooLarge { at, len };
            }
            self.remaining = len;
            at += PREFIX_LEN;
        }
        Scan::Pass { forward: chunk.len() }
    }
}

/// What a stream does when a message breaks the limit or the stream underneath fails.
#[derive(Debug)]
pub(crate) enum OnRefusal {
    /// A request stream: the verdict is recorded for the call's answer and the stream
    /// fails, which resets the call's stream to the cluster.
    Fail(Arc<OnceLock<Status>>),
    /// A response stream: it ends with the status as trailers, as a gRPC server ends a
    /// failed call (a verdict on the request, if any, comes first).
    Trailers(Arc<OnceLock<Status>>),
}

/// A body checked message by message against a [`MessageLimit`].
pub(crate) struct Metered<B> {
    inner: B,
    limit: MessageLimit,
    framer: Framer,
    /// Bytes of a length prefix cut by a chunk's end.
    held: Bytes,
    /// A refusal found after bytes that went out first.
    pending: Option<Status>,
    on_refusal: OnRefusal,
    done: bool,
}

impl<B> Metered<B> {
    pub(crate) fn new(inner: B, limit: MessageLimit, on_refusal: OnRefusal) -> Metered<B> {
        let framer = Framer { threshold: limit.threshold(), remaining: 0 };
        Metered { inner, limit, framer, held: Bytes::new(), pending: None, on_refusal, done: false }
    }

    /// Ends the stream with `status`: as trailers, or as the stream's failure.
    fn refuse(&mut self, status: Status) -> Option<Result<Frame<Bytes>, Status>> {
        self.done = true;
        match &self.on_refusal {
            OnRefusal::Fail(verdict) => {
                let _ = verdict.set(status.clone());
                Some(Err(status))
            }
            OnRefusal::Trailers(verdict) => {
                let status = verdict.get().cloned().unwrap_or(status);
                let mut trailers = http::HeaderMap::new();
                // Only a message that cannot be a header value fails here; the code alone
                // still ends the call.
                if status.add_header(&mut trailers).is_err() {
                    let plain = Status::new(status.code(), "");
                    let _ = plain.add_header(&mut trailers);
                }
                Some(Ok(Frame::trailers(trailers)))
            }
        }
    }
}

impl<B> Body for Metered<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if let Some(status) = this.pending.take() {
            return Poll::Ready(this.refuse(status));
        }
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                None => {
                    this.done = true;
                    // A prefix cut off by the stream's end is the receiver's to judge.
                    let held = std::mem::take(&mut this.held);
                    return Poll::Ready((!held.is_empty()).then(|| Ok(Frame::data(held))));
                }
                Some(Err(e)) => {
                    return Poll::Ready(match this.on_refusal {
                        // The client's stream broke: the call to the cluster is reset, and
                        // there is no one left to answer.
                        OnRefusal::Fail(_) => {
                            this.done = true;
                            Some(Err(Status::cancelled(format!("the request stream failed: {e}"))))
                        }
                        OnRefusal::Trailers(_) => this
                            .refuse(Status::unavailable(format!("error reading from server: {e}"))),
                    });
                }
                Some(Ok(frame)) => frame,
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                // Trailers end the stream: they go on as they are.
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            };
            let data = if this.held.is_empty() {
                data
            } else {
                let mut joined = BytesMut::with_capacity(this.held.len() + data.len());
                joined.extend_from_slice(&this.held);
                joined.extend_from_slice(&data);
                joined.freeze()
            };
            match this.framer.scan(&data) {
                Scan::Pass { forward } => {
                    this.held = data.slice(forward..);
                    if forward > 0 {
                        return Poll::Ready(Some(Ok(Frame::data(data.slice(..forward)))));
                    }
                }
                Scan::TooLarge { at, len } => {
                    let status = this.limit.refusal(len);
                    if at == 0 {
                        return Poll::Ready(this.refuse(status));
                    }
                    this.pending = Some(status);
                    return Poll::Ready(Some(Ok(Frame::data(data.slice(..at)))));
                }
            }
        }
    }

    // The inner stream's end is passed on: a trailers-only answer (a status and no
    // message) must end on its headers, as gRPC clients expect.
    fn is_end_stream(&self) -> bool {
        self.pending.is_none()
            && (self.done || (self.held.is_empty() && self.inner.is_end_stream()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: usize) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&(len as u32).to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, len));
        m
    }

    #[test]
    fn the_framer_follows_messages_across_chunks() {
        let mut framer = Framer { threshold: 10, remaining: 0 };
        let stream: Vec<u8> = [message(3), message(0), message(10)].concat();
        // Whole: everything passes.
        assert_eq!(framer.scan(&stream), Scan::Pass { forward: stream.len() });
        // Cut inside the second prefix: the cut prefix is held back.
        let mut framer = Framer { threshold: 10, remaining: 0 };
        assert_eq!(framer.scan(&stream[..10]), Scan::Pass { forward: 8 });
        assert_eq!(framer.scan(&stream[8..]), Scan::Pass { forward: stream.len() - 8 });
        // Cut inside a body: the body's rest is skipped in the next chunk.
        let mut framer = Framer { threshold: 10, remaining: 0 };
        assert_eq!(framer.scan(&stream[..6]), Scan::Pass { forward: 6 });
        assert_eq!(framer.remaining, 2);
        assert_eq!(framer.scan(&stream[6..]), Scan::Pass { forward: stream.len() - 6 });
        // Over the limit: found where its prefix starts.
        let mut framer = Framer { threshold: 10, remaining: 0 };
        let stream: Vec<u8> = [message(3), message(11)].concat();
        assert_eq!(framer.scan(&stream), Scan::TooLarge { at: 8, len: 11 });
    }

    #[test]
    fn refusals_use_the_first_check_that_fails() {
        let limit = MessageLimit([
            SizeCheck { max: 100, refusal: "grpc: received message larger than max" },
            SizeCheck { max: 10, refusal: "trying to send message larger than max" },
        ]);
        assert_eq!(limit.threshold(), 10);
        let status = limit.refusal(50);
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(status.message(), "trying to send message larger than max (50 vs. 10)");
        assert_eq!(
            limit.refusal(150).message(),
            "grpc: received message larger than max (150 vs. 100)"
        );
    }

    fn chunked(chunks: Vec<Vec<u8>>) -> impl Body<Data = Bytes, Error = Status> + Unpin {
        let frames = chunks.into_iter().map(|c| Ok(Frame::data(Bytes::from(c))));
        http_body_util::StreamBody::new(tokio_stream::iter(frames))
    }

    async fn drain(mut body: impl Body<Data = Bytes, Error = Status> + Unpin) -> Vec<Frame<Bytes>> {
        let mut frames = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            match frame {
                Ok(frame) => frames.push(frame),
                Err(status) => {
                    let mut trailers = http::HeaderMap::new();
                    status.add_header(&mut trailers).unwrap();
                    frames.push(Frame::trailers(trailers));
                    break;
                }
            }
        }
        frames
    }

    const LIMIT: MessageLimit = MessageLimit([
        SizeCheck { max: 8, refusal: "grpc: received message larger than max" },
        SizeCheck { max: 100, refusal: "grpc: trying to send message larger than max" },
    ]);

    #[tokio::test]
    async fn a_response_stops_before_an_oversized_message_and_ends_with_its_status() {
        // The big message's prefix straddles the two chunks.
        let stream = [message(4), message(9)].concat();
        let body = chunked(vec![stream[..11].to_vec(), stream[11..].to_vec()]);
        let verdict = Arc::new(OnceLock::new());
        let frames = drain(Metered::new(body, LIMIT, OnRefusal::Trailers(verdict))).await;
        let data: Vec<u8> =
            frames.iter().filter_map(|f| f.data_ref()).flat_map(|d| d.to_vec()).collect();
        assert_eq!(data, message(4), "only the message within the limit goes on");
        let trailers = frames.last().and_then(|f| f.trailers_ref()).unwrap();
        let status = Status::from_header_map(trailers).unwrap();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(status.message(), "grpc: received message larger than max (9 vs. 8)");
    }

    #[tokio::test]
    async fn a_request_over_the_limit_fails_and_leaves_its_verdict() {
        let verdict = Arc::new(OnceLock::new());
        let body = chunked(vec![message(2), message(20)]);
        let frames = drain(Metered::new(body, LIMIT, OnRefusal::Fail(verdict.clone()))).await;
        assert_eq!(frames[0].data_ref().unwrap().to_vec(), message(2));
        let status: &Status = verdict.get().unwrap();
        assert_eq!(status.message(), "grpc: received message larger than max (20 vs. 8)");
        // Within the limit: everything passes, nothing is recorded.
        let verdict = Arc::new(OnceLock::new());
        let body = chunked(vec![message(8), message(0)]);
        let frames = drain(Metered::new(body, LIMIT, OnRefusal::Fail(verdict.clone()))).await;
        let data: Vec<u8> =
            frames.iter().filter_map(|f| f.data_ref()).flat_map(|d| d.to_vec()).collect();
        assert_eq!(data, [message(8), message(0)].concat());
        assert!(verdict.get().is_none());
    }
}
