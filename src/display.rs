//! What the responder sees while an incident runs, built from the same
//! journal records as the document. On a terminal: a live table of steps
//! with state, attempt, elapsed time and the SLO countdown. Piped: one plain
//! timestamped line per event.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::document::offset;
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

/// The display, on a thread of its own: it formats each record and writes
/// standard output itself, so a terminal that is slow to draw, or a pipe
/// nobody reads, holds up that thread and never the incident, and the
/// incident's thread spends nothing on formatting. It consumes
/// records until the journal closes; [`Display::finished`] waits for it.
pub struct Display {
    done: tokio::sync::oneshot::Receiver<()>,
}

impl Display {
    /// Starts the thread. `detected` is the T+0 of offsets when the records
    /// start after `incident_started` (follow-ups).
    pub fn start(
        style: Style,
        rx: Receiver<Record>,
        paused: Arc<AtomicBool>,
        detected: Option<DateTime<Utc>>,
    ) -> std::io::Result<Display> {
        let (tx, done) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("quench-display".into())
            .spawn(move || {
                run(style, &rx, &paused, detected, &mut std::io::stdout());
                let _ = tx.send(());
            })?;
        Ok(Display { done })
    }

    /// Waits until everything is written: at the end, when the journal has
    /// closed and the display has at most its last lines left.
    pub async fn finished(self) {
        let _ = self.done.await;
    }
}

fn run(
    style: Style,
    rx: &Receiver<Record>,
    paused: &AtomicBool,
    detected: Option<DateTime<Utc>>,
    out: &mut impl Write,
) {
    match style {
        Style::Quiet => while rx.recv().is_ok() {},
        Style::Plain => {
            let mut detected = detected;
            let mut buf = Vec::new();
            while let Ok(r) = rx.recv() {
                // Whatever else has come meanwhile goes out in one write.
                for r in std::iter::once(r).chain(rx.try_iter()) {
                    if let Event::IncidentStarted { detected_at, .. } = &r.event {
                        detected = Some(*detected_at);
                    }
                    let off = detected.map(|d| offset(d, r.ts)).unwrap_or_default();
                    let _ = writeln!(
                        buf,
                        "{} {off:>12}  {}",
                        format_ts(&r.ts),
                        r.event.describe()
                    );
                }
                let _ = out.write_all(&buf);
                let _ = out.flush();
                buf.clear();
            }
        }
        Style::Live => {
            let mut table = Table::default();
            let mut next_tick = Instant::now() + TICK;
            loop {
                match rx.recv_timeout(next_tick.saturating_duration_since(Instant::now())) {
                    Ok(r) => {
                        table.apply(&r);
                        for r in rx.try_iter() {
                            table.apply(&r);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => next_tick = Instant::now() + TICK,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                if !paused.load(Ordering::SeqCst) {
                    table.draw(out);
                }
            }
            table.draw(out);
        }
    }
    let _ = out.flush();
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
