//! The three endpoints. Each verifies the request before reading it,
//! matches it against `[[triggers]]`, records what it decided in
//! `hooks.jsonl` (on disk before the answer), and answers at once: what
//! takes longer (reading the alert, starting the incident) is handed to
//! `respond` and runs after the answer.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Value, json};

use super::registry::Delivery;
use super::respond::{self, Job};
use super::{aws, github, sign, triggers};
use crate::server::Server;

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A decision and the answer that states it.
struct Decided {
    status: StatusCode,
    job: Option<Job>,
}

fn decided(
    entry: &mut Value,
    status: StatusCode,
    decision: &str,
    reason: Option<String>,
) -> Decided {
    entry["decision"] = json!(decision);
    if let Some(r) = reason {
        entry["reason"] = json!(r);
    }
    Decided { status, job: None }
}

/// A request that does not prove it is the detector's: the answer says
/// nothing more.
fn forged(entry: &mut Value, why: sign::Refused) -> Decided {
    decided(
        entry,
        StatusCode::UNAUTHORIZED,
        "forged",
        Some(why.to_string()),
    )
}

/// A delivery seen before: a duplicate, unless its processing failed (then
/// `begin` took it again and this is not called).
fn duplicate(entry: &mut Value, before: Delivery) -> Decided {
    let reason = match &before {
        Delivery::Processing => "this delivery is being processed".to_string(),
        Delivery::Done(id) => {
            entry["incident"] = json!(id);
            format!("this delivery already started or joined {id}")
        }
        Delivery::Settled(why) => format!("this delivery was answered before: {why}"),
    };
    decided(entry, StatusCode::OK, "duplicate", Some(reason))
}

/// Records the decision, and answers once it is on disk; a job that was
/// accepted starts after that.
async fn answer(server: &Arc<Server>, entry: Value, d: Decided) -> Response {
    let hooks = &server.hooks;
    // A generic hook's source names the hook only if it is configured: an
    // unknown name is not a label of its own.
    let unknown = d.status == StatusCode::NOT_FOUND && entry["path"] == "/hooks/generic";
    let source = match entry["source"].as_str() {
        Some(s) if !unknown => s,
        _ => "unknown",
    };
    let decision = entry["decision"].as_str().unwrap_or_default();
    server.metrics.hook_request(source, decision);
    let body = json!({
        "status": entry["decision"], "incident": entry.get("incident"), "reason": entry.get("reason"),
    });
    hooks.record(&[], entry);
    hooks.log.synced().await;
    if let Some(job) = d.job {
        respond::spawn(server, job);
    }
    if d.status == StatusCode::UNAUTHORIZED {
        // Nothing else: a forger learns nothing from the answer.
        return d.status.into_response();
    }
    (d.status, axum::Json(body)).into_response()
}

/// `POST /hooks/github`: a `secret_scanning_alert` delivery.
pub async fn github(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut entry = json!({
        "path": "/hooks/github", "source": "github",
        "event": header(&headers, "x-github-event"),
        "delivery": header(&headers, "x-github-delivery"),
    });
    let d = decide_github(&server, &headers, &body, &mut entry);
    answer(&server, entry, d).await
}

fn decide_github(server: &Server, headers: &HeaderMap, body: &[u8], entry: &mut Value) -> Decided {
    let hooks = &server.hooks;
    let Some(secret) = &hooks.settings.github else {
        let why = "no `[hooks.github]` in quench.toml".to_string();
        return decided(entry, StatusCode::NOT_FOUND, "refused", Some(why));
    };
    let signature = header(headers, "x-hub-signature-256");
    if let Err(why) = sign::github(secret, signature.as_deref(), body) {
        return forged(entry, why);
    }
    let event = header(headers, "x-github-event").unwrap_or_default();
    if event == "ping" {
        return decided(entry, StatusCode::OK, "pong", None);
    }
    if event != "secret_scanning_alert" {
        let why = format!("`{event}` events start nothing");
        return decided(entry, StatusCode::ACCEPTED, "ignored", Some(why));
    }
    let alert = serde_json::from_slice::<Value>(body)
        .map_err(|_| "the body is not JSON".to_string())
        .and_then(|v| github::Alert::from_payload(&v));
    let alert = match alert {
        Ok(a) => a,
        Err(why) => return decided(entry, StatusCode::BAD_REQUEST, "refused", Some(why)),
    };
    entry["action"] = json!(alert.action);
    entry["repository"] = json!(alert.repository);
    entry["alert"] = json!(alert.number);
    entry["secret_type"] = json!(alert.secret_type);
    if !matches!(alert.action.as_str(), "created" | "reopened") {
        let why = format!("`{}` alerts start nothing", alert.action);
        return decided(entry, StatusCode::ACCEPTED, "ignored", Some(why));
    }
    let triggers = &server.settings.config.triggers;
    let kind = Some(alert.secret_type.as_str());
    let Some((i, _)) = triggers::matching(triggers, "github", kind, Some(&alert.repository)) else {
        let why = "no trigger matches".to_string();
        return decided(entry, StatusCode::ACCEPTED, "ignored", Some(why));
    };
    entry["trigger"] = json!(i + 1);
    let Some(delivery) = header(headers, "x-github-delivery") else {
        let why = "no `X-GitHub-Delivery`".to_string();
        return decided(entry, StatusCode::BAD_REQUEST, "refused", Some(why));
    };
    if let Err(before) = hooks.registry.begin(&delivery) {
        return duplicate(entry, before);
    }
    let received = Utc::now();
    // A reopened alert was created long ago: it is detected again now.
    let detected_at = match alert.action.as_str() {
        "reopened" => received,
        _ => alert.created_at.unwrap_or(received),
    };
    let mut d = decided(entry, StatusCode::ACCEPTED, "accepted", None);
    d.job = Some(Job::Github {
        delivery,
        alert,
        trigger: i,
        detected_at,
    });
    d
}

/// `POST /hooks/aws`: an AWS Health event from an EventBridge API
/// destination.
pub async fn aws(State(server): State<Arc<Server>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut entry = json!({"path": "/hooks/aws", "source": "aws"});
    let d = decide_aws(&server, &headers, &body, &mut entry);
    answer(&server, entry, d).await
}

fn decide_aws(server: &Server, headers: &HeaderMap, body: &[u8], entry: &mut Value) -> Decided {
    let hooks = &server.hooks;
    let Some((name, key)) = &hooks.settings.aws else {
        let why = "no `[hooks.aws]` in quench.toml".to_string();
        return decided(entry, StatusCode::NOT_FOUND, "refused", Some(why));
    };
    if let Err(why) = sign::api_key(key, header(headers, name).as_deref()) {
        return forged(entry, why);
    }
    let Ok(event) = serde_json::from_slice::<Value>(body) else {
        let why = "the body is not JSON".to_string();
        return decided(entry, StatusCode::BAD_REQUEST, "refused", Some(why));
    };
    entry["delivery"] = event.get("id").cloned().unwrap_or(Value::Null);
    let exposed = match aws::Exposed::from_event(&event) {
        Ok(e) => e,
        Err(why) => return decided(entry, StatusCode::ACCEPTED, "ignored", Some(why)),
    };
    entry["account"] = json!(exposed.account);
    entry["region"] = json!(exposed.region);
    entry["keys"] = json!(exposed.keys);
    let triggers = &server.settings.config.triggers;
    let Some((i, _)) = triggers::matching(triggers, "aws", None, None) else {
        let why = "no trigger matches".to_string();
        return decided(entry, StatusCode::ACCEPTED, "ignored", Some(why));
    };
    entry["trigger"] = json!(i + 1);
    if exposed.id.is_empty() {
        let why = "the event has no `id`".to_string();
        return decided(entry, StatusCode::BAD_REQUEST, "refused", Some(why));
    }
    if let Err(before) = hooks.registry.begin(&exposed.id) {
        return duplicate(entry, before);
    }
    let mut d = decided(entry, StatusCode::ACCEPTED, "accepted", None);
    d.job = Some(Job::Aws {
        exposed,
        trigger: i,
        received: Utc::now(),
    });
    d
}

/// `POST /hooks/generic/{name}`: JSON signed over `{timestamp}.{body}`.
pub async fn generic(
    State(server): State<Arc<Server>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let source = format!("generic:{name}");
    let mut entry = json!({
        "path": "/hooks/generic", "source": source,
        "delivery": header(&headers, "x-quench-delivery"),
    });
    let d = decide_generic(&server, &name, &headers, &body, &mut entry);
    answer(&server, entry, d).await
}

fn decide_generic(
    server: &Server,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
    entry: &mut Value,
) -> Decided {
    let hooks = &server.hooks;
    let Some(secret) = hooks.settings.generic.get(name) else {
        let why = format!("no `[hooks.generic.{name}]` in quench.toml");
        return decided(entry, StatusCode::NOT_FOUND, "refused", Some(why));
    };
    let (ts, sig) = (
        header(headers, "x-quench-timestamp"),
        header(headers, "x-quench-signature"),
    );
    let now = (server.settings.now)();
    let checked = sign::generic(secret, ts.as_deref(), sig.as_deref(), body, now).and_then(|()| {
        let (ts, sig) = (
            ts.as_deref().unwrap_or_default(),
            sig.as_deref().unwrap_or_default(),
        );
        let first = hooks.replays.first_time(ts, sig, now);
        first.then_some(()).ok_or(sign::Refused::Replayed)
    });
    if let Err(why) = checked {
        return forged(entry, why);
    }
    let Ok(payload) = serde_json::from_slice::<Value>(body) else {
        let why = "the body is not JSON".to_string();
        return decided(entry, StatusCode::BAD_REQUEST, "refused", Some(why));
    };
    let source = format!("generic:{name}");
    let triggers = &server.settings.config.triggers;
    let Some((i, _)) = triggers::matching(triggers, &source, None, None) else {
        let why = "no trigger matches".to_string();
        return decided(entry, StatusCode::ACCEPTED, "ignored", Some(why));
    };
    entry["trigger"] = json!(i + 1);
    // Without a delivery id of its own, the signature names the request.
    let delivery = header(headers, "x-quench-delivery").unwrap_or_else(|| sig.unwrap_or_default());
    if let Err(before) = hooks.registry.begin(&delivery) {
        return duplicate(entry, before);
    }
    let mut d = decided(entry, StatusCode::ACCEPTED, "accepted", None);
    d.job = Some(Job::Generic {
        source,
        delivery,
        body: payload,
        trigger: i,
        received: Utc::now(),
    });
    d
}
