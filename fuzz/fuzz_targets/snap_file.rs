//! Any bytes read as a raft snapshot file (`*.snap`: the checksummed wrapper, the raft
//! snapshot), then its data as the membership it carries (oxetcd's `ClusterState`, or
//! etcd's v2 store as JSON). Seeded with snap files etcd 3.4.23 wrote.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxetcd_etcdserver::etcd_encoding::decode_snapshot_state;
use oxetcd_wal::decode_snap_file;

fuzz_target!(|data: &[u8]| {
    if let Some(snapshot) = decode_snap_file(data) {
        let _ = decode_snapshot_state(snapshot.data);
    }
});
