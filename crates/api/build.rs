//! Generates the wire types and gRPC stubs from `proto/` with protox (a pure-Rust
//! protobuf compiler), so no system `protoc` is needed.

use std::path::Path;

use prost::Message;

const PROTO_ROOT: &str = "proto";
const PROTOS: &[&str] = &[
    "mvccpb/kv.proto",
    "authpb/auth.proto",
    "etcdserverpb/rpc.proto",
    "v3lockpb/v3lock.proto",
    "v3electionpb/v3election.proto",
    "oxetcdpb/internal.proto",
    "oxetcdpb/peer.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files: Vec<_> = PROTOS.iter().map(|p| Path::new(PROTO_ROOT).join(p)).collect();
    let descriptors = protox::compile(&files, [PROTO_ROOT])?;
    // The descriptors themselves, for the JSON gateway's mapping (prost-reflect reads
    // them at run time: names, numbers and types come from the same `.proto` files).
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("file_descriptor_set.bin"), descriptors.encode_to_vec())?;
    // The services' methods as a table, for what needs only their names and shapes (the
    // metrics' counters, built at every start) without decoding the descriptors at run
    // time: that decode touched 1.2 MB of a member's heap.
    let mut methods = String::from("&[\n");
    for file in &descriptors.file {
        for service in &file.service {
            let service_name = format!("{}.{}", file.package(), service.name());
            for method in &service.method {
                methods.push_str(&format!(
                    "    GrpcMethod {{ service: {service_name:?}, method: {:?}, client_streaming: {}, server_streaming: {} }},\n",
                    method.name(),
                    method.client_streaming(),
                    method.server_streaming(),
                ));
            }
        }
    }
    methods.push(']');
    std::fs::write(out_dir.join("grpc_methods.rs"), methods)?;
    tonic_prost_build::configure()
        // Keys and values are shared between the store, watchers and responses
        // without copying.
        .bytes(".")
        // Smaller first buffers than tonic's (lib.rs, `GrpcCodec`).
        .codec_path("crate::GrpcCodec")
        .compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    Ok(())
}
