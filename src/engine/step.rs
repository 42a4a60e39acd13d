//! One step: its `when`, its approval, then attempts with a timeout each and
//! backoff between them. Every attempt is journaled before it starts.

use serde_json::Value;

use super::humans::Answer;
use super::{EngineError, Executor, Settled, Shared};
use crate::journal::{Actor, Event, TaskMeta};
use crate::providers::{ErrorClass, OutputValue, Provider, within};
use crate::runbook::template::{render_str_in, render_value_in, truthy};
use crate::runbook::{Phase, Step};
use crate::secret::MARKER_START;

pub(crate) async fn run(sh: &Shared, step: &Step) -> Result<Settled, EngineError> {
    let id = step.id.to_string();
    let skip = |reason: String| -> Result<Settled, EngineError> {
        sh.record(Event::StepSkipped {
            step: id.clone(),
            reason,
        })?;
        Ok(Settled::Skipped)
    };
    let fail = |error: String| -> Result<Settled, EngineError> {
        sh.record(Event::StepFailed {
            step: id.clone(),
            attempt: 0,
            class: ErrorClass::Permanent.name().into(),
            error,
        })?;
        Ok(Settled::Failed)
    };

    if let Some(when) = &step.when {
        let rendered = render_str_in(
            when,
            &sh.contexts.lock().expect("context lock poisoned").real,
        );
        match rendered {
            Ok(r) if truthy(&r) => {}
            Ok(r) => return skip(format!("`when` rendered `{}`", r.trim())),
            Err(e) => return fail(format!("failed to render `when`: {e}")),
        }
    }

    // A notification through a provider that cannot act (not built, not
    // configured) is skipped rather than failing the response it reports on.
    if let Executor::Live(live) = &sh.executor
        && let Some(why) = live.unavailable(step.action)
    {
        if step.phase == Phase::Notify {
            return skip(format!("{why}, so this notification was not sent"));
        }
        return fail(why.to_string());
    }

    if let Some(approval) = &step.approval {
        sh.record(Event::ApprovalRequested {
            step: id.clone(),
            approvers: approval.approvers.clone(),
        })?;
        let answer = if sh.assume_yes {
            Answer::Given {
                text: "approved".into(),
                by: format!("{} (--yes)", Actor::current()),
            }
        } else {
            sh.humans.approve(&id, step.action.name).await
        };
        match answer {
            Answer::Given { by, .. } => {
                sh.record(Event::ApprovalGranted {
                    step: id.clone(),
                    by,
                })?;
            }
            Answer::Declined { by } => {
                sh.record(Event::ApprovalDenied {
                    step: id.clone(),
                    by,
                    reason: "declined".into(),
                })?;
                return skip("approval was declined".into());
            }
            Answer::NoOne => {
                sh.record(Event::ApprovalDenied {
                    step: id.clone(),
                    by: "nobody".into(),
                    reason: "no terminal to ask and no --yes".into(),
                })?;
                return fail("needs approval, and there was nobody to give it: run at a terminal or pass --yes".into());
            }
        }
    }

    let (real, shown) = {
        let c = sh.contexts.lock().expect("context lock poisoned");
        let with = Value::Object(step.with.clone());
        (
            render_value_in(&with, &c.real),
            render_value_in(&with, &c.shown),
        )
    };
    let (params, shown_params) = match (real, shown) {
        // Restored outputs hold only the markers of secret outputs, which
        // quench never stores: such a step cannot be run from the journal.
        (Ok(Value::Object(p)), Ok(_)) if p.values().any(holds_a_marker) => {
            return fail("needs a secret output of an earlier step, which quench never stores: run it by hand".into());
        }
        (Ok(Value::Object(p)), Ok(s)) => (p, s),
        (Err(e), _) | (_, Err(e)) => return fail(format!("failed to render parameters: {e}")),
        _ => return fail("failed to render parameters".into()),
    };

    match step.action.provider {
        Provider::Manual => return manual_task(sh, step, &params).await,
        Provider::Incident => {
            sh.record(Event::StepStarted {
                step: id.clone(),
                attempt: 1,
                params: Some(shown_params),
            })?;
            let path = sh.dir.join("incident.md");
            let markdown = crate::document::write(
                &sh.dir,
                &sh.records(),
                &sh.templates,
                crate::document::Pages::Progress,
            )
            .map_err(|source| EngineError::Journal {
                path: path.display().to_string(),
                source,
            })?;
            let size = markdown.len();
            let mut shown = sh.publish_outputs(
                step,
                &vec![
                    (
                        "path".into(),
                        OutputValue::Plain(path.display().to_string().into()),
                    ),
                    ("markdown".into(), OutputValue::Plain(markdown.into())),
                ],
            );
            // The journal already holds every fact the document is made of:
            // a copy of it here, and in the parameters of the step that
            // publishes it, would only bloat it. Later steps get it whole.
            let marker =
                Value::String(format!("[the incident document, {size} bytes of Markdown]"));
            shown.insert("markdown".into(), marker.clone());
            sh.contexts
                .lock()
                .expect("context lock poisoned")
                .shown
                .data_mut()["steps"][id.as_str()]["outputs"]["markdown"] = marker;
            sh.record(Event::StepSucceeded {
                step: id.clone(),
                attempt: 1,
                outputs: shown,
            })?;
            return Ok(Settled::Succeeded);
        }
        _ => {}
    }

    let mut delays = step.retry.delays();
    for attempt in 1..=step.retry.attempts {
        sh.record_before_effect(Event::StepStarted {
            step: id.clone(),
            attempt,
            params: (attempt == 1).then(|| shown_params.clone()),
        })
        .await?;
        crate::logging::startup("an attempt was journaled, its request goes next");
        // Each attempt has the step's timeout to be answered (a live
        // request's from when it leaves its host's gate).
        let result = match &sh.executor {
            Executor::Live(live) => live.execute(step.action, &id, &params, step.timeout).await,
            Executor::Sim(sim) => within(step.timeout, sim.execute(step, attempt)).await,
        };
        match result {
            Ok(outputs) => {
                crate::logging::startup("an answer was read");
                let shown = sh.publish_outputs(step, &outputs);
                sh.record_unsynced(Event::StepSucceeded {
                    step: id.clone(),
                    attempt,
                    outputs: shown,
                })?;
                return Ok(Settled::Succeeded);
            }
            Err(e) => {
                // The provider's own words, before the journal's sweep: the
                // log writer sweeps them too.
                tracing::debug!(step = %id, attempt, class = e.class.name(), "attempt failed: {}", e.message);
                let next = if e.class.retryable() && attempt < step.retry.attempts {
                    delays.next()
                } else {
                    None
                };
                let Some(mut delay) = next else {
                    sh.record_unsynced(Event::StepFailed {
                        step: id.clone(),
                        attempt,
                        class: e.class.name().into(),
                        error: e.message,
                    })?;
                    return Ok(Settled::Failed);
                };
                // A server that says when to come back is taken at its word:
                // the backoff, which grows with each attempt, is for failures
                // that say nothing. Growing it on top of Retry-After would
                // leave the last keys of a bulk revocation sleeping for
                // seconds while the rate limit has room for them again.
                if let ErrorClass::RateLimited {
                    retry_after: Some(ra),
                } = e.class
                {
                    delay = ra;
                }
                sh.record(Event::AttemptFailed {
                    step: id.clone(),
                    attempt,
                    class: e.class.name().into(),
                    error: e.message,
                    retry_in_ms: delay.as_millis() as u64,
                })?;
                tokio::time::sleep(delay).await;
            }
        }
    }
    unreachable_attempts(sh, &id)
}

/// Whether a rendered parameter holds the marker of a secret, anywhere.
fn holds_a_marker(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains(MARKER_START),
        Value::Array(items) => items.iter().any(holds_a_marker),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.contains(MARKER_START) || holds_a_marker(v)),
        _ => false,
    }
}

/// `retry.attempts` is at least 1, so the loop always returns; this keeps
/// the journal honest if that ever changes.
fn unreachable_attempts(sh: &Shared, id: &str) -> Result<Settled, EngineError> {
    sh.record(Event::StepFailed {
        step: id.to_string(),
        attempt: 0,
        class: ErrorClass::Permanent.name().into(),
        error: "no attempt was made (internal error: please report it)".into(),
    })?;
    Ok(Settled::Failed)
}

async fn manual_task(
    sh: &Shared,
    step: &Step,
    params: &serde_json::Map<String, Value>,
) -> Result<Settled, EngineError> {
    let id = step.id.to_string();
    let prompt = params
        .get("prompt")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let shown_prompt = sh.redactor.redact(&prompt);
    let param = |name: &str| {
        params
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.trim().is_empty())
            .map(|v| sh.redactor.redact(v))
    };
    let meta = TaskMeta {
        assignee: param("assignee"),
        due: param("due"),
    };
    sh.record(Event::StepStarted {
        step: id.clone(),
        attempt: 1,
        params: None,
    })?;
    match sh.humans.task(&id, &shown_prompt).await {
        Answer::Given { text, by } => {
            sh.record(Event::TaskAnswered {
                step: id.clone(),
                prompt: shown_prompt,
                answer: text.clone(),
                by,
                task: meta,
            })?;
            let shown = sh.publish_outputs(
                step,
                &vec![("answer".into(), OutputValue::Plain(text.into()))],
            );
            sh.record(Event::StepSucceeded {
                step: id,
                attempt: 1,
                outputs: shown,
            })?;
            Ok(Settled::Succeeded)
        }
        Answer::Declined { .. } | Answer::NoOne => {
            sh.record(Event::TaskOpened {
                step: id,
                prompt: shown_prompt,
                task: meta,
            })?;
            Ok(Settled::Open)
        }
    }
}
