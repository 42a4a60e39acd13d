//! A local internal-API server for `http.request` tests: the key service the
//! shipped `api-key-compromise` runbook drives. It records every request and
//! can be told to fail.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

pub const NEW_SECRET: &str = "nk_live_5f1d0c9b8a7e6d5c4b3a2910";
/// The secret of `key-0001`, the leaked key: it works until that key is revoked.
pub const LEAKED_KEY: &str = "lk_live_0a1b2c3d4e5f60718293a4b5";

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// A scripted answer: status, headers, body.
type Answer = (u16, Vec<(String, String)>, String);

#[derive(Default)]
struct Inner {
    seen: Vec<Seen>,
    /// Answers to give, by path, before behaving normally.
    script: HashMap<String, Vec<Answer>>,
    latency: Duration,
    /// Ids of the keys revoked.
    revoked: Vec<String>,
}

#[derive(Clone, Default)]
pub struct FakeApi {
    inner: Arc<Mutex<Inner>>,
    pub addr: Option<SocketAddr>,
}

impl FakeApi {
    /// Starts on a free loopback port, on its own thread and runtime.
    pub fn start() -> FakeApi {
        let mut api = FakeApi::default();
        let state = api.clone();
        let app = Router::new()
            .route("/{*path}", any(handle))
            .with_state(state);
        api.addr = Some(super::serve_on_loopback(app));
        api
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr.unwrap())
    }

    /// The next answers for `path`, before it behaves normally.
    pub fn answer(&self, path: &str, status: u16, headers: &[(&str, &str)], body: &str) {
        let mut inner = self.inner.lock().unwrap();
        inner.script.entry(path.to_string()).or_default().push((
            status,
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body.to_string(),
        ));
    }

    /// How long every answer takes from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.inner.lock().unwrap().latency = latency;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().seen.clone()
    }
}

async fn handle(
    State(api): State<FakeApi>,
    method: Method,
    uri: Uri,
    Path(_p): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let body = String::from_utf8_lossy(&body).into_owned();
    let (scripted, latency) = {
        let mut inner = api.inner.lock().unwrap();
        inner.seen.push(Seen {
            method: method.to_string(),
            path: path.clone(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                .collect(),
            body: body.clone(),
        });
        let scripted = inner
            .script
            .get_mut(&path)
            .and_then(|q| (!q.is_empty()).then(|| q.remove(0)));
        (scripted, inner.latency)
    };
    tokio::time::sleep(latency).await;
    if let Some((status, hdrs, text)) = scripted {
        let mut resp = (
            StatusCode::from_u16(status).unwrap(),
            text.replace("{request_body}", &body).replace(
                "{authorization}",
                headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default(),
            ),
        )
            .into_response();
        for (k, v) in hdrs {
            resp.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        return resp;
    }
    let json = |status: StatusCode, v: serde_json::Value| (status, axum::Json(v)).into_response();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["keys", id, "revoke"]) => {
            api.inner.lock().unwrap().revoked.push(id.to_string());
            json(StatusCode::OK, serde_json::json!({"revoked": true}))
        }
        ("POST", ["keys"]) => json(
            StatusCode::CREATED,
            serde_json::json!({"id": "key-0002", "secret": NEW_SECRET}),
        ),
        ("GET", ["keys", _id, "events"]) => json(
            StatusCode::OK,
            serde_json::json!({"count": 3, "first_seen": "2026-11-20T10:00:00Z", "last_seen": "2026-11-22T23:05:00Z", "source_ips": ["203.0.113.7"]}),
        ),
        ("PUT", ["config", "credential"]) => {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if v["secret"] == NEW_SECRET {
                json(StatusCode::OK, serde_json::json!({}))
            } else {
                json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": "missing secret"}),
                )
            }
        }
        // A redeploy hook: the key's consumers restart and read it again.
        ("POST", ["redeploy"]) => json(
            StatusCode::ACCEPTED,
            serde_json::json!({"redeploying": true}),
        ),
        // Takes its time: for tests that act while a step is in flight.
        ("GET", ["slow"]) => {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            json(StatusCode::OK, serde_json::json!({}))
        }
        ("GET", ["slow", ms]) => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(1500))).await;
            json(StatusCode::OK, serde_json::json!({}))
        }
        ("GET", ["whoami"]) => {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let leaked_works = !api
                .inner
                .lock()
                .unwrap()
                .revoked
                .iter()
                .any(|k| k == "key-0001");
            if auth == format!("Bearer {NEW_SECRET}") {
                json(StatusCode::OK, serde_json::json!({"key_id": "key-0002"}))
            } else if auth == format!("Bearer {LEAKED_KEY}") && leaked_works {
                json(StatusCode::OK, serde_json::json!({"key_id": "key-0001"}))
            } else {
                json(
                    StatusCode::UNAUTHORIZED,
                    serde_json::json!({"error": "bad key"}),
                )
            }
        }
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "no such route"}),
        ),
    }
}
