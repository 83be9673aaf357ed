//! The one call the proxy answers itself: `Cluster.MemberList`. etcd's proxy, given an
//! `--advertise-client-url` (its default is `127.0.0.1:23790`), answers it with a single
//! member, itself: named after the host, with that URL as its client URL, and no header.
//! Clients that sync their endpoints from MemberList (clientv3's auto-sync) so stay on
//! the proxy instead of leaving it for the members behind it. With an empty
//! `--advertise-client-url` the call goes to the cluster like any other.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http_body::{Body, Frame};
use hyper::http::{HeaderMap, HeaderValue, Response, header};
use oxetcd_api::etcdserverpb::{Member, MemberListResponse};
use prost::Message;

/// The path of the call answered here.
pub(super) const MEMBER_LIST_PATH: &str = "/etcdserverpb.Cluster/MemberList";

/// Where Linux keeps the host name (what Go's `os.Hostname` reads first).
const HOSTNAME_FILE: &str = "/proc/sys/kernel/hostname";

/// The encoded gRPC message of the proxy's MemberList answer.
pub(super) fn member_list_message(advertise_client_url: &str) -> Bytes {
    // etcd's proxy ignores a failure to learn the host name and answers an empty name.
    let hostname = std::fs::read_to_string(HOSTNAME_FILE).unwrap_or_default();
    let answer = MemberListResponse {
        members: vec![Member {
            name: hostname.trim().to_string(),
            client_ur_ls: vec![advertise_client_url.to_string()],
            ..Member::default()
        }],
        ..MemberListResponse::default()
    };
    let encoded = answer.encode_to_vec();
    let mut message = BytesMut::with_capacity(5 + encoded.len());
    message.put_u8(0); // not compressed
    message.put_u32(encoded.len() as u32);
    message.put_slice(&encoded);
    message.freeze()
}

/// A successful unary answer carrying `message` (an encoded gRPC message).
pub(super) fn answer<B: From<LocalAnswer>>(message: Bytes) -> Response<B> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let mut response =
        Response::new(B::from(LocalAnswer { message: Some(message), trailers: Some(trailers) }));
    let content_type = HeaderValue::from_static("application/grpc");
    response.headers_mut().insert(header::CONTENT_TYPE, content_type);
    response
}

/// One message, then the trailers.
pub(super) struct LocalAnswer {
    message: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for LocalAnswer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let frame = match this.message.take() {
            Some(message) => Some(Frame::data(message)),
            None => this.trailers.take().map(Frame::trailers),
        };
        Poll::Ready(frame.map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.message.is_none() && self.trailers.is_none()
    }
}

impl From<LocalAnswer> for tonic::body::Body {
    fn from(answer: LocalAnswer) -> Self {
        tonic::body::Body::new(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_one_member_the_proxy_itself() {
        let message = member_list_message("127.0.0.1:23790");
        let len = u32::from_be_bytes([message[1], message[2], message[3], message[4]]) as usize;
        assert_eq!((message[0], len), (0, message.len() - 5));
        let answer = MemberListResponse::decode(&message[5..]).unwrap();
        assert!(answer.header.is_none());
        assert_eq!(answer.members.len(), 1);
        assert_eq!(answer.members[0].client_ur_ls, ["127.0.0.1:23790"]);
        assert_eq!(answer.members[0].id, 0);
        assert!(answer.members[0].peer_ur_ls.is_empty());
    }
}
