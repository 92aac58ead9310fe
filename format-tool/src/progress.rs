//! Progress bars on long work, drawn on stderr only when it is a terminal: piped or
//! redirected runs (scripts, CI) stay quiet.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar or spinner that may be absent; every call is a no-op then.
#[derive(Debug)]
pub struct Progress(Option<ProgressBar>);

impl Progress {
    fn enabled() -> bool {
        std::io::stderr().is_terminal()
    }

    /// A bar over `total` bytes.
    pub fn bytes(total: u64, message: &str) -> Self {
        if !Self::enabled() {
            return Self(None);
        }
        let bar = ProgressBar::new(total);
        let style = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(message.to_owned());
        Self(Some(bar))
    }

    /// A bar over units of work whose total the worker reports as it goes (fsck).
    pub fn units(message: &str) -> Self {
        if !Self::enabled() {
            return Self(None);
        }
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(message.to_owned());
        Self(Some(bar))
    }

    /// A spinner counting bytes, for work whose total is not known ahead.
    pub fn spinner(message: &str) -> Self {
        if !Self::enabled() {
            return Self(None);
        }
        let bar = ProgressBar::new_spinner();
        let style = ProgressStyle::with_template("{spinner} {msg} {bytes} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Self(Some(bar))
    }

    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(n);
        }
    }

    /// For work that reports "done of total" (its units, not bytes).
    pub fn set_position(&self, done: u64, total: u64) {
        if let Some(bar) = &self.0 {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    pub fn set_message(&self, message: String) {
        if let Some(bar) = &self.0 {
            bar.set_message(message);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
