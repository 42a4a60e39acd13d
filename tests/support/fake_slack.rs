//! A local server that answers like Slack's Web API for the methods quench
//! calls: `POST /api/METHOD` with a JSON body (token in `Authorization`) or
//! a form body (token in the header or a `token` field), Slack's envelope
//! (`{"ok": true, ...}` or HTTP 200 with `{"ok": false, "error": "code"}`),
//! the documented error codes, and HTTP 429 with `Retry-After` when told to.
//! `auth.test` answers as whom a token acts, until that token is revoked.
//! It also takes the posts quench makes to a command's `response_url`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// The bot token `SLACK_BOT_TOKEN` gives quench.
pub const BOT_TOKEN: &str = "xoxb-1111111111-2222222222-BotTokenOfQuench0000";
/// The incident channel, and the name it answers to.
pub const CHANNEL: &str = "C0SECINC01";
pub const CHANNEL_NAME: &str = "sec-incidents";
pub const USERS: &[&str] = &["U0ALLOWED1", "U0APPROVE1", "U0OTHER001"];

#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub token: Option<String>,
    pub content_type: String,
    /// The body's fields, whichever encoding it came in.
    pub args: Value,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub channel: String,
    pub ts: String,
    pub text: String,
    pub blocks: Value,
    pub thread_ts: Option<String>,
    pub updates: usize,
}

type Scripted = (u16, Vec<(String, String)>, String);

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    script: HashMap<String, Vec<Scripted>>,
    /// Tokens that exist and may revoke themselves.
    tokens: Vec<String>,
    revoked: Vec<String>,
    /// `auth.test` answers that still accept a revoked token: revocation
    /// taking its time to reach every server.
    lag: usize,
    messages: Vec<Message>,
    channels: BTreeMap<String, (String, Vec<String>)>,
    responses: Vec<(String, Value)>,
    next_ts: u64,
}

#[derive(Clone)]
pub struct FakeSlack {
    inner: Arc<Mutex<Inner>>,
    /// While true, posts to `response_url`s are recorded but not answered.
    held: Arc<tokio::sync::watch::Sender<bool>>,
    pub addr: Option<SocketAddr>,
}

impl FakeSlack {
    /// Starts on a free loopback port; `leaked` tokens are valid until revoked.
    pub fn start(leaked: &[&str]) -> FakeSlack {
        let mut inner = Inner {
            next_ts: 1_795_000_000,
            ..Inner::default()
        };
        inner.tokens.push(BOT_TOKEN.into());
        inner.tokens.extend(leaked.iter().map(|t| t.to_string()));
        inner
            .channels
            .insert(CHANNEL.into(), (CHANNEL_NAME.into(), vec!["UBOT".into()]));
        let mut slack = FakeSlack {
            inner: Arc::new(Mutex::new(inner)),
            held: Arc::new(tokio::sync::watch::Sender::new(false)),
            addr: None,
        };
        let state = slack.clone();
        let app = Router::new()
            .route("/api/{method}", post(api))
            .route("/response/{id}", post(response_url))
            .with_state(state);
        slack.addr = Some(super::serve_on_loopback(app));
        slack
    }

    /// What `SLACK_API_URL` is set to.
    pub fn api_url(&self) -> String {
        format!("http://{}/api/", self.addr.unwrap())
    }

    pub fn response_url(&self, id: &str) -> String {
        format!("http://{}/response/{id}", self.addr.unwrap())
    }

    /// The next answer to `method`, before it behaves normally.
    pub fn answer(&self, method: &str, status: u16, headers: &[(&str, &str)], body: &str) {
        self.inner
            .lock()
            .unwrap()
            .script
            .entry(method.to_string())
            .or_default()
            .push((
                status,
                headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                body.to_string(),
            ));
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    pub fn calls_to(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    pub fn revoked(&self) -> Vec<String> {
        self.inner.lock().unwrap().revoked.clone()
    }

    /// The next `answers` of `auth.test` still accept a revoked token.
    pub fn revocation_lag(&self, answers: usize) {
        self.inner.lock().unwrap().lag = answers;
    }

    pub fn messages(&self) -> Vec<Message> {
        self.inner.lock().unwrap().messages.clone()
    }

    /// Bodies posted to `response_url`s, by id.
    pub fn responses(&self) -> Vec<(String, Value)> {
        self.inner.lock().unwrap().responses.clone()
    }

    /// Posts to `response_url`s are recorded when they arrive, and answered
    /// only once [`FakeSlack::answer_responses`] is called.
    pub fn hold_responses(&self) {
        self.held.send_replace(true);
    }

    pub fn answer_responses(&self) {
        self.held.send_replace(false);
    }
}

fn envelope(value: Value) -> Response {
    let mut resp = axum::Json(value).into_response();
    resp.headers_mut().insert(
        "content-type",
        "application/json; charset=utf-8".parse().unwrap(),
    );
    resp
}

fn error(code: &str) -> Response {
    envelope(json!({"ok": false, "error": code}))
}

async fn response_url(
    State(slack): State<FakeSlack>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    slack.inner.lock().unwrap().responses.push((id, value));
    let _ = slack.held.subscribe().wait_for(|held| !held).await;
    (StatusCode::OK, "ok").into_response()
}

async fn api(
    State(slack): State<FakeSlack>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let args: Value = if content_type.starts_with("application/json") {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return error("invalid_json"),
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        Value::Object(
            form_urlencoded::parse(&body)
                .into_owned()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )
    } else if body.is_empty() {
        json!({})
    } else {
        return error("invalid_form_data");
    };
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
        .or_else(|| args["token"].as_str().map(str::to_string));
    let mut inner = slack.inner.lock().unwrap();
    inner.calls.push(Call {
        method: method.clone(),
        token: token.clone(),
        content_type,
        args: args.clone(),
    });
    if let Some((status, hdrs, text)) = inner
        .script
        .get_mut(&method)
        .and_then(|q| (!q.is_empty()).then(|| q.remove(0)))
    {
        let mut resp = (StatusCode::from_u16(status).unwrap(), text).into_response();
        resp.headers_mut().insert(
            "content-type",
            "application/json; charset=utf-8".parse().unwrap(),
        );
        for (k, v) in hdrs {
            resp.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        return resp;
    }
    let Some(token) = token else {
        return error("not_authed");
    };
    if inner.revoked.contains(&token) {
        if method != "auth.test" || inner.lag == 0 {
            return error("token_revoked");
        }
        inner.lag -= 1;
    }
    if !inner.tokens.contains(&token) {
        return error("invalid_auth");
    }
    let is_bot = token == BOT_TOKEN;
    match method.as_str() {
        // Any token may ask whom it acts as: it needs no scope.
        "auth.test" => {
            let (user, user_id) = if is_bot {
                ("quench", "U0QUENCHBT")
            } else {
                ("ci-bot", "U0CIBOT001")
            };
            let mut answer = json!({
                "ok": true, "url": "https://acme.slack.com/", "team": "Acme",
                "user": user, "team_id": "T0ACME0001", "user_id": user_id,
                "is_enterprise_install": false
            });
            if is_bot {
                answer["bot_id"] = json!("B0QUENCH");
            }
            envelope(answer)
        }
        "auth.revoke" => {
            if args["test"] == json!(true) || args["test"] == "1" || args["test"] == "true" {
                return envelope(json!({"ok": true, "revoked": false}));
            }
            inner.revoked.push(token);
            envelope(json!({"ok": true, "revoked": true}))
        }
        _ if !is_bot => error("missing_scope"),
        "chat.postMessage" => {
            let Some(channel) = channel_id(&inner, &args["channel"]) else {
                return error("channel_not_found");
            };
            let text = args["text"].as_str().unwrap_or_default().to_string();
            let blocks = parse_blocks(&args["blocks"]);
            if text.is_empty() && blocks.is_null() {
                return error("no_text");
            }
            if text.chars().count() > 40_000 {
                return error("msg_too_long");
            }
            let thread_ts = args["thread_ts"].as_str().map(str::to_string);
            if let Some(t) = &thread_ts
                && !inner
                    .messages
                    .iter()
                    .any(|m| &m.ts == t && m.channel == channel)
            {
                return error("thread_not_found");
            }
            inner.next_ts += 1;
            let ts = format!("{}.{:06}", inner.next_ts, 100);
            inner.messages.push(Message {
                channel: channel.clone(),
                ts: ts.clone(),
                text: text.clone(),
                blocks: blocks.clone(),
                thread_ts,
                updates: 0,
            });
            envelope(json!({
                "ok": true, "channel": channel, "ts": ts,
                "message": {"type": "message", "subtype": "bot_message", "text": text, "ts": ts, "bot_id": "B0QUENCH", "blocks": blocks}
            }))
        }
        "chat.update" => {
            let channel = args["channel"].as_str().unwrap_or_default().to_string();
            if !inner.channels.contains_key(&channel) {
                return error("channel_not_found");
            }
            let ts = args["ts"].as_str().unwrap_or_default().to_string();
            let text = args["text"].as_str().map(str::to_string);
            let blocks = parse_blocks(&args["blocks"]);
            let Some(m) = inner
                .messages
                .iter_mut()
                .find(|m| m.channel == channel && m.ts == ts)
            else {
                return error("message_not_found");
            };
            if let Some(t) = text {
                m.text = t;
            }
            if !blocks.is_null() {
                m.blocks = blocks;
            }
            m.updates += 1;
            let text = m.text.clone();
            envelope(
                json!({"ok": true, "channel": channel, "ts": ts, "text": text, "message": {"text": text}}),
            )
        }
        "conversations.create" => {
            let name = args["name"].as_str().unwrap_or_default().to_string();
            let valid = !name.is_empty()
                && name.len() <= 80
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !valid {
                return error("invalid_name_specials");
            }
            if inner.channels.values().any(|(n, _)| *n == name) {
                return error("name_taken");
            }
            let id = format!("C{:09}", inner.channels.len() + 1);
            inner
                .channels
                .insert(id.clone(), (name.clone(), vec!["UBOT".into()]));
            envelope(json!({"ok": true, "channel": {
                "id": id, "name": name, "is_channel": true, "is_private": args["is_private"] == json!(true),
                "created": 1_795_000_000, "creator": "UBOT", "is_member": true
            }}))
        }
        "conversations.invite" => {
            let channel = args["channel"].as_str().unwrap_or_default().to_string();
            let Some(users) = args["users"].as_str() else {
                return error("invalid_arguments");
            };
            let users: Vec<String> = users.split(',').map(|u| u.trim().to_string()).collect();
            if users.iter().any(|u| !USERS.contains(&u.as_str())) {
                return error("user_not_found");
            }
            let Some((name, members)) = inner.channels.get_mut(&channel) else {
                return error("channel_not_found");
            };
            let new: Vec<String> = users.into_iter().filter(|u| !members.contains(u)).collect();
            if new.is_empty() {
                return error("already_in_channel");
            }
            members.extend(new);
            let name = name.clone();
            envelope(
                json!({"ok": true, "channel": {"id": channel, "name": name, "created": 1_795_000_000}}),
            )
        }
        _ => error("unknown_method"),
    }
}

/// `#name`, `name` or an id, as Slack resolves a channel argument.
fn channel_id(inner: &Inner, arg: &Value) -> Option<String> {
    let arg = arg.as_str()?;
    let name = arg.trim_start_matches('#');
    if inner.channels.contains_key(arg) {
        return Some(arg.to_string());
    }
    inner
        .channels
        .iter()
        .find(|(_, (n, _))| n == name)
        .map(|(id, _)| id.clone())
}

/// Blocks arrive as JSON, or as a JSON string in a form body.
fn parse_blocks(v: &Value) -> Value {
    match v {
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
        other => other.clone(),
    }
}
