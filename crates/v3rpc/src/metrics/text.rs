//! Prometheus' text exposition format (version 0.0.4), written by hand: families in name
//! order, labels in name order with `le` last, numbers as Go's client prints them, so
//! the page reads like etcd's own `/metrics`.

use std::fmt::Write;

use oxetcd_stats::HistogramSnapshot;

/// A metric family's type, as `# TYPE` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One family being written: its `# HELP` and `# TYPE` lines, then its samples.
pub struct Family {
    name: String,
    text: String,
}

/// Label pairs, in the order given (callers give them sorted by name).
pub type Labels<'a> = &'a [(&'a str, &'a str)];

impl Family {
    pub fn new(name: impl Into<String>, kind: Kind, help: &str) -> Family {
        let name = name.into();
        let mut text = String::new();
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} {}", kind.name());
        Family { name, text }
    }

    /// A family of one sample without labels.
    pub fn single(name: impl Into<String>, kind: Kind, help: &str, value: f64) -> Family {
        let mut family = Family::new(name, kind, help);
        family.sample(&[], value);
        family
    }

    /// A counter or gauge sample.
    pub fn sample(&mut self, labels: Labels<'_>, value: f64) {
        let name = std::mem::take(&mut self.name);
        self.line(&name, labels, None, value);
        self.name = name;
    }

    /// A histogram's `_bucket`, `_sum` and `_count` samples.
    pub fn histogram(&mut self, labels: Labels<'_>, h: &HistogramSnapshot) {
        let bucket = format!("{}_bucket", self.name);
        for (bound, count) in &h.buckets {
            self.line(&bucket, labels, Some(&go_float(*bound)), *count as f64);
        }
        self.line(&bucket, labels, Some("+Inf"), h.count as f64);
        self.line(&format!("{}_sum", self.name), labels, None, h.sum_seconds);
        self.line(&format!("{}_count", self.name), labels, None, h.count as f64);
    }

    fn line(&mut self, name: &str, labels: Labels<'_>, le: Option<&str>, value: f64) {
        let text = &mut self.text;
        text.push_str(name);
        if !labels.is_empty() || le.is_some() {
            text.push('{');
            let le = le.map(|le| ("le", le));
            for (i, (label, value)) in labels.iter().copied().chain(le).enumerate() {
                if i > 0 {
                    text.push(',');
                }
                let _ = write!(text, "{label}=\"{}\"", escape(value));
            }
            text.push('}');
        }
        text.push(' ');
        text.push_str(&go_float(value));
        text.push('\n');
    }
}

/// Writes `families` sorted by name, as Go's client gathers them.
pub fn page(mut families: Vec<Family>) -> String {
    families.sort_by(|a, b| a.name.cmp(&b.name));
    families.into_iter().map(|f| f.text).collect()
}

/// A label value escaped as the format requires.
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\\', '"', '\n']) {
        value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").into()
    } else {
        value.into()
    }
}

/// A number as Go's `strconv.FormatFloat(f, 'g', -1, 64)` writes it, which is how
/// Prometheus' Go client prints sample values and bucket bounds: the shortest digits
/// that read back the same, in exponent form (`1.5e+06`, `1e-05`) when the decimal
/// exponent is below -4 or at least [`GO_SHORTEST_EXPONENT_LIMIT`].
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if f == 0.0 {
        return "0".into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `1.5e6`, `1e-5`.
    let sci = format!("{f:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..GO_SHORTEST_EXPONENT_LIMIT).contains(&exponent) {
        return format!("{f}");
    }
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

/// Go's `%g` with the shortest precision switches to exponent form from this decimal
/// exponent on (its `eprec = 6` for shortest formatting).
const GO_SHORTEST_EXPONENT_LIMIT: i32 = 6;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_gos_client_writes_them() {
        for (f, go) in [
            (0.0, "0"),
            (1.0, "1"),
            (2.0, "2"),
            (123456.0, "123456"),
            (1_000_000.0, "1e+06"),
            (2_048_000.0, "2.048e+06"),
            (1_234_567.0, "1.234567e+06"),
            (0.001, "0.001"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (8.192, "8.192"),
            (0.0001 * 2f64.powi(15), "3.2768"),
            (-1.5, "-1.5"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(go_float(f), go, "{f}");
        }
    }

    #[test]
    fn a_family_has_help_type_and_sorted_labels_with_le_last() {
        let mut f = Family::new("x_seconds", Kind::Histogram, "How long.");
        let h = HistogramSnapshot { buckets: vec![(0.5, 1), (1.0, 2)], count: 3, sum_seconds: 2.5 };
        f.histogram(&[("a", "q\"uote")], &h);
        let mut g = Family::new("a_total", Kind::Counter, "Things.");
        g.sample(&[], 7.0);
        assert_eq!(
            page(vec![f, g]),
            "# HELP a_total Things.\n# TYPE a_total counter\na_total 7\n\
             # HELP x_seconds How long.\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{a=\"q\\\"uote\",le=\"0.5\"} 1\n\
             x_seconds_bucket{a=\"q\\\"uote\",le=\"1\"} 2\n\
             x_seconds_bucket{a=\"q\\\"uote\",le=\"+Inf\"} 3\n\
             x_seconds_sum{a=\"q\\\"uote\"} 2.5\nx_seconds_count{a=\"q\\\"uote\"} 3\n"
        );
    }
}
