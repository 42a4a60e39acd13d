//! Approvals in Slack: the question is posted with two buttons in the
//! incident's channel and the step waits for a click the server has
//! authorized. Manual tasks are not waited for: they stay open, are listed in
//! the status message and the document, and can be completed later
//! (`/quench done`).

use std::sync::Arc;

use tokio::sync::watch;

use crate::engine::humans::{Answer, Asked, Remote};
use crate::providers::slack::{APPROVALS, Slack, approval_blocks};
use crate::runbook::Runbook;

#[derive(Debug)]
pub struct SlackHumans {
    pub slack: Slack,
    pub channel: String,
    pub incident: String,
    pub runbook: Arc<Runbook>,
    pub shutdown: watch::Receiver<Option<String>>,
}

impl Remote for SlackHumans {
    fn approve<'a>(&'a self, step: &'a str, what: &'a str) -> Asked<'a> {
        Box::pin(async move {
            if !self.slack.has_bot_token() {
                return Answer::NoOne;
            }
            let approvers = self
                .runbook
                .step(step)
                .and_then(|s| s.approval.as_ref())
                .map(|a| a.approvers.clone())
                .unwrap_or_default();
            let who = if approvers.is_empty() {
                String::new()
            } else {
                format!(
                    " Approvers: {}.",
                    approvers
                        .iter()
                        .map(|a| format!("<@{a}>"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let text = format!(
                "*{}*: approve step `{step}` (`{what}`)?{who}",
                self.incident
            );
            let (id, rx) = APPROVALS.open(Some(self.runbook.name.clone()), approvers);
            let posted = self
                .slack
                .post(
                    &self.channel,
                    &text,
                    Some(approval_blocks(&text, &id)),
                    None,
                )
                .await;
            let Ok((channel_id, ts)) = posted else {
                APPROVALS.forget(&id);
                return Answer::NoOne;
            };
            let mut shutdown = self.shutdown.clone();
            let decision = tokio::select! {
                d = rx => d.ok(),
                // Shutting down: nobody is left to click.
                _ = shutdown.wait_for(|stop| stop.is_some()) => None,
            };
            APPROVALS.forget(&id);
            let Some(decision) = decision else {
                let _ = self
                    .slack
                    .update(
                        &channel_id,
                        &ts,
                        &format!("{text}\nno longer asked: quench stopped"),
                        Some(serde_json::json!([])),
                    )
                    .await;
                return Answer::NoOne;
            };
            let verdict = if decision.approved {
                "approved"
            } else {
                "declined"
            };
            let _ = self
                .slack
                .update(
                    &channel_id,
                    &ts,
                    &format!(
                        "{text}\n{verdict} by <@{}> at {}",
                        decision.user,
                        chrono::Utc::now().format("%H:%M:%S UTC")
                    ),
                    Some(serde_json::json!([])),
                )
                .await;
            let by = format!("slack:{}", decision.user);
            if decision.approved {
                Answer::Given {
                    text: "approved".into(),
                    by,
                }
            } else {
                Answer::Declined { by }
            }
        })
    }

    fn task<'a>(&'a self, _step: &'a str, _prompt: &'a str) -> Asked<'a> {
        Box::pin(async { Answer::NoOne })
    }
}
