//! The request metadata every peer call carries: who sends it, to whom, in which
//! cluster. Ids are lowercase hexadecimal without a prefix, as etcd prints member and
//! cluster ids.

use tonic::Status;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};

/// The sender's cluster id.
pub const CLUSTER_ID_HEADER: &str = "x-oxetcd-cluster-id";
/// The sending member's id.
pub const FROM_HEADER: &str = "x-oxetcd-from";
/// The id of the member the call is meant for.
pub const TO_HEADER: &str = "x-oxetcd-to";

/// The ids carried by one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CallIds {
    pub cluster_id: u64,
    pub from: u64,
    pub to: u64,
}

impl CallIds {
    /// Writes the three headers into `md`.
    pub fn stamp(&self, md: &mut MetadataMap) {
        for (name, id) in
            [(CLUSTER_ID_HEADER, self.cluster_id), (FROM_HEADER, self.from), (TO_HEADER, self.to)]
        {
            md.insert(name, hex_value(id));
        }
    }

    /// Reads the three headers of an incoming call.
    pub fn parse(md: &MetadataMap) -> Result<CallIds, Status> {
        Ok(CallIds {
            cluster_id: parse_id(md, CLUSTER_ID_HEADER)?,
            from: parse_id(md, FROM_HEADER)?,
            to: parse_id(md, TO_HEADER)?,
        })
    }
}

fn hex_value(id: u64) -> AsciiMetadataValue {
    AsciiMetadataValue::try_from(format!("{id:x}")).expect("hex digits are valid ASCII metadata")
}

fn parse_id(md: &MetadataMap, name: &str) -> Result<u64, Status> {
    let value = md
        .get(name)
        .ok_or_else(|| Status::invalid_argument(format!("missing peer header {name}")))?;
    value
        .to_str()
        .ok()
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .ok_or_else(|| Status::invalid_argument(format!("malformed peer header {name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let ids = CallIds { cluster_id: 0xdead_beef, from: 1, to: u64::MAX };
        let mut md = MetadataMap::new();
        ids.stamp(&mut md);
        assert_eq!(md.get(FROM_HEADER).unwrap(), "1");
        assert_eq!(md.get(CLUSTER_ID_HEADER).unwrap(), "deadbeef");
        assert_eq!(CallIds::parse(&md).unwrap(), ids);
    }

    #[test]
    fn missing_or_malformed_is_invalid_argument() {
        let md = MetadataMap::new();
        assert_eq!(CallIds::parse(&md).unwrap_err().code(), tonic::Code::InvalidArgument);
        let mut md = MetadataMap::new();
        CallIds { cluster_id: 1, from: 2, to: 3 }.stamp(&mut md);
        md.insert(TO_HEADER, "not-hex".parse().unwrap());
        let err = CallIds::parse(&md).unwrap_err();
        assert!(err.message().contains(TO_HEADER), "{err:?}");
    }
}
