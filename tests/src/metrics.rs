//! Reading what a server's HTTP endpoints answer: a plain `GET`, and a `/metrics` page
//! parsed into its families' types and its samples, for the metrics tests against
//! oxetcd and against the reference etcd.

use std::collections::HashMap;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `GET path` from `addr` (`host:port`): the status and the body. HTTP/1.0, so that Go's
/// server, like ours, answers with the body as it is (not chunked) and closes.
pub async fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8(response).expect("a text answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole answer");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    (status, body.to_string())
}

/// A scraped page: each family's `# TYPE`, and each sample's value by its line's name
/// and labels (`name{a="x",b="y"}`).
pub struct Page {
    pub types: HashMap<String, String>,
    pub samples: HashMap<String, f64>,
}

impl Page {
    pub async fn scrape(addr: &str) -> Page {
        let (status, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        let mut page = Page { types: HashMap::new(), samples: HashMap::new() };
        for line in body.lines() {
            if let Some(declared) = line.strip_prefix("# TYPE ") {
                let (name, kind) = declared.split_once(' ').expect("# TYPE name kind");
                page.types.insert(name.to_string(), kind.to_string());
            } else if !line.starts_with('#') {
                let (sample, value) = line.rsplit_once(' ').expect("sample value");
                let value = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
                assert!(page.samples.insert(sample.to_string(), value).is_none(), "twice: {line}");
            }
        }
        page
    }

    pub fn value(&self, sample: &str) -> f64 {
        *self.samples.get(sample).unwrap_or_else(|| panic!("no sample {sample}"))
    }

    /// The label names of `name`'s first sample (`le` aside), sorted.
    pub fn label_names(&self, name: &str) -> Vec<String> {
        let sample = self
            .samples
            .keys()
            .filter(|s| s.split('{').next() == Some(name))
            .min()
            .unwrap_or_else(|| panic!("no sample of {name}"));
        let Some((_, labels)) = sample.split_once('{') else { return Vec::new() };
        labels
            .trim_end_matches('}')
            .split("\",")
            .filter_map(|pair| pair.split_once('=').map(|(n, _)| n.to_string()))
            .filter(|n| n != "le")
            .collect()
    }
}
