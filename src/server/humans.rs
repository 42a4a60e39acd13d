//! Approvals in Slack: the question is posted with two buttons in the
//! incident's channel and the step waits for a click the server has
//! authorized. Manual tasks are not waited for: they stay open, are listed in
//! the status message and the document, and can be completed later
//! (`/quench done`). A hook-started incident takes an approval from a
//! terminal too (`quench approve`), which reaches it through its inbox. A
//! drill's manual tasks are waited for: the question is posted, and the
//! answer `/quench done` leaves in its inbox is taken from there.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use crate::app::approvals;
use crate::engine::humans::{Answer, Asked, Remote};
use crate::journal::{Approval, Event, IncidentView};
use crate::providers::slack::{APPROVALS, Decision, Slack, approval_blocks};
use crate::runbook::Runbook;
use crate::secret::Redactor;
use crate::store::Store;

use super::{Clicked, Server};

#[derive(Debug)]
pub struct SlackHumans {
    pub slack: Slack,
    pub channel: String,
    pub incident: String,
    pub runbook: Arc<Runbook>,
    pub shutdown: watch::Receiver<Option<String>>,
    /// The store, when an approval may also come from a terminal or
    /// another replica through the incident's inbox (`quench approve`).
    pub inbox: Option<Store>,
    /// A drill: questions are marked DRILL, and tasks are waited for.
    pub drill: bool,
}

/// How often a waiting approval looks in the incident's inbox.
const INBOX_POLL: Duration = Duration::from_millis(200);

impl SlackHumans {
    /// The people of `channel` who answer incident `id`'s questions about
    /// `runbook`, in the server's Slack: not a drill's, and none through
    /// the inbox.
    pub(super) fn new(server: &Server, channel: &str, id: &str, runbook: &Runbook) -> Self {
        SlackHumans {
            slack: server.settings.slack.clone(),
            channel: channel.to_string(),
            incident: id.to_string(),
            runbook: Arc::new(runbook.clone()),
            shutdown: server.shutdown.clone(),
            inbox: None,
            drill: false,
        }
    }

    /// The question, and who may answer it.
    fn question(&self, step: &str, what: &str) -> (String, Vec<String>) {
        let approvers = self
            .runbook
            .step(step)
            .and_then(|s| s.approval.as_ref())
            .map(|a| a.approvers.clone())
            .unwrap_or_default();
        let who = if approvers.is_empty() {
            String::new()
        } else {
            let named: Vec<String> = approvers.iter().map(|a| format!("<@{a}>")).collect();
            format!(" Approvers: {}.", named.join(", "))
        };
        let terminal = if self.inbox.is_some() {
            format!(
                " (or `quench approve {} {step}` at a terminal)",
                self.incident
            )
        } else {
            String::new()
        };
        // What is asked may name things itself (an action in backticks).
        let what = if what.contains('`') {
            what.to_string()
        } else {
            format!("`{what}`")
        };
        let text = format!(
            "{}*{}*: approve step `{step}` ({what})?{who}{terminal}",
            self.mark(),
            self.incident
        );
        (text, approvers)
    }

    /// What starts a drill's messages.
    fn mark(&self) -> &'static str {
        if self.drill {
            crate::engine::sim::DRILL_MARK
        } else {
            ""
        }
    }

    /// Asks a drill's task in the channel and waits for its answer (from
    /// `/quench done`, through the inbox), or for quench to stop.
    async fn wait_for_task(&self, step: &str, prompt: &str) -> Answer {
        let Some(store) = &self.inbox else {
            return Answer::NoOne;
        };
        if self.slack.has_bot_token() {
            let text = format!(
                "{}*{}* `{step}`: {prompt}\nAnswer with `/quench done {} {step} …`",
                self.mark(),
                self.incident,
                self.incident
            );
            let _ = self.slack.post(&self.channel, &text, None, None).await;
        }
        let mut shutdown = self.shutdown.clone();
        let answer = async {
            loop {
                if let Some(a) = crate::app::tasks::answer_waiting(store, &self.incident, step) {
                    return a;
                }
                tokio::time::sleep(INBOX_POLL).await;
            }
        };
        tokio::select! {
            a = answer => Answer::Given { text: a.answer, by: a.by },
            // Shutting down: the task stays open.
            _ = shutdown.wait_for(|stop| stop.is_some()) => Answer::NoOne,
        }
    }

    /// Waits for an approval given at a terminal.
    async fn terminal_answer(&self, step: &str) -> Option<Decision> {
        let Some(store) = &self.inbox else {
            return std::future::pending().await;
        };
        loop {
            let (store, id, owned) = (store.clone(), self.incident.clone(), step.to_string());
            let given = tokio::task::spawn_blocking(move || approvals::given(&store, &id, &owned))
                .await
                .ok()
                .flatten();
            if let Some(g) = given {
                return Some(Decision {
                    approved: g.approved,
                    user: g.by,
                });
            }
            tokio::time::sleep(INBOX_POLL).await;
        }
    }

    /// Edits the question to say how it ended.
    async fn settle(&self, posted: &Option<(String, String)>, text: &str) {
        if let Some((channel_id, ts)) = posted {
            let _ = self
                .slack
                .update(channel_id, ts, text, Some(serde_json::json!([])))
                .await;
        }
    }
}

/// A button's value: the approval's id in the process that asked, and the
/// incident and step it is about when the question may be answered
/// through the incident's inbox.
pub(super) fn button_value(value: &str) -> (&str, Option<(&str, &str)>) {
    let mut parts = value.splitn(3, ' ');
    let id = parts.next().unwrap_or_default();
    match (parts.next(), parts.next()) {
        (Some(incident), Some(step)) => (id, Some((incident, step))),
        _ => (id, None),
    }
}

/// A click on a question another replica asked: authorized as a click on
/// this replica's own, then left in the incident's inbox, where the asker
/// looks. A note for the clicker when it was not taken.
pub(super) async fn forward(
    server: &Server,
    redactor: &Redactor,
    mut c: Clicked<'_>,
    (incident, step): (&str, &str),
) -> Option<String> {
    let records = server
        .blocking(incident, |store, id| store.journal(id))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let runbook = match records.first().map(|r| &r.event) {
        Some(Event::IncidentStarted { runbook, .. }) => runbook.clone(),
        _ => {
            let why = format!("no incident `{incident}`");
            server.audit_as(redactor, c.entry, "refused", Some(&why));
            return Some("That approval is no longer waiting.".to_string());
        }
    };
    // An approval gate names its approvers when it asks; a takeover's
    // question about a step in flight is for whoever the rules let approve.
    let approvers = match IncidentView::fold(&records)
        .step(step)
        .and_then(|s| s.approval.clone())
    {
        Some(Approval::Requested { approvers }) => approvers,
        _ => Vec::new(),
    };
    c.entry["runbook"] = json!(runbook);
    c.entry["incident"] = json!(incident);
    c.entry["forwarded"] = json!(true);
    let rule = match super::authorize_click(server, redactor, &mut c, Some(&runbook), &approvers) {
        Ok(rule) => rule,
        Err(note) => return Some(note),
    };
    let (step, approved, by) = (step.to_string(), c.approved, format!("slack:{}", c.user));
    let left = server
        .blocking(incident, move |store, id| {
            approvals::leave(store, id, &step, approved, &by)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    c.entry["rule"] = json!(rule);
    c.entry["approved"] = json!(c.approved);
    match left {
        Ok(()) => server.audit_as(redactor, c.entry, "allowed", None),
        Err(why) => server.audit_as(redactor, c.entry, "failed", Some(&why)),
    }
    None
}

impl Remote for SlackHumans {
    fn approve<'a>(&'a self, step: &'a str, what: &'a str) -> Asked<'a> {
        Box::pin(async move {
            if !self.slack.has_bot_token() && self.inbox.is_none() {
                return Answer::NoOne;
            }
            let (text, approvers) = self.question(step, what);
            let (id, rx) = APPROVALS.open(Some(self.runbook.name.clone()), approvers);
            // A click may reach another replica: the buttons name the
            // incident and step, which it answers through the inbox.
            let value = match self.inbox {
                Some(_) => format!("{id} {} {step}", self.incident),
                None => id.clone(),
            };
            let posted = match self.slack.has_bot_token() {
                true => self
                    .slack
                    .post(
                        &self.channel,
                        &text,
                        Some(approval_blocks(&text, &value)),
                        None,
                    )
                    .await
                    .ok(),
                false => None,
            };
            if posted.is_none() && self.inbox.is_none() {
                APPROVALS.forget(&id);
                return Answer::NoOne;
            }
            if posted.is_none() {
                // Not in Slack: whoever runs the server is told where to answer.
                super::log(&text);
            }
            let mut shutdown = self.shutdown.clone();
            let decision = tokio::select! {
                d = rx => d.ok().map(|d| Decision { user: format!("slack:{}", d.user), ..d }),
                d = self.terminal_answer(step) => d,
                // Shutting down: nobody is left to click.
                _ = shutdown.wait_for(|stop| stop.is_some()) => None,
            };
            APPROVALS.forget(&id);
            let Some(decision) = decision else {
                self.settle(&posted, &format!("{text}\nno longer asked: quench stopped"))
                    .await;
                return Answer::NoOne;
            };
            let verdict = if decision.approved {
                "approved"
            } else {
                "declined"
            };
            let shown = match decision.user.strip_prefix("slack:") {
                Some(u) => format!("<@{u}>"),
                None => format!("`{}`", decision.user),
            };
            let when = chrono::Utc::now().format("%H:%M:%S UTC");
            self.settle(&posted, &format!("{text}\n{verdict} by {shown} at {when}"))
                .await;
            if decision.approved {
                Answer::Given {
                    text: "approved".into(),
                    by: decision.user,
                }
            } else {
                Answer::Declined { by: decision.user }
            }
        })
    }

    fn task<'a>(&'a self, step: &'a str, prompt: &'a str) -> Asked<'a> {
        Box::pin(async move {
            match self.drill {
                true => self.wait_for_task(step, prompt).await,
                false => Answer::NoOne,
            }
        })
    }

    fn answers_open_tasks(&self) -> bool {
        self.drill
    }
}
