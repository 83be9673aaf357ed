//! Alarms (etcd's `v3alarm` and its capped and corrupt appliers): which member raised
//! which alarm, kept in the backend's `alarm` table, and what the log refuses while one
//! is active.
//!
//! Alarms change only through the log, so every member refuses the same entries: a
//! NOSPACE alarm caps the store (puts, txns that put, lease grants are refused; reads,
//! deletes and compaction still work, so space can be reclaimed), a CORRUPT alarm
//! refuses every write. Reads never pass through the log and are not refused (etcd 3.4
//! serves them too).

use std::collections::BTreeSet;
use std::sync::RwLock;

use bytes::Bytes;
use oxetcd_api::etcdserverpb::alarm_request::AlarmAction;
use oxetcd_api::etcdserverpb::{AlarmMember, AlarmRequest, AlarmType};
use oxetcd_api::oxetcdpb::InternalRaftRequest;
use oxetcd_mvcc::backend::Backend;
use oxetcd_mvcc::{ApplyIndex, Store};
use prost::Message;

use crate::error::ServerError;
use crate::id::Hex;
use crate::quota;

/// etcd's bucket of raised alarms: the key is the encoded `AlarmMember`, the value empty.
pub const ALARM_TABLE: &str = "alarm";

/// The raised alarms, as the apply thread has applied them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Alarms {
    /// (alarm type, member id): one alarm per type and member, as in etcd.
    active: BTreeSet<(i32, u64)>,
}

impl Alarms {
    /// The alarms a backend holds (read at start and after a snapshot install).
    pub fn recover<B: Backend>(store: &Store<B>) -> Result<Alarms, oxetcd_mvcc::Error> {
        let mut active = BTreeSet::new();
        for (key, _) in store.aux_scan(ALARM_TABLE)? {
            let member = AlarmMember::decode(key).map_err(|e| {
                oxetcd_mvcc::Error::Corrupt(format!("{ALARM_TABLE} table row: {e}"))
            })?;
            active.insert((member.alarm, member.member_id));
        }
        Ok(Alarms { active })
    }

    /// The alarms of type `alarm`, every alarm for [`AlarmType::None`].
    pub fn get(&self, alarm: AlarmType) -> Vec<AlarmMember> {
        self.active
            .iter()
            .filter(|(kind, _)| alarm == AlarmType::None || *kind == alarm as i32)
            .map(|&(alarm, member_id)| AlarmMember { member_id, alarm })
            .collect()
    }

    /// Whether any member raised `alarm`.
    pub fn is_active(&self, alarm: AlarmType) -> bool {
        self.active.iter().any(|(kind, _)| *kind == alarm as i32)
    }

    /// Whether `member` raised `alarm`.
    pub fn raised_by(&self, member: u64, alarm: AlarmType) -> bool {
        self.active.contains(&(alarm as i32, member))
    }

    /// Why the log refuses `request` while these alarms are active, if it does.
    pub fn refusal(&self, request: &InternalRaftRequest) -> Option<ServerError> {
        if self.is_active(AlarmType::Corrupt) {
            let writes = request.put.is_some()
                || request.delete_range.is_some()
                || request.txn.is_some()
                || request.compaction.is_some()
                || request.lease_grant.is_some()
                || request.lease_revoke.is_some();
            if writes {
                return Some(ServerError::Corrupt);
            }
        }
        if self.is_active(AlarmType::Nospace) && quota::cost(request) > 0 {
            return Some(ServerError::NoSpace);
        }
        None
    }

    /// Applies an ACTIVATE or DEACTIVATE (GET is answered without the log): returns the
    /// alarms it changed and the table rows to write, in the entry's backend commit.
    fn change(
        &mut self,
        request: &AlarmRequest,
    ) -> (Vec<AlarmMember>, Vec<(Bytes, Option<Bytes>)>) {
        let member = AlarmMember { member_id: request.member_id, alarm: request.alarm };
        let key = Bytes::from(member.encode_to_vec());
        let kind = AlarmType::try_from(request.alarm).map_or("UNKNOWN", |a| a.as_str_name());
        let was_active = self.active.iter().any(|(alarm, _)| *alarm == request.alarm);
        match AlarmAction::try_from(request.action) {
            Ok(AlarmAction::Activate) => {
                if !self.active.insert((request.alarm, request.member_id)) {
                    return (Vec::new(), Vec::new());
                }
                if !was_active {
                    tracing::warn!(alarm = kind, from = %Hex(request.member_id), "alarm raised");
                }
                (vec![member], vec![(key, Some(Bytes::new()))])
            }
            Ok(AlarmAction::Deactivate) => {
                if !self.active.remove(&(request.alarm, request.member_id)) {
                    return (Vec::new(), Vec::new());
                }
                if !self.active.iter().any(|(alarm, _)| *alarm == request.alarm) {
                    tracing::warn!(alarm = kind, from = %Hex(request.member_id), "alarm disarmed");
                }
                (vec![member], vec![(key, None)])
            }
            Ok(AlarmAction::Get) | Err(_) => (Vec::new(), Vec::new()),
        }
    }
}

/// Applies a committed alarm request: the alarm set and the `alarm` table change in the
/// same backend commit as the entry's index. The apply thread's (public for the fuzz
/// target, `fuzz/`).
pub fn apply<B: Backend>(
    alarms: &RwLock<Alarms>,
    store: &Store<B>,
    request: &AlarmRequest,
    at: ApplyIndex,
) -> Result<Vec<AlarmMember>, ServerError> {
    let (changed, rows) = alarms.write().unwrap_or_else(|e| e.into_inner()).change(request);
    if rows.is_empty() {
        store.set_consistent_index(at)?;
    } else {
        store.aux_write(ALARM_TABLE, rows, at)?;
    }
    Ok(changed)
}

/// etcd's text for an alarm in a Status response's errors (gogoproto's compact text
/// form, member id in decimal, with its trailing space), so that `etcdctl endpoint
/// status` prints what it prints for etcd.
pub fn describe(alarm: &AlarmMember) -> String {
    let kind = AlarmType::try_from(alarm.alarm)
        .map_or_else(|_| alarm.alarm.to_string(), |a| a.as_str_name().to_string());
    format!("memberID:{} alarm:{kind} ", alarm.member_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxetcd_api::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest, request_op};

    fn request(action: AlarmAction, member_id: u64, alarm: AlarmType) -> AlarmRequest {
        AlarmRequest { action: action as i32, member_id, alarm: alarm as i32 }
    }

    #[test]
    fn one_alarm_per_member_and_type() {
        let mut alarms = Alarms::default();
        let raise = request(AlarmAction::Activate, 7, AlarmType::Nospace);
        assert_eq!(alarms.change(&raise).0.len(), 1);
        assert_eq!(alarms.change(&raise).0, Vec::new(), "raised twice changes nothing");
        alarms.change(&request(AlarmAction::Activate, 8, AlarmType::Corrupt));
        assert_eq!(alarms.get(AlarmType::None).len(), 2);
        assert_eq!(
            alarms.get(AlarmType::Nospace),
            vec![AlarmMember { member_id: 7, alarm: AlarmType::Nospace as i32 }]
        );
        let disarm = request(AlarmAction::Deactivate, 7, AlarmType::Nospace);
        let (changed, rows) = alarms.change(&disarm);
        assert_eq!((changed.len(), rows[0].1.clone()), (1, None));
        assert!(!alarms.is_active(AlarmType::Nospace));
        assert!(alarms.change(&disarm).0.is_empty(), "a disarmed alarm is gone");
        assert!(alarms.raised_by(8, AlarmType::Corrupt));
    }

    fn put() -> InternalRaftRequest {
        InternalRaftRequest {
            put: Some(PutRequest { key: "k".into(), ..Default::default() }),
            ..Default::default()
        }
    }

    fn txn(op: request_op::Request) -> InternalRaftRequest {
        InternalRaftRequest {
            txn: Some(TxnRequest {
                success: vec![RequestOp { request: Some(op) }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn nospace_caps_what_grows_the_store_and_corrupt_refuses_every_write() {
        let mut alarms = Alarms::default();
        let read_txn = txn(request_op::Request::RequestRange(RangeRequest::default()));
        let put_txn = txn(request_op::Request::RequestPut(PutRequest::default()));
        let delete =
            InternalRaftRequest { delete_range: Some(Default::default()), ..Default::default() };
        assert!(alarms.refusal(&put()).is_none());
        alarms.change(&request(AlarmAction::Activate, 1, AlarmType::Nospace));
        assert!(matches!(alarms.refusal(&put()), Some(ServerError::NoSpace)));
        assert!(matches!(alarms.refusal(&put_txn), Some(ServerError::NoSpace)));
        assert!(alarms.refusal(&read_txn).is_none());
        assert!(alarms.refusal(&delete).is_none(), "deletes free space");
        alarms.change(&request(AlarmAction::Activate, 2, AlarmType::Corrupt));
        assert!(matches!(alarms.refusal(&delete), Some(ServerError::Corrupt)));
        assert!(matches!(alarms.refusal(&read_txn), Some(ServerError::Corrupt)));
    }

    #[test]
    fn described_as_etcd_prints_it() {
        let alarm =
            AlarmMember { member_id: 10276657743932975437, alarm: AlarmType::Nospace as i32 };
        assert_eq!(describe(&alarm), "memberID:10276657743932975437 alarm:NOSPACE ");
    }
}
