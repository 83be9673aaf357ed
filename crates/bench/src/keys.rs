//! Keys and values for the writing workloads.

use bytes::Bytes;

use crate::args::KeyValueArgs;
use crate::error::BenchError;

/// splitmix64: a tiny, fast generator; the bench needs spread, not security.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` for n far below 2^64.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Fixed-size, printable keys numbered `key_offset..key_offset + key_space_size` (the
/// number in decimal, zero padded: key 42 of size 8 is `00000042`), and one shared value.
#[derive(Debug, Clone)]
pub struct KeyValues {
    key_size: usize,
    space: u64,
    offset: u64,
    value: Bytes,
}

impl KeyValues {
    pub fn new(args: &KeyValueArgs) -> Result<Self, BenchError> {
        let key_size = args.key_size as usize;
        let last = args.key_offset.checked_add(args.key_space_size);
        let fits = last.is_some_and(|last| {
            10u64.checked_pow(args.key_size as u32).is_none_or(|room| last <= room)
        });
        if !fits {
            return Err(BenchError::Usage(format!(
                "--key-offset {} + --key-space-size {} does not fit in --key-size {}",
                args.key_offset, args.key_space_size, args.key_size
            )));
        }
        let mut rng = Rng::new(args.val_size);
        let value: Vec<u8> = (0..args.val_size).map(|_| b'a' + rng.below(26) as u8).collect();
        Ok(Self {
            key_size,
            space: args.key_space_size,
            offset: args.key_offset,
            value: value.into(),
        })
    }

    pub fn space(&self) -> u64 {
        self.space
    }

    /// Key number `key_offset + n % key_space_size`.
    pub fn key(&self, n: u64) -> Bytes {
        format!("{:0width$}", self.offset + n % self.space, width = self.key_size)
            .into_bytes()
            .into()
    }

    pub fn value(&self) -> Bytes {
        self.value.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(key_size: u64, val_size: u64, key_space_size: u64) -> KeyValueArgs {
        KeyValueArgs { key_size, val_size, key_space_size, key_offset: 0 }
    }

    #[test]
    fn keys_have_the_size_and_wrap_in_the_space() {
        let kv = KeyValues::new(&args(8, 256, 1000)).unwrap();
        assert_eq!(kv.key(1).len(), 8);
        assert_eq!(kv.key(1), kv.key(1001));
        assert_ne!(kv.key(1), kv.key(2));
        assert_eq!(kv.value().len(), 256);
        let long = KeyValues::new(&args(32, 0, 5)).unwrap();
        assert_eq!(long.key(3).len(), 32);
        assert_eq!(long.key(3)[31], b'3');
        assert_eq!(&KeyValues::new(&args(3, 0, 1)).unwrap().key(0)[..], b"000");
    }

    #[test]
    fn key_space_must_fit_the_key_size() {
        assert!(KeyValues::new(&args(1, 8, 10)).is_ok());
        assert!(KeyValues::new(&args(1, 8, 11)).is_err());
        assert!(KeyValues::new(&args(20, 8, u64::MAX)).is_ok());
        assert!(KeyValues::new(&args(8, 8, 100_000_000)).is_ok());
        assert!(KeyValues::new(&args(8, 8, 100_000_001)).is_err());
    }

    #[test]
    fn key_offset_shifts_the_numbers() {
        let kv = KeyValues::new(&KeyValueArgs { key_offset: 1000, ..args(8, 8, 10) }).unwrap();
        assert_eq!(&kv.key(0)[..], b"00001000");
        assert_eq!(&kv.key(9)[..], b"00001009");
        assert_eq!(kv.key(10), kv.key(0));
        assert!(KeyValues::new(&KeyValueArgs { key_offset: 90, ..args(2, 8, 10) }).is_ok());
        assert!(KeyValues::new(&KeyValueArgs { key_offset: 91, ..args(2, 8, 10) }).is_err());
        assert!(KeyValues::new(&KeyValueArgs { key_offset: u64::MAX, ..args(20, 8, 2) }).is_err());
    }

    #[test]
    fn rng_stays_below_its_bound() {
        let mut rng = Rng::new(7);
        assert!((0..1000).all(|_| rng.below(10) < 10));
    }
}
