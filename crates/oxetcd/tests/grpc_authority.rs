//! The HTTP/2 `:authority` of a gRPC call, as etcd 3.4's Go client sends it.
//!
//! clientv3 3.4 dials its per-endpoint Maintenance calls (Status, HashKV, Defragment:
//! `etcdctl endpoint status`, `endpoint hashkv`, `defrag`) through gRPC's passthrough
//! resolver with the endpoint as written, so with an `http://` endpoint the
//! `:authority` is `http://127.0.0.1:PORT`. Go's server takes
//! it; oxetcd does too (h2 is patched for it: third_party/h2/OXETCD-PATCH.md). An
//! authority that is malformed after the scheme is still refused.
//!
//! No Rust HTTP/2 client can send such an authority (`http::Uri` refuses it), so the
//! test speaks HTTP/2 itself: the preface, a SETTINGS frame, and one request of one
//! HEADERS frame (HPACK literals, no Huffman, no table) and one DATA frame; the answer
//! is read frame by frame, which needs no HPACK decoding: a reset stream, or the DATA
//! of a gRPC reply (a GOAWAY fails the test).

mod support;

use std::time::Duration;

use oxetcd_api::etcdserverpb::StatusResponse;
use prost::Message as _;
use support::{MemberConfig, Process};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const PROTOCOL_ERROR: u32 = 0x1;
const STREAM: u32 = 1;

/// How the server answered the one request.
#[derive(Debug)]
enum Answer {
    /// The stream ended normally, with these DATA bytes (empty for an error status).
    Ended(Vec<u8>),
    /// RST_STREAM with this error code.
    Reset(u32),
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    assert!(len < 1 << 14, "within the default SETTINGS_MAX_FRAME_SIZE");
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend(payload);
    out
}

/// HPACK "literal header field without indexing, new name", without Huffman coding.
fn literal(block: &mut Vec<u8>, name: &str, value: &str) {
    block.push(0x00);
    for s in [name, value] {
        let len = u8::try_from(s.len()).ok().filter(|&len| len < 0x7f).expect("a short string");
        block.push(len);
        block.extend(s.as_bytes());
    }
}

/// Sends `Maintenance/Status` to `addr` with the given `:authority`; returns the answer.
async fn status_with_authority(addr: &str, authority: &str) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/etcdserverpb.Maintenance/Status"),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        literal(&mut block, name, value);
    }
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out.extend(frame(HEADERS, END_HEADERS, STREAM, &block));
    // One gRPC message: not compressed, 0 bytes long (an empty StatusRequest).
    out.extend(frame(DATA, END_STREAM, STREAM, &[0, 0, 0, 0, 0]));
    stream.write_all(&out).await.unwrap();

    let mut data = Vec::new();
    loop {
        let mut head = [0u8; 9];
        stream.read_exact(&mut head).await.expect("a frame from the server");
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).await.expect("a frame's payload");
        let code = || u32::from_be_bytes(payload[..4].try_into().unwrap());
        match kind {
            SETTINGS if flags & ACK == 0 => {
                stream.write_all(&frame(SETTINGS, ACK, 0, &[])).await.unwrap();
            }
            GOAWAY => panic!("GOAWAY {:#x}", u32::from_be_bytes(payload[4..8].try_into().unwrap())),
            RST_STREAM if id == STREAM => return Answer::Reset(code()),
            DATA if id == STREAM => {
                data.extend(&payload);
                if flags & END_STREAM != 0 {
                    return Answer::Ended(data);
                }
            }
            // The response headers, then the trailers, which end the stream.
            HEADERS if id == STREAM && flags & END_STREAM != 0 => return Answer::Ended(data),
            _ => {}
        }
    }
}

/// The one gRPC message of a reply, as a StatusResponse.
fn status_reply(answer: Answer, authority: &str) -> StatusResponse {
    let Answer::Ended(data) = answer else {
        panic!("Status with :authority {authority:?}: {answer:?}");
    };
    assert!(data.len() >= 5, "Status with :authority {authority:?}: no reply message");
    assert_eq!(data[0], 0, "not compressed");
    let len = u32::from_be_bytes(data[1..5].try_into().unwrap()) as usize;
    assert_eq!(data.len(), 5 + len, "one message");
    StatusResponse::decode(&data[5..]).expect("a StatusResponse")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authority_with_a_scheme_is_served_as_go_clients_send_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = MemberConfig::single(dir.path(), "authority");
    let process = Process::start(&config).await;
    let url = process.endpoint();
    let addr = url.strip_prefix("http://").unwrap();

    tokio::time::timeout(Duration::from_secs(30), async {
        // As the URL is written (clientv3 3.4), without the scheme (grpc-go, tonic),
        // and with an upper-case scheme (schemes are case-insensitive).
        let upper = format!("HTTP://{addr}");
        for authority in [url, addr, upper.as_str()] {
            let status = status_reply(status_with_authority(addr, authority).await, authority);
            let header = status.header.expect("a response header");
            assert_ne!(header.member_id, 0, ":authority {authority:?}");
            assert_eq!(status.leader, header.member_id, ":authority {authority:?}");
        }
        // Malformed after the scheme, or a scheme other than http(s): refused as before.
        for authority in [
            format!("http://{addr}/path"),
            format!("http://bad host:{}", 1),
            format!("unix://{addr}"),
        ] {
            match status_with_authority(addr, &authority).await {
                Answer::Reset(PROTOCOL_ERROR) => {}
                other => panic!(":authority {authority:?}: {other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out:\n{}", config.log_tail(40)));
}
