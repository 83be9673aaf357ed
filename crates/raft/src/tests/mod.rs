//! Rule-by-rule tests of the protocol, driven through a small in-memory network.
//!
//! The network delivers messages synchronously and processes every Ready completely
//! (persist, send, apply conf changes, advance), so a test reads like the scenario it checks.

mod election;
mod flow_control;
mod membership;
mod read_index;
mod replication;

use crate::{
    ConfState, Config, Entry, EntryType, MemStorage, Message, MessageType, Raft, RawNode, Ready,
    StateRole, types::decode_conf_change,
};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

/// Test configuration: election 10 ticks, heartbeat 1, no pre-vote or check-quorum unless a
/// test enables them.
pub(crate) fn config(id: u64) -> Config {
    let mut c = Config::new(id);
    c.pre_vote = false;
    c.check_quorum = false;
    c.seed = id;
    c
}

pub(crate) fn conf(voters: &[u64], learners: &[u64]) -> ConfState {
    ConfState { voters: voters.to_vec(), learners: learners.to_vec(), ..Default::default() }
}

pub(crate) fn ent(index: u64, term: u64) -> Entry {
    Entry { index, term, ..Default::default() }
}

pub(crate) fn msg(t: MessageType, from: u64, to: u64, term: u64) -> Message {
    let mut m = Message::new(t);
    m.from = from;
    m.to = to;
    m.term = term;
    m
}

/// Handles a Ready the way a server must: persist, apply (conf changes included), advance.
/// Returns every message to send.
pub(crate) fn handle_ready(node: &mut RawNode<MemStorage>, rd: Ready) -> Vec<Message> {
    let store = node.mut_store();
    if let Some(s) = &rd.snapshot {
        store.apply_snapshot(s.clone()).expect("newer snapshot");
    }
    store.append(&rd.entries);
    if let Some(hs) = rd.hard_state {
        store.set_hard_state(hs);
    }
    for e in &rd.committed_entries {
        if e.entry_type() != EntryType::EntryNormal
            && let Some(cc) = decode_conf_change(e)
        {
            // Invalid changes are rejected identically everywhere; nothing to do.
            let _ = node.apply_conf_change(&cc);
        }
    }
    let mut out = rd.messages.clone();
    out.extend(rd.persisted_messages.iter().cloned());
    node.advance(rd);
    out
}

pub(crate) struct Network {
    pub(crate) nodes: BTreeMap<u64, RawNode<MemStorage>>,
    /// Directed links that drop everything.
    blocked: BTreeSet<(u64, u64)>,
    /// Message kinds dropped everywhere.
    ignored: BTreeSet<MessageType>,
    /// Committed normal entries with data, per node, in apply order.
    pub(crate) applied: BTreeMap<u64, Vec<Bytes>>,
    /// Every message delivered, for tests that count round trips.
    pub(crate) delivered: Vec<Message>,
    /// Answers to read-index requests, per node.
    pub(crate) read_states: BTreeMap<u64, Vec<crate::ReadState>>,
}

impl Network {
    /// Voters `ids`, default test config.
    pub(crate) fn new(ids: &[u64]) -> Self {
        Self::with_config(ids, &[], |_| {})
    }

    /// Voters `ids` and learners `learners`, config adjusted by `f`.
    pub(crate) fn with_config(ids: &[u64], learners: &[u64], f: impl Fn(&mut Config)) -> Self {
        let mut nodes = BTreeMap::new();
        for &id in ids.iter().chain(learners) {
            let mut c = config(id);
            f(&mut c);
            let store = MemStorage::new_with_conf_state(conf(ids, learners));
            nodes.insert(id, RawNode::new(&c, store).expect("valid config"));
        }
        Network {
            nodes,
            blocked: BTreeSet::new(),
            ignored: BTreeSet::new(),
            applied: BTreeMap::new(),
            delivered: Vec::new(),
            read_states: BTreeMap::new(),
        }
    }

    /// A network over prepared storages (e.g. with divergent logs).
    pub(crate) fn from_stores(stores: Vec<(u64, MemStorage)>) -> Self {
        let nodes = stores
            .into_iter()
            .map(|(id, store)| (id, RawNode::new(&config(id), store).expect("valid config")))
            .collect();
        Network {
            nodes,
            blocked: BTreeSet::new(),
            ignored: BTreeSet::new(),
            applied: BTreeMap::new(),
            delivered: Vec::new(),
            read_states: BTreeMap::new(),
        }
    }

    /// Adds a machine `id` that starts knowing membership `cs` (like a newly added member).
    pub(crate) fn add_node(&mut self, id: u64, cs: ConfState) {
        let store = MemStorage::new_with_conf_state(cs);
        self.nodes.insert(id, RawNode::new(&config(id), store).expect("valid config"));
    }

    pub(crate) fn raft(&self, id: u64) -> &Raft<MemStorage> {
        &self.nodes[&id].raft
    }

    pub(crate) fn raw(&mut self, id: u64) -> &mut RawNode<MemStorage> {
        self.nodes.get_mut(&id).expect("known node")
    }

    pub(crate) fn state(&self, id: u64) -> StateRole {
        self.raft(id).state
    }

    pub(crate) fn committed(&self, id: u64) -> u64 {
        self.raft(id).raft_log.committed
    }

    pub(crate) fn last_index(&self, id: u64) -> u64 {
        self.raft(id).raft_log.last_index()
    }

    /// Cuts both directions between `a` and `b`.
    pub(crate) fn cut(&mut self, a: u64, b: u64) {
        self.blocked.insert((a, b));
        self.blocked.insert((b, a));
    }

    /// Cuts `id` from everybody.
    pub(crate) fn isolate(&mut self, id: u64) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for other in ids {
            if other != id {
                self.cut(id, other);
            }
        }
    }

    pub(crate) fn ignore(&mut self, t: MessageType) {
        self.ignored.insert(t);
    }

    pub(crate) fn recover(&mut self) {
        self.blocked.clear();
        self.ignored.clear();
    }

    /// Processes `id`'s pending Readys; returns the messages it wants to send.
    pub(crate) fn drain(&mut self, id: u64) -> Vec<Message> {
        let mut out = Vec::new();
        let Some(node) = self.nodes.get_mut(&id) else {
            return out;
        };
        while node.has_ready() {
            let rd = node.ready();
            if !rd.read_states.is_empty() {
                self.read_states.entry(id).or_default().extend(rd.read_states.iter().cloned());
            }
            for e in &rd.committed_entries {
                if e.entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
                    self.applied.entry(id).or_default().push(e.data.clone());
                }
            }
            out.extend(handle_ready(node, rd));
        }
        out
    }

    /// Delivers `msgs` and everything they cause until the network is quiet.
    pub(crate) fn send(&mut self, msgs: Vec<Message>) {
        let mut queue: std::collections::VecDeque<Message> = msgs.into();
        let mut budget = 100_000;
        while let Some(m) = queue.pop_front() {
            budget -= 1;
            assert!(budget > 0, "network did not quiesce");
            if self.ignored.contains(&m.msg_type()) || self.blocked.contains(&(m.from, m.to)) {
                continue;
            }
            let to = m.to;
            let Some(node) = self.nodes.get_mut(&to) else {
                continue;
            };
            self.delivered.push(m.clone());
            let _ = node.raft.step(m);
            queue.extend(self.drain(to));
        }
    }

    /// Runs `f` on node `id`, then delivers everything until quiet.
    pub(crate) fn act<R>(&mut self, id: u64, f: impl FnOnce(&mut RawNode<MemStorage>) -> R) -> R {
        let r = f(self.raw(id));
        self.stabilize();
        r
    }

    /// Drains every node and delivers until quiet.
    pub(crate) fn stabilize(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        let mut msgs = Vec::new();
        for id in ids {
            msgs.extend(self.drain(id));
        }
        self.send(msgs);
    }

    pub(crate) fn campaign(&mut self, id: u64) {
        self.act(id, |n| n.campaign().expect("campaign never fails"));
    }

    pub(crate) fn propose(&mut self, id: u64, data: &'static [u8]) -> crate::Result<()> {
        self.act(id, |n| n.propose(data))
    }

    /// Ticks `id` `n` times, delivering after each tick.
    pub(crate) fn tick(&mut self, id: u64, n: usize) {
        for _ in 0..n {
            self.act(id, |node| node.tick());
        }
    }

    /// Ticks every node `n` times, delivering after each round.
    pub(crate) fn tick_all(&mut self, n: usize) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for _ in 0..n {
            for &id in &ids {
                self.raw(id).tick();
            }
            self.stabilize();
        }
    }

    /// Lets node `id` reach its election timeout (ticking only it).
    pub(crate) fn timeout(&mut self, id: u64) {
        let t = self.raft(id).randomized_election_timeout();
        self.tick(id, t);
    }

    /// Number of delivered messages of kind `t` to `to`.
    pub(crate) fn count(&self, t: MessageType, to: u64) -> usize {
        self.delivered.iter().filter(|m| m.msg_type() == t && m.to == to).count()
    }

    pub(crate) fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.raft.state == StateRole::Leader)
            .max_by_key(|(_, n)| n.raft.term)
            .map(|(&id, _)| id)
    }
}
