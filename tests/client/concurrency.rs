//! oxetcd-client's concurrency recipes (Session, Mutex, Election, STM) against an
//! in-process member: mutual exclusion, leadership hand-off, conflict retries.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use oxetcd_client::concurrency::{
    Election, Isolation, Mutex, Session, SessionOptions, StmOptions, run_stm,
};
use oxetcd_client::{Client, ClientOptions, Error};
use oxetcd_tests::member::TestMember;

async fn connect(member: &TestMember) -> Client {
    let options = ClientOptions::default().with_request_timeout(Duration::from_secs(20));
    Client::connect([member.endpoint.as_str()], options).await.expect("client connects")
}

async fn session(client: &Client) -> Session {
    Session::new(client, SessionOptions::new().with_ttl(10)).await.expect("session")
}

fn number(value: Option<bytes::Bytes>) -> i64 {
    value.map_or(0, |v| std::str::from_utf8(&v).unwrap().parse().unwrap())
}

/// Several tasks, each with its own client and session, increment one counter under
/// the mutex: no two are ever inside together, and no increment is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutex_excludes_under_contention() {
    let member = TestMember::start(&[]).await;
    const TASKS: usize = 4;
    const ROUNDS: usize = 5;
    let inside = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let client = connect(&member).await;
        let inside = inside.clone();
        tasks.push(tokio::spawn(async move {
            let session = session(&client).await;
            let mut mutex = Mutex::new(&session, "locks/counter");
            for _ in 0..ROUNDS {
                mutex.lock().await.expect("lock");
                assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                let value =
                    number(client.get("counter", None).await.unwrap().kvs.pop().map(|kv| kv.value));
                tokio::time::sleep(Duration::from_millis(5)).await;
                client.put("counter", (value + 1).to_string(), None).await.unwrap();
                inside.store(false, Ordering::SeqCst);
                mutex.unlock().await.expect("unlock");
            }
            session.close().await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let client = connect(&member).await;
    let value = number(client.get("counter", None).await.unwrap().kvs.pop().map(|kv| kv.value));
    assert_eq!(value, (TASKS * ROUNDS) as i64);

    // try_lock fails at once while someone holds the lock; a holder's session ending
    // releases it.
    let holder = session(&client).await;
    let mut held = Mutex::new(&holder, "locks/try");
    held.lock().await.unwrap();
    let other = session(&client).await;
    let mut contender = Mutex::new(&other, "locks/try");
    assert!(matches!(contender.try_lock().await, Err(Error::Locked)));
    holder.close().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), contender.lock()).await.unwrap().unwrap();
    assert!(contender.is_owner().await.unwrap());
    member.stop().await;
}

/// Three candidates: one leads at a time; resigning or losing the session hands the
/// leadership to the next, and an observer sees each leader in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_hands_leadership_over() {
    let member = TestMember::start(&[]).await;
    let client = connect(&member).await;
    let observer = Election::observer(&client, "election/service");
    let mut leaders = observer.observe();

    let first_session = session(&client).await;
    let mut first = Election::new(&first_session, "election/service");
    first.campaign("a").await.unwrap();
    assert_eq!(first.leader().await.unwrap().kv.value, "a".as_bytes());
    first.proclaim("a2").await.unwrap();

    let became = Arc::new(AtomicU32::new(0));
    let mut waiting = Vec::new();
    for (n, name) in ["b", "c"].into_iter().enumerate() {
        let client = client.clone();
        let became = became.clone();
        waiting.push(tokio::spawn(async move {
            let session = session(&client).await;
            let mut election = Election::new(&session, "election/service");
            election.campaign(name).await.unwrap();
            became.fetch_or(1 << n, Ordering::SeqCst);
            (session, election)
        }));
        // Queue "b" before "c".
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(became.load(Ordering::SeqCst), 0, "someone leads beside the leader");

    first.resign().await.unwrap();
    assert!(matches!(first.proclaim("late").await, Err(Error::ElectionNotLeader)));
    let (b_session, b) =
        tokio::time::timeout(Duration::from_secs(10), waiting.remove(0)).await.unwrap().unwrap();
    assert_eq!(became.load(Ordering::SeqCst), 1);
    assert_eq!(b.leader().await.unwrap().kv.value, "b".as_bytes());

    // The leader's session ends (its lease is revoked): "c" takes over.
    b_session.close().await.unwrap();
    let (_c_session, c) =
        tokio::time::timeout(Duration::from_secs(10), waiting.remove(0)).await.unwrap().unwrap();
    assert_eq!(c.leader().await.unwrap().kv.value, "c".as_bytes());

    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("c") {
        let leader = tokio::time::timeout(Duration::from_secs(10), leaders.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(String::from_utf8(leader.kv.value.to_vec()).unwrap());
    }
    assert_eq!(seen, ["a", "a2", "b", "c"]);
    drop(b);
    member.stop().await;
}

/// Concurrent transfers between accounts through the STM keep the total constant:
/// conflicting transactions are retried, not lost or half-applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stm_transfers_keep_the_sum() {
    let member = TestMember::start(&[]).await;
    const ACCOUNTS: usize = 5;
    let client = connect(&member).await;
    for a in 0..ACCOUNTS {
        client.put(format!("accounts/{a}"), "100", None).await.unwrap();
    }
    let attempts = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        let client = connect(&member).await;
        let attempts = attempts.clone();
        tasks.push(tokio::spawn(async move {
            let mut seed = t * 7919 + 1;
            for _ in 0..10 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let from = format!("accounts/{}", (seed >> 33) as usize % ACCOUNTS);
                let to = format!("accounts/{}", ((seed >> 33) as usize + 1) % ACCOUNTS);
                let amount = (seed >> 40) as i64 % 20 + 1;
                let attempts = attempts.clone();
                run_stm(&client, StmOptions::new(), move |stm| {
                    let (from, to, attempts) = (from.clone(), to.clone(), attempts.clone());
                    async move {
                        attempts.fetch_add(1, Ordering::SeqCst);
                        let a = number(stm.get(&from).await?);
                        let b = number(stm.get(&to).await?);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        stm.put(&from, (a - amount).to_string());
                        stm.put(&to, (b + amount).to_string());
                        Ok::<_, Error>(())
                    }
                })
                .await
                .expect("transfer commits");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut sum = 0;
    for a in 0..ACCOUNTS {
        sum += number(
            client.get(format!("accounts/{a}"), None).await.unwrap().kvs.pop().map(|kv| kv.value),
        );
    }
    assert_eq!(sum, 100 * ACCOUNTS as i64);
    assert!(attempts.load(Ordering::SeqCst) >= 40);

    // A write between the transaction's read and its commit forces exactly one retry,
    // whose reads see the write.
    let runs = Arc::new(AtomicU32::new(0));
    let meddler = connect(&member).await;
    let seen = run_stm(&client, StmOptions::new(), |stm| {
        let (runs, meddler) = (runs.clone(), meddler.clone());
        async move {
            let value = number(stm.get("accounts/0").await?);
            if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                meddler.put("accounts/0", (value + 1000).to_string(), None).await?;
            }
            stm.put("accounts/0", (value - 1000).to_string());
            Ok::<_, Error>(value)
        }
    })
    .await
    .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let after = number(client.get("accounts/0", None).await.unwrap().kvs.pop().map(|kv| kv.value));
    assert_eq!(after, seen - 1000, "the retry's write is based on the meddler's");

    // Isolation levels and an aborting function.
    let balance =
        number(client.get("accounts/0", None).await.unwrap().kvs.pop().map(|kv| kv.value));
    for isolation in [Isolation::Serializable, Isolation::RepeatableReads, Isolation::ReadCommitted]
    {
        let options = StmOptions::new().with_isolation(isolation).with_prefetch(["accounts/0"]);
        let read = run_stm(&client, options, |stm| async move {
            Ok::<_, Error>(number(stm.get("accounts/0").await?))
        })
        .await
        .unwrap();
        assert_eq!(read, balance, "{isolation:?}");
    }
    let aborted: Result<(), Error> = run_stm(&client, StmOptions::new(), |stm| async move {
        stm.put("never", "written");
        Err(Error::InvalidArgument("abort".into()))
    })
    .await;
    assert!(aborted.is_err());
    assert!(client.get("never", None).await.unwrap().kvs.is_empty());
    member.stop().await;
}
