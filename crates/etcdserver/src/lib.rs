//! The oxetcd server core: etcd's `etcdserver` package. It knows raft, the WAL, the
//! store and the peers; it knows nothing of gRPC services, flags or listeners.
//!
//! - [`config`]: [`ServerConfig`], the checked settings a member runs with.
//! - [`bootstrap`]: data-dir layout; a new member's bootstrap, a restart's recovery.
//! - `node`: the raft loop thread (tick, step, Ready → WAL → send → apply → advance).
//! - `apply`: the apply thread (committed entries → mvcc store, lessor, membership).
//! - [`server`]: [`EtcdServer`], the way in for requests: propose and linearizable reads.
//! - [`watch`]: the watchable store between apply and the Watch streams.
//! - [`membership`]: the cluster's members as the log has built them.
//! - [`compactor`]: auto compaction (`--auto-compaction-*`), on the leader.
//! - [`corrupt`]: the corruption checks (initial, periodic, compaction hashes).
//! - [`stats`]: what the server counts, for the binary's metrics.
//! - [`etcd_encoding`]: etcd's forms of log entries and snapshot data, read, and written
//!   for etcd 3.4 (public for `oxetcdutl migrate --to etcd` and the fuzz targets, `fuzz/`).

/// A failpoint, compiled in only with the `failpoints` feature (tests): when a test
/// enables `$name` (the `fail` crate's registry), the enclosing function returns
/// `$e(argument)`.
macro_rules! failpoint {
    ($name:literal, $e:expr) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name, $e);
    };
}

pub mod alarm;
mod apply;
pub mod auth;
pub mod bootstrap;
pub mod compactor;
pub mod config;
pub mod corrupt;
pub mod error;
pub mod etcd_encoding;
#[cfg(feature = "failpoints")]
pub mod failpoint_http;
pub mod id;
mod inbox;
pub mod maintenance;
pub mod membership;
mod node;
mod peers;
pub mod quota;
mod reconfig;
mod relay;
pub mod server;
mod state;
pub mod stats;
mod wait;
pub mod watch;

pub use auth::{AuthApplied, Requester};
pub use config::{InitialClusterState, ServerConfig};
pub use error::{Fatal, ServerError};
pub use server::{Applied, ClientCredentials, EtcdServer};

/// Enables the failpoints named in the `FAILPOINTS` environment variable
/// (`name=action;...`, the `fail` crate's syntax) for the life of the process and, when
/// `OXETCD_FAILPOINTS_HTTP` names an address, serves their control there (arm, disarm,
/// list while the member runs: the `failpoint_http` module), in builds with the `failpoints`
/// feature; does nothing in others. For the binary under test. Fails when the control's
/// address cannot be listened on.
pub fn failpoints_from_env() -> Result<(), String> {
    #[cfg(feature = "failpoints")]
    {
        std::mem::forget(fail::FailScenario::setup());
        if let Ok(address) = std::env::var(failpoint_http::ADDRESS_ENV) {
            let bound = failpoint_http::serve(&address).map_err(|e| {
                format!(
                    "cannot serve failpoint control on {address} ({}): {e}",
                    failpoint_http::ADDRESS_ENV
                )
            })?;
            tracing::info!(address = %bound, "serving failpoint control over HTTP");
        }
    }
    Ok(())
}
