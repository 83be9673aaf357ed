//! A one-line progress bar, drawn on stdout only when it is a terminal.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

const WIDTH: u64 = 40;

/// Draws `done/total` every 200 ms until dropped.
pub struct Progress {
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// `enabled` is the caller's choice (no bar with --json); the bar is also
    /// skipped when stdout is not a terminal.
    pub fn start(enabled: bool, done: Arc<AtomicU64>, total: u64) -> Self {
        let task = (enabled && total > 0 && std::io::stdout().is_terminal()).then(|| {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(200));
                loop {
                    tick.tick().await;
                    draw(done.load(Ordering::Relaxed).min(total), total);
                }
            })
        });
        Self { task }
    }
}

fn draw(done: u64, total: u64) {
    let filled = done * WIDTH / total;
    let bar = format!("{}{}", "=".repeat(filled as usize), " ".repeat((WIDTH - filled) as usize));
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "\r[{bar}] {done}/{total} {:>3}%", done * 100 / total);
    let _ = out.flush();
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r{}\r", " ".repeat(WIDTH as usize + 30));
            let _ = out.flush();
        }
    }
}
