//! The floor under a one-client put (issue #19's target for `put-1c`): a single-member
//! put cannot be acknowledged before its WAL record is on disk and its request and answer
//! have crossed the loopback once each, so no server beats one fdatasync plus one round
//! trip on the same machine. This measures both with nothing else in the way (no gRPC, no
//! HTTP/2, no raft, no async runtime), in the order a put meets them, so `put-1c`'s
//! throughput can be stated as a share of what the machine allows.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::args::FloorArgs;
use crate::error::BenchError;
use crate::histogram::Histogram;
use crate::report::Report;

/// Size of the synced file, written in full before timing: both servers preallocate
/// their WAL segments (etcd's `SegmentSizeBytes`, 64 MB), so a WAL append's fdatasync
/// updates no file size or block map. Records wrap around inside it.
pub const PREALLOCATED_BYTES: u64 = 64 * 1024 * 1024;

/// Names of the report's phases, one per part of the floor.
const FSYNC_PHASE: &str = "fdatasync";
const ROUND_TRIP_PHASE: &str = "round-trip";

/// Times `total` iterations of (write and fdatasync a record, send a record to an echo
/// thread over loopback TCP and read it back), stopping early after `max_duration`.
/// The report's latency is the iteration's, its phases each part's alone.
pub fn measure(
    args: &FloorArgs,
    total: u64,
    max_duration: Option<Duration>,
) -> Result<Report, BenchError> {
    let record_size = args.record_size as usize;
    assert!(record_size as u64 <= PREALLOCATED_BYTES, "clap bounds --record-size");
    let failed = |what: &str, e: io::Error| BenchError::Setup(format!("floor: {what}: {e}"));

    let file = scratch_file(&args.dir)
        .map_err(|e| failed(&format!("preparing a file in {}", args.dir.display()), e))?;
    let (mut conn, echo) = echo_pair(record_size).map_err(|e| failed("loopback echo", e))?;

    let record = vec![0x5a_u8; record_size];
    let mut answer = vec![0_u8; record_size];
    let slots = PREALLOCATED_BYTES / args.record_size;
    let (mut iterations, mut fsyncs, mut round_trips) =
        (Histogram::default(), Histogram::default(), Histogram::default());
    let start = Instant::now();
    for i in 0..total {
        if max_duration.is_some_and(|max| start.elapsed() >= max) {
            break;
        }
        let began = Instant::now();
        file.write_all_at(&record, (i % slots) * args.record_size)
            .and_then(|()| file.sync_data())
            .map_err(|e| failed("fdatasync", e))?;
        let synced = Instant::now();
        conn.write_all(&record)
            .and_then(|()| conn.read_exact(&mut answer))
            .map_err(|e| failed("round trip", e))?;
        let answered = Instant::now();
        fsyncs.record(nanos(synced - began));
        round_trips.record(nanos(answered - synced));
        iterations.record(nanos(answered - began));
    }
    let elapsed = start.elapsed();
    drop(conn);
    let _ = echo.join();

    // A phase's time is the sum of its samples: its rate is that part's alone.
    let phase = |name: &str, latency: Histogram| Report {
        name: name.to_string(),
        elapsed: Duration::from_nanos(u64::try_from(latency.sum()).unwrap_or(u64::MAX)),
        latency,
        ..Report::default()
    };
    Ok(Report {
        name: "floor".to_string(),
        latency: iterations,
        elapsed,
        phases: vec![phase(FSYNC_PHASE, fsyncs), phase(ROUND_TRIP_PHASE, round_trips)],
        ..Report::default()
    })
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A new file in `dir` of `PREALLOCATED_BYTES` zeros, on disk (synced) before timing,
/// and already unlinked: only scratch, gone when it is closed, whatever happens.
pub fn scratch_file(dir: &Path) -> io::Result<File> {
    let path = dir.join(format!(".oxetcd-bench-floor-{}", std::process::id()));
    let file = File::options().read(true).write(true).create_new(true).open(&path);
    let filled = file.and_then(|mut file| {
        let chunk = vec![0_u8; 1 << 20];
        for _ in 0..PREALLOCATED_BYTES / chunk.len() as u64 {
            file.write_all(&chunk)?;
        }
        file.sync_all()?;
        Ok(file)
    });
    let _ = std::fs::remove_file(&path);
    filled
}

/// A connected loopback pair whose far end (a thread) sends back every record it reads,
/// until the near end closes. Nagle is off on both ends, as gRPC servers and clients set it.
fn echo_pair(record_size: usize) -> io::Result<(TcpStream, thread::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let conn = TcpStream::connect(listener.local_addr()?)?;
    conn.set_nodelay(true)?;
    let (mut far, _) = listener.accept()?;
    far.set_nodelay(true)?;
    let echo = thread::spawn(move || {
        let mut buf = vec![0_u8; record_size];
        while far.read_exact(&mut buf).is_ok() && far.write_all(&buf).is_ok() {}
    });
    Ok((conn, echo))
}
