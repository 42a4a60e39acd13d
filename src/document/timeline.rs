//! The timeline picture's geometry: one bar per step attempt on a time axis,
//! the waits between attempts, and the detection, revocation and SLO deadline
//! as vertical lines. Computed here, in the SVG's user units; the template
//! draws it, so a team restyles the picture without touching Rust.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::journal::{Event, Record, StepInfo, format_ts};
use crate::runbook::Phase;
use crate::time::{human_ms, ms_between};

/// The SVG's width in user units; it scales to the page.
pub const WIDTH: f64 = 960.0;
/// Where the time axis starts: the step names sit to its left.
pub const PLOT_X: f64 = 170.0;
pub const PLOT_WIDTH: f64 = WIDTH - PLOT_X - 24.0;
/// Room above the rows for the three lines' labels.
const TOP: f64 = 52.0;
const ROW: f64 = 24.0;
/// The height of a marker's label line above the rows.
const LABEL_LINE: f64 = 13.0;
const BAR: f64 = 14.0;
/// Room below the rows for the axis and its ticks.
const BOTTOM: f64 = 34.0;
/// A bar too short to see still gets this width.
const MIN_BAR: f64 = 2.0;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub plot_x: f64,
    pub plot_width: f64,
    pub plot_top: f64,
    pub plot_bottom: f64,
    /// `plot_x + plot_width`: where clipped bars end and say so.
    pub plot_end: f64,
    /// Baseline of the tick labels, and x of a lane's note.
    pub tick_y: f64,
    pub note_x: f64,
    /// The axis covers `start_ms..end_ms` after detection (`start_ms` is 0
    /// unless quench started before the stated detection time).
    pub start_ms: i64,
    pub end_ms: i64,
    pub rows: Vec<Row>,
    pub bars: Vec<Bar>,
    pub waits: Vec<Wait>,
    pub markers: Vec<Marker>,
    pub ticks: Vec<Tick>,
}

/// One step's lane.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub step: String,
    pub title: String,
    pub phase: Phase,
    pub y: f64,
    /// The label's baseline.
    pub text_y: f64,
    /// Said at the end of the lane of a step that has no bar: `scheduled`.
    pub note: Option<String>,
}

/// One attempt of a step.
#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    pub step: String,
    pub attempt: u32,
    pub phase: Phase,
    /// `succeeded`, `failed` (the last attempt), `retried` (failed, then
    /// retried), `answered`, `open`, `running`.
    pub outcome: String,
    /// A human's time (a manual task) rather than a provider's.
    pub human: bool,
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    /// Baseline for text beside the bar.
    pub text_y: f64,
    /// The bar runs past the end of the axis; `until` says how far.
    pub clipped: bool,
    pub from: String,
    pub until: String,
    pub label: String,
}

/// Time a step spent waiting: backoff before a retry, or for an approval.
#[derive(Debug, Clone, Serialize)]
pub struct Wait {
    pub step: String,
    /// `retry` or `approval`.
    pub kind: String,
    pub x1: f64,
    pub x2: f64,
    pub y: f64,
    pub label: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Marker {
    /// `detection`, `revocation`, `proven` (dead), `deadline`.
    pub kind: String,
    pub x: f64,
    /// Where the line starts (under its label) and where the label sits.
    pub line_top: f64,
    pub text_x: f64,
    /// The label's baseline and anchor (`start` or `end`, to stay inside).
    pub label_y: f64,
    pub anchor: String,
    pub label: String,
    /// Beyond the axis: drawn at its end, and the label says so.
    pub clipped: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    pub x: f64,
    pub label: String,
}

/// One decimal: enough for a screen, and stable in snapshots.
fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Tick spacings that read well, in milliseconds.
const TICK_STEPS: &[i64] = &[
    100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000,
    900_000, 1_800_000, 3_600_000, 7_200_000, 21_600_000, 43_200_000, 86_400_000,
];

fn tick_label(ms: i64) -> String {
    if ms == 0 {
        return "T+0".into();
    }
    if ms < 0 {
        return format!("T-{}", &tick_label(-ms)[2..]);
    }
    let (h, m, s, milli) = (
        ms / 3_600_000,
        (ms / 60_000) % 60,
        (ms / 1000) % 60,
        ms % 1000,
    );
    let mut out = String::from("T+");
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || milli > 0 {
        out.push_str(&format!("{}s", s as f64 + milli as f64 / 1000.0));
    }
    out
}

/// A wait as times: step, kind, from, until, who ended it.
type Waited = (String, &'static str, DateTime<Utc>, DateTime<Utc>, String);

struct Span {
    step: String,
    attempt: u32,
    from: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    outcome: &'static str,
}

/// The runbook's steps by id.
type Infos<'a> = BTreeMap<&'a str, &'a StepInfo>;

/// Whether a step is a human's task rather than a provider's call.
fn is_human(info: &Infos, step: &str) -> bool {
    info.get(step).is_some_and(|i| i.action == "manual.task")
}

/// A step's phase, or `Document` for a step the runbook does not declare.
fn phase_of(info: &Infos, step: &str) -> Phase {
    info.get(step).map(|i| i.phase).unwrap_or(Phase::Document)
}

/// When each step's first attempt started.
fn first_starts(spans: &[Span]) -> BTreeMap<&str, DateTime<Utc>> {
    spans
        .iter()
        .rev()
        .map(|s| (s.step.as_str(), s.from))
        .collect()
}

/// What the steps did, as times: attempts, waits, lanes in the order steps
/// first appear, and the note a lane without a bar shows.
#[derive(Default)]
struct Activity {
    spans: Vec<Span>,
    waits: Vec<Waited>,
    approval_from: BTreeMap<String, DateTime<Utc>>,
    /// step → (when the attempt failed, the backoff it announced in ms)
    retry_from: BTreeMap<String, (DateTime<Utc>, u64)>,
    order: Vec<String>,
    notes: BTreeMap<String, String>,
}

impl Activity {
    fn collect(records: &[Record], steps: &[StepInfo], last_ts: DateTime<Utc>) -> Activity {
        let mut a = Activity::default();
        for r in records {
            if let Some(step) = r.event.step() {
                a.record(step, r);
            }
        }
        a.close_retries(last_ts);
        for s in steps {
            if !a.order.contains(&s.id) {
                a.order.push(s.id.clone());
                a.notes.insert(s.id.clone(), "not reached".into());
            }
        }
        // Lanes by when each step first did something; steps that never
        // ran (follow-ups, skips) after those that did.
        let first = first_starts(&a.spans);
        a.order.sort_by_key(|s| {
            (
                !first.contains_key(s.as_str()),
                first.get(s.as_str()).copied(),
            )
        });
        a
    }

    /// The attempt of `step` still running (`attempt`'s, if given).
    fn open(&mut self, step: &str, attempt: Option<u32>) -> Option<&mut Span> {
        self.spans
            .iter_mut()
            .rev()
            .find(|s| s.step == step && s.until.is_none() && attempt.is_none_or(|a| a == s.attempt))
    }

    /// Ends the running attempt of `step` at `ts` with `outcome`.
    fn close(
        &mut self,
        step: &str,
        attempt: Option<u32>,
        ts: DateTime<Utc>,
        outcome: &'static str,
    ) -> bool {
        self.open(step, attempt)
            .map(|s| {
                s.until = Some(ts);
                s.outcome = outcome;
            })
            .is_some()
    }

    /// One record's effect on the step it names.
    fn record(&mut self, step: &str, r: &Record) {
        if !self.order.iter().any(|s| s == step) {
            self.order.push(step.to_string());
        }
        match &r.event {
            Event::StepStarted { attempt, .. } => {
                if let Some((from, _)) = self.retry_from.remove(step) {
                    self.waits
                        .push((step.into(), "retry", from, r.ts, String::new()));
                }
                self.spans.push(Span {
                    step: step.into(),
                    attempt: *attempt,
                    from: r.ts,
                    until: None,
                    outcome: "running",
                });
            }
            Event::AttemptFailed {
                attempt,
                retry_in_ms,
                ..
            } => {
                self.close(step, Some(*attempt), r.ts, "retried");
                self.retry_from.insert(step.into(), (r.ts, *retry_in_ms));
            }
            Event::StepSucceeded { attempt, .. } => {
                self.close(step, Some(*attempt), r.ts, "succeeded");
            }
            Event::StepFailed { attempt, .. } => {
                let attempt = (*attempt > 0).then_some(*attempt);
                if !self.close(step, attempt, r.ts, "failed") {
                    self.notes
                        .insert(step.into(), "failed before an attempt".into());
                }
            }
            Event::TaskAnswered { .. } => {
                self.close(step, None, r.ts, "answered");
            }
            Event::TaskOpened { .. } => {
                self.close(step, None, r.ts, "open");
                self.notes.insert(step.into(), "left open".into());
            }
            Event::StepSkipped { reason, .. } => {
                self.notes.insert(step.into(), format!("skipped: {reason}"));
            }
            Event::StepScheduled { due_at, .. } => {
                self.notes
                    .insert(step.into(), format!("follow-up, due {}", format_ts(due_at)));
            }
            Event::ApprovalRequested { .. } => {
                self.approval_from.insert(step.into(), r.ts);
            }
            Event::ApprovalGranted { by, .. } | Event::ApprovalDenied { by, .. } => {
                if let Some(from) = self.approval_from.remove(step) {
                    let label = format!("approval: {by}");
                    self.waits
                        .push((step.into(), "approval", from, r.ts, label));
                }
            }
            _ => {}
        }
    }

    /// A retry whose next attempt never started (the journal ends, or the
    /// incident was interrupted) still shows the wait it announced.
    fn close_retries(&mut self, last_ts: DateTime<Utc>) {
        for (step, (from, ms)) in std::mem::take(&mut self.retry_from) {
            let until = from + chrono::Duration::milliseconds(ms as i64);
            let until = until.min(last_ts.max(from));
            self.waits.push((step, "retry", from, until, String::new()));
        }
    }
}

/// The time axis: the milliseconds after detection it covers, and where a
/// moment lands on it.
struct Axis {
    detected_at: DateTime<Utc>,
    last_ts: DateTime<Utc>,
    start_ms: i64,
    end_ms: i64,
}

impl Axis {
    /// From detection (or an earlier start) to the end of what the
    /// responders' tools did. A human's answer can come hours later:
    /// stretching the axis to it would squash every provider call into a
    /// sliver, so such bars are clipped at the end and say when they ended.
    fn fit(
        activity: &Activity,
        info: &Infos,
        detected_at: DateTime<Utc>,
        last_ts: DateTime<Utc>,
        marked: &[DateTime<Utc>],
        deadline: DateTime<Utc>,
    ) -> Axis {
        let ms = |t: DateTime<Utc>| (t - detected_at).num_milliseconds();
        let spans = &activity.spans;
        let start_ms = spans.iter().map(|s| ms(s.from)).min().unwrap_or(0).min(0);
        let machine_end = spans
            .iter()
            .filter(|s| !is_human(info, &s.step))
            .map(|s| ms(s.until.unwrap_or(last_ts)))
            .chain(activity.waits.iter().map(|w| ms(w.3)))
            .chain(marked.iter().copied().map(ms))
            .max();
        let any_end = spans.iter().map(|s| ms(s.until.unwrap_or(last_ts))).max();
        let mut end_ms = machine_end.or(any_end).unwrap_or(0).max(start_ms + 1000);
        let deadline_ms = ms(deadline);
        // A deadline close enough to matter is on the axis; one far beyond
        // it is drawn at the end, labelled with its time.
        if deadline_ms <= end_ms + (end_ms - start_ms) / 2 {
            end_ms = end_ms.max(deadline_ms);
        }
        end_ms += (end_ms - start_ms) / 25;
        Axis {
            detected_at,
            last_ts,
            start_ms,
            end_ms,
        }
    }

    /// Milliseconds after detection.
    fn ms(&self, t: DateTime<Utc>) -> i64 {
        (t - self.detected_at).num_milliseconds()
    }

    /// The x of `t_ms`, and whether it lies beyond the axis's end.
    fn x_at(&self, t_ms: i64) -> (f64, bool) {
        let span = (self.end_ms - self.start_ms) as f64;
        let clipped = t_ms > self.end_ms;
        let t = t_ms.clamp(self.start_ms, self.end_ms);
        (
            round(PLOT_X + (t - self.start_ms) as f64 / span * PLOT_WIDTH),
            clipped,
        )
    }
}

impl Chart {
    /// The picture of `records`; `revoked_at` and `proven_at` (dead) are
    /// marked when there are such times.
    pub fn build(
        records: &[Record],
        steps: &[StepInfo],
        detected_at: DateTime<Utc>,
        revoked_at: Option<DateTime<Utc>>,
        proven_at: Option<DateTime<Utc>>,
        deadline: DateTime<Utc>,
    ) -> Chart {
        let info: Infos = steps.iter().map(|s| (s.id.as_str(), s)).collect();
        let last_ts = records.last().map(|r| r.ts).unwrap_or(detected_at);
        let activity = Activity::collect(records, steps, last_ts);
        let marked: Vec<DateTime<Utc>> = revoked_at.into_iter().chain(proven_at).collect();
        let axis = Axis::fit(&activity, &info, detected_at, last_ts, &marked, deadline);
        // The proof's label takes a line of its own above the rows.
        let top = TOP + proven_at.map_or(0.0, |_| LABEL_LINE);
        let row_y: BTreeMap<&str, f64> = activity
            .order
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), top + i as f64 * ROW))
            .collect();
        let plot_bottom = top + activity.order.len() as f64 * ROW;
        Chart {
            width: WIDTH,
            height: plot_bottom + BOTTOM,
            plot_x: PLOT_X,
            plot_width: PLOT_WIDTH,
            plot_top: top - 6.0,
            plot_bottom,
            plot_end: PLOT_X + PLOT_WIDTH,
            tick_y: plot_bottom + 18.0,
            note_x: PLOT_X + 6.0,
            start_ms: axis.start_ms,
            end_ms: axis.end_ms,
            rows: rows(&activity, &info, &row_y),
            bars: bars(&activity.spans, &info, &row_y, &axis),
            waits: waits(&activity.waits, &row_y, &axis),
            markers: markers(&axis, revoked_at, proven_at, deadline),
            ticks: ticks(&axis),
        }
    }
}

/// One lane per step, in `order`; a lane without a bar says why.
fn rows(activity: &Activity, info: &Infos, row_y: &BTreeMap<&str, f64>) -> Vec<Row> {
    let first = first_starts(&activity.spans);
    activity
        .order
        .iter()
        .map(|s| {
            let y = row_y[s.as_str()];
            Row {
                step: s.clone(),
                title: info
                    .get(s.as_str())
                    .map(|i| i.title.clone())
                    .unwrap_or_default(),
                phase: phase_of(info, s),
                y,
                text_y: round(y + ROW / 2.0 + 4.0),
                note: if first.contains_key(s.as_str()) {
                    None
                } else {
                    activity.notes.get(s).cloned()
                },
            }
        })
        .collect()
}

/// One bar per attempt, in its step's lane.
fn bars(spans: &[Span], info: &Infos, row_y: &BTreeMap<&str, f64>, axis: &Axis) -> Vec<Bar> {
    spans
        .iter()
        .map(|sp| {
            let y = row_y[sp.step.as_str()];
            let until = sp.until.unwrap_or(axis.last_ts);
            let (x1, _) = axis.x_at(axis.ms(sp.from));
            let (x2, clipped) = axis.x_at(axis.ms(until));
            let human = is_human(info, &sp.step);
            let took = human_ms(ms_between(sp.from, until));
            Bar {
                step: sp.step.clone(),
                attempt: sp.attempt,
                phase: phase_of(info, &sp.step),
                outcome: sp.outcome.into(),
                human,
                x: x1,
                y: round(y + (ROW - BAR) / 2.0),
                width: round((x2 - x1).max(MIN_BAR)),
                height: BAR,
                text_y: round(y + ROW / 2.0 + 4.0),
                clipped,
                from: crate::document::offset(axis.detected_at, sp.from),
                until: crate::document::offset(axis.detected_at, until),
                label: if human {
                    format!("{}: {} after {took}", sp.step, sp.outcome)
                } else {
                    format!(
                        "{} attempt {}: {} after {took}",
                        sp.step, sp.attempt, sp.outcome
                    )
                },
            }
        })
        .collect()
}

/// One line per wait, across the middle of its step's lane.
fn waits(waited: &[Waited], row_y: &BTreeMap<&str, f64>, axis: &Axis) -> Vec<Wait> {
    waited
        .iter()
        .map(|(step, kind, from, until, label)| {
            let y = row_y[step.as_str()];
            let (x1, _) = axis.x_at(axis.ms(*from));
            let (x2, _) = axis.x_at(axis.ms(*until));
            let took = human_ms(ms_between(*from, *until));
            Wait {
                step: step.clone(),
                kind: (*kind).into(),
                x1,
                x2,
                y: round(y + ROW / 2.0),
                label: if label.is_empty() {
                    format!("waited {took} before retrying")
                } else {
                    format!("{label} after {took}")
                },
            }
        })
        .collect()
}

/// The detection, revocation (if any), proof (if any) and SLO deadline
/// lines, their labels each on a line of its own above the rows.
fn markers(
    axis: &Axis,
    revoked_at: Option<DateTime<Utc>>,
    proven_at: Option<DateTime<Utc>>,
    deadline: DateTime<Utc>,
) -> Vec<Marker> {
    let marker = |kind: &str, t_ms: i64, line: usize, text: String| {
        let (x, clipped) = axis.x_at(t_ms);
        let right = x > PLOT_X + PLOT_WIDTH * 0.6;
        let label_y = 12.0 + line as f64 * LABEL_LINE;
        Marker {
            kind: kind.into(),
            x,
            line_top: label_y + 3.0,
            text_x: if right { x - 3.0 } else { x + 3.0 },
            label_y,
            anchor: if right { "end" } else { "start" }.into(),
            label: if clipped { format!("{text} →") } else { text },
            clipped,
        }
    };
    let mut markers = vec![marker("detection", 0, 0, "detected T+0".into())];
    let timed = [
        (1, "revocation", "revoked", revoked_at),
        (2, "proven", "proven dead", proven_at),
    ];
    for (line, kind, what, t) in timed {
        if let Some(t) = t {
            let took = human_ms(ms_between(axis.detected_at, t));
            markers.push(marker(kind, axis.ms(t), line, format!("{what} {took}")));
        }
    }
    let line = 2 + usize::from(proven_at.is_some());
    let deadline_ms = axis.ms(deadline);
    markers.push(marker(
        "deadline",
        deadline_ms,
        line,
        format!("SLO deadline {}", tick_label(deadline_ms)),
    ));
    markers
}

/// Ticks at the first spacing that gives at most eight or so along the axis.
fn ticks(axis: &Axis) -> Vec<Tick> {
    let (start_ms, end_ms) = (axis.start_ms, axis.end_ms);
    let step = TICK_STEPS
        .iter()
        .copied()
        .find(|s| (end_ms - start_ms) / s <= 8)
        .unwrap_or(86_400_000);
    let mut t = (start_ms.div_euclid(step) + 1) * step;
    if start_ms % step == 0 {
        t = start_ms;
    }
    let mut ticks = Vec::new();
    while t <= end_ms {
        ticks.push(Tick {
            x: axis.x_at(t).0,
            label: tick_label(t),
        });
        t += step;
    }
    ticks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(0), "T+0");
        assert_eq!(tick_label(500), "T+0.5s");
        assert_eq!(tick_label(90_000), "T+1m30s");
        assert_eq!(tick_label(300_000), "T+5m");
        assert_eq!(tick_label(3_600_000), "T+1h");
    }
}
