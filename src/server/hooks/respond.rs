//! What a hook's answer promised, after the answer: the secret is read
//! where the detector keeps it, and the credential's incident is started,
//! or joined when one already responds to the same credential. Each
//! outcome (started, joined, failed, unmanaged) is a line of `hooks.jsonl`
//! and, when a channel is configured, a message in Slack; a delivery whose
//! processing failed is processed again when it is redelivered.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::registry::Claim;
use super::{aws, github, triggers};
use crate::app::inputs::{self, InputMode};
use crate::app::tasks::{self, Answered};
use crate::config::Trigger;
use crate::journal::Detection;
use crate::secret::{Redactor, Secret};
use crate::server::authz::Action;
use crate::server::{Origin, Plan, Server, new_id, spawn_incident};
use crate::store::Store;

/// The waits between attempts to read an alert: 5 attempts over ~7.5 s.
/// GitHub gives a webhook 10 s, but the answer has long gone: these only
/// bound how long a response waits for GitHub to answer again.
const FETCH_DELAYS: [Duration; 4] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];
/// How long the alert's location and commit date may take. The response
/// does not wait longer for them: the leak time is then unknown.
const LEAK_BUDGET: Duration = Duration::from_secs(3);
/// How long a later detection waits for the incident it joins to be
/// created (a burst can bring both in the same instant).
const JOIN_WAIT: Duration = Duration::from_secs(30);

/// A delivery that was accepted, for the background.
pub(super) enum Job {
    Github {
        delivery: String,
        alert: github::Alert,
        trigger: usize,
        detected_at: DateTime<Utc>,
    },
    Aws {
        exposed: aws::Exposed,
        trigger: usize,
        received: DateTime<Utc>,
    },
    Generic {
        source: String,
        delivery: String,
        body: Value,
        trigger: usize,
        received: DateTime<Utc>,
    },
}

/// Runs `job` on the incident runtime, after the answer.
pub(super) fn spawn(server: &Arc<Server>, job: Job) {
    let s = server.clone();
    server.incidents.lock().expect("incidents lock").spawn_on(
        async move {
            match job {
                Job::Github {
                    delivery,
                    alert,
                    trigger,
                    detected_at,
                } => from_github(&s, delivery, alert, trigger, detected_at).await,
                Job::Aws {
                    exposed,
                    trigger,
                    received,
                } => from_aws(&s, exposed, trigger, received).await,
                Job::Generic {
                    source,
                    delivery,
                    body,
                    trigger,
                    received,
                } => from_generic(&s, &source, delivery, &body, trigger, received).await,
            }
        },
        &server.settings.incidents,
    );
}

/// A credential a detector reported, ready to be responded to.
struct Detected {
    delivery: String,
    trigger: usize,
    /// Names the credential across detectors and deliveries.
    fingerprint: String,
    detection: Detection,
    /// What the document says set the response off.
    summary: String,
    /// The trigger's inputs, rendered (`K=V`).
    vars: Vec<String>,
    secrets: Vec<Secret>,
    /// The runbook's live providers, built meanwhile, if they were.
    live: Option<Box<crate::providers::Live>>,
}

/// The live providers of the trigger's runbook: built while the detection
/// is read (the alert fetched, the key's owner asked), not after it.
async fn live_for(server: &Server, t: &Trigger) -> Option<Box<crate::providers::Live>> {
    let loaded = server.runbooks.load(&t.runbook).ok()?;
    let used = crate::server::providers(&loaded.0);
    let live = crate::providers::Live::build(&server.settings.config, &used).await;
    Some(Box::new(live))
}

fn trigger_of(server: &Server, i: usize) -> &Trigger {
    &server.settings.config.triggers[i]
}

/// The trigger's channel, else `[hooks] channel`.
fn channel(server: &Server, t: &Trigger) -> Option<String> {
    t.channel
        .clone()
        .or_else(|| server.settings.config.hooks.channel.clone())
}

/// Says `text` in `channel`, or in the server's log when there is no
/// channel or no bot to post with.
async fn say(server: &Server, channel: Option<&str>, text: &str) {
    let slack = &server.settings.slack;
    match channel {
        Some(c) if slack.has_bot_token() => {
            if let Err(e) = slack.post(c, text, None, None).await {
                crate::server::log(&format!("{text} (not posted to Slack: {})", e.message));
            }
        }
        _ => crate::server::log(text),
    }
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Processing failed: recorded, said, and a redelivery is taken again.
/// `why` is swept of `secrets` (the credential, once it was read) first.
async fn failed(
    server: &Server,
    (source, delivery): (&str, &str),
    secrets: &[Secret],
    channel: Option<&str>,
    what: &str,
    why: &str,
) {
    let why = Redactor::of(secrets).redact(why);
    server.hooks.registry.failed(delivery);
    server.hooks.record(
        secrets,
        json!({"source": source, "delivery": delivery, "decision": "failed", "reason": why}),
    );
    let text = format!(
        ":warning: quench could not respond to {what}: {why}. Nothing was started; redeliver it once this is fixed."
    );
    say(server, channel, &text).await;
}

async fn from_github(
    server: &Arc<Server>,
    delivery: String,
    alert: github::Alert,
    trigger: usize,
    detected_at: DateTime<Utc>,
) {
    let t = trigger_of(server, trigger);
    let channel = channel(server, t);
    let what = format!("alert #{} of `{}`", alert.number, alert.repository);
    let ids = ("github", delivery.as_str());
    let Some(http) = server.hooks.http.clone() else {
        let why = "no HTTP client could be built for the GitHub API";
        return failed(server, ids, &[], channel.as_deref(), &what, why).await;
    };
    let api = &server.hooks.settings.api;
    let (fetched, leak, live) = tokio::join!(
        fetch_secret(server, &http, &alert, channel.as_deref()),
        tokio::time::timeout(LEAK_BUDGET, api.leak(&http, &alert)),
        live_for(server, t),
    );
    crate::logging::startup("hook: the alert was read");
    let (value, kind) = match fetched {
        Ok(f) => f,
        Err(why) => return failed(server, ids, &[], channel.as_deref(), &what, &why).await,
    };
    let leak = leak.ok().and_then(Result::ok).flatten();
    let name = server
        .runbooks
        .load(&t.runbook)
        .ok()
        .and_then(|l| l.0.secrets.first().map(|s| s.name.clone()))
        .unwrap_or_else(|| "leaked_token".into());
    let secret = Secret::new(name, value);
    let vars = BTreeMap::from([
        ("repository".to_string(), alert.repository.clone()),
        ("alert.number".to_string(), alert.number.to_string()),
        ("alert.secret_type".to_string(), kind.clone()),
        (
            "alert.url".to_string(),
            alert.url.clone().unwrap_or_default(),
        ),
    ]);
    let vars = match triggers::inputs(t, &vars) {
        Ok(v) => v,
        Err(why) => {
            let known = std::slice::from_ref(&secret);
            return failed(server, ids, known, channel.as_deref(), &what, &why).await;
        }
    };
    let detection = Detection {
        source: "github".into(),
        detector: format!("GitHub secret scanning ({kind})"),
        delivery: Some(delivery.clone()),
        url: alert.url.clone(),
        location: leak.as_ref().map(|l| l.location.clone()),
        detected_at,
        leaked_at: leak.and_then(|l| l.at),
        unattended: t.unattended.clone(),
    };
    let d = Detected {
        live,
        fingerprint: sha256_hex(&[secret.expose()]),
        delivery,
        trigger,
        detection,
        summary: format!("GitHub secret scanning {what} ({kind})"),
        vars,
        secrets: vec![secret],
    };
    start_or_join(server, d, channel.as_deref()).await;
}

/// The alert's secret, read again after a failure GitHub may not repeat
/// (a 5xx, a rate limit, no answer); each retry is said in Slack.
async fn fetch_secret(
    server: &Server,
    http: &reqwest::Client,
    alert: &github::Alert,
    channel: Option<&str>,
) -> Result<(String, String), String> {
    let api = &server.hooks.settings.api;
    let attempts = FETCH_DELAYS.len() + 1;
    let mut delays = FETCH_DELAYS.iter();
    let mut attempt = 1;
    loop {
        let failure = match api.secret(http, alert).await {
            Ok(found) => return Ok(found),
            Err(f) => f,
        };
        let stopping = server.shutdown.borrow().is_some();
        let next = delays.next().filter(|_| failure.retryable && !stopping);
        let Some(delay) = next else {
            return Err(failure.message);
        };
        let text = format!(
            ":hourglass_flowing_sand: quench could not read alert #{} of `{}` ({}): trying again in {} (attempt {} of {attempts})",
            alert.number,
            alert.repository,
            failure.message,
            crate::time::human(*delay),
            attempt + 1,
        );
        say(server, channel, &text).await;
        tokio::time::sleep(*delay).await;
        attempt += 1;
    }
}

/// The credential's incident: a new one, or the one that responds to it.
async fn start_or_join(server: &Arc<Server>, d: Detected, channel: Option<&str>) {
    let claim = server
        .hooks
        .registry
        .claim(&d.fingerprint, Utc::now(), || new_id(server));
    match claim {
        Claim::New(id) => start(server, id, d, channel).await,
        Claim::Join(id) => join(server, &id, d, channel).await,
    }
}

/// Starts incident `id` for `d`, or says why it could not.
async fn start(server: &Arc<Server>, id: String, d: Detected, channel: Option<&str>) {
    let t = trigger_of(server, d.trigger);
    let admitted = admit(server, t, &d);
    let (loaded, inputs) = match admitted {
        Ok(a) => a,
        Err(why) => {
            server.hooks.registry.release(&d.fingerprint, &id);
            server.running.lock().expect("running lock").remove(&id);
            let ids = (d.detection.source.as_str(), d.delivery.as_str());
            return failed(server, ids, &d.secrets, channel, &d.summary, &why).await;
        }
    };
    if let Some(other) = taken_elsewhere(server, &id, &d).await {
        server.hooks.registry.release(&d.fingerprint, &id);
        server.running.lock().expect("running lock").remove(&id);
        server.hooks.record(
            &d.secrets,
            json!({
                "source": d.detection.source, "delivery": d.delivery, "decision": "duplicate",
                "incident": other, "fingerprint": d.fingerprint,
                "reason": "another replica took this delivery",
            }),
        );
        server.hooks.registry.done(&d.delivery, &other);
        return;
    }
    server.hooks.record(
        &d.secrets,
        json!({
            "source": d.detection.source, "delivery": d.delivery, "decision": "started",
            "incident": id, "fingerprint": d.fingerprint, "trigger": d.trigger + 1,
            "runbook": t.runbook, "inputs": inputs,
        }),
    );
    server.hooks.registry.done(&d.delivery, &id);
    let unattended = triggers::phases(&t.unattended).unwrap_or_default();
    let plan = Plan {
        action: Action::Run,
        id,
        runbook: loaded,
        inputs,
        secrets: d.secrets,
        user: String::new(),
        team: String::new(),
        channel: channel.unwrap_or_default().to_string(),
        response_url: String::new(),
        drill: None,
        origin: Some(Origin {
            detection: d.detection,
            summary: d.summary,
            unattended,
            live: d.live,
            pool: server
                .hooks
                .batcher
                .clone()
                .map(|b| Arc::new(b) as Arc<dyn crate::engine::Pool>),
        }),
    };
    crate::logging::startup("hook: the incident is planned");
    spawn_incident(server, plan);
}

/// The incident another replica sharing the store started for this
/// delivery of this credential, if one did; else it is now `id`'s.
async fn taken_elsewhere(server: &Server, id: &str, d: &Detected) -> Option<String> {
    let (delivery, fingerprint) = (d.delivery.clone(), d.fingerprint.clone());
    let taken = move |store: &Store, id: &str| store.take_delivery(&delivery, &fingerprint, id);
    server.blocking(id, taken).await.unwrap_or(None)
}

/// The runbook and its inputs, checked as a command's would be.
fn admit(
    server: &Server,
    t: &Trigger,
    d: &Detected,
) -> Result<(crate::server::runbooks::Loaded, BTreeMap<String, String>), String> {
    let loaded = server.runbooks.load(&t.runbook)?;
    let inputs = inputs::resolve_inputs(&loaded.0, &d.vars, InputMode::Run)
        .map_err(|e| e.to_string().replace("--var ", ""))?;
    if let Some(missing) = loaded
        .0
        .secrets
        .iter()
        .find(|s| !d.secrets.iter().any(|g| g.name() == s.name))
    {
        return Err(format!(
            "`{}` needs secret `{}`, which the trigger does not give",
            t.runbook, missing.name
        ));
    }
    for s in &d.secrets {
        crate::secret::check_len(s.name(), s.expose()).map_err(|e| e.to_string())?;
    }
    Ok((loaded, inputs))
}

/// Adds `d` to incident `id` as a `detection` record: no second response.
async fn join(server: &Arc<Server>, id: &str, d: Detected, channel: Option<&str>) {
    let journal = server.settings.store.dir(id).join("journal.jsonl");
    let waited = tokio::time::timeout(JOIN_WAIT, async {
        while !journal.is_file() && server.shutdown.borrow().is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .ok()
    .filter(|()| journal.is_file());
    let redactor = Redactor::of(&d.secrets);
    let (templates, r, detection) = (
        server.settings.templates.clone(),
        redactor.clone(),
        d.detection.clone(),
    );
    let added = match waited {
        Some(()) => server
            .blocking(id, move |store, id| {
                tasks::detected(store, id, &detection, &r, &templates)
            })
            .await
            .unwrap_or_else(|e| Err(crate::app::Error::Runtime(e.to_string()))),
        None => Err(crate::app::Error::Runtime(format!(
            "`{id}` was not created within {}",
            crate::time::human(JOIN_WAIT)
        ))),
    };
    let ids = (d.detection.source.as_str(), d.delivery.as_str());
    match added {
        Ok(Answered::Queued) => crate::server::done::record_when_free(server, id, &redactor),
        Ok(Answered::Recorded) => {}
        Err(e) => {
            let why = e.to_string();
            return failed(server, ids, &d.secrets, channel, &d.summary, &why).await;
        }
    }
    server.hooks.record(
        &d.secrets,
        json!({
            "source": ids.0, "delivery": ids.1, "decision": "joined", "incident": id,
            "fingerprint": d.fingerprint, "trigger": d.trigger + 1,
        }),
    );
    server.hooks.registry.done(&d.delivery, id);
    let text = format!(
        "*{id}*: the same credential was {}. It joins this incident: nothing new starts.",
        d.detection.describe()
    );
    say(server, channel, &crate::mrkdwn::escape(&text)).await;
}

async fn from_aws(
    server: &Arc<Server>,
    exposed: aws::Exposed,
    trigger: usize,
    received: DateTime<Utc>,
) {
    let t = trigger_of(server, trigger);
    let channel = channel(server, t);
    let mut responded = false;
    for key in &exposed.keys {
        let d = aws_detected(&exposed, key, trigger, t, received);
        let claim = server
            .hooks
            .registry
            .claim(&d.fingerprint, Utc::now(), || new_id(server));
        responded |= match claim {
            Claim::Join(id) => {
                join(server, &id, d, channel.as_deref()).await;
                true
            }
            Claim::New(id) => aws_start(server, id, d, &exposed, key, channel.as_deref()).await,
        };
    }
    if !responded {
        server
            .hooks
            .registry
            .settled(&exposed.id, "no exposed key could be responded to");
    }
}

fn aws_detected(
    exposed: &aws::Exposed,
    key: &str,
    trigger: usize,
    t: &Trigger,
    received: DateTime<Utc>,
) -> Detected {
    Detected {
        delivery: exposed.id.clone(),
        trigger,
        fingerprint: format!("aws:{key}"),
        detection: Detection {
            source: "aws".into(),
            detector: format!("AWS Health ({})", aws::EVENT_TYPE),
            delivery: Some(exposed.id.clone()),
            url: exposed.arn.clone(),
            location: Some(format!("account {} ({})", exposed.account, exposed.region)),
            detected_at: exposed.time.unwrap_or(received),
            leaked_at: None,
            unattended: t.unattended.clone(),
        },
        summary: format!(
            "AWS Health {} for `{key}` in account {}",
            aws::EVENT_TYPE,
            exposed.account
        ),
        vars: Vec::new(),
        secrets: Vec::new(),
        live: None,
    }
}

/// Finds the key's IAM user and starts its incident; a key the engine's
/// credentials cannot manage is recorded and announced instead. Whether
/// it started.
async fn aws_start(
    server: &Arc<Server>,
    id: String,
    mut d: Detected,
    exposed: &aws::Exposed,
    key: &str,
    channel: Option<&str>,
) -> bool {
    let t = trigger_of(server, d.trigger);
    let config = &server.settings.config.providers.aws;
    let owner = async {
        match server.hooks.iam.account(config).await {
            Ok(own) if own != exposed.account => Err(format!(
                "the key is in account {}, and quench's AWS credentials are in account {own}",
                exposed.account
            )),
            Ok(_) => server.hooks.iam.owner(config, key).await,
            Err(e) => Err(e),
        }
    };
    let (owner, live) = tokio::join!(owner, live_for(server, t));
    d.live = live;
    let vars = owner.and_then(|user| {
        let vars = BTreeMap::from([
            ("access_key_id".to_string(), key.to_string()),
            ("account".to_string(), exposed.account.clone()),
            ("region".to_string(), exposed.region.clone()),
            ("iam_user".to_string(), user),
        ]);
        triggers::inputs(t, &vars)
    });
    match vars {
        Ok(vars) => {
            d.vars = vars;
            start(server, id, d, channel).await;
            true
        }
        Err(why) => {
            server.hooks.registry.release(&d.fingerprint, &id);
            server.running.lock().expect("running lock").remove(&id);
            server.hooks.record(
                &[],
                json!({
                    "source": "aws", "delivery": exposed.id, "decision": "unmanaged",
                    "key": key, "account": exposed.account, "reason": why,
                }),
            );
            let text = format!(
                ":rotating_light: AWS reports access key `{key}` exposed, in account {}: quench's credentials cannot manage it ({why}). Nothing was started: deactivate it in that account by hand.",
                exposed.account
            );
            say(server, channel, &text).await;
            false
        }
    }
}

async fn from_generic(
    server: &Arc<Server>,
    source: &str,
    delivery: String,
    body: &Value,
    trigger: usize,
    received: DateTime<Utc>,
) {
    let t = trigger_of(server, trigger);
    let channel = channel(server, t);
    let what = format!("a `{source}` detection");
    let read = triggers::from_body(&t.inputs, body)
        .and_then(|inputs| triggers::from_body(&t.secrets, body).map(|secrets| (inputs, secrets)));
    let (inputs, secrets) = match read {
        Ok(r) => r,
        Err(why) => {
            let ids = (source, delivery.as_str());
            return failed(server, ids, &[], channel.as_deref(), &what, &why).await;
        }
    };
    let vars: Vec<String> = inputs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    // The credential is its secrets when the trigger maps any, else the
    // inputs that name it.
    let named: Vec<&str> = if secrets.is_empty() {
        vars.iter().map(String::as_str).collect()
    } else {
        secrets.iter().map(|(_, v)| v.as_str()).collect()
    };
    let d = Detected {
        fingerprint: sha256_hex(&[&[source][..], &named].concat()),
        detection: Detection {
            source: source.to_string(),
            detector: source.to_string(),
            delivery: Some(delivery.clone()),
            url: None,
            location: None,
            detected_at: received,
            leaked_at: None,
            unattended: t.unattended.clone(),
        },
        delivery,
        trigger,
        summary: what,
        vars,
        secrets: secrets
            .into_iter()
            .map(|(k, v)| Secret::new(k, v))
            .collect(),
        live: None,
    };
    start_or_join(server, d, channel.as_deref()).await;
}
