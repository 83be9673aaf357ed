//! etcd's checks on a verified client certificate, after the handshake: the allowed CN, the
//! allowed hostname, and on peer listeners that the certificate's SANs cover the address the
//! peer connects from.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use x509_parser::extensions::GeneralName;

use crate::error::TlsError;

/// How long the forward lookups of a peer certificate's DNS SANs may take in all. etcd bounds
/// them by the handshake's context only; ours share the handshake timeout's budget but must
/// not eat all of it.
const SAN_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// The fields of a client certificate the checks read.
#[derive(Debug, Clone, Default)]
pub(crate) struct CertNames {
    pub common_name: Option<String>,
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl CertNames {
    /// Reads the leaf's subject CN and SANs; an unparsable certificate has none (rustls has
    /// verified it already, so this does not happen in practice).
    pub(crate) fn of(der: &[u8]) -> CertNames {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return CertNames::default();
        };
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let mut names = CertNames { common_name, ..CertNames::default() };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => names.dns.push((*d).to_owned()),
                    GeneralName::IPAddress(b) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                            names.ips.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                            names.ips.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        names
    }

    /// Go's `Certificate.VerifyHostname`: an IP must equal an IP SAN; a name must match a DNS
    /// SAN (case-insensitively, a leading `*.` matching exactly one label). The CN is not
    /// consulted, as in Go since 1.15.
    pub(crate) fn valid_for(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.ips.contains(&ip);
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.dns.iter().any(|pattern| {
            let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
            match pattern.strip_prefix("*.") {
                Some(suffix) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
                None => pattern == host,
            }
        })
    }
}

/// etcd's `EmptyCN` check (`TLSInfo.ClientConfig` with `EmptyCN`, which the gRPC proxy sets
/// for its `--cert`): the first certificate of `cert_file` must have no subject CN. etcd's
/// reason: a member with CN-based auth would take a proxy certificate's CN as the user of
/// every request the proxy forwards, whoever sent it.
pub fn require_empty_common_name(cert_file: &Path) -> Result<(), TlsError> {
    let certs = crate::pem::certs(cert_file)?;
    match certs.first().and_then(|leaf| CertNames::of(leaf).common_name) {
        Some(cn) if !cn.is_empty() => Err(TlsError::NonEmptyCommonName(cn)),
        _ => Ok(()),
    }
}

/// etcd's peer check (`checkCertSAN`): a certificate with SANs must name the remote address,
/// by an IP SAN or by a DNS SAN that resolves to it. A certificate without SANs passes.
///
/// etcd also tries a reverse (PTR) lookup of the address; the standard library has no
/// resolver for it, so only forward lookups of the DNS SANs are made here (a wildcard SAN
/// can therefore never match).
pub(crate) async fn check_san(names: &CertNames, remote: IpAddr) -> Result<(), TlsError> {
    if names.ips.is_empty() && names.dns.is_empty() {
        return Ok(());
    }
    let host = remote.to_string();
    if !names.ips.is_empty() {
        if names.valid_for(&host) {
            return Ok(());
        }
        if names.dns.is_empty() {
            let valid: Vec<String> = names.ips.iter().map(IpAddr::to_string).collect();
            return Err(TlsError::SanMismatch(format!(
                "x509: certificate is valid for {}, not {host}",
                valid.join(", ")
            )));
        }
    }
    let lookups = async {
        let mut last_error = None;
        for name in names.dns.iter().filter(|n| !n.starts_with("*.")) {
            match tokio::net::lookup_host((name.as_str(), 0)).await {
                Ok(mut addrs) => {
                    if addrs.any(|a| a.ip() == remote) {
                        return Ok(());
                    }
                }
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        Err(last_error)
    };
    let detail = match tokio::time::timeout(SAN_LOOKUP_TIMEOUT, lookups).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(None)) => String::new(),
        Ok(Err(Some(e))) => format!(" ({e})"),
        Err(_) => format!(" (lookups timed out after {SAN_LOOKUP_TIMEOUT:?})"),
    };
    Err(TlsError::SanMismatch(format!(
        "tls: {host:?} does not match any of DNSNames {:?}{detail}",
        names.dns
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_matching_follows_go() {
        let n = CertNames {
            common_name: None,
            dns: vec!["*.example.com".into(), "localhost".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
        };
        assert!(n.valid_for("127.0.0.1"));
        assert!(!n.valid_for("127.0.0.2"));
        assert!(n.valid_for("LocalHost"));
        assert!(n.valid_for("a.example.com"));
        assert!(!n.valid_for("a.b.example.com"));
        assert!(!n.valid_for("example.com"));
    }
}
