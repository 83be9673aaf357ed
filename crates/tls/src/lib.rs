//! TLS for oxetcd's listeners and peer connections: etcd's `pkg/transport`.
//!
//! [`TlsInfo`] is what etcd's TLS flags say about one side (client or peer), [`TlsOptions`]
//! what applies to both. The rest of the crate turns them into rustls configurations,
//! generates auto-TLS certificates, and accepts connections.
//!
//! | module | job |
//! |---|---|
//! | `info` | [`TlsInfo`], [`TlsOptions`]: the flags |
//! | `server` | [`ServerTls`]: server config, handshake with a timeout, etcd's post-handshake checks (CRL, allowed CN/hostname, peer SANs), [`PeerIdentity`] |
//! | `connector` | [`Connector`]: dialing `http`/`https`/`unix`/`unixs` URLs for tonic (peers, the client, lease forwarding) |
//! | `client` | [`ClientTls`]: dialing members with the peer flags (auto-TLS skips server verification, as etcd) |
//! | `listener` | [`Listener`], [`Conn`], [`ConnInfo`]: TCP or unix sockets serving plaintext, TLS or both (first-byte sniffing) |
//! | `auto` | [`self_cert`]: the auto-TLS certificate in `<data-dir>/fixtures/{client,peer}` |
//! | `cipher` | `--cipher-suites` and `--tls-{min,max}-version` to rustls suites and versions |
//! | `reload` | certificate/key reload on change (stat per handshake), CRL reload |
//! | `verifier` | the client-certificate verifier: CA chain (or a trusted CA as the leaf), then the allowed CN or host name, in the handshake |
//! | `anchor` | a trusted CA certificate presented as the peer's own (Go accepts it; webpki does not) |
//! | `check` | X.509 name checks (Go's `VerifyHostname`, etcd's `checkCertSAN`, the gRPC proxy's `EmptyCN`) |
//! | `p521` | ECDSA P-521/SHA-512 signature verification (pure Rust), added to ring's algorithms |
//! | `pem` | reading PEM certificates, keys, CA bundles and CRLs |
//! | `error` | [`TlsError`] |
//!
//! Crypto is rustls with ring, always through `rustls::crypto::ring::default_provider()`
//! extended with ECDSA P-521/SHA-512 verification (RustCrypto's pure-Rust `p521`, as ring has
//! none) and passed explicitly; the process-wide default provider is never installed or used.
//! So certificates and handshake signatures made with P-521 keys (etcd 3.4's auto-TLS
//! certificates, P-521 CAs) verify, in every verifier of the crate, and rustls offers
//! `ecdsa_secp521r1_sha512`.
//!
//! Differences from etcd 3.4, all forced by rustls or deliberate: TLS 1.0/1.1, CBC, RC4,
//! 3DES and RSA key exchange are refused with an error naming rustls; auto-TLS keys are
//! P-256 and our certificate/key files cannot hold P-521 keys (ring cannot sign with P-521;
//! P-521 peers, certificates and CAs are verified, though); the system roots are not used, so
//! verifying needs a trusted CA file; the peer SAN check does forward DNS lookups only (no PTR).

#![warn(missing_docs)]

mod anchor;
mod auto;
mod check;
mod cipher;
mod client;
mod connector;
mod error;
mod info;
mod listener;
mod p521;
mod pem;
mod reload;
mod server;
mod socket;
mod verifier;

pub use auto::{AUTO_CERT_FILE, AUTO_KEY_FILE, self_cert};
pub use check::require_empty_common_name;
pub use cipher::cipher_suite;
pub use client::ClientTls;
pub use connector::{Connector, Stream};
pub use error::{TlsError, describe};
pub use info::{TlsInfo, TlsOptions};
pub use listener::{Conn, ConnInfo, ListenAddr, ListenScheme, Listener, MAX_PENDING_HANDSHAKES};
pub use server::{HANDSHAKE_TIMEOUT, PeerIdentity, ServerTls};
pub use socket::Socket;
