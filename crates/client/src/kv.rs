//! Key-value calls (Range, Put, DeleteRange, Txn, Compact) and their option builders.

use bytes::Bytes;
use oxetcd_api::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use oxetcd_api::etcdserverpb::range_request::{
    SortOrder as PbSortOrder, SortTarget as PbSortTarget,
};
use oxetcd_api::etcdserverpb::{
    CompactionRequest, CompactionResponse, Compare as PbCompare, DeleteRangeRequest,
    DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, RangeStreamResponse,
    RequestOp, TxnRequest, TxnResponse, request_op,
};

use crate::IntoBytes;
use crate::client::{Client, Retry};
use crate::error::Result;

/// The end of the range of all keys that start with `prefix` (etcd's `GetPrefixRangeEnd`):
/// the prefix with its last byte below 0xff incremented and the rest dropped; `"\0"`
/// (every key) when there is no such byte.
///
/// ```
/// assert_eq!(oxetcd_client::prefix_range_end(b"a/"), b"a0".as_slice());
/// assert_eq!(oxetcd_client::prefix_range_end(b"a\xff"), b"b".as_slice());
/// assert_eq!(oxetcd_client::prefix_range_end(b""), b"\0".as_slice());
/// ```
pub fn prefix_range_end(prefix: &[u8]) -> Bytes {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Bytes::from(end);
        }
    }
    Bytes::from_static(b"\0")
}

/// The builder methods that choose which keys an option set covers, shared by
/// [`GetOptions`], [`DeleteOptions`] and [`crate::WatchOptions`] (each has a `range` field).
macro_rules! key_range_options {
    () => {
        /// Every key that starts with the key.
        pub fn with_prefix(mut self) -> Self {
            self.range = KeyRange::Prefix;
            self
        }

        /// Every key in `[key, end)`.
        pub fn with_range(mut self, end: impl IntoBytes) -> Self {
            self.range = KeyRange::End(end.into_bytes());
            self
        }

        /// Every key greater than or equal to the key.
        pub fn with_from_key(mut self) -> Self {
            self.range = KeyRange::FromKey;
            self
        }
    };
}
pub(crate) use key_range_options;

/// Which keys a request covers, relative to its key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum KeyRange {
    /// Only the key itself.
    #[default]
    Single,
    /// `[key, end)`.
    End(Bytes),
    /// Every key starting with the key.
    Prefix,
    /// Every key ≥ the key.
    FromKey,
}

impl KeyRange {
    /// The key and range end to send: an empty key with a prefix or "from key" range
    /// means every key (`"\0"` to `"\0"`), as etcd's clients send it.
    pub(crate) fn resolve(&self, key: Bytes) -> (Bytes, Bytes) {
        if key.is_empty() && matches!(self, KeyRange::Prefix | KeyRange::FromKey) {
            return (Bytes::from_static(b"\0"), Bytes::from_static(b"\0"));
        }
        let end = self.range_end(&key);
        (key, end)
    }

    pub(crate) fn range_end(&self, key: &[u8]) -> Bytes {
        match self {
            KeyRange::Single => Bytes::new(),
            KeyRange::End(end) => end.clone(),
            KeyRange::Prefix => prefix_range_end(key),
            KeyRange::FromKey => Bytes::from_static(b"\0"),
        }
    }
}

/// The order of a range's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    /// The server's order (by key).
    #[default]
    None,
    /// Ascending.
    Ascend,
    /// Descending.
    Descend,
}

/// What a range's results are sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortTarget {
    /// The key.
    #[default]
    Key,
    /// The key's version.
    Version,
    /// The revision that created the key.
    Create,
    /// The revision that last modified the key.
    Mod,
    /// The value.
    Value,
}

/// Options of [`Client::get`] (a Range request).
///
/// ```
/// use oxetcd_client::{GetOptions, SortOrder, SortTarget};
///
/// let options = GetOptions::new()
///     .with_prefix()
///     .with_sort(SortTarget::Create, SortOrder::Descend)
///     .with_limit(10)
///     .with_serializable();
/// let request = options.to_request("jobs/");
/// assert_eq!(request.range_end.as_ref(), b"jobs0");
/// assert!(request.serializable);
/// ```
#[derive(Debug, Clone, Default)]
pub struct GetOptions {
    range: KeyRange,
    revision: i64,
    limit: i64,
    sort: Option<(SortTarget, SortOrder)>,
    serializable: bool,
    keys_only: bool,
    count_only: bool,
    min_mod_revision: i64,
    max_mod_revision: i64,
    min_create_revision: i64,
    max_create_revision: i64,
}

impl GetOptions {
    /// Only the key itself, latest revision, linearizable.
    pub fn new() -> Self {
        Self::default()
    }

    key_range_options!();

    /// Read the store as of `revision` (0: the latest).
    pub fn with_revision(mut self, revision: i64) -> Self {
        self.revision = revision;
        self
    }

    /// At most `limit` keys (0: no limit).
    pub fn with_limit(mut self, limit: i64) -> Self {
        self.limit = limit;
        self
    }

    /// Sort the results.
    pub fn with_sort(mut self, target: SortTarget, order: SortOrder) -> Self {
        self.sort = Some((target, order));
        self
    }

    /// Serve the read from the member's local state, without a round through the
    /// leader (may be stale).
    pub fn with_serializable(mut self) -> Self {
        self.serializable = true;
        self
    }

    /// Keys without values.
    pub fn with_keys_only(mut self) -> Self {
        self.keys_only = true;
        self
    }

    /// Only the number of keys.
    pub fn with_count_only(mut self) -> Self {
        self.count_only = true;
        self
    }

    /// Only keys modified at or after `revision`.
    pub fn with_min_mod_revision(mut self, revision: i64) -> Self {
        self.min_mod_revision = revision;
        self
    }

    /// Only keys modified at or before `revision`.
    pub fn with_max_mod_revision(mut self, revision: i64) -> Self {
        self.max_mod_revision = revision;
        self
    }

    /// Only keys created at or after `revision`.
    pub fn with_min_create_revision(mut self, revision: i64) -> Self {
        self.min_create_revision = revision;
        self
    }

    /// Only keys created at or before `revision`.
    pub fn with_max_create_revision(mut self, revision: i64) -> Self {
        self.max_create_revision = revision;
        self
    }

    /// The oldest key of the range by creation (etcd's `WithFirstCreate`).
    pub fn with_first_create(self) -> Self {
        self.with_sort(SortTarget::Create, SortOrder::Ascend).with_limit(1)
    }

    /// The newest key of the range by creation (etcd's `WithLastCreate`).
    pub fn with_last_create(self) -> Self {
        self.with_sort(SortTarget::Create, SortOrder::Descend).with_limit(1)
    }

    /// The Range request these options make for `key`.
    pub fn to_request(&self, key: impl IntoBytes) -> RangeRequest {
        let key = key.into_bytes();
        let (target, order) = self.sort.unwrap_or_default();
        let mut order = match order {
            SortOrder::None => PbSortOrder::None,
            SortOrder::Ascend => PbSortOrder::Ascend,
            SortOrder::Descend => PbSortOrder::Descend,
        };
        // etcd's client: sorting by key ascending is the server's own order.
        if target == SortTarget::Key && order == PbSortOrder::Ascend {
            order = PbSortOrder::None;
        }
        let target = match target {
            SortTarget::Key => PbSortTarget::Key,
            SortTarget::Version => PbSortTarget::Version,
            SortTarget::Create => PbSortTarget::Create,
            SortTarget::Mod => PbSortTarget::Mod,
            SortTarget::Value => PbSortTarget::Value,
        };
        let (key, range_end) = self.range.resolve(key);
        RangeRequest {
            range_end,
            key,
            limit: self.limit,
            revision: self.revision,
            sort_order: order as i32,
            sort_target: target as i32,
            serializable: self.serializable,
            keys_only: self.keys_only,
            count_only: self.count_only,
            min_mod_revision: self.min_mod_revision,
            max_mod_revision: self.max_mod_revision,
            min_create_revision: self.min_create_revision,
            max_create_revision: self.max_create_revision,
        }
    }
}

/// Options of [`Client::put`].
///
/// ```
/// use oxetcd_client::PutOptions;
///
/// let request = PutOptions::new().with_lease(0x1234).with_prev_kv().to_request("k", "v");
/// assert_eq!(request.lease, 0x1234);
/// assert!(request.prev_kv);
/// ```
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    lease: i64,
    prev_kv: bool,
    ignore_value: bool,
    ignore_lease: bool,
}

impl PutOptions {
    /// No lease, no previous value returned.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attach the key to lease `lease_id` (it is deleted when the lease expires).
    pub fn with_lease(mut self, lease_id: i64) -> Self {
        self.lease = lease_id;
        self
    }

    /// Return the key-value as it was before the put.
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    /// Keep the current value (only the lease changes); the key must exist.
    pub fn with_ignore_value(mut self) -> Self {
        self.ignore_value = true;
        self
    }

    /// Keep the current lease (only the value changes); the key must exist.
    pub fn with_ignore_lease(mut self) -> Self {
        self.ignore_lease = true;
        self
    }

    /// The Put request these options make.
    pub fn to_request(&self, key: impl IntoBytes, value: impl IntoBytes) -> PutRequest {
        PutRequest {
            key: key.into_bytes(),
            value: value.into_bytes(),
            lease: self.lease,
            prev_kv: self.prev_kv,
            ignore_value: self.ignore_value,
            ignore_lease: self.ignore_lease,
        }
    }
}

/// Options of [`Client::delete`].
///
/// ```
/// use oxetcd_client::DeleteOptions;
///
/// let request = DeleteOptions::new().with_prefix().with_prev_kv().to_request("tmp/");
/// assert_eq!(request.range_end.as_ref(), b"tmp0");
/// ```
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    range: KeyRange,
    prev_kv: bool,
}

impl DeleteOptions {
    /// Only the key itself.
    pub fn new() -> Self {
        Self::default()
    }

    key_range_options!();

    /// Return the deleted key-values.
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    /// The DeleteRange request these options make for `key`.
    pub fn to_request(&self, key: impl IntoBytes) -> DeleteRangeRequest {
        let (key, range_end) = self.range.resolve(key.into_bytes());
        DeleteRangeRequest { range_end, key, prev_kv: self.prev_kv }
    }
}

/// How a [`Compare`] relates the key's field to the given value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `>`
    Greater,
    /// `<`
    Less,
}

/// A condition of a transaction on one key (or a range of keys).
///
/// ```
/// use oxetcd_client::{Compare, CompareOp};
///
/// // "the key does not exist"
/// let absent = Compare::create_revision("lock", CompareOp::Equal, 0);
/// // "every key under jobs/ has a value other than 'done'"
/// let pending = Compare::value("jobs/", CompareOp::NotEqual, "done").with_prefix();
/// # let _ = (absent, pending);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Compare(PbCompare);

impl Compare {
    fn new(
        key: impl IntoBytes,
        op: CompareOp,
        target: CompareTarget,
        value: TargetUnion,
    ) -> Compare {
        let result = match op {
            CompareOp::Equal => CompareResult::Equal,
            CompareOp::NotEqual => CompareResult::NotEqual,
            CompareOp::Greater => CompareResult::Greater,
            CompareOp::Less => CompareResult::Less,
        };
        Compare(PbCompare {
            result: result as i32,
            target: target as i32,
            key: key.into_bytes(),
            range_end: Bytes::new(),
            target_union: Some(value),
        })
    }

    /// Compares the key's value.
    pub fn value(key: impl IntoBytes, op: CompareOp, value: impl IntoBytes) -> Compare {
        Compare::new(key, op, CompareTarget::Value, TargetUnion::Value(value.into_bytes()))
    }

    /// Compares the key's version (0 when the key does not exist).
    pub fn version(key: impl IntoBytes, op: CompareOp, version: i64) -> Compare {
        Compare::new(key, op, CompareTarget::Version, TargetUnion::Version(version))
    }

    /// Compares the revision that created the key (0 when the key does not exist).
    pub fn create_revision(key: impl IntoBytes, op: CompareOp, revision: i64) -> Compare {
        Compare::new(key, op, CompareTarget::Create, TargetUnion::CreateRevision(revision))
    }

    /// Compares the revision that last modified the key (0 when the key does not exist).
    pub fn mod_revision(key: impl IntoBytes, op: CompareOp, revision: i64) -> Compare {
        Compare::new(key, op, CompareTarget::Mod, TargetUnion::ModRevision(revision))
    }

    /// Compares the key's lease id (0 for none).
    pub fn lease(key: impl IntoBytes, op: CompareOp, lease_id: i64) -> Compare {
        Compare::new(key, op, CompareTarget::Lease, TargetUnion::Lease(lease_id))
    }

    /// Applies the comparison to every key in `[key, end)`.
    pub fn with_range(mut self, end: impl IntoBytes) -> Compare {
        self.0.range_end = end.into_bytes();
        self
    }

    /// Applies the comparison to every key starting with the key.
    pub fn with_prefix(mut self) -> Compare {
        self.0.range_end = prefix_range_end(&self.0.key);
        self
    }

    /// The wire form.
    pub fn into_inner(self) -> PbCompare {
        self.0
    }
}

/// One operation of a transaction branch.
///
/// ```
/// use oxetcd_client::{GetOptions, PutOptions, TxnOp};
///
/// let ops = [
///     TxnOp::put("a", "1", None),
///     TxnOp::get("b", Some(GetOptions::new().with_prefix())),
///     TxnOp::delete("c", None),
/// ];
/// # let _ = ops;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TxnOp(RequestOp);

impl TxnOp {
    /// A range read.
    pub fn get(key: impl IntoBytes, options: Option<GetOptions>) -> TxnOp {
        let request = options.unwrap_or_default().to_request(key);
        TxnOp(RequestOp { request: Some(request_op::Request::RequestRange(request)) })
    }

    /// A put.
    pub fn put(key: impl IntoBytes, value: impl IntoBytes, options: Option<PutOptions>) -> TxnOp {
        let request = options.unwrap_or_default().to_request(key, value);
        TxnOp(RequestOp { request: Some(request_op::Request::RequestPut(request)) })
    }

    /// A delete.
    pub fn delete(key: impl IntoBytes, options: Option<DeleteOptions>) -> TxnOp {
        let request = options.unwrap_or_default().to_request(key);
        TxnOp(RequestOp { request: Some(request_op::Request::RequestDeleteRange(request)) })
    }

    /// A nested transaction.
    pub fn txn(txn: Txn) -> TxnOp {
        TxnOp(RequestOp { request: Some(request_op::Request::RequestTxn(txn.into_request())) })
    }

    /// The wire form.
    pub fn into_inner(self) -> RequestOp {
        self.0
    }
}

/// A transaction: if every comparison holds, the `and_then` operations run, otherwise
/// the `or_else` ones; atomically, at one revision.
///
/// ```no_run
/// use oxetcd_client::{Compare, CompareOp, Txn, TxnOp};
///
/// # async fn example(client: oxetcd_client::Client) -> oxetcd_client::Result<()> {
/// // Create "config" only if it does not exist yet; read it either way.
/// let txn = Txn::new()
///     .when([Compare::create_revision("config", CompareOp::Equal, 0)])
///     .and_then([TxnOp::put("config", "v1", None), TxnOp::get("config", None)])
///     .or_else([TxnOp::get("config", None)]);
/// let resp = client.txn(txn).await?;
/// println!("created: {}", resp.succeeded);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Txn {
    compare: Vec<PbCompare>,
    success: Vec<RequestOp>,
    failure: Vec<RequestOp>,
}

impl Txn {
    /// An empty transaction (no conditions: the `and_then` branch runs).
    pub fn new() -> Txn {
        Txn::default()
    }

    /// Adds conditions (all must hold).
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Txn {
        self.compare.extend(compares.into_iter().map(Compare::into_inner));
        self
    }

    /// Adds operations run when the conditions hold.
    pub fn and_then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Txn {
        self.success.extend(ops.into_iter().map(TxnOp::into_inner));
        self
    }

    /// Adds operations run when a condition fails.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Txn {
        self.failure.extend(ops.into_iter().map(TxnOp::into_inner));
        self
    }

    /// The wire form.
    pub fn into_request(self) -> TxnRequest {
        TxnRequest { compare: self.compare, success: self.success, failure: self.failure }
    }
}

impl Client {
    /// Reads a key, or a range of keys with [`GetOptions`]. Retried on `Unavailable`.
    ///
    /// ```no_run
    /// # async fn example(client: oxetcd_client::Client) -> oxetcd_client::Result<()> {
    /// use oxetcd_client::GetOptions;
    ///
    /// let resp = client.get("services/", Some(GetOptions::new().with_prefix().with_keys_only())).await?;
    /// for kv in &resp.kvs {
    ///     println!("{}", String::from_utf8_lossy(&kv.key));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get(
        &self,
        key: impl IntoBytes,
        options: Option<GetOptions>,
    ) -> Result<RangeResponse> {
        let request = options.unwrap_or_default().to_request(key);
        self.range(request).await
    }

    /// Sends a Range request as it is. Retried on `Unavailable`.
    pub async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        self.unary(
            Retry::Repeatable,
            request,
            |conn, req| async move { conn.kv().range(req).await },
        )
        .await
    }

    /// Reads a range as a stream of chunks (RangeStream: etcd 3.7, KEP-5966), all at one
    /// revision: the server never holds the whole answer, and neither need the caller.
    /// Opening the stream is retried on `Unavailable`; a chunk's error ends it.
    ///
    /// ```no_run
    /// # async fn example(client: oxetcd_client::Client) -> oxetcd_client::Result<()> {
    /// use oxetcd_client::GetOptions;
    ///
    /// let mut stream = client.get_stream("", Some(GetOptions::new().with_prefix())).await?;
    /// while let Some(chunk) = stream.message().await? {
    ///     println!("{} keys at revision {}", chunk.kvs.len(), chunk.header.unwrap().revision);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_stream(
        &self,
        key: impl IntoBytes,
        options: Option<GetOptions>,
    ) -> Result<RangeStream> {
        let request = options.unwrap_or_default().to_request(key);
        let inner = self
            .unary(Retry::Repeatable, request, |conn, req| async move {
                conn.kv().range_stream(req).await
            })
            .await?;
        Ok(RangeStream { inner })
    }

    /// Writes a key. Sent again only if it never reached a server.
    ///
    /// ```no_run
    /// # async fn example(client: oxetcd_client::Client) -> oxetcd_client::Result<()> {
    /// use oxetcd_client::PutOptions;
    ///
    /// let resp = client.put("k", "v2", Some(PutOptions::new().with_prev_kv())).await?;
    /// if let Some(prev) = resp.prev_kv {
    ///     println!("was {}", String::from_utf8_lossy(&prev.value));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn put(
        &self,
        key: impl IntoBytes,
        value: impl IntoBytes,
        options: Option<PutOptions>,
    ) -> Result<PutResponse> {
        let request = options.unwrap_or_default().to_request(key, value);
        self.put_request(request).await
    }

    /// Sends a Put request as it is. Sent again only if it never reached a server.
    pub async fn put_request(&self, request: PutRequest) -> Result<PutResponse> {
        self.unary(
            Retry::NonRepeatable,
            request,
            |conn, req| async move { conn.kv().put(req).await },
        )
        .await
    }

    /// Deletes a key, or a range of keys with [`DeleteOptions`]. Sent again only if it
    /// never reached a server.
    pub async fn delete(
        &self,
        key: impl IntoBytes,
        options: Option<DeleteOptions>,
    ) -> Result<DeleteRangeResponse> {
        let request = options.unwrap_or_default().to_request(key);
        self.delete_range(request).await
    }

    /// Sends a DeleteRange request as it is.
    pub async fn delete_range(&self, request: DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        self.unary(Retry::NonRepeatable, request, |conn, req| async move {
            conn.kv().delete_range(req).await
        })
        .await
    }

    /// Runs a transaction. Sent again only if it never reached a server.
    pub async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.txn_request(txn.into_request()).await
    }

    /// Sends a Txn request as it is.
    pub async fn txn_request(&self, request: TxnRequest) -> Result<TxnResponse> {
        self.unary(
            Retry::NonRepeatable,
            request,
            |conn, req| async move { conn.kv().txn(req).await },
        )
        .await
    }

    /// Compacts the key-value history up to `revision`; with `physical`, answers only
    /// once the compaction is done on the backend.
    pub async fn compact(&self, revision: i64, physical: bool) -> Result<CompactionResponse> {
        let request = CompactionRequest { revision, physical };
        self.unary(Retry::NonRepeatable, request, |conn, req| async move {
            conn.kv().compact(req).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_options_build_range_requests() {
        let r = GetOptions::new().to_request("k");
        assert_eq!((r.key.as_ref(), r.range_end.as_ref()), (b"k".as_ref(), b"".as_ref()));
        let r = GetOptions::new().with_from_key().to_request("k");
        assert_eq!(r.range_end.as_ref(), b"\0");
        let r = GetOptions::new().with_prefix().to_request("");
        assert_eq!((r.key.as_ref(), r.range_end.as_ref()), (b"\0".as_ref(), b"\0".as_ref()));
        let r =
            GetOptions::new().with_range("z").with_revision(7).with_count_only().to_request("a");
        assert_eq!((r.range_end.as_ref(), r.revision, r.count_only), (b"z".as_ref(), 7, true));
        let r = GetOptions::new()
            .with_prefix()
            .with_last_create()
            .with_max_create_revision(9)
            .to_request("p/");
        assert_eq!(r.sort_target, PbSortTarget::Create as i32);
        assert_eq!(r.sort_order, PbSortOrder::Descend as i32);
        assert_eq!((r.limit, r.max_create_revision), (1, 9));
        let r = GetOptions::new().with_sort(SortTarget::Key, SortOrder::Ascend).to_request("a");
        assert_eq!(r.sort_order, PbSortOrder::None as i32);
    }

    #[test]
    fn txn_builder_keeps_branches_apart() {
        let txn = Txn::new()
            .when([Compare::version("a", CompareOp::Greater, 1).with_prefix()])
            .and_then([TxnOp::put("a", "1", Some(PutOptions::new().with_lease(5)))])
            .or_else([
                TxnOp::delete("a", Some(DeleteOptions::new().with_prefix())),
                TxnOp::txn(Txn::new()),
            ])
            .into_request();
        assert_eq!(txn.compare.len(), 1);
        assert_eq!(txn.compare[0].range_end.as_ref(), b"b");
        assert_eq!(txn.compare[0].result, CompareResult::Greater as i32);
        assert_eq!(txn.success.len(), 1);
        assert_eq!(txn.failure.len(), 2);
        let Some(request_op::Request::RequestPut(put)) = &txn.success[0].request else { panic!() };
        assert_eq!(put.lease, 5);
    }
}

/// A range, chunk by chunk (see [`Client::get_stream`]).
#[derive(Debug)]
pub struct RangeStream {
    inner: tonic::Streaming<RangeStreamResponse>,
}

impl RangeStream {
    /// The next chunk, or `None` at the end. Each carries the header (the same revision
    /// throughout) and its share of the key-values; the count and `more` come whole.
    pub async fn message(&mut self) -> Result<Option<RangeResponse>> {
        let next = self.inner.message().await?;
        Ok(next.map(|m| m.range_response.unwrap_or_default()))
    }

    /// Every chunk merged into one answer, as the unary Range gives it (protobuf's merge:
    /// key-values appended, the other fields from the last chunk that sets them).
    pub async fn collect(mut self) -> Result<RangeResponse> {
        let mut whole = RangeResponse::default();
        while let Some(chunk) = self.message().await? {
            whole.header = chunk.header.or(whole.header);
            whole.kvs.extend(chunk.kvs);
            whole.more |= chunk.more;
            if chunk.count != 0 {
                whole.count = chunk.count;
            }
        }
        Ok(whole)
    }
}
