//! A local server that behaves as GitHub's REST API description says, for
//! the endpoints quench calls: exact methods and paths, the headers GitHub
//! requires, request bodies checked against their schemas, the documented
//! status codes, and rate-limit headers on every answer. Anything it does
//! not recognise is an error, so a wrong request fails the test. `GET /user`
//! answers as whom a token authenticates, until that token is revoked.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The engine's own token, as `GITHUB_TOKEN` gives it.
pub const ENGINE_TOKEN: &str = "ghp_EngineTokenOfQuench0000000000000000";
/// A GitHub App installation token that may revoke itself.
pub const INSTALLATION_TOKEN: &str = "ghs_InstallationToken0000000000000000000";
/// The repository whose Actions secrets and alerts exist.
pub const REPO: &str = "acme/deploy";
pub const ORG: &str = "acme";
pub const KEY_ID: &str = "568250167242549743";
/// Audit-log events done by the leaked token: more than one page.
pub const LEAKED_EVENTS: usize = 130;

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

type Answer = (u16, Vec<(String, String)>, String);

struct Inner {
    seen: Vec<Seen>,
    /// Answers to give, by `METHOD path`, before behaving normally.
    script: HashMap<String, Vec<Answer>>,
    secret_key: crypto_box::SecretKey,
    /// Actions secrets of `REPO`: name → sealed value (base64).
    secrets: BTreeMap<String, String>,
    /// Every credential `POST /credentials/revoke` accepted.
    revoked: Vec<String>,
    /// Secret-scanning alerts of `REPO`.
    alerts: Vec<Value>,
    /// Each alert's locations, by number.
    locations: HashMap<u64, Vec<Value>>,
    /// Commits of `REPO`, by SHA.
    commits: HashMap<String, Value>,
    /// Audit-log events of `ORG`, with the token hash that did each.
    events: Vec<(String, Value)>,
    issues: Vec<Value>,
    revoked_pats: Vec<u64>,
    /// Fine-grained tokens with access to `ORG`, as the listing shows each,
    /// with the repositories of those that name theirs.
    pats: Vec<(Value, Vec<String>)>,
    installation_revoked: bool,
    /// The leaked token, which authenticates as `ci-bot` until revoked.
    leaked: String,
    /// `GET /user` answers that still accept a revoked token: revocation
    /// taking its time to reach every server.
    lag: usize,
    remaining: u64,
    /// Where it listens, for the URLs in its answers.
    url: String,
}

#[derive(Clone)]
pub struct FakeGithub {
    inner: Arc<Mutex<Inner>>,
    pub addr: Option<SocketAddr>,
}

/// GitHub's audit-log name for a token: base64 of its SHA-256.
pub fn hashed(token: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(token.as_bytes()))
}

impl FakeGithub {
    /// Starts on a free loopback port, on its own thread and runtime. The
    /// leaked token has alerts in `REPO` and events in the audit log.
    pub fn start(leaked: &str) -> FakeGithub {
        let secret_key = crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng);
        let mut events = Vec::new();
        let base = 1_795_000_000_000_i64;
        for i in 0..LEAKED_EVENTS {
            let action = if i % 2 == 0 {
                "git.clone"
            } else {
                "repo.download_zip"
            };
            events.push((
                hashed(leaked),
                json!({"@timestamp": base + i as i64 * 60_000, "action": action, "actor": "ci-bot",
                       "_document_id": format!("doc-{i}"), "repo": REPO}),
            ));
        }
        events.push((
            hashed("ghp_someone_else"),
            json!({"@timestamp": base, "action": "org.update_member", "actor": "alice", "_document_id": "doc-x"}),
        ));
        let alerts = vec![
            json!({"number": 1, "state": "open", "secret_type": "github_personal_access_token", "secret": leaked}),
            json!({"number": 2, "state": "resolved", "resolution": "revoked", "secret_type": "github_personal_access_token", "secret": leaked}),
            json!({"number": 3, "state": "open", "secret_type": "slack_api_token", "secret": "xoxb-not-ours"}),
        ];
        let inner = Inner {
            seen: Vec::new(),
            script: HashMap::new(),
            secret_key,
            secrets: BTreeMap::new(),
            revoked: Vec::new(),
            alerts,
            locations: HashMap::new(),
            commits: HashMap::new(),
            events,
            issues: Vec::new(),
            revoked_pats: Vec::new(),
            pats: Vec::new(),
            installation_revoked: false,
            leaked: leaked.to_string(),
            lag: 0,
            remaining: 5000,
            url: String::new(),
        };
        let mut api = FakeGithub {
            inner: Arc::new(Mutex::new(inner)),
            addr: None,
        };
        let state = api.clone();
        let app = Router::new()
            .route("/{*path}", any(handle))
            .with_state(state);
        api.addr = Some(super::serve_on_loopback(app));
        api.inner.lock().unwrap().url = api.url();
        api
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr.unwrap())
    }

    /// The next answer to `METHOD path`, before it behaves normally.
    pub fn answer(&self, method_path: &str, status: u16, headers: &[(&str, &str)], body: &str) {
        self.inner
            .lock()
            .unwrap()
            .script
            .entry(method_path.to_string())
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

    pub fn seen(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().seen.clone()
    }

    /// The next `answers` to `GET /user` still accept a revoked token.
    pub fn revocation_lag(&self, answers: usize) {
        self.inner.lock().unwrap().lag = answers;
    }

    pub fn seen_at(&self, method: &str, path: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == method && s.path == path)
            .collect()
    }

    pub fn revoked(&self) -> Vec<String> {
        self.inner.lock().unwrap().revoked.clone()
    }

    /// A new open alert in `REPO` for `secret`, found in a commit authored
    /// at `committed` (RFC 3339); returns its number. Shapes as GitHub's
    /// REST API documents them.
    pub fn add_alert(&self, secret: &str, secret_type: &str, committed: &str) -> u64 {
        let mut inner = self.inner.lock().unwrap();
        let number = inner
            .alerts
            .iter()
            .filter_map(|a| a["number"].as_u64())
            .max()
            .unwrap_or(0)
            + 1;
        let url = inner.url.clone();
        let sha: String = Sha256::digest(format!("commit {number}").as_bytes())
            .iter()
            .take(20)
            .map(|b| format!("{b:02x}"))
            .collect();
        inner.alerts.push(json!({
            "number": number,
            "created_at": "2026-12-07T10:00:00Z",
            "updated_at": "2026-12-07T10:00:00Z",
            "url": format!("{url}/repos/{REPO}/secret-scanning/alerts/{number}"),
            "html_url": format!("https://github.com/{REPO}/security/secret-scanning/{number}"),
            "locations_url": format!("{url}/repos/{REPO}/secret-scanning/alerts/{number}/locations"),
            "state": "open",
            "resolution": null,
            "secret_type": secret_type,
            "secret_type_display_name": "GitHub Personal Access Token",
            "secret": secret,
            "validity": "active",
            "publicly_leaked": false,
            "push_protection_bypassed": false,
        }));
        inner.locations.insert(number, vec![json!({
            "type": "commit",
            "details": {
                "path": "config/.env", "start_line": 3, "end_line": 3, "start_column": 14, "end_column": 54,
                "blob_sha": "af5626b4a114abcb82d63db7c8082c3c4756e51b",
                "blob_url": format!("{url}/repos/{REPO}/git/blobs/af5626b4a114abcb82d63db7c8082c3c4756e51b"),
                "commit_sha": sha,
                "commit_url": format!("{url}/repos/{REPO}/git/commits/{sha}"),
            }
        })]);
        inner.commits.insert(sha.clone(), json!({
            "sha": sha,
            "url": format!("{url}/repos/{REPO}/commits/{sha}"),
            "commit": {
                "author": {"name": "Mona Lisa", "email": "mona@example.com", "date": committed},
                "committer": {"name": "GitHub", "email": "noreply@github.com", "date": committed},
                "message": "Add deploy settings",
            },
            "parents": [],
        }));
        number
    }

    pub fn alerts(&self) -> Vec<Value> {
        self.inner.lock().unwrap().alerts.clone()
    }

    pub fn issues(&self) -> Vec<Value> {
        self.inner.lock().unwrap().issues.clone()
    }

    /// Grants `ORG` to a fine-grained token of `owner`: `repos` empty
    /// means every repository. Returns its `pat_id`.
    #[expect(clippy::too_many_arguments, reason = "the listing's fields")]
    pub fn add_pat(
        &self,
        owner: &str,
        name: &str,
        repos: &[&str],
        permissions: Value,
        expires: Option<&str>,
        last_used: Option<&str>,
        granted: &str,
    ) -> u64 {
        let mut inner = self.inner.lock().unwrap();
        let id = 25_381 + inner.pats.len() as u64;
        let url = inner.url.clone();
        let pat = json!({
            "id": id,
            "owner": {"login": owner, "id": 1000 + id, "type": "User", "site_admin": false,
                      "url": format!("{url}/users/{owner}")},
            "repository_selection": if repos.is_empty() { "all" } else { "subset" },
            "repositories_url": format!("{url}/organizations/652551/personal-access-tokens/{id}/repositories"),
            "permissions": permissions,
            "access_granted_at": granted,
            "token_id": 98_716 + id,
            "token_name": name,
            "token_expired": false,
            "token_expires_at": expires,
            "token_last_used_at": last_used,
        });
        inner
            .pats
            .push((pat, repos.iter().map(|r| r.to_string()).collect()));
        id
    }

    pub fn revoked_pats(&self) -> Vec<u64> {
        self.inner.lock().unwrap().revoked_pats.clone()
    }

    pub fn installation_revoked(&self) -> bool {
        self.inner.lock().unwrap().installation_revoked
    }

    /// Opens an Actions secret with the repository's secret key, as only
    /// GitHub (holding that key) can.
    pub fn open_secret(&self, name: &str) -> Option<String> {
        let inner = self.inner.lock().unwrap();
        let sealed = inner.secrets.get(name)?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .expect("encrypted_value is base64");
        let plain = inner
            .secret_key
            .unseal(&raw)
            .expect("sealed to this repository's key");
        Some(String::from_utf8(plain).unwrap())
    }
}

fn error(status: StatusCode, message: &str) -> (StatusCode, Value) {
    (
        status,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.as_u16().to_string()}),
    )
}

fn validation(message: &str) -> (StatusCode, Value) {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"message": "Validation Failed", "errors": [message], "documentation_url": "https://docs.github.com/rest"}),
    )
}

async fn handle(
    State(api): State<FakeGithub>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or_default().to_string();
    let body = String::from_utf8_lossy(&body).into_owned();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let authorization = header("authorization");
    let mut inner = api.inner.lock().unwrap();
    inner.seen.push(Seen {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect(),
        body: body.clone(),
    });
    let unauthenticated = authorization.is_none();
    let limit = if unauthenticated { 60 } else { 5000 };
    inner.remaining = inner.remaining.saturating_sub(1);
    let rate_headers = [
        ("x-ratelimit-limit", limit.to_string()),
        (
            "x-ratelimit-remaining",
            inner.remaining.min(limit).to_string(),
        ),
        (
            "x-ratelimit-reset",
            (chrono::Utc::now().timestamp() + 3600).to_string(),
        ),
        ("x-ratelimit-used", (5000 - inner.remaining).to_string()),
        ("x-ratelimit-resource", "core".to_string()),
    ];
    let key = format!("{method} {path}");
    let scripted = inner
        .script
        .get_mut(&key)
        .and_then(|q| (!q.is_empty()).then(|| q.remove(0)));
    let (status, value, extra) = if let Some((status, hdrs, text)) = scripted {
        let mut resp = (StatusCode::from_u16(status).unwrap(), text).into_response();
        for (k, v) in rate_headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .chain(hdrs)
        {
            resp.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        return resp;
    } else {
        route(&mut inner, &method, &path, &query, &headers, &body)
    };
    let mut resp = if status == StatusCode::NO_CONTENT {
        status.into_response()
    } else {
        (status, axum::Json(value)).into_response()
    };
    for (k, v) in rate_headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .chain(extra)
    {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    resp
}

type Routed = (StatusCode, Value, Vec<(String, String)>);

fn plain((status, value): (StatusCode, Value)) -> Routed {
    (status, value, Vec::new())
}

fn route(
    inner: &mut Inner,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &str,
) -> Routed {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // What every request must carry, as GitHub documents it.
    if header("user-agent").is_none_or(str::is_empty) {
        return plain(error(
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
        ));
    }
    let accept = header("accept").unwrap_or_default();
    if !accept.contains("application/vnd.github+json") {
        return plain(error(
            StatusCode::BAD_REQUEST,
            "expected `Accept: application/vnd.github+json`",
        ));
    }
    if header("x-github-api-version").is_some_and(|v| v != "2022-11-28") {
        return plain(error(StatusCode::BAD_REQUEST, "unsupported API version"));
    }
    let json: Option<Value> = if body.is_empty() {
        None
    } else {
        if header("content-type") != Some("application/json") {
            return plain(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected a JSON body",
            ));
        }
        match serde_json::from_str(body) {
            Ok(v) => Some(v),
            Err(_) => return plain(error(StatusCode::BAD_REQUEST, "Problems parsing JSON")),
        }
    };
    let authorization = header("authorization");
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();

    // Revocation by value: github.com refuses it with a token.
    if parts == ["credentials", "revoke"] {
        if method != Method::POST {
            return plain(error(StatusCode::NOT_FOUND, "Not Found"));
        }
        if authorization.is_some() {
            return plain(error(
                StatusCode::FORBIDDEN,
                "This endpoint must be called without authentication",
            ));
        }
        let Some(creds) = json
            .as_ref()
            .and_then(|v| v.get("credentials"))
            .and_then(Value::as_array)
        else {
            return plain(validation("`credentials` is required and must be an array"));
        };
        if creds.is_empty() || creds.len() > 1000 {
            return plain(validation("`credentials` must hold 1 to 1000 items"));
        }
        if !creds.iter().all(Value::is_string) {
            return plain(validation("`credentials` items must be strings"));
        }
        inner
            .revoked
            .extend(creds.iter().map(|c| c.as_str().unwrap().to_string()));
        return plain((StatusCode::ACCEPTED, json!({})));
    }

    // An installation token revoking itself authenticates as itself.
    if parts == ["installation", "token"] && method == Method::DELETE {
        if authorization != Some(&format!("Bearer {INSTALLATION_TOKEN}")) {
            return plain(error(StatusCode::UNAUTHORIZED, "Bad credentials"));
        }
        inner.installation_revoked = true;
        return plain((StatusCode::NO_CONTENT, Value::Null));
    }

    if parts == ["user"] && method == Method::GET {
        return plain(user(inner, authorization));
    }

    // Everything else acts as the engine.
    if authorization != Some(&format!("Bearer {ENGINE_TOKEN}")) {
        return plain(error(StatusCode::UNAUTHORIZED, "Requires authentication"));
    }
    let q: HashMap<String, String> = decode_query(query);
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["orgs", org, "personal-access-tokens"]) => {
            if *org != ORG {
                return plain(error(StatusCode::NOT_FOUND, "Not Found"));
            }
            let v = json.unwrap_or_default();
            let ids = v.get("pat_ids").and_then(Value::as_array);
            match (v.get("action").and_then(Value::as_str), ids) {
                (Some("revoke"), Some(ids))
                    if !ids.is_empty() && ids.len() <= 100 && ids.iter().all(Value::is_u64) =>
                {
                    inner
                        .revoked_pats
                        .extend(ids.iter().filter_map(Value::as_u64));
                    plain((StatusCode::ACCEPTED, json!({})))
                }
                _ => plain(validation(
                    "`action` must be `revoke` and `pat_ids` 1 to 100 integers",
                )),
            }
        }
        ("GET", ["orgs", org, "personal-access-tokens", rest @ ..]) => {
            if *org != ORG {
                return plain(error(StatusCode::NOT_FOUND, "Not Found"));
            }
            pat_listing(inner, path, &q, rest)
        }
        ("GET", ["orgs", org, "audit-log"]) => {
            if *org != ORG {
                return plain(error(StatusCode::NOT_FOUND, "Not Found"));
            }
            let per_page: usize = match q.get("per_page").map(|p| p.parse()) {
                None => 30,
                Some(Ok(n)) if (1..=100).contains(&n) => n,
                _ => return plain(validation("`per_page` must be 1 to 100")),
            };
            let phrase = q.get("phrase").cloned().unwrap_or_default();
            let wanted_hash = phrase
                .split("hashed_token:\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(str::to_string);
            let matching: Vec<&Value> = inner
                .events
                .iter()
                .filter(|(h, _)| wanted_hash.as_ref().is_none_or(|w| w == h))
                .map(|(_, e)| e)
                .collect();
            let start: usize = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
            let page: Vec<Value> = matching
                .iter()
                .skip(start)
                .take(per_page)
                .map(|v| (*v).clone())
                .collect();
            let mut extra = Vec::new();
            if start + per_page < matching.len() {
                let next = format!(
                    "{}{}?per_page={per_page}&phrase={}&after={}&before=",
                    inner.url,
                    path,
                    percent(&phrase),
                    start + per_page
                );
                extra.push(("link".to_string(), format!("<{next}>; rel=\"next\"")));
            }
            (StatusCode::OK, Value::Array(page), extra)
        }
        (_, ["repos", owner, name, rest @ ..]) => {
            if format!("{owner}/{name}") != REPO {
                return plain(error(StatusCode::NOT_FOUND, "Not Found"));
            }
            repo_route(inner, method.as_str(), rest, json)
        }
        _ => plain(error(StatusCode::NOT_FOUND, "Not Found")),
    }
}

/// `GET /orgs/{org}/personal-access-tokens` and a token's
/// `/{pat_id}/repositories`, paged by `page` and `per_page` (default 30,
/// at most 100) with a `Link` to the next page.
fn pat_listing(inner: &Inner, path: &str, q: &HashMap<String, String>, rest: &[&str]) -> Routed {
    let per_page: usize = match q.get("per_page").map(|p| p.parse()) {
        None => 30,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        _ => return plain(validation("`per_page` must be 1 to 100")),
    };
    let page: usize = match q.get("page").map(|p| p.parse()) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        _ => return plain(validation("`page` must be a positive integer")),
    };
    let items: Vec<Value> = match rest {
        [] => inner.pats.iter().map(|(p, _)| p.clone()).collect(),
        [id, "repositories"] => {
            let Some((_, repos)) = inner
                .pats
                .iter()
                .find(|(p, _)| p["id"].as_u64().is_some_and(|n| id.parse() == Ok(n)))
            else {
                return plain(error(StatusCode::NOT_FOUND, "Not Found"));
            };
            repos
                .iter()
                .map(|r| json!({"id": 1296269, "name": r.split('/').nth(1), "full_name": r, "private": true}))
                .collect()
        }
        _ => return plain(error(StatusCode::NOT_FOUND, "Not Found")),
    };
    let shown: Vec<Value> = items
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    let mut extra = Vec::new();
    if page * per_page < items.len() {
        let next = format!("{}{path}?per_page={per_page}&page={}", inner.url, page + 1);
        extra.push(("link".to_string(), format!("<{next}>; rel=\"next\"")));
    }
    (StatusCode::OK, Value::Array(shown), extra)
}

/// `GET /user`: the user a token authenticates as. A token GitHub does not
/// know, or one revoked, is `401 Bad credentials`; an installation token is
/// authenticated but may not read `/user` (403).
fn user(inner: &mut Inner, authorization: Option<&str>) -> (StatusCode, Value) {
    let Some(auth) = authorization else {
        return error(StatusCode::UNAUTHORIZED, "Requires authentication");
    };
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("token "))
        .unwrap_or_default();
    let login = match token {
        ENGINE_TOKEN => "quench-bot",
        INSTALLATION_TOKEN => "",
        t if t == inner.leaked => "ci-bot",
        // A token an alert reported works until it is revoked.
        t if inner.alerts.iter().any(|a| a["secret"] == t) => "ci-bot",
        _ => return error(StatusCode::UNAUTHORIZED, "Bad credentials"),
    };
    let revoked = inner.revoked.iter().any(|r| r == token)
        || (token == INSTALLATION_TOKEN && inner.installation_revoked);
    if revoked && inner.lag == 0 {
        return error(StatusCode::UNAUTHORIZED, "Bad credentials");
    } else if revoked {
        inner.lag -= 1;
    }
    if token == INSTALLATION_TOKEN {
        return error(
            StatusCode::FORBIDDEN,
            "Resource not accessible by integration",
        );
    }
    (
        StatusCode::OK,
        json!({"login": login, "id": 583231, "type": "User", "site_admin": false,
               "url": format!("{}/users/{login}", inner.url)}),
    )
}

fn repo_route(inner: &mut Inner, method: &str, rest: &[&str], json: Option<Value>) -> Routed {
    match (method, rest) {
        ("GET", ["secret-scanning", "alerts"]) => {
            plain((StatusCode::OK, Value::Array(inner.alerts.clone())))
        }
        ("GET", ["secret-scanning", "alerts", number]) => {
            let n = number.parse::<u64>().ok();
            match inner
                .alerts
                .iter()
                .find(|a| n.is_some() && a["number"].as_u64() == n)
            {
                Some(a) => plain((StatusCode::OK, a.clone())),
                None => plain(error(StatusCode::NOT_FOUND, "Not Found")),
            }
        }
        ("GET", ["secret-scanning", "alerts", number, "locations"]) => {
            match number
                .parse::<u64>()
                .ok()
                .and_then(|n| inner.locations.get(&n))
            {
                Some(l) => plain((StatusCode::OK, Value::Array(l.clone()))),
                None => plain(error(StatusCode::NOT_FOUND, "Not Found")),
            }
        }
        ("GET", ["commits", sha]) => match inner.commits.get(*sha) {
            Some(c) => plain((StatusCode::OK, c.clone())),
            None => plain(validation(&format!("No commit found for SHA: {sha}"))),
        },
        ("PATCH", ["secret-scanning", "alerts", number]) => {
            let Some(i) = inner
                .alerts
                .iter()
                .position(|a| number.parse::<u64>().ok() == a["number"].as_u64())
            else {
                return plain(error(StatusCode::NOT_FOUND, "Not Found"));
            };
            let v = json.unwrap_or_default();
            let state = v.get("state").and_then(Value::as_str);
            let resolution = v.get("resolution").and_then(Value::as_str);
            match (state, resolution) {
                (Some("resolved"), Some(r))
                    if ["false_positive", "wont_fix", "revoked", "used_in_tests"].contains(&r) =>
                {
                    inner.alerts[i]["state"] = json!("resolved");
                    inner.alerts[i]["resolution"] = json!(r);
                    if let Some(c) = v.get("resolution_comment") {
                        inner.alerts[i]["resolution_comment"] = c.clone();
                    }
                    plain((StatusCode::OK, inner.alerts[i].clone()))
                }
                (Some("open"), None) => plain((StatusCode::OK, inner.alerts[i].clone())),
                _ => plain(validation(
                    "State does not match the resolution or resolution comment",
                )),
            }
        }
        ("GET", ["actions", "secrets", "public-key"]) => {
            let key = base64::engine::general_purpose::STANDARD
                .encode(inner.secret_key.public_key().as_bytes());
            plain((StatusCode::OK, json!({"key_id": KEY_ID, "key": key})))
        }
        ("PUT", ["actions", "secrets", name]) => {
            let v = json.unwrap_or_default();
            let (Some(value), Some(key_id)) = (
                v.get("encrypted_value").and_then(Value::as_str),
                v.get("key_id").and_then(Value::as_str),
            ) else {
                return plain(validation("`encrypted_value` and `key_id` are required"));
            };
            if key_id != KEY_ID {
                return plain(validation("`key_id` is not this repository's key"));
            }
            let b64 = base64::engine::general_purpose::STANDARD;
            if b64.decode(value).is_err() {
                return plain(validation("`encrypted_value` must be base64"));
            }
            let existed = inner
                .secrets
                .insert(name.to_string(), value.to_string())
                .is_some();
            if existed {
                plain((StatusCode::NO_CONTENT, Value::Null))
            } else {
                plain((StatusCode::CREATED, json!({})))
            }
        }
        ("POST", ["issues"]) => {
            let v = json.unwrap_or_default();
            let Some(title) = v.get("title").and_then(Value::as_str) else {
                return plain(validation("`title` is required"));
            };
            if let Some(labels) = v.get("labels")
                && !labels
                    .as_array()
                    .is_some_and(|l| l.iter().all(Value::is_string))
            {
                return plain(validation("`labels` must be an array of strings"));
            }
            let number = inner.issues.len() + 1;
            let issue = json!({
                "number": number,
                "title": title,
                "body": v.get("body"),
                "labels": v.get("labels"),
                "html_url": format!("{}/{REPO}/issues/{number}", inner.url),
            });
            inner.issues.push(issue.clone());
            plain((StatusCode::CREATED, issue))
        }
        _ => plain(error(StatusCode::NOT_FOUND, "Not Found")),
    }
}

/// The decoded pairs of a query string.
pub fn decode_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

fn decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

fn percent(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
