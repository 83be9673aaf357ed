//! Followers: appends, heartbeats, snapshots, forwarding.

use super::*;

impl<S: Storage> Raft<S> {
    /// Message handling of a follower.
    pub(super) fn step_follower(&mut self, t: MessageType, mut m: Message) -> Result<()> {
        match t {
            MessageType::MsgProp => {
                if self.lead == 0 {
                    return Err(Error::ProposalDropped(DropReason::NoLeader));
                }
                if self.disable_proposal_forwarding {
                    return Err(Error::ProposalDropped(DropReason::ForwardingDisabled));
                }
                if m.entries.is_empty() {
                    return Ok(());
                }
                m.to = self.lead;
                self.send(m);
            }
            MessageType::MsgApp => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_append(&m);
            }
            MessageType::MsgHeartbeat => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_heartbeat(&m);
            }
            MessageType::MsgSnap => {
                self.election_elapsed = 0;
                self.lead = m.from;
                self.handle_snapshot(m);
            }
            MessageType::MsgTransferLeader => {
                // Only a request to make *this* node leader is forwarded: `send` stamps our
                // id as the sender, which the leader reads as the transfer target.
                if self.lead == 0 {
                    return Err(Error::ProposalDropped(DropReason::NoLeader));
                }
                if m.from == self.id {
                    m.to = self.lead;
                    self.send(m);
                }
            }
            MessageType::MsgTimeoutNow => {
                // The leader asked us to take over: campaign now, skipping pre-vote and the
                // voters' leases.
                self.hup(true);
            }
            MessageType::MsgReadIndex => {
                if self.lead == 0 {
                    return Err(Error::ProposalDropped(DropReason::NoLeader));
                }
                m.to = self.lead;
                self.send(m);
            }
            MessageType::MsgReadIndexResp => {
                if let [e] = m.entries.as_slice() {
                    self.read_states
                        .push(ReadState { index: m.index, request_ctx: e.data.clone() });
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// AppendEntries on a follower: consistency check, conflict truncation, commit.
    pub(super) fn handle_append(&mut self, m: &Message) {
        let mut resp = Message::new(MessageType::MsgAppResp);
        resp.to = m.from;
        if m.index < self.raft_log.committed {
            // Everything up to our commit index is known to match.
            resp.index = self.raft_log.committed;
            self.send(resp);
            return;
        }
        let contiguous = m
            .entries
            .iter()
            .enumerate()
            .all(|(i, e)| m.index.checked_add(1 + i as u64) == Some(e.index));
        if !contiguous {
            return;
        }
        match self.raft_log.maybe_append(m.index, m.log_term, m.commit, &m.entries) {
            Some(last_new) => resp.index = last_new,
            None => {
                // Tell the leader where our log might match: the last index at or before
                // its probe whose term is not newer than the probe's term.
                let hint = m.index.min(self.raft_log.last_index());
                let hint = self.raft_log.find_conflict_by_term(hint, m.log_term);
                resp.index = m.index;
                resp.reject = true;
                resp.reject_hint = hint;
                resp.log_term = self.raft_log.term_or_zero(hint);
            }
        }
        self.send(resp);
    }

    /// Heartbeat: learn the commit index, acknowledge (echoing a read context).
    pub(super) fn handle_heartbeat(&mut self, m: &Message) {
        if m.commit <= self.raft_log.last_index() {
            self.raft_log.commit_to(m.commit);
        }
        let mut resp = Message::new(MessageType::MsgHeartbeatResp);
        resp.to = m.from;
        resp.context = m.context.clone();
        self.send(resp);
    }

    /// Installs (or declines) a snapshot and acknowledges it.
    pub(super) fn handle_snapshot(&mut self, mut m: Message) {
        let Some(snapshot) = m.snapshot.take() else {
            return;
        };
        let mut resp = Message::new(MessageType::MsgAppResp);
        resp.to = m.from;
        resp.index = if self.restore(snapshot) {
            self.raft_log.last_index()
        } else {
            self.raft_log.committed
        };
        self.send(resp);
    }

    /// Installs `snapshot` if it brings news; returns whether the log was replaced.
    pub(super) fn restore(&mut self, snapshot: Snapshot) -> bool {
        let (index, term) = (snapshot.index(), snapshot.term());
        // (`u64::MAX` cannot be a real index: the log could not grow past it.)
        if index <= self.raft_log.committed || index == u64::MAX {
            return false;
        }
        if self.state != StateRole::Follower {
            // Only a follower of the sender may install its snapshot.
            return false;
        }
        // The snapshot's membership may predate our own addition (the leader's newest
        // snapshot can be older than the change that added us): install it anyway, the log
        // entries that follow it bring the change.
        let cs = snapshot.conf_state();
        if self.has_unapplied_conf_change() {
            // The application is still applying committed configuration changes (possibly
            // from a Ready handed out before this message): installing the snapshot's newer
            // configuration now would make it apply them on top of the wrong one. The leader
            // retries later.
            return false;
        }
        if self.raft_log.match_term(index, term) {
            // We already hold the snapshot's entries: just fast-forward the commit index.
            self.raft_log.commit_to(index);
            return false;
        }
        let Ok((cfg, prs)) =
            confchange::restore(&ProgressTracker::new(self.prs.max_inflight), index, &cs)
        else {
            return false;
        };
        self.raft_log.restore(snapshot);
        self.switch_to_config(cfg, prs);
        true
    }
}
