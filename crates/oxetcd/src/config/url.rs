//! The URLs of etcd's URL flags: `http`, `https`, `unix` and `unixs`, as etcd's
//! `types.NewURLs` accepts them, and the checks etcd applies to URLs it binds or advertises.

use std::net::{IpAddr, ToSocketAddrs};
use std::path::PathBuf;

use oxetcd_tls::{ListenAddr, ListenScheme};

use super::ConfigError;

/// A parsed listen URL: what to bind, and whether to serve TLS on it.
///
/// - `http://host:port`, `https://host:port`: TCP (`host` is an IP address or `localhost`,
///   as etcd requires of a URL it binds).
/// - `unix://name`, `unixs://name`: the unix socket file `name`, which is everything after
///   `://` as etcd takes it (`unix://localhost:2379` is the file `localhost:2379` in the
///   working directory, `unix:///run/etcd.sock` the absolute path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: ListenScheme,
    /// The URL as given, for messages and for advertising.
    pub text: String,
    pub addr: ListenAddr,
}

/// Splits a comma-separated URL list, checking each URL has a known scheme and a
/// `host:port` (etcd's `checkHostURLs`, for URLs that are advertised).
pub(super) fn split_urls(list: &str) -> Result<Vec<String>, ConfigError> {
    let urls: Vec<String> =
        list.split(',').map(str::trim).filter(|u| !u.is_empty()).map(String::from).collect();
    if urls.is_empty() {
        return Err(ConfigError::BadUrl(list.to_string(), "no URL given".into()));
    }
    for url in &urls {
        host_port(url)?;
    }
    Ok(urls)
}

/// The scheme of `url` and what follows `://`, without a trailing `/`.
fn scheme_and_rest(url: &str) -> Result<(ListenScheme, &str), ConfigError> {
    let bad = |why: String| ConfigError::BadUrl(url.to_string(), why);
    let (name, rest) =
        url.split_once("://").ok_or_else(|| bad("missing scheme (http://host:port)".into()))?;
    let scheme = ListenScheme::parse(name).ok_or_else(|| {
        bad(format!("URL scheme must be http, https, unix, or unixs, got {name}"))
    })?;
    Ok((scheme, rest.trim_end_matches('/')))
}

/// The `host:port` of a URL, checked: etcd requires one of every URL it advertises.
pub(super) fn host_port(url: &str) -> Result<(ListenScheme, &str), ConfigError> {
    let (scheme, host_port) = scheme_and_rest(url)?;
    match host_port.rsplit_once(':') {
        Some((host, _)) if !host.is_empty() && !host_port.contains('/') => Ok((scheme, host_port)),
        _ => Err(ConfigError::BadUrl(url.to_string(), "expected scheme://host:port".into())),
    }
}

/// Parses a comma-separated list of URLs to bind.
pub(super) fn parse_listen_urls(list: &str) -> Result<Vec<Url>, ConfigError> {
    let texts: Vec<String> =
        list.split(',').map(str::trim).filter(|u| !u.is_empty()).map(String::from).collect();
    if texts.is_empty() {
        return Err(ConfigError::BadUrl(list.to_string(), "no URL given".into()));
    }
    texts.into_iter().map(parse_listen_url).collect()
}

/// Parses one URL to bind (also the gRPC proxy's `--metrics-addr`).
pub(crate) fn parse_listen_url(text: String) -> Result<Url, ConfigError> {
    let (scheme, rest) = scheme_and_rest(&text)?;
    if scheme.is_unix() {
        if rest.is_empty() {
            return Err(ConfigError::BadUrl(text, "no socket path".into()));
        }
        return Ok(Url { scheme, addr: ListenAddr::Unix(PathBuf::from(rest)), text });
    }
    let (_, host_port) = host_port(&text)?;
    let host = host_port.rsplit_once(':').map_or(host_port, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    // etcd binds IP addresses only (its checkBindURLs), with `localhost` the one name.
    if host != "localhost" && host.parse::<IpAddr>().is_err() {
        return Err(ConfigError::Rejected(format!("expected IP in URL for binding ({text})")));
    }
    let addr = host_port
        .to_socket_addrs()
        .map_err(|e| ConfigError::BadUrl(text.clone(), e.to_string()))?
        // Prefer IPv4 for `localhost`, as clients dialing it mostly do.
        .min_by_key(|a| a.is_ipv6())
        .ok_or_else(|| ConfigError::BadUrl(text.clone(), "resolves to no address".into()))?;
    Ok(Url { scheme, text, addr: ListenAddr::Tcp(addr) })
}
