//! Records and their framing, as etcd lays them out on disk.
//!
//! A frame is an 8-byte little-endian length field, the protobuf-encoded [`Record`],
//! and zero padding to an 8-byte boundary. When there is padding, the top byte of the
//! length field is `0x80 | pad`. Every record's `crc` is the running CRC32C of every
//! record's `data` since the start of the log. Each segment begins with a `Crc` record
//! that carries the running value over from the previous segment.

use bytes::Bytes;
use prost::Message;

use oxetcd_raft::ConfState;

/// A record larger than this is corruption, not data: raft entries are bounded by the
/// server's request size limit (1.5 MiB by default) far below it.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// Sectors are the unit a disk writes atomically; a torn write leaves whole sectors
/// of zeros where data was meant to go.
const SECTOR_BYTES: usize = 512;

const LENGTH_FIELD_BYTES: usize = 8;

/// The kinds of record, with etcd's numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordType {
    Metadata = 1,
    Entry = 2,
    State = 3,
    Crc = 4,
    Snapshot = 5,
}

impl RecordType {
    pub(crate) fn from_i64(value: i64) -> Option<RecordType> {
        Some(match value {
            1 => RecordType::Metadata,
            2 => RecordType::Entry,
            3 => RecordType::State,
            4 => RecordType::Crc,
            5 => RecordType::Snapshot,
            _ => return None,
        })
    }
}

/// One record of the log.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Record {
    #[prost(int64, tag = "1")]
    pub record_type: i64,
    #[prost(uint32, tag = "2")]
    pub crc: u32,
    #[prost(bytes = "bytes", tag = "3")]
    pub data: Bytes,
}

/// The position of a raft snapshot in the log: entries up to `index` are in it.
#[derive(Clone, PartialEq, Message)]
pub struct WalSnapshot {
    #[prost(uint64, tag = "1")]
    pub index: u64,
    #[prost(uint64, tag = "2")]
    pub term: u64,
    #[prost(message, optional, tag = "3")]
    pub conf_state: Option<ConfState>,
}

impl WalSnapshot {
    /// The position of a log that has never been snapshotted.
    pub fn origin() -> WalSnapshot {
        WalSnapshot { index: 0, term: 0, conf_state: None }
    }
}

/// Appends records to a buffer, keeping the running CRC.
#[derive(Debug)]
pub(crate) struct Encoder {
    crc: u32,
}

impl Encoder {
    pub(crate) fn new(crc: u32) -> Encoder {
        Encoder { crc }
    }

    pub(crate) fn crc(&self) -> u32 {
        self.crc
    }

    /// Frames a record of `record_type` holding `data`.
    pub(crate) fn encode(&mut self, buf: &mut Vec<u8>, record_type: RecordType, data: Bytes) {
        let crc = if record_type == RecordType::Crc {
            // A Crc record carries the running value instead of hashing its own data.
            debug_assert!(data.is_empty());
            self.crc
        } else {
            self.crc = crc32c::crc32c_append(self.crc, &data);
            self.crc
        };
        let record = Record { record_type: record_type as i64, crc, data };
        let len = record.encoded_len();
        let pad = (8 - len % 8) % 8;
        let mut length_field = len as u64;
        if pad != 0 {
            length_field |= (0x80 | pad as u64) << 56;
        }
        buf.reserve(LENGTH_FIELD_BYTES + len + pad);
        buf.extend_from_slice(&length_field.to_le_bytes());
        record.encode(buf).expect("a Vec grows to fit");
        buf.resize(buf.len() + pad, 0);
    }
}

/// Why decoding stopped before the end of a segment's data.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DecodeStop {
    /// Zeros where the next length field would be: the end of what was written.
    End,
    /// The record at `offset` was being written when the process died: it runs past
    /// the end of the file or has a sector of zeros in it.
    Torn { offset: u64 },
    /// The record at `offset` is damaged and is not the last thing written.
    Corrupt { offset: u64, crc_mismatch: bool, detail: String },
}

/// Bytes the frame starting at `rest[0]` occupies, as far as `rest` tells: its length
/// field's claim, or just the length field while fewer bytes than that are at hand.
pub(crate) fn frame_bytes(rest: &[u8]) -> u64 {
    let Some(field) = rest.get(..LENGTH_FIELD_BYTES) else {
        return LENGTH_FIELD_BYTES as u64;
    };
    let length_field = u64::from_le_bytes(field.try_into().expect("eight bytes"));
    let len = length_field & !(0xff << 56);
    let pad = if length_field >> 63 == 1 { (length_field >> 56) & 0x7 } else { 0 };
    LENGTH_FIELD_BYTES as u64 + len + pad
}

/// Reads the frames of one segment, validating the running CRC.
pub(crate) struct Decoder<'a> {
    data: &'a [u8],
    offset: usize,
    crc: u32,
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(data: &'a [u8], crc: u32) -> Decoder<'a> {
        Decoder { data, offset: 0, crc }
    }

    /// The offset just past the last record returned.
    pub(crate) fn offset(&self) -> u64 {
        self.offset as u64
    }

    pub(crate) fn crc(&self) -> u32 {
        self.crc
    }

    /// The next record and its type, or why there is none.
    pub(crate) fn next(&mut self) -> Result<(RecordType, Record), DecodeStop> {
        let start = self.offset;
        let rest = &self.data[start..];
        if rest.len() < LENGTH_FIELD_BYTES {
            return Err(if rest.iter().all(|&b| b == 0) {
                DecodeStop::End
            } else {
                DecodeStop::Torn { offset: start as u64 }
            });
        }
        let length_field = u64::from_le_bytes(rest[..LENGTH_FIELD_BYTES].try_into().unwrap());
        if length_field == 0 {
            return Err(DecodeStop::End);
        }
        let len = (length_field & !(0xff << 56)) as usize;
        let pad = if length_field >> 63 == 1 { ((length_field >> 56) & 0x7) as usize } else { 0 };
        let frame = LENGTH_FIELD_BYTES + len + pad;
        let damaged = |detail: String, crc_mismatch: bool| {
            if self.is_torn(start, frame) {
                DecodeStop::Torn { offset: start as u64 }
            } else {
                DecodeStop::Corrupt { offset: start as u64, crc_mismatch, detail }
            }
        };
        if len > MAX_RECORD_BYTES {
            return Err(damaged(format!("record length {len} over the limit"), false));
        }
        if frame > rest.len() {
            return Err(DecodeStop::Torn { offset: start as u64 });
        }
        let body = &rest[LENGTH_FIELD_BYTES..LENGTH_FIELD_BYTES + len];
        let record = match Record::decode(body) {
            Ok(record) => record,
            Err(e) => return Err(damaged(format!("undecodable record: {e}"), false)),
        };
        let Some(record_type) = RecordType::from_i64(record.record_type) else {
            return Err(damaged(format!("unknown record type {}", record.record_type), false));
        };
        let crc = if record_type == RecordType::Crc {
            // The carried-over value must continue the chain (0 at the very start).
            if self.crc != 0 && record.crc != self.crc {
                return Err(damaged("crc record breaks the chain".into(), true));
            }
            record.crc
        } else {
            let crc = crc32c::crc32c_append(self.crc, &record.data);
            if crc != record.crc {
                return Err(damaged("record crc mismatch".into(), true));
            }
            crc
        };
        self.crc = crc;
        self.offset = start + frame;
        Ok((record_type, record))
    }

    /// A damaged frame is torn, not corrupt, when part of it was never written: an
    /// aligned sector it overlaps is all zeros, or so is everything after it.
    fn is_torn(&self, start: usize, frame: usize) -> bool {
        let end = (start + frame).min(self.data.len());
        let zero_sector = (start / SECTOR_BYTES * SECTOR_BYTES..end)
            .step_by(SECTOR_BYTES)
            .map(|s| &self.data[s..(s + SECTOR_BYTES).min(self.data.len())])
            .any(|sector| sector.iter().all(|&b| b == 0));
        zero_sector || self.data[end..].iter().all(|&b| b == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(records: &[(RecordType, &str)]) -> Vec<u8> {
        let mut enc = Encoder::new(0);
        let mut buf = Vec::new();
        for (t, d) in records {
            enc.encode(&mut buf, *t, Bytes::copy_from_slice(d.as_bytes()));
        }
        buf
    }

    #[test]
    fn frames_are_eight_byte_aligned_with_etcds_length_field() {
        let buf = frames(&[(RecordType::Entry, "abc")]);
        assert_eq!(buf.len() % 8, 0);
        let field = u64::from_le_bytes(buf[..8].try_into().unwrap());
        let len = field & !(0xff << 56);
        let pad = (field >> 56) & 0x7;
        assert_eq!(field >> 63, 1, "padded frames set the top bit");
        assert_eq!((8 + len + pad) as usize, buf.len());
    }

    #[test]
    fn round_trip_and_end_on_zeros() {
        let mut buf = frames(&[
            (RecordType::Crc, ""),
            (RecordType::Metadata, "m"),
            (RecordType::Entry, "e1"),
        ]);
        let used = buf.len();
        buf.resize(used + 4096, 0);
        let mut dec = Decoder::new(&buf, 0);
        let kinds: Vec<_> = std::iter::from_fn(|| dec.next().ok().map(|(t, _)| t)).collect();
        assert_eq!(kinds, [RecordType::Crc, RecordType::Metadata, RecordType::Entry]);
        assert_eq!(dec.offset() as usize, used);
        assert_eq!(dec.next().unwrap_err(), DecodeStop::End);
    }

    #[test]
    fn a_flipped_byte_followed_by_data_is_corruption() {
        let mut buf = frames(&[(RecordType::Entry, "first"), (RecordType::Entry, "second")]);
        buf[12] ^= 0x55;
        let err = Decoder::new(&buf, 0).next().unwrap_err();
        assert!(matches!(err, DecodeStop::Corrupt { offset: 0, .. }), "{err:?}");
    }

    #[test]
    fn a_cut_short_last_record_is_torn() {
        let buf = frames(&[(RecordType::Entry, "first"), (RecordType::Entry, "second record")]);
        let mut dec = Decoder::new(&buf[..buf.len() - 3], 0);
        let first_end = {
            dec.next().unwrap();
            dec.offset()
        };
        assert_eq!(dec.next().unwrap_err(), DecodeStop::Torn { offset: first_end });
    }

    #[test]
    fn a_zeroed_sector_inside_a_record_is_torn_even_with_data_after_it() {
        let big = "x".repeat(3 * SECTOR_BYTES);
        let mut buf = frames(&[(RecordType::Entry, &big), (RecordType::Entry, "after")]);
        buf[SECTOR_BYTES..2 * SECTOR_BYTES].fill(0);
        assert_eq!(Decoder::new(&buf, 0).next().unwrap_err(), DecodeStop::Torn { offset: 0 });
    }
}
