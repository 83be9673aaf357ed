//! Output as etcd's tools print it: `-w simple` (comma-separated), `table` (etcd's
//! tablewriter layout), `json`, and for `snapshot status` also `fields`.

use crate::hashkv::HashKvStatus;
use crate::status::Status;

/// An output format (`-w`, `--write-out`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Simple,
    Table,
    Json,
    Fields,
}

impl Format {
    /// The format named `name`; `None` for one etcd's tools do not know either.
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "simple" => Some(Format::Simple),
            "table" => Some(Format::Table),
            "json" => Some(Format::Json),
            "fields" => Some(Format::Fields),
            _ => None,
        }
    }
}

/// `snapshot status` in `format`, with its final newline.
pub fn status(status: &Status, format: Format) -> String {
    let row = [
        format!("{:x}", status.hash),
        status.revision.to_string(),
        status.total_key.to_string(),
        humanize_bytes(status.total_size),
    ];
    match format {
        Format::Simple => format!("{}\n", row.join(", ")),
        Format::Table => table(&["hash", "revision", "total keys", "total size"], &row),
        Format::Json => format!(
            "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}\n",
            status.hash, status.revision, status.total_key, status.total_size
        ),
        Format::Fields => format!(
            "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n",
            status.hash, status.revision, status.total_key, status.total_size
        ),
    }
}

/// `hashkv` in `format` (`None` for `fields`, which etcdutl does not print it in).
pub fn hashkv(hash: &HashKvStatus, format: Format) -> Option<String> {
    let row =
        [hash.hash.to_string(), hash.hash_revision.to_string(), hash.compact_revision.to_string()];
    match format {
        Format::Simple => Some(format!("{}\n", row.join(", "))),
        Format::Table => Some(table(&["hash", "hash revision", "compact revision"], &row)),
        Format::Json => Some(format!(
            "{{\"hash\":{},\"hashRevision\":{},\"compactRevision\":{}}}\n",
            hash.hash, hash.hash_revision, hash.compact_revision
        )),
        Format::Fields => None,
    }
}

/// A size as etcd prints one (go-humanize's `Bytes`): SI units, one decimal below 10.
pub fn humanize_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 10 {
        return format!("{bytes} B");
    }
    let exp = ((bytes as f64).ln() / 1000f64.ln()).floor();
    let unit = UNITS[(exp as usize).min(UNITS.len() - 1)];
    let value = ((bytes as f64) / 1000f64.powf(exp) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 { format!("{value:.1} {unit}") } else { format!("{value:.0} {unit}") }
}

/// One row under upper-cased headers, in the layout of the tablewriter etcd's tools
/// use: headers centred, cells right-aligned, one space of padding, `+-|` borders.
fn table(headers: &[&str], row: &[String]) -> String {
    let headers: Vec<String> = headers.iter().map(|h| h.to_uppercase()).collect();
    let widths: Vec<usize> =
        headers.iter().zip(row).map(|(h, c)| h.chars().count().max(c.chars().count())).collect();
    let rule: String =
        widths.iter().map(|w| format!("+{}", "-".repeat(w + 2))).collect::<String>() + "+\n";
    let mut out = rule.clone();
    for (h, w) in headers.iter().zip(&widths) {
        let gap = w - h.chars().count();
        let left = gap / 2;
        out += &format!("| {}{}{} ", " ".repeat(left), h, " ".repeat(gap - left));
    }
    out += "|\n";
    out += &rule;
    for (c, w) in row.iter().zip(&widths) {
        out += &format!("| {c:>w$} ");
    }
    out += "|\n";
    out += &rule;
    out
}

/// What `migrate --to etcd` did, and what to run next.
pub fn moved_out(data_dir: &std::path::Path, moved: &crate::migrate::MovedOut) -> String {
    let mut out = format!(
        "migrated {} to etcd's format: backend {} (consistent index {}), {} snapshot file(s), \
         WAL of {} segment(s) ({} of {} entries re-encoded)\n",
        data_dir.display(),
        humanize_bytes(moved.backend_bytes),
        moved.consistent_index,
        moved.snapshot_files,
        moved.wal.segments,
        moved.wal.changed,
        moved.wal.entries,
    );
    for unrecorded in &moved.unrecorded_snapshots {
        out += &format!(
            "removed {}, a snapshot file its WAL has no record of (the member stopped between writing the two)\n",
            unrecorded.display()
        );
    }
    if let Some(kept) = &moved.removed_kept {
        out += &format!("removed {}, older than the backend just written\n", kept.display());
    }
    out +=
        "start etcd 3.4 on it with this member's flags; starting oxetcd on it converts it back\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_go_humanize_prints_them() {
        assert_eq!(humanize_bytes(0), "0 B");
        assert_eq!(humanize_bytes(9), "9 B");
        assert_eq!(humanize_bytes(10), "10 B");
        assert_eq!(humanize_bytes(20480), "20 kB");
        assert_eq!(humanize_bytes(2_100_000), "2.1 MB");
        assert_eq!(humanize_bytes(1_056_768), "1.1 MB");
        assert_eq!(humanize_bytes(82_854_982), "83 MB");
        assert_eq!(humanize_bytes(4_214_784), "4.2 MB");
        assert_eq!(humanize_bytes(1_000_000_000), "1.0 GB");
    }

    #[test]
    fn status_prints_as_etcdctl_3_4_does() {
        // etcd 3.4.23's `etcdctl snapshot status` of a snapshot of three puts.
        let s = Status { hash: 0xbe2683a1, revision: 4, total_key: 7, total_size: 20480 };
        assert_eq!(status(&s, Format::Simple), "be2683a1, 4, 7, 20 kB\n");
        assert_eq!(
            status(&s, Format::Table),
            "+----------+----------+------------+------------+\n\
             |   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |\n\
             +----------+----------+------------+------------+\n\
             | be2683a1 |        4 |          7 |      20 kB |\n\
             +----------+----------+------------+------------+\n"
        );
        assert_eq!(
            status(&s, Format::Json),
            "{\"hash\":3190195105,\"revision\":4,\"totalKey\":7,\"totalSize\":20480}\n"
        );
    }

    #[test]
    fn hashkv_prints_as_etcdutl_does() {
        let h = HashKvStatus { hash: 1_234_567, hash_revision: 9, compact_revision: -1 };
        assert_eq!(hashkv(&h, Format::Simple).unwrap(), "1234567, 9, -1\n");
        assert_eq!(
            hashkv(&h, Format::Json).unwrap(),
            "{\"hash\":1234567,\"hashRevision\":9,\"compactRevision\":-1}\n"
        );
        assert_eq!(
            hashkv(&h, Format::Table).unwrap(),
            "+---------+---------------+------------------+\n\
             |  HASH   | HASH REVISION | COMPACT REVISION |\n\
             +---------+---------------+------------------+\n\
             | 1234567 |             9 |               -1 |\n\
             +---------+---------------+------------------+\n"
        );
        assert_eq!(hashkv(&h, Format::Fields), None);
    }
}
