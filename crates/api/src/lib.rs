//! The etcd v3 wire contract, as oxetcd speaks it.
//!
//! Messages and gRPC client/server stubs are generated at build time from the
//! `.proto` files in `proto/`, which reproduce etcd's service, RPC, message and enum
//! names and field numbers (etcd v3.5, plus cheap v3.6 additions). Every module is
//! named after its protobuf package, so a type's path reads like etcd's Go import:
//! `etcdserverpb::RangeRequest`, `mvccpb::KeyValue`, `authpb::Role`.
//!
//! `bytes` fields are [`prost::bytes::Bytes`], so keys and values move between the
//! store, watchers and responses without copies.

#![allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]

/// Stored key versions and watch events.
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// Users, roles and permissions.
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// The client API services: KV, Watch, Lease, Cluster, Maintenance, Auth.
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// The Lock service (etcd's v3lock).
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

/// The Election service (etcd's v3election).
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}

/// oxetcd's internal messages: the payload of raft log entries, and the peer
/// protocol between members.
pub mod oxetcdpb {
    tonic::include_proto!("oxetcdpb");
}

/// The encoded `FileDescriptorSet` of every `.proto` file above: the messages' names,
/// numbers and types at run time, for the JSON gateway's mapping.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/file_descriptor_set.bin"));

/// A gRPC method of the services above, as their `.proto` files declare it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrpcMethod {
    /// The service's full name: `etcdserverpb.KV`.
    pub service: &'static str,
    pub method: &'static str,
    pub client_streaming: bool,
    pub server_streaming: bool,
}

/// Every gRPC method of every service above, in the `.proto` files' order: the same
/// facts as [`FILE_DESCRIPTOR_SET`], as a table that costs nothing to read.
pub const GRPC_METHODS: &[GrpcMethod] = include!(concat!(env!("OUT_DIR"), "/grpc_methods.rs"));

/// Whether an HTTP request with `headers` is a gRPC call: gRPC's content type,
/// `application/grpc`, with or without a subtype (`application/grpc+proto`).
pub fn is_grpc(headers: &tonic::codegen::http::HeaderMap) -> bool {
    headers
        .get(tonic::codegen::http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/grpc"))
}

/// How much a call's first read and first write reserve: tonic's default is 8 KiB
/// each way. A typical etcd request and response (a put of a few hundred bytes, a
/// watch create, a watcher's event) fits in 1 KiB, and a watch stream holds both
/// buffers for its life: 10,000 watchers on 100 streams kept 1.6 MB of them
/// (docs/benchmarks.md, the seventeenth session). A larger message still
/// gets its whole length reserved at once, as tonic reads its length prefix first.
const CALL_BUFFER_BYTES: usize = 1024;

/// tonic's default (it exports none): an encoded stream's buffer is handed to HTTP/2
/// once it holds this much.
const YIELD_THRESHOLD_BYTES: usize = 32 * 1024;

/// The gRPC codec of every service and client here (`build.rs` names it): prost's,
/// with [`CALL_BUFFER_BYTES`] as the first reservation.
#[derive(Debug, Clone, Copy)]
pub struct GrpcCodec<T, U>(std::marker::PhantomData<(T, U)>);

impl<T, U> Default for GrpcCodec<T, U> {
    fn default() -> Self {
        GrpcCodec(std::marker::PhantomData)
    }
}

fn buffer_settings() -> tonic::codec::BufferSettings {
    tonic::codec::BufferSettings::new(CALL_BUFFER_BYTES, YIELD_THRESHOLD_BYTES)
}

impl<T, U> tonic::codec::Codec for GrpcCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = tonic_prost::ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(buffer_settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::new(buffer_settings())
    }
}
