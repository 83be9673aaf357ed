//! The leader: proposals, replication feedback, read index, leadership transfer.

use super::*;

impl<S: Storage> Raft<S> {
    /// Message handling of the leader.
    pub(super) fn step_leader(&mut self, t: MessageType, mut m: Message) -> Result<()> {
        match t {
            MessageType::MsgBeat => {
                self.bcast_heartbeat();
                return Ok(());
            }
            MessageType::MsgCheckQuorum => {
                self.check_quorum_active();
                return Ok(());
            }
            MessageType::MsgProp => return self.leader_propose(&mut m),
            MessageType::MsgReadIndex => {
                if m.entries.len() != 1 {
                    return Ok(());
                }
                if !self.committed_entry_in_current_term() {
                    // Our commit index may still lag entries committed by earlier leaders.
                    self.pending_read_index.push(m);
                } else {
                    self.handle_leader_read_index(m);
                }
                return Ok(());
            }
            _ => {}
        }
        let from = m.from;
        let Some(pr) = self.prs.progress.get_mut(&from) else {
            return Ok(());
        };
        match t {
            MessageType::MsgAppResp => {
                pr.recent_active = true;
                self.handle_append_response(&m);
            }
            MessageType::MsgHeartbeatResp => {
                pr.recent_active = true;
                pr.probe_sent = false;
                if pr.state == ProgressState::Replicate && pr.inflights.full() {
                    pr.inflights.free_first_one();
                }
                if pr.matched < self.raft_log.last_index() {
                    self.send_append(from);
                }
                self.handle_read_ack(&m);
            }
            MessageType::MsgSnapStatus => {
                if let ProgressState::Snapshot { .. } = pr.state {
                    // Success or failure, go back to probing; after a failure wait for the next
                    // heartbeat response before probing, as the peer is likely unhealthy.
                    pr.become_probe();
                    pr.probe_sent = m.reject;
                }
            }
            // Streaming optimistically to an unreachable peer would only lose messages.
            MessageType::MsgUnreachable if pr.state == ProgressState::Replicate => {
                pr.become_probe();
            }
            MessageType::MsgTransferLeader => {
                if pr.is_learner {
                    return Ok(());
                }
                let matched = pr.matched;
                if self.lead_transferee == Some(from) || from == self.id {
                    return Ok(());
                }
                self.election_elapsed = 0;
                self.lead_transferee = Some(from);
                if matched == self.raft_log.last_index() {
                    self.send_timeout_now(from);
                } else {
                    self.send_append(from);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Appends proposed entries, turning refused conf changes into no-ops.
    fn leader_propose(&mut self, m: &mut Message) -> Result<()> {
        if m.entries.is_empty() {
            return Ok(());
        }
        if !self.promotable() {
            // Removed or demoted: we only lead until a voter takes over.
            return Err(Error::ProposalDropped(DropReason::NotInConfiguration));
        }
        if self.lead_transferee.is_some() {
            return Err(Error::ProposalDropped(DropReason::LeaderTransferInProgress));
        }
        let last = self.raft_log.last_index();
        for (i, e) in m.entries.iter_mut().enumerate() {
            if !e.is_conf_change() {
                continue;
            }
            let refuse = match decode_conf_change(e) {
                None => true,
                Some(cc) => {
                    let already_pending = self.pending_conf_index > self.raft_log.applied;
                    let joint = self.prs.config.voters.is_joint();
                    let leave = cc.leave_joint();
                    already_pending || joint != leave
                }
            };
            if refuse {
                // Keep the proposal's position (the caller may track indexes) but make it a
                // no-op: one change at a time, leave a joint config before changing again.
                *e = Entry::default();
            } else {
                self.pending_conf_index = last + 1 + i as u64;
            }
        }
        if !self.append_entries(&mut m.entries) {
            return Err(Error::ProposalDropped(DropReason::UncommittedSizeExceeded));
        }
        self.bcast_append();
        Ok(())
    }

    /// Serves a read request once this leader has committed in its term.
    pub(super) fn handle_leader_read_index(&mut self, m: Message) {
        let Some(ctx) = m.entries.first().map(|e| e.data.clone()) else {
            return;
        };
        let committed = self.raft_log.committed;
        let alone = self.prs.is_singleton() && self.prs.config.voters.contains(self.id);
        if alone || self.read_only.option == ReadOnlyOption::LeaseBased {
            // The only voter, or trusting the lease: our commit index is current.
            self.send_read_index_response(m, committed);
            return;
        }
        self.read_only.add_request(committed, ctx.clone(), m);
        self.read_only.recv_ack(self.id, &ctx);
        self.bcast_heartbeat_with_ctx(Some(ctx));
    }

    /// Counts a heartbeat acknowledgement towards pending reads; answers the confirmed ones.
    fn handle_read_ack(&mut self, m: &Message) {
        if self.read_only.option != ReadOnlyOption::Safe || m.context.is_empty() {
            return;
        }
        let Some(acks) = self.read_only.recv_ack(m.from, &m.context) else {
            return;
        };
        if self.prs.config.voters.vote_result(acks) != VoteResult::Won {
            return;
        }
        for rs in self.read_only.advance(&m.context) {
            self.send_read_index_response(rs.req, rs.index);
        }
    }

    /// Answers a read locally (read state) or to the forwarding follower.
    fn send_read_index_response(&mut self, req: Message, index: u64) {
        if req.from == 0 || req.from == self.id {
            let request_ctx = req.entries.first().map(|e| e.data.clone()).unwrap_or_default();
            self.read_states.push(ReadState { index, request_ctx });
            return;
        }
        let mut resp = Message::new(MessageType::MsgReadIndexResp);
        resp.to = req.from;
        resp.index = index;
        resp.entries = req.entries;
        self.send(resp);
    }

    /// Tells `to` to campaign right away (leader transfer).
    pub(super) fn send_timeout_now(&mut self, to: u64) {
        let mut m = Message::new(MessageType::MsgTimeoutNow);
        m.to = to;
        self.send(m);
    }

    /// Acknowledgement or rejection of an append: progress, commit, transfer.
    fn handle_append_response(&mut self, m: &Message) {
        let from = m.from;
        let last_index = self.raft_log.last_index();
        if m.index > last_index {
            // Acknowledges entries we never sent: malformed.
            return;
        }
        let pr = self.prs.progress.get_mut(&from).expect("checked by caller");
        if m.reject {
            // Fast backtracking: the follower told us the last index where its log might
            // match ours (and that entry's term); skip every index whose term cannot match.
            let next_probe = if m.log_term > 0 {
                self.raft_log.find_conflict_by_term(m.reject_hint, m.log_term)
            } else {
                m.reject_hint
            };
            if pr.maybe_decr_to(m.index, next_probe) {
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.send_append(from);
            }
            return;
        }
        let was_paused = pr.is_paused();
        if !pr.maybe_update(m.index) {
            return;
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot { pending } if pr.matched >= pending => {
                // The snapshot (or a later append) got through.
                pr.become_probe();
                pr.become_replicate();
            }
            ProgressState::Replicate => pr.inflights.free_le(m.index),
            ProgressState::Snapshot { .. } => {}
        }
        if self.maybe_commit() {
            self.bcast_append();
        } else if was_paused {
            self.send_append(from);
        }
        // Fill the window: the follower may be far behind.
        while self.maybe_send_append(from, false) {}
        let caught_up =
            self.prs.progress.get(&from).is_some_and(|pr| pr.matched == self.raft_log.last_index());
        if self.lead_transferee == Some(from) && caught_up {
            self.send_timeout_now(from);
        }
    }
}
