//! GitHub's REST API on octocrab: credential revocation, installation and
//! fine-grained token revocation, the organization audit log, secret-scanning
//! alerts, Actions secrets (sealed boxes), issues.
//!
//! Requests go through octocrab's raw calls, so each action sends exactly
//! the method, path and body GitHub documents, and reads the status and
//! rate-limit headers itself. octocrab's own retries are compiled out (the
//! `retry` feature is off): the engine owns retries and backoff, and a
//! rate-limited answer becomes `ErrorClass::RateLimited` with GitHub's delay.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use http::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, LINK};
use http::{Method, Uri};
use octocrab::Octocrab;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::ParamType as P;
use super::{ActionError, ActionSpec, OutputValue, Outputs, Provider, opt, out, req, secret};
use crate::config::{self, GithubConfig};
use crate::secret::Secret;

pub const ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        name: "github.revoke_credentials",
        provider: Provider::Github,
        doc: "Revoke leaked tokens through POST /credentials/revoke (up to 1,000 a request; needs no token)",
        params: &[secret(req(
            "credentials",
            P::StringList,
            "the leaked tokens; an item may hold several, one a line, or a whole .env file",
        ))],
        outputs: &[
            out("submitted", "number of credentials submitted"),
            out("requests", "number of requests it took"),
            out(
                "skipped",
                "`.env` values left out because they are not GitHub tokens",
            ),
        ],
        dynamic_outputs: false,
        idempotent: true,
        proves_dead: false,
        run: None,
    },
    ActionSpec {
        name: "github.revoke_installation_token",
        provider: Provider::Github,
        doc: "A GitHub App installation token revokes itself (DELETE /installation/token; needs no other token)",
        params: &[secret(req("token", P::String, "the installation token"))],
        outputs: &[],
        dynamic_outputs: false,
        idempotent: true,
        proves_dead: false,
        run: None,
    },
    ActionSpec {
        name: "github.revoke_fine_grained_pat",
        provider: Provider::Github,
        doc: "An organization owner revokes members' fine-grained tokens",
        params: &[
            req("org", P::String, "organization"),
            req("pat_ids", P::IntList, "ids of the fine-grained tokens"),
        ],
        outputs: &[out("submitted", "number of token ids submitted")],
        dynamic_outputs: false,
        idempotent: true,
        proves_dead: false,
        run: None,
    },
    ActionSpec {
        name: "github.audit_log",
        provider: Provider::Github,
        doc: "The organization audit log for a token or actor, all pages, summarised",
        params: &[
            req("org", P::String, "organization"),
            opt("phrase", P::String, "audit log search phrase"),
            secret(opt(
                "token",
                P::String,
                "only events by this token (searched by its SHA-256, never sent)",
            )),
            opt("since", P::String, "how far back (e.g. 7d)"),
        ],
        outputs: &[
            out("events", "number of events"),
            out("actions", "distinct actions"),
            out("actors", "distinct actors"),
            out("first_seen", "first event time"),
            out("last_seen", "last event time"),
            out(
                "not_searched",
                "leaked tokens past the first 25, whose events were not searched",
            ),
        ],
        dynamic_outputs: false,
        idempotent: true,
        proves_dead: false,
        run: None,
    },
    ActionSpec {
        name: "github.secret_scanning_alerts",
        provider: Provider::Github,
        doc: "List secret-scanning alerts for the leaked secret and resolve them",
        params: &[
            req("repo", P::String, "owner/name"),
            secret(opt("secret", P::String, "only alerts for this secret")),
            opt(
                "resolve",
                P::String,
                "false_positive | wont_fix | revoked | used_in_tests",
            ),
        ],
        outputs: &[
            out("alerts", "number of alerts"),
            out("resolved", "number resolved"),
        ],
        dynamic_outputs: false,
        idempotent: true,
        proves_dead: false,
        run: None,
    },
    ActionSpec {
        name: "github.set_actions_secret",
        provider: Provider::Github,
        doc: "Set a repository Actions secret (sealed with the repository's public key)",
        params: &[
            req("repo", P::String, "owner/name"),
            req("name", P::String, "secret name"),
            secret(opt("value", P::String, "the new value")),
            opt(
                "value_from",
                P::String,
                "instead of `value`: a source read when the step runs (`file:PATH`, `env:VAR`), for a value made during the incident",
            ),
        ],
        outputs: &[out("outcome", "`created` or `updated`")],
        dynamic_outputs: false,
        idempotent: true,
        proves_dead: false,
        run: None,
    },
    ActionSpec {
        name: "github.create_issue",
        provider: Provider::Github,
        doc: "Open an issue (prevention follow-ups)",
        params: &[
            req("repo", P::String, "owner/name"),
            req("title", P::String, "issue title"),
            opt("body", P::String, "issue body (Markdown)"),
            opt("labels", P::StringList, "labels"),
        ],
        outputs: &[out("number", "issue number"), out("url", "issue URL")],
        dynamic_outputs: false,
        idempotent: false,
        proves_dead: false,
        run: None,
    },
];

pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// The most credentials `POST /credentials/revoke` takes in one request.
pub const REVOKE_BATCH: usize = 1000;
/// The most token ids `POST /orgs/{org}/personal-access-tokens` takes.
pub const PAT_BATCH: usize = 100;
/// The most leaked tokens whose audit-log events are searched, one search
/// each: a leaked `.env` of hundreds would otherwise spend the rate limit.
const MAX_AUDITED_TOKENS: usize = 25;
/// The largest page GitHub serves.
const PER_PAGE: u32 = 100;
/// GitHub's advice for a secondary rate limit that names no delay: wait at
/// least a minute.
const SECONDARY_WAIT: Duration = Duration::from_secs(60);
/// The resolutions GitHub accepts for a secret-scanning alert.
pub const RESOLUTIONS: &[&str] = &["false_positive", "wont_fix", "revoked", "used_in_tests"];
/// Prefixes of GitHub's credentials: a `.env` value without one is not sent.
const TOKEN_PREFIXES: &[&str] = &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"];

/// Whether an action acts with the engine's own token. Revocation by value
/// and an installation token revoking itself carry their own authority.
pub fn needs_engine_token(action: &str) -> bool {
    !matches!(
        action,
        "github.revoke_credentials" | "github.revoke_installation_token"
    )
}

/// The GitHub clients of one incident.
#[derive(Debug, Clone)]
pub struct Github {
    /// Authenticated with the engine's token, when one is configured.
    api: Option<Octocrab>,
    /// That token, kept only so it is redacted from everything written.
    token: Option<Secret>,
    /// Sends no token: github.com answers an authenticated revocation
    /// request with 403, and an installation token brings its own.
    anonymous: Octocrab,
    base: Uri,
    /// Revocation batches accepted so far, by step: a retried step resumes
    /// after them instead of spending the endpoint's hourly budget again.
    revoked_batches: Arc<Mutex<HashMap<String, usize>>>,
}

/// What `Github::build` could make.
pub struct Built {
    pub github: Github,
    /// Why the actions that need the engine's token cannot act, if they cannot.
    pub no_token: Option<String>,
}

impl Github {
    /// The base URI from `[providers.github] api_url` or `GITHUB_API_URL`,
    /// the token from `[providers.github] token` or `GITHUB_TOKEN`.
    pub fn build(config: &GithubConfig) -> Result<Built, String> {
        let api_url = config::setting(config.api_url.as_deref(), &["GITHUB_API_URL"])
            .unwrap_or_else(|| DEFAULT_API_URL.to_string());
        let base: Uri = api_url
            .trim_end_matches('/')
            .parse()
            .ok()
            .filter(|u: &Uri| u.scheme().is_some() && u.authority().is_some())
            .ok_or_else(|| format!("the GitHub API URL `{api_url}` is not an absolute URL"))?;
        let builder = || {
            Octocrab::builder()
                .base_uri(base.clone())
                .map_err(|e| format!("the GitHub API URL `{api_url}` cannot be used: {e}"))
                .map(|b| b.add_header(ACCEPT, "application/vnd.github+json".to_string()))
        };
        let anonymous = builder()?
            .build()
            .map_err(|e| format!("failed to build the GitHub client: {e}"))?;
        let (api, token, no_token) =
            match config::credential("github_token", config.token.as_deref(), &["GITHUB_TOKEN"]) {
                Ok(Some(token)) => {
                    let api = builder()?
                        .personal_token(token.expose().to_string())
                        .build()
                        .map_err(|e| format!("failed to build the GitHub client: {e}"))?;
                    (Some(api), Some(token), None)
                }
                Ok(None) => (
                    None,
                    None,
                    Some("no GitHub token: set GITHUB_TOKEN or [providers.github] token".into()),
                ),
                Err(e) => (None, None, Some(format!("no GitHub token: {e}"))),
            };
        Ok(Built {
            github: Github {
                api,
                token,
                anonymous,
                base,
                revoked_batches: Arc::default(),
            },
            no_token,
        })
    }

    /// The engine's token, if one is configured.
    pub fn token(&self) -> Option<&Secret> {
        self.token.as_ref()
    }

    /// Performs one attempt of a github action with rendered parameters.
    pub async fn execute(
        &self,
        action: &ActionSpec,
        step: &str,
        params: &Map<String, Value>,
    ) -> Result<Outputs, ActionError> {
        match action.name {
            "github.revoke_credentials" => self.revoke_credentials(step, params).await,
            "github.revoke_installation_token" => self.revoke_installation_token(params).await,
            "github.revoke_fine_grained_pat" => self.revoke_fine_grained_pat(params).await,
            "github.audit_log" => self.audit_log(params).await,
            "github.secret_scanning_alerts" => self.secret_scanning_alerts(params).await,
            "github.set_actions_secret" => self.set_actions_secret(params).await,
            "github.create_issue" => self.create_issue(params).await,
            other => Err(ActionError::permanent(format!(
                "`{other}` is not a github action (internal error: please report it)"
            ))),
        }
    }

    fn api(&self) -> Result<&Octocrab, ActionError> {
        self.api.as_ref().ok_or_else(|| {
            ActionError::permanent("no GitHub token: set GITHUB_TOKEN or [providers.github] token")
        })
    }

    async fn revoke_credentials(
        &self,
        step: &str,
        params: &Map<String, Value>,
    ) -> Result<Outputs, ActionError> {
        let (tokens, skipped) = leaked_tokens(params.get("credentials"));
        if tokens.is_empty() {
            return Err(ActionError::permanent(
                "`credentials` holds no token to revoke",
            ));
        }
        let batches: Vec<&[String]> = tokens.chunks(REVOKE_BATCH).collect();
        let done = self.batches_done(step);
        let mut requests = 0;
        for (i, batch) in batches.iter().enumerate().skip(done) {
            let body = json!({ "credentials": batch });
            let reply = send(
                &self.anonymous,
                Method::POST,
                "/credentials/revoke",
                Some(&body),
                None,
            )
            .await?;
            requests += 1;
            reply.expect(&Method::POST, "/credentials/revoke", &[202])?;
            self.revoked_batches
                .lock()
                .expect("revocation progress lock poisoned")
                .insert(step.to_string(), i + 1);
        }
        Ok(vec![
            plain("submitted", tokens.len()),
            plain("requests", requests),
            plain("skipped", skipped),
        ])
    }

    fn batches_done(&self, step: &str) -> usize {
        self.revoked_batches
            .lock()
            .expect("revocation progress lock poisoned")
            .get(step)
            .copied()
            .unwrap_or(0)
    }

    async fn revoke_installation_token(
        &self,
        params: &Map<String, Value>,
    ) -> Result<Outputs, ActionError> {
        let token = str_param(params, "token")?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
            .map_err(|_| ActionError::permanent("`token` is not a token"))?;
        auth.set_sensitive(true);
        let path = "/installation/token";
        send(&self.anonymous, Method::DELETE, path, None, Some(auth))
            .await?
            .expect(&Method::DELETE, path, &[204])?;
        Ok(Vec::new())
    }

    async fn revoke_fine_grained_pat(
        &self,
        params: &Map<String, Value>,
    ) -> Result<Outputs, ActionError> {
        let org = path_segment(params, "org")?;
        let ids: Vec<u64> = match params.get("pat_ids") {
            Some(Value::Array(ids)) => ids.iter().filter_map(Value::as_u64).collect(),
            _ => Vec::new(),
        };
        if ids.is_empty() {
            return Err(ActionError::permanent("`pat_ids` holds no token id"));
        }
        let path = format!("/orgs/{org}/personal-access-tokens");
        for batch in ids.chunks(PAT_BATCH) {
            let body = json!({ "action": "revoke", "pat_ids": batch });
            send(self.api()?, Method::POST, &path, Some(&body), None)
                .await?
                .expect(&Method::POST, &path, &[202])?;
        }
        Ok(vec![plain("submitted", ids.len())])
    }

    async fn audit_log(&self, params: &Map<String, Value>) -> Result<Outputs, ActionError> {
        let org = path_segment(params, "org")?;
        let mut base_phrase: Vec<String> = Vec::new();
        if let Some(p) = params.get("phrase").and_then(Value::as_str)
            && !p.trim().is_empty()
        {
            base_phrase.push(p.trim().to_string());
        }
        if let Some(since) = params.get("since").and_then(Value::as_str) {
            let d = crate::time::parse_duration(since)
                .map_err(|e| ActionError::permanent(format!("bad `since`: {e}")))?;
            let from = chrono::Utc::now()
                - chrono::Duration::from_std(d)
                    .map_err(|_| ActionError::permanent(format!("`since: {since}` is too long")))?;
            base_phrase.push(format!("created:>={}", from.format("%Y-%m-%d")));
        }
        // One search per leaked token: the audit log matches a token by its
        // SHA-256, so the token itself never leaves quench.
        let (mut tokens, _) = leaked_tokens(params.get("token"));
        let not_searched = tokens.len().saturating_sub(MAX_AUDITED_TOKENS);
        tokens.truncate(MAX_AUDITED_TOKENS);
        let phrases: Vec<String> = if tokens.is_empty() {
            vec![base_phrase.join(" ")]
        } else {
            tokens
                .iter()
                .map(|t| {
                    let mut p = base_phrase.clone();
                    p.push(format!("hashed_token:\"{}\"", hashed_token(t)));
                    p.join(" ")
                })
                .collect()
        };

        let mut summary = AuditSummary::default();
        let path = format!("/orgs/{org}/audit-log");
        for phrase in phrases {
            let mut query = format!("per_page={PER_PAGE}&include=all");
            if !phrase.is_empty() {
                query.push_str("&phrase=");
                query.push_str(&encode(&phrase));
            }
            let events = self.all_pages(&format!("{path}?{query}"), &path).await?;
            for e in events {
                summary.add(&e);
            }
        }
        let mut outputs = summary.outputs();
        outputs.push(plain("not_searched", not_searched));
        Ok(outputs)
    }

    async fn secret_scanning_alerts(
        &self,
        params: &Map<String, Value>,
    ) -> Result<Outputs, ActionError> {
        let repo = repo_param(params)?;
        let resolution = params.get("resolve").and_then(Value::as_str);
        if let Some(r) = resolution
            && !RESOLUTIONS.contains(&r)
        {
            return Err(ActionError::permanent(format!(
                "`resolve: {r}` is not a resolution GitHub accepts: use one of {}",
                RESOLUTIONS
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let (wanted, _) = leaked_tokens(params.get("secret"));
        let wanted: BTreeSet<&str> = wanted.iter().map(String::as_str).collect();
        let path = format!("/repos/{repo}/secret-scanning/alerts");
        let alerts = self
            .all_pages(&format!("{path}?per_page={PER_PAGE}"), &path)
            .await?;
        let matching: Vec<&Value> = alerts
            .iter()
            .filter(|a| {
                wanted.is_empty()
                    || a.get("secret")
                        .and_then(Value::as_str)
                        .is_some_and(|s| wanted.contains(s))
            })
            .collect();
        let mut resolved = 0;
        if let Some(resolution) = resolution {
            for alert in matching
                .iter()
                .filter(|a| a.get("state").and_then(Value::as_str) == Some("open"))
            {
                let Some(number) = alert.get("number").and_then(Value::as_u64) else {
                    continue;
                };
                let alert_path = format!("{path}/{number}");
                let body = json!({
                    "state": "resolved",
                    "resolution": resolution,
                    "resolution_comment": "resolved by quench during the incident response",
                });
                send(self.api()?, Method::PATCH, &alert_path, Some(&body), None)
                    .await?
                    .expect(&Method::PATCH, &alert_path, &[200])?;
                resolved += 1;
            }
        }
        Ok(vec![
            plain("alerts", matching.len()),
            plain("resolved", resolved),
        ])
    }

    async fn set_actions_secret(
        &self,
        params: &Map<String, Value>,
    ) -> Result<Outputs, ActionError> {
        let repo = repo_param(params)?;
        let name = path_segment(params, "name")?;
        let value = match (
            params.get("value").and_then(Value::as_str),
            params.get("value_from").and_then(Value::as_str),
        ) {
            (Some(v), None) => v.to_string(),
            (None, Some(source)) => {
                let source = crate::secret::SecretSource::parse(source)
                    .map_err(|e| ActionError::permanent(format!("`value_from`: {e}")))?;
                source
                    .read(name)
                    .map_err(|e| ActionError::permanent(format!("`value_from`: {e}")))?
                    .expose()
                    .to_string()
            }
            _ => {
                return Err(ActionError::permanent(
                    "give exactly one of `value` and `value_from`",
                ));
            }
        };
        let api = self.api()?;
        let key_path = format!("/repos/{repo}/actions/secrets/public-key");
        let key = send(api, Method::GET, &key_path, None, None)
            .await?
            .expect(&Method::GET, &key_path, &[200])?;
        let (Some(key_id), Some(key_b64)) = (
            key.get("key_id").and_then(Value::as_str),
            key.get("key").and_then(Value::as_str),
        ) else {
            return Err(ActionError::permanent(format!(
                "`GET {key_path}` answered without `key_id` and `key`"
            )));
        };
        let encrypted_value = seal(key_b64, value.as_bytes()).map_err(|e| {
            ActionError::permanent(format!("failed to seal the secret for `{repo}`: {e}"))
        })?;
        let path = format!("/repos/{repo}/actions/secrets/{name}");
        let body = json!({ "encrypted_value": encrypted_value, "key_id": key_id });
        let reply = send(api, Method::PUT, &path, Some(&body), None).await?;
        let outcome = if reply.status == 201 {
            "created"
        } else {
            "updated"
        };
        reply.expect(&Method::PUT, &path, &[201, 204])?;
        Ok(vec![plain("outcome", outcome)])
    }

    async fn create_issue(&self, params: &Map<String, Value>) -> Result<Outputs, ActionError> {
        let repo = repo_param(params)?;
        let mut body = Map::new();
        body.insert(
            "title".into(),
            Value::String(str_param(params, "title")?.into()),
        );
        if let Some(text) = params.get("body").and_then(Value::as_str) {
            body.insert("body".into(), Value::String(text.into()));
        }
        if let Some(labels @ Value::Array(_)) = params.get("labels") {
            body.insert("labels".into(), labels.clone());
        }
        let path = format!("/repos/{repo}/issues");
        let issue = send(
            self.api()?,
            Method::POST,
            &path,
            Some(&Value::Object(body)),
            None,
        )
        .await?
        .expect(&Method::POST, &path, &[201])?;
        Ok(vec![
            ("number".into(), OutputValue::Plain(issue["number"].clone())),
            ("url".into(), OutputValue::Plain(issue["html_url"].clone())),
        ])
    }

    /// Every item of a list endpoint, following `Link: rel="next"`.
    async fn all_pages(&self, first: &str, shown: &str) -> Result<Vec<Value>, ActionError> {
        let api = self.api()?;
        let mut items = Vec::new();
        let mut next = Some(first.to_string());
        while let Some(target) = next.take() {
            let reply = send(api, Method::GET, &target, None, None).await?;
            let link = reply
                .headers
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match reply.expect(&Method::GET, shown, &[200])? {
                Value::Array(page) => items.extend(page),
                _ => {
                    return Err(ActionError::permanent(format!(
                        "`GET {shown}` answered with something other than a list"
                    )));
                }
            }
            if let Some(url) = link.as_deref().and_then(next_link) {
                next = Some(self.same_host(&url, shown)?);
            }
        }
        Ok(items)
    }

    /// The path and query of a `Link` URL, which must point at the API we
    /// were given: the token is never sent anywhere else.
    fn same_host(&self, url: &str, shown: &str) -> Result<String, ActionError> {
        let uri: Uri = url.parse().map_err(|_| {
            ActionError::permanent(format!(
                "`GET {shown}` answered with a `Link` that is not a URL"
            ))
        })?;
        if uri.authority().is_some() && uri.authority() != self.base.authority() {
            return Err(ActionError::permanent(format!(
                "`GET {shown}` answered with a next page on another host"
            )));
        }
        Ok(uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default())
    }
}

/// One answer from GitHub.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    /// The JSON body when the status is one of `ok`, else the classified error.
    fn expect(self, method: &Method, path: &str, ok: &[u16]) -> Result<Value, ActionError> {
        let body: Option<Value> = serde_json::from_str(&self.body).ok();
        if ok.contains(&self.status) {
            return Ok(body.unwrap_or(Value::Null));
        }
        let message = body.as_ref().map(github_message).unwrap_or_else(|| {
            http::StatusCode::from_u16(self.status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("no message")
                .to_string()
        });
        Err(classify(
            self.status,
            &self.headers,
            format!(
                "`{method} {}` answered {}: {message}",
                shown_path(path),
                self.status
            ),
        ))
    }
}

/// The path without its query: queries carry search phrases, which are
/// long and say nothing the step's parameters do not.
fn shown_path(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// GitHub's `message`, with the field and code of each validation error.
/// Never the `value` an error may quote: it could be what we sent.
fn github_message(body: &Value) -> String {
    let mut message = body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("no message")
        .to_string();
    if let Some(Value::Array(errors)) = body.get("errors") {
        let details: Vec<String> = errors
            .iter()
            .filter_map(|e| match e {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => {
                    let field = o.get("field").and_then(Value::as_str);
                    let code = o.get("code").and_then(Value::as_str);
                    let msg = o.get("message").and_then(Value::as_str);
                    match (field, code, msg) {
                        (_, _, Some(m)) => Some(m.to_string()),
                        (Some(f), Some(c), None) => Some(format!("`{f}` {c}")),
                        _ => None,
                    }
                }
                _ => None,
            })
            .collect();
        if !details.is_empty() {
            message = format!("{message} ({})", details.join("; "));
        }
    }
    message
}

/// How the engine should treat a GitHub error: primary and secondary rate
/// limits wait as long as GitHub says, 5xx is worth another try, the rest
/// (401, 403, 404, 422) is permanent.
pub fn classify(status: u16, headers: &HeaderMap, message: String) -> ActionError {
    let retry_after = super::http::retry_after(headers);
    let remaining = header_u64(headers, "x-ratelimit-remaining");
    let until_reset = header_u64(headers, "x-ratelimit-reset").map(|reset| {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        Duration::from_secs(reset.saturating_sub(now))
    });
    let secondary = message.to_lowercase().contains("secondary rate limit");
    let limited = status == 429
        || (status == 403 && (retry_after.is_some() || remaining == Some(0) || secondary));
    if limited {
        // GitHub's documented order: `retry-after`, then the primary limit's
        // reset, then at least a minute.
        let wait = retry_after
            .or_else(|| until_reset.filter(|_| remaining == Some(0)))
            .unwrap_or(SECONDARY_WAIT);
        return ActionError::rate_limited(Some(wait), message);
    }
    match status {
        500..=599 => ActionError::transient(message),
        _ => ActionError::permanent(message),
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Sends one request. `auth` replaces the client's own authorization (an
/// installation token revoking itself).
async fn send(
    client: &Octocrab,
    method: Method,
    path: &str,
    body: Option<&Value>,
    auth: Option<HeaderValue>,
) -> Result<Reply, ActionError> {
    let unreachable = |e: octocrab::Error| {
        ActionError::transient(format!(
            "`{method} {}`: failed to reach GitHub: {}",
            shown_path(path),
            first_line(&e.to_string())
        ))
    };
    let mut builder = http::Request::builder().method(method.clone()).uri(path);
    if let Some(auth) = auth {
        builder = builder.header(AUTHORIZATION, auth);
    }
    let request = client.build_request(builder, body).map_err(unreachable)?;
    let response = client.execute(request).await.map_err(unreachable)?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = client.body_to_string(response).await.map_err(|_| {
        ActionError::transient(format!(
            "`{method} {}`: the answer was cut off",
            shown_path(path)
        ))
    })?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// The URL of `rel="next"` in a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, rels) = part.split_once(';')?;
        rels.split(';')
            .any(|r| r.trim() == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

/// The leaked tokens in a parameter, and how many `.env` values were left
/// out. Each string may hold one token, several one a line, or a whole
/// leaked `.env` file: blank lines and `#` comments are ignored, and of a
/// `NAME=value` line only a value that looks like a GitHub token is kept, so
/// the database password beside it is not sent to GitHub.
pub fn leaked_tokens(param: Option<&Value>) -> (Vec<String>, usize) {
    let texts: Vec<&str> = match param {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mut tokens: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut skipped = 0;
    for line in texts.iter().flat_map(|t| t.lines()) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let token = match crate::secret::dotenv_value(line) {
            Some(value) if TOKEN_PREFIXES.iter().any(|p| value.starts_with(p)) => value,
            Some(_) => {
                skipped += 1;
                continue;
            }
            None => line,
        };
        if seen.insert(token.to_string()) {
            tokens.push(token.to_string());
        }
    }
    (tokens, skipped)
}

/// How GitHub's audit log names a token: base64 of its SHA-256.
pub fn hashed_token(token: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(token.as_bytes()))
}

/// libsodium's `crypto_box_seal` to a repository's public key, base64.
pub fn seal(public_key_b64: &str, plaintext: &[u8]) -> Result<String, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let raw = b64
        .decode(public_key_b64)
        .map_err(|_| "the repository's public key is not base64".to_string())?;
    let key = crypto_box::PublicKey::from_slice(&raw)
        .map_err(|_| "the repository's public key is not 32 bytes".to_string())?;
    let sealed = key
        .seal(&mut crypto_box::aead::OsRng, plaintext)
        .map_err(|_| "encryption failed".to_string())?;
    Ok(b64.encode(sealed))
}

#[derive(Default)]
struct AuditSummary {
    events: usize,
    actions: BTreeMap<String, usize>,
    actors: BTreeSet<String>,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
}

impl AuditSummary {
    fn add(&mut self, event: &Value) {
        self.events += 1;
        if let Some(a) = event.get("action").and_then(Value::as_str) {
            *self.actions.entry(a.to_string()).or_default() += 1;
        }
        if let Some(a) = event.get("actor").and_then(Value::as_str) {
            self.actors.insert(a.to_string());
        }
        let ms = event
            .get("@timestamp")
            .and_then(Value::as_i64)
            .or_else(|| event.get("created_at").and_then(Value::as_i64));
        if let Some(ms) = ms {
            self.first_ms = Some(self.first_ms.map_or(ms, |f| f.min(ms)));
            self.last_ms = Some(self.last_ms.map_or(ms, |l| l.max(ms)));
        }
    }

    fn outputs(self) -> Outputs {
        let time = |ms: Option<i64>| {
            ms.and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
                .unwrap_or(Value::Null)
        };
        let actions: Vec<Value> = self
            .actions
            .iter()
            .map(|(a, n)| Value::String(format!("{a} ×{n}")))
            .collect();
        vec![
            plain("events", self.events),
            ("actions".into(), OutputValue::Plain(Value::Array(actions))),
            (
                "actors".into(),
                OutputValue::Plain(self.actors.into_iter().map(Value::String).collect()),
            ),
            ("first_seen".into(), OutputValue::Plain(time(self.first_ms))),
            ("last_seen".into(), OutputValue::Plain(time(self.last_ms))),
        ]
    }
}

fn plain(name: &str, value: impl Into<Value>) -> (String, OutputValue) {
    (name.to_string(), OutputValue::Plain(value.into()))
}

fn str_param<'a>(params: &'a Map<String, Value>, name: &str) -> Result<&'a str, ActionError> {
    params
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ActionError::permanent(format!("`{name}` is empty")))
}

/// A parameter that becomes one path segment: it may not smuggle in another.
fn path_segment<'a>(params: &'a Map<String, Value>, name: &str) -> Result<&'a str, ActionError> {
    let v = str_param(params, name)?.trim();
    if v.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && v != "."
        && v != ".."
    {
        Ok(v)
    } else {
        Err(ActionError::permanent(format!(
            "`{name}: {v}` is not a GitHub name"
        )))
    }
}

fn repo_param(params: &Map<String, Value>) -> Result<String, ActionError> {
    let v = str_param(params, "repo")?.trim();
    let mut fields = Map::new();
    let parts: Vec<&str> = v.split('/').collect();
    if let [owner, name] = parts.as_slice() {
        fields.insert("owner".into(), Value::String(owner.to_string()));
        fields.insert("name".into(), Value::String(name.to_string()));
        if let (Ok(o), Ok(n)) = (
            path_segment(&fields, "owner"),
            path_segment(&fields, "name"),
        ) {
            return Ok(format!("{o}/{n}"));
        }
    }
    Err(ActionError::permanent(format!(
        "`repo: {v}` is not `owner/name`"
    )))
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_secondary_rate_limit_waits_as_long_as_retry_after_says() {
        let e = classify(
            403,
            &headers(&[("retry-after", "60")]),
            "You have exceeded a secondary rate limit".into(),
        );
        assert_eq!(
            e.class,
            super::super::ErrorClass::RateLimited {
                retry_after: Some(Duration::from_secs(60))
            }
        );
    }

    #[test]
    fn an_exhausted_primary_limit_waits_until_its_reset() {
        let reset = (chrono::Utc::now().timestamp() + 120).to_string();
        let e = classify(
            403,
            &headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ]),
            "API rate limit exceeded".into(),
        );
        let super::super::ErrorClass::RateLimited {
            retry_after: Some(wait),
        } = e.class
        else {
            panic!("{:?}", e.class)
        };
        assert!(
            wait > Duration::from_secs(110) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
    }

    #[test]
    fn a_secondary_limit_without_headers_waits_a_minute() {
        let e = classify(
            429,
            &HeaderMap::new(),
            "You have exceeded a secondary rate limit".into(),
        );
        assert_eq!(
            e.class,
            super::super::ErrorClass::RateLimited {
                retry_after: Some(SECONDARY_WAIT)
            }
        );
    }

    #[test]
    fn other_errors_are_permanent_or_transient() {
        use super::super::ErrorClass::*;
        let h = headers(&[("x-ratelimit-remaining", "4999")]);
        for status in [401, 403, 404, 422] {
            assert_eq!(
                classify(status, &h, "no".into()).class,
                Permanent,
                "{status}"
            );
        }
        for status in [500, 502, 503] {
            assert_eq!(
                classify(status, &h, "no".into()).class,
                Transient,
                "{status}"
            );
        }
    }

    #[test]
    fn a_leaked_env_file_yields_its_github_tokens_only() {
        let env = "# leaked\nexport GITHUB_TOKEN=ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n\
                   DATABASE_URL=postgres://u:p@db/x\nDEPLOY='github_pat_11ABCDEFG_xyz'\n\n\
                   ghs_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\nghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n";
        let (tokens, skipped) = leaked_tokens(Some(&json!([env])));
        assert_eq!(
            tokens,
            [
                "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "github_pat_11ABCDEFG_xyz",
                "ghs_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
            ]
        );
        assert_eq!(skipped, 1);
    }

    #[test]
    fn next_links_are_found_among_others() {
        let link = r#"<https://api.github.com/organizations/1/audit-log?after=MS4y&before=>; rel="next", <https://api.github.com/organizations/1/audit-log?before=MS4x>; rel="prev""#;
        assert_eq!(
            next_link(link).as_deref(),
            Some("https://api.github.com/organizations/1/audit-log?after=MS4y&before=")
        );
        assert_eq!(next_link(r#"<https://x/y?page=1>; rel="first""#), None);
    }

    #[test]
    fn a_token_is_searched_by_its_base64_sha256() {
        // `echo -n TOKEN | openssl dgst -sha256 -binary | base64`, as GitHub's
        // documentation says.
        assert_eq!(
            hashed_token("TOKEN"),
            "+YED6SF/CZIIVp0pXBsnbxghNIY2wmjIVLsqCG4AN80="
        );
    }

    #[test]
    fn a_sealed_box_opens_with_the_matching_secret_key() {
        let sk = crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng);
        let pk = base64::engine::general_purpose::STANDARD.encode(sk.public_key().as_bytes());
        let sealed = seal(&pk, b"new-value").unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .unwrap();
        assert_eq!(sk.unseal(&raw).unwrap(), b"new-value");
    }

    #[test]
    fn names_cannot_reach_other_paths() {
        let p = |v: &str| {
            let mut m = Map::new();
            m.insert("repo".into(), Value::String(v.into()));
            repo_param(&m)
        };
        assert_eq!(p("acme/deploy").unwrap(), "acme/deploy");
        for bad in ["acme", "acme/../x", "acme/deploy/x", "acme/de?ploy", "../x"] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }
}
