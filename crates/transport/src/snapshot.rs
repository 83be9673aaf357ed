//! Raft snapshots with their backend file: sending (`Peer.Snapshot` client) and
//! receiving (into the snapshot directory).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use oxetcd_api::oxetcdpb::{SnapshotChunk, SnapshotReceived};
use oxetcd_raft::{Message, MessageType, SnapshotStatus};
use prost::Message as _;
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use tracing::{info, warn};

use crate::dial::dial;
use crate::header::{CallIds, stamp_peer_urls};
use crate::server::REMOVED_MEMBER;
use crate::shared::{HexId, Shared, next_or_stop, report_snapshot_failure};
use crate::stats::Stats;

/// Chunks read ahead of the network.
const CHUNKS_IN_FLIGHT: usize = 2;
/// Names of files being received: `.oxetcd-recv-<random>.tmp`.
const TEMP_PREFIX: &str = ".oxetcd-recv-";
const TEMP_SUFFIX: &str = ".tmp";

/// The file name a received snapshot at raft index `index` gets, in the snapshot
/// directory; the server finds it there when raft hands it the snapshot.
pub fn received_snapshot_file(index: u64) -> String {
    format!("{index:016x}.snap.db")
}

/// Removes temporary files left in `dir` by transfers a crash interrupted.
pub(crate) fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    info!(path = %entry.path().display(), "removed an interrupted snapshot transfer")
                }
                Err(error) => {
                    warn!(path = %entry.path().display(), %error, "cannot remove an interrupted snapshot transfer")
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot connect: {0}")]
    Dial(String),
    #[error("the peer refused the snapshot: {}", .0.message())]
    Refused(Status),
    #[error("the call ended before the whole file was sent")]
    Interrupted,
    #[error("the peer acknowledged {acked} bytes of {sent}")]
    Incomplete { sent: u64, acked: u64 },
    #[cfg(feature = "failpoints")]
    #[error("dropped: failpoint {} names the peer", crate::failpoints::DROP_SEND)]
    Dropped,
}

/// Sends `msg` and the file `db` to peer `msg.to`, then reports the outcome.
pub(crate) async fn send(
    shared: Arc<Shared>,
    urls: watch::Receiver<Vec<String>>,
    msg: Message,
    db: PathBuf,
) {
    let to = msg.to;
    let index = msg.snapshot.as_ref().map_or(0, |s| s.index());
    let started = Instant::now();
    info!(peer = %HexId(to), index, db = %db.display(), "sending database snapshot");
    match transfer(&shared, &urls, &msg, &db).await {
        Ok(bytes) => {
            info!(peer = %HexId(to), index, bytes, took = ?started.elapsed(), "sent database snapshot");
            Stats::add(&shared.stats.snapshots_sent, 1);
            shared.handler.report_snapshot(to, SnapshotStatus::Finish);
        }
        Err(error) => {
            if let SendError::Refused(status) = &error
                && status.code() == tonic::Code::PermissionDenied
                && status.message() == REMOVED_MEMBER
            {
                // This member was removed: it stops (etcd's critical error).
                tracing::error!(peer = %HexId(to), "peer refused this member's snapshot: it was removed from the cluster");
                shared.handler.removed_by_peer(to);
            }
            warn!(peer = %HexId(to), index, %error, "failed to send database snapshot");
            Stats::add(&shared.stats.snapshots_failed, 1);
            report_snapshot_failure(&shared, to);
        }
    }
}

async fn transfer(
    shared: &Shared,
    urls: &watch::Receiver<Vec<String>>,
    msg: &Message,
    db: &Path,
) -> Result<u64, SendError> {
    #[cfg(feature = "failpoints")]
    if crate::failpoints::drops(crate::failpoints::DROP_SEND, msg.to) {
        return Err(SendError::Dropped);
    }
    let read_error = |source| SendError::Read { path: db.to_owned(), source };
    let file = File::open(db).await.map_err(read_error)?;
    let config = &shared.config;
    let urls = urls.borrow().clone();
    let mut client = dial(config, &urls, &mut 0).await.map_err(SendError::Dial)?;
    let (chunks, outgoing) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let mut request = tonic::Request::new(ReceiverStream::new(outgoing));
    CallIds { cluster_id: config.cluster_id, from: config.member_id, to: msg.to }
        .stamp(request.metadata_mut());
    stamp_peer_urls(request.metadata_mut(), &config.peer_urls);
    let message = Bytes::from(msg.encode_to_vec());
    let (answer, fed) = tokio::join!(
        client.snapshot(request),
        feed(file, message, config.snapshot_chunk_bytes, chunks)
    );
    // A local read failure explains everything else; then the peer's answer.
    let fed = fed.map_err(read_error)?;
    let acked = answer.map_err(SendError::Refused)?.into_inner().bytes;
    let sent = fed.ok_or(SendError::Interrupted)?;
    if acked != sent {
        return Err(SendError::Incomplete { sent, acked });
    }
    Ok(sent)
}

/// Sends the message chunk, the file in chunks, and the last chunk with the CRC32C.
/// Returns the file size, or `None` when the call stopped taking chunks.
async fn feed(
    mut file: File,
    message: Bytes,
    chunk_bytes: usize,
    chunks: mpsc::Sender<SnapshotChunk>,
) -> io::Result<Option<u64>> {
    if chunks.send(SnapshotChunk { message, ..Default::default() }).await.is_err() {
        return Ok(None);
    }
    let mut crc = 0;
    let mut size = 0;
    loop {
        let mut data = Vec::with_capacity(chunk_bytes);
        (&mut file).take(chunk_bytes as u64).read_to_end(&mut data).await?;
        if data.is_empty() {
            break;
        }
        crc = crc32c::crc32c_append(crc, &data);
        size += data.len() as u64;
        if chunks.send(SnapshotChunk { data: data.into(), ..Default::default() }).await.is_err() {
            return Ok(None);
        }
        // The transfer breaks off after a chunk reached the peer, as when the connection
        // drops mid-file. Sending is the network's business, not this member's disk: the
        // sender lives on and reports the failure to raft, which sends a new snapshot
        // later; the peer drops its partial file (the stream ends before its last chunk).
        #[cfg(feature = "failpoints")]
        fail::fail_point!("rafthttp::snapshot-send", |_| Err(io::Error::other(
            "injected failure: the transfer broke off"
        )));
    }
    let last = SnapshotChunk { crc32c: crc, last: true, ..Default::default() };
    Ok(chunks.send(last).await.ok().map(|()| size))
}

/// The error the `rafthttp::snapshot-receive` failpoint injects (tests look for it).
#[cfg(feature = "failpoints")]
const SNAPSHOT_RECEIVE_INJECTED: &str =
    "injected failure: the received snapshot could not be written";

/// Receives one snapshot transfer from peer `from`; on success the handler has the
/// message and the file.
pub(crate) async fn receive(
    shared: &Shared,
    from: u64,
    mut incoming: Streaming<SnapshotChunk>,
    mut stopped: watch::Receiver<bool>,
) -> Result<SnapshotReceived, Status> {
    let started = Instant::now();
    match receive_file(shared, from, &mut incoming, &mut stopped).await {
        Ok((msg, path, bytes)) => {
            let index = msg.snapshot.as_ref().map_or(0, |s| s.index());
            info!(remote = %HexId(from), index, bytes, path = %path.display(), took = ?started.elapsed(), "received database snapshot");
            Stats::add(&shared.stats.snapshots_received, 1);
            shared.handler.receive_snapshot(msg, path);
            Ok(SnapshotReceived { bytes })
        }
        Err(status) => {
            warn!(remote = %HexId(from), error = %status.message(), "rejected database snapshot");
            Stats::add(&shared.stats.snapshots_rejected, 1);
            Err(status)
        }
    }
}

async fn receive_file(
    shared: &Shared,
    from: u64,
    incoming: &mut Streaming<SnapshotChunk>,
    stopped: &mut watch::Receiver<bool>,
) -> Result<(Message, PathBuf, u64), Status> {
    let config = &shared.config;
    let mut chunk = next_or_stop(incoming, stopped)
        .await?
        .ok_or_else(|| Status::invalid_argument("empty snapshot transfer"))?;
    let msg = decode_message(&chunk.message, from, config.member_id)?;
    let index = msg.snapshot.as_ref().map_or(0, |s| s.index());
    let dir = config.snapshot_dir.clone();
    let temp = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        tempfile::Builder::new().prefix(TEMP_PREFIX).suffix(TEMP_SUFFIX).tempfile_in(&dir)
    })
    .await
    .map_err(|e| Status::internal(format!("snapshot file task: {e}")))?
    .map_err(|e| local_error("creating a snapshot file", &e))?;
    // From here on, any early return drops `temp`, which removes the file.
    let mut file = File::from_std(temp.reopen().map_err(|e| local_error("opening", &e))?);
    let mut crc = 0;
    let mut size = 0u64;
    loop {
        if !chunk.data.is_empty() {
            size += chunk.data.len() as u64;
            if size > config.max_snapshot_bytes {
                return Err(Status::resource_exhausted(format!(
                    "snapshot larger than the {} byte limit",
                    config.max_snapshot_bytes
                )));
            }
            crc = crc32c::crc32c_append(crc, &chunk.data);
            file.write_all(&chunk.data).await.map_err(|e| local_error("writing", &e))?;
            // A write of the received file fails after part of it is on disk (a full or
            // failing disk): the peer is answered an error and this member lives on, as
            // etcd answers 500; the partial file goes with `temp`, and raft sends again.
            #[cfg(feature = "failpoints")]
            fail::fail_point!("rafthttp::snapshot-receive", |_| Err(local_error(
                "writing",
                &io::Error::other(SNAPSHOT_RECEIVE_INJECTED)
            )));
        }
        if chunk.last {
            break;
        }
        chunk = next_or_stop(incoming, stopped).await?.ok_or_else(|| {
            Status::invalid_argument("snapshot transfer truncated: it ended before its last chunk")
        })?;
        if !chunk.message.is_empty() {
            return Err(Status::invalid_argument(
                "snapshot message repeated after the first chunk",
            ));
        }
    }
    if chunk.crc32c != crc {
        return Err(Status::data_loss(format!(
            "snapshot checksum mismatch: the sender's CRC32C is {:08x}, the received data's {crc:08x}",
            chunk.crc32c
        )));
    }
    if next_or_stop(incoming, stopped).await?.is_some() {
        return Err(Status::invalid_argument("data after the last snapshot chunk"));
    }
    file.sync_all().await.map_err(|e| local_error("syncing", &e))?;
    drop(file);
    let path = config.snapshot_dir.join(received_snapshot_file(index));
    let target = path.clone();
    tokio::task::spawn_blocking(move || -> io::Result<()> {
        let dir = target.parent().map(Path::to_owned);
        temp.persist(&target).map_err(|e| e.error)?;
        if let Some(dir) = dir {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })
    .await
    .map_err(|e| Status::internal(format!("snapshot file task: {e}")))?
    .map_err(|e| local_error("installing", &e))?;
    Ok((msg, path, size))
}

/// Checks the first chunk's message: a `MsgSnap` from the caller to this member, with
/// snapshot metadata.
fn decode_message(raw: &[u8], from: u64, local: u64) -> Result<Message, Status> {
    let msg = Message::decode(raw)
        .map_err(|e| Status::invalid_argument(format!("malformed snapshot message: {e}")))?;
    if msg.msg_type != MessageType::MsgSnap as i32 {
        return Err(Status::invalid_argument("the first snapshot chunk must carry a MsgSnap"));
    }
    if msg.from != from || msg.to != local {
        return Err(Status::invalid_argument("snapshot message sender or recipient mismatch"));
    }
    if msg.snapshot.as_ref().and_then(|s| s.metadata.as_ref()).is_none() {
        return Err(Status::invalid_argument("snapshot message without snapshot metadata"));
    }
    Ok(msg)
}

fn local_error(what: &str, error: &io::Error) -> Status {
    warn!(%error, "snapshot receive failed locally while {what}");
    Status::internal(format!("receiving snapshot: {what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxetcd_raft::{Snapshot, SnapshotMetadata};

    fn snap_message(from: u64, to: u64, index: u64) -> Message {
        let mut m = Message::new(MessageType::MsgSnap);
        m.from = from;
        m.to = to;
        m.snapshot = Some(Snapshot {
            metadata: Some(SnapshotMetadata { index, term: 2, ..Default::default() }),
            ..Default::default()
        });
        m
    }

    #[test]
    fn file_name_is_sixteen_hex_digits() {
        assert_eq!(received_snapshot_file(0x2a), "000000000000002a.snap.db");
    }

    #[test]
    fn decode_message_checks_kind_and_addresses() {
        let ok = snap_message(2, 1, 7).encode_to_vec();
        assert_eq!(decode_message(&ok, 2, 1).unwrap().snapshot.unwrap().index(), 7);
        assert!(decode_message(&ok, 3, 1).is_err());
        assert!(decode_message(&ok, 2, 9).is_err());
        assert!(decode_message(b"\xff\xff", 2, 1).is_err());
        let mut no_meta = snap_message(2, 1, 7);
        no_meta.snapshot = None;
        assert!(decode_message(&no_meta.encode_to_vec(), 2, 1).is_err());
        let app = Message::new(MessageType::MsgApp).encode_to_vec();
        assert!(decode_message(&app, 0, 0).is_err());
    }

    #[test]
    fn stale_temp_files_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(format!("{TEMP_PREFIX}abc{TEMP_SUFFIX}"));
        let kept = dir.path().join(received_snapshot_file(3));
        std::fs::write(&stale, b"x").unwrap();
        std::fs::write(&kept, b"y").unwrap();
        remove_stale_temp_files(dir.path());
        assert!(!stale.exists());
        assert!(kept.exists());
    }
}
