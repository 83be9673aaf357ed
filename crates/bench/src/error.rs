//! What can stop a benchmark before it produces a report.

use std::error::Error as _;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("the server does not serve {rpc} (gRPC status Unimplemented{detail})")]
    Unimplemented { rpc: &'static str, detail: String },
    #[error("{rpc} failed: {code:?}: {message}")]
    Rpc { rpc: &'static str, code: tonic::Code, message: String },
    #[error("{0}")]
    Setup(String),
    #[error("no endpoint reports itself as the leader")]
    NoLeader,
}

impl BenchError {
    /// A failed RPC during setup (or one the server does not implement at all).
    pub fn rpc(rpc: &'static str, status: &tonic::Status) -> Self {
        let message = status.message().to_string();
        match status.code() {
            tonic::Code::Unimplemented => Self::Unimplemented {
                rpc,
                detail: if message.is_empty() { message } else { format!(": {message}") },
            },
            code => Self::Rpc { rpc, code, message },
        }
    }

    pub fn connect(endpoint: &str, err: &tonic::transport::Error) -> Self {
        // tonic's transport error says only "transport error": the cause is below.
        let mut reason = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            reason = format!("{reason}: {s}");
            source = s.source();
        }
        Self::Connect { endpoint: endpoint.to_string(), reason }
    }
}
