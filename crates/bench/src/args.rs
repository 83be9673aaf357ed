//! Command line, modelled on etcd's tools/benchmark.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "oxetcd-bench",
    version,
    about = "Load generator for any etcd v3 endpoint (etcd or oxetcd)"
)]
pub struct Cli {
    /// gRPC endpoints, comma separated, with or without http:// or https:// (without a
    /// scheme: https when a TLS flag is given, as etcd's clients do, else http)
    #[arg(long, global = true, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    /// gRPC connections, spread over the endpoints
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub conns: u64,
    /// Concurrent in-flight requests, spread over the connections
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub clients: u64,
    /// Requests to send
    #[arg(long, global = true, default_value_t = 10_000)]
    pub total: u64,
    /// Send everything to the leader (found with Maintenance.Status)
    #[arg(long, global = true)]
    pub target_leader: bool,
    /// Print one JSON object instead of the text report
    #[arg(long, global = true)]
    pub json: bool,
    /// Stop sending after this many seconds even if --total is not reached (0: no limit)
    #[arg(long, global = true, default_value_t = 0)]
    pub max_seconds: u64,
    /// Seconds allowed to connect to an endpoint
    #[arg(long, global = true, default_value_t = 5)]
    pub dial_timeout: u64,
    /// Send put, range and txn-put through oxetcd-client's calls instead of the
    /// generated stubs (to measure the client's own cost)
    #[arg(long, global = true)]
    pub via_client: bool,
    /// Authenticate as this user (`NAME:PASSWORD`) once per connection and send its
    /// token with every request (etcd's benchmark flag; no prompt for a missing password)
    #[arg(long, global = true, value_name = "NAME:PASSWORD", value_parser = parse_user)]
    pub user: Option<User>,
    /// Requests per second over all clients (0: no limit), for put, range, txn-put and
    /// lease-keepalive (etcd's benchmark has `put --rate`); a server that stalls is not
    /// sent a burst afterwards
    #[arg(long, global = true, default_value_t = 0)]
    pub rate: u64,
    /// Write every request of put, range, txn-put or lease-keepalive to FILE, one line
    /// each: when it was sent (Unix time, ns), its latency (ns) and 1 (ok) or 0 (failed),
    /// tab separated after a header line, in order of sending
    #[arg(long, global = true, value_name = "FILE")]
    pub latency_log: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    Workload(Workload),
    /// Measure the floor under a one-client put on this machine, with no server: one
    /// fdatasync of a WAL-sized record plus one loopback TCP round trip of a
    /// request-sized message, repeated --total times (the global flags about servers
    /// are ignored)
    Floor(FloorArgs),
    /// Serve KV.Put on --listen with only what a one-client put cannot do without: each
    /// put's record written and fdatasynced in a preallocated file, then the answer, on one
    /// thread (no raft, no storage engine, nothing else served). The floor as a gRPC
    /// client sees it: run a put workload with one client against it. Runs until killed
    /// (the global flags are ignored)
    FloorServer(FloorServerArgs),
}

#[derive(Debug, Clone, Args)]
pub struct FloorArgs {
    /// Directory for the synced file (the disk the server's data dir is on)
    #[arg(long)]
    pub dir: PathBuf,
    /// Bytes written and synced per iteration, and sent each way per round trip
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub record_size: u64,
}

#[derive(Debug, Clone, Args)]
pub struct FloorServerArgs {
    /// Address to serve gRPC on (plaintext)
    #[arg(long, default_value = "127.0.0.1:2379")]
    pub listen: std::net::SocketAddr,
    /// Directory for the synced file (the disk a server's data dir would be on)
    #[arg(long)]
    pub dir: PathBuf,
    /// Bytes written and synced per put
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub record_size: u64,
}

/// The load a server is put under.
#[derive(Debug, Subcommand)]
pub enum Workload {
    /// Put keys
    Put {
        #[command(flatten)]
        kv: KeyValueArgs,
        /// Write keys 0, 1, 2, ... in order instead of at random
        #[arg(long)]
        sequential_keys: bool,
    },
    /// Range over a key (or [key, end))
    Range {
        /// The key (not needed with --random-keys)
        #[arg(required_unless_present = "random_keys")]
        key: Option<String>,
        end: Option<String>,
        /// l: linearizable, s: serializable
        #[arg(long, value_enum, default_value_t = Consistency::L)]
        consistency: Consistency,
        /// Maximum keys per response (0: no limit)
        #[arg(long, default_value_t = 0)]
        limit: i64,
        /// Return keys without values
        #[arg(long)]
        keys_only: bool,
        /// Ask with RangeStream (etcd 3.7) and read its chunks, instead of Range
        #[arg(long)]
        stream: bool,
        /// Read one key at random per request, numbered as put's keys
        /// (--random-key-offset .. + N, zero padded to --random-key-size), instead of KEY
        #[arg(long, value_name = "N", conflicts_with_all = ["key", "end"],
              value_parser = clap::value_parser!(u64).range(1..))]
        random_keys: Option<u64>,
        /// Key size of --random-keys (ignored without it)
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
        random_key_size: u64,
        /// Number of the first key of --random-keys (ignored without it)
        #[arg(long, default_value_t = 0)]
        random_key_offset: u64,
    },
    /// Transactions of several puts (one request = one txn)
    TxnPut {
        #[command(flatten)]
        kv: KeyValueArgs,
        /// Puts per transaction (distinct keys; needs key-space-size >= txn-ops)
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        txn_ops: u64,
    },
    /// Watchers on many streams, then puts to the watched keys
    Watch {
        #[command(flatten)]
        watch: WatchArgs,
        /// Watch streams, spread over the connections
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        streams: u64,
        /// Watchers created on each stream
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        watchers_per_stream: u64,
    },
    /// Time from a put to its event at every watcher
    WatchLatency {
        #[command(flatten)]
        watch: WatchArgs,
        /// Watchers of the key, each on its own stream
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        watchers: u64,
    },
    /// One put at a time to a key with many watchers: each put waits until every
    /// watcher has its event; reports the latency of every delivery
    WatchFanout {
        /// Watchers of the key, spread evenly over the streams
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
        watchers: u64,
        /// Watch streams, spread over the connections
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
        streams: u64,
        /// Puts, one at a time
        #[arg(long, default_value_t = 100)]
        put_total: u64,
        /// Value size in bytes (at least 8: a put carries its number)
        #[arg(long, default_value_t = 8)]
        val_size: u64,
    },
    /// Lease keep-alive round trips (one lease per client)
    LeaseKeepalive,
}

/// TLS for `https://` endpoints, with etcd's names (tools/benchmark's `--cacert`, `--cert`,
/// `--key`; etcdctl's `--insecure-skip-tls-verify`).
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// Verify servers with this CA bundle (PEM)
    #[arg(long, global = true, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM), presented to servers that ask for one (needs --key)
    #[arg(long = "cert", id = "cert_file", global = true, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert
    #[arg(long = "key", id = "key_file", global = true, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Do not verify the server's certificate (self-signed or --auto-tls servers);
    /// handshake signatures are still checked
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
}

impl TlsArgs {
    /// Whether any TLS flag is given (bare endpoints are then dialed with https).
    pub fn enabled(&self) -> bool {
        self.cacert.is_some()
            || self.cert.is_some()
            || self.key.is_some()
            || self.insecure_skip_tls_verify
    }
}

/// `--user`: who the connections authenticate as.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub password: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User").field("name", &self.name).finish_non_exhaustive()
    }
}

/// `NAME:PASSWORD`, split at the first `:` (so a password may contain `:`, a name may
/// not), as etcd's benchmark and etcdctl split `--user`. etcd prompts for a password
/// given without `:`; a load generator run from scripts refuses it instead.
fn parse_user(s: &str) -> Result<User, String> {
    let Some((name, password)) = s.split_once(':') else {
        return Err("expected NAME:PASSWORD (oxetcd-bench does not prompt for a password)".into());
    };
    if name.is_empty() {
        return Err("the user name is empty".into());
    }
    Ok(User { name: name.to_string(), password: password.to_string() })
}

/// Key and value shapes shared by the writing workloads.
#[derive(Debug, Clone, Args)]
pub struct KeyValueArgs {
    /// Key size in bytes
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    pub key_size: u64,
    /// Value size in bytes
    #[arg(long, default_value_t = 8)]
    pub val_size: u64,
    /// Distinct keys written
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub key_space_size: u64,
    /// Number of the first key: the keys are numbered key-offset ..
    /// key-offset + key-space-size (so a fill can go on where an earlier one stopped)
    #[arg(long, default_value_t = 0)]
    pub key_offset: u64,
}

/// The put side of the watch workloads.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Puts to the watched keys
    #[arg(long, default_value_t = 1_000)]
    pub put_total: u64,
    /// Puts per second (0: as fast as one client can)
    #[arg(long, default_value_t = 100)]
    pub put_rate: u64,
    #[command(flatten)]
    pub kv: KeyValueArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Linearizable
    L,
    /// Serializable
    S,
}

/// The URL of an endpoint given with or without a scheme: a bare `host:port` is
/// `https://host:port` when `tls` (a TLS flag is given: etcd's clients dial scheme-less
/// endpoints with their TLS configuration), else `http://host:port`.
pub fn endpoint_url(endpoint: &str, tls: bool) -> String {
    let e = endpoint.trim();
    if e.contains("://") {
        e.to_string()
    } else if tls {
        format!("https://{e}")
    } else {
        format!("http://{e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("oxetcd-bench").chain(args.iter().copied()))
    }

    fn workload(cli: Cli) -> Workload {
        match cli.command {
            Command::Workload(w) => w,
            other => panic!("not a workload: {other:?}"),
        }
    }

    #[test]
    fn defaults_match_etcd_benchmark() {
        let cli = parse(&["put"]).unwrap();
        assert_eq!(cli.endpoints, ["127.0.0.1:2379"]);
        assert_eq!((cli.conns, cli.clients), (1, 1));
        assert!(!cli.target_leader && !cli.json);
        let Workload::Put { kv, sequential_keys } = workload(cli) else { panic!("not put") };
        assert_eq!((kv.key_size, kv.val_size, kv.key_space_size), (8, 8, 1));
        assert!(!sequential_keys);
    }

    #[test]
    fn global_flags_go_before_or_after_the_subcommand() {
        let cli = parse(&[
            "--endpoints",
            "127.0.0.1:2379,http://127.0.0.2:2379",
            "--conns=100",
            "put",
            "--clients",
            "1000",
            "--total=5",
            "--val-size",
            "256",
            "--sequential-keys",
            "--json",
            "--target-leader",
            "--max-seconds=9",
        ])
        .unwrap();
        assert_eq!(cli.endpoints.len(), 2);
        assert_eq!((cli.conns, cli.clients, cli.total, cli.max_seconds), (100, 1000, 5, 9));
        assert!(cli.json && cli.target_leader);
        assert!(
            matches!(workload(cli), Workload::Put { kv, sequential_keys: true } if kv.val_size == 256)
        );
    }

    #[test]
    fn range_takes_key_end_and_consistency() {
        let cli = parse(&["range", "foo", "fop", "--consistency", "s", "--limit", "3"]).unwrap();
        let Workload::Range { key, end, consistency, limit, keys_only, .. } = workload(cli) else {
            panic!("not range")
        };
        assert_eq!((key.as_deref(), end.as_deref()), (Some("foo"), Some("fop")));
        assert_eq!((consistency, limit, keys_only), (Consistency::S, 3, false));
        let cli = parse(&["range", "foo", "--keys-only"]).unwrap();
        assert!(matches!(
            workload(cli),
            Workload::Range { end: None, consistency: Consistency::L, keys_only: true, .. }
        ));
        assert!(parse(&["range", "foo", "--consistency", "x"]).is_err());
        assert!(parse(&["range"]).is_err());
    }

    #[test]
    fn range_of_random_keys() {
        let cli = parse(&["range", "--random-keys", "1000", "--random-key-offset=5"]).unwrap();
        let Workload::Range { key, random_keys, random_key_size, random_key_offset, .. } =
            workload(cli)
        else {
            panic!("not range")
        };
        assert_eq!(
            (key, random_keys, random_key_size, random_key_offset),
            (None, Some(1000), 8, 5)
        );
        assert!(parse(&["range", "foo", "--random-keys", "10"]).is_err(), "KEY and random keys");
        assert!(parse(&["range", "--random-keys", "0"]).is_err());
    }

    #[test]
    fn watch_and_txn_flags() {
        let cli = parse(&[
            "watch",
            "--streams=2",
            "--watchers-per-stream=3",
            "--put-total=7",
            "--put-rate=0",
        ])
        .unwrap();
        assert!(matches!(
            workload(cli),
            Workload::Watch { streams: 2, watchers_per_stream: 3, ref watch } if watch.put_total == 7 && watch.put_rate == 0
        ));
        let cli = parse(&["watch-latency", "--watchers", "4"]).unwrap();
        assert!(matches!(workload(cli), Workload::WatchLatency { watchers: 4, .. }));
        let cli = parse(&["txn-put", "--txn-ops", "4", "--key-space-size", "100"]).unwrap();
        assert!(matches!(workload(cli), Workload::TxnPut { txn_ops: 4, .. }));
        assert!(matches!(workload(parse(&["lease-keepalive"]).unwrap()), Workload::LeaseKeepalive));
        let cli = parse(&["watch-fanout"]).unwrap();
        assert!(matches!(
            workload(cli),
            Workload::WatchFanout { watchers: 10_000, streams: 100, put_total: 100, val_size: 8 }
        ));
        assert!(parse(&["watch-fanout", "--streams=0"]).is_err());
    }

    #[test]
    fn rate_latency_log_and_key_offset() {
        let cli = parse(&["put"]).unwrap();
        assert_eq!((cli.rate, cli.latency_log.as_deref()), (0, None));
        let Workload::Put { kv, .. } = workload(cli) else { panic!("not put") };
        assert_eq!(kv.key_offset, 0);
        let cli = parse(&[
            "--rate=500",
            "put",
            "--latency-log",
            "put.tsv",
            "--key-offset",
            "1000",
            "--sequential-keys",
        ])
        .unwrap();
        assert_eq!(cli.rate, 500);
        assert_eq!(cli.latency_log.as_deref(), Some(std::path::Path::new("put.tsv")));
        let Workload::Put { kv, .. } = workload(cli) else { panic!("not put") };
        assert_eq!(kv.key_offset, 1000);
    }

    #[test]
    fn zero_clients_or_conns_are_rejected() {
        assert!(parse(&["--clients", "0", "put"]).is_err());
        assert!(parse(&["--conns", "0", "put"]).is_err());
        assert!(parse(&["put", "--key-size", "0"]).is_err());
        assert!(parse(&["bogus"]).is_err());
    }

    #[test]
    fn user_is_name_colon_password() {
        assert_eq!(parse(&["put"]).unwrap().user, None);
        let cli = parse(&["--user", "bench:s3:cret", "range", "foo"]).unwrap();
        let user = cli.user.unwrap();
        assert_eq!((user.name.as_str(), user.password.as_str()), ("bench", "s3:cret"));
        assert!(!format!("{user:?}").contains("s3"), "Debug shows the password");
        let cli = parse(&["put", "--user=root:"]).unwrap();
        assert_eq!(cli.user.unwrap().password, "");
        assert!(parse(&["--user", "bench", "put"]).is_err(), "no password, no prompt");
        assert!(parse(&["--user", ":pw", "put"]).is_err());
    }

    #[test]
    fn endpoints_get_a_scheme() {
        assert_eq!(endpoint_url("127.0.0.1:2379", false), "http://127.0.0.1:2379");
        assert_eq!(endpoint_url(" http://127.0.0.2:2379", false), "http://127.0.0.2:2379");
        assert_eq!(endpoint_url("https://a:1", false), "https://a:1");
        assert_eq!(endpoint_url("127.0.0.1:2379", true), "https://127.0.0.1:2379");
        assert_eq!(endpoint_url("http://a:1", true), "http://a:1");
    }

    #[test]
    fn tls_flags_have_etcds_names_and_go_anywhere() {
        let cli = parse(&["put"]).unwrap();
        assert!(!cli.tls.enabled());
        let cli = parse(&[
            "--cacert",
            "ca.crt",
            "range",
            "foo",
            "--cert=client.crt",
            "--key",
            "client.key",
        ])
        .unwrap();
        assert_eq!(cli.tls.cacert.as_deref(), Some(std::path::Path::new("ca.crt")));
        assert_eq!(cli.tls.cert.as_deref(), Some(std::path::Path::new("client.crt")));
        assert_eq!(cli.tls.key.as_deref(), Some(std::path::Path::new("client.key")));
        assert!(!cli.tls.insecure_skip_tls_verify && cli.tls.enabled());
        // `--key` is the client key file, not range's positional key.
        let Workload::Range { key, .. } = workload(cli) else { panic!("not range") };
        assert_eq!(key.as_deref(), Some("foo"));
        let cli = parse(&["put", "--insecure-skip-tls-verify"]).unwrap();
        assert!(cli.tls.insecure_skip_tls_verify && cli.tls.enabled());
        assert!(parse(&["--cacert", "put"]).is_err());
    }
}
