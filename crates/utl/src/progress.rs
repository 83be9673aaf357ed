//! A progress bar on stderr for long work, shown only when stderr is a terminal (so
//! scripts and logs see nothing of it).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// How often a bar is redrawn, and a file watched by [`Progress::watch_file`] looked at.
const TICK: Duration = Duration::from_millis(100);

/// A bar over a number of bytes (or other units), or nothing.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar over bytes labelled `what` if stderr is a terminal; otherwise nothing is
    /// drawn.
    pub fn on_tty(what: &'static str) -> Progress {
        Progress::styled(what, "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
    }

    /// A count of bytes and their rate, for work whose total is not known (a mirror that
    /// runs until stopped), if stderr is a terminal.
    pub fn on_tty_open_ended(what: &'static str) -> Progress {
        Progress::styled(what, "{spinner} {msg} {bytes} ({bytes_per_sec})")
    }

    /// A bar over a number of `unit`s (writes, keys), with their rate, if stderr is a
    /// terminal.
    pub fn on_tty_counting(what: &'static str, unit: &str) -> Progress {
        // The unit is text of ours, but a brace in it would read as a template key.
        let unit = unit.replace(['{', '}'], "");
        Progress::styled(
            what,
            &format!(
                "{{msg}} [{{bar:25}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, {{eta}})"
            ),
        )
    }

    fn styled(what: &'static str, template: &str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress::hidden();
        }
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template(template)
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(what);
        Progress { bar: Some(bar) }
    }

    /// Draws nothing.
    pub fn hidden() -> Progress {
        Progress { bar: None }
    }

    /// Starts over `total` bytes or units (an open-ended count shows no total: give 0).
    pub fn start(&self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(0);
            bar.enable_steady_tick(TICK);
        }
    }

    /// `n` more bytes done.
    pub fn advance(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// Runs `print` with the bar taken off the terminal, so that a line written to the
    /// same terminal meanwhile does not land in the middle of it.
    pub fn suspend<T>(&self, print: impl FnOnce() -> T) -> T {
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// Shows the growth of the file at `path` against `total` until the returned guard
    /// drops: for work done by a call that reports no progress of its own (a store
    /// writing a compacted copy).
    pub fn watch_file(self, path: PathBuf, total: u64) -> Watch {
        let Some(bar) = self.bar.clone() else {
            return Watch { stop: Arc::default(), thread: None, progress: self };
        };
        self.start(total);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    if let Ok(meta) = std::fs::metadata(&path) {
                        bar.set_position(meta.len().min(total));
                    }
                    std::thread::sleep(TICK);
                }
            })
            .ok();
        Watch { stop, thread, progress: self }
    }
}

/// Stops a [`Progress::watch_file`] and clears its bar when dropped.
#[derive(Debug)]
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    progress: Progress,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.progress.finish();
    }
}
