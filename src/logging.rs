//! Logs on stderr through `tracing`: human-readable by default, one JSON
//! object a line with `--log-format json` for log shippers. The level comes
//! from `QUENCH_LOG` (an env-filter: `info`, `quench=debug`, …; default
//! `warn`). Every line is swept for every secret the process knows before
//! it is written.

use std::io::Write;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::secret::Redactor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Stderr, redacted: formatted lines pass through the process redactor.
#[derive(Clone, Copy)]
struct RedactedStderr;

struct LineWriter(Vec<u8>);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    /// One event is one buffer: redact it whole, then write it at once.
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let clean = Redactor::process().redact(&text);
        let _ = std::io::stderr().lock().write_all(clean.as_bytes());
    }
}

impl<'a> MakeWriter<'a> for RedactedStderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(Vec::new())
    }
}

/// When the process started, as near as `main` can tell.
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Marks the start of the process, for [`startup`].
pub fn mark_start() {
    STARTED.get_or_init(std::time::Instant::now);
}

/// Says how long after the start `what` happened, at debug level under the
/// `quench::startup` target (`QUENCH_LOG=quench::startup=debug`): where the
/// time to the first request goes, and the time from the last answer to the
/// exit (`bench/marks.py` collects them over many runs).
pub fn startup(what: &str) {
    if let Some(t0) = STARTED.get() {
        tracing::debug!(target: "quench::startup", us = t0.elapsed().as_micros() as u64, "{what}");
    }
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("QUENCH_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactedStderr)
        .with_target(true);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
