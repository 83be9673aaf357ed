//! The JSON gateway (etcd 3.4's grpc-gateway) over plain HTTP/1.1, against a member in
//! process. The expected bodies are what etcd 3.4.23 answered to the same requests in
//! the same order on a fresh single member (recorded with curl), with its cluster and
//! member ids replaced by the member's own.

use std::time::Duration;

use oxetcd_tests::member::TestMember;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on each request.
const STEP: Duration = Duration::from_secs(20);

/// etcd 3.4.23's ids in the recorded answers.
const ETCD_IDS: &str = r#""cluster_id":"15118495548433857066","member_id":"13668033151171901709""#;

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

struct Gateway {
    addr: String,
    /// The member's `"cluster_id":…,"member_id":…`.
    ids: String,
}

impl Gateway {
    async fn new(member: &TestMember) -> Gateway {
        let addr = member.endpoint.trim_start_matches("http://").to_string();
        let mut gateway = Gateway { addr, ids: String::new() };
        let status = gateway.post("/v3/maintenance/status", "{}", &[]).await;
        let ids = status.body.split(r#","revision""#).next().unwrap();
        gateway.ids = ids.trim_start_matches(r#"{"header":{"#).to_string();
        gateway
    }

    /// etcd's recorded answer with this member's ids.
    fn etcd(&self, recorded: &str) -> String {
        recorded.replace(ETCD_IDS, &self.ids)
    }

    async fn request(&self, method: &str, path: &str, body: &str, headers: &[&str]) -> Vec<u8> {
        let mut stream = TcpStream::connect(&self.addr).await.expect("connect");
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        );
        for header in headers {
            request.push_str(header);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = Vec::new();
        tokio::time::timeout(STEP, stream.read_to_end(&mut response))
            .await
            .expect("bounded")
            .expect("read");
        response
    }

    async fn post(&self, path: &str, body: &str, headers: &[&str]) -> Reply {
        parse(&self.request("POST", path, body, headers).await)
    }

    /// Adds user `root` (password `toor`) with role `root`, then enables auth.
    async fn enable_auth(&self) {
        for (path, body) in [
            ("/v3/auth/user/add", r#"{"name":"root","password":"toor"}"#),
            ("/v3/auth/role/add", r#"{"name":"root"}"#),
            ("/v3/auth/user/grant", r#"{"user":"root","role":"root"}"#),
            ("/v3/auth/enable", "{}"),
        ] {
            let reply = self.post(path, body, &[]).await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        }
    }

    /// A token of `root`'s, from Authenticate.
    async fn root_token(&self) -> String {
        let auth =
            self.post("/v3/auth/authenticate", r#"{"name":"root","password":"toor"}"#, &[]).await;
        let token = auth.body.split(r#""token":""#).nth(1).and_then(|t| t.split('"').next());
        token.unwrap_or_else(|| panic!("no token in {}", auth.body)).to_string()
    }

    /// The first `lines` lines of a stream that does not end by itself.
    async fn stream_lines(&self, path: &str, body: &str, lines: usize) -> (u16, Vec<String>) {
        let mut stream = TcpStream::connect(&self.addr).await.expect("connect");
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let reply = parse(&response);
            if reply.status != 0 && reply.body.matches('\n').count() >= lines {
                let got = reply.body.lines().take(lines).map(String::from).collect();
                return (reply.status, got);
            }
            let n = tokio::time::timeout(STEP, stream.read(&mut buf))
                .await
                .expect("bounded")
                .expect("read");
            assert!(n > 0, "stream ended early: {}", String::from_utf8_lossy(&response));
            response.extend_from_slice(&buf[..n]);
        }
    }
}

/// An HTTP/1.1 response, chunked or not (as much as there is of it).
fn parse(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let Some((head, rest)) = text.split_once("\r\n\r\n") else {
        return Reply { status: 0, headers: Vec::new(), body: String::new() };
    };
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let chunked =
        headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v == "chunked");
    let body = if chunked {
        let mut body = String::new();
        let mut rest = rest;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
            if size == 0 || after.len() < size {
                break;
            }
            body.push_str(&after[..size]);
            rest = after[size..].trim_start_matches("\r\n");
        }
        body
    } else {
        rest.to_string()
    };
    Reply { status, headers, body }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_lease_and_watch_answer_as_etcds_gateway_byte_for_byte() {
    let member = TestMember::start(&[]).await;
    let gw = Gateway::new(&member).await;

    let put = gw.post("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#, &[]).await;
    assert_eq!(put.status, 200);
    assert_eq!(put.header("content-type"), Some("application/json"));
    assert_eq!(put.header("grpc-metadata-content-type"), Some("application/grpc"));
    assert_eq!(
        put.body,
        gw.etcd(r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"}}"#)
    );
    let range = gw.post("/v3/kv/range", r#"{"key":"Zm9v"}"#, &[]).await;
    assert_eq!(
        range.body,
        gw.etcd(r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"}"#)
    );
    // The e2e test's txn (jsonpb's lowerCamel names): foo exists, so it fails.
    let txn = gw
        .post(
            "/v3/kv/txn",
            r#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"CREATE","createRevision":"0"}],"success":[{"requestPut":{"key":"Zm9v","value":"YmFy"}}]}"#,
            &[],
        )
        .await;
    assert_eq!(
        txn.body,
        gw.etcd(r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"}}"#)
    );
    // The e2e test's malformed txn: Go field names are unknown fields, so the op is empty.
    let malformed = gw
        .post(
            "/v3/kv/txn",
            r#"{"compare":[{"result":0,"target":1,"key":"Zm9v","TargetUnion":null}],"success":[{"Request":{"RequestPut":{"key":"Zm9v","value":"YmFy"}}}]}"#,
            &[],
        )
        .await;
    assert_eq!(malformed.status, 400);
    assert_eq!(
        malformed.body,
        r#"{"error":"etcdserver: key not found","message":"etcdserver: key not found","code":3}"#
    );
    let txn = gw
        .post(
            "/v3/kv/txn",
            r#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmFy"}],"success":[{"request_range":{"key":"Zm9v"}}],"failure":[{"request_delete_range":{"key":"Zm9v"}}]}"#,
            &[],
        )
        .await;
    assert_eq!(
        txn.body,
        gw.etcd(r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"},"succeeded":true,"responses":[{"response_range":{"header":{"revision":"2"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"}}]}"#)
    );
    let delete = gw.post("/v3/kv/deleterange", r#"{"key":"Zm9v","prev_kv":true}"#, &[]).await;
    assert_eq!(
        delete.body,
        gw.etcd(r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"3","raft_term":"2"},"deleted":"1","prev_kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}]}"#)
    );
    // Unknown fields are ignored, and so is whatever follows the first JSON value.
    let put = gw.post("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy","bogus":1}"#, &[]).await;
    assert!(put.body.contains(r#""revision":"4""#), "{}", put.body);
    let put = gw.post("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"} trailing"#, &[]).await;
    assert!(put.body.contains(r#""revision":"5""#), "{}", put.body);

    // Errors: unreadable JSON, the server's refusals, paths and methods.
    let cut = gw.post("/v3/kv/put", r#"{"key":"Zm9v","#, &[]).await;
    assert_eq!(
        (cut.status, cut.body.as_str()),
        (400, r#"{"error":"unexpected EOF","message":"unexpected EOF","code":3}"#)
    );
    assert_eq!(cut.header("content-length"), Some("62"));
    let no_key = gw.post("/v3/kv/put", r#"{"key":""}"#, &[]).await;
    assert_eq!(
        (no_key.status, no_key.body.as_str()),
        (
            400,
            r#"{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}"#
        )
    );
    let future = gw.post("/v3/kv/compaction", r#"{"revision":"1000"}"#, &[]).await;
    assert_eq!(
        (future.status, future.body.as_str()),
        (
            400,
            r#"{"error":"etcdserver: mvcc: required revision is a future revision","message":"etcdserver: mvcc: required revision is a future revision","code":11}"#
        )
    );
    let missing = gw.post("/v3/lease/revoke", r#"{"ID":"42"}"#, &[]).await;
    assert_eq!(
        (missing.status, missing.body.as_str()),
        (
            404,
            r#"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#
        )
    );
    let get = parse(&gw.request("GET", "/v3/kv/range", "", &[]).await);
    assert_eq!((get.status, get.body.as_str()), (405, "Method Not Allowed\n"));
    assert_eq!(get.header("content-type"), Some("text/plain; charset=utf-8"));
    let unknown = gw.post("/v3/kv/nope", "{}", &[]).await;
    assert_eq!((unknown.status, unknown.body.as_str()), (404, "Not Found\n"));
    let alpha = gw.post("/v3alpha/kv/range", r#"{"key":"Zm9v"}"#, &[]).await;
    assert_eq!((alpha.status, alpha.body.as_str()), (404, "404 page not found\n"));
    // /v3beta/ is /v3/.
    let beta = gw.post("/v3beta/kv/range", r#"{"key":"Zm9v"}"#, &[]).await;
    assert_eq!(
        beta.body,
        gw.etcd(r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"5","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"4","mod_revision":"5","version":"2","value":"YmFy"}],"count":"1"}"#)
    );

    // Leases, and the keep-alive stream: one line per request, ended with the body.
    let grant = gw.post("/v3/lease/grant", r#"{"ID":7,"TTL":60}"#, &[]).await;
    assert_eq!(
        grant.body,
        gw.etcd(r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"5","raft_term":"2"},"ID":"7","TTL":"60"}"#)
    );
    let leases = gw.post("/v3/kv/lease/leases", "{}", &[]).await;
    assert_eq!(
        leases.body,
        gw.etcd(r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"5","raft_term":"2"},"leases":[{"ID":"7"}]}"#)
    );
    let ttl = gw.post("/v3/lease/timetolive", r#"{"ID":7,"keys":true}"#, &[]).await;
    assert!(
        ttl.body.contains(r#""ID":"7","TTL":"#) && ttl.body.ends_with(r#","grantedTTL":"60"}"#),
        "{}",
        ttl.body
    );
    let keepalive = gw.post("/v3/lease/keepalive", r#"{"ID":7} {"ID":8}"#, &[]).await;
    assert_eq!(keepalive.status, 200);
    assert_eq!(keepalive.header("transfer-encoding"), Some("chunked"));
    assert_eq!(
        keepalive.body,
        gw.etcd(concat!(
            r#"{"result":{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"5","raft_term":"2"},"ID":"7","TTL":"60"}}"#,
            "\n",
            r#"{"result":{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"5","raft_term":"2"},"ID":"8"}}"#,
            "\n"
        ))
    );
    // A stream whose first request cannot be read is refused as grpc-gateway does.
    let cut = gw.post("/v3/lease/keepalive", r#"{"ID":"#, &[]).await;
    assert_eq!(
        (cut.status, cut.body.as_str()),
        (500, r#"{"error":"unexpected EOF","message":"unexpected EOF","code":2}"#)
    );

    // Watch: a stream of requests in, a line per answer out; the stream stays open.
    let (status, lines) = gw
        .stream_lines(
            "/v3/watch",
            r#"{"create_request":{"key":"Zm9v","start_revision":"1"}} {"create_request":{"key":"YmFy"}} {"cancel_request":{"watch_id":"1"}}"#,
            4,
        )
        .await;
    assert_eq!(status, 200);
    let header = r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"5","raft_term":"2"}"#;
    let created = gw.etcd(&format!(r#"{{"result":{header},"created":true}}}}"#));
    let created_1 = gw.etcd(&format!(r#"{{"result":{header},"watch_id":"1","created":true}}}}"#));
    let canceled_1 = gw.etcd(&format!(r#"{{"result":{header},"watch_id":"1","canceled":true}}}}"#));
    let history = gw.etcd(&format!(
        r#"{{"result":{header},"events":[{{"kv":{{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}}}},{{"type":"DELETE","kv":{{"key":"Zm9v","mod_revision":"3"}}}},{{"kv":{{"key":"Zm9v","create_revision":"4","mod_revision":"4","version":"1","value":"YmFy"}}}},{{"kv":{{"key":"Zm9v","create_revision":"4","mod_revision":"5","version":"2","value":"YmFy"}}}}]}}}}"#
    ));
    // Watch 0's history comes when its catch-up runs: before or after watch 1's answers
    // (in etcd too). The answers to the requests come in the requests' order.
    assert_eq!(lines[0], created, "{lines:#?}");
    let mut answers: Vec<&String> = lines.iter().filter(|l| **l != history).collect();
    assert_eq!(lines.len() - answers.len(), 1, "one history line: {lines:#?}");
    answers.remove(0);
    assert_eq!(answers, [&created_1, &canceled_1], "{lines:#?}");

    // Snapshot: the backend in result lines, the last one carrying the SHA-256.
    let snapshot = gw.post("/v3/maintenance/snapshot", "{}", &[]).await;
    assert_eq!(snapshot.status, 200);
    let lines: Vec<&str> = snapshot.body.lines().collect();
    assert!(lines.iter().all(|l| l.starts_with(r#"{"result":{"#)), "{}", snapshot.body);
    assert!(lines.last().unwrap().starts_with(r#"{"result":{"blob":""#), "{}", snapshot.body);
    member.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_header_carries_the_token() {
    let member = TestMember::start(&[]).await;
    let gw = Gateway::new(&member).await;
    gw.enable_auth().await;
    let anonymous = gw.post("/v3/kv/put", r#"{"key":"YQ==","value":"Yg=="}"#, &[]).await;
    assert_eq!(
        (anonymous.status, anonymous.body.as_str()),
        (
            400,
            r#"{"error":"etcdserver: user name is empty","message":"etcdserver: user name is empty","code":3}"#
        )
    );
    let bad = gw.post("/v3/auth/authenticate", r#"{"name":"root","password":"bad"}"#, &[]).await;
    assert_eq!(
        (bad.status, bad.body.as_str()),
        (
            400,
            r#"{"error":"etcdserver: authentication failed, invalid user ID or password","message":"etcdserver: authentication failed, invalid user ID or password","code":3}"#
        )
    );
    let token = gw.root_token().await;
    let header = format!("Authorization: {token}");
    let put = gw.post("/v3/kv/put", r#"{"key":"YQ==","value":"Yg=="}"#, &[&header]).await;
    assert_eq!(put.status, 200, "{}", put.body);
    let forged =
        gw.post("/v3/kv/put", r#"{"key":"YQ==","value":"Yg=="}"#, &["Authorization: bogus"]).await;
    assert_eq!(
        (forged.status, forged.body.as_str()),
        (
            401,
            r#"{"error":"etcdserver: invalid auth token","message":"etcdserver: invalid auth token","code":16}"#
        )
    );
    let users = gw.post("/v3/auth/user/list", "{}", &[&header]).await;
    assert!(users.body.ends_with(r#","users":["root"]}"#), "{}", users.body);
    member.stop().await;
}

/// Lock and Election through the gateway: etcd 3.4.23's answers to the same requests,
/// errors included (its Lock and Election services answer them as UNKNOWN: HTTP 500,
/// code 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_election_answer_as_etcds_gateway() {
    let member = TestMember::start(&[]).await;
    let gw = Gateway::new(&member).await;
    let header = |revision: u32| {
        gw.etcd(&format!(
            r#"{{"header":{{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"{revision}","raft_term":"2"}}"#
        ))
    };
    let failed = |message: &str| {
        let message = message.replace('"', "\\\"");
        format!(r#"{{"error":"{message}","message":"{message}","code":2}}"#)
    };
    let leader_kv = r#""kv":{"key":"ZWxlY3QvM2U4","create_revision":"2","mod_revision":"2","version":"1","value":"djE=","lease":"1000"}}"#;

    let grant = gw.post("/v3/lease/grant", r#"{"TTL":"30","ID":"1000"}"#, &[]).await;
    assert_eq!(grant.body, header(1) + r#","ID":"1000","TTL":"30"}"#);
    let leader = gw.post("/v3/election/leader", r#"{"name":"ZWxlY3Q="}"#, &[]).await;
    assert_eq!((leader.status, leader.body), (500, failed("election: no leader")));
    let campaign = gw
        .post(
            "/v3beta/election/campaign",
            r#"{"name":"ZWxlY3Q=","lease":"1000","value":"djE="}"#,
            &[],
        )
        .await;
    assert_eq!(
        (campaign.status, campaign.body),
        (
            200,
            header(2)
                + r#","leader":{"name":"ZWxlY3Q=","key":"ZWxlY3QvM2U4","rev":"2","lease":"1000"}}"#
        )
    );
    let leader = gw.post("/v3/election/leader", r#"{"name":"ZWxlY3Q="}"#, &[]).await;
    assert_eq!(leader.body, header(2) + "," + leader_kv);
    let (status, observed) =
        gw.stream_lines("/v3/election/observe", r#"{"name":"ZWxlY3Q="}"#, 1).await;
    assert_eq!(
        (status, observed),
        (200, vec![format!(r#"{{"result":{}}}"#, header(2) + "," + leader_kv)])
    );

    let leader_key = r#"{"name":"ZWxlY3Q=","key":"ZWxlY3QvM2U4","rev":"2","lease":"1000"}"#;
    let proclaim = gw
        .post("/v3/election/proclaim", &format!(r#"{{"leader":{leader_key},"value":"djI="}}"#), &[])
        .await;
    assert_eq!((proclaim.status, proclaim.body), (200, header(3) + "}"));
    let stale = leader_key.replace(r#""rev":"2""#, r#""rev":"99""#);
    let proclaim = gw
        .post("/v3/election/proclaim", &format!(r#"{{"leader":{stale},"value":"djI="}}"#), &[])
        .await;
    assert_eq!((proclaim.status, proclaim.body), (500, failed("election: not leader")));
    let proclaim = gw.post("/v3/election/proclaim", r#"{"value":"djI="}"#, &[]).await;
    assert_eq!(proclaim.body, failed(r#""leader" field must be provided"#));
    let resign = gw.post("/v3/election/resign", "{}", &[]).await;
    assert_eq!((resign.status, resign.body), (500, failed(r#""leader" field must be provided"#)));
    let resign =
        gw.post("/v3/election/resign", &format!(r#"{{"leader":{leader_key}}}"#), &[]).await;
    assert_eq!((resign.status, resign.body), (200, header(4) + "}"));
    let leader = gw.post("/v3/election/leader", r#"{"name":"ZWxlY3Q="}"#, &[]).await;
    assert_eq!(leader.body, failed("election: no leader"));

    let lock = gw.post("/v3/lock/lock", r#"{"name":"bG9jaw==","lease":"1000"}"#, &[]).await;
    assert_eq!((lock.status, lock.body), (200, header(5) + r#","key":"bG9jay8zZTg="}"#));
    let unlock = gw.post("/v3/lock/unlock", r#"{"key":"bG9jay8zZTg="}"#, &[]).await;
    assert_eq!(unlock.body, header(6) + "}");
    let revoke = gw.post("/v3/lease/revoke", r#"{"ID":"1000"}"#, &[]).await;
    assert_eq!(revoke.body, header(6) + "}");
    let lock = gw.post("/v3/lock/lock", r#"{"name":"bG9jaw==","lease":"1000"}"#, &[]).await;
    assert_eq!((lock.status, lock.body), (500, failed("etcdserver: requested lease not found")));
    member.stop().await;
}

/// A gateway stream whose HTTP client goes away ends at once, with the gRPC call behind
/// it, even if nothing more would ever be sent on it (an election that stays quiet):
/// the runtime comes back to the tasks it had.
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current().metrics().num_alive_tasks()
}

/// Waits, at most 10 s, until the runtime's tasks are back to about `before`: the calls
/// of streams whose clients went away have ended.
async fn tasks_back_to(before: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while alive_tasks() > before + 2 {
        let now = alive_tasks();
        assert!(tokio::time::Instant::now() < deadline, "{now} tasks, {before} before");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_streams_end_when_their_clients_go_away() {
    const STREAMS: usize = 10;
    let member = TestMember::start(&[]).await;
    let gw = Gateway::new(&member).await;
    let campaign = r#"{"name":"cXVpZXQ=","value":"djE="}"#;
    assert_eq!(gw.post("/v3/election/campaign", campaign, &[]).await.status, 200);
    let observe = r#"{"name":"cXVpZXQ="}"#;
    // The first stream opens the member's in-process connection, which stays.
    gw.stream_lines("/v3/election/observe", observe, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = alive_tasks();
    for _ in 0..STREAMS {
        // Reads the first answer, then drops the connection.
        let (status, lines) = gw.stream_lines("/v3/election/observe", observe, 1).await;
        assert_eq!((status, lines.len()), (200, 1));
    }
    tasks_back_to(before).await;
    member.stop().await;
}

/// `--enable-grpc-gateway=false` takes the JSON API off the client port, as in etcd: its
/// paths answer Go's `404 page not found`; gRPC and `/health` are still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_can_be_turned_off() {
    let member = TestMember::start(&["--enable-grpc-gateway=false"]).await;
    let gw = Gateway { addr: member.endpoint.trim_start_matches("http://").into(), ids: "".into() };
    for path in ["/v3/kv/range", "/v3beta/kv/range", "/v3/watch"] {
        let reply = gw.post(path, r#"{"key":"YQ=="}"#, &[]).await;
        assert_eq!((reply.status, reply.body.as_str()), (404, "404 page not found\n"), "{path}");
        assert_eq!(reply.header("content-type"), Some("text/plain; charset=utf-8"));
    }
    let health = parse(&gw.request("GET", "/health", "", &[]).await);
    assert_eq!((health.status, health.body.as_str()), (200, r#"{"health":"true"}"#));
    let mut kv = oxetcd_api::etcdserverpb::kv_client::KvClient::connect(member.endpoint.clone())
        .await
        .unwrap();
    let range = oxetcd_api::etcdserverpb::RangeRequest { key: "a".into(), ..Default::default() };
    kv.range(range).await.expect("gRPC is served");
    member.stop().await;
}

/// Bad bodies get the status and gRPC code etcd 3.4.23's gateway answered to the same
/// requests (recorded side by side), and change nothing. The texts of JSON type errors
/// are serde's, not Go's (see docs/compatibility.md); the others are etcd's, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_etcds_statuses_and_change_nothing() {
    let member = TestMember::start(&[]).await;
    let gw = Gateway::new(&member).await;
    let revision = |reply: &Reply| {
        let after = reply.body.split(r#""revision":""#).nth(1).expect("a revision");
        after.split('"').next().unwrap().to_string()
    };
    let before = gw.post("/v3/kv/range", r#"{"key":"YQ=="}"#, &[]).await;

    let huge = format!(r#"{{"key":"YQ==","value":"{}"}}"#, "eHh4".repeat(2 * 1024 * 1024 / 3 + 1));
    let reply = gw.post("/v3/kv/put", &huge, &[]).await;
    assert_eq!(reply.status, 429);
    assert!(
        reply.body.starts_with(r#"{"error":"grpc: received message larger than max ("#),
        "{}",
        reply.body
    );
    assert!(reply.body.ends_with(r#" vs. 2097152)","code":8}"#), "{}", reply.body);

    let enum_name = gw.post("/v3/kv/range", r#"{"key":"YQ==","sort_order":"SIDEWAYS"}"#, &[]).await;
    assert_eq!(
        (enum_name.status, enum_name.body.as_str()),
        (
            400,
            r#"{"error":"unknown value \"SIDEWAYS\" for enum etcdserverpb.RangeRequest_SortOrder","message":"unknown value \"SIDEWAYS\" for enum etcdserverpb.RangeRequest_SortOrder","code":3}"#
        )
    );
    let wrong = [
        ("/v3/kv/put", r#"{"key":5}"#),
        ("/v3/kv/range", r#"{"key":"YQ==","limit":"abc"}"#),
        ("/v3/kv/range", r#"{"key":"not base64!"}"#),
        ("/v3/kv/put", "[1,2]"),
    ];
    for (path, body) in wrong {
        let reply = gw.post(path, body, &[]).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert!(reply.body.ends_with(r#","code":3}"#), "{body}: {}", reply.body);
    }
    let after = gw.post("/v3/kv/range", r#"{"key":"YQ=="}"#, &[]).await;
    assert_eq!(revision(&after), revision(&before), "nothing was written");
    member.stop().await;
}

/// The gateway over WebSocket (etcd's wsproxy): the session of `websocket.rs` gives the
/// transcript etcd 3.4.23 gave (`websocket-etcd-3.4.23.txt`, recorded by the
/// compatibility suite's `gateway_websocket`, which runs both side by side).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_session_answers_as_etcds_did() {
    let member = TestMember::start(&[]).await;
    let got = oxetcd_tests::websocket::session(&member.endpoint).await;
    member.stop().await;
    let etcd = include_str!("websocket-etcd-3.4.23.txt");
    assert_eq!(got.join("\n"), etcd.trim_end());
}

/// A WebSocket's token comes as a browser can send one: the subprotocol `Bearer,
/// <token>`, or a `token` cookie. Unlike etcd (which takes `Bearer <token>` whole as
/// the token, and so refuses every such call), the token is what counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_carries_its_token_in_the_subprotocol_or_a_cookie() {
    use oxetcd_tests::websocket::{open, send, unary, until_end};
    let member = TestMember::start(&[]).await;
    let gw = Gateway::new(&member).await;
    gw.enable_auth().await;
    let token = gw.root_token().await;
    let put = r#"{"key":"YQ==","value":"Yg=="}"#;
    let endpoint = &member.endpoint;

    let anonymous = unary(endpoint, "/v3/kv/put", put).await;
    assert_eq!(
        anonymous,
        [
            r#"{"error":"etcdserver: user name is empty","message":"etcdserver: user name is empty","code":3}"#
        ]
    );
    let (mut socket, chosen) =
        open(endpoint, "/v3/kv/put", Some(&format!("Bearer, {token}"))).await;
    assert_eq!(chosen, "Bearer");
    send(&mut socket, put).await;
    let answer = until_end(&mut socket).await;
    assert!(answer.len() == 1 && answer[0].starts_with(r#"{"header":"#), "{answer:?}");
    let (mut forged, _) = open(endpoint, "/v3/kv/put", Some("Bearer, bogus.1")).await;
    send(&mut forged, put).await;
    assert_eq!(
        until_end(&mut forged).await,
        [
            r#"{"error":"etcdserver: invalid auth token","message":"etcdserver: invalid auth token","code":16}"#
        ]
    );

    // The cookie, on a raw handshake (the client library sets no cookies).
    let authority = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(authority).await.unwrap();
    let handshake = format!(
        "GET /v3/kv/range HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: theme=dark; token={token}\r\n\r\n"
    );
    stream.write_all(handshake.as_bytes()).await.unwrap();
    // One unmasked-by-server, masked-by-client text frame: {"key":"YQ=="}.
    let request = br#"{"key":"YQ=="}"#;
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | request.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(request.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(STEP, stream.read_to_end(&mut raw)).await.expect("bounded").unwrap();
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 101 Switching Protocols"), "{raw}");
    assert!(raw.contains(r#""kvs":[{"key":"YQ==""#), "the cookie's token read the key: {raw}");
    member.stop().await;
}

/// A WebSocket's call ends with its socket: watches whose clients dropped their
/// connections leave no task behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_streams_end_when_their_sockets_close() {
    use oxetcd_tests::websocket::{next, open, send};
    const STREAMS: usize = 10;
    let member = TestMember::start(&[]).await;
    let watch = r#"{"create_request":{"key":"YQ=="}}"#;
    let (mut first, _) = open(&member.endpoint, "/v3/watch", None).await;
    send(&mut first, watch).await;
    assert!(next(&mut first).await.is_some_and(|created| created.contains(r#""created":true"#)));
    drop(first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = alive_tasks();
    for _ in 0..STREAMS {
        let (mut socket, _) = open(&member.endpoint, "/v3/watch", None).await;
        send(&mut socket, watch).await;
        assert!(next(&mut socket).await.is_some());
    }
    tasks_back_to(before).await;
    member.stop().await;
}

/// A gateway watch whose client stops reading holds back nobody else: while it sits on
/// ~10 MB of unread events, writes, reads and other watches go on in time, and once it
/// reads again it gets every event, in order (the server keeps it as a slow watcher, as
/// etcd does, and its gateway buffers stay bounded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_watcher_that_stops_reading_disturbs_nothing_and_loses_nothing() {
    use oxetcd_tests::websocket::{next, open, send};
    const PUTS: usize = 300;
    const VALUE_BYTES: usize = 32 * 1024;
    let member = TestMember::start(&[]).await;
    let watch = r#"{"create_request":{"key":"c2xvdy8=","range_end":"c2xvdzA="}}"#;
    let (mut slow, _) = open(&member.endpoint, "/v3/watch", None).await;
    send(&mut slow, watch).await;
    assert!(next(&mut slow).await.is_some_and(|created| created.contains(r#""created":true"#)));

    let client = oxetcd_client::Client::connect([member.endpoint.as_str()], Default::default())
        .await
        .expect("client connects");
    let value = "v".repeat(VALUE_BYTES);
    let started = tokio::time::Instant::now();
    for i in 0..PUTS {
        tokio::time::timeout(STEP, client.put(format!("slow/{i:04}"), value.as_str(), None))
            .await
            .expect("a put is not held back by the slow watcher")
            .expect("put");
    }
    let writing = started.elapsed();
    // Others are served meanwhile: a gateway read, and a new watch that sees a new put.
    let gw = Gateway::new(&member).await;
    let read = gw.post("/v3/kv/range", r#"{"key":"c2xvdy8wMDAw"}"#, &[]).await;
    assert_eq!(read.status, 200, "{}", read.body);
    let (mut other, _) = open(&member.endpoint, "/v3/watch", None).await;
    send(&mut other, r#"{"create_request":{"key":"b3RoZXI="}}"#).await;
    assert!(next(&mut other).await.is_some_and(|created| created.contains(r#""created":true"#)));
    client.put("other", "1", None).await.expect("put");
    assert!(next(&mut other).await.is_some_and(|event| event.contains(r#""key":"b3RoZXI=""#)));

    // The slow one reads again: every put, in revision order.
    let mut revisions = Vec::new();
    while revisions.len() < PUTS {
        let message = next(&mut slow).await.expect("the slow watch is still open");
        for part in message.split(r#""mod_revision":""#).skip(1) {
            revisions.push(part.split('"').next().unwrap().parse::<i64>().unwrap());
        }
    }
    assert_eq!(revisions.len(), PUTS);
    assert!(revisions.windows(2).all(|w| w[1] == w[0] + 1), "in order, none lost: {revisions:?}");
    println!("{PUTS} puts of {VALUE_BYTES} bytes past a stalled gateway watch in {writing:?}");
    member.stop().await;
}

/// `Grpc-Timeout` is the gateway's own deadline, as grpc-gateway's: a Lock that waits
/// past it is answered 504 with gRPC's client-side DeadlineExceeded and leaves the queue
/// (its key deleted), and a watch ends with the error chunk. etcd 3.4.23's answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_timeout_header_bounds_a_gateway_call() {
    let member = TestMember::start(&[]).await;
    let gw = Gateway::new(&member).await;
    let timeout = ["Grpc-Timeout: 1S"];
    let started = tokio::time::Instant::now();
    let watch = gw.request("POST", "/v3/watch", r#"{"create_request":{"key":"YQ=="}}"#, &timeout);
    let watch = parse(&watch.await);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(watch.status, 200);
    assert_eq!(
        watch.body.lines().nth(1),
        Some(
            r#"{"error":{"grpc_code":4,"http_code":504,"message":"context deadline exceeded","http_status":"Gateway Timeout"}}"#
        ),
        "{}",
        watch.body
    );

    let held = gw.post("/v3/lock/lock", r#"{"name":"bA=="}"#, &[]).await;
    assert_eq!(held.status, 200, "{}", held.body);
    let started = tokio::time::Instant::now();
    let waiter = gw.post("/v3/lock/lock", r#"{"name":"bA=="}"#, &timeout).await;
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(
        (waiter.status, waiter.body.as_str()),
        (
            504,
            r#"{"error":"context deadline exceeded","message":"context deadline exceeded","code":4}"#
        )
    );
    // The waiter's key goes (in the background, as the abandoned call ends).
    let count = r#"{"key":"bA==","range_end":"bQ==","count_only":true}"#;
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let left = gw.post("/v3/kv/range", count, &[]).await;
        if left.body.ends_with(r#""revision":"4","raft_term":"2"},"count":"1"}"#) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the waiter's key stayed: {}", left.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    member.stop().await;
}
