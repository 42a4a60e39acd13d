//! The plan: what a run would do, in order, with parameters rendered.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::runbook::template::render_value;
use crate::runbook::{self, Runbook, human};

/// The plan: every step in order, parameters rendered with inputs and with
/// placeholders for secrets and for outputs not produced yet.
pub fn plan(rb: &Runbook, path: &str, inputs: &BTreeMap<String, String>) -> String {
    let ctx = context(rb, inputs);
    let mut out = format!(
        "plan for `{}` ({}) from {path}\nrevoke within {} of detection\n\n",
        rb.name,
        rb.title,
        human(rb.revoke_within)
    );
    for (n, s) in rb.steps.iter().enumerate() {
        out.push_str(&step(n + 1, s, &ctx));
    }
    out
}

/// What a plan's templates read: the inputs, and placeholders for the
/// secrets, the outputs and the incident.
fn context(rb: &Runbook, inputs: &BTreeMap<String, String>) -> Value {
    let mut steps_ctx = serde_json::Map::new();
    for s in &rb.steps {
        let outs: serde_json::Map<String, Value> = s
            .outputs
            .iter()
            .map(|o| {
                (
                    o.name.clone(),
                    Value::String(format!("<{}.{}>", s.id, o.name)),
                )
            })
            .collect();
        steps_ctx.insert(s.id.to_string(), json!({ "outputs": outs }));
    }
    let secrets: serde_json::Map<String, Value> = rb
        .secrets
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                Value::String(format!("[REDACTED {}]", s.name)),
            )
        })
        .collect();
    json!({
        "inputs": inputs,
        "secrets": secrets,
        "steps": steps_ctx,
        "incident": {"id": "<incident id>", "mode": "live", "runbook": rb.name, "started_at": "<start>", "detected_at": "<detection>", "leaked_at": "<the leak>", "leaked_ago": "<time since the leak>"},
    })
}

/// Step `n` of the plan: what it does, when, and its parameters rendered.
fn step(n: usize, s: &runbook::Step, ctx: &Value) -> String {
    let mut out = String::new();
    let mut flags = vec![
        format!("timeout {}", human(s.timeout)),
        format!(
            "{} attempt{}",
            s.retry.attempts,
            if s.retry.attempts == 1 { "" } else { "s" }
        ),
    ];
    if s.on_failure == runbook::OnFailure::Abort {
        flags.push("abort on failure".into());
    }
    out.push_str(&format!(
        "{:>2}. {} [{}] {}  ({})\n",
        n,
        s.id,
        s.phase,
        s.action.name,
        flags.join(", ")
    ));
    if let Some(name) = &s.name {
        out.push_str(&format!("      {name}\n"));
    }
    out.push_str(&format!("      {}\n", s.wait_text()));
    if let Some(a) = s.after {
        out.push_str(&format!(
            "      follow-up: due {} after the steps it needs (or the start)\n",
            human(a)
        ));
    } else if s.deferred {
        out.push_str("      follow-up: runs after the follow-ups it needs\n");
    }
    if let Some(w) = &s.when {
        out.push_str(&format!("      when: {w}\n"));
    }
    if let Some(a) = &s.approval {
        out.push_str(&format!(
            "      needs approval{}\n",
            if a.approvers.is_empty() {
                String::new()
            } else {
                format!(" from {}", a.approvers.join(", "))
            }
        ));
    }
    let rendered = render_value(&Value::Object(s.with.clone()), ctx)
        .unwrap_or_else(|e| Value::String(format!("<cannot render: {e}>")));
    if let Value::Object(map) = rendered {
        for (k, v) in map {
            let shown = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            out.push_str(&format!("      {k}: {shown}\n"));
        }
    }
    out
}
