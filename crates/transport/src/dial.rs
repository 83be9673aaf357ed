//! Connecting to a peer: trying its URLs, and the delay between attempts.

use std::time::Duration;

use oxetcd_api::oxetcdpb::peer_client::PeerClient;
use tonic::transport::{Channel, Endpoint};

use crate::config::TransportConfig;

/// Connects to one of `urls`, starting with the one at `*next` (the last that worked)
/// and trying each once. On success `*next` points at the URL that answered.
pub(crate) async fn dial(
    config: &TransportConfig,
    urls: &[String],
    next: &mut usize,
) -> Result<PeerClient<Channel>, String> {
    let mut last_error = String::from("the peer has no URLs");
    for attempt in 0..urls.len() {
        let index = (*next + attempt) % urls.len();
        let url = &urls[index];
        match connect(config, url).await {
            Ok(channel) => {
                *next = index;
                return Ok(PeerClient::new(channel)
                    .max_decoding_message_size(config.max_message_bytes)
                    .max_encoding_message_size(config.max_message_bytes));
            }
            Err(error) => last_error = format!("{url}: {error}"),
        }
    }
    Err(last_error)
}

pub(crate) async fn connect(config: &TransportConfig, url: &str) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| format!("invalid peer URL: {e}"))?
        .connect_timeout(config.dial_timeout)
        .http2_keep_alive_interval(config.keepalive_interval)
        .keep_alive_timeout(config.keepalive_timeout)
        .keep_alive_while_idle(true)
        .http2_adaptive_window(true);
    let connector = oxetcd_tls::Connector::new(config.tls.clone());
    match tokio::time::timeout(config.dial_timeout, endpoint.connect_with_connector(connector))
        .await
    {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(e)) => Err(oxetcd_tls::describe(&e)),
        Err(_) => Err(format!("timed out after {:?}", config.dial_timeout)),
    }
}

/// Exponential backoff between reconnection attempts: `min`, doubling up to `max`.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(config: &TransportConfig) -> Self {
        Backoff { min: config.backoff_min, max: config.backoff_max, current: config.backoff_min }
    }

    /// The delay to wait now; the following one is twice as long (at most `max`).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.current;
        self.current = (self.current * 2).min(self.max);
        delay
    }

    pub fn reset(&mut self) {
        self.current = self.min;
    }

    pub fn max(&self) -> Duration {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_max_and_resets() {
        let mut config = TransportConfig::new(1, 1, "/tmp");
        config.backoff_min = Duration::from_millis(100);
        config.backoff_max = Duration::from_millis(500);
        let mut b = Backoff::new(&config);
        let delays: Vec<_> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[tokio::test]
    async fn dial_reports_every_failure_and_rejects_bad_urls() {
        let mut config = TransportConfig::new(1, 1, "/tmp");
        config.dial_timeout = Duration::from_secs(1);
        let mut next = 0;
        let err = dial(&config, &[], &mut next).await.unwrap_err();
        assert!(err.contains("no URLs"), "{err}");
        let urls = vec!["not a url".to_owned()];
        let err = dial(&config, &urls, &mut next).await.unwrap_err();
        assert!(err.contains("invalid peer URL"), "{err}");
    }
}
