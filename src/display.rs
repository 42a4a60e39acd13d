//! What the responder sees while an incident runs, built from the same
//! journal records as the document. On a terminal: a live table of steps
//! with state, attempt, elapsed time and the SLO countdown. Piped: one plain
//! timestamped line per event.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::document::offset;
use crate::journal::{Event, IncidentView, Mode, Record, StepState, StepView, format_ts};
use crate::time::{human, human_ms};

/// How often the live table redraws while nothing happens.
const TICK: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Live,
    Plain,
    /// Nothing (a summary is printed by the caller).
    Quiet,
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

/// The live table: the incident as its records tell it, drawn in place.
#[derive(Default)]
struct Table {
    view: IncidentView,
    drawn: usize,
    /// The clock offset between wall time and the incident's times, so a
    /// live run's countdown moves between events.
    started_wall: Option<(DateTime<Utc>, std::time::Instant)>,
}

impl Table {
    fn now(&self) -> DateTime<Utc> {
        match self.started_wall {
            Some((t, i)) => t + i.elapsed() * self.view.drill_pace.unwrap_or(1).max(1),
            None => Utc::now(),
        }
    }

    fn apply(&mut self, r: &Record) {
        if matches!(r.event, Event::IncidentStarted { .. }) {
            self.started_wall = Some((r.ts, std::time::Instant::now()));
        }
        self.view.apply(r);
    }

    /// The line under which the steps are listed: the incident, its state
    /// and the SLO.
    fn header(&self, now: DateTime<Utc>) -> String {
        let v = &self.view;
        let slo = Duration::from_millis(v.slo_ms);
        let slo_line = match (&v.finished, v.detected_at) {
            (Some(f), _) => match f.time_to_revoke_ms {
                Some(ms) => format!("revoked in {} (SLO {})", human_ms(ms), human(slo)),
                None => format!("not revoked (SLO {})", human(slo)),
            },
            (None, Some(d)) => {
                let left = (d + slo - now).to_std().unwrap_or(Duration::ZERO);
                if left.is_zero() {
                    format!("SLO {} MISSED", human(slo))
                } else {
                    format!("SLO: {} left to revoke", human(left))
                }
            }
            (None, None) => String::new(),
        };
        let status = v.finished.map_or_else(
            || "running".to_string(),
            |f| f.outcome.name().replace('_', " "),
        );
        let mode = match v.mode {
            Some(Mode::Drill) => "DRILL",
            m => m.map_or("", Mode::name),
        };
        format!("{}  {}  ({mode})  {status}  {slo_line}", v.id, v.runbook)
    }

    fn draw(&mut self, out: &mut impl Write) {
        if self.view.steps.is_empty() {
            return;
        }
        let now = self.now();
        let mut lines = Vec::with_capacity(self.view.steps.len() + 1);
        lines.push(self.header(now));
        lines.extend(self.view.steps.iter().map(|s| row(s, now)));
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

/// One step's line: its state, id, phase, attempt and how long it took.
fn row(step: &StepView, now: DateTime<Utc>) -> String {
    let state = match step.state {
        StepState::AwaitingApproval => "approval?",
        StepState::Succeeded => "ok",
        StepState::Failed { .. } => "FAILED",
        StepState::Scheduled { .. } => "later",
        ref other => other.name(),
    };
    let elapsed = match (step.started_at, step.settled_at) {
        (Some(s), Some(f)) => human((f - s).to_std().unwrap_or_default()),
        (Some(s), None) => human((now - s).to_std().unwrap_or_default()),
        _ => String::new(),
    };
    let attempt = if step.attempts > 1 {
        format!("attempt {}", step.attempts)
    } else {
        String::new()
    };
    format!(
        "  {state:<10} {:<24} {:<9} {attempt:<10} {elapsed:>8}",
        step.info.id,
        step.info.phase.name(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOURNAL: &str = r#"{"v":1,"seq":1,"ts":"2026-11-24T21:16:54.129Z","event":"incident_started","incident":"INC-1","runbook":"r","title":"t","runbook_path":"r.yaml","runbook_sha256":"00","mode":"rehearsal","detected_at":"2026-11-24T21:16:54.129Z","started_at":"2026-11-24T21:16:54.129Z","slo_ms":300000,"inputs":{},"secrets":[],"by":{"user":"u","host":"h"},"steps":[{"id":"revoke","title":"a","phase":"revoke","action":"http.request","needs":[],"deferred":false},{"id":"review","title":"b","phase":"review","action":"manual.task","needs":[],"deferred":false}]}
{"v":1,"seq":2,"ts":"2026-11-24T21:16:54.130Z","event":"step_started","step":"revoke","attempt":1}
{"v":1,"seq":3,"ts":"2026-11-24T21:16:54.279Z","event":"attempt_failed","step":"revoke","attempt":1,"class":"transient","error":"503","retry_in_ms":200}
{"v":1,"seq":4,"ts":"2026-11-24T21:16:54.479Z","event":"step_started","step":"revoke","attempt":2}
{"v":1,"seq":5,"ts":"2026-11-24T21:16:54.579Z","event":"step_succeeded","step":"revoke","attempt":2,"outputs":{}}
{"v":1,"seq":6,"ts":"2026-11-24T21:16:54.580Z","event":"task_opened","step":"review","prompt":"How?"}
{"v":1,"seq":7,"ts":"2026-11-24T21:16:54.581Z","event":"incident_finished","outcome":"succeeded","revoked_at":"2026-11-24T21:16:54.579Z","time_to_revoke_ms":450,"slo_met":true}
"#;

    fn drawn(records: &[Record]) -> String {
        let mut table = Table::default();
        for r in records {
            table.apply(r);
        }
        let mut out = Vec::new();
        table.draw(&mut out);
        String::from_utf8(out).unwrap().replace("\x1b[2K", "")
    }

    #[test]
    fn the_live_table_shows_each_step_as_the_journal_tells_it() {
        let records = crate::journal::parse("journal.jsonl", JOURNAL).unwrap();
        let mid = drawn(&records[..3]);
        assert!(
            mid.starts_with("INC-1  r  (rehearsal)  running  SLO: "),
            "{mid}"
        );
        assert!(mid.contains("  retrying   revoke "), "{mid}");
        assert!(mid.contains("  waiting    review "), "{mid}");
        let end = drawn(&records);
        assert!(
            end.contains("succeeded  revoked in 450ms (SLO 5m 00s)"),
            "{end}"
        );
        assert!(
            end.contains("  ok         revoke                   revoke    attempt 2     449ms"),
            "{end}"
        );
        assert!(end.contains("  open       review "), "{end}");
    }
}
