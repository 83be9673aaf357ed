//! `Peer.HashKV`: the hash a corruption check asks a peer for, checked like the other
//! peer calls, with a compacted or future revision told apart from a failure.

mod common;

use std::time::Duration;

use common::*;
use oxetcd_api::etcdserverpb::{HashKvRequest, HashKvResponse, ResponseHeader};
use oxetcd_transport::HashKvError;

const CLUSTER: u64 = 0x7c;
const QUICK: Duration = Duration::from_secs(2);

fn answer(hash: u32) -> HashKvResponse {
    HashKvResponse {
        header: Some(ResponseHeader { member_id: 2, revision: 9, ..Default::default() }),
        hash,
        compact_revision: 3,
        hash_revision: 7,
    }
}

#[tokio::test]
async fn a_peer_answers_its_hash_and_refusals_keep_their_meaning() {
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start(test_config(CLUSTER, 1, dir.path())).await;
    let b = Node::start(test_config(CLUSTER, 2, dir.path())).await;
    *b.handler.hash_kv.lock().unwrap() = Some(Ok(answer(0xfeed)));

    // A dead URL first: the next one answers, as etcd tries each endpoint in turn.
    let (dead, _) = dead_url().await;
    let urls = vec![dead, b.url.clone()];
    let got = a.transport.hash_kv(2, &urls, 7, QUICK).await.unwrap();
    assert_eq!(got, answer(0xfeed));
    assert_eq!(*b.handler.hash_kv_asked.lock().unwrap(), [7]);

    for refusal in [HashKvError::Compacted, HashKvError::FutureRevision] {
        *b.handler.hash_kv.lock().unwrap() = Some(Err(refusal.clone()));
        let err = a.transport.hash_kv(2, &urls[1..], 7, QUICK).await.unwrap_err();
        assert_eq!(err, refusal);
    }
    *b.handler.hash_kv.lock().unwrap() = None;
    let err = a.transport.hash_kv(2, &urls[1..], 7, QUICK).await.unwrap_err();
    assert!(
        matches!(&err, HashKvError::Unavailable(m) if m.contains("nothing to hash")),
        "{err:?}"
    );

    let err = a.transport.hash_kv(2, &[], 7, QUICK).await.unwrap_err();
    assert!(matches!(err, HashKvError::Unavailable(_)));
}

#[tokio::test]
async fn hash_calls_are_checked_like_streams() {
    let dir = tempfile::tempdir().unwrap();
    let b = Node::start(test_config(CLUSTER, 2, dir.path())).await;
    *b.handler.hash_kv.lock().unwrap() = Some(Ok(answer(1)));
    let urls = vec![b.url.clone()];

    // Another cluster, and a call meant for another member, are refused unanswered.
    let other = Node::start(test_config(0x99, 1, dir.path())).await;
    let err = other.transport.hash_kv(2, &urls, 0, QUICK).await.unwrap_err();
    assert!(
        matches!(&err, HashKvError::Unavailable(m) if m.contains("cluster ID mismatch")),
        "{err:?}"
    );
    let a = Node::start(test_config(CLUSTER, 1, dir.path())).await;
    let err = a.transport.hash_kv(5, &urls, 0, QUICK).await.unwrap_err();
    assert!(
        matches!(&err, HashKvError::Unavailable(m) if m.contains("member ID mismatch")),
        "{err:?}"
    );
    // A removed member is refused too.
    b.handler.removed.lock().unwrap().insert(1);
    let err = a.transport.hash_kv(2, &urls, 0, QUICK).await.unwrap_err();
    assert!(
        matches!(&err, HashKvError::Unavailable(m) if m.contains("permanently removed")),
        "{err:?}"
    );
    // A call without ids (a raw client) is refused.
    let err = raw_client(&b.url).await.hash_kv(HashKvRequest { revision: 0 }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(b.handler.hash_kv_asked.lock().unwrap().is_empty());

    // A stopped transport neither answers nor asks.
    b.transport.stop();
    b.handler.removed.lock().unwrap().clear();
    let err = a.transport.hash_kv(2, &urls, 0, QUICK).await.unwrap_err();
    assert!(matches!(err, HashKvError::Unavailable(_)));
    a.transport.stop();
    let err = a.transport.hash_kv(2, &urls, 0, QUICK).await.unwrap_err();
    assert!(matches!(&err, HashKvError::Unavailable(m) if m.contains("stopped")), "{err:?}");
}
