//! `quench serve`: Slack's slash command and button clicks over HTTP.
//!
//! Every request is verified (`verify`) before anything is read from it,
//! then authorized against `[[chatops.allow]]` (`authz`), and every decision
//! is appended to the audit log `chatops` (`audit`) before the
//! answer that states it. A command is acknowledged at once, from runbooks
//! parsed once (`runbooks`); the incident it starts is created after the
//! answer, runs on a runtime of its own (`incident_runtime`), keeps one
//! status message up to date (`status`) and asks for approvals with
//! buttons (`humans`).

pub mod audit;
pub mod commands;
mod done;
mod drill;
pub mod hooks;
pub mod humans;
mod listen;
pub mod metrics;
pub mod runbooks;
mod start;
pub mod status;
mod takeover;
pub mod verify;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use crate::app::authz;
use crate::config::Config;
use crate::engine::{Brief, Executor, Humans, Start};
use crate::incident::{self, Execution};
use crate::journal::{self, Actor};
use crate::providers::Live;
use crate::providers::slack::{self, APPROVALS, Decision, Slack};
use crate::secret::{Redactor, Secret};
use crate::store::Store;
use authz::Action;
use commands::{Found, Parsed};

/// The audit log's format version.
pub const AUDIT_VERSION: u32 = 1;

/// What `quench serve` needs.
pub struct Settings {
    pub config: Config,
    /// What incident documents are rendered with.
    pub templates: std::sync::Arc<crate::document::Templates>,
    pub store: Store,
    pub runbooks: PathBuf,
    pub signing_secret: Secret,
    /// The bot's client: status messages, approvals.
    pub slack: Slack,
    /// Unix seconds; injected so request ages are testable.
    pub now: fn() -> i64,
    /// Where incidents run: not on the threads that answer Slack, so a
    /// burst of incidents never delays an acknowledgement
    /// ([`incident_runtime`]).
    pub incidents: tokio::runtime::Handle,
    /// The detectors' endpoints (`/hooks/…`), as `quench.toml` sets them.
    pub hooks: hooks::HookSettings,
}

pub fn unix_now() -> i64 {
    Utc::now().timestamp()
}

struct Server {
    settings: Settings,
    audit: audit::AuditLog,
    runbooks: runbooks::Runbooks,
    incidents: Mutex<JoinSet<()>>,
    /// Incidents running in this process: their journals are open here.
    running: Mutex<HashSet<String>>,
    /// One `done` at a time appends to a finished incident's journal.
    appending: tokio::sync::Mutex<()>,
    http: crate::providers::http::Clients,
    shutdown: watch::Receiver<Option<String>>,
    metrics: Arc<metrics::Metrics>,
    /// Signed requests already taken, so none is taken twice.
    replays: verify::Replays,
    hooks: hooks::Hooks,
}

/// Serves until `shutdown` turns true, then stops taking requests and waits
/// for the incidents it started: they see the same signal, start nothing
/// new, and end `interrupted` with a consistent journal.
pub async fn run(
    listener: TcpListener,
    mut settings: Settings,
    shutdown: watch::Receiver<Option<String>>,
) -> std::io::Result<()> {
    crate::private::create_dir_all(settings.store.root())?;
    let audit = audit::Sink::open(&settings.store, "chatops")?;
    APPROVALS.serve();
    let http = crate::providers::http::Clients::default();
    let hook_settings = std::mem::take(&mut settings.hooks);
    let hooks = hooks::Hooks::start(hook_settings, &settings.store, &http)?;
    let server = Arc::new(Server {
        runbooks: runbooks::Runbooks::new(settings.runbooks.clone()),
        settings,
        hooks,
        audit: audit::AuditLog::start(audit)?,
        incidents: Mutex::new(JoinSet::new()),
        running: Mutex::new(HashSet::new()),
        appending: tokio::sync::Mutex::new(()),
        http,
        shutdown: shutdown.clone(),
        metrics: Arc::new(metrics::Metrics::default()),
        replays: verify::Replays::default(),
    });
    let app = Router::new()
        .route("/slack/commands", post(command))
        .route("/slack/interactions", post(interaction))
        .route("/hooks/github", post(hooks::github_hook))
        .route("/hooks/aws", post(hooks::aws_hook))
        .route("/hooks/generic/{name}", post(hooks::generic_hook))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics_text))
        .with_state(server.clone());
    let watcher = tokio::spawn(takeover::watch(server.clone()));
    listen::serve(listener, app, shutdown.clone()).await?;
    // It takes nothing more over once shutdown is signalled.
    let _ = watcher.await;
    let mut incidents = std::mem::take(&mut *server.incidents.lock().expect("incidents lock"));
    while incidents.join_next().await.is_some() {}
    Ok(())
}

/// The runtime incidents run on: threads of their own. On the runtime that
/// answers Slack, a burst of incidents (each creating its directory and
/// journal, syncing it, running its steps) would be queued between the
/// requests still waiting for an answer.
pub fn incident_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("quench-incident")
        .enable_all()
        .build()
}

impl Server {
    /// Queues one decision for the audit log, redacted. The answer that
    /// states it waits for [`Server::audited`].
    fn audit(&self, redactor: &Redactor, mut entry: Value) {
        let decision = entry["decision"].as_str().unwrap_or_default();
        let action = entry["action"].as_str().unwrap_or_default();
        // A command answered at once is counted by what it asked.
        let outcome = match (decision, action) {
            _ if entry["forged"] == json!(true) => "forged",
            ("denied", _) => "denied",
            (_, "help") => "help",
            (_, "list") => "list",
            (_, "unknown") => "unknown",
            ("allowed", _) => "accepted",
            _ => "refused",
        };
        self.metrics.slack_request(outcome);
        entry["v"] = json!(AUDIT_VERSION);
        entry["ts"] = json!(journal::format_ts(&Utc::now()));
        redactor.redact_value(&mut entry);
        self.audit.append(entry.to_string());
    }

    /// Audits `entry` as `decision`, with its `reason` when there is one.
    fn audit_as(
        &self,
        redactor: &Redactor,
        mut entry: Value,
        decision: &str,
        reason: Option<&str>,
    ) {
        entry["decision"] = json!(decision);
        if let Some(reason) = reason {
            entry["reason"] = json!(reason);
        }
        self.audit(redactor, entry);
    }

    /// What the `[[chatops.allow]]` rules say to `req` asking to do
    /// `action` to `runbook`.
    fn decide(&self, req: &Request, action: Action, runbook: Option<&str>) -> authz::Decision {
        let (user, channel) = (req.user.as_str(), req.channel.as_str());
        let asked = authz::Request {
            action,
            user,
            channel,
            runbook,
        };
        authz::decide(&self.settings.config.chatops.allow, asked)
    }

    /// Runs `f` with the store and incident `id` on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        id: &str,
        f: impl FnOnce(&Store, &str) -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        let (store, id) = (self.settings.store.clone(), id.to_string());
        tokio::task::spawn_blocking(move || f(&store, &id)).await
    }

    /// Once every decision queued so far is on disk.
    async fn audited(&self) {
        self.audit.synced().await;
    }

    fn verified(&self, headers: &HeaderMap, body: &[u8], path: &str) -> bool {
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let (ts, sig) = (
            header("x-slack-request-timestamp"),
            header("x-slack-signature"),
        );
        let (secret, now) = (&self.settings.signing_secret, (self.settings.now)());
        let checked = verify::verify(secret, ts, sig, body, now).and_then(|()| {
            let (ts, sig) = (ts.unwrap_or_default(), sig.unwrap_or_default());
            // This replica's memory first; then every replica's, through a
            // shared store.
            let first = self.replays.first_time(ts, sig, now)
                && self.settings.store.first_time(&format!("slack:{ts}:{sig}"));
            first.then_some(()).ok_or(verify::Refused::Replayed)
        });
        let Err(why) = checked else {
            return true;
        };
        self.audit(
            &Redactor::new(),
            json!({"path": path, "decision": "refused", "forged": true, "reason": why.to_string()}),
        );
        false
    }

    /// Posts an ephemeral note to a request's `response_url`, once the
    /// decisions it may state are on disk.
    async fn respond_later(&self, response_url: &str, text: &str) {
        if response_url.is_empty() {
            return;
        }
        self.audited().await;
        let body = json!({"response_type": "ephemeral", "replace_original": false, "text": text});
        if let Ok(http) = self.http.for_url(response_url) {
            let send = http.post(response_url).json(&body).send();
            let _ = tokio::time::timeout(Duration::from_secs(30), send).await;
        }
    }
}

/// `GET /metrics`: Prometheus' text format.
async fn metrics_text(State(server): State<Arc<Server>>) -> Response {
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        server.metrics.render(),
    )
        .into_response()
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn reply(ephemeral: bool, text: String) -> Response {
    let kind = if ephemeral { "ephemeral" } else { "in_channel" };
    axum::Json(json!({"response_type": kind, "text": text})).into_response()
}

/// A slash command: `POST /slack/commands`, form-encoded.
///
/// Slack waits three seconds for the answer, so only what decides it runs
/// first: the signature, the rules, the runbook (cached, see `runbooks`)
/// and its inputs, and the audit line, on disk before the answer leaves.
/// An incident that was started is handed to the incident runtime only
/// then, and creates its directory and journal there, after the answer.
async fn command(State(server): State<Arc<Server>>, headers: HeaderMap, body: Bytes) -> Response {
    let began = std::time::Instant::now();
    let (response, plan) = answer(&server, &headers, &body).await;
    server.audited().await;
    if let Some(plan) = plan {
        spawn_incident(&server, plan);
    }
    tracing::debug!(
        took_us = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX),
        status = response.status().as_u16(),
        "slash command answered"
    );
    response
}

/// The answer to a slash command, and the incident it starts, if any.
async fn answer(
    server: &Arc<Server>,
    headers: &HeaderMap,
    body: &[u8],
) -> (Response, Option<Plan>) {
    if !server.verified(headers, body, "/slack/commands") {
        return (StatusCode::UNAUTHORIZED.into_response(), None);
    }
    let f = form(body);
    let field = |k: &str| f.get(k).cloned().unwrap_or_default();
    let req = Request {
        user: field("user_id"),
        channel: field("channel_id"),
        team: field("team_id"),
        command: f
            .get("command")
            .cloned()
            .unwrap_or_else(|| "/quench".into()),
        response_url: field("response_url"),
        text: field("text"),
    };
    let found = commands::secrets_in(&req.text);
    let pasted = found.iter().enumerate();
    let redactor = Redactor::of(
        pasted.map(|(i, f)| Secret::new(format!("pasted_{}", i + 1), f.value.clone())),
    );
    let mut plan = None;
    let (ephemeral, text) = match commands::parse(&req.text) {
        Parsed::Help => {
            server.audit_as(&redactor, answered(&req, "help"), "allowed", None);
            (true, commands::help(&req.command))
        }
        Parsed::List => (true, list(server, &req, &redactor)),
        Parsed::Unknown(why) => {
            let why = format!("{why}: `{} help` says what quench takes", req.command);
            server.audit_as(&redactor, answered(&req, "unknown"), "refused", Some(&why));
            (true, why)
        }
        Parsed::Start {
            action,
            runbook,
            pairs,
            pace,
        } => match start::start(
            server, &req, &redactor, &found, action, &runbook, pairs, pace,
        ) {
            Ok((ephemeral, text, started)) => {
                plan = Some(started);
                (ephemeral, text)
            }
            Err(why) => (true, why),
        },
        Parsed::Done {
            incident,
            step,
            answer,
        } => done::done(server, &req, &redactor, &incident, &step, &answer).await,
        Parsed::Inject { incident, name } => {
            drill::inject(server, &req, &redactor, &incident, &name).await
        }
    };
    if found.is_empty() {
        return (reply(ephemeral, text), plan);
    }
    // Never `in_channel`: Slack would show the command, secret and all, to
    // the whole channel.
    let text = format!("{}\n\n{}", leak_notice(&found), redactor.redact(&text));
    (reply(true, text), plan)
}

struct Request {
    user: String,
    channel: String,
    team: String,
    command: String,
    response_url: String,
    text: String,
}

fn leak_notice(found: &[Found]) -> String {
    let kinds: Vec<String> = found
        .iter()
        .map(|f| {
            format!(
                "a {} ({})",
                f.kind,
                crate::secret::marker("pasted", &f.value)
            )
        })
        .collect();
    format!(
        ":warning: Your command held what looks like {}. It was not echoed and is redacted \
         in everything quench writes, but Slack has it now: treat it as leaked and revoke it.",
        kinds.join(" and ")
    )
}

/// The audit entry of a command answered at once. Only its first word is
/// kept: the rest could be anything a user pasted, a secret too.
fn answered(req: &Request, action: &str) -> Value {
    let word = req.text.split_whitespace().next().unwrap_or_default();
    json!({
        "path": "/slack/commands", "user": req.user, "channel": req.channel,
        "text": word, "action": action,
    })
}

/// `list`: the runbooks, for a user some rule names in this channel.
fn list(server: &Server, req: &Request, redactor: &Redactor) -> String {
    let rules = &server.settings.config.chatops.allow;
    let Some(rule) = authz::any_rule(rules, &req.user, &req.channel) else {
        let why = format!(
            "<@{}> may not list runbooks in this channel: no `[[chatops.allow]]` rule names them",
            req.user
        );
        server.audit_as(redactor, answered(req, "list"), "denied", Some(&why));
        return why;
    };
    let mut entry = answered(req, "list");
    entry["rule"] = json!(rule);
    server.audit_as(redactor, entry, "allowed", None);
    let mut out = String::from("Runbooks:\n");
    for (name, title) in server.runbooks.list() {
        out.push_str(&format!("• `{name}` — {title}\n"));
    }
    out
}

/// What `run`/`rehearse` will start, once checked.
struct Plan {
    action: Action,
    id: String,
    runbook: runbooks::Loaded,
    inputs: BTreeMap<String, String>,
    secrets: Vec<Secret>,
    user: String,
    team: String,
    channel: String,
    response_url: String,
    /// What a detector gave an incident a hook started.
    origin: Option<Origin>,
    /// A drill the channel plays: its pace and scenario.
    drill: Option<drill::Planned>,
}

/// How a hook-started incident differs from a command's.
struct Origin {
    detection: journal::Detection,
    /// What the document says set it off.
    summary: String,
    /// The phases that run without a person; every other step waits for
    /// an approval.
    unattended: Vec<crate::runbook::Phase>,
    /// Revocations shared with the other incidents hooks started.
    pool: Option<Arc<dyn crate::engine::Pool>>,
    /// Its live providers, built while the detection was read.
    live: Option<Box<Live>>,
}

/// A new incident id, taken in `running` at once: two commands in the same
/// second never get the same one (its directory is created after the
/// answer, on the incident runtime).
fn new_id(server: &Server) -> String {
    let mut running = server.running.lock().expect("running lock");
    loop {
        let id = Store::new_id(Utc::now());
        if !running.contains(&id) && !server.settings.store.taken(&id) {
            running.insert(id.clone());
            return id;
        }
    }
}

/// Runs an allowed command's incident on the incident runtime.
fn spawn_incident(server: &Arc<Server>, plan: Plan) {
    let s = server.clone();
    server.incidents.lock().expect("incidents lock").spawn_on(
        async move {
            let id = plan.id.clone();
            run_incident(&s, plan).await;
            s.running.lock().expect("running lock").remove(&id);
        },
        &server.settings.incidents,
    );
}

/// Who performs the incident's actions and who answers its questions; a
/// hook-started incident's runbook is gated by its trigger first. `None`
/// when a live run cannot start (said to whoever asked).
async fn prepare(
    server: &Arc<Server>,
    plan: &mut Plan,
) -> Option<(Executor, Humans, crate::runbook::Runbook)> {
    let mut rb = plan.runbook.0.clone();
    if let Some(origin) = &plan.origin {
        rb.gate(&origin.unattended);
    }
    if let Some(planned) = &plan.drill {
        return drill::prepare(server, plan, planned, rb).await;
    }
    if plan.action != Action::Run {
        let (executor, humans) = crate::app::incidents::simulated();
        return Some((executor, humans, rb));
    }
    let built = plan.origin.as_mut().and_then(|o| o.live.take());
    let live = match built {
        Some(live) => *live,
        None => Live::build(&server.settings.config, &providers(&rb)).await,
    };
    crate::logging::startup("the live providers are built");
    if let Err(why) = incident::preflight_live(&rb, &live) {
        log(&format!("{}: {why}", plan.id));
        server
            .respond_later(&plan.response_url, &format!("```{why}```"))
            .await;
        // A detection's incident has nobody waiting for an answer: it says
        // so where it would have kept its status message.
        let slack = &server.settings.slack;
        if plan.origin.is_some() && !plan.channel.is_empty() && slack.has_bot_token() {
            let text = format!("*{}* did not start:\n```{why}```", plan.id);
            let _ = slack.post(&plan.channel, &text, None, None).await;
        }
        return None;
    }
    let humans = Humans::Remote(Arc::new(humans::SlackHumans {
        // Nobody typed the command: an approval may also come from a
        // terminal (`quench approve`), through the incident's inbox.
        inbox: plan.origin.as_ref().map(|_| server.settings.store.clone()),
        ..humans::SlackHumans::new(server, &plan.channel, &plan.id, &rb)
    }));
    Some((Executor::Live(Box::new(live)), humans, rb))
}

/// The providers a runbook's steps use.
fn providers(
    rb: &crate::runbook::Runbook,
) -> std::collections::BTreeSet<crate::providers::Provider> {
    rb.steps.iter().map(|s| s.action.provider).collect()
}

/// Who started the incident: a Slack user, or a detector through its hook.
fn started_by(plan: &Plan) -> Actor {
    if let Some(origin) = &plan.origin {
        return Actor {
            user: format!("hook:{}", origin.detection.source),
            host: Actor::current().host,
        };
    }
    Actor {
        user: format!("slack:{}", plan.user),
        host: if plan.team.is_empty() {
            "slack".into()
        } else {
            format!("slack:{}", plan.team)
        },
    }
}

async fn run_incident(server: &Arc<Server>, mut plan: Plan) {
    let Some((executor, humans, rb)) = prepare(server, &mut plan).await else {
        return;
    };
    let channel = (server.settings.slack.has_bot_token() && !plan.channel.is_empty())
        .then_some(plan.channel.as_str());
    let (subscribers, status) = followers(server, channel, &[]);
    let by = started_by(&plan);
    let (detection, trigger, pool) = match plan.origin {
        Some(o) => (Some(o.detection), Some(o.summary), o.pool),
        None => (
            None,
            plan.drill.as_ref().and_then(|d| d.trigger.clone()),
            None,
        ),
    };
    let brief = Brief {
        inputs: plan.inputs,
        secrets: plan.secrets,
        detected_at: detection.as_ref().map(|d| d.detected_at),
        leaked_at: detection.as_ref().and_then(|d| d.leaked_at),
        detection,
        pool,
        humans,
        by,
        trigger,
        ..Brief::new(Start::Fresh, (rb, plan.runbook.1.clone()), executor)
    };
    let result = incident::execute(Execution {
        store: server.settings.store.clone(),
        id: Some(plan.id.clone()),
        existing: None,
        brief,
        display: None,
        subscribers,
        shutdown: server.shutdown.clone(),
        scenario_text: plan.drill.and_then(|d| d.text),
        templates: server.settings.templates.clone(),
    })
    .await;
    // The journal is closed: its open tasks may be completed now.
    server
        .running
        .lock()
        .expect("running lock")
        .remove(&plan.id);
    match result {
        Ok(done) => log(&format!(
            "{} {}",
            done.id,
            done.finished.outcome.name().replace('_', " ")
        )),
        Err(e) => {
            log(&format!("{}: {e}", plan.id));
            server
                .respond_later(&plan.response_url, &format!("{}: {e}", plan.id))
                .await;
        }
    }
    if let Some(status) = status {
        let _ = status.await;
    }
}

/// The journal's subscribers of an incident this server runs: the metrics,
/// and the status message kept in `channel`, if there is one, from the
/// `prior` records on (and its task).
fn followers(
    server: &Server,
    channel: Option<&str>,
    prior: &[journal::Record],
) -> (
    Vec<tokio::sync::mpsc::UnboundedSender<journal::Record>>,
    Option<tokio::task::JoinHandle<()>>,
) {
    let (metrics_tx, metrics_rx) = tokio::sync::mpsc::unbounded_channel();
    let metrics = server.metrics.clone();
    tokio::spawn(async move { metrics.follow(metrics_rx).await });
    let mut subscribers = vec![metrics_tx];
    let status = channel.map(|channel| {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        for record in prior {
            let _ = tx.send(record.clone());
        }
        subscribers.push(tx);
        tokio::spawn(status::run(
            server.settings.slack.clone(),
            channel.to_string(),
            rx,
            server.settings.templates.clone(),
        ))
    });
    (subscribers, status)
}

/// A button click: `POST /slack/interactions`, a form whose `payload` field
/// holds the JSON.
async fn interaction(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !server.verified(&headers, &body, "/slack/interactions") {
        server.audited().await;
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let payload: Value = form(&body)
        .get("payload")
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or(Value::Null);
    if payload["type"] != "block_actions" {
        return StatusCode::OK.into_response();
    }
    let user = payload["user"]["id"].as_str().unwrap_or_default();
    let channel = payload["channel"]["id"].as_str().unwrap_or_default();
    let response_url = payload["response_url"].as_str().unwrap_or_default();
    let redactor = Redactor::new();
    // Notes to the clicker, posted once the click is answered: Slack wants
    // its answer within 3 seconds, and a note is a request to Slack.
    let mut notes = Vec::new();
    for a in payload["actions"].as_array().into_iter().flatten() {
        let action_id = a["action_id"].as_str().unwrap_or_default();
        if action_id != slack::APPROVE && action_id != slack::DENY {
            continue;
        }
        let value = a["value"].as_str().unwrap_or_default();
        let clicked = Clicked {
            user,
            channel,
            approved: action_id == slack::APPROVE,
            entry: json!({
                "path": "/slack/interactions", "user": user, "channel": channel,
                "action": "approve", "button": action_id, "approval": value,
            }),
        };
        notes.extend(click(&server, &redactor, clicked, value).await);
    }
    server.audited().await;
    if !notes.is_empty() {
        let response_url = response_url.to_string();
        tokio::spawn(async move {
            for note in notes {
                server.respond_later(&response_url, &note).await;
            }
        });
    }
    StatusCode::OK.into_response()
}

/// A click on an approval button, and its audit entry so far.
struct Clicked<'a> {
    user: &'a str,
    channel: &'a str,
    approved: bool,
    entry: Value,
}

/// Answers the approval a button names, if the clicker may: the question
/// this process asked, or one another replica asked (its incident and
/// step are in the button's value), through the incident's inbox. A note
/// for the clicker when the click was not taken.
async fn click(
    server: &Server,
    redactor: &Redactor,
    mut c: Clicked<'_>,
    value: &str,
) -> Option<String> {
    let (id, asked_elsewhere) = humans::button_value(value);
    let Some(waiting) = APPROVALS.waiting(id) else {
        if let Some((incident, step)) = asked_elsewhere {
            return humans::forward(server, redactor, c, (incident, step)).await;
        }
        let why = "nothing waits for this approval any more";
        server.audit_as(redactor, c.entry, "refused", Some(why));
        return Some("That approval is no longer waiting.".to_string());
    };
    c.entry["runbook"] = json!(waiting.runbook);
    let rule = match authorize_click(
        server,
        redactor,
        &mut c,
        waiting.runbook.as_deref(),
        &waiting.approvers,
    ) {
        Ok(rule) => rule,
        Err(note) => return Some(note),
    };
    let answered = APPROVALS.answer(
        id,
        Decision {
            approved: c.approved,
            user: c.user.to_string(),
        },
    );
    c.entry["rule"] = json!(rule);
    c.entry["approved"] = json!(c.approved);
    let decision = if answered { "allowed" } else { "refused" };
    server.audit_as(redactor, c.entry, decision, None);
    None
}

/// The rule that lets the clicker approve a step of `runbook` naming
/// `approvers`; else the denial is audited and the note to them returned.
fn authorize_click(
    server: &Server,
    redactor: &Redactor,
    c: &mut Clicked<'_>,
    runbook: Option<&str>,
    approvers: &[String],
) -> Result<usize, String> {
    let rules = &server.settings.config.chatops.allow;
    crate::app::approvals::authorize(rules, c.user, c.channel, runbook, approvers).map_err(|why| {
        server.audit_as(redactor, c.entry.clone(), "denied", Some(&why.to_string()));
        let user = c.user;
        match why {
            crate::app::approvals::Denied::NoRule => {
                format!("<@{user}> may not approve this: no `[[chatops.allow]]` rule lets them.")
            }
            crate::app::approvals::Denied::NotNamed => {
                format!("<@{user}> is not one of this step's approvers.")
            }
        }
    })
}

#[expect(
    clippy::print_stderr,
    reason = "the server's one line per incident, for whoever runs it"
)]
fn log(line: &str) {
    eprintln!("{line}");
}
