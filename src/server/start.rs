//! `run` and `rehearse` from Slack: a command is authorized, its runbook
//! loaded and its values checked, and either every check passes and the
//! incident is planned, or the first that fails is the answer. Each
//! decision is audited.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::authz::{self, Action};
use super::commands::Found;
use super::{Plan, Request, Server, new_id, runbooks};
use crate::app::inputs::{self, InputMode};
use crate::secret::{Redactor, Secret};

/// Why a command was not started, for the audit log and the reply.
struct Refusal {
    decision: &'static str,
    why: String,
}

fn refused(why: String) -> Refusal {
    Refusal {
        decision: "refused",
        why,
    }
}

/// What a command that passed every check starts with.
struct Admitted {
    runbook: runbooks::Loaded,
    inputs: BTreeMap<String, String>,
    secrets: Vec<Secret>,
    /// The secrets the command gave (a rehearsal's are placeholders).
    given: Vec<String>,
}

/// Starts `action` of `runbook` with `pairs` (`key=value`) (a drill at
/// `pace`), or says why not.
/// Returns whether the answer is ephemeral, its text, and the plan.
#[expect(clippy::too_many_arguments, reason = "the parts of one command")]
pub(super) fn start(
    server: &Arc<Server>,
    req: &Request,
    redactor: &Redactor,
    found: &[Found],
    action: Action,
    runbook: &str,
    pairs: Vec<(String, String)>,
    pace: Option<u32>,
) -> Result<(bool, String, Plan), String> {
    // Values are left out: until the runbook is loaded, nothing says which
    // of them is a secret. The inputs are added once validated.
    let keys: Vec<String> = pairs.iter().map(|(k, _)| format!("{k}=…")).collect();
    let mut entry = json!({
        "path": "/slack/commands", "user": req.user, "channel": req.channel,
        "text": format!("{} {runbook} {}", action.name(), keys.join(" ")).trim_end(),
        "action": action.name(), "runbook": runbook,
    });
    let admitted = authorize(server, req, action, runbook, &mut entry)
        .and_then(|()| admit(server, redactor, found, action, runbook, pairs))
        .and_then(|a| {
            let pace = pace.unwrap_or(1);
            let drill = (action == Action::Drill)
                .then(|| super::drill::scenario(server, &a.runbook.0, pace).map_err(refused))
                .transpose()?;
            Ok((a, drill))
        });
    let (admitted, drill) = match admitted {
        Ok(a) => a,
        Err(Refusal { decision, why }) => {
            server.audit_as(redactor, entry, decision, Some(&why));
            return Err(why);
        }
    };
    let id = new_id(server);
    entry["incident"] = json!(id);
    entry["inputs"] = json!(admitted.inputs);
    server.audit_as(redactor, entry, "allowed", None);
    let (ephemeral, text) = started_reply(req, action, runbook, &id, &admitted.given);
    let plan = Plan {
        action,
        id,
        runbook: admitted.runbook,
        inputs: admitted.inputs,
        secrets: admitted.secrets,
        user: req.user.clone(),
        team: req.team.clone(),
        channel: req.channel.clone(),
        response_url: req.response_url.clone(),
        origin: None,
        drill,
    };
    Ok((ephemeral, text, plan))
}

/// Whether a rule lets this user do this here, and the server can take it.
fn authorize(
    server: &Server,
    req: &Request,
    action: Action,
    runbook: &str,
    entry: &mut Value,
) -> Result<(), Refusal> {
    let authz::Decision::Allowed { rule } = server.decide(req, action, Some(runbook)) else {
        return Err(Refusal {
            decision: "denied",
            why: format!(
                "<@{}> may not `{}` `{runbook}` in this channel: no `[[chatops.allow]]` rule allows it",
                req.user,
                action.name()
            ),
        });
    };
    entry["rule"] = json!(rule);
    if server.shutdown.borrow().is_some() {
        return Err(refused("quench is shutting down".into()));
    }
    let is_name = !runbook.is_empty()
        && runbook
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !is_name {
        return Err(refused(format!(
            "`{runbook}` is not a runbook name (`{} list` shows them)",
            req.command
        )));
    }
    Ok(())
}

/// The runbook loaded and the command's values checked against it.
fn admit(
    server: &Server,
    redactor: &Redactor,
    found: &[Found],
    action: Action,
    runbook: &str,
    pairs: Vec<(String, String)>,
) -> Result<Admitted, Refusal> {
    let loaded = server
        .runbooks
        .load(runbook)
        .map_err(|e| refused(format!("```{e}```")))?;
    let rb = &loaded.0;
    let (vars, mut secrets) = split_pairs(rb, runbook, redactor, found, action, pairs)?;
    let mode = match action {
        Action::Run => InputMode::Run,
        _ => InputMode::Rehearse,
    };
    let inputs = inputs::resolve_inputs(rb, &vars, mode)
        .map_err(|e| refused(e.to_string().replace("--var ", "")))?;
    let given: Vec<String> = secrets.iter().map(|s| s.name().to_string()).collect();
    if let Some(missing) = rb
        .secrets
        .iter()
        .find(|s| !s.optional && !given.contains(&s.name))
        && action == Action::Run
    {
        return Err(refused(format!(
            "`{runbook}` needs secret `{0}`: give `{0}=…` (taken as the leaked value, never echoed, redacted everywhere)",
            missing.name
        )));
    }
    if action != Action::Run {
        secrets = inputs::resolve_secrets(rb, &[], true, &server.settings.config)
            .map_err(|e| refused(e.to_string()))?;
    }
    Ok(Admitted {
        runbook: loaded,
        inputs,
        secrets,
        given,
    })
}

/// The command's `key=value` pairs as inputs (`K=V`) and secrets. A value
/// that looks like a secret must be the value of a declared secret, and a
/// rehearsal takes none.
fn split_pairs(
    rb: &crate::runbook::Runbook,
    runbook: &str,
    redactor: &Redactor,
    found: &[Found],
    action: Action,
    pairs: Vec<(String, String)>,
) -> Result<(Vec<String>, Vec<Secret>), Refusal> {
    let mut vars = Vec::new();
    let mut secrets = Vec::new();
    for (k, v) in pairs {
        if rb.secrets.iter().any(|s| s.name == k) {
            if action != Action::Run {
                return Err(refused(format!(
                    "a rehearsal never takes a real secret: leave `{k}` out"
                )));
            }
            crate::secret::check_len(&k, &v).map_err(|e| refused(e.to_string()))?;
            let secret = Secret::new(k, v);
            redactor.add(&secret);
            secrets.push(secret);
        } else if let Some(leak) = found.iter().find(|f| v.contains(&f.value)) {
            return Err(refused(format!(
                "`{k}` is not a secret of `{runbook}`, and its value looks like a {}: nothing was started",
                leak.kind
            )));
        } else {
            vars.push(format!("{k}={v}"));
        }
    }
    if let Some(stray) = found
        .iter()
        .find(|f| !secrets.iter().any(|s| s.expose().contains(&f.value)))
    {
        return Err(refused(format!(
            "the {} is not the value of a secret `{runbook}` declares: nothing was started",
            stray.kind
        )));
    }
    Ok((vars, secrets))
}

/// The answer to a started command: in the channel, unless it carried a
/// secret (an `in_channel` answer shows the command, secret and all).
fn started_reply(
    req: &Request,
    action: Action,
    runbook: &str,
    id: &str,
    given: &[String],
) -> (bool, String) {
    let what = match action {
        Action::Rehearse => "a rehearsal of",
        Action::Drill => "a DRILL of",
        _ => "the response to",
    };
    let started = format!(
        "<@{}> started {what} `{runbook}`: *{id}*. The status message follows.",
        req.user
    );
    if given.is_empty() {
        return (false, started);
    }
    let names: Vec<String> = given.iter().map(|g| format!("`{g}`")).collect();
    (
        true,
        format!(
            "{started}\nThe value of {} was taken as the leaked secret: it is not echoed and is redacted in everything quench writes.",
            names.join(", ")
        ),
    )
}
