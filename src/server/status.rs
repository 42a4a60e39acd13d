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
use crate::journal::{Approval, IncidentView, Record, StepState, StepView};
use crate::providers::slack::Slack;
use crate::providers::{ActionError, ErrorClass};
use crate::runbook::Phase;
use crate::time::{human, human_ms};

/// The least time between two updates of the message.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// While revocation is pending, the countdown is refreshed this often even
/// when nothing happens.
const COUNTDOWN: Duration = Duration::from_secs(15);
/// How many times one update is tried when Slack keeps refusing it.
const ATTEMPTS: u32 = 5;

/// What the message shows: the incident as its records tell it.
#[derive(Debug, Default)]
pub struct Status {
    view: IncidentView,
    records: Vec<Record>,
}

impl Status {
    pub fn apply(&mut self, r: &Record) {
        self.records.push(r.clone());
        self.view.apply(r);
    }

    /// The steps whose success is the revocation.
    fn revoke_steps(&self) -> impl Iterator<Item = &StepView> {
        self.view
            .steps
            .iter()
            .filter(|s| s.info.phase == Phase::Revoke && !s.info.deferred)
    }

    /// Whether the countdown is still running.
    fn revoke_pending(&self) -> bool {
        self.view.finished.is_none()
            && self.revoke_steps().any(|s| {
                !matches!(
                    s.state,
                    StepState::Succeeded | StepState::Skipped { .. } | StepState::Failed { .. }
                )
            })
    }

    /// The message, as of `now`.
    pub fn render(&self, now: DateTime<Utc>) -> String {
        let mark = match self.view.mode {
            Some(crate::journal::Mode::Rehearsal) => " — REHEARSAL",
            Some(crate::journal::Mode::Drill) => " — DRILL",
            _ => "",
        };
        let by = match &self.view.by {
            Some(a) if a.user.starts_with("slack:") => who(&a.user),
            Some(a) => who(&a.to_string()),
            None => String::new(),
        };
        let mut out = format!(
            "*{}* — {}{} (started by {by})\n",
            self.view.id,
            crate::mrkdwn::escape(&self.view.title),
            mark,
        );
        out.push_str(&self.headline(now));
        for step in &self.view.steps {
            out.push_str(&row(step));
        }
        out
    }

    /// The line under the title: the result, the countdown, or the time the
    /// revocation took.
    fn headline(&self, now: DateTime<Utc>) -> String {
        let slo = Duration::from_millis(self.view.slo_ms);
        if let Some(f) = &self.view.finished {
            let revoked = f
                .time_to_revoke_ms
                .map(|ms| {
                    format!(
                        "revoked {} after detection (SLO {}: {})",
                        human_ms(ms),
                        human(slo),
                        if f.slo_met { "met" } else { "missed" }
                    )
                })
                .unwrap_or_else(|| "not revoked".into());
            let proof = self
                .view
                .detected_at
                .map(|t| format!("; {}", self.view.proof().summary(t)))
                .unwrap_or_default();
            return format!(
                "*Result: {}* — {revoked}{}. The document is in the thread.\n",
                f.outcome.name().replace('_', " "),
                crate::mrkdwn::escape(&proof)
            );
        }
        let Some(detected) = self.view.detected_at else {
            return String::new();
        };
        if self.revoke_pending() {
            let deadline = detected + chrono::Duration::from_std(slo).unwrap_or_default();
            let left = (deadline - now).to_std().unwrap_or_default();
            return format!(
                "SLO: revoke within {} — {} left (by {})\n",
                human(slo),
                human(Duration::from_secs(left.as_secs())),
                deadline.format("%H:%M:%S UTC")
            );
        }
        let revoked = self
            .revoke_steps()
            .filter(|s| s.state == StepState::Succeeded)
            .filter_map(|s| s.settled_at)
            .max();
        match revoked {
            Some(at) => format!(
                "Revoked {} after detection (SLO {}).\n",
                human((at - detected).to_std().unwrap_or_default()),
                human(slo)
            ),
            None => String::new(),
        }
    }
}

/// One step's line: a mark, what it is, and where it stands.
fn row(step: &StepView) -> String {
    let (mark, state) = match &step.state {
        StepState::Waiting => ("▫️", "waiting".to_string()),
        StepState::Running { .. } => ("⏳", "running".to_string()),
        StepState::Retrying { retry_in_ms, .. } => {
            ("🔁", format!("retrying in {}", human_ms(*retry_in_ms)))
        }
        StepState::Succeeded => ("✅", "succeeded".to_string()),
        StepState::Failed { class, .. } => ("❌", format!("failed ({class})")),
        StepState::Skipped { .. } => ("➖", "skipped".to_string()),
        StepState::Scheduled { due_at } => (
            "🔵",
            format!("follow-up, due {}", due_at.format("%Y-%m-%d %H:%M UTC")),
        ),
        StepState::Watching { until, .. } => (
            "👀",
            format!(
                "watching, looks again {}",
                until.format("%Y-%m-%d %H:%M UTC")
            ),
        ),
        StepState::AwaitingApproval => match &step.approval {
            Some(Approval::Granted { by }) => ("✋", format!("approved by {}", who(by))),
            Some(Approval::Denied { .. }) => ("✋", "not approved".to_string()),
            _ => ("✋", "waiting for approval".to_string()),
        },
        StepState::Open => match step.task.as_ref().and_then(|t| t.by.as_deref()) {
            Some(by) => ("🔵", format!("answered by {}", who(by))),
            None => ("🔵", "open for a human".to_string()),
        },
    };
    let attempt = if step.attempts > 1 {
        format!(", attempt {}", step.attempts)
    } else {
        String::new()
    };
    format!(
        "{mark} `{}` {} [{}] — {state}{attempt}\n",
        step.info.id,
        crate::mrkdwn::escape(&step.info.title),
        step.info.phase,
    )
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
    // The incident document, replayed from what the message saw.
    let doc = Report::from_records(&status.records).map(|r| templates.markdown(&r));
    if let (Some((channel_id, ts)), Ok(doc)) = (&message, doc) {
        let (slack, doc) = (&slack, &doc);
        retrying(move || slack.post_document(channel_id, ts, doc)).await;
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
    let text = &status.render(status.view.clock_at(Utc::now()));
    match &*message {
        None => *message = retrying(move || slack.post(channel, text, None, None)).await,
        Some((channel_id, ts)) => {
            retrying(move || slack.update(channel_id, ts, text, None)).await;
        }
    }
    Instant::now()
}

/// Makes a call to Slack, again while Slack refuses it for a while
/// (waiting as long as it says), at most `ATTEMPTS` times; its answer, if
/// one succeeded.
async fn retrying<T, F: Future<Output = Result<T, ActionError>>>(
    mut call: impl FnMut() -> F,
) -> Option<T> {
    for _ in 0..ATTEMPTS {
        match call().await {
            Ok(answer) => return Some(answer),
            Err(e) if e.class.retryable() => {
                let wait = match e.class {
                    ErrorClass::RateLimited {
                        retry_after: Some(d),
                    } => d,
                    _ => MIN_INTERVAL,
                };
                tokio::time::sleep(wait).await
            }
            Err(_) => break,
        }
    }
    None
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
