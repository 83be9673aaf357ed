//! Logs: JSON lines (etcd's zap logger) or text, to `--log-outputs` (stderr by default).

use std::sync::Mutex;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};

use crate::config::{LogLevel, LogOutput, Logger};

/// Starts logging; fails when a log file cannot be opened for appending.
pub fn init(level: LogLevel, logger: Logger, outputs: &[LogOutput]) -> std::io::Result<()> {
    let level = match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error | LogLevel::Panic | LogLevel::Fatal => "error",
    };
    // Our crates (every target starts with `oxetcd`) log at the chosen level; libraries
    // only their warnings.
    let filter = EnvFilter::new(format!("warn,oxetcd={level}"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer(outputs)?);
    let _ = match logger {
        Logger::Zap => builder.json().flatten_event(true).with_current_span(false).try_init(),
        Logger::Text => builder.try_init(),
    };
    Ok(())
}

/// Every line goes to every output, as with etcd's `--log-outputs=stderr,/var/log/etcd.log`.
fn writer(outputs: &[LogOutput]) -> std::io::Result<BoxMakeWriter> {
    let mut combined: Option<BoxMakeWriter> = None;
    for output in outputs {
        let next = match output {
            LogOutput::Stderr => BoxMakeWriter::new(std::io::stderr),
            LogOutput::Stdout => BoxMakeWriter::new(std::io::stdout),
            LogOutput::File(path) => {
                let file =
                    std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(
                        |e| {
                            std::io::Error::new(
                                e.kind(),
                                format!("cannot open log output {}: {e}", path.display()),
                            )
                        },
                    )?;
                BoxMakeWriter::new(Mutex::new(file))
            }
        };
        combined = Some(match combined {
            None => next,
            Some(before) => BoxMakeWriter::new(before.and(next)),
        });
    }
    Ok(combined.unwrap_or_else(|| BoxMakeWriter::new(std::io::stderr)))
}
