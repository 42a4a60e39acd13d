//! `/quench done INCIDENT STEP answer…`: a manual task left open is
//! answered from Slack. Only by someone a rule lets `answer` for the
//! runbook, or who may `run` it (or `drill` it, for a drill) and writes in
//! the incident's own channel.
//! The answer goes through the incident's lock ([`app::tasks`]): journaled
//! at once when nobody runs the incident, queued for its runner otherwise.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use super::authz::{self, Action};
use super::{Request, Server};
use crate::app::incidents;
use crate::app::tasks::{self, Answered, TaskAnswer};
use crate::secret::Redactor;
use crate::store::Store;

/// How often a queued answer looks for the incident's lock to be free.
const RETRY: Duration = Duration::from_millis(500);

pub(super) async fn done(
    server: &Server,
    req: &Request,
    redactor: &Redactor,
    incident: &str,
    step: &str,
    answer: &str,
) -> (bool, String) {
    let mut entry = json!({
        "path": "/slack/commands", "user": req.user, "channel": req.channel,
        "text": req.text, "action": "done", "incident": incident, "step": step,
    });
    let refuse = |entry: &mut Value, decision: &str, why: String| {
        server.audit_as(redactor, entry.clone(), decision, Some(&why));
        (true, why)
    };
    let Some(runbook) = runbook_of(server, incident) else {
        return refuse(&mut entry, "refused", format!("no incident `{incident}`"));
    };
    entry["runbook"] = json!(runbook);
    if !may_answer(server, req, incident, &runbook) {
        let why = format!(
            "<@{}> may not complete tasks of `{runbook}` here: answer in the incident's channel, or ask for a `[[chatops.allow]]` rule that lets you `answer` it",
            req.user
        );
        return refuse(&mut entry, "denied", why);
    }
    // One answer at a time from this server, so a second answer to the
    // same task is told it is no longer open.
    let _turn = server.appending.lock().await;
    if !tasks::is_open(&server.settings.store, incident, step).unwrap_or(false) {
        return refuse(
            &mut entry,
            "refused",
            format!("`{incident}` has no open task `{step}`"),
        );
    }
    let given = TaskAnswer {
        step: step.to_string(),
        answer: answer.to_string(),
        by: format!("slack:{}", req.user),
        ts: Utc::now(),
    };
    let (templates, r) = (server.settings.templates.clone(), redactor.clone());
    let result = server
        .blocking(incident, move |store, id| {
            tasks::answer(store, id, &given, &r, &templates)
        })
        .await
        .unwrap_or_else(|stopped| Err(crate::app::Error::Runtime(stopped.to_string())));
    let text = match result {
        Ok(Answered::Recorded) => format!("<@{}> completed `{step}` of *{incident}*", req.user),
        // A drill waits for the answer, and takes it at once (what its
        // runner left when it stopped is journaled once it lets go).
        Ok(Answered::Queued) if is_drill(server, incident) => {
            record_when_free(server, incident, redactor);
            format!(
                "<@{}> answered `{step}` of the DRILL *{incident}*",
                req.user
            )
        }
        Ok(Answered::Queued) => {
            record_when_free(server, incident, redactor);
            format!(
                "<@{}> answered `{step}` of *{incident}*: it is running, and the answer is journaled as soon as its runner lets go of it",
                req.user
            )
        }
        Err(e) => {
            return refuse(
                &mut entry,
                "failed",
                format!("failed to record the answer in `{incident}`: {e}"),
            );
        }
    };
    server.audit_as(redactor, entry, "allowed", None);
    (false, text)
}

/// The runbook incident `id` runs, when `id` names one in the store.
pub(super) fn runbook_of(server: &Server, id: &str) -> Option<String> {
    let safe = id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let records = safe
        .then(|| server.settings.store.journal(id).ok())
        .flatten()?;
    Some(incidents::started(id, &records).ok()?.runbook)
}

/// A rule lets the user `answer` for the runbook; or the user may `run` it
/// and writes in the channel the incident was started from.
fn may_answer(server: &Server, req: &Request, incident: &str, runbook: &str) -> bool {
    let allowed = |action| server.decide(req, action, Some(runbook)) != authz::Decision::Denied;
    // Who may start a drill may answer its tasks in its channel.
    let starter = allowed(Action::Run) || (allowed(Action::Drill) && is_drill(server, incident));
    allowed(Action::Answer)
        || (starter && started_in(&server.settings.store, incident) == Some(req.channel.clone()))
}

/// Whether incident `id` is a drill.
fn is_drill(server: &Server, id: &str) -> bool {
    let records = server.settings.store.journal(id).unwrap_or_default();
    incidents::started(id, &records).is_ok_and(|s| s.mode == crate::journal::Mode::Drill)
}

/// The channel an incident was started from, as the audit log says.
pub(super) fn started_in(store: &Store, incident: &str) -> Option<String> {
    super::audit::read(store, "chatops", incident)
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["incident"] == incident && e["decision"] == "allowed" && e["action"] != "done")
        .and_then(|e| e["channel"].as_str().map(str::to_string))
}

/// Journals the incident's inbox once its lock is free, unless the server
/// stops first (the inbox stays on disk for the next process that holds
/// the incident).
pub(super) fn record_when_free(server: &Server, incident: &str, redactor: &Redactor) {
    let store = server.settings.store.clone();
    let templates = server.settings.templates.clone();
    let (id, redactor) = (incident.to_string(), redactor.clone());
    let mut shutdown = server.shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|s| s.is_some()) => return,
                () = tokio::time::sleep(RETRY) => {}
            }
            let (store, id, redactor, templates) = (
                store.clone(),
                id.clone(),
                redactor.clone(),
                templates.clone(),
            );
            let done = tokio::task::spawn_blocking(move || match store.lock(&id) {
                Ok(_lock) => {
                    if let Err(e) = tasks::record_inbox(&store, &id, &redactor, &templates) {
                        tracing::warn!("{id}: {e}");
                    }
                    true
                }
                Err(_) => false,
            })
            .await
            .unwrap_or(true);
            if done {
                return;
            }
        }
    });
}
