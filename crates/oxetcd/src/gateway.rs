//! `oxetcd gateway start` (etcd's `etcdmain/gateway.go`): an L4 proxy to the cluster's
//! client endpoints ([`oxetcd_proxy::tcpproxy`]), with etcd's flags, checks and messages.
//! DNS discovery (`--discovery-srv`) is not built: refused.

use std::net::ToSocketAddrs;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use oxetcd_proxy::tcpproxy::TcpProxy;

use crate::config::{GoDuration, LogLevel, LogOutput, Logger};

/// The retry delay a zero one stands for (etcd's tcpproxy's default interval).
const ZERO_RETRY_DELAY: Duration = Duration::from_secs(5 * 60);

/// The command line. The flags are `start`'s but, as with cobra, may come before the
/// word `start` too (etcd's e2e tests run `etcd gateway --endpoints=… start`).
#[derive(Debug, Parser)]
#[command(
    name = "gateway",
    about = "gateway related command",
    arg_required_else_help = true,
    color = clap::ColorChoice::Never
)]
struct Gateway {
    #[command(subcommand)]
    command: GatewayCommand,
    #[command(flatten)]
    flags: StartFlags,
}

#[derive(Debug, Subcommand)]
enum GatewayCommand {
    /// start the gateway
    Start,
}

#[derive(Debug, Args)]
struct StartFlags {
    /// listen address
    #[arg(long, global = true, default_value = "127.0.0.1:23790")]
    listen_addr: String,
    /// comma separated etcd cluster endpoints
    #[arg(long, global = true, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    endpoints: Vec<String>,
    /// DNS domain used to bootstrap initial cluster (not built yet: refused)
    #[arg(long, global = true, default_value = "")]
    discovery_srv: String,
    /// service name to query when using DNS discovery
    #[arg(long, global = true, default_value = "")]
    discovery_srv_name: String,
    /// accept insecure SRV records
    #[arg(
        long,
        global = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false"
    )]
    insecure_discovery: bool,
    /// path to the client server TLS CA file for verifying the discovered endpoints when
    /// discovery-srv is provided.
    #[arg(long, global = true, default_value = "")]
    trusted_ca_file: String,
    /// duration of delay before retrying failed endpoints
    #[arg(long, global = true, default_value = "1m")]
    retry_delay: GoDuration,
}

/// Runs `oxetcd gateway …`; `args` start with `gateway`. Exit codes as etcd's: 1 for a
/// command line or start-up error.
pub fn main(args: impl Iterator<Item = std::ffi::OsString>) -> ExitCode {
    let flags = match Gateway::try_parse_from(args) {
        Ok(Gateway { command: GatewayCommand::Start, flags }) => flags,
        Err(e) => return command_line_exit(&e),
    };
    match start(flags) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a command line's parse error (or the help asked for) and says how to exit:
/// help, asked for or for the command word alone as cobra shows it, is no failure.
pub(crate) fn command_line_exit(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    let help = !e.use_stderr()
        || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand;
    if help { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn start(flags: StartFlags) -> Result<(), String> {
    if !flags.discovery_srv.is_empty() {
        return Err(
            "oxetcd gateway: --discovery-srv (DNS discovery) is not built yet; give --endpoints"
                .into(),
        );
    }
    let endpoints = endpoints(&flags.endpoints, &flags.listen_addr)?;
    let retry_delay = flags.retry_delay.positive().unwrap_or(ZERO_RETRY_DELAY);
    crate::logging::init(LogLevel::Info, Logger::Zap, &[LogOutput::Stderr])
        .map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&flags.listen_addr)
            .await
            .map_err(|e| format!("listen tcp {}: {e}", flags.listen_addr))?;
        tokio::select! {
            () = TcpProxy::new(endpoints, retry_delay).run(listener) => {}
            () = crate::signal::terminated() => tracing::info!("received signal; shutting down"),
        }
        Ok(())
    })
}

/// The endpoints as `host:port`, schemes stripped (the gateway proxies TCP, whatever runs
/// over it), checked as etcd checks them: each parses, and none is the gateway itself.
fn endpoints(given: &[String], listen_addr: &str) -> Result<Vec<String>, String> {
    let (listen_host, listen_port) = split_host_port(listen_addr)
        .ok_or_else(|| format!("failed to validate listen address: {listen_addr}"))?;
    let listen_ips: Vec<_> = (listen_host, 0)
        .to_socket_addrs()
        .map_err(|_| format!("failed to resolve listen host: {listen_host}"))?
        .map(|a| a.ip())
        .collect();
    let mut endpoints = Vec::new();
    for endpoint in given.iter().filter(|e| !e.is_empty()) {
        let endpoint = endpoint.split_once("://").map_or(endpoint.as_str(), |(_, rest)| rest);
        let endpoint = endpoint.trim_end_matches('/');
        let (host, port) = split_host_port(endpoint)
            .ok_or_else(|| format!("error parsing endpoint {endpoint:?}"))?;
        let resolved = (host, 0)
            .to_socket_addrs()
            .map_err(|_| format!("failed to resolve endpoint host: {host}"))?;
        if port == listen_port
            && let Some(ip) = resolved.map(|a| a.ip()).find(|ip| listen_ips.contains(ip))
        {
            return Err(format!(
                "SRV or endpoint ({host}:{port}->{ip}:{port}) should not resolve to the gateway listen addr ({listen_addr})"
            ));
        }
        endpoints.push(endpoint.to_string());
    }
    if endpoints.is_empty() {
        return Err("no endpoints found".into());
    }
    Ok(endpoints)
}

/// `host:port` split as Go's `net.SplitHostPort` does (IPv6 hosts in brackets).
fn split_host_port(addr: &str) -> Option<(&str, &str)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(endpoints: &[&str]) -> Vec<String> {
        endpoints.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn endpoints_lose_their_scheme_and_are_checked() {
        let given = list(&["http://127.0.0.1:2379", "https://localhost:22379/", "10.0.0.1:2379"]);
        assert_eq!(
            endpoints(&given, "127.0.0.1:23790").unwrap(),
            ["127.0.0.1:2379", "localhost:22379", "10.0.0.1:2379"]
        );
        assert_eq!(
            endpoints(&list(&["127.0.0.1"]), "127.0.0.1:23790").unwrap_err(),
            "error parsing endpoint \"127.0.0.1\""
        );
        assert_eq!(
            endpoints(&list(&["127.0.0.1:2379"]), "127.0.0.1").unwrap_err(),
            "failed to validate listen address: 127.0.0.1"
        );
        assert_eq!(
            endpoints(&list(&["localhost:23790"]), "127.0.0.1:23790").unwrap_err(),
            "SRV or endpoint (localhost:23790->127.0.0.1:23790) should not resolve to the gateway listen addr (127.0.0.1:23790)"
        );
        assert_eq!(endpoints(&list(&[""]), "127.0.0.1:23790").unwrap_err(), "no endpoints found");
    }

    #[test]
    fn flags_parse_as_etcds() {
        let parse = |args: &[&str]| {
            let args = ["gateway", "start"].iter().chain(args).map(|a| a.to_string());
            Gateway::try_parse_from(args).map(|g| g.flags).map_err(|e| e.kind())
        };
        let defaults = parse(&[]).unwrap();
        assert_eq!(defaults.listen_addr, "127.0.0.1:23790");
        assert_eq!(defaults.endpoints, ["127.0.0.1:2379"]);
        assert_eq!(defaults.retry_delay.positive(), Some(Duration::from_secs(60)));
        let flags = parse(&["--endpoints=a:1,b:2", "--endpoints", "c:3", "--retry-delay=1.5s"]);
        let flags = flags.unwrap();
        assert_eq!(flags.endpoints, ["a:1", "b:2", "c:3"]);
        assert_eq!(flags.retry_delay.positive(), Some(Duration::from_millis(1500)));
        assert!(parse(&["--insecure-discovery"]).unwrap().insecure_discovery);
        assert!(!parse(&["--insecure-discovery=false"]).unwrap().insecure_discovery);
        assert!(parse(&["--retry-delay=soon"]).is_err());
        // Before the word `start`, as cobra takes them.
        let args = ["gateway", "--endpoints=x:1", "start"];
        assert_eq!(Gateway::try_parse_from(args).unwrap().flags.endpoints, ["x:1"]);
    }
}
