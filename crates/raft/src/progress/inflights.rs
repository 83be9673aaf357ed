use std::collections::VecDeque;

/// The sliding window of append messages sent to a follower but not yet acknowledged, each
/// identified by the last index it carried. When the window is full the leader stops sending
/// until acknowledgements free slots (flow control per `max_inflight_msgs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inflights {
    indexes: VecDeque<u64>,
    cap: usize,
}

impl Inflights {
    /// An empty window of size `cap`.
    pub fn new(cap: usize) -> Self {
        debug_assert!(cap > 0);
        Inflights { indexes: VecDeque::new(), cap }
    }

    /// Records a message whose last entry is `index`; indexes must increase.
    pub fn add(&mut self, index: u64) {
        assert!(!self.full(), "cannot add into a full inflights window");
        debug_assert!(self.indexes.back().is_none_or(|&b| b < index));
        self.indexes.push_back(index);
    }

    /// Frees every message whose last index is `<= to`.
    pub fn free_le(&mut self, to: u64) {
        while self.indexes.front().is_some_and(|&i| i <= to) {
            self.indexes.pop_front();
        }
    }

    /// Frees the oldest message (used when a heartbeat response shows the follower alive
    /// but the window is full, so that at least one message can be resent).
    pub fn free_first_one(&mut self) {
        self.indexes.pop_front();
    }

    /// Whether no more messages may be sent.
    pub fn full(&self) -> bool {
        self.indexes.len() >= self.cap
    }

    /// Number of messages in flight.
    pub fn count(&self) -> usize {
        self.indexes.len()
    }

    /// Forgets every in-flight message.
    pub fn reset(&mut self) {
        self.indexes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_fills_and_frees() {
        let mut w = Inflights::new(3);
        for i in [5, 7, 9] {
            w.add(i);
        }
        assert!(w.full());
        w.free_le(6);
        assert_eq!(w.count(), 2);
        assert!(!w.full());
        w.free_le(100);
        assert_eq!(w.count(), 0);
        w.add(10);
        w.add(11);
        w.free_first_one();
        assert_eq!(w.count(), 1);
        w.reset();
        assert_eq!(w.count(), 0);
    }

    #[test]
    #[should_panic(expected = "full")]
    fn adding_to_a_full_window_is_a_bug() {
        let mut w = Inflights::new(1);
        w.add(1);
        w.add(2);
    }
}
