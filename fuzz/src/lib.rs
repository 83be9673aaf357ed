//! What several fuzz targets share: cutting an input into tagged pieces (and making
//! them, for seeds), decoding a raft entry's payload as the server does, and the
//! generator of the structured targets' seeds ([`seeds`]).

use bytes::Bytes;
use oxetcd_etcdserver::etcd_encoding::{decode_conf_change, decode_request};

/// Cuts `data` into pieces of `[tag: u8][length: u16 LE][length bytes]`, the form the
/// structured targets read (their seeds are written in it); a short last piece is
/// cut to what remains.
pub fn tagged_pieces(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&tag, rest) = data.split_first()?;
        let (len, rest) = match rest {
            [lo, hi, rest @ ..] => (usize::from(u16::from_le_bytes([*lo, *hi])), rest),
            _ => (0, &[][..]),
        };
        let (piece, rest) = rest.split_at(len.min(rest.len()));
        data = rest;
        Some((tag, piece))
    })
}

/// Decodes an entry's data as the apply thread does for its type (raft's `EntryType`):
/// a conf change, or a request.
pub fn decode_entry_payload(entry_type: i32, data: Bytes) {
    match entry_type {
        1 => drop(decode_conf_change(data)),
        _ => drop(decode_request(data)),
    }
}

/// Encodes `pieces` in the form [`tagged_pieces`] cuts (each piece at most 64 KiB).
pub fn tagged(pieces: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, piece) in pieces {
        let len = u16::try_from(piece.len()).expect("a piece fits a u16 length");
        out.push(*tag);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(piece);
    }
    out
}

pub mod seeds;
