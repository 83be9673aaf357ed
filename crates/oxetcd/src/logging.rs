//! Logs: JSON lines on stderr by default (etcd's zap logger), text on request.

use tracing_subscriber::EnvFilter;

use crate::config::{LogLevel, Logger};

pub fn init(level: LogLevel, logger: Logger) {
    let level = match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error | LogLevel::Panic | LogLevel::Fatal => "error",
    };
    // Our crates (every target starts with `oxetcd`) log at the chosen level; libraries
    // only their warnings.
    let filter = EnvFilter::new(format!("warn,oxetcd={level}"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match logger {
        Logger::Zap => builder.json().flatten_event(true).with_current_span(false).try_init(),
        Logger::Text => builder.try_init(),
    };
}
