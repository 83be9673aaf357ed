//! Arming and disarming failpoints while the member runs, over HTTP: what etcd's gofail
//! serves on `GOFAIL_HTTP`. Only in builds with the `failpoints` feature; started by
//! [`crate::failpoints_from_env`] when [`ADDRESS_ENV`] (`OXETCD_FAILPOINTS_HTTP`) names
//! an `ip:port` to listen on:
//!
//! - `PUT /<name>` with the actions as the body, in the `fail` crate's syntax (as in
//!   `FAILPOINTS`: `return`, `30%return(2a,3b)`, `2*off->panic`, …), arms failpoint
//!   `name`, replacing what it had: `204`, or `400` with `fail`'s parse error;
//! - `DELETE /<name>` disarms it: `204`, or `404` if it was not armed;
//! - `GET /<name>` answers its actions (`404` if not armed); `GET /` lists every armed
//!   failpoint, one `name=actions` line each, sorted.
//!
//! Plain HTTP/1.1, one request per connection (answered with `Connection: close`), a body
//! only with `Content-Length`. It runs on a thread of its own rather than on the member's
//! runtime, so a harness can arm failpoints before the runtime starts or while it is
//! starved. For tests and the robustness harness, on a loopback or test-namespace address:
//! it has no authentication.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use tracing::{debug, info, warn};

/// The environment variable naming the address to serve the control on.
pub const ADDRESS_ENV: &str = "OXETCD_FAILPOINTS_HTTP";

/// A request line and headers longer than this are refused.
const MAX_HEAD_BYTES: u64 = 8 * 1024;
/// Failpoint actions are a few words; a larger body is refused.
const MAX_BODY_BYTES: usize = 4 * 1024;
/// A client that stalls is dropped after this, so it cannot hold the one thread.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Listens on `address` and answers requests on a thread of its own for the life of the
/// process; returns the bound address (`address` may have port 0).
pub fn serve(address: &str) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(address)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new().name("failpoint-http".into()).spawn(move || {
        for stream in listener.incoming() {
            match stream.and_then(handle) {
                Ok(()) => {}
                Err(error) => debug!(%error, "failpoint control connection failed"),
            }
        }
    })?;
    Ok(bound)
}

/// An answer: status code and text body.
#[derive(Debug, PartialEq, Eq)]
struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn new(status: u16, body: impl Into<String>) -> Reply {
        Reply { status, body: body.into() }
    }

    fn reason(&self) -> &'static str {
        match self.status {
            200 => "OK",
            204 => "No Content",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            411 => "Length Required",
            413 => "Content Too Large",
            _ => "Error",
        }
    }
}

fn handle(mut stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let reply = match read_request(BufReader::new(&mut stream)) {
        Ok((method, path, body)) => answer(&method, &path, &body),
        Err(refused) => refused,
    };
    let body = if reply.body.is_empty() || reply.body.ends_with('\n') {
        reply.body.clone()
    } else {
        format!("{}\n", reply.body)
    };
    write!(
        stream,
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        reply.status,
        reply.reason(),
        body.len()
    )?;
    stream.flush()
}

/// Reads one request: its method, path and body; or the refusal to answer.
fn read_request(reader: impl BufRead) -> Result<(String, String, String), Reply> {
    let bad = |what: &str| Reply::new(400, what);
    let mut head = reader.take(MAX_HEAD_BYTES);
    let mut line = String::new();
    head.read_line(&mut line).map_err(|e| bad(&format!("reading the request: {e}")))?;
    let mut words = line.split_whitespace();
    let (Some(method), Some(path)) = (words.next(), words.next()) else {
        return Err(bad("malformed request line"));
    };
    let (method, path) = (method.to_string(), path.to_string());
    let mut length = 0;
    loop {
        line.clear();
        head.read_line(&mut line).map_err(|e| bad(&format!("reading the headers: {e}")))?;
        if !line.ends_with('\n') {
            return Err(bad("the request head is too long or cut short"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(bad("malformed header"));
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().map_err(|_| bad("malformed Content-Length"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Reply::new(411, "send the body with a Content-Length"));
        }
    }
    if length > MAX_BODY_BYTES {
        return Err(Reply::new(413, format!("a body of at most {MAX_BODY_BYTES} bytes")));
    }
    let mut body = vec![0; length];
    head.into_inner().read_exact(&mut body).map_err(|e| bad(&format!("reading the body: {e}")))?;
    let body = String::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
    Ok((method, path, body))
}

/// The actions failpoint `name` is armed with, if it is.
fn armed(name: &str) -> Option<String> {
    fail::list().into_iter().find(|(armed, _)| armed == name).map(|(_, actions)| actions)
}

fn answer(method: &str, path: &str, body: &str) -> Reply {
    let Some(name) = path.strip_prefix('/') else {
        return Reply::new(400, "the path must start with /");
    };
    match (method, name) {
        ("GET", "") => {
            let mut lines: Vec<String> = fail::list()
                .into_iter()
                .map(|(name, actions)| format!("{name}={actions}\n"))
                .collect();
            lines.sort();
            Reply::new(200, lines.concat())
        }
        ("PUT" | "DELETE", "") => Reply::new(400, "name a failpoint: /<name>"),
        ("GET", name) => match armed(name) {
            Some(actions) => Reply::new(200, actions),
            None => Reply::new(404, format!("failpoint {name} is not armed")),
        },
        ("PUT", name) => {
            let actions = body.trim();
            match fail::cfg(name, actions) {
                Ok(()) => {
                    info!(failpoint = name, actions, "armed failpoint");
                    Reply::new(204, "")
                }
                Err(error) => {
                    warn!(failpoint = name, actions, %error, "refused failpoint actions");
                    Reply::new(400, format!("failpoint {name}: {error}"))
                }
            }
        }
        ("DELETE", name) => {
            if armed(name).is_none() {
                return Reply::new(404, format!("failpoint {name} is not armed"));
            }
            fail::remove(name);
            info!(failpoint = name, "disarmed failpoint");
            Reply::new(204, "")
        }
        _ => Reply::new(405, "GET, PUT or DELETE"),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// One request to `address`: the status code and the body.
    fn request(address: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(address).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, body.to_string())
    }

    /// What failpoint `name` does now: `Some(argument)` if it fires.
    fn fires(name: &str) -> Option<Option<String>> {
        fail::eval(name, |argument| argument)
    }

    #[test]
    fn arms_lists_and_disarms_a_failpoint() {
        let address = serve("127.0.0.1:0").unwrap();
        let name = "test::http-arm";
        assert_eq!(fires(name), None);
        assert_eq!(
            request(address, "PUT", &format!("/{name}"), "return(2a,3b)\n"),
            (204, "".into())
        );
        assert_eq!(fires(name), Some(Some("2a,3b".into())));
        assert_eq!(
            request(address, "GET", &format!("/{name}"), ""),
            (200, "return(2a,3b)\n".into())
        );
        let (status, listed) = request(address, "GET", "/", "");
        assert_eq!(status, 200);
        assert!(listed.lines().any(|l| l == format!("{name}=return(2a,3b)")), "{listed}");
        assert_eq!(request(address, "DELETE", &format!("/{name}"), ""), (204, "".into()));
        assert_eq!(fires(name), None);
        assert_eq!(request(address, "DELETE", &format!("/{name}"), "").0, 404);
        assert_eq!(request(address, "GET", &format!("/{name}"), "").0, 404);
    }

    #[test]
    fn a_bad_spec_is_refused_with_fails_error_and_changes_nothing() {
        let address = serve("127.0.0.1:0").unwrap();
        let name = "test::http-bad";
        let (status, error) = request(address, "PUT", &format!("/{name}"), "sometimes");
        assert_eq!(status, 400);
        assert!(error.contains(r#"unrecognized command "sometimes""#), "{error}");
        assert_eq!(fires(name), None);
        let (status, error) = request(address, "PUT", &format!("/{name}"), "");
        assert_eq!(status, 400, "{error}");
        assert_eq!(fires(name), None);
    }

    #[test]
    fn requests_without_a_name_or_with_another_method_are_refused() {
        let address = serve("127.0.0.1:0").unwrap();
        assert_eq!(request(address, "PUT", "/", "return").0, 400);
        assert_eq!(request(address, "POST", "/test::http-post", "return").0, 405);
        assert_eq!(request(address, "GET", "test::http-no-slash", "").0, 400);
    }
}
