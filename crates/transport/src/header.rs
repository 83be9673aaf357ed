//! The request metadata every peer call carries: who sends it, to whom, in which
//! cluster, and where the sender can be reached. Ids are lowercase hexadecimal without
//! a prefix, as etcd prints member and cluster ids.

use tonic::Status;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};

/// The sender's cluster id.
pub const CLUSTER_ID_HEADER: &str = "x-oxetcd-cluster-id";
/// The sending member's id.
pub const FROM_HEADER: &str = "x-oxetcd-from";
/// The id of the member the call is meant for.
pub const TO_HEADER: &str = "x-oxetcd-to";
/// The sender's advertised peer URLs, comma-separated (etcd's `X-PeerURLs`): a member
/// that does not know the sender yet (it is joining, or has not applied the sender's
/// addition yet) dials it back there.
pub const PEER_URLS_HEADER: &str = "x-oxetcd-peer-urls";

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

/// Writes the sender's peer URLs into `md`; nothing when there are none or they are not
/// ASCII (the receiver then cannot dial back before it learns the URLs from the log).
pub(crate) fn stamp_peer_urls(md: &mut MetadataMap, urls: &[String]) {
    let joined = urls.join(",");
    if joined.is_empty() || !joined.is_ascii() {
        return;
    }
    if let Ok(value) = AsciiMetadataValue::try_from(joined) {
        md.insert(PEER_URLS_HEADER, value);
    }
}

/// The sender's peer URLs, if the call carries them.
pub(crate) fn peer_urls(md: &MetadataMap) -> Vec<String> {
    let Some(value) = md.get(PEER_URLS_HEADER).and_then(|v| v.to_str().ok()) else {
        return Vec::new();
    };
    value.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect()
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
    fn peer_urls_round_trip() {
        let mut md = MetadataMap::new();
        stamp_peer_urls(&mut md, &[]);
        assert!(md.get(PEER_URLS_HEADER).is_none());
        assert!(peer_urls(&md).is_empty());
        let urls = vec!["http://127.0.0.1:2380".to_owned(), "https://[::1]:2380".to_owned()];
        stamp_peer_urls(&mut md, &urls);
        assert_eq!(peer_urls(&md), urls);
        let mut md = MetadataMap::new();
        stamp_peer_urls(&mut md, &["http://héllo:1".to_owned()]);
        assert!(md.get(PEER_URLS_HEADER).is_none(), "non-ASCII URLs are not sent");
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
