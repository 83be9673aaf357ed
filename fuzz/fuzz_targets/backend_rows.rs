//! Any rows in the backend's tables, as a damaged or foreign database file would hold
//! them, read back as a member reads them at start, and as it reads the backend a
//! leader's snapshot brought before it swaps it in (the same reads, in the same order:
//! `install_snapshot` in `etcdserver/src/apply.rs`): the store opens on them (revision
//! keys, `KeyValue` values, the `meta` table's consistent index, term and compaction
//! revisions; an interrupted compaction resumes), then reads every key, the history and
//! the hashes; the lease table is decoded and its leases recovered by a lessor that then
//! leads; the auth tables are recovered; the alarm table is recovered. (The snapshot's
//! membership is the `members` target's.) Each piece of the input is a row
//! (`oxetcd_fuzz::tagged_pieces`): the tag picks the table, the piece is a key length
//! byte, the key, then the value.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use oxetcd_api::etcdserverpb::AlarmType;
use oxetcd_api::etcdserverpb::RangeRequest;
use oxetcd_auth::{AUTH_ROLES_TABLE, AUTH_TABLE, AUTH_USERS_TABLE, AuthRows, AuthStore};
use oxetcd_etcdserver::alarm::{ALARM_TABLE, Alarms};
use oxetcd_fuzz::tagged_pieces;
use oxetcd_lease::{LEASE_TABLE, Lessor, StoredLease, SystemClock};
use oxetcd_mvcc::backend::memory::MemoryBackend;
use oxetcd_mvcc::backend::{KEY_TABLE, META_TABLE};
use oxetcd_mvcc::{Store, StoreConfig};
use prost::Message;

/// Tag `t` writes to `TABLES[t % 7]` (new tables go last, so the seeds keep their rows).
const TABLES: [&str; 7] = [
    KEY_TABLE,
    META_TABLE,
    LEASE_TABLE,
    AUTH_TABLE,
    AUTH_USERS_TABLE,
    AUTH_ROLES_TABLE,
    ALARM_TABLE,
];

fuzz_target!(|data: &[u8]| {
    let rows = tagged_pieces(data).filter_map(|(tag, piece)| {
        let (&key_len, rest) = piece.split_first()?;
        let (key, value) = rest.split_at(usize::from(key_len).min(rest.len()));
        let table = TABLES[usize::from(tag) % TABLES.len()].to_owned();
        Some((table, Bytes::copy_from_slice(key), Bytes::copy_from_slice(value)))
    });
    let lessor = Arc::new(Lessor::new(1, Arc::new(SystemClock)));
    let backend = MemoryBackend::with_rows(rows);
    let Ok(store) = Store::open(backend, StoreConfig::default(), lessor.clone()) else { return };

    let every_key =
        RangeRequest { key: vec![0].into(), range_end: vec![0].into(), ..Default::default() };
    let _ = store.range(&every_key);
    let _ = store.events(store.compact_revision() + 1, store.current_revision());
    let _ = store.hash();
    let _ = store.hash_kv(0);

    if let Ok(rows) = store.aux_scan(LEASE_TABLE) {
        let leases = rows.into_iter().filter_map(|(_, value)| StoredLease::decode(value).ok());
        lessor.recover(leases);
        lessor.promote(Duration::from_secs(1));
        for id in lessor.leases() {
            let _ = lessor.status(id);
            let _ = lessor.renew(id);
        }
        let _ = lessor.expired(usize::MAX);
    }

    let scan = |table| store.aux_scan(table).unwrap_or_default();
    let auth = AuthRows {
        auth: scan(AUTH_TABLE),
        users: scan(AUTH_USERS_TABLE),
        roles: scan(AUTH_ROLES_TABLE),
    };
    let _ = AuthStore::recover(auth);

    if let Ok(alarms) = Alarms::recover(&store) {
        let _ = alarms.get(AlarmType::None);
        let _ = alarms.is_active(AlarmType::Nospace);
    }
});
