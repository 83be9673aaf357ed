//! Wire and storage types, protobuf-encodable through `prost`.
//!
//! Field numbers follow etcd's `raftpb` so that the layout on disk and on the wire is the one
//! etcd operators know. Enumerations are stored as `i32` (prost's representation); use the
//! generated typed getters (`msg_type()`, `entry_type()`, ...) and setters to work with them.
//! An unknown enumeration value decodes to the default variant through the getters, so a
//! malformed message can never make the state machine panic.

use bytes::Bytes;

/// The kind of a log entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum EntryType {
    /// Application data (or an empty entry appended by a new leader).
    EntryNormal = 0,
    /// A legacy single-node [`ConfChange`].
    EntryConfChange = 1,
    /// A [`ConfChangeV2`] (joint consensus capable).
    EntryConfChangeV2 = 2,
}

/// One entry of the replicated log.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Entry {
    /// Term of the leader that created the entry.
    #[prost(uint64, tag = "2")]
    pub term: u64,
    /// Position in the log (1-based).
    #[prost(uint64, tag = "3")]
    pub index: u64,
    /// Kind of payload, see [`EntryType`].
    #[prost(enumeration = "EntryType", tag = "1")]
    pub entry_type: i32,
    /// Opaque payload.
    #[prost(bytes = "bytes", tag = "4")]
    pub data: Bytes,
}

impl Entry {
    /// A normal entry carrying `data` (term and index are assigned by the leader).
    pub fn normal(data: impl Into<Bytes>) -> Self {
        Entry { data: data.into(), ..Default::default() }
    }

    /// Size accounted against message, Ready and uncommitted-log limits.
    pub fn payload_size(&self) -> u64 {
        self.data.len() as u64
    }

    /// Whether this entry carries a configuration change (v1 or v2).
    pub fn is_conf_change(&self) -> bool {
        matches!(self.entry_type(), EntryType::EntryConfChange | EntryType::EntryConfChangeV2)
    }
}

/// Membership of the cluster as recorded in snapshots and returned by conf-change application.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ConfState {
    /// Voters of the incoming (or only) majority.
    #[prost(uint64, repeated, tag = "1")]
    pub voters: Vec<u64>,
    /// Non-voting members.
    #[prost(uint64, repeated, tag = "2")]
    pub learners: Vec<u64>,
    /// Voters of the outgoing majority; non-empty only in a joint configuration.
    #[prost(uint64, repeated, tag = "3")]
    pub voters_outgoing: Vec<u64>,
    /// Outgoing voters that become learners when the joint configuration is left.
    #[prost(uint64, repeated, tag = "4")]
    pub learners_next: Vec<u64>,
    /// Whether the leader leaves the joint configuration on its own once it is applied.
    #[prost(bool, tag = "5")]
    pub auto_leave: bool,
}

/// Metadata describing what a snapshot covers.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct SnapshotMetadata {
    /// Membership as of `index`.
    #[prost(message, optional, tag = "1")]
    pub conf_state: Option<ConfState>,
    /// Last log index included in the snapshot.
    #[prost(uint64, tag = "2")]
    pub index: u64,
    /// Term of the entry at `index`.
    #[prost(uint64, tag = "3")]
    pub term: u64,
}

/// A point-in-time image of the state machine plus the log position it corresponds to.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Snapshot {
    /// Application-defined state machine image.
    #[prost(bytes = "bytes", tag = "1")]
    pub data: Bytes,
    /// What the snapshot covers.
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<SnapshotMetadata>,
}

impl Snapshot {
    /// Index covered by the snapshot (0 for the empty snapshot).
    pub fn index(&self) -> u64 {
        self.metadata.as_ref().map_or(0, |m| m.index)
    }

    /// Term of the last covered entry (0 for the empty snapshot).
    pub fn term(&self) -> u64 {
        self.metadata.as_ref().map_or(0, |m| m.term)
    }

    /// Membership recorded in the snapshot.
    pub fn conf_state(&self) -> ConfState {
        self.metadata.as_ref().and_then(|m| m.conf_state.clone()).unwrap_or_default()
    }

    /// Whether this is the empty (absent) snapshot.
    pub fn is_empty(&self) -> bool {
        self.index() == 0
    }
}

/// Every message kind exchanged between nodes or fed locally to `step`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MessageType {
    /// Local: start an election.
    MsgHup = 0,
    /// Local: leader sends heartbeats.
    MsgBeat = 1,
    /// A proposal (local, or forwarded by a follower).
    MsgProp = 2,
    /// Append entries.
    MsgApp = 3,
    /// Answer to `MsgApp` (and to `MsgSnap`).
    MsgAppResp = 4,
    /// Request a vote.
    MsgVote = 5,
    /// Answer to `MsgVote`.
    MsgVoteResp = 6,
    /// Install a snapshot.
    MsgSnap = 7,
    /// Leader heartbeat.
    MsgHeartbeat = 8,
    /// Answer to `MsgHeartbeat`.
    MsgHeartbeatResp = 9,
    /// Local: the transport could not reach a peer.
    MsgUnreachable = 10,
    /// Local: result of sending a snapshot.
    MsgSnapStatus = 11,
    /// Local: leader checks that a quorum is still active.
    MsgCheckQuorum = 12,
    /// Ask the leader to hand leadership over to `from`.
    MsgTransferLeader = 13,
    /// Leader tells the transfer target to campaign immediately.
    MsgTimeoutNow = 14,
    /// Linearizable read request.
    MsgReadIndex = 15,
    /// Answer to a forwarded `MsgReadIndex`.
    MsgReadIndexResp = 16,
    /// Pre-vote request (does not bump terms).
    MsgPreVote = 17,
    /// Answer to `MsgPreVote`.
    MsgPreVoteResp = 18,
}

impl MessageType {
    /// Messages that never travel over the network.
    pub fn is_local(self) -> bool {
        matches!(
            self,
            MessageType::MsgHup
                | MessageType::MsgBeat
                | MessageType::MsgUnreachable
                | MessageType::MsgSnapStatus
                | MessageType::MsgCheckQuorum
        )
    }

    /// Messages that answer a request.
    pub fn is_response(self) -> bool {
        matches!(
            self,
            MessageType::MsgAppResp
                | MessageType::MsgVoteResp
                | MessageType::MsgHeartbeatResp
                | MessageType::MsgUnreachable
                | MessageType::MsgReadIndexResp
                | MessageType::MsgPreVoteResp
        )
    }

    /// The response kind matching a vote request kind.
    pub(crate) fn vote_response(self) -> MessageType {
        match self {
            MessageType::MsgPreVote => MessageType::MsgPreVoteResp,
            _ => MessageType::MsgVoteResp,
        }
    }
}

/// A Raft message.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Message {
    /// Kind, see [`MessageType`].
    #[prost(enumeration = "MessageType", tag = "1")]
    pub msg_type: i32,
    /// Recipient node id.
    #[prost(uint64, tag = "2")]
    pub to: u64,
    /// Sender node id.
    #[prost(uint64, tag = "3")]
    pub from: u64,
    /// Sender's term (0 for local messages).
    #[prost(uint64, tag = "4")]
    pub term: u64,
    /// Term of the entry at `index` (for appends and votes), or a rejection hint term.
    #[prost(uint64, tag = "5")]
    pub log_term: u64,
    /// A log index whose meaning depends on the message kind.
    #[prost(uint64, tag = "6")]
    pub index: u64,
    /// Entries carried by appends and proposals.
    #[prost(message, repeated, tag = "7")]
    pub entries: Vec<Entry>,
    /// Sender's commit index.
    #[prost(uint64, tag = "8")]
    pub commit: u64,
    /// Snapshot for `MsgSnap`.
    #[prost(message, optional, tag = "9")]
    pub snapshot: Option<Snapshot>,
    /// Whether a response is a rejection.
    #[prost(bool, tag = "10")]
    pub reject: bool,
    /// Where the follower's log may diverge (for rejected appends).
    #[prost(uint64, tag = "11")]
    pub reject_hint: u64,
    /// Opaque context (read-index request id, campaign kind).
    #[prost(bytes = "bytes", tag = "12")]
    pub context: Bytes,
}

impl Message {
    /// A message of kind `t` with every other field defaulted.
    pub fn new(t: MessageType) -> Self {
        let mut m = Message::default();
        m.set_msg_type(t);
        m
    }
}

/// The state that must be persisted before messages marked "after persist" are sent.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct HardState {
    /// Current term.
    #[prost(uint64, tag = "1")]
    pub term: u64,
    /// Candidate voted for in `term` (0 if none).
    #[prost(uint64, tag = "2")]
    pub vote: u64,
    /// Highest index known to be committed.
    #[prost(uint64, tag = "3")]
    pub commit: u64,
}

impl HardState {
    /// Whether this is the all-zero hard state of a brand-new node.
    pub fn is_empty(&self) -> bool {
        *self == HardState::default()
    }
}

/// Kind of a single membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ConfChangeType {
    /// Add (or promote to) a voter.
    ConfChangeAddNode = 0,
    /// Remove a voter or learner.
    ConfChangeRemoveNode = 1,
    /// No membership effect; lets the application update peer metadata through the log.
    ConfChangeUpdateNode = 2,
    /// Add a learner (or demote a voter).
    ConfChangeAddLearnerNode = 3,
}

/// How a [`ConfChangeV2`] moves between configurations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ConfChangeTransition {
    /// Single step when possible (one voter changes), otherwise joint with auto-leave.
    ConfChangeTransitionAuto = 0,
    /// Joint consensus, left automatically by the leader.
    ConfChangeTransitionJointImplicit = 1,
    /// Joint consensus, left only by an explicit empty `ConfChangeV2`.
    ConfChangeTransitionJointExplicit = 2,
}

/// The legacy, single-node configuration change.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ConfChange {
    /// Application-defined id (opaque to raft).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// What to do.
    #[prost(enumeration = "ConfChangeType", tag = "2")]
    pub change_type: i32,
    /// Node affected.
    #[prost(uint64, tag = "3")]
    pub node_id: u64,
    /// Application-defined context.
    #[prost(bytes = "bytes", tag = "4")]
    pub context: Bytes,
}

/// One change inside a [`ConfChangeV2`].
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ConfChangeSingle {
    /// What to do.
    #[prost(enumeration = "ConfChangeType", tag = "1")]
    pub change_type: i32,
    /// Node affected.
    #[prost(uint64, tag = "2")]
    pub node_id: u64,
}

impl ConfChangeSingle {
    /// A single change of kind `t` for `node_id`.
    pub fn new(t: ConfChangeType, node_id: u64) -> Self {
        let mut c = ConfChangeSingle { node_id, ..Default::default() };
        c.set_change_type(t);
        c
    }
}

/// A configuration change that may touch several nodes and use joint consensus.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ConfChangeV2 {
    /// How to transition, see [`ConfChangeTransition`].
    #[prost(enumeration = "ConfChangeTransition", tag = "1")]
    pub transition: i32,
    /// The changes; empty means "leave the joint configuration".
    #[prost(message, repeated, tag = "2")]
    pub changes: Vec<ConfChangeSingle>,
    /// Application-defined context.
    #[prost(bytes = "bytes", tag = "3")]
    pub context: Bytes,
}

impl ConfChange {
    /// The equivalent [`ConfChangeV2`].
    pub fn into_v2(self) -> ConfChangeV2 {
        ConfChangeV2 {
            transition: ConfChangeTransition::ConfChangeTransitionAuto as i32,
            changes: vec![ConfChangeSingle {
                change_type: self.change_type,
                node_id: self.node_id,
            }],
            context: self.context,
        }
    }
}

impl ConfChangeV2 {
    /// Whether applying this change enters a joint configuration, and if so whether the leader
    /// leaves it automatically.
    pub fn enter_joint(&self) -> Option<bool> {
        let transition = self.transition();
        if transition != ConfChangeTransition::ConfChangeTransitionAuto || self.changes.len() > 1 {
            let auto_leave = matches!(
                transition,
                ConfChangeTransition::ConfChangeTransitionAuto
                    | ConfChangeTransition::ConfChangeTransitionJointImplicit
            );
            Some(auto_leave)
        } else {
            None
        }
    }

    /// Whether this is the (empty) change that leaves a joint configuration.
    pub fn leave_joint(&self) -> bool {
        self.changes.is_empty()
            && self.transition() == ConfChangeTransition::ConfChangeTransitionAuto
    }
}

/// Conversion of either configuration-change flavour into its log entry.
pub trait ConfChangeI {
    /// The change as a [`ConfChangeV2`].
    fn as_v2(&self) -> ConfChangeV2;
    /// The log entry (type and encoded data) carrying this change.
    fn to_entry(&self) -> Entry;
}

impl ConfChangeI for ConfChange {
    fn as_v2(&self) -> ConfChangeV2 {
        self.clone().into_v2()
    }

    fn to_entry(&self) -> Entry {
        let mut e = Entry::normal(prost::Message::encode_to_vec(self));
        e.set_entry_type(EntryType::EntryConfChange);
        e
    }
}

impl ConfChangeI for ConfChangeV2 {
    fn as_v2(&self) -> ConfChangeV2 {
        self.clone()
    }

    fn to_entry(&self) -> Entry {
        let mut e = Entry::normal(prost::Message::encode_to_vec(self));
        e.set_entry_type(EntryType::EntryConfChangeV2);
        e
    }
}

/// Decodes the configuration change carried by a conf-change entry, `None` for other entries
/// or undecodable data.
pub fn decode_conf_change(e: &Entry) -> Option<ConfChangeV2> {
    use prost::Message as _;
    match e.entry_type() {
        EntryType::EntryConfChange => {
            ConfChange::decode(e.data.clone()).ok().map(ConfChange::into_v2)
        }
        EntryType::EntryConfChangeV2 => ConfChangeV2::decode(e.data.clone()).ok(),
        EntryType::EntryNormal => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn messages_round_trip_through_protobuf() {
        let mut m = Message::new(MessageType::MsgApp);
        m.to = 2;
        m.from = 1;
        m.term = 7;
        m.index = 10;
        m.log_term = 6;
        m.commit = 9;
        m.entries = vec![Entry {
            term: 7,
            index: 11,
            data: Bytes::from_static(b"x"),
            ..Default::default()
        }];
        m.snapshot = Some(Snapshot {
            data: Bytes::from_static(b"state"),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(ConfState { voters: vec![1, 2], ..Default::default() }),
                index: 5,
                term: 3,
            }),
        });
        m.context = Bytes::from_static(b"ctx");
        let decoded = Message::decode(m.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, m);
        let hs = HardState { term: 3, vote: 2, commit: 9 };
        assert_eq!(HardState::decode(hs.encode_to_vec().as_slice()).unwrap(), hs);
    }

    #[test]
    fn unknown_enum_values_decode_without_panicking() {
        let mut m = Message::new(MessageType::MsgApp);
        m.msg_type = 4242;
        let decoded = Message::decode(m.encode_to_vec().as_slice()).unwrap();
        assert!(MessageType::try_from(decoded.msg_type).is_err());
        assert_eq!(decoded.msg_type(), MessageType::MsgHup, "the getter falls back to default");
    }

    #[test]
    fn conf_change_transitions() {
        use ConfChangeTransition::*;
        use ConfChangeType::*;
        let cc = |t: ConfChangeTransition, n: usize| {
            let mut c = ConfChangeV2 {
                changes: (1..=n as u64)
                    .map(|id| ConfChangeSingle::new(ConfChangeAddNode, id))
                    .collect(),
                ..Default::default()
            };
            c.set_transition(t);
            c
        };
        // (transition, number of changes, enter_joint, leave_joint)
        let cases = [
            (ConfChangeTransitionAuto, 0, None, true),
            (ConfChangeTransitionAuto, 1, None, false),
            (ConfChangeTransitionAuto, 2, Some(true), false),
            (ConfChangeTransitionJointImplicit, 1, Some(true), false),
            (ConfChangeTransitionJointExplicit, 1, Some(false), false),
            (ConfChangeTransitionJointExplicit, 0, Some(false), false),
        ];
        for (t, n, enter, leave) in cases {
            let c = cc(t, n);
            assert_eq!((c.enter_joint(), c.leave_joint()), (enter, leave), "{t:?} with {n}");
        }
        let v1 = ConfChange {
            node_id: 3,
            change_type: ConfChangeRemoveNode as i32,
            ..Default::default()
        };
        let e = v1.to_entry();
        assert_eq!(e.entry_type(), EntryType::EntryConfChange);
        assert_eq!(decode_conf_change(&e), Some(v1.as_v2()));
        assert_eq!(decode_conf_change(&Entry::normal(&b"x"[..])), None);
    }
}
