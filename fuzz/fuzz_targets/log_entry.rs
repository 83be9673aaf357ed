//! Any bytes as the payload of a raft log entry, through each decoder the server has for
//! one: a normal entry's request (`InternalRaftRequest`, or etcd 3.4's v2 requests and
//! their JSON), a conf change (its member context in protobuf or etcd's JSON), and a
//! snapshot's membership. Seeded with entries etcd 3.4.23 and oxetcd write.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use oxetcd_etcdserver::etcd_encoding::decode_snapshot_state;
use oxetcd_fuzz::decode_entry_payload;

fuzz_target!(|data: &[u8]| {
    let data = Bytes::copy_from_slice(data);
    decode_entry_payload(0, data.clone());
    decode_entry_payload(1, data.clone());
    let _ = decode_snapshot_state(data);
});
