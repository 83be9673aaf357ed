//! `oxetcd grpc-proxy start` (etcd's `etcdmain/grpc_proxy.go`): a gRPC server that passes
//! every call on to the cluster ([`oxetcd_proxy::grpcproxy`]), with `/metrics` and `/health`
//! on the same port, with etcd's flags, checks and messages.
//!
//! Features of etcd's proxy that are not built are refused at start, naming the flag:
//! DNS discovery (`--discovery-srv`), self-registration (`--resolver-prefix`), key
//! namespacing (`--namespace`), the leasing KV (`--experimental-leasing-prefix`),
//! serializable ordering (`--experimental-serializable-ordering`) and `--enable-pprof`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use oxetcd_proxy::grpcproxy::{self, GrpcProxy, ProxyConfig};
use oxetcd_tls::{ClientTls, ListenAddr, Listener, ServerTls, TlsInfo, TlsOptions};

use crate::config::{LogLevel, LogOutput, Logger, etcd_bool, parse_listen_url};
use crate::serve::{ClientHttp2, serve_client_port};

/// Where `--auto-tls` keeps its certificate, under `--data-dir` (etcd's
/// `filepath.Join(dataDir, "fixtures", "proxy")`).
const AUTO_TLS_SUBDIR: &str = "fixtures/proxy";

/// The command line. The flags are `start`'s but, as with cobra, may come before the
/// word `start` too.
#[derive(Debug, Parser)]
#[command(
    name = "grpc-proxy",
    about = "grpc-proxy related command",
    arg_required_else_help = true,
    color = clap::ColorChoice::Never
)]
struct GrpcProxyCommand {
    #[command(subcommand)]
    command: Start,
    #[command(flatten)]
    flags: StartFlags,
}

#[derive(Debug, Subcommand)]
enum Start {
    /// start the grpc proxy
    Start,
}

#[derive(Debug, Args)]
struct StartFlags {
    /// listen address
    #[arg(long, global = true, default_value = "127.0.0.1:23790")]
    listen_addr: String,
    /// domain name to query for SRV records describing cluster endpoints (not built: refused)
    #[arg(long, global = true, default_value = "")]
    discovery_srv: String,
    /// service name to query when using DNS discovery
    #[arg(long, global = true, default_value = "")]
    discovery_srv_name: String,
    /// listen for endpoint /metrics requests on an additional interface
    #[arg(long, global = true, default_value = "")]
    metrics_addr: String,
    /// accept insecure SRV records
    #[arg(long, global = true, default_value_t = false)]
    insecure_discovery: bool,
    /// comma separated etcd cluster endpoints
    #[arg(long, global = true, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    endpoints: Vec<String>,
    /// advertise address to register (must be reachable by client)
    #[arg(long, global = true, default_value = "127.0.0.1:23790")]
    advertise_client_url: String,
    /// prefix to use for registering proxy (must be shared with other grpc-proxy members;
    /// not built: refused)
    #[arg(long, global = true, default_value = "")]
    resolver_prefix: String,
    /// specify TTL, in seconds, when registering proxy endpoints
    #[arg(long, global = true, default_value_t = 0, allow_negative_numbers = true)]
    resolver_ttl: i64,
    /// string to prefix to all keys for namespacing requests (not built: refused)
    #[arg(long, global = true, default_value = "")]
    namespace: String,
    /// Enable runtime profiling data via HTTP server (not built: refused)
    #[arg(long, global = true, default_value_t = false)]
    enable_pprof: bool,
    /// Data directory for persistent data
    #[arg(long, global = true, default_value = "default.proxy")]
    data_dir: PathBuf,
    /// message send limits in bytes (default value is 1.5 MiB)
    #[arg(long, global = true, default_value_t = grpcproxy::DEFAULT_MAX_SEND_BYTES as i64, allow_negative_numbers = true)]
    max_send_bytes: i64,
    /// message receive limits in bytes (default value is math.MaxInt32)
    #[arg(long, global = true, default_value_t = grpcproxy::DEFAULT_MAX_RECV_BYTES as i64, allow_negative_numbers = true)]
    max_recv_bytes: i64,
    /// identify secure connections with etcd servers using this TLS certificate file
    #[arg(long, global = true, default_value = "")]
    cert: String,
    /// identify secure connections with etcd servers using this TLS key file
    #[arg(long, global = true, default_value = "")]
    key: String,
    /// verify certificates of TLS-enabled secure etcd servers using this CA bundle
    #[arg(long, global = true, default_value = "")]
    cacert: String,
    /// skip authentication of etcd server TLS certificates (CAUTION: this option should be
    /// enabled only for testing purposes)
    #[arg(long, global = true, default_value_t = false)]
    insecure_skip_tls_verify: bool,
    /// identify secure connections to the proxy using this TLS certificate file
    #[arg(long, global = true, default_value = "")]
    cert_file: String,
    /// identify secure connections to the proxy using this TLS key file
    #[arg(long, global = true, default_value = "")]
    key_file: String,
    /// verify certificates of TLS-enabled secure proxy using this CA bundle
    #[arg(long, global = true, default_value = "")]
    trusted_ca_file: String,
    /// Comma-separated list of supported TLS cipher suites between client/proxy (empty
    /// will be auto-populated by Go).
    #[arg(long, global = true, value_delimiter = ',')]
    listen_cipher_suites: Vec<String>,
    /// proxy TLS using generated certificates
    #[arg(long, global = true, default_value_t = false)]
    auto_tls: bool,
    /// proxy client certificate revocation list file.
    #[arg(long, global = true, default_value = "")]
    client_crl_file: String,
    /// Ensure serializable reads have monotonically increasing store revisions across
    /// endpoints (not built: refused).
    #[arg(long, global = true, default_value_t = false)]
    experimental_serializable_ordering: bool,
    /// leasing metadata prefix for disconnected linearized reads (not built: refused).
    #[arg(long, global = true, default_value = "")]
    experimental_leasing_prefix: String,
    /// Enable debug-level logging for grpc-proxy.
    #[arg(long, global = true, default_value_t = false)]
    debug: bool,
    /// Maximum concurrent streams that each client can open at a time.
    #[arg(long, global = true, default_value_t = u32::MAX)]
    max_concurrent_streams: u32,
}

/// Runs `oxetcd grpc-proxy …`; `args` start with `grpc-proxy`. Exit codes as etcd's: 1 for
/// a command line or start-up error.
pub fn main(args: impl Iterator<Item = std::ffi::OsString>) -> ExitCode {
    let parsed = GrpcProxyCommand::command()
        .mut_args(etcd_bool)
        .try_get_matches_from(args)
        .and_then(|matches| GrpcProxyCommand::from_arg_matches(&matches));
    let flags = match parsed {
        Ok(GrpcProxyCommand { command: Start::Start, flags }) => flags,
        Err(e) => return crate::gateway::command_line_exit(&e),
    };
    match start(flags) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// etcd's `checkArgs`, then a refusal for each feature that is not built.
fn check_args(flags: &StartFlags) -> Result<(), String> {
    if !flags.resolver_prefix.is_empty() && flags.resolver_ttl < 1 {
        return Err(format!("invalid resolver-ttl {}", flags.resolver_ttl));
    }
    if flags.resolver_prefix.is_empty() && flags.resolver_ttl > 0 {
        return Err(format!("invalid resolver-prefix {:?}", flags.resolver_prefix));
    }
    let refused = [
        (!flags.discovery_srv.is_empty(), "--discovery-srv (DNS discovery); give --endpoints"),
        (!flags.resolver_prefix.is_empty(), "--resolver-prefix (registering the proxy)"),
        (!flags.namespace.is_empty(), "--namespace (key namespacing)"),
        (!flags.experimental_leasing_prefix.is_empty(), "--experimental-leasing-prefix"),
        (flags.experimental_serializable_ordering, "--experimental-serializable-ordering"),
        (flags.enable_pprof, "--enable-pprof"),
    ];
    match refused.iter().find(|(given, _)| *given) {
        Some((_, what)) => Err(format!("oxetcd grpc-proxy: {what} is not built yet")),
        None => Ok(()),
    }
}

fn path(flag: &str) -> Option<PathBuf> {
    (!flag.is_empty()).then(|| PathBuf::from(flag))
}

/// The message-size limits as etcd's proxy gives them to clientv3: a value that is not
/// positive leaves clientv3's default, and the receive limit must not be below the send
/// limit (clientv3's check and message).
fn message_limits(flags: &StartFlags) -> Result<(usize, usize), String> {
    let positive = |v: i64| usize::try_from(v).ok().filter(|&v| v > 0);
    let send = positive(flags.max_send_bytes).unwrap_or(grpcproxy::CLIENT_DEFAULT_MAX_SEND_BYTES);
    let recv = positive(flags.max_recv_bytes);
    if let Some(recv) = recv
        && send > recv
    {
        return Err(format!(
            "gRPC message recv limit ({recv} bytes) must be greater than send limit ({send} bytes)"
        ));
    }
    Ok((send, recv.unwrap_or(grpcproxy::DEFAULT_MAX_RECV_BYTES)))
}

/// TLS for dialing the cluster (`--cert`, `--key`, `--cacert`, `--insecure-skip-tls-verify`),
/// with etcd's `EmptyCN` check on the certificate: a member doing CN-based auth would take
/// its CN as the user of every call the proxy passes on.
fn cluster_tls(flags: &StartFlags) -> Result<Option<ClientTls>, String> {
    let info = TlsInfo {
        cert_file: path(&flags.cert),
        key_file: path(&flags.key),
        trusted_ca_file: path(&flags.cacert),
        ..TlsInfo::default()
    };
    let given = info.cert_file.is_some() || info.key_file.is_some();
    if !given && info.trusted_ca_file.is_none() && !flags.insecure_skip_tls_verify {
        return Ok(None);
    }
    if info.trusted_ca_file.is_none() && !flags.insecure_skip_tls_verify {
        return Err("--cert/--key without --cacert: give --cacert to verify the cluster's \
                    certificates (the system roots are not used) or --insecure-skip-tls-verify"
            .into());
    }
    let tls =
        ClientTls::for_client(&info, flags.insecure_skip_tls_verify).map_err(|e| e.to_string())?;
    if let Some(cert) = &info.cert_file {
        oxetcd_tls::require_empty_common_name(cert).map_err(|e| e.to_string())?;
    }
    if flags.insecure_skip_tls_verify {
        tracing::warn!(
            "--insecure-skip-tls-verify was given, this grpc proxy process skips authentication of etcd server TLS certificates. This option should be enabled only for testing purposes."
        );
    }
    Ok(Some(tls))
}

/// TLS for the proxy's clients (`--cert-file`, `--key-file`, `--trusted-ca-file`,
/// `--auto-tls`, `--listen-cipher-suites`, `--client-crl-file`).
fn listen_tls(flags: &StartFlags) -> Result<Option<ServerTls>, String> {
    let cipher_suites: Vec<String> =
        flags.listen_cipher_suites.iter().filter(|s| !s.is_empty()).cloned().collect();
    for name in &cipher_suites {
        oxetcd_tls::cipher_suite(name).map_err(|e| e.to_string())?;
    }
    let info = TlsInfo {
        cert_file: path(&flags.cert_file),
        key_file: path(&flags.key_file),
        trusted_ca_file: path(&flags.trusted_ca_file),
        crl_file: path(&flags.client_crl_file),
        auto_tls: flags.auto_tls,
        ..TlsInfo::default()
    };
    let given = info.cert_file.is_some() || info.key_file.is_some();
    if !given && info.trusted_ca_file.is_none() && !info.auto_tls {
        // etcd's proxy crashes on a cipher list without TLS; there is nothing to apply it to.
        for (set, flag) in [
            (!cipher_suites.is_empty(), "--listen-cipher-suites"),
            (info.crl_file.is_some(), "--client-crl-file"),
        ] {
            if set {
                tracing::warn!(
                    "{flag} has no effect: the proxy serves plaintext (no --cert-file or --auto-tls)"
                );
            }
        }
        return Ok(None);
    }
    let options = TlsOptions { cipher_suites, ..TlsOptions::default() };
    let auto_tls_dir = flags.data_dir.join(AUTO_TLS_SUBDIR);
    let hosts = [flags.listen_addr.clone()];
    ServerTls::new(&info, &options, &auto_tls_dir, &hosts).map(Some).map_err(|e| e.to_string())
}

/// The `--metrics-addr` URL, bound with the proxy's TLS (required for `https`, as etcd's
/// `transport.NewListener` requires it).
async fn metrics_listener(url: &str, tls: Option<&ServerTls>) -> Result<Listener, String> {
    let url =
        parse_listen_url(url.to_string()).map_err(|e| format!("cannot parse {url:?}: {e}"))?;
    let tls = match (url.scheme.is_tls(), tls) {
        (true, Some(tls)) => Some(tls.clone()),
        (true, None) => {
            return Err(format!(
                "cannot listen on TLS for {}: KeyFile and CertFile are not presented",
                url.text
            ));
        }
        (false, _) => None,
    };
    let plain = tls.is_none();
    Listener::bind(&url.addr, plain, tls).await.map_err(|e| format!("listen {}: {e}", url.text))
}

fn start(flags: StartFlags) -> Result<(), String> {
    check_args(&flags)?;
    let level = if flags.debug { LogLevel::Debug } else { LogLevel::Info };
    crate::logging::init(level, Logger::Zap, &[LogOutput::Stderr]).map_err(|e| e.to_string())?;
    let (max_send_bytes, max_recv_bytes) = message_limits(&flags)?;
    let listen_tls = listen_tls(&flags)?;
    let tls = cluster_tls(&flags)?.map(|tls| tls.config());
    let proxy = GrpcProxy::new(ProxyConfig {
        endpoints: flags.endpoints.clone(),
        tls,
        max_send_bytes,
        max_recv_bytes,
        advertise_client_url: flags.advertise_client_url.clone(),
    })?;
    let http2 = ClientHttp2 {
        // etcd's default, math.MaxUint32, is no limit.
        max_concurrent_streams: (flags.max_concurrent_streams != u32::MAX)
            .then_some(flags.max_concurrent_streams),
        keepalive: None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        let addr = tokio::net::lookup_host(&flags.listen_addr)
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| {
                format!("listen tcp {}: cannot resolve the address", flags.listen_addr)
            })?;
        let listener =
            Listener::bind(&ListenAddr::Tcp(addr), listen_tls.is_none(), listen_tls.clone())
                .await
                .map_err(|e| format!("listen tcp {}: {e}", flags.listen_addr))?;
        tracing::info!(address = %flags.listen_addr, "listening for gRPC proxy client requests");
        let metrics = if flags.metrics_addr.is_empty() {
            None
        } else {
            let listener = metrics_listener(&flags.metrics_addr, listen_tls.as_ref()).await?;
            tracing::info!(address = %flags.metrics_addr, "gRPC proxy listening for metrics");
            Some(listener)
        };
        tracing::info!(
            address = %flags.listen_addr,
            endpoints = ?proxy.endpoints(),
            tls = listen_tls.is_some(),
            "started gRPC proxy"
        );
        // A signal ends the proxy at once, its calls with it (etcd's proxy dies on it):
        // waiting for connections to finish could wait forever on a watch.
        if let Some(listener) = metrics {
            let served = serve_client_port(
                listener.into_incoming(),
                proxy.http_only(),
                http2,
                std::future::pending(),
            );
            tokio::spawn(served);
        }
        let served =
            serve_client_port(listener.into_incoming(), proxy, http2, std::future::pending());
        tokio::spawn(served);
        crate::signal::terminated().await;
        tracing::info!("received signal; shutting down");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(args: &[&str]) -> Result<StartFlags, clap::error::ErrorKind> {
        let args = ["grpc-proxy"].iter().chain(args).map(|a| a.to_string());
        GrpcProxyCommand::command()
            .mut_args(etcd_bool)
            .try_get_matches_from(args)
            .and_then(|m| GrpcProxyCommand::from_arg_matches(&m))
            .map(|c| c.flags)
            .map_err(|e| e.kind())
    }

    #[test]
    fn flags_parse_as_etcds() {
        let defaults = parse(&["start"]).unwrap();
        assert_eq!(defaults.listen_addr, "127.0.0.1:23790");
        assert_eq!(defaults.endpoints, ["127.0.0.1:2379"]);
        assert_eq!(defaults.advertise_client_url, "127.0.0.1:23790");
        assert_eq!(defaults.data_dir, Path::new("default.proxy"));
        assert_eq!(defaults.max_send_bytes, 1536 * 1024);
        assert_eq!(defaults.max_recv_bytes, i32::MAX as i64);
        assert_eq!(defaults.max_concurrent_streams, u32::MAX);
        assert!(!defaults.debug && !defaults.auto_tls && !defaults.insecure_skip_tls_verify);
        let flags = parse(&["--endpoints=a:1,b:2", "start", "--debug", "--auto-tls=false"]);
        let flags = flags.unwrap();
        assert_eq!(flags.endpoints, ["a:1", "b:2"]);
        assert!(flags.debug && !flags.auto_tls);
        // A bool flag does not take the next argument as its value.
        assert_eq!(
            parse(&["start", "--debug", "false"]).unwrap_err(),
            clap::error::ErrorKind::UnknownArgument
        );
        let flags = parse(&["start", "--listen-cipher-suites", ""]).unwrap();
        assert!(flags.listen_cipher_suites.iter().all(String::is_empty));
        assert!(parse(&["start", "--max-send-bytes=lots"]).is_err());
    }

    #[test]
    fn unbuilt_features_and_bad_resolver_flags_are_refused() {
        let refusal = |args: &[&str]| check_args(&parse(args).unwrap()).unwrap_err();
        assert_eq!(refusal(&["start", "--resolver-prefix=/p"]), "invalid resolver-ttl 0");
        assert_eq!(refusal(&["start", "--resolver-ttl=5"]), "invalid resolver-prefix \"\"");
        for (flags, named) in [
            (&["--resolver-prefix=/p", "--resolver-ttl=5"][..], "--resolver-prefix"),
            (&["--discovery-srv=example.com"], "--discovery-srv"),
            (&["--namespace=/ns"], "--namespace"),
            (&["--experimental-leasing-prefix=/l"], "--experimental-leasing-prefix"),
            (&["--experimental-serializable-ordering"], "--experimental-serializable-ordering"),
            (&["--enable-pprof"], "--enable-pprof"),
        ] {
            let args: Vec<&str> = ["start"].iter().chain(flags).copied().collect();
            let message = refusal(&args);
            assert!(message.contains(named) && message.contains("not built"), "{message}");
        }
        assert!(check_args(&parse(&["start", "--discovery-srv-name=x"]).unwrap()).is_ok());
    }

    #[test]
    fn message_limits_follow_clientv3() {
        let limits = |args: &[&str]| message_limits(&parse(args).unwrap());
        assert_eq!(limits(&["start"]).unwrap(), (1536 * 1024, i32::MAX as usize));
        assert_eq!(
            limits(&["start", "--max-send-bytes=0", "--max-recv-bytes=-1"]).unwrap(),
            (2 << 20, i32::MAX as usize)
        );
        assert_eq!(
            limits(&["start", "--max-send-bytes=100", "--max-recv-bytes=10"]).unwrap_err(),
            "gRPC message recv limit (10 bytes) must be greater than send limit (100 bytes)"
        );
    }
}
