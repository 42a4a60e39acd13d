//! The incident's one status message in Slack, kept up to date from the
//! journal: each step's state, the SLO countdown, the time to revoke, the
//! result, and the document in its thread at the end.
//!
//! Updates are coalesced: records that arrive together become one
//! `chat.update`, at most one every `MIN_INTERVAL`, so a runbook that
//! settles ten steps in a second costs one call, well inside `chat.update`'s
//! Tier 3 limit (about 50 a minute). A 429 waits as long as Slack says.
//! The message is edited with the bot token, not through `response_url`,
//! which takes only five posts in thirty minutes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use crate::document::Report;
use crate::journal::{Event, Outcome, Record, StepInfo};
use crate::providers::ErrorClass;
use crate::providers::slack::Slack;
use crate::runbook::human;

/// The least time between two updates of the message.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// While revocation is pending, the countdown is refreshed this often even
/// when nothing happens.
const COUNTDOWN: Duration = Duration::from_secs(15);
/// How many times one update is tried when Slack keeps refusing it.
const ATTEMPTS: u32 = 5;

#[derive(Debug, Clone)]
struct Row {
    info: StepInfo,
    state: String,
    attempt: u32,
}

/// What the message shows, rebuilt from records.
#[derive(Debug, Default)]
pub struct Status {
    id: String,
    title: String,
    mode: String,
    by: String,
    detected_at: Option<DateTime<Utc>>,
    slo: Duration,
    rows: Vec<Row>,
    revoke_steps: Vec<String>,
    finished: Option<(Outcome, Option<u64>, bool)>,
    records: Vec<Record>,
}

impl Status {
    pub fn apply(&mut self, r: &Record) {
        self.records.push(r.clone());
        let set = |rows: &mut Vec<Row>, step: &str, state: String, attempt: Option<u32>| {
            if let Some(row) = rows.iter_mut().find(|row| row.info.id == step) {
                row.state = state;
                if let Some(a) = attempt {
                    row.attempt = a;
                }
            }
        };
        match &r.event {
            Event::IncidentStarted {
                incident,
                title,
                mode,
                by,
                detected_at,
                slo_ms,
                steps,
                ..
            } => {
                self.id = incident.clone();
                self.title = title.clone();
                self.mode = mode.name().to_string();
                self.by = match by.user.strip_prefix("slack:") {
                    Some(_) => who(&by.user),
                    None => who(&by.to_string()),
                };
                self.detected_at = Some(*detected_at);
                self.slo = Duration::from_millis(*slo_ms);
                self.revoke_steps = steps
                    .iter()
                    .filter(|s| s.phase == crate::runbook::Phase::Revoke && !s.deferred)
                    .map(|s| s.id.clone())
                    .collect();
                self.rows = steps
                    .iter()
                    .map(|s| Row {
                        info: s.clone(),
                        state: "waiting".into(),
                        attempt: 0,
                    })
                    .collect();
            }
            Event::StepStarted { step, attempt, .. } => {
                set(&mut self.rows, step, "running".into(), Some(*attempt))
            }
            Event::AttemptFailed {
                step, retry_in_ms, ..
            } => set(
                &mut self.rows,
                step,
                format!("retrying in {}", human(Duration::from_millis(*retry_in_ms))),
                None,
            ),
            Event::StepSucceeded { step, .. } => {
                set(&mut self.rows, step, "succeeded".into(), None)
            }
            Event::StepFailed { step, class, .. } => {
                set(&mut self.rows, step, format!("failed ({class})"), None)
            }
            Event::StepSkipped { step, .. } => set(&mut self.rows, step, "skipped".into(), None),
            Event::StepScheduled { step, due_at } => set(
                &mut self.rows,
                step,
                format!("follow-up, due {}", due_at.format("%Y-%m-%d %H:%M UTC")),
                None,
            ),
            Event::ApprovalRequested { step, .. } => {
                set(&mut self.rows, step, "waiting for approval".into(), None)
            }
            Event::ApprovalGranted { step, by } => set(
                &mut self.rows,
                step,
                format!("approved by {}", who(by)),
                None,
            ),
            Event::ApprovalDenied { step, .. } => {
                set(&mut self.rows, step, "not approved".into(), None)
            }
            Event::TaskOpened { step, .. } => {
                set(&mut self.rows, step, "open for a human".into(), None)
            }
            Event::TaskAnswered { step, by, .. } => set(
                &mut self.rows,
                step,
                format!("answered by {}", who(by)),
                None,
            ),
            Event::IncidentFinished {
                outcome,
                time_to_revoke_ms,
                slo_met,
                ..
            } => self.finished = Some((*outcome, *time_to_revoke_ms, *slo_met)),
            Event::FollowUpsStarted { .. }
            | Event::FollowUpsFinished { .. }
            | Event::IncidentInterrupted { .. }
            | Event::IncidentResumed { .. } => {}
        }
    }

    /// Whether the countdown is still running.
    fn revoke_pending(&self) -> bool {
        self.finished.is_none()
            && self.rows.iter().any(|r| {
                self.revoke_steps.contains(&r.info.id)
                    && !matches!(r.state.as_str(), "succeeded" | "skipped")
                    && !r.state.starts_with("failed")
            })
    }

    /// The message, as of `now`.
    pub fn render(&self, now: DateTime<Utc>) -> String {
        let mut out = format!(
            "*{}* — {}{} (started by {})\n",
            self.id,
            crate::mrkdwn::escape(&self.title),
            if self.mode == "rehearsal" {
                " — REHEARSAL"
            } else {
                ""
            },
            self.by
        );
        match (&self.finished, self.detected_at) {
            (Some((outcome, ttr, slo_met)), _) => {
                let revoked = ttr
                    .map(|ms| {
                        format!(
                            "revoked {} after detection (SLO {}: {})",
                            human(Duration::from_millis(ms)),
                            human(self.slo),
                            if *slo_met { "met" } else { "missed" }
                        )
                    })
                    .unwrap_or_else(|| "not revoked".into());
                out.push_str(&format!(
                    "*Result: {}* — {revoked}. The document is in the thread.\n",
                    outcome.name().replace('_', " ")
                ));
            }
            (None, Some(detected)) if self.revoke_pending() => {
                let deadline = detected + chrono::Duration::from_std(self.slo).unwrap_or_default();
                let left = (deadline - now).to_std().unwrap_or_default();
                out.push_str(&format!(
                    "SLO: revoke within {} — {} left (by {})\n",
                    human(self.slo),
                    human(Duration::from_secs(left.as_secs())),
                    deadline.format("%H:%M:%S UTC")
                ));
            }
            (None, _) => {
                if let Some(Event::StepSucceeded { .. }) = self.last_revoke().map(|r| &r.event)
                    && let (Some(d), Some(r)) = (self.detected_at, self.last_revoke())
                {
                    out.push_str(&format!(
                        "Revoked {} after detection (SLO {}).\n",
                        human((r.ts - d).to_std().unwrap_or_default()),
                        human(self.slo)
                    ));
                }
            }
        }
        for row in &self.rows {
            let mark = match row.state.as_str() {
                "succeeded" => "✅",
                "running" => "⏳",
                "skipped" => "➖",
                "waiting" => "▫️",
                s if s.starts_with("failed") => "❌",
                s if s.starts_with("retrying") => "🔁",
                s if s.contains("approv") => "✋",
                _ => "🔵",
            };
            let attempt = if row.attempt > 1 {
                format!(", attempt {}", row.attempt)
            } else {
                String::new()
            };
            out.push_str(&format!(
                "{mark} `{}` {} [{}] — {}{attempt}\n",
                row.info.id,
                crate::mrkdwn::escape(&row.info.title),
                row.info.phase,
                row.state
            ));
        }
        out
    }

    fn last_revoke(&self) -> Option<&Record> {
        self.records.iter().rev().find(|r| {
            matches!(&r.event, Event::StepSucceeded { step, .. } if self.revoke_steps.contains(step))
        })
    }

    /// The incident document, replayed from what the message saw.
    pub fn document(&self, templates: &crate::document::Templates) -> Option<String> {
        Report::from_records(&self.records)
            .ok()
            .map(|r| templates.markdown(&r))
    }
}

/// Keeps the status message of one incident in `channel` until the journal
/// closes, then posts the document in its thread.
pub async fn run(
    slack: Slack,
    channel: String,
    mut rx: UnboundedReceiver<Record>,
    templates: std::sync::Arc<crate::document::Templates>,
) {
    let mut status = Status::default();
    let mut message: Option<(String, String)> = None;
    let mut dirty = false;
    let mut next_update = Instant::now();
    let mut countdown = tokio::time::interval(COUNTDOWN);
    countdown.tick().await;
    loop {
        tokio::select! {
            // Records first: many arriving together make one update.
            biased;
            r = rx.recv() => match r {
                Some(r) => {
                    status.apply(&r);
                    dirty = true;
                }
                None => break,
            },
            // The coalescing window is over and something changed.
            _ = tokio::time::sleep_until(next_update), if dirty => {
                dirty = false;
                next_update = push(&slack, &channel, &status, &mut message).await + MIN_INTERVAL;
            }
            // Nothing happened for a while, but the SLO clock moves.
            _ = countdown.tick(), if status.revoke_pending() => dirty = true,
        }
    }
    if status.records.is_empty() {
        return;
    }
    tokio::time::sleep_until(next_update).await;
    push(&slack, &channel, &status, &mut message).await;
    if let (Some((channel_id, ts)), Some(doc)) = (&message, status.document(&templates)) {
        for _ in 0..ATTEMPTS {
            match slack.post_document(channel_id, ts, &doc).await {
                Err(e) if e.class.retryable() => tokio::time::sleep(wait(e.class)).await,
                _ => break,
            }
        }
    }
}

/// Posts the message the first time, edits it after; returns when the call
/// finished (after any waits Slack asked for).
async fn push(
    slack: &Slack,
    channel: &str,
    status: &Status,
    message: &mut Option<(String, String)>,
) -> Instant {
    let text = status.render(Utc::now());
    for _ in 0..ATTEMPTS {
        let result = match message {
            None => slack.post(channel, &text, None, None).await.map(|posted| {
                *message = Some(posted);
            }),
            Some((channel_id, ts)) => slack.update(channel_id, ts, &text, None).await,
        };
        match result {
            Err(e) if e.class.retryable() => tokio::time::sleep(wait(e.class)).await,
            _ => break,
        }
    }
    Instant::now()
}

fn wait(class: ErrorClass) -> Duration {
    match class {
        ErrorClass::RateLimited {
            retry_after: Some(d),
        } => d,
        _ => MIN_INTERVAL,
    }
}

/// Who did something, for a message: a Slack user (`slack:U123`) as a
/// mention, anyone else escaped.
fn who(by: &str) -> String {
    match by.strip_prefix("slack:") {
        Some(id) if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()) => {
            format!("<@{id}>")
        }
        _ => crate::mrkdwn::escape(by),
    }
}
