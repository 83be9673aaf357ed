//! What can stop a benchmark before it produces a report.

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

    pub fn connect(endpoint: &str, err: oxetcd_client::Error) -> Self {
        let reason = match err {
            oxetcd_client::Error::Unreachable { last_error, .. } => last_error,
            other => other.to_string(),
        };
        Self::Connect { endpoint: endpoint.to_string(), reason }
    }
}
