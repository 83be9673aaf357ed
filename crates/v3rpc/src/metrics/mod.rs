//! `/metrics`: etcd's Prometheus metrics (names, types, labels, units and buckets of
//! etcd 3.4), rendered at each scrape from the stats the libraries keep (the server's
//! counters, the WAL's and the store's) and from the gRPC calls counted here. There is
//! no registry: each family below reads its figure where it lives. The text is written
//! by hand ([`text`]) rather than with a Prometheus crate: the page is small, and
//! writing it ourselves reproduces etcd's exactly (Go's number format, label order).
//! docs/compatibility.md lists what is served and what is not.

mod grpc;
mod process;
mod text;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use oxetcd_etcdserver::EtcdServer;
use oxetcd_etcdserver::id::Hex;
use oxetcd_etcdserver::server::ETCD_VERSION;

pub(crate) use grpc::Call;
use grpc::{CODES, GrpcStats};
use text::{Family, Kind};

/// `--metrics`: how much is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricsLevel {
    /// etcd's default.
    #[default]
    Basic,
    /// Adds the gRPC handling-time histograms.
    Extensive,
}

/// One member's metrics: its server, and the gRPC calls its client listeners counted.
pub struct Metrics {
    server: Arc<EtcdServer>,
    pub(crate) grpc: Arc<GrpcStats>,
}

impl Metrics {
    pub fn new(server: Arc<EtcdServer>, level: MetricsLevel) -> Arc<Metrics> {
        Arc::new(Metrics {
            server,
            grpc: Arc::new(GrpcStats::new(level == MetricsLevel::Extensive)),
        })
    }

    pub(crate) fn server(&self) -> &Arc<EtcdServer> {
        &self.server
    }

    /// The page `/metrics` answers with.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        self.server_families(&mut out);
        self.store_families(&mut out);
        self.disk_families(&mut out);
        self.grpc_families(&mut out);
        process::families(&mut out);
        text::page(out)
    }

    fn server_families(&self, out: &mut Vec<Family>) {
        let s = &self.server;
        let stats = s.stats();
        let status = s.raft_status();
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        let mut one = |name, kind, help, value| out.push(Family::single(name, kind, help, value));
        one(
            "etcd_server_has_leader",
            Kind::Gauge,
            "1 if a leader is known, 0 if not.",
            flag(status.leader != 0),
        );
        one(
            "etcd_server_is_leader",
            Kind::Gauge,
            "1 if this member leads, 0 if not.",
            flag(s.is_leader()),
        );
        one(
            "etcd_server_is_learner",
            Kind::Gauge,
            "1 if this member is a learner, 0 if not.",
            flag(s.is_learner()),
        );
        one(
            "etcd_server_leader_changes_seen_total",
            Kind::Counter,
            "Leaders elected or newly seen by this member.",
            load(&stats.leader_changes),
        );
        one(
            "etcd_server_heartbeat_send_failures_total",
            Kind::Counter,
            "Heartbeats this leader sent late (slow disk or starved CPU).",
            load(&stats.heartbeat_send_failures),
        );
        one(
            "etcd_server_slow_apply_total",
            Kind::Counter,
            "Entries whose apply took over 100ms.",
            load(&stats.slow_applies),
        );
        one(
            "etcd_server_proposals_committed_total",
            Kind::Gauge,
            "Raft index committed (consensus proposals committed).",
            status.committed as f64,
        );
        one(
            "etcd_server_proposals_applied_total",
            Kind::Gauge,
            "Raft index applied (consensus proposals applied).",
            status.applied as f64,
        );
        one(
            "etcd_server_proposals_pending",
            Kind::Gauge,
            "Proposals waiting to be applied.",
            stats.proposals_pending.load(Ordering::Relaxed) as f64,
        );
        one(
            "etcd_server_proposals_failed_total",
            Kind::Counter,
            "Proposals dropped or timed out.",
            load(&stats.proposals_failed),
        );
        one(
            "etcd_server_quota_backend_bytes",
            Kind::Gauge,
            "The backend quota, in bytes.",
            s.quota_bytes() as f64,
        );
        let mut labelled = |name, help, label, value: &str| {
            let mut family = Family::new(name, Kind::Gauge, help);
            family.sample(&[(label, value)], 1.0);
            out.push(family);
        };
        labelled(
            "etcd_server_version",
            "1 for the etcd version served.",
            "server_version",
            ETCD_VERSION,
        );
        labelled(
            "etcd_server_id",
            "1 for this member's id, in hex.",
            "server_id",
            &Hex(s.member_id()).to_string(),
        );
        if let Some(cluster) = s.cluster_version() {
            labelled(
                "etcd_cluster_version",
                "1 for the cluster's version (major.minor).",
                "cluster_version",
                major_minor(&cluster),
            );
        }
    }

    fn store_families(&self, out: &mut Vec<Family>) {
        let s = &self.server;
        let ops = &s.stats().store;
        let size = s.backend_size();
        let watch = s.watch_hub().counts();
        let mut one = |name, kind, help, value| out.push(Family::single(name, kind, help, value));
        one(
            "etcd_mvcc_db_total_size_in_bytes",
            Kind::Gauge,
            "The backend file's size, in bytes.",
            size.total_bytes as f64,
        );
        one(
            "etcd_debugging_mvcc_db_total_size_in_bytes",
            Kind::Gauge,
            "The backend file's size, in bytes.",
            size.total_bytes as f64,
        );
        one(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            Kind::Gauge,
            "Bytes of the backend holding data.",
            size.in_use_bytes as f64,
        );
        // etcd 3.4 counts each op under both names (the debugging ones are its old names).
        let mut op_families = Vec::new();
        for (op, counter, help) in [
            ("put", &ops.puts, "Put ops applied by this member."),
            ("range", &ops.ranges, "Range ops served by this member."),
            ("delete", &ops.deletes, "DeleteRange ops applied by this member."),
            ("txn", &ops.txns, "Transactions of more than one op run by this member."),
        ] {
            let value = counter.load(Ordering::Relaxed) as f64;
            for name in [format!("etcd_mvcc_{op}_total"), format!("etcd_debugging_mvcc_{op}_total")]
            {
                op_families.push(Family::single(name, Kind::Counter, help, value));
            }
        }
        if let Ok(store) = s.store() {
            one(
                "etcd_debugging_mvcc_keys_total",
                Kind::Gauge,
                "Keys that exist now.",
                store.key_count() as f64,
            );
            one(
                "etcd_debugging_mvcc_current_revision",
                Kind::Gauge,
                "The store's current revision.",
                store.current_revision() as f64,
            );
            one(
                "etcd_debugging_mvcc_compact_revision",
                Kind::Gauge,
                "The revision of the last compaction.",
                store.compact_revision() as f64,
            );
        }
        one(
            "etcd_debugging_mvcc_watch_stream_total",
            Kind::Gauge,
            "Open watch streams.",
            watch.streams as f64,
        );
        one("etcd_debugging_mvcc_watcher_total", Kind::Gauge, "Watchers.", watch.watchers as f64);
        one(
            "etcd_debugging_mvcc_slow_watcher_total",
            Kind::Gauge,
            "Watchers catching up on history or waiting for their stream.",
            watch.slow as f64,
        );
        out.extend(op_families);
    }

    fn disk_families(&self, out: &mut Vec<Family>) {
        let stats = self.server.stats();
        for (name, help, histogram) in [
            (
                "etcd_disk_wal_fsync_duration_seconds",
                "How long the WAL's fdatasyncs took.",
                &stats.wal.fsync,
            ),
            (
                "etcd_disk_backend_commit_duration_seconds",
                "How long backend commits took.",
                &stats.store.commit,
            ),
        ] {
            let mut family = Family::new(name, Kind::Histogram, help);
            family.histogram(&[], &histogram.snapshot());
            out.push(family);
        }
        out.push(Family::single(
            "etcd_disk_wal_write_bytes_total",
            Kind::Gauge,
            "Bytes written to the WAL.",
            stats.wal.bytes_written.load(Ordering::Relaxed) as f64,
        ));
    }

    fn grpc_families(&self, out: &mut Vec<Family>) {
        let mut started =
            Family::new("grpc_server_started_total", Kind::Counter, "RPCs started on the server.");
        let mut handled = Family::new(
            "grpc_server_handled_total",
            Kind::Counter,
            "RPCs completed on the server, whatever their code.",
        );
        let mut received = Family::new(
            "grpc_server_msg_received_total",
            Kind::Counter,
            "RPC messages received by the server.",
        );
        let mut sent = Family::new(
            "grpc_server_msg_sent_total",
            Kind::Counter,
            "RPC messages sent by the server.",
        );
        let mut timed = self.grpc.timed().then(|| {
            Family::new(
                "grpc_server_handling_seconds",
                Kind::Histogram,
                "How long RPCs took until the server finished them.",
            )
        });
        // Go's client lists a family's samples in the order of their label values.
        let mut methods: Vec<_> = self.grpc.methods().iter().collect();
        methods.sort_by(|a, b| (&a.method, &a.service).cmp(&(&b.method, &b.service)));
        let mut handled_samples = Vec::new();
        for m in methods {
            let count = m.started.load(Ordering::Relaxed);
            if !m.up_front && count == 0 {
                continue;
            }
            let labels = [
                ("grpc_method", m.method.as_str()),
                ("grpc_service", m.service.as_str()),
                ("grpc_type", m.call_type.label()),
            ];
            started.sample(&labels, count as f64);
            received.sample(&labels, m.received() as f64);
            sent.sample(&labels, m.sent() as f64);
            if let Some(timed) = &mut timed {
                timed.histogram(&labels, &m.handling.snapshot());
            }
            for (code, counter) in CODES.iter().zip(&m.handled) {
                handled_samples.push((*code, m, counter.load(Ordering::Relaxed)));
            }
        }
        handled_samples.sort_by(|a, b| {
            (a.0, &a.1.method, &a.1.service).cmp(&(b.0, &b.1.method, &b.1.service))
        });
        for (code, m, count) in handled_samples {
            let labels = [
                ("grpc_code", code),
                ("grpc_method", m.method.as_str()),
                ("grpc_service", m.service.as_str()),
                ("grpc_type", m.call_type.label()),
            ];
            handled.sample(&labels, count as f64);
        }
        out.extend([started, handled, received, sent]);
        out.extend(timed);
    }
}

/// `3.5` of `3.5.0`: etcd labels the cluster version with its major and minor only.
fn major_minor(version: &str) -> &str {
    match version.match_indices('.').nth(1) {
        Some((second_dot, _)) => &version[..second_dot],
        None => version,
    }
}
