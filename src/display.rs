//! What the responder sees while an incident runs, built from the same
//! journal records as the document. On a terminal: a live table of steps
//! with state, attempt, elapsed time and the SLO countdown. Piped: one plain
//! timestamped line per event.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::document::{describe, offset};
use crate::journal::{Event, Record, StepInfo, format_ts};
use crate::runbook::human;

/// How often the live table redraws while nothing happens.
const TICK: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Live,
    Plain,
    /// Nothing (a summary is printed by the caller).
    Quiet,
}

#[derive(Debug, Clone)]
struct Row {
    info: StepInfo,
    state: &'static str,
    attempt: u32,
    started: Option<DateTime<Utc>>,
    finished: Option<DateTime<Utc>>,
}

/// Consumes records until the journal closes, then returns. `detected` is
/// the T+0 of offsets when the records start after `incident_started` (follow-ups).
pub async fn run(
    style: Style,
    mut rx: UnboundedReceiver<Record>,
    paused: Arc<AtomicBool>,
    detected: Option<DateTime<Utc>>,
) {
    let mut out = Terminal::start();
    match style {
        Style::Quiet => while rx.recv().await.is_some() {},
        Style::Plain => {
            let mut detected = detected;
            while let Some(r) = rx.recv().await {
                if let Event::IncidentStarted { detected_at, .. } = &r.event {
                    detected = Some(*detected_at);
                }
                let off = detected.map(|d| offset(d, r.ts)).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{} {off:>12}  {}",
                    format_ts(&r.ts),
                    describe(&r.event)
                );
                let _ = out.flush();
            }
        }
        Style::Live => {
            let mut table = Table::default();
            let mut ticker = tokio::time::interval(TICK);
            loop {
                tokio::select! {
                    r = rx.recv() => match r {
                        Some(r) => table.apply(&r),
                        None => break,
                    },
                    _ = ticker.tick() => {}
                }
                if !paused.load(Ordering::SeqCst) {
                    table.draw(&mut out);
                }
            }
            table.draw(&mut out);
        }
    }
    let _ = out.flush();
    out.finish();
}

/// Standard output, written by a thread of its own: a terminal that is slow
/// to draw, or a pipe nobody reads, holds up that thread and never the
/// incident's runtime. What is written goes out on `flush`, whole.
struct Terminal {
    buf: Vec<u8>,
    tx: Option<std::sync::mpsc::Sender<Vec<u8>>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Terminal {
    fn start() -> Terminal {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let writer = std::thread::Builder::new()
            .name("quench-terminal".into())
            .spawn(move || {
                let mut stdout = std::io::stdout();
                for chunk in rx {
                    let _ = stdout.write_all(&chunk);
                    let _ = stdout.flush();
                }
            })
            // As `std::thread::spawn` does: the process is out of threads.
            .expect("failed to start the terminal's writer thread");
        Terminal {
            buf: Vec::new(),
            tx: Some(tx),
            writer: Some(writer),
        }
    }

    /// Waits until everything written is out: at the end, when the writer
    /// has at most the last lines left, so waiting blocks nothing else.
    fn finish(mut self) {
        self.tx = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Write for Terminal {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty()
            && let Some(tx) = &self.tx
        {
            let _ = tx.send(std::mem::take(&mut self.buf));
        }
        Ok(())
    }
}

#[derive(Default)]
struct Table {
    header: String,
    detected: Option<DateTime<Utc>>,
    slo: Duration,
    revoked: Option<String>,
    rows: Vec<Row>,
    index: HashMap<String, usize>,
    drawn: usize,
    /// The clock offset between wall time and the incident's times, so a
    /// live run's countdown moves between events.
    started_wall: Option<(DateTime<Utc>, std::time::Instant)>,
    finished: Option<String>,
}

impl Table {
    fn now(&self) -> DateTime<Utc> {
        match self.started_wall {
            Some((t, i)) => t + i.elapsed(),
            None => Utc::now(),
        }
    }

    fn apply(&mut self, r: &Record) {
        match &r.event {
            Event::IncidentStarted {
                incident,
                runbook,
                mode,
                detected_at,
                slo_ms,
                steps,
                ..
            } => {
                self.header = format!("{incident}  {runbook}  ({})", mode.name());
                self.detected = Some(*detected_at);
                self.slo = Duration::from_millis(*slo_ms);
                self.started_wall = Some((r.ts, std::time::Instant::now()));
                for s in steps {
                    self.index.insert(s.id.clone(), self.rows.len());
                    self.rows.push(Row {
                        info: s.clone(),
                        state: "waiting",
                        attempt: 0,
                        started: None,
                        finished: None,
                    });
                }
            }
            Event::IncidentFinished {
                outcome,
                time_to_revoke_ms,
                ..
            } => {
                self.revoked = time_to_revoke_ms.map(|ms| human(Duration::from_millis(ms)));
                self.finished = Some(outcome.name().replace('_', " "));
            }
            e => {
                let Some(&i) = e.step().and_then(|s| self.index.get(s)) else {
                    return;
                };
                let row = &mut self.rows[i];
                match e {
                    Event::StepStarted { attempt, .. } => {
                        row.state = "running";
                        row.attempt = *attempt;
                        row.started.get_or_insert(r.ts);
                    }
                    Event::AttemptFailed { .. } => row.state = "retrying",
                    Event::ApprovalRequested { .. } => row.state = "approval?",
                    Event::StepSucceeded { .. } => row.state = "ok",
                    Event::StepFailed { .. } => row.state = "FAILED",
                    Event::StepSkipped { .. } => row.state = "skipped",
                    Event::StepScheduled { .. } => row.state = "later",
                    Event::TaskOpened { .. } => row.state = "open",
                    _ => {}
                }
                if e.is_step_terminal() {
                    row.finished = Some(r.ts);
                }
            }
        }
    }

    fn draw(&mut self, out: &mut impl Write) {
        if self.rows.is_empty() {
            return;
        }
        let now = self.now();
        let mut lines = Vec::with_capacity(self.rows.len() + 1);
        let slo_line = match (&self.revoked, self.detected, &self.finished) {
            (Some(t), _, _) => format!("revoked in {t} (SLO {})", human(self.slo)),
            (None, _, Some(_)) => format!("not revoked (SLO {})", human(self.slo)),
            (None, Some(d), None) => {
                let deadline = d + self.slo;
                let left = (deadline - now).to_std().unwrap_or(Duration::ZERO);
                if left.is_zero() {
                    format!("SLO {} MISSED", human(self.slo))
                } else {
                    format!("SLO: {} left to revoke", human(left))
                }
            }
            (None, None, None) => String::new(),
        };
        let status = self.finished.as_deref().unwrap_or("running");
        lines.push(format!("{}  {status}  {slo_line}", self.header));
        for row in &self.rows {
            let elapsed = match (row.started, row.finished) {
                (Some(s), Some(f)) => human((f - s).to_std().unwrap_or_default()),
                (Some(s), None) => human((now - s).to_std().unwrap_or_default()),
                _ => String::new(),
            };
            let attempt = if row.attempt > 1 {
                format!("attempt {}", row.attempt)
            } else {
                String::new()
            };
            lines.push(format!(
                "  {:<10} {:<24} {:<9} {:<10} {:>8}",
                row.state,
                row.info.id,
                row.info.phase.name(),
                attempt,
                elapsed
            ));
        }
        let mut buf = String::new();
        if self.drawn > 0 {
            buf.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for l in &lines {
            buf.push_str("\x1b[2K");
            buf.push_str(l);
            buf.push('\n');
        }
        self.drawn = lines.len();
        let _ = out.write_all(buf.as_bytes());
        let _ = out.flush();
    }
}
