//! etcd flags that oxetcd accepts by name but whose feature it does not have: each is
//! accepted at its default (which is what oxetcd does), and any other value fails start,
//! so no setting is silently ignored.

/// Why a flag's non-default values are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The feature is planned; the text names the work that will build it.
    NotYet(&'static str),
    /// The feature will not be built; the text says why.
    Never(&'static str),
}

const DISCOVERY: Refusal =
    Refusal::NotYet("comes with discovery bootstrap, issue: membership (discovery)");
const STORAGE: Refusal = Refusal::NotYet("comes with storage operations, issue: storage");
const PROFILING: Refusal = Refusal::NotYet("comes with profiling, issue: metrics");
const V2: Refusal = Refusal::Never("oxetcd serves only etcd's v3 API");
const V2_PROXY: Refusal = Refusal::Never(
    "oxetcd has no v2 proxy (etcd 3.5 removed it); run etcd's grpc-proxy or a TCP proxy instead",
);
const CAPNSLOG: Refusal = Refusal::Never(
    "per-package levels belong to etcd's capnslog logger, which etcd 3.5 removed; use --log-level",
);

/// The refused flags, each with the work that will build it. A flag's value counts as its
/// default when it parses to the same value as the default does (so `--auth-token=simple`
/// and `--unsafe-no-fsync=false` start).
pub const REFUSED: &[(&str, Refusal)] = &[
    ("discovery", DISCOVERY),
    ("discovery-fallback", DISCOVERY),
    ("discovery-proxy", DISCOVERY),
    ("discovery-srv", DISCOVERY),
    ("discovery-srv-name", DISCOVERY),
    ("experimental-backend-bbolt-freelist-type", STORAGE),
    ("experimental-warning-apply-duration", STORAGE),
    ("unsafe-no-fsync", STORAGE),
    ("enable-pprof", PROFILING),
    ("enable-v2", V2),
    ("experimental-enable-v2v3", V2),
    ("proxy", V2_PROXY),
    ("proxy-failure-wait", V2_PROXY),
    ("proxy-refresh-interval", V2_PROXY),
    ("proxy-dial-timeout", V2_PROXY),
    ("proxy-write-timeout", V2_PROXY),
    ("proxy-read-timeout", V2_PROXY),
    ("log-package-levels", CAPNSLOG),
];
