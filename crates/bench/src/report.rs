//! The results of a run: text like etcd's benchmark, or one JSON object.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::histogram::Histogram;

/// Rows of the text histogram.
const HISTOGRAM_ROWS: usize = 10;
/// Width of the longest histogram bar.
const BAR_WIDTH: u64 = 40;
const PERCENTILES: [(&str, f64); 4] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)];

#[derive(Debug, Default)]
pub struct Report {
    pub name: String,
    /// Latency of the successful requests.
    pub latency: Histogram,
    /// Failed requests, by status code and message.
    pub errors: BTreeMap<String, u64>,
    pub elapsed: Duration,
    /// Workload-specific counters (events delivered, ...).
    pub extra: BTreeMap<&'static str, u64>,
    /// Secondary measurements of the same run (the puts of a watch workload, ...).
    pub phases: Vec<Report>,
    /// Every request, with `--latency-log`.
    pub log: Option<LatencyLog>,
}

/// One request of a `--latency-log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When it was sent, since the run started.
    pub sent_ns: u64,
    pub latency_ns: u64,
    pub ok: bool,
}

/// Every request of a run, in order of sending, for windows the summary cannot give
/// (e.g. the latencies while something else happened on the server).
#[derive(Debug, Clone)]
pub struct LatencyLog {
    /// Wall clock at the run's start (samples are timed with the monotonic clock from it).
    pub start: SystemTime,
    pub samples: Vec<Sample>,
}

impl LatencyLog {
    /// Tab-separated text: a header, then `sent_unix_ns latency_ns ok` per request.
    pub fn write_tsv(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let start = self.start.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
        writeln!(out, "sent_unix_ns\tlatency_ns\tok")?;
        for s in &self.samples {
            writeln!(out, "{}\t{}\t{}", start + s.sent_ns, s.latency_ns, u8::from(s.ok))?;
        }
        Ok(())
    }
}

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

impl Report {
    pub fn ok(&self) -> u64 {
        self.latency.count()
    }

    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn requests_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.ok() as f64 / secs } else { 0.0 }
    }

    pub fn to_json(&self) -> Value {
        let h = &self.latency;
        let mut latency = serde_json::Map::new();
        latency.insert("average".into(), json!(h.mean() / 1e6));
        latency.insert("fastest".into(), json!(ms(h.min())));
        latency.insert("slowest".into(), json!(ms(h.max())));
        for (name, q) in PERCENTILES {
            latency.insert(name.into(), json!(ms(h.percentile(q))));
        }
        let histogram: Vec<Value> = h
            .linear_buckets(HISTOGRAM_ROWS)
            .into_iter()
            .map(|(le, count)| json!({ "le_ms": ms(le), "count": count }))
            .collect();
        json!({
            "workload": self.name,
            "requests": self.ok() + self.failed(),
            "ok": self.ok(),
            "errors_total": self.failed(),
            "errors": self.errors,
            "total_seconds": self.elapsed.as_secs_f64(),
            "requests_per_sec": self.requests_per_sec(),
            "latency_ms": latency,
            "histogram": histogram,
            "extra": self.extra,
            "phases": self.phases.iter().map(Report::to_json).collect::<Vec<_>>(),
        })
    }

    pub fn to_text(&self) -> String {
        let h = &self.latency;
        let mut out = String::new();
        let _ = writeln!(out, "Summary ({}):", self.name);
        let _ = writeln!(out, "  Total:\t{:.4} secs.", self.elapsed.as_secs_f64());
        let _ = writeln!(out, "  Requests:\t{} ok, {} failed", self.ok(), self.failed());
        let _ = writeln!(out, "  Slowest:\t{:.4} ms", ms(h.max()));
        let _ = writeln!(out, "  Fastest:\t{:.4} ms", ms(h.min()));
        let _ = writeln!(out, "  Average:\t{:.4} ms", h.mean() / 1e6);
        let _ = writeln!(out, "  Requests/sec:\t{:.2}", self.requests_per_sec());
        for (name, value) in &self.extra {
            let _ = writeln!(out, "  {name}:\t{value}");
        }
        let buckets = h.linear_buckets(HISTOGRAM_ROWS);
        if !buckets.is_empty() {
            let peak = buckets.iter().map(|b| b.1).max().unwrap_or(1).max(1);
            let _ = writeln!(out, "\nResponse time histogram (ms):");
            for (le, count) in buckets {
                let bar = "∎".repeat((count * BAR_WIDTH).div_ceil(peak) as usize);
                let _ = writeln!(out, "  {:>10.4} [{count}]\t|{bar}", ms(le));
            }
            let _ = writeln!(out, "\nLatency distribution:");
            for (name, q) in PERCENTILES {
                let _ = writeln!(out, "  {name:>6} in {:.4} ms", ms(h.percentile(q)));
            }
        }
        if !self.errors.is_empty() {
            let _ = writeln!(out, "\nErrors:");
            for (message, count) in &self.errors {
                let _ = writeln!(out, "  [{count}]\t{message}");
            }
        }
        for phase in &self.phases {
            let _ = write!(out, "\n{}", phase.to_text());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut r =
            Report { name: "put".into(), elapsed: Duration::from_secs(2), ..Report::default() };
        for us in 1..=100 {
            r.latency.record(us * 1_000);
        }
        r.errors.insert("Unavailable: no leader".into(), 3);
        r
    }

    #[test]
    fn json_has_counts_rates_and_percentiles() {
        let v = sample().to_json();
        assert_eq!(v["workload"], "put");
        assert_eq!(v["requests"], 103);
        assert_eq!(v["ok"], 100);
        assert_eq!(v["errors_total"], 3);
        assert_eq!(v["errors"]["Unavailable: no leader"], 3);
        assert_eq!(v["requests_per_sec"], 50.0);
        assert_eq!(v["latency_ms"]["slowest"], 0.1);
        assert_eq!(v["latency_ms"]["fastest"], 0.001);
        let p50 = v["latency_ms"]["p50"].as_f64().unwrap();
        assert!((p50 - 0.05).abs() < 0.0005, "{p50}");
        let rows = v["histogram"].as_array().unwrap();
        assert_eq!(rows.iter().map(|r| r["count"].as_u64().unwrap()).sum::<u64>(), 100);
    }

    #[test]
    fn latency_log_is_tab_separated_in_unix_time() {
        let log = LatencyLog {
            start: UNIX_EPOCH + Duration::from_secs(2),
            samples: vec![
                Sample { sent_ns: 5, latency_ns: 1_000, ok: true },
                Sample { sent_ns: 7, latency_ns: 30, ok: false },
            ],
        };
        let mut out = Vec::new();
        log.write_tsv(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "sent_unix_ns\tlatency_ns\tok\n2000000005\t1000\t1\n2000000007\t30\t0\n"
        );
    }

    #[test]
    fn text_has_summary_histogram_and_errors() {
        let t = sample().to_text();
        for needle in [
            "Summary (put)",
            "Requests/sec:\t50.00",
            "100 ok, 3 failed",
            "Response time histogram",
            "p99.9 in",
            "[3]\tUnavailable: no leader",
            "∎",
        ] {
            assert!(t.contains(needle), "missing {needle:?} in\n{t}");
        }
    }
}
