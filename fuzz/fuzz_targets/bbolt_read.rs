//! Any bytes opened as a bbolt file: every way of reading it ends in a value or an
//! `Error`, never a panic, an endless walk or an allocation the file's size does not
//! bound. Seeded with a real etcd 3.4.23 backend (`seeds/bbolt_read/`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxetcd_bbolt::Db;

fuzz_target!(|data: &[u8]| {
    let Ok(db) = Db::from_reader(data) else { return };
    let _ = db.check();
    let _ = db.freelist();
    let Ok(names) = db.buckets() else { return };
    for name in names {
        let Ok(Some(bucket)) = db.bucket(&name) else { continue };
        for entry in bucket.cursor() {
            let Ok(entry) = entry else { break };
            if entry.is_bucket {
                let _ = bucket.open(&entry).map(|nested| nested.iter().count());
            } else {
                let _ = bucket.get(&entry.key);
            }
        }
    }
});
