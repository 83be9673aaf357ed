//! A member the cluster removed stops itself, as etcd's does: when it applies its own
//! removal (on a restart too, replaying its log), or when a peer refuses it (the
//! transport's [`oxetcd_transport::RaftHandler::removed_by_peer`], in `peers.rs`). Its
//! data dir then never rejoins: every restart replays the removal, or is refused again.

use std::sync::Weak;
use std::time::Duration;

use crate::state::Shared;

/// etcd waits this long after applying its own removal before it stops, so what it
/// still has to send (its acknowledgement of the entry) goes out first.
pub(crate) const STOP_DELAY: Duration = Duration::from_secs(1);

/// Watches what this member applies; once its membership says this member was removed,
/// stops it after [`STOP_DELAY`]. Ends when the member stops or the server is dropped.
pub(crate) async fn stop_when_removed(shared: Weak<Shared>) {
    let Some(mut applied) = shared.upgrade().map(|s| s.applied.subscribe()) else { return };
    loop {
        {
            let Some(shared) = shared.upgrade() else { return };
            if shared.is_stopped() {
                return;
            }
            if shared.membership().is_removed(shared.member_id) {
                break;
            }
        }
        // Errs once the server (the sender's owner) is gone.
        if applied.changed().await.is_err() {
            return;
        }
    }
    tokio::time::sleep(STOP_DELAY).await;
    if let Some(shared) = shared.upgrade().filter(|s| !s.is_stopped()) {
        shared.stop_removed("applying its own removal");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use oxetcd_api::etcdserverpb::Member;
    use oxetcd_lease::{Lessor, SystemClock};
    use oxetcd_mvcc::{Store, StoreConfig};

    use super::*;
    use crate::auth::{ServerAuth, TokenProvider};
    use crate::error::Fatal;
    use crate::membership::Membership;

    const ME: u64 = 0xa;

    fn shared(dir: &std::path::Path) -> Arc<Shared> {
        let lessor = Arc::new(Lessor::new(1, Arc::new(SystemClock)));
        let store = Store::open_path(dir.join("db"), StoreConfig::default(), lessor.clone())
            .expect("a store");
        let mut membership = Membership::default();
        for id in [ME, 0xb] {
            membership.add(Member { id, ..Default::default() });
        }
        let tokens = TokenProvider::Simple(oxetcd_auth::SimpleTokens::new(Duration::from_secs(5)));
        let auth = ServerAuth::new(oxetcd_auth::AuthStore::new(), tokens, 4);
        Arc::new(Shared::new(ME, 0xc, Arc::new(store), membership, 0, lessor, auth))
    }

    #[tokio::test]
    async fn applying_its_own_removal_stops_the_member_after_a_delay() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path());
        let watcher = tokio::spawn(stop_when_removed(Arc::downgrade(&shared)));
        // Another member's removal is no reason to stop.
        shared.membership_mut().remove(0xb);
        shared.applied.send_replace(1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!shared.is_stopped());

        let removed_at = std::time::Instant::now();
        shared.membership_mut().remove(ME);
        shared.applied.send_replace(2);
        let fatal =
            tokio::time::timeout(Duration::from_secs(5), shared.wait_fatal()).await.unwrap();
        assert!(removed_at.elapsed() >= STOP_DELAY);
        assert!(fatal.is_removal(), "{fatal:?}");
        assert_eq!(fatal.cause, "the member has been permanently removed from the cluster");
        assert!(shared.is_stopped());
        watcher.await.unwrap();
    }

    #[tokio::test]
    async fn a_member_restarted_already_removed_stops_too() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path());
        shared.membership_mut().remove(ME);
        tokio::spawn(stop_when_removed(Arc::downgrade(&shared)));
        let fatal =
            tokio::time::timeout(Duration::from_secs(5), shared.wait_fatal()).await.unwrap();
        assert!(fatal.is_removal());
    }

    #[tokio::test]
    async fn the_first_stop_is_the_one_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path());
        shared.stop_removed("refused by a peer");
        shared.fail_stop(Fatal::new("saving raft entries to the WAL", "disk full"));
        let fatal = shared.fatal().unwrap();
        assert!(fatal.is_removal());
        assert_eq!(fatal.during, "refused by a peer");
    }

    #[tokio::test]
    async fn a_member_stopped_cleanly_is_not_stopped_again_as_removed() {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared(dir.path());
        let watcher = tokio::spawn(stop_when_removed(Arc::downgrade(&shared)));
        shared.stopped.store(true, std::sync::atomic::Ordering::SeqCst);
        shared.membership_mut().remove(ME);
        shared.applied.send_replace(1);
        tokio::time::timeout(Duration::from_secs(5), watcher).await.unwrap().unwrap();
        assert!(shared.fatal().is_none());
    }
}
