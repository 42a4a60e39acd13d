//! One step: its `when`, its approval, then attempts with a timeout each and
//! backoff between them. Every attempt is journaled before it starts.

use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};

use super::humans::Answer;
use super::{Contexts, EngineError, Executor, Settled, Shared};
use crate::journal::{Actor, Event, TaskMeta};
use crate::providers::action::{Call, Notes};
use crate::providers::{ActionError, ErrorClass, OutputValue, Provider, within};
use crate::runbook::template::{
    Escape, render_str_in, render_value_escaped, render_value_in, truthy,
};
use crate::runbook::{Approval, Phase, Step};
use crate::secret::{MARKER_START, Redactor};

/// Longest provider error the journal keeps, in characters: enough for the
/// request, the status and the start of what the provider said.
const ERROR_CHARS: usize = 400;

pub(crate) async fn run(sh: &Shared, step: &Step) -> Result<Settled, EngineError> {
    if let Some(settled) = before_acting(sh, step).await? {
        return Ok(settled);
    }
    let rendered = {
        let mut contexts = sh.contexts.lock().expect("context lock poisoned");
        contexts.age_leak(sh.audit_since, sh.clock.now());
        render_params(&contexts, &sh.redactor, step)
    };
    let (params, shown_params) = match rendered {
        Ok(rendered) => rendered,
        Err(why) => return fail(sh, step, why),
    };
    match step.action.provider {
        Provider::Manual => manual_task(sh, step, &params).await,
        Provider::Incident => write_document(sh, step, shown_params),
        _ => attempts(sh, step, &params, shown_params).await,
    }
}

fn skip(sh: &Shared, step: &Step, reason: String) -> Result<Settled, EngineError> {
    sh.record(Event::StepSkipped {
        step: step.id.to_string(),
        reason,
    })?;
    Ok(Settled::Skipped)
}

/// A failure before any attempt: attempt 0, and permanent.
fn fail(sh: &Shared, step: &Step, error: String) -> Result<Settled, EngineError> {
    sh.record(Event::StepFailed {
        step: step.id.to_string(),
        attempt: 0,
        class: ErrorClass::Permanent.name().into(),
        error,
    })?;
    Ok(Settled::Failed)
}

/// What settles a step before it acts, if anything: an optional secret it
/// reads that was not given, its `when`, a provider that cannot act, its
/// approval.
async fn before_acting(sh: &Shared, step: &Step) -> Result<Option<Settled>, EngineError> {
    let optional = |name: &String| {
        sh.runbook
            .secrets
            .iter()
            .any(|d| d.optional && d.name == *name)
    };
    if let Some(missing) = step
        .secrets
        .iter()
        .find(|s| optional(s) && !sh.secrets_given.contains(*s))
    {
        return skip(
            sh,
            step,
            format!("the optional secret `{missing}` was not given"),
        )
        .map(Some);
    }
    if let Some(when) = &step.when {
        let rendered = render_str_in(
            when,
            &sh.contexts.lock().expect("context lock poisoned").real,
        );
        match rendered {
            Ok(r) if truthy(&r) => {}
            Ok(r) => return skip(sh, step, format!("`when` rendered `{}`", r.trim())).map(Some),
            Err(e) => return fail(sh, step, format!("failed to render `when`: {e}")).map(Some),
        }
    }

    // A notification through a provider that cannot act (not built, not
    // configured) is skipped rather than failing the response it reports on.
    if let Executor::Live(live) = &sh.executor
        && let Some(why) = live.unavailable(step.action)
    {
        if step.phase == Phase::Notify {
            return skip(
                sh,
                step,
                format!("{why}, so this notification was not sent"),
            )
            .map(Some);
        }
        return fail(sh, step, why.to_string()).map(Some);
    }

    if let Some(approval) = &step.approval {
        return approve(sh, step, approval).await;
    }
    Ok(None)
}

/// Asks for the step's approval; settles it unless given.
async fn approve(
    sh: &Shared,
    step: &Step,
    approval: &Approval,
) -> Result<Option<Settled>, EngineError> {
    let id = step.id.to_string();
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
            sh.record(Event::ApprovalGranted { step: id, by })?;
            Ok(None)
        }
        Answer::Declined { by } => {
            sh.record(Event::ApprovalDenied {
                step: id,
                by,
                reason: "declined".into(),
            })?;
            skip(sh, step, "approval was declined".into()).map(Some)
        }
        Answer::NoOne => {
            sh.record(Event::ApprovalDenied {
                step: id,
                by: "nobody".into(),
                reason: "no terminal to ask and no --yes".into(),
            })?;
            fail(
                sh,
                step,
                "needs approval, and there was nobody to give it: run at a terminal or pass --yes"
                    .into(),
            )
            .map(Some)
        }
    }
}

/// `incident.document`: the document as it stands, written and published
/// to the steps after it.
fn write_document(sh: &Shared, step: &Step, shown_params: Value) -> Result<Settled, EngineError> {
    let id = step.id.to_string();
    sh.record(Event::StepStarted {
        step: id.clone(),
        attempt: 1,
        params: Some(shown_params),
    })?;
    let path = sh.dir.join("incident.md");
    let markdown = (sh.document)(&sh.records()).map_err(|source| EngineError::Journal {
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
    let marker = Value::String(format!("[the incident document, {size} bytes of Markdown]"));
    shown.insert("markdown".into(), marker.clone());
    sh.contexts
        .lock()
        .expect("context lock poisoned")
        .shown
        .data_mut()["steps"][id.as_str()]["outputs"]["markdown"] = marker;
    sh.record(Event::StepSucceeded {
        step: id,
        attempt: 1,
        outputs: shown,
    })?;
    Ok(Settled::Succeeded)
}

/// The looks of a provider's action: one, unless it watches for a
/// condition that has not come. Live, the step is then left watching for a
/// later `quench tick`; a rehearsal's clock waits until it looks again.
async fn attempts(
    sh: &Shared,
    step: &Step,
    params: &Map<String, Value>,
    shown_params: Value,
) -> Result<Settled, EngineError> {
    let id = step.id.to_string();
    let (since, mut before) = sh
        .begun
        .get(&id)
        .copied()
        .unwrap_or_else(|| (sh.clock.now(), 0));
    loop {
        let until = match look(sh, step, params, &shown_params, since, before).await? {
            Looked::Settled(settled) => return Ok(settled),
            Looked::NotYet { until, attempt } => {
                before = attempt;
                until
            }
        };
        match &sh.executor {
            Executor::Live(_) => return Ok(Settled::Watching),
            Executor::Sim(_) => {
                let wait = (until - sh.clock.now()).to_std().unwrap_or_default();
                sh.executor.wait(wait).await;
            }
        }
    }
}

/// How one look at a step ended.
enum Looked {
    Settled(Settled),
    /// What it watches for has not come; journaled, to look again `until`.
    NotYet {
        until: chrono::DateTime<chrono::Utc>,
        attempt: u32,
    },
}

/// The attempts of one look at a provider's action, each journaled before
/// it is made, with backoff between them; numbered on from `before`, the
/// attempts of earlier looks.
async fn look(
    sh: &Shared,
    step: &Step,
    params: &Map<String, Value>,
    shown_params: &Value,
    since: chrono::DateTime<chrono::Utc>,
    before: u32,
) -> Result<Looked, EngineError> {
    let id = step.id.to_string();
    let mut delays = step.retry.delays();
    for n in 1..=step.retry.attempts {
        let attempt = before + n;
        sh.record_before_effect(Event::StepStarted {
            step: id.clone(),
            attempt,
            params: (attempt == 1).then(|| shown_params.clone()),
        })
        .await?;
        crate::logging::startup("an attempt was journaled, its request goes next");
        let notes = StepNotes {
            sh,
            step: &id,
            attempt,
        };
        let call = Call {
            step: &id,
            timeout: step.timeout,
            notes: &notes,
            now: sh.clock.now(),
            since,
        };
        // Each attempt has the step's timeout to be answered (a live
        // request's from when it leaves its host's gate).
        let pooled = match (&sh.executor, &sh.pool) {
            (Executor::Live(_), Some(pool)) => pool.perform(step.action, params),
            _ => None,
        };
        let result = match (pooled, &sh.executor) {
            (Some(pooled), _) => within(step.timeout, pooled).await,
            (None, Executor::Live(live)) => live.execute(step.action, call, params).await,
            (None, Executor::Sim(sim)) => simulated(sim, step, attempt, call, params).await,
        };
        let mut e = match result {
            Ok(outputs) => return succeeded(sh, step, attempt, &outputs).map(Looked::Settled),
            Err(e) => e,
        };
        // Redacted before it is cut, so that a cut cannot split a
        // secret into pieces no sweep recognises.
        e.message = sh.redactor.excerpt(&e.message, ERROR_CHARS);
        tracing::debug!(step = %id, attempt, class = e.class.name(), "attempt failed: {}", e.message);
        if let ErrorClass::NotYet { until } = e.class {
            sh.record(Event::StepWatching {
                step: id.clone(),
                attempt,
                until,
                reason: e.message,
            })?;
            return Ok(Looked::NotYet { until, attempt });
        }
        let next = if e.class.retryable() && n < step.retry.attempts {
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
            return Ok(Looked::Settled(Settled::Failed));
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
        sh.executor.wait(delay).await;
    }
    // `retry.attempts` is at least 1, so the loop always returns; this
    // keeps the journal honest if that ever changes.
    let error = "no attempt was made (internal error: please report it)";
    fail(sh, step, error.into()).map(Looked::Settled)
}

/// One simulated attempt, timed out on the drill's clock (its pace) and
/// said in its time, as the journal keeps it.
async fn simulated(
    sim: &crate::engine::sim::Sim,
    step: &Step,
    attempt: u32,
    call: Call<'_>,
    params: &Map<String, Value>,
) -> Result<crate::providers::Outputs, ActionError> {
    let timeout = step.timeout / sim.scenario().pace();
    within(timeout, sim.execute(step, attempt, call, params))
        .await
        .map_err(|e| match e.class {
            ErrorClass::Timeout => ActionError::timed_out(step.timeout),
            _ => e,
        })
}

/// Journals an attempt's success, and the proof it gives if it is a
/// verify step; its outputs go to the steps after it.
fn succeeded(
    sh: &Shared,
    step: &Step,
    attempt: u32,
    outputs: &crate::providers::Outputs,
) -> Result<Settled, EngineError> {
    crate::logging::startup("an answer was read");
    let shown = sh.publish_outputs(step, outputs);
    let succeeded = sh.record_unsynced(Event::StepSucceeded {
        step: step.id.to_string(),
        attempt,
        outputs: shown,
    })?;
    if step.proves_dead() {
        sh.record_unsynced(Event::CredentialProvenDead {
            step: step.id.to_string(),
            at: succeeded.ts,
        })?;
    }
    Ok(Settled::Succeeded)
}

/// What a step's attempts note of their effect: journaled, swept by the
/// redactor, and kept for the step's next attempt.
struct StepNotes<'a> {
    sh: &'a Shared,
    step: &'a str,
    attempt: u32,
}

impl Notes for StepNotes<'_> {
    fn noted(&self) -> Option<Value> {
        self.sh
            .notes
            .lock()
            .expect("notes lock poisoned")
            .get(self.step)
            .cloned()
    }

    fn note(
        &self,
        mut note: Value,
    ) -> Pin<Box<dyn Future<Output = Result<(), ActionError>> + Send + '_>> {
        Box::pin(async move {
            self.sh.redactor.redact_value(&mut note);
            self.sh
                .record_before_effect(Event::StepNoted {
                    step: self.step.to_string(),
                    attempt: self.attempt,
                    note: note.clone(),
                })
                .await
                .map_err(|e| ActionError::permanent(e.to_string()))?;
            self.sh
                .notes
                .lock()
                .expect("notes lock poisoned")
                .insert(self.step.to_string(), note);
            Ok(())
        })
    }
}

/// The step's parameters as sent, and as journaled. Only a secret-capable
/// parameter is rendered with secret values; every other one is rendered
/// with their markers and then swept by the redactor, so no template, however
/// it reads its context, can put a secret where it would be shown.
fn render_params(
    c: &Contexts,
    redactor: &Redactor,
    step: &Step,
) -> Result<(Map<String, Value>, Value), String> {
    let mut params = Map::new();
    for (name, template) in &step.with {
        let spec = step.action.param(name);
        let secret_capable = spec.is_some_and(|p| p.secret);
        let escape = if spec.is_some_and(|p| p.mrkdwn) {
            Escape::Mrkdwn
        } else {
            Escape::None
        };
        let rendered = if secret_capable {
            let value = render_value_in(template, &c.real);
            // Restored outputs hold only the markers of secret outputs,
            // which quench never stores: such a step cannot be run from
            // the journal.
            if value.as_ref().is_ok_and(holds_a_marker) {
                return Err("needs a secret output of an earlier step, which quench never stores: run it by hand".into());
            }
            value
        } else {
            render_value_escaped(template, &c.public, escape).map(|mut v| {
                redactor.redact_value(&mut v);
                v
            })
        };
        let value = rendered.map_err(|e| format!("failed to render parameters: {e}"))?;
        params.insert(name.clone(), value);
    }
    let shown = render_value_in(&Value::Object(step.with.clone()), &c.shown)
        .map_err(|e| format!("failed to render parameters: {e}"))?;
    Ok((params, shown))
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
    // Open while it waits, where people answer it with `/quench done`.
    let opened = sh.humans.answers_open_tasks();
    if opened {
        sh.record(Event::TaskOpened {
            step: id.clone(),
            prompt: shown_prompt.clone(),
            task: meta.clone(),
        })?;
    }
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
        Answer::Declined { .. } | Answer::NoOne if opened => Ok(Settled::Open),
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::runbook::{self, SourceFile};
    use crate::secret::Secret;

    /// Even a template that validation would refuse cannot put a secret in
    /// a parameter that is not secret-capable: it renders the marker.
    #[test]
    fn only_secret_capable_parameters_see_secret_values() {
        let yaml = "name: t\nsecrets: { leaked: {} }\nsteps:\n  - id: tell\n    phase: notify\n    action: slack.post_message\n    with: { channel: c, text: hi }\n  - id: call\n    phase: revoke\n    action: http.request\n    with: { url: 'http://x', body: '{{secrets.leaked}}' }\n";
        let rb = runbook::parse(SourceFile::new("t.yaml", yaml))
            .unwrap_or_else(|d| panic!("{d}"))
            .runbook;
        let secret = Secret::new("leaked", "ghp_TheLeakedValue000000001");
        let redactor = Redactor::new();
        redactor.add(&secret);
        let ctx = |value: String| json!({"inputs": {}, "secrets": {"leaked": value}, "steps": {}, "incident": {"id": "INC-1"}});
        let contexts = Contexts {
            real: ctx(secret.expose().into()).into(),
            public: ctx(secret.marker()).into(),
            shown: ctx(secret.marker()).into(),
        };
        let mut tell = rb.steps[0].clone();
        tell.with.insert(
            "text".into(),
            json!(
                "{{#with incident}}{{@root.secrets.leaked}} {{lookup ../secrets 'leaked'}}{{/with}}"
            ),
        );
        let (params, shown) = render_params(&contexts, &redactor, &tell).unwrap();
        let text = params["text"].as_str().unwrap();
        assert_eq!(text, format!("{0} {0}", secret.marker()));
        assert!(!shown.to_string().contains(secret.expose()));
        let (params, shown) = render_params(&contexts, &redactor, &rb.steps[1]).unwrap();
        assert_eq!(params["body"], json!(secret.expose()));
        assert!(!shown.to_string().contains(secret.expose()));
    }
}
