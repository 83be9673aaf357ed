//! Error types.

use std::fmt;

/// Why a proposal was not accepted into the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// No leader is known, so there is nobody to forward to.
    NoLeader,
    /// The leader is handing leadership over to another node.
    LeaderTransferInProgress,
    /// This node is not a member of the configuration anymore.
    NotInConfiguration,
    /// The leader's uncommitted tail already exceeds `max_uncommitted_entries_size`.
    UncommittedSizeExceeded,
    /// Followers were configured not to forward proposals.
    ForwardingDisabled,
    /// The node is campaigning; proposals are only accepted by a leader or a follower.
    Campaigning,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReason::NoLeader => "no leader",
            DropReason::LeaderTransferInProgress => "leadership transfer in progress",
            DropReason::NotInConfiguration => "node is not in the configuration",
            DropReason::UncommittedSizeExceeded => "too many uncommitted entries",
            DropReason::ForwardingDisabled => "proposal forwarding is disabled",
            DropReason::Campaigning => "election in progress",
        })
    }
}

/// Errors returned by the raft state machine and by [`crate::Storage`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The proposal was dropped; the caller may retry later.
    #[error("raft proposal dropped: {0}")]
    ProposalDropped(DropReason),
    /// A local-only message kind was passed to a method meant for network messages.
    #[error("raft: cannot step raft local message")]
    StepLocalMsg,
    /// A response came from a node that is not tracked.
    #[error("raft: cannot step as peer not found")]
    StepPeerNotFound,
    /// The configuration is invalid.
    #[error("raft: invalid config: {0}")]
    InvalidConfig(&'static str),
    /// A configuration change cannot be applied to the current configuration.
    #[error("raft: invalid configuration change: {0}")]
    InvalidConfChange(String),
    /// Storage: the requested index was compacted away.
    #[error("requested index is unavailable due to compaction")]
    Compacted,
    /// Storage: the requested index is beyond the last entry.
    #[error("requested entry at index is unavailable")]
    Unavailable,
    /// Storage: the snapshot is older than the one already held.
    #[error("requested index is older than the existing snapshot")]
    SnapOutOfDate,
    /// Storage: a snapshot cannot be produced right now; the leader retries later.
    #[error("snapshot is temporarily unavailable")]
    SnapshotTemporarilyUnavailable,
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
