//! Any bytes replayed as a WAL segment (`oxetcd_wal::replay_segment`, what `Wal::open`
//! does with each segment file): frames, the CRC chain, torn and corrupt tails, and the
//! records' contents (entries, hard states, snapshot markers), then each entry's payload
//! decoded as the apply thread decodes it. The first byte sets how much is read at a time,
//! so frames are also split across reads. Seeded with segments etcd 3.4.23 wrote.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxetcd_fuzz::decode_entry_payload;
use oxetcd_wal::{REPLAY_CHUNK_BYTES, WalSnapshot, replay_segment};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, segment)) = data.split_first() else { return };
    // 8 to 2040 bytes at a time; 255 stands for what `Wal::open` reads.
    let read_chunk_bytes =
        if chunk == u8::MAX { REPLAY_CHUNK_BYTES } else { (u64::from(chunk) + 1) * 8 };
    let Ok(recovered) = replay_segment(segment, &WalSnapshot::origin(), read_chunk_bytes) else {
        return;
    };
    for entry in recovered.entries {
        decode_entry_payload(entry.entry_type, entry.data);
    }
});
