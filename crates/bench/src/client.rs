//! Connections to the endpoints (one oxetcd-client `Client` per connection, each
//! authenticated on its own with `--user`), finding the leader, and the auth token the
//! measured requests carry.

use std::time::Duration;

use oxetcd_client::{Client, ClientOptions};
use oxetcd_tls::ClientTls;
use tonic::metadata::AsciiMetadataValue;

use crate::args::{User, endpoint_url};
use crate::error::BenchError;

/// The metadata key etcd reads a request's auth token from.
const TOKEN_KEY: &str = "token";

/// The auth token a connection's requests carry as `token` metadata, or none (no
/// `--user`, or a server with auth disabled).
///
/// Attaching it costs a request no allocation and no atomic: the value is a `'static`
/// string (leaked once per connection, a few dozen bytes), so cloning it copies two
/// words; the key is a static name; and the header map it goes into is the one tonic
/// fills with its own gRPC headers anyway. (tonic's interceptors would clone the URI and
/// take the request apart and back together on every call.)
#[derive(Debug, Clone, Default)]
pub struct Token(Option<AsciiMetadataValue>);

impl Token {
    /// `token` as a static metadata value; refused if it is not a valid header value.
    fn new(token: String) -> Result<Token, BenchError> {
        if AsciiMetadataValue::try_from(token.as_str()).is_err() {
            return Err(BenchError::Setup(format!(
                "the server's auth token is not a valid metadata value: {token:?}"
            )));
        }
        Ok(Token(Some(AsciiMetadataValue::from_static(Box::leak(token.into_boxed_str())))))
    }

    /// `message` as a request carrying the token.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.0 {
            request.metadata_mut().insert(TOKEN_KEY, token.clone());
        }
        request
    }
}

/// One connection: its client (which attaches the token by itself to the calls it
/// makes) and the token for the generated stubs on its channel.
#[derive(Debug, Clone)]
pub struct Conn {
    pub client: Client,
    pub token: Token,
}

/// One client, and so one HTTP/2 connection, to `url` (over TLS for `https://`, with
/// `tls`), authenticated as `user` if given: one Authenticate per connection, as etcd's
/// benchmark (one clientv3 client per connection, each logging in on its own). Retries
/// are off: every op the report counts is one request.
async fn dial(
    url: &str,
    tls: Option<&ClientTls>,
    user: Option<&User>,
    timeout: Duration,
) -> Result<Conn, BenchError> {
    let mut options = ClientOptions::default().with_dial_timeout(timeout).with_max_retries(0);
    if let Some(tls) = tls {
        options = options.with_tls(tls.config());
    } else if url.starts_with("https://") {
        return Err(BenchError::Usage(format!(
            "{url} is https: give --cacert (or --insecure-skip-tls-verify)"
        )));
    }
    if let Some(user) = user {
        options = options.with_user(&user.name, &user.password);
    }
    let client = Client::connect([url], options).await.map_err(|e| match (user, e) {
        (_, e @ oxetcd_client::Error::Unreachable { .. }) | (None, e) => {
            BenchError::connect(url, e)
        }
        (Some(user), e) => {
            BenchError::Setup(format!("authenticating as {:?} at {url}: {e}", user.name))
        }
    })?;
    // None when the server has auth disabled: the client then sends no token either.
    let token = match client.auth_token() {
        Some(token) => Token::new(token)?,
        None => Token::default(),
    };
    Ok(Conn { client, token })
}

/// The endpoint whose Maintenance.Status says it is the leader.
async fn find_leader(
    urls: &[String],
    tls: Option<&ClientTls>,
    user: Option<&User>,
    timeout: Duration,
) -> Result<String, BenchError> {
    for url in urls {
        let client = match dial(url, tls, user, timeout).await {
            Ok(conn) => conn.client,
            Err(BenchError::Connect { .. }) => continue,
            Err(e) => return Err(e),
        };
        let status = client
            .maintenance()
            .status()
            .await
            .map_err(|e| BenchError::rpc("Maintenance.Status", &e.into_status()))?;
        let member = status.header.map_or(0, |h| h.member_id);
        if status.leader != 0 && status.leader == member {
            return Ok(url.clone());
        }
    }
    Err(BenchError::NoLeader)
}

/// `conns` connections (one client, one HTTP/2 connection each), round-robin over the
/// endpoints, or all to the leader with `target_leader`; `https://` endpoints (and bare
/// ones, when `tls` is given) over TLS; each authenticated as `user` if given.
pub async fn connect(
    endpoints: &[String],
    conns: u64,
    target_leader: bool,
    tls: Option<&ClientTls>,
    user: Option<&User>,
    timeout: Duration,
) -> Result<Vec<Conn>, BenchError> {
    let mut urls: Vec<String> = endpoints.iter().map(|e| endpoint_url(e, tls.is_some())).collect();
    if urls.is_empty() {
        return Err(BenchError::Usage("--endpoints is empty".into()));
    }
    if target_leader {
        urls = vec![find_leader(&urls, tls, user, timeout).await?];
    }
    let mut clients = Vec::new();
    for i in 0..conns as usize {
        clients.push(dial(&urls[i % urls.len()], tls, user, timeout).await?);
    }
    Ok(clients)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_goes_into_every_request_as_token_metadata() {
        let token = Token::new("AbCdEf.42".to_string()).unwrap();
        for _ in 0..2 {
            let request = token.request(7u8);
            assert_eq!(request.metadata().get("token").unwrap(), "AbCdEf.42");
            assert_eq!(request.metadata().len(), 1);
        }
        assert!(Token::default().request(()).metadata().is_empty());
    }

    #[test]
    fn a_token_that_is_no_header_value_is_refused() {
        let Err(BenchError::Setup(m)) = Token::new("a\nb".to_string()) else {
            panic!("accepted a newline")
        };
        assert!(m.contains("not a valid metadata value"), "{m}");
    }
}
