//! Drills from Slack: `/quench drill RUNBOOK [--pace Nx] key=value…` plays
//! the runbook in the channel on simulated providers, with its scenario
//! (`RUNBOOKS/scenarios/RUNBOOK.yaml`, if there is one) scripting what it
//! names and the channel's people answering the rest; `/quench inject
//! INCIDENT NAME` fires one of its injects, for whom a rule lets
//! `facilitate` it.

use std::sync::Arc;

use serde_json::json;

use super::authz::{self, Action};
use super::humans::SlackHumans;
use super::{Plan, Request, Server};
use crate::app::inputs::{self, InputMode};
use crate::engine::drill;
use crate::engine::sim::{DrillChannel, Linker, Sim};
use crate::engine::{Executor, Humans};
use crate::runbook::{Runbook, SourceFile};
use crate::scenario::Scenario;
use crate::secret::Redactor;

/// A drill's scenario as the command found it: parsed, and its text, kept
/// with the incident.
pub(super) struct Planned {
    pub scenario: Arc<Scenario>,
    pub text: Option<String>,
    /// What set it off, when a second leak in another drill did.
    pub trigger: Option<String>,
}

/// The scenario of a drill of `rb`: `scenarios/NAME.yaml` beside the
/// runbooks, checked against it, or the default one; the reason, as the
/// reply says it, when it does not validate.
pub(super) fn scenario(server: &Server, rb: &Runbook, pace: u32) -> Result<Planned, String> {
    let path = server
        .settings
        .runbooks
        .join("scenarios")
        .join(format!("{}.yaml", rb.name));
    let (scenario, text) = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let source = SourceFile::new(path.display().to_string(), text.clone());
            let parsed = Scenario::parse(source)
                .and_then(|s| s.check_against(rb).map(|()| s))
                .map_err(|d| format!("```{}```", crate::app::Error::Invalid(d)))?;
            (parsed, Some(text))
        }
        Err(_) => (Scenario::default(), None),
    };
    Ok(Planned {
        scenario: Arc::new(scenario.into_drill(pace)),
        text,
        trigger: None,
    })
}

/// Who plays the drill: its simulated providers, posting its notifications
/// to its channel, and the scenario or the channel's people.
pub(super) async fn prepare(
    server: &Arc<Server>,
    plan: &Plan,
    planned: &Planned,
    rb: Runbook,
) -> Option<(Executor, Humans, Runbook)> {
    let slack = &server.settings.slack;
    let mut sim = Sim::new(planned.scenario.clone());
    if slack.has_bot_token() && !plan.channel.is_empty() {
        sim = sim.with_channel(DrillChannel {
            slack: slack.clone(),
            channel: plan.channel.clone(),
            linked: Some(linker(server, plan, planned)),
        });
    }
    let people = Humans::Remote(Arc::new(SlackHumans {
        inbox: Some(server.settings.store.clone()),
        drill: true,
        ..SlackHumans::new(server, &plan.channel, &plan.id, &rb)
    }));
    let humans = Humans::Drill {
        scenario: planned.scenario.clone(),
        people: Box::new(people),
    };
    Some((Executor::Sim(sim), humans, rb))
}

/// Starts the drill a second leak in drill `plan` sets off: the same
/// runbook, in the same channel, with the leak's inputs in place of the
/// first's and the first's scenario without its second leaks; audited, and
/// linked to the first in its trigger.
fn linker(server: &Arc<Server>, plan: &Plan, planned: &Planned) -> Linker {
    let server = server.clone();
    let first = Plan {
        action: plan.action,
        id: plan.id.clone(),
        runbook: plan.runbook.clone(),
        inputs: plan.inputs.clone(),
        secrets: plan.secrets.clone(),
        user: plan.user.clone(),
        team: plan.team.clone(),
        channel: plan.channel.clone(),
        response_url: String::new(),
        origin: None,
        drill: None,
    };
    let scenario = Arc::new(planned.scenario.without_leaks());
    let text = planned.text.clone();
    Linker(Arc::new(move |leaked| {
        let mut merged = first.inputs.clone();
        merged.extend(leaked.clone());
        let vars: Vec<String> = merged.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let rb = &first.runbook.0;
        let inputs = match inputs::resolve_inputs(rb, &vars, InputMode::Rehearse) {
            Ok(inputs) => inputs,
            Err(e) => {
                super::log(&format!(
                    "{}: the second leak starts nothing: {e}",
                    first.id
                ));
                return None;
            }
        };
        let id = super::new_id(&server);
        server.audit(
            &Redactor::new(),
            json!({
                "path": "/slack/commands", "user": first.user, "channel": first.channel,
                "action": "drill", "decision": "allowed", "incident": id,
                "runbook": rb.name, "inputs": inputs, "linked_to": first.id,
            }),
        );
        let plan = Plan {
            action: Action::Drill,
            id: id.clone(),
            inputs,
            drill: Some(Planned {
                scenario: scenario.clone(),
                text: text.clone(),
                trigger: Some(format!("a second leak in the drill {}", first.id)),
            }),
            runbook: first.runbook.clone(),
            secrets: first.secrets.clone(),
            user: first.user.clone(),
            team: first.team.clone(),
            channel: first.channel.clone(),
            response_url: String::new(),
            origin: None,
        };
        super::spawn_incident(&server, plan);
        Some(id)
    }))
}

/// `inject INCIDENT NAME`: fires the inject, for a user a rule lets
/// `facilitate` the drill's runbook here. Every decision is audited.
pub(super) async fn inject(
    server: &Server,
    req: &Request,
    redactor: &Redactor,
    incident: &str,
    name: &str,
) -> (bool, String) {
    let mut entry = json!({
        "path": "/slack/commands", "user": req.user, "channel": req.channel,
        "text": format!("inject {incident} {name}"), "action": "facilitate",
        "incident": incident, "inject": name,
    });
    let runbook = super::done::runbook_of(server, incident);
    entry["runbook"] = json!(runbook);
    let (decision, answer) = match server.decide(req, Action::Facilitate, runbook.as_deref()) {
        authz::Decision::Denied => (
            "denied",
            format!(
                "<@{}> may not fire injects in `{incident}`: no `[[chatops.allow]]` rule lets them `facilitate` it",
                req.user
            ),
        ),
        authz::Decision::Allowed { rule } => {
            entry["rule"] = json!(rule);
            match drill::fire(incident, name, &format!("slack:{}", req.user)) {
                Ok(()) => (
                    "allowed",
                    format!("<@{}> fired `{name}` in *{incident}*", req.user),
                ),
                Err(e) => ("refused", e.to_string()),
            }
        }
    };
    let refused = decision != "allowed";
    server.audit_as(redactor, entry, decision, refused.then_some(&answer));
    (refused, answer)
}
