//! Raft consensus for oxetcd: a pure, deterministic state machine with etcd-raft semantics.
//!
//! There is no I/O, clock, thread or async runtime here. The application owns a
//! [`RawNode`] and drives it:
//!
//! * inputs: [`RawNode::tick`], [`RawNode::step`] (messages from peers),
//!   [`RawNode::propose`], [`RawNode::propose_conf_change`], [`RawNode::read_index`],
//!   [`RawNode::transfer_leader`], [`RawNode::report_unreachable`],
//!   [`RawNode::report_snapshot`];
//! * outputs: [`RawNode::ready`] returns a [`Ready`] (what to persist, send and apply); the
//!   application handles it and calls [`RawNode::advance`].
//!
//! See `docs/raft.md` for the contract the server must follow.

#![warn(missing_docs)]

mod confchange;
mod config;
mod errors;
mod log;
mod log_unstable;
pub mod progress;
pub mod quorum;
mod raft;
mod raw_node;
mod read_only;
mod status;
mod storage;
pub mod types;
mod util;

#[cfg(test)]
mod tests;

pub use config::{Config, ReadOnlyOption};
pub use errors::{DropReason, Error, Result};
pub use log::RaftLog;
pub use raft::{Raft, SoftState, StateRole};
pub use raw_node::{RawNode, Ready, SnapshotStatus};
pub use read_only::ReadState;
pub use status::Status;
pub use storage::{MemStorage, RaftState, Storage};
pub use types::{
    ConfChange, ConfChangeI, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2,
    ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot, SnapshotMetadata,
};
