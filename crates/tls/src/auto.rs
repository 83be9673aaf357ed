//! Auto-TLS (`--auto-tls`, `--peer-auto-tls`): a self-signed certificate generated once into
//! the data dir and reused on every later start, as etcd's `SelfCert` does.
//!
//! etcd writes `cert.pem` and `key.pem` under `<data-dir>/fixtures/client` or
//! `<data-dir>/fixtures/peer`; when both files exist it uses them as they are. The
//! certificate names the listen URLs' hosts (IP SANs for addresses, DNS SANs for names), has
//! the organization "etcd", and is valid for `--self-signed-cert-validity` years. etcd uses a
//! P-521 key; ring cannot sign with P-521, so ours is ECDSA P-256. Besides server auth it
//! allows client auth, because a peer presents the same certificate when it dials.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::error::TlsError;

/// The certificate file etcd's `SelfCert` writes.
pub const AUTO_CERT_FILE: &str = "cert.pem";
/// The key file etcd's `SelfCert` writes.
pub const AUTO_KEY_FILE: &str = "key.pem";

/// Returns `dir/cert.pem` and `dir/key.pem`, generating them first unless both exist.
///
/// `hosts` are the listen URLs' hosts, with or without a port (`127.0.0.1:2380`,
/// `[::1]:2380`, `example.com`).
pub fn self_cert(
    dir: &Path,
    hosts: &[String],
    validity_years: u32,
) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = dir.join(AUTO_CERT_FILE);
    let key_path = dir.join(AUTO_KEY_FILE);
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let fail = |reason: String| TlsError::AutoTls { dir: dir.to_owned(), reason };
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create cert directory: {e}")))?;

    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "etcd");
    params.distinguished_name = dn;
    for host in hosts {
        let san = match host_of(host) {
            None => continue,
            Some(HostPart::Ip(ip)) => SanType::IpAddress(ip),
            Some(HostPart::Name(name)) => {
                SanType::DnsName(name.try_into().map_err(|e| fail(format!("host {host:?}: {e}")))?)
            }
        };
        if !params.subject_alt_names.contains(&san) {
            params.subject_alt_names.push(san);
        }
    }
    let (y, m, d) = today();
    params.not_before = rcgen::date_time_ymd(y, m, d);
    // A certificate made on 29 February ends on the 28th.
    let end_day = if m == 2 && d == 29 { 28 } else { d };
    params.not_after = rcgen::date_time_ymd(y + validity_years.max(1) as i32, m, end_day);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| fail(format!("cannot generate ECDSA key: {e}")))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| fail(format!("cannot generate x509 certificate: {e}")))?;

    // Both files are staged and renamed into place, the certificate last: a crash leaves
    // either no pair (regenerated next time) or a whole one.
    write_file(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_file(&cert_path, cert.pem().as_bytes(), false)?;
    tracing::info!(path = %cert_path.display(), "created cert file");
    tracing::info!(path = %key_path.display(), "created key file");
    Ok((cert_path, key_path))
}

enum HostPart {
    Ip(IpAddr),
    Name(String),
}

/// The host of `host[:port]` (IPv6 in brackets when a port follows); None when empty.
fn host_of(host: &str) -> Option<HostPart> {
    if let Ok(sa) = host.parse::<SocketAddr>() {
        return Some(HostPart::Ip(sa.ip()));
    }
    let bare = match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let bare = bare.trim_start_matches('[').trim_end_matches(']');
    if bare.is_empty() {
        return None;
    }
    Some(match bare.parse::<IpAddr>() {
        Ok(ip) => HostPart::Ip(ip),
        Err(_) => HostPart::Name(bare.to_owned()),
    })
}

/// Today's UTC date (civil calendar from days since the epoch; Howard Hinnant's algorithm).
fn today() -> (i32, u8, u8) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), TlsError> {
    let io = |source| TlsError::Io { path: path.to_owned(), source };
    let tmp = path.with_extension("pem.tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(&tmp).map_err(io)?;
    f.write_all(contents).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_become_sans() {
        assert!(matches!(host_of("127.0.0.1:2380"), Some(HostPart::Ip(_))));
        assert!(matches!(host_of("[::1]:2380"), Some(HostPart::Ip(_))));
        assert!(matches!(host_of("::1"), Some(HostPart::Ip(_))));
        assert!(matches!(host_of("localhost:2379"), Some(HostPart::Name(n)) if n == "localhost"));
        assert!(matches!(host_of("example.com"), Some(HostPart::Name(n)) if n == "example.com"));
        assert!(host_of(":2379").is_none());
    }

    #[test]
    fn today_is_plausible() {
        let (y, m, d) = today();
        assert!(y >= 2024 && (1..=12).contains(&m) && (1..=31).contains(&d));
    }
}
