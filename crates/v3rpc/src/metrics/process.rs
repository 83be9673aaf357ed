//! The process' own figures, read from `/proc` at each scrape as Prometheus' Go
//! client's process collector reads them (`process_*`, and etcd's `os_fd_*`), and the
//! Go-runtime figures
//! dashboards plot, given by what stands for them here (`go_goroutines`: tokio tasks;
//! `go_threads`: OS threads).

use super::text::{Family, Kind};

/// What `/proc/self/stat` and friends say; `None` where a file could not be read (not
/// Linux, or a restricted `/proc`): the family is then left out, as Go's client does.
#[derive(Debug, Default)]
struct Process {
    cpu_seconds: Option<f64>,
    threads: Option<f64>,
    virtual_bytes: Option<f64>,
    resident_bytes: Option<f64>,
    start_seconds: Option<f64>,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
}

fn read_process() -> Process {
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let page = rustix::param::page_size() as f64;
    let mut p = Process::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command (which may hold spaces), from field 3 (`state`) on.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
        if let (Some(utime), Some(stime)) = (field(14), field(15)) {
            p.cpu_seconds = Some((utime + stime) / ticks);
        }
        p.threads = field(20);
        p.virtual_bytes = field(23);
        p.resident_bytes = field(24).map(|pages| pages * page);
        p.start_seconds = field(22).zip(boot_time()).map(|(start, boot)| boot + start / ticks);
    }
    p.open_fds = std::fs::read_dir("/proc/self/fd").ok().map(|dir| dir.count() as f64);
    p.max_fds = std::fs::read_to_string("/proc/self/limits").ok().and_then(|limits| {
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse().ok()
    });
    p
}

/// When the machine booted, in seconds since the epoch (`btime` of `/proc/stat`).
fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|b| b.trim().parse().ok())
}

/// The `process_*`, `os_fd_*`, `go_goroutines` and `go_threads` families.
pub fn families(out: &mut Vec<Family>) {
    let p = read_process();
    let mut one = |name, kind, help, value: Option<f64>| {
        out.extend(value.map(|value| Family::single(name, kind, help, value)));
    };
    one(
        "process_cpu_seconds_total",
        Kind::Counter,
        "User and system CPU time spent, in seconds.",
        p.cpu_seconds,
    );
    one("process_open_fds", Kind::Gauge, "Open file descriptors.", p.open_fds);
    one(
        "process_max_fds",
        Kind::Gauge,
        "Most open file descriptors allowed (soft limit).",
        p.max_fds,
    );
    one(
        "process_virtual_memory_bytes",
        Kind::Gauge,
        "Virtual memory size, in bytes.",
        p.virtual_bytes,
    );
    one(
        "process_resident_memory_bytes",
        Kind::Gauge,
        "Resident memory size, in bytes.",
        p.resident_bytes,
    );
    one(
        "process_start_time_seconds",
        Kind::Gauge,
        "When the process started, in seconds since the Unix epoch.",
        p.start_seconds,
    );
    // etcd 3.4's own names for the same two figures.
    one("os_fd_used", Kind::Gauge, "Open file descriptors.", p.open_fds);
    one("os_fd_limit", Kind::Gauge, "Most open file descriptors allowed (soft limit).", p.max_fds);
    one(
        "go_threads",
        Kind::Gauge,
        "OS threads of the process (oxetcd has no Go runtime).",
        p.threads,
    );
    let tasks = tokio::runtime::Handle::try_current()
        .ok()
        .map(|runtime| runtime.metrics().num_alive_tasks() as f64);
    one(
        "go_goroutines",
        Kind::Gauge,
        "Live tasks of the client runtime (oxetcd's stand-in for goroutines).",
        tasks,
    );
}
