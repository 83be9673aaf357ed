//! A deterministic cluster simulator: one seed fully determines the schedule of ticks,
//! message deliveries (with drops, duplicates, reordering and delays), partitions, crashes,
//! restarts, proposals, reads, membership changes, leader transfers and compactions.
//! Invariants are checked after every step by [`checker::Checker`].

pub mod checker;

use bytes::Bytes;
use checker::Checker;
use oxetcd_raft::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
    Config, EntryType, MemStorage, Message, MessageType, RawNode, Ready, SnapshotMetadata,
    SnapshotStatus, StateRole, Storage,
};
use prost::Message as _;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Highest node id the simulator ever uses.
const MAX_ID: u64 = 7;
const ELECTION_TICK: usize = 10;

/// SplitMix64: the simulator's own PRNG, so that a seed means the same run forever.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`%.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() { None } else { Some(items[self.below(items.len() as u64) as usize]) }
    }
}

/// Per-run knobs, drawn from the seed.
struct Knobs {
    drop_pct: u64,
    dup_pct: u64,
    config: Config,
}

/// One simulated machine: the raft node (absent while crashed), its durable storage, and
/// its state machine (which only tracks what was applied).
struct SimNode {
    node: Option<RawNode<MemStorage>>,
    /// Durable storage while crashed (the live node owns it otherwise).
    disk: MemStorage,
    /// Readys whose messages went out but which are not persisted yet, oldest first.
    pending: VecDeque<Ready>,
    applied: u64,
    /// Membership as of `applied`.
    conf: ConfState,
    /// Commit index as of the last synced write: a commit-index-only hard state is written
    /// without fsync and may be lost in a crash.
    synced_commit: u64,
}

struct InFlight {
    msg: Message,
}

pub struct Sim {
    rng: Rng,
    knobs: Knobs,
    nodes: BTreeMap<u64, SimNode>,
    net: Vec<InFlight>,
    /// Directed links that currently drop everything.
    blocked: BTreeSet<(u64, u64)>,
    next_proposal: u64,
    next_read: u64,
    pub checker: Checker,
    pub trace: bool,
}

fn voters_of(cs: &ConfState) -> BTreeSet<u64> {
    cs.voters.iter().chain(&cs.voters_outgoing).copied().collect()
}

impl Sim {
    pub fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let n = 3 + rng.below(3); // 3..=5 initial voters
        let mut config = Config::new(1);
        config.election_tick = ELECTION_TICK;
        config.heartbeat_tick = 1 + rng.below(3) as usize;
        config.pre_vote = rng.chance(60);
        config.check_quorum = rng.chance(60);
        config.max_size_per_msg = [0, 64, 512, 1 << 20][rng.below(4) as usize];
        config.max_committed_size_per_ready = [0, 64, 1024][rng.below(3) as usize];
        config.max_inflight_msgs = 1 + rng.below(8) as usize;
        config.max_uncommitted_entries_size = [0, 0, 256][rng.below(3) as usize];
        config.disable_proposal_forwarding = rng.chance(10);
        config.seed = seed;
        let knobs = Knobs { drop_pct: rng.below(15), dup_pct: rng.below(10), config };
        let conf = ConfState { voters: (1..=n).collect(), ..Default::default() };
        let mut sim = Sim {
            rng,
            knobs,
            nodes: BTreeMap::new(),
            net: Vec::new(),
            blocked: BTreeSet::new(),
            next_proposal: 0,
            next_read: 0,
            checker: Checker::default(),
            trace: false,
        };
        for id in 1..=n {
            // Every initial member starts from the same bootstrap snapshot at index 1, so
            // that a node added later can be caught up by snapshot plus log.
            let mut disk = MemStorage::new();
            let snap = oxetcd_raft::Snapshot {
                data: Bytes::new(),
                metadata: Some(SnapshotMetadata {
                    conf_state: Some(conf.clone()),
                    index: 1,
                    term: 1,
                }),
            };
            disk.apply_snapshot(snap).expect("fresh storage");
            sim.add_machine(id, disk);
            sim.restart(id);
        }
        sim
    }

    fn add_machine(&mut self, id: u64, disk: MemStorage) {
        let conf = disk.snapshot().expect("mem").conf_state();
        self.nodes.insert(
            id,
            SimNode {
                node: None,
                applied: 0,
                disk,
                pending: VecDeque::new(),
                conf,
                synced_commit: 0,
            },
        );
    }

    fn log(&self, msg: impl FnOnce() -> String) {
        if self.trace {
            eprintln!("[{}] {}", self.checker.step, msg());
        }
    }

    // ---- machine lifecycle -----------------------------------------------------------------

    fn crash(&mut self, id: u64) {
        let n = self.nodes.get_mut(&id).expect("known node");
        if let Some(node) = n.node.take() {
            // Only what a Ready's second phase wrote survives, and maybe not its last
            // unsynced commit index.
            n.disk = node.store().clone();
            n.pending.clear();
            if self.rng.chance(50) {
                let mut hs = n.disk.hard_state();
                hs.commit = hs.commit.min(n.synced_commit);
                n.disk.set_hard_state(hs);
            }
            self.log(|| format!("crash {id}"));
        }
    }

    fn restart(&mut self, id: u64) {
        let n = self.nodes.get_mut(&id).expect("known node");
        if n.node.is_some() {
            return;
        }
        // The state machine restarts from the last snapshot and replays the log after it.
        let snap = n.disk.snapshot().expect("mem");
        n.disk.set_conf_state(snap.conf_state());
        n.applied = snap.index();
        n.conf = snap.conf_state();
        n.synced_commit = n.disk.hard_state().commit;
        let mut config = self.knobs.config.clone();
        config.id = id;
        config.applied = snap.index();
        n.node = Some(RawNode::new(&config, n.disk.clone()).expect("restart from disk"));
        self.checker.restarted(id, n.applied);
        self.log(|| format!("restart {id} at applied {}", snap.index()));
    }

    fn live_ids(&self) -> Vec<u64> {
        self.nodes.iter().filter(|(_, n)| n.node.is_some()).map(|(&id, _)| id).collect()
    }

    fn leader(&self) -> Option<u64> {
        // The leader of the highest term, if several nodes think they lead.
        self.nodes
            .iter()
            .filter_map(|(&id, n)| n.node.as_ref().map(|node| (id, node)))
            .filter(|(_, node)| node.raft().state() == StateRole::Leader)
            .max_by_key(|(_, node)| node.raft().term())
            .map(|(id, _)| id)
    }

    // ---- network ---------------------------------------------------------------------------

    fn send_all(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            self.net.push(InFlight { msg: m });
        }
    }

    /// Delivers the in-flight message at `i` (possibly dropping or duplicating it).
    fn deliver(&mut self, i: usize, lossy: bool) {
        let msg = if lossy && self.rng.chance(self.knobs.dup_pct) {
            self.net[i].msg.clone()
        } else {
            self.net.swap_remove(i).msg
        };
        let (from, to) = (msg.from, msg.to);
        let is_snap = msg.msg_type() == MessageType::MsgSnap;
        let dropped = (lossy && self.rng.chance(self.knobs.drop_pct))
            || self.blocked.contains(&(from, to))
            || self.nodes.get(&to).is_none_or(|n| n.node.is_none());
        if dropped {
            if let Some(sender) = self.nodes.get_mut(&from).and_then(|n| n.node.as_mut()) {
                if is_snap {
                    sender.report_snapshot(to, SnapshotStatus::Failure);
                } else if self.rng.chance(30) {
                    sender.report_unreachable(to);
                }
            }
            return;
        }
        self.log(|| format!("deliver {:?} {from}->{to} t{}", msg.msg_type(), msg.term));
        if msg.msg_type() == MessageType::MsgVoteResp && !msg.reject {
            self.checker.vote_granted(from, msg.term, to);
        }
        let node = self.nodes.get_mut(&to).and_then(|n| n.node.as_mut()).expect("checked live");
        // Errors only report refused messages (e.g. from unknown peers).
        let _ = node.step(msg);
        if is_snap && let Some(sender) = self.nodes.get_mut(&from).and_then(|n| n.node.as_mut()) {
            sender.report_snapshot(to, SnapshotStatus::Finish);
        }
    }

    // ---- Ready handling ----------------------------------------------------------------------

    /// First phase: take a Ready and send what may go out before persistence. With `stack`,
    /// a new Ready may be taken while earlier ones are still being persisted.
    fn ready_phase1(&mut self, id: u64, stack: bool) -> bool {
        let n = self.nodes.get_mut(&id).expect("known");
        let Some(node) = n.node.as_mut() else {
            return false;
        };
        if (!n.pending.is_empty() && !stack) || !node.has_ready() {
            return false;
        }
        let mut rd = node.ready();
        if let Some(ss) = rd.soft_state
            && self.trace
        {
            eprintln!(
                "[{}] {id} is now {:?} (lead {}) term {}",
                self.checker.step,
                ss.raft_state,
                ss.leader_id,
                node.raft().term()
            );
        }
        let msgs = std::mem::take(&mut rd.messages);
        n.pending.push_back(rd);
        self.send_all(msgs);
        true
    }

    /// Second phase: persist, send the rest, apply, advance.
    fn ready_phase2(&mut self, id: u64) -> bool {
        let n = self.nodes.get_mut(&id).expect("known");
        let (Some(node), Some(mut rd)) = (n.node.as_mut(), n.pending.pop_front()) else {
            return false;
        };
        let store = node.mut_store();
        if let Some(s) = &rd.snapshot {
            store.apply_snapshot(s.clone()).expect("incoming snapshot is newer");
        }
        store.append(&rd.entries);
        if let Some(hs) = rd.hard_state {
            store.set_hard_state(hs);
        }
        if rd.must_sync {
            n.synced_commit = store.hard_state().commit;
        }
        let msgs = std::mem::take(&mut rd.persisted_messages);
        if let Some(s) = &rd.snapshot {
            n.applied = s.index();
            n.conf = s.conf_state();
            self.checker.snapshot_applied(id, s.index());
        }
        for e in &rd.committed_entries {
            self.checker.apply(id, n.applied, e);
            n.applied = e.index;
            if e.entry_type() == EntryType::EntryNormal {
                continue;
            }
            let cc = if e.entry_type() == EntryType::EntryConfChange {
                ConfChange::decode(e.data.clone()).map(|c| c.into_v2())
            } else {
                ConfChangeV2::decode(e.data.clone())
            }
            .expect("conf change entries decode");
            let result = node.apply_conf_change(&cc).map_err(|e| e.to_string());
            if let Ok(cs) = &result {
                n.conf = cs.clone();
            }
            if self.trace {
                eprintln!(
                    "[{}] {id} applied conf change at {}: {result:?}",
                    self.checker.step, e.index
                );
            }
            self.checker.conf_applied(id, e.index, result);
        }
        for rs in &rd.read_states {
            if self.trace {
                eprintln!("[{}] {id} read answered {rs:?}", self.checker.step);
            }
            self.checker.read_answered(id, rs);
        }
        node.advance(rd);
        self.send_all(msgs);
        true
    }

    fn process_ready(&mut self, id: u64) {
        // Sometimes take another Ready while earlier ones are still being persisted: the node
        // keeps running meanwhile and must hand out each committed entry once.
        let stack = self.rng.chance(20);
        if !stack {
            self.ready_phase2(id);
        }
        if self.ready_phase1(id, stack) && self.rng.chance(70) {
            self.ready_phase2(id);
        }
    }

    // ---- client operations -------------------------------------------------------------------

    fn propose(&mut self, id: u64) {
        let Some(node) = self.nodes.get_mut(&id).and_then(|n| n.node.as_mut()) else {
            return;
        };
        self.next_proposal += 1;
        let data = Bytes::from(format!("p{}", self.next_proposal));
        let result = node.propose(data);
        self.log(|| format!("propose p{} at {id}: {result:?}", self.next_proposal));
    }

    fn read(&mut self, id: u64) {
        let Some(node) = self.nodes.get_mut(&id).and_then(|n| n.node.as_mut()) else {
            return;
        };
        self.next_read += 1;
        let ctx = Bytes::from(format!("r{}", self.next_read));
        if node.read_index(ctx.clone()).is_ok() {
            self.log(|| format!("read {ctx:?} at {id}"));
            self.checker.read_started(ctx);
        }
    }

    fn change_membership(&mut self) {
        let Some(lead) = self.leader() else {
            return;
        };
        let cs = self.nodes[&lead].conf.clone();
        let voters: Vec<u64> = cs.voters.clone();
        let learners: Vec<u64> = cs.learners.clone();
        let members: BTreeSet<u64> = voters_of(&cs).into_iter().chain(learners.clone()).collect();
        let outsiders: Vec<u64> = (1..=MAX_ID).filter(|id| !members.contains(id)).collect();
        use ConfChangeType::*;
        let joint = !cs.voters_outgoing.is_empty();
        let cc: ConfChangeV2 = if joint {
            // Explicit joint configurations must be left by hand.
            ConfChangeV2::default()
        } else {
            let mut changes = Vec::new();
            let kinds = self.rng.below(2) + 1;
            for _ in 0..kinds {
                let c = match self.rng.below(4) {
                    0 => self.rng.pick(&outsiders).map(|id| (ConfChangeAddNode, id)),
                    1 => self.rng.pick(&outsiders).map(|id| (ConfChangeAddLearnerNode, id)),
                    2 => self.rng.pick(&learners).map(|id| (ConfChangeAddNode, id)),
                    _ => self.rng.pick(&voters).map(|id| {
                        if self.rng.chance(50) {
                            (ConfChangeRemoveNode, id)
                        } else {
                            (ConfChangeAddLearnerNode, id)
                        }
                    }),
                };
                if let Some((t, id)) = c
                    && !changes.iter().any(|c: &ConfChangeSingle| c.node_id == id)
                {
                    changes.push(ConfChangeSingle::new(t, id));
                }
            }
            if changes.is_empty() {
                return;
            }
            let mut cc = ConfChangeV2 { changes, ..Default::default() };
            let transition = match self.rng.below(3) {
                0 => ConfChangeTransition::ConfChangeTransitionAuto,
                1 => ConfChangeTransition::ConfChangeTransitionJointImplicit,
                _ => ConfChangeTransition::ConfChangeTransitionJointExplicit,
            };
            cc.set_transition(transition);
            cc
        };
        // Machines for brand-new members start empty and learn everything from the leader.
        for c in &cc.changes {
            if !self.nodes.contains_key(&c.node_id) {
                self.add_machine(c.node_id, MemStorage::new());
                self.restart(c.node_id);
            }
        }
        self.log(|| format!("propose conf change {cc:?} via {lead}"));
        let node = self.nodes.get_mut(&lead).and_then(|n| n.node.as_mut()).expect("live");
        if cc.changes.len() == 1 && self.rng.chance(50) {
            // Exercise the legacy format too.
            let single = &cc.changes[0];
            let mut v1 = ConfChange { node_id: single.node_id, ..Default::default() };
            v1.change_type = single.change_type;
            let _ = node.propose_conf_change(&v1);
        } else {
            let _ = node.propose_conf_change(&cc);
        }
    }

    fn compact(&mut self, id: u64) {
        let n = self.nodes.get_mut(&id).expect("known");
        let Some(node) = n.node.as_mut() else {
            return;
        };
        let store = node.mut_store();
        let applied = n.applied;
        let snap_index = store.snapshot().expect("mem").index();
        let last = store.last_index().expect("mem");
        if applied <= snap_index || applied > last {
            return;
        }
        store
            .create_snapshot(applied, n.conf.clone(), Bytes::new())
            .expect("snapshot at applied index");
        store.compact(applied).expect("compact at applied index");
        self.log(|| format!("compact {id} at {applied}"));
    }

    // ---- schedule ----------------------------------------------------------------------------

    fn tick_all(&mut self) {
        for n in self.nodes.values_mut() {
            if let Some(node) = n.node.as_mut() {
                node.tick();
            }
        }
        self.checker.ticks += 1;
    }

    fn random_node(&mut self) -> u64 {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        self.rng.pick(&ids).expect("at least one node")
    }

    /// One chaotic step.
    fn chaos_step(&mut self) {
        let roll = self.rng.below(100);
        match roll {
            0..=34 => {
                if !self.net.is_empty() {
                    let i = self.rng.below(self.net.len() as u64) as usize;
                    self.deliver(i, true);
                }
            }
            35..=59 => {
                let id = self.random_node();
                self.process_ready(id);
            }
            60..=71 => self.tick_all(),
            72..=80 => {
                let id = self.random_node();
                self.propose(id);
            }
            81..=84 => {
                let id = self.random_node();
                self.read(id);
            }
            85..=87 => {
                let a = self.random_node();
                let b = self.random_node();
                match self.rng.below(4) {
                    0 => {
                        // Isolate `a` symmetrically.
                        for other in 1..=MAX_ID {
                            self.blocked.insert((a, other));
                            self.blocked.insert((other, a));
                        }
                    }
                    1 => {
                        self.blocked.insert((a, b));
                    }
                    _ => self.blocked.clear(),
                }
            }
            88..=89 => {
                let id = self.random_node();
                let crashed = self.nodes.values().filter(|n| n.node.is_none()).count();
                if self.nodes[&id].node.is_some() && crashed < 2 && self.rng.chance(50) {
                    self.crash(id);
                } else {
                    self.restart(id);
                }
            }
            90..=91 => self.change_membership(),
            92..=93 => {
                if let Some(lead) = self.leader() {
                    let target = self.random_node();
                    self.log(|| format!("transfer {lead} -> {target}"));
                    if let Some(node) = self.nodes.get_mut(&lead).and_then(|n| n.node.as_mut()) {
                        node.transfer_leader(target);
                    }
                }
            }
            94..=95 => {
                let id = self.random_node();
                self.compact(id);
            }
            _ => {
                // Deliver the oldest message: bounds how long a message can be delayed.
                if !self.net.is_empty() {
                    self.deliver(0, true);
                }
            }
        }
    }

    /// Delivers everything and processes every Ready until the cluster is quiet (bounded).
    fn settle(&mut self) {
        for _ in 0..200 {
            let mut progressed = false;
            for id in self.live_ids() {
                while self.ready_phase2(id) | self.ready_phase1(id, false) {
                    progressed = true;
                }
            }
            while !self.net.is_empty() {
                self.deliver(0, false);
                progressed = true;
            }
            self.check();
            if !progressed {
                return;
            }
        }
    }

    /// One line per machine, for failure reports.
    fn describe(&self) -> String {
        let mut out = String::new();
        for (id, n) in &self.nodes {
            let Some(node) = n.node.as_ref() else {
                out += &format!("  {id}: down\n");
                continue;
            };
            let st = node.status();
            out += &format!(
                "  {id}: {:?} term {} vote {} lead {} commit {} applied {} last {} conf {:?} \
                 transferee {:?} progress {:?}\n",
                st.state(),
                st.term(),
                st.vote(),
                st.lead(),
                st.commit(),
                n.applied,
                node.raft().raft_log().last_index(),
                n.conf,
                st.lead_transferee,
                st.progress
            );
        }
        out
    }

    fn check(&mut self) {
        let nodes: Vec<(u64, &RawNode<MemStorage>)> = self
            .nodes
            .iter()
            .filter_map(|(&id, n)| n.node.as_ref().map(|node| (id, node)))
            .collect();
        self.checker.check_step(&nodes);
    }

    /// The whole run: chaos, then healing, then a liveness check.
    pub fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            self.chaos_step();
            self.check();
        }
        self.heal_and_check_liveness();
    }

    fn heal_and_check_liveness(&mut self) {
        self.log(|| "heal".to_string());
        self.blocked.clear();
        for id in self.nodes.keys().copied().collect::<Vec<_>>() {
            self.restart(id);
        }
        let start = self.checker.ticks;
        let deadline = start + 40 * ELECTION_TICK as u64;
        // (leader, its term, index of the proposal made to it). A leader that lost and regained
        // leadership may have lost the proposal, so the term is part of the key.
        let mut proposed: Option<(u64, u64, u64)> = None;
        loop {
            self.settle();
            if let Some(lead) = self.leader() {
                let node = self.nodes[&lead].node.as_ref().expect("live leader");
                let term = node.raft().term();
                match proposed {
                    Some((l, t, index)) if (l, t) == (lead, term) => {
                        if self.nodes[&lead].applied >= index {
                            // A proposal made after healing committed and was applied.
                            self.checker.recovery_ticks = self.checker.ticks - start;
                            return;
                        }
                    }
                    _ => {
                        self.propose(lead);
                        let node = self.nodes[&lead].node.as_ref().expect("live leader");
                        let log = node.raft().raft_log();
                        let index = log.last_index().max(log.committed());
                        proposed = Some((lead, term, index));
                    }
                }
            }
            if self.checker.ticks >= deadline {
                panic!(
                    "liveness: no proposal committed within {} ticks after healing (leader \
                     {:?})\n{}",
                    deadline - start,
                    self.leader(),
                    self.describe()
                );
            }
            self.tick_all();
        }
    }
}
