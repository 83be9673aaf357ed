//! Writes or reads a large bbolt file, to measure time and peak memory:
//!
//!   cargo run --release -p oxetcd-bbolt --example perf -- write PATH MIB
//!   cargo run --release -p oxetcd-bbolt --example perf -- read PATH
//!
//! (run under `/usr/bin/time -v` for the peak RSS). `write` fills etcd's `key` bucket with
//! revision keys and ~1 KiB values; `read` walks every bucket and runs `Db::check`.

use std::io::BufWriter;
use std::time::Instant;

use oxetcd_bbolt::{Db, Writer, WriterOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("write") if args.len() == 4 => {
            let mib: u64 = args[3].parse()?;
            let start = Instant::now();
            let file = std::fs::File::create(&args[2])?;
            let mut w =
                Writer::new(BufWriter::with_capacity(1 << 16, file), WriterOptions::default())?;
            w.begin_bucket(b"key")?;
            let mut value = vec![0u8; 1024];
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            let n = mib * 1024;
            for rev in 1..=n {
                let mut key = rev.to_be_bytes().to_vec();
                key.push(b'_');
                key.extend_from_slice(&0u64.to_be_bytes());
                for chunk in value.chunks_mut(8) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
                }
                w.put(&key, &value)?;
            }
            w.end_bucket()?;
            w.begin_bucket(b"meta")?;
            w.put(b"consistent_index", &n.to_be_bytes())?;
            w.end_bucket()?;
            let (out, layout) = w.finish()?;
            out.into_inner()?.sync_all()?;
            println!(
                "wrote {n} pairs, {} bytes ({} pages) in {:?}",
                layout.file_size(),
                layout.pages,
                start.elapsed()
            );
        }
        Some("read") if args.len() == 3 => {
            let start = Instant::now();
            let db = Db::open(&args[2])?;
            let (mut pairs, mut bytes) = (0u64, 0u64);
            for name in db.buckets()? {
                let Some(b) = db.bucket(&name)? else { continue };
                for kv in b.iter() {
                    let (k, v) = kv?;
                    pairs += 1;
                    bytes += (k.len() + v.len()) as u64;
                }
            }
            let walked = start.elapsed();
            let stats = db.check()?;
            println!(
                "read {pairs} pairs, {bytes} bytes in {walked:?}; check {stats:?} in {:?}",
                start.elapsed() - walked
            );
        }
        _ => return Err("usage: perf write PATH MIB | perf read PATH".into()),
    }
    Ok(())
}
