//! Quorum arithmetic: majorities and joint (two-majority) configurations.

mod joint;
mod majority;

pub use joint::JointConfig;
pub use majority::MajorityConfig;

/// Outcome of counting votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// Not decided yet: missing votes could still swing it.
    Pending,
    /// Lost: even with every missing vote it cannot win.
    Lost,
    /// Won by a quorum.
    Won,
}
