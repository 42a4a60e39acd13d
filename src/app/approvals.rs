//! An approval, from whichever door it comes: a Slack button, or
//! `quench approve INCIDENT STEP` at a terminal. Who may give it is decided
//! here, once, for both: a `[[chatops.allow]]` rule must let them `approve`
//! the incident's runbook, and a step that names `approvers` takes only
//! them. A terminal's approval reaches the process that runs the incident
//! (and waits for it) through the incident's inbox, like a task's answer;
//! a button's reaches it in memory, since the server that received the
//! click is the one that asked.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Error;
use super::authz::{self, Action};
use crate::config::AllowRule;
use crate::journal::{self, Approval, Event, IncidentView, StepState};
use crate::secret::Redactor;
use crate::store::{LockError, Store};

/// Why someone may not approve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("no `[[chatops.allow]]` rule lets them approve")]
    NoRule,
    #[error("not one of the step's approvers")]
    NotNamed,
}

/// Whether `user` (a Slack user id, or at a terminal the OS user, in no
/// channel) may approve a step of `runbook` that names `approvers`; the
/// rule that allows it.
pub fn authorize(
    rules: &[AllowRule],
    user: &str,
    channel: &str,
    runbook: Option<&str>,
    approvers: &[String],
) -> Result<usize, Denied> {
    let decision = authz::decide(
        rules,
        authz::Request {
            action: Action::Approve,
            user,
            channel,
            runbook,
        },
    );
    let authz::Decision::Allowed { rule } = decision else {
        return Err(Denied::NoRule);
    };
    if !approvers.is_empty() && !approvers.iter().any(|a| a == user) {
        return Err(Denied::NotNamed);
    }
    Ok(rule)
}

/// An approval given at a terminal, as the inbox holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Given {
    pub kind: String,
    pub step: String,
    pub approved: bool,
    pub by: String,
    pub ts: DateTime<Utc>,
}

const KIND: &str = "approval";

/// `quench approve`: approves (or declines) `step` of incident `id`, which
/// another process runs and which waits for it. `user` is who the rules
/// know them as; `by` is what the journal records.
pub fn give(
    store: &Store,
    rules: &[AllowRule],
    id: &str,
    step: &str,
    (user, by): (&str, &str),
    approved: bool,
) -> Result<(), Error> {
    let dir = super::incidents::find(store, id)?;
    let records =
        journal::read(&dir.join("journal.jsonl")).map_err(|e| Error::Runtime(e.to_string()))?;
    let runbook = match records.first().map(|r| &r.event) {
        Some(Event::IncidentStarted { runbook, .. }) => runbook.clone(),
        _ => return Err(Error::Runtime(format!("`{id}` has no `incident_started`"))),
    };
    let view = IncidentView::fold(&records);
    let waiting = view
        .step(step)
        .filter(|s| s.state == StepState::AwaitingApproval);
    let Some(Approval::Requested { approvers }) = waiting.and_then(|s| s.approval.clone()) else {
        return Err(Error::Usage(format!(
            "`{id}` does not wait for an approval of `{step}`"
        )));
    };
    authorize(rules, user, "", Some(&runbook), &approvers).map_err(|why| {
        Error::Usage(format!(
            "`{user}` may not approve `{step}` of `{runbook}`: {why}"
        ))
    })?;
    match store.lock(id) {
        // Nobody holds it, so nobody is waiting: the question died with
        // the process that asked it.
        Ok(_lock) => Err(Error::Usage(format!(
            "no process is running `{id}`: `quench resume {id}` asks for its approvals at the terminal"
        ))),
        Err(LockError::Held { .. }) => leave(store, id, step, approved, by),
        Err(e) => Err(Error::Runtime(e.to_string())),
    }
}

/// Leaves an approval of `step` (by `by`, authorized already) in incident
/// `id`'s inbox, for the process that asked for it.
pub fn leave(store: &Store, id: &str, step: &str, approved: bool, by: &str) -> Result<(), Error> {
    let given = Given {
        kind: KIND.into(),
        step: step.to_string(),
        approved,
        by: by.to_string(),
        ts: Utc::now(),
    };
    let line = serde_json::to_value(&given).map_err(|e| Error::Runtime(e.to_string()))?;
    super::tasks::push(store, id, line, &Redactor::new())
}

/// The approval given for `step` elsewhere (a terminal, another replica),
/// if incident `id`'s inbox holds one: read by the process that waits for
/// it.
pub fn given(store: &Store, id: &str, step: &str) -> Option<Given> {
    store
        .inbox(id)
        .ok()?
        .iter()
        .filter_map(|(_, l)| serde_json::from_str::<Given>(l).ok())
        .find(|g| g.kind == KIND && g.step == step)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(users: &[&str], actions: &[&str]) -> AllowRule {
        let list = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
        AllowRule {
            runbooks: None,
            users: list(users),
            channels: None,
            actions: list(actions),
        }
    }

    #[test]
    fn a_rule_and_the_steps_approvers_both_decide() {
        let rules = [
            rule(&["alice", "U1"], &["approve"]),
            rule(&["bob"], &["run"]),
        ];
        assert_eq!(authorize(&rules, "alice", "", Some("rb"), &[]), Ok(0));
        assert_eq!(
            authorize(&rules, "bob", "", Some("rb"), &[]),
            Err(Denied::NoRule)
        );
        let named = ["U1".to_string()];
        assert_eq!(
            authorize(&rules, "alice", "C1", Some("rb"), &named),
            Err(Denied::NotNamed)
        );
        assert_eq!(authorize(&rules, "U1", "C1", Some("rb"), &named), Ok(0));
    }
}
