//! Small helpers shared across modules.

use crate::types::Entry;

/// Truncates `entries` so that their total encoded size stays within `max_size`, always
/// keeping at least one entry so that progress is possible even with an oversized entry.
pub(crate) fn limit_size(entries: &mut Vec<Entry>, max_size: u64) {
    if entries.len() <= 1 {
        return;
    }
    let mut size = 0u64;
    let keep = entries
        .iter()
        .take_while(|e| {
            size = size.saturating_add(prost::Message::encoded_len(*e) as u64);
            size <= max_size
        })
        .count();
    entries.truncate(keep.max(1));
}

/// A tiny deterministic PRNG (SplitMix64). Raft only needs it to spread election timeouts;
/// seeding it makes every run reproducible.
#[derive(Clone, Debug)]
pub(crate) struct Prng(u64);

impl Prng {
    pub(crate) fn new(seed: u64) -> Self {
        Prng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough value in `[0, n)`; `n` must be positive.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        self.next_u64() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ents(sizes: &[usize]) -> Vec<Entry> {
        sizes.iter().map(|&s| Entry::normal(vec![0u8; s])).collect()
    }

    #[test]
    fn limit_size_keeps_prefix_within_budget_and_at_least_one() {
        // An entry with 10 bytes of data encodes to 12 bytes (tag and length prefix).
        let cases: &[(&[usize], u64, usize)] = &[
            (&[], 0, 0),
            (&[10], 0, 1),
            (&[10, 10, 10], 0, 1),
            (&[10, 10, 10], 24, 2),
            (&[10, 10, 10], 35, 2),
            (&[10, 10, 10], 36, 3),
            (&[10, 10, 10], u64::MAX, 3),
        ];
        for (sizes, max, want) in cases {
            let mut e = ents(sizes);
            limit_size(&mut e, *max);
            assert_eq!(e.len(), *want, "sizes {sizes:?} max {max}");
        }
    }

    #[test]
    fn prng_is_deterministic_and_bounded() {
        let mut a = Prng::new(7);
        let mut b = Prng::new(7);
        for _ in 0..100 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            assert!(x < 10);
        }
    }
}
