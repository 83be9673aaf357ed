//! Peer traffic dropped by direction, message by message, in builds with the
//! `failpoints` feature (tests and the robustness harness): a clean one-way partition
//! and a lossy network. Raft messages to or from the named peers vanish while every
//! connection stays up. Blackhole routes cannot cut one direction cleanly (TCP needs
//! both for any data to flow) and `tc netem` loss is missing from some kernels; etcd's
//! robustness suite drops peer traffic by direction in its own proxy, this is the same
//! cut inside the transport.
//!
//! - [`DROP_SEND`] (`rafthttp::drop-send`) is evaluated for each message this member
//!   sends and each snapshot transfer it starts: when it fires and names the
//!   destination, the message is dropped before it is queued.
//! - [`DROP_RECEIVE`] (`rafthttp::drop-receive`) is evaluated for each message that
//!   arrives and each incoming snapshot transfer: when it fires and names the sender,
//!   the message is discarded before raft sees it.
//!
//! The failpoint's `return` argument names the peers: member ids in hexadecimal (as etcd
//! prints them), comma-separated, e.g. `return(8e9e05c52164694d,91bc3c398fb3c146)`; a
//! `return` without argument names every peer. A probability drops that share of the
//! messages, each drawn on its own (`30%return`: random loss); a count counts every
//! evaluation, also for peers not named.
//!
//! A dropped message is neither reported to raft (a peer is not "unreachable") nor
//! counted in the transport's stats: a lossy network tells nobody either, and raft finds
//! out by the answers that do not come, then retransmits. A snapshot transfer in a cut
//! direction fails too, or the cut would leak a whole backend across it: the sender
//! fails it before dialing and reports the failure to raft as for a broken transfer
//! (raft sends a snapshot again later); the receiver refuses the call as `UNAVAILABLE`
//! before reading any of it.

/// Drops what this member sends to the named peers.
pub(crate) const DROP_SEND: &str = "rafthttp::drop-send";
/// Discards what this member receives from the named peers.
pub(crate) const DROP_RECEIVE: &str = "rafthttp::drop-receive";

/// Whether `failpoint` fires now for a message to or from `peer`: it fires, and its
/// argument names `peer` or names nobody in particular.
pub(crate) fn drops(failpoint: &str, peer: u64) -> bool {
    fail::eval(failpoint, |peers| peers.is_none_or(|peers| names(&peers, peer))).unwrap_or(false)
}

/// Whether the comma-separated hexadecimal ids `peers` include `peer`.
fn names(peers: &str, peer: u64) -> bool {
    peers.split(',').any(|id| u64::from_str_radix(id.trim(), 16) == Ok(peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_argument_names_peers_in_hexadecimal() {
        assert!(names("2a", 0x2a));
        assert!(names("8e9e05c52164694d, 91bc3c398fb3c146", 0x91bc_3c39_8fb3_c146));
        assert!(!names("2a,3b", 0x2b));
        assert!(!names("", 1));
        assert!(!names("not-an-id", 1));
    }

    #[test]
    fn only_a_firing_failpoint_naming_the_peer_drops() {
        // A name of this test's own: the transport's failpoints are process-wide, and
        // other tests of this binary send messages.
        let failpoint = "test::drops";
        assert!(!drops(failpoint, 1));
        fail::cfg(failpoint, "return(1,2)").unwrap();
        assert!(drops(failpoint, 1) && drops(failpoint, 2) && !drops(failpoint, 3));
        fail::cfg(failpoint, "return").unwrap();
        assert!(drops(failpoint, 3), "no argument names every peer");
        fail::cfg(failpoint, "off").unwrap();
        assert!(!drops(failpoint, 1));
        fail::remove(failpoint);
    }
}
