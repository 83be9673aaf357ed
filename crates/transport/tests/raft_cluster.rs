//! Three raft nodes talking through transports: election, replication, forwarding,
//! and a new election after the leader dies.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use oxetcd_raft::{
    ConfState, Config, EntryType, MemStorage, Message, RawNode, SnapshotStatus, StateRole,
};
use oxetcd_transport::{Dropped, RaftHandler, Transport};
use tokio::sync::mpsc;

const CLUSTER: u64 = 0x7;
const IDS: [u64; 3] = [1, 2, 3];

/// What the transport hands to a node's raft loop.
enum Input {
    Message(Box<Message>),
    Unreachable(u64),
}

/// The server side of the contract: everything goes through a bounded channel.
struct Inbox(mpsc::Sender<Input>);

impl RaftHandler for Inbox {
    fn process(&self, msg: Message) -> Result<(), Dropped> {
        self.0.try_send(Input::Message(Box::new(msg))).map_err(|_| Dropped)
    }
    fn is_removed(&self, _: u64) -> bool {
        false
    }
    fn report_unreachable(&self, id: u64) {
        let _ = self.0.try_send(Input::Unreachable(id));
    }
    fn report_snapshot(&self, _: u64, _: SnapshotStatus) {}
    fn receive_snapshot(&self, _: Message, _: PathBuf) {}
}

/// One member: a raft loop, its transport and its peer listener.
struct Member {
    id: u64,
    transport: Transport,
    server: Option<Server>,
    proposals: mpsc::Sender<Bytes>,
    applied: Arc<Mutex<Vec<Bytes>>>,
    /// The leader this member knows (0 for none) and whether it is the leader itself.
    leader: Arc<AtomicU64>,
    is_leader: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Member {
    fn applied(&self) -> Vec<Bytes> {
        self.applied.lock().unwrap().clone()
    }

    async fn kill(mut self) {
        self.task.abort();
        self.transport.stop();
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

async fn start_member(id: u64, listener: tokio::net::TcpListener, dir: &std::path::Path) -> Member {
    let (inputs, mut input_rx) = mpsc::channel(4096);
    let transport = Transport::new(test_config(CLUSTER, id, dir), Arc::new(Inbox(inputs)));
    let server = Server::start(&transport, listener);
    let (proposals, mut proposal_rx) = mpsc::channel::<Bytes>(16);
    let applied = Arc::new(Mutex::new(Vec::new()));
    let leader = Arc::new(AtomicU64::new(0));
    let is_leader = Arc::new(AtomicU64::new(0));

    let mut config = Config::new(id);
    config.seed = id;
    let storage =
        MemStorage::new_with_conf_state(ConfState { voters: IDS.to_vec(), ..Default::default() });
    let mut node = RawNode::new(&config, storage).unwrap();
    let (t, ap, ld, il) = (transport.clone(), applied.clone(), leader.clone(), is_leader.clone());
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(20));
        loop {
            tokio::select! {
                _ = ticker.tick() => node.tick(),
                Some(input) = input_rx.recv() => match input {
                    Input::Message(m) => { let _ = node.step(*m); }
                    Input::Unreachable(peer) => node.report_unreachable(peer),
                },
                Some(data) = proposal_rx.recv() => { let _ = node.propose(data); }
            }
            while node.has_ready() {
                let rd = node.ready();
                t.send(rd.messages.clone());
                if let Some(hs) = rd.hard_state {
                    node.mut_store().set_hard_state(hs);
                }
                node.mut_store().append(&rd.entries);
                t.send(rd.persisted_messages.clone());
                if let Some(ss) = &rd.soft_state {
                    ld.store(ss.leader_id, Ordering::SeqCst);
                    il.store(u64::from(ss.raft_state == StateRole::Leader), Ordering::SeqCst);
                }
                for e in &rd.committed_entries {
                    if e.entry_type == EntryType::EntryNormal as i32 && !e.data.is_empty() {
                        ap.lock().unwrap().push(e.data.clone());
                    }
                }
                node.advance(rd);
            }
        }
    });
    Member { id, transport, server: Some(server), proposals, applied, leader, is_leader, task }
}

async fn leader_among(members: &[&Member]) -> u64 {
    let mut leader = 0;
    wait_until("a leader", || {
        leader =
            members.iter().find(|m| m.is_leader.load(Ordering::SeqCst) == 1).map_or(0, |m| m.id);
        leader != 0 && members.iter().all(|m| m.leader.load(Ordering::SeqCst) == leader)
    })
    .await;
    leader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raft_cluster_elects_replicates_and_survives_its_leader() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let mut listeners = Vec::new();
    for _ in IDS {
        listeners.push(listener().await);
    }
    let urls: Vec<String> =
        listeners.iter().map(|l| format!("http://{}", l.local_addr().unwrap())).collect();
    let mut members = Vec::new();
    for (id, l) in IDS.into_iter().zip(listeners) {
        members.push(start_member(id, l, dir.path()).await);
    }
    for m in &members {
        for (peer, url) in IDS.into_iter().zip(&urls) {
            m.transport.add_peer(peer, vec![url.clone()]);
        }
    }

    let leader = leader_among(&members.iter().collect::<Vec<_>>()).await;
    // A follower's proposal is forwarded to the leader and committed everywhere.
    let follower = members.iter().find(|m| m.id != leader).unwrap();
    follower.proposals.send(Bytes::from_static(b"one")).await.unwrap();
    wait_until("'one' applied everywhere", || {
        members.iter().all(|m| m.applied() == [Bytes::from_static(b"one")])
    })
    .await;

    // The leader dies: the other two elect a new one and keep committing.
    let index = members.iter().position(|m| m.id == leader).unwrap();
    members.remove(index).kill().await;
    let survivors: Vec<&Member> = members.iter().collect();
    let new_leader = leader_among(&survivors).await;
    assert_ne!(new_leader, leader);
    for m in &members {
        m.proposals.send(Bytes::from(format!("from {}", m.id))).await.unwrap();
    }
    wait_until("both proposals applied on both survivors", || {
        members.iter().all(|m| m.applied().len() == 3)
    })
    .await;
    assert_eq!(members[0].applied(), members[1].applied());
    for m in members {
        m.kill().await;
    }
}
