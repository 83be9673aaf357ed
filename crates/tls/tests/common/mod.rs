//! What the TLS tests share: a bound on each network step, and a client that asks a
//! server what it has to say.

use std::net::SocketAddr;
use std::time::Duration;

use oxetcd_tls::ClientTls;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Bound on every network step of a test.
pub const STEP: Duration = Duration::from_secs(10);

/// Dials over TLS and returns what the server said, or the error (handshake or read).
pub async fn ask(client: &ClientTls, addr: SocketAddr) -> Result<String, String> {
    let run = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut tls = client
            .connect(&addr.ip().to_string(), tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let mut out = String::new();
        tls.read_to_string(&mut out)
            .await
            .map_err(|e| format!("read: {}", oxetcd_tls::describe(&e)))?;
        if out.is_empty() {
            return Err("closed without answer".into());
        }
        Ok(out)
    };
    tokio::time::timeout(STEP, run).await.expect("bounded step")
}
