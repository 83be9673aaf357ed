//! A range answered as a stream of chunks (etcd 3.7's `RangeStream`, KEP-5966).
//!
//! The contract is etcd's: merging the stream's messages in order (protobuf merge:
//! repeated fields append, set scalars overwrite) gives exactly the unary `Range` answer
//! at the same revision. The first message carries the header, the last one `count` and
//! `more`; every message in between only key-values. Each chunk is read on its own at the
//! revision the first one pinned, so no read view is held between chunks; if a compaction
//! passes the pinned revision meanwhile, the stream ends with `ErrCompacted` and the
//! client retries, as with etcd. The count is the sum of the keys each chunk walked past:
//! the index is walked once in all, where paging with `limit` walks the rest of the range
//! on every page to count it.
//!
//! A range whose answer is not in key order (a sort other than by key ascending) is
//! answered in one message, as the unary `Range` builds it: sorting needs every key
//! first. etcd refuses those with `InvalidArgument`; one message is kinder and merges to
//! the same answer. So are `count_only` ranges and single keys, which have no chunks to
//! split.

use oxetcd_api::etcdserverpb::{RangeRequest, RangeResponse};

use crate::backend::Backend;
use crate::error::Result;
use crate::read::{self, header};
use crate::store::Store;

/// Bytes of key-values a chunk aims at: etcd's default request size limit
/// (`--max-request-bytes`, 1.5 MiB), the size etcd derives its chunks from. A chunk holds
/// at least one key-value, so one can reach the largest value a put accepts.
pub const CHUNK_BYTES: usize = 1536 * 1024;

/// Most keys a chunk walks to, whatever their size: bounds the time the index's read lock
/// is held for one chunk (writers wait on it).
pub const CHUNK_MAX_KEYS: usize = 1000;

/// A streamed range in progress: each [`StreamedRange::next_message`] reads one chunk.
#[derive(Debug)]
pub struct StreamedRange {
    req: RangeRequest,
    state: Progress,
}

#[derive(Debug)]
enum Progress {
    /// Answered in one message, as the unary `Range`.
    Whole,
    Chunks(Chunks),
    Done,
}

#[derive(Debug)]
struct Chunks {
    /// The revision every chunk reads: the request's, until the first chunk pins the
    /// current one.
    at: i64,
    first: bool,
    resume_at: Vec<u8>,
    /// Key-values the request's `limit` still allows (`usize::MAX`: no limit).
    allowed: usize,
    /// Keys counted so far.
    count: i64,
}

impl StreamedRange {
    /// Streams `req`, which the caller validated and authorized.
    pub fn new(req: RangeRequest) -> StreamedRange {
        let state = if Self::is_chunked(&req) {
            Progress::Chunks(Chunks {
                at: req.revision,
                first: true,
                resume_at: req.key.to_vec(),
                allowed: usize::try_from(req.limit).ok().filter(|&l| l > 0).unwrap_or(usize::MAX),
                count: 0,
            })
        } else {
            Progress::Whole
        };
        StreamedRange { req, state }
    }

    /// Whether the answer comes in key order, in more than one piece.
    fn is_chunked(req: &RangeRequest) -> bool {
        read::in_key_order(req) && !req.count_only && !req.range_end.is_empty()
    }

    /// The stream's next message, or `None` after the last one.
    pub fn next_message<B: Backend>(&mut self, store: &Store<B>) -> Result<Option<RangeResponse>> {
        match std::mem::replace(&mut self.state, Progress::Done) {
            Progress::Done => Ok(None),
            Progress::Whole => store.range(&self.req).map(Some),
            Progress::Chunks(chunks) => self.next_chunk(store, chunks).map(Some),
        }
    }

    fn next_chunk<B: Backend>(
        &mut self,
        store: &Store<B>,
        mut chunks: Chunks,
    ) -> Result<RangeResponse> {
        let mut resp = RangeResponse::default();
        if chunks.allowed == 0 {
            // The limit is reached: the rest of the range is only counted, and probed for
            // one more key-value that passes the filters (`more`, as the unary answer).
            let rest = &chunks.resume_at;
            let probe = store.range_chunk(&self.req, chunks.at, rest, 1, 0)?;
            resp.more = !probe.kvs.is_empty();
            let count = RangeRequest {
                key: rest.clone().into(),
                range_end: self.req.range_end.clone(),
                revision: chunks.at,
                count_only: true,
                ..Default::default()
            };
            resp.count = chunks.count + store.range(&count)?.count;
            return Ok(resp);
        }
        let max_kvs = chunks.allowed.min(CHUNK_MAX_KEYS);
        let chunk =
            store.range_chunk(&self.req, chunks.at, &chunks.resume_at, max_kvs, CHUNK_BYTES)?;
        debug_assert!(chunk.kvs.len() <= chunks.allowed);
        if chunks.first {
            chunks.first = false;
            chunks.at = chunk.read_revision;
            resp.header = header(chunk.header_revision);
        }
        chunks.count += chunk.keys_visited;
        chunks.allowed -= chunk.kvs.len();
        resp.kvs = chunk.kvs;
        match chunk.resume_at {
            None => resp.count = chunks.count,
            Some(resume_at) => {
                chunks.resume_at = resume_at;
                self.state = Progress::Chunks(chunks);
            }
        }
        Ok(resp)
    }
}
