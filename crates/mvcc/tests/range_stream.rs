//! A streamed range (etcd 3.7's RangeStream) merges, message by message, into exactly
//! the unary Range answer: checked for generated requests over a store with history,
//! deletes and more keys than one chunk walks, and for values bigger than a chunk's bytes.

mod common;

use bytes::Bytes;
use common::*;
use oxetcd_api::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse};
use oxetcd_mvcc::range_stream::{CHUNK_BYTES, CHUNK_MAX_KEYS, StreamedRange};
use oxetcd_mvcc::{ApplyIndex, Error, Store};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use prost::Message;

/// Every message of the stream of `req`, read to its end.
fn stream(store: &Store, req: &RangeRequest) -> Result<Vec<RangeResponse>, Error> {
    let mut streamed = StreamedRange::new(req.clone());
    let mut messages = Vec::new();
    while let Some(message) = streamed.next_message(store)? {
        assert!(messages.len() < 100_000, "the stream ends");
        messages.push(message);
    }
    Ok(messages)
}

/// The messages merged as a protobuf client merges them.
fn merged(messages: &[RangeResponse]) -> RangeResponse {
    let mut whole = RangeResponse::default();
    for message in messages {
        whole.merge(message.encode_to_vec().as_slice()).expect("merges");
    }
    whole
}

fn key(i: usize) -> String {
    format!("k{i:05}")
}

/// A store with history: 2,500 keys (more than two chunks walk), overwritten, some
/// deleted, one compaction. Returns the revision after the first pass of puts.
fn store_with_history(t: &TempStore) -> i64 {
    let s = t.store();
    for i in 0..2500 {
        s.put(&put(&key(i), &format!("v{i}")), ApplyIndex::ZERO).unwrap();
    }
    let first_pass = s.current_revision();
    for i in (0..2500).step_by(3) {
        s.put(&put(&key(i), &format!("w{i}")), ApplyIndex::ZERO).unwrap();
    }
    for i in (0..2500).step_by(7) {
        let req = DeleteRangeRequest { key: b(&key(i)), ..Default::default() };
        s.delete_range(&req, ApplyIndex::ZERO).unwrap();
    }
    s.compact(100, ApplyIndex::ZERO).unwrap();
    first_pass
}

fn request(first_pass: i64) -> impl Strategy<Value = RangeRequest> {
    let bound = prop_oneof![
        (0usize..2600).prop_map(|i| key(i).into_bytes()),
        Just(b"\0".to_vec()),
        Just(b"k".to_vec()),
        Just(b"l".to_vec()),
    ];
    let limit = prop_oneof![Just(0i64), 1i64..5, 995i64..1005, 1500i64..3000];
    let revision = prop_oneof![Just(0i64), 100i64..=first_pass, Just(first_pass + 1200)];
    let filter = prop_oneof![Just(0i64), 1i64..4000];
    (bound.clone(), bound, limit, revision, (0i32..3, 0i32..5), any::<(bool, bool)>())
        .prop_flat_map(move |(key, end, limit, revision, sort, only)| {
            (filter.clone(), filter.clone(), filter.clone(), filter.clone()).prop_map(
                move |(min_mod, max_mod, min_create, max_create)| RangeRequest {
                    key: Bytes::from(key.clone()),
                    range_end: Bytes::from(end.clone()),
                    limit,
                    revision,
                    sort_order: sort.0,
                    sort_target: sort.1,
                    keys_only: only.0,
                    count_only: only.1,
                    min_mod_revision: min_mod,
                    max_mod_revision: max_mod,
                    min_create_revision: min_create,
                    max_create_revision: max_create,
                    ..Default::default()
                },
            )
        })
}

#[test]
fn a_streamed_range_merges_into_the_unary_answer() {
    let t = TempStore::new();
    let first_pass = store_with_history(&t);
    let s = t.store();
    let mut runner = TestRunner::new(Config { cases: 400, ..Config::default() });
    runner
        .run(&request(first_pass), |req| {
            let unary = s.range(&req);
            let streamed = stream(s, &req);
            match (unary, streamed) {
                (Ok(unary), Ok(messages)) => {
                    prop_assert!(!messages.is_empty());
                    prop_assert_eq!(merged(&messages), unary);
                    // Only the first message carries the header, only the last the count.
                    prop_assert!(messages[1..].iter().all(|m| m.header.is_none()));
                    let before_last = &messages[..messages.len() - 1];
                    prop_assert!(before_last.iter().all(|m| m.count == 0 && !m.more));
                }
                (Err(unary), Err(streamed)) => prop_assert_eq!(unary, streamed),
                (unary, streamed) => {
                    prop_assert!(false, "unary {:?}, streamed {:?}", unary.map(|_| ()), streamed)
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_large_range_comes_in_chunks_of_bounded_size() {
    let t = TempStore::new();
    let s = t.store();
    let value = "x".repeat(100 * 1024);
    for i in 0..40 {
        s.put(&put(&key(i), &value), ApplyIndex::ZERO).unwrap();
    }
    for i in 40..40 + 2 * CHUNK_MAX_KEYS {
        s.put(&put(&key(i), "small"), ApplyIndex::ZERO).unwrap();
    }
    let req = range("k", "l");
    let messages = stream(s, &req).unwrap();
    // 4 MiB of large values, then 2,000 small keys: at least 3 + 2 chunks.
    assert!(messages.len() >= 5, "{} messages", messages.len());
    for m in &messages {
        let bytes: usize = m.kvs.iter().map(Message::encoded_len).sum();
        assert!(bytes < CHUNK_BYTES + 110 * 1024, "a chunk of {bytes} bytes");
        assert!(m.kvs.len() <= CHUNK_MAX_KEYS);
    }
    assert_eq!(merged(&messages), s.range(&req).unwrap());
    assert_eq!(messages.last().unwrap().count, 40 + 2 * CHUNK_MAX_KEYS as i64);
}

#[test]
fn values_near_the_request_limit_stream_whole() {
    let t = TempStore::new();
    let s = t.store();
    // The largest values a put accepts: a chunk stops after the value that reaches its
    // byte budget, so it holds one or two of them, never a part of one.
    let value = vec![7u8; 1400 * 1024];
    for k in ["a", "b", "c"] {
        let req = PutRequest { key: b(k), value: value.clone().into(), ..Default::default() };
        s.put(&req, ApplyIndex::ZERO).unwrap();
    }
    let req = range("a", "d");
    let messages = stream(s, &req).unwrap();
    assert_eq!(messages.iter().map(|m| m.kvs.len()).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(merged(&messages), s.range(&req).unwrap());
}

#[test]
fn a_compaction_past_the_pinned_revision_ends_the_stream_with_compacted() {
    let t = TempStore::new();
    let s = t.store();
    for i in 0..3 * CHUNK_MAX_KEYS {
        s.put(&put(&key(i), "v"), ApplyIndex::ZERO).unwrap();
    }
    let mut streamed = StreamedRange::new(range("k", "l"));
    let first = streamed.next_message(s).unwrap().expect("a first chunk");
    let pinned = first.header.unwrap().revision;
    assert_eq!(first.kvs.len(), CHUNK_MAX_KEYS);
    // Writes after the pin are not seen...
    s.put(&put(&key(0), "changed"), ApplyIndex::ZERO).unwrap();
    s.put(&put(&key(CHUNK_MAX_KEYS + 1), "changed"), ApplyIndex::ZERO).unwrap();
    let second = streamed.next_message(s).unwrap().expect("a second chunk");
    assert!(second.kvs.iter().all(|kv| kv.value == "v" && kv.mod_revision <= pinned));
    // ...and history the stream still needs cannot be compacted away under it.
    s.compact(pinned + 1, ApplyIndex::ZERO).unwrap();
    assert_eq!(streamed.next_message(s), Err(Error::Compacted));
}
