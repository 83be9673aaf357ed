//! Configuration of a raft node.

use crate::errors::{Error, Result};

/// How linearizable reads are confirmed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadOnlyOption {
    /// Confirm leadership with a heartbeat round to a quorum (always safe).
    #[default]
    Safe,
    /// Trust the leader lease (requires `check_quorum`; unsafe under unbounded clock drift).
    LeaseBased,
}

/// Parameters of a raft node. Build with [`Config::new`] and adjust fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's id; must not be 0.
    pub id: u64,
    /// Ticks without hearing from a leader before a follower campaigns. The actual timeout is
    /// randomized in `[election_tick, 2 * election_tick)`.
    pub election_tick: usize,
    /// Ticks between leader heartbeats; must be smaller than `election_tick`.
    pub heartbeat_tick: usize,
    /// Last applied index when restarting (entries up to it are not returned again).
    pub applied: u64,
    /// Maximum encoded entry bytes per append message (0: one entry per message).
    pub max_size_per_msg: u64,
    /// Maximum encoded bytes of committed entries per Ready (0: `max_size_per_msg`).
    pub max_committed_size_per_ready: u64,
    /// Maximum payload bytes of the leader's uncommitted tail (0: unlimited).
    pub max_uncommitted_entries_size: u64,
    /// Maximum number of in-flight append messages per follower in replicate state.
    pub max_inflight_msgs: usize,
    /// Leader steps down when it has not heard from a quorum for an election timeout; also
    /// enables the leader lease that ignores disruptive vote requests.
    pub check_quorum: bool,
    /// Run a pre-vote phase so that partitioned nodes do not inflate terms.
    pub pre_vote: bool,
    /// How read-index requests are confirmed.
    pub read_only_option: ReadOnlyOption,
    /// Followers drop proposals instead of forwarding them to the leader.
    pub disable_proposal_forwarding: bool,
    /// Seed for the election-timeout PRNG (mixed with `id`).
    pub seed: u64,
}

impl Config {
    /// Defaults in the spirit of etcd: election 10 ticks, heartbeat 1 tick, 1 MiB messages,
    /// 256 in-flight appends, pre-vote and check-quorum on.
    pub fn new(id: u64) -> Self {
        Config {
            id,
            election_tick: 10,
            heartbeat_tick: 1,
            applied: 0,
            max_size_per_msg: 1024 * 1024,
            max_committed_size_per_ready: 0,
            max_uncommitted_entries_size: 0,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            read_only_option: ReadOnlyOption::Safe,
            disable_proposal_forwarding: false,
            seed: 0,
        }
    }

    /// Checks the configuration for contradictions.
    pub fn validate(&self) -> Result<()> {
        if self.id == 0 {
            return Err(Error::InvalidConfig("cannot use 0 as id"));
        }
        if self.heartbeat_tick == 0 {
            return Err(Error::InvalidConfig("heartbeat tick must be greater than 0"));
        }
        if self.election_tick <= self.heartbeat_tick {
            return Err(Error::InvalidConfig("election tick must be greater than heartbeat tick"));
        }
        if self.max_inflight_msgs == 0 {
            return Err(Error::InvalidConfig("max inflight messages must be greater than 0"));
        }
        if self.read_only_option == ReadOnlyOption::LeaseBased && !self.check_quorum {
            return Err(Error::InvalidConfig(
                "check_quorum must be enabled when read_only_option is LeaseBased",
            ));
        }
        Ok(())
    }

    pub(crate) fn uncommitted_limit(&self) -> u64 {
        if self.max_uncommitted_entries_size == 0 {
            u64::MAX
        } else {
            self.max_uncommitted_entries_size
        }
    }

    pub(crate) fn committed_per_ready_limit(&self) -> u64 {
        if self.max_committed_size_per_ready == 0 {
            self.max_size_per_msg
        } else {
            self.max_committed_size_per_ready
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_contradictions() {
        let ok = Config::new(1);
        assert_eq!(ok.validate(), Ok(()));
        type Mutation = Box<dyn Fn(&mut Config)>;
        let cases: Vec<Mutation> = vec![
            Box::new(|c| c.id = 0),
            Box::new(|c| c.heartbeat_tick = 0),
            Box::new(|c| c.election_tick = c.heartbeat_tick),
            Box::new(|c| c.max_inflight_msgs = 0),
            Box::new(|c| {
                c.read_only_option = ReadOnlyOption::LeaseBased;
                c.check_quorum = false;
            }),
        ];
        for (i, mutate) in cases.iter().enumerate() {
            let mut c = Config::new(1);
            mutate(&mut c);
            assert!(matches!(c.validate(), Err(Error::InvalidConfig(_))), "case {i}");
        }
    }
}
