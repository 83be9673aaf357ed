//! The seam between the raft loop and the peer transport: the transport's callbacks
//! feed the raft loop's bounded inbox, and the raft loop's messages go out through the
//! transport.

use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Weak};

use oxetcd_raft::{Message, MessageType, SnapshotStatus};
use oxetcd_transport::{Dropped, RaftHandler, Transport};

use crate::node::{Input, Outbox};
use crate::state::Shared;

/// What the transport calls into. Holds the server state weakly: the transport lives
/// inside the server and must not keep it alive.
pub(crate) struct RaftBridge {
    pub inbox: SyncSender<Input>,
    pub shared: Weak<Shared>,
}

impl RaftHandler for RaftBridge {
    fn process(&self, msg: Message) -> Result<(), Dropped> {
        self.inbox.try_send(Input::Step(Box::new(msg))).map_err(|_| Dropped)
    }

    fn is_removed(&self, id: u64) -> bool {
        self.shared.upgrade().is_some_and(|s| s.membership().is_removed(id))
    }

    fn report_unreachable(&self, id: u64) {
        let _ = self.inbox.try_send(Input::Unreachable(id));
    }

    fn report_snapshot(&self, id: u64, status: SnapshotStatus) {
        let _ = self.inbox.try_send(Input::SnapshotStatus(id, status));
    }

    fn receive_snapshot(&self, msg: Message, db_path: PathBuf) {
        // This version never sends snapshots (see `TransportOutbox`), so one arriving
        // comes from a newer member; it is refused rather than half-installed.
        tracing::warn!(from = %format!("{:x}", msg.from), path = %db_path.display(), "snapshot install is not supported yet; dropped");
        let _ = std::fs::remove_file(db_path);
    }

    fn removed_by_peer(&self, by_peer: u64) {
        tracing::error!(peer = %format!("{:x}", by_peer), "this member was removed from the cluster");
    }
}

/// The raft loop's outbox over the transport.
pub(crate) struct TransportOutbox {
    pub transport: Arc<Transport>,
    pub inbox: SyncSender<Input>,
}

impl Outbox for TransportOutbox {
    fn send(&self, mut msgs: Vec<Message>) {
        // Sending a snapshot needs a consistent copy of the backend, which is not built
        // yet: tell raft the snapshot failed, so it probes again later.
        msgs.retain(|m| {
            let snapshot = m.msg_type == MessageType::MsgSnap as i32;
            if snapshot {
                tracing::warn!(to = %format!("{:x}", m.to), "follower needs a snapshot; sending snapshots is not supported yet");
                let _ = self.inbox.try_send(Input::SnapshotStatus(m.to, SnapshotStatus::Failure));
            }
            !snapshot
        });
        self.transport.send(msgs);
    }
}
