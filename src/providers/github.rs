//! GitHub's REST API on octocrab: credential revocation, installation and
//! fine-grained token revocation, the organization audit log, secret-scanning
//! alerts, Actions secrets (sealed boxes), issues, and the proof that a
//! leaked token is dead.
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
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::action::{Call, Perform};
use super::{ActionError, given, ticked};
use crate::action;
use crate::config::{self, GithubConfig};
use crate::secret::Secret;

pub const ACTIONS: &[super::ActionSpec] = &[
    RevokeCredentials::SPEC,
    RevokeInstallationToken::SPEC,
    RevokeFineGrainedPat::SPEC,
    AuditLog::SPEC,
    SecretScanningAlerts::SPEC,
    SetActionsSecret::SPEC,
    CreateIssue::SPEC,
    VerifyRevoked::SPEC,
];

action! {
    /// Revoke leaked tokens through POST /credentials/revoke (up to 1,000 a
    /// request; needs no token)
    "github.revoke_credentials" in Github => RevokeCredentials [idempotent] {
        /// the leaked tokens; an item may hold several, one a line, or a whole
        /// .env file
        credentials: Vec<String> [secret],
    } -> RevokeCredentialsOutputs {
        /// number of credentials submitted
        submitted: u64,
        /// number of requests it took
        requests: u64,
        /// `.env` values left out because they are not GitHub tokens
        skipped: u64,
    }
}

impl Perform for RevokeCredentials {
    async fn perform(
        self,
        gh: &Github,
        call: Call<'_>,
    ) -> Result<RevokeCredentialsOutputs, ActionError> {
        let (tokens, skipped) = leaked_tokens(&self.credentials);
        if tokens.is_empty() {
            return Err(ActionError::permanent(
                "`credentials` holds no token to revoke",
            ));
        }
        let path = "/credentials/revoke";
        let mut requests = 0;
        let done = gh.progress(call.step, |p| p.batches);
        for (i, batch) in tokens.chunks(REVOKE_BATCH).enumerate().skip(done) {
            let body = json!({ "credentials": batch });
            ask(&gh.anonymous, Method::POST, path, Some(&body), &[202]).await?;
            requests += 1;
            gh.progress(call.step, |p| p.batches = i + 1);
        }
        Ok(RevokeCredentialsOutputs {
            submitted: tokens.len() as u64,
            requests,
            skipped: skipped as u64,
        })
    }
}

action! {
    /// A GitHub App installation token revokes itself (DELETE
    /// /installation/token; needs no other token)
    "github.revoke_installation_token" in Github => RevokeInstallationToken [idempotent] {
        /// the installation token
        token: String [secret],
    } -> ()
}

impl Perform for RevokeInstallationToken {
    async fn perform(self, gh: &Github, _: Call<'_>) -> Result<(), ActionError> {
        let auth = bearer(
            given("token", &self.token)?.trim(),
            "`token` is not a token",
        )?;
        let path = "/installation/token";
        send(&gh.anonymous, Method::DELETE, path, None, Some(auth))
            .await?
            .expect(&Method::DELETE, path, &[204])?;
        Ok(())
    }
}

action! {
    /// An organization owner revokes members' fine-grained tokens
    "github.revoke_fine_grained_pat" in Github => RevokeFineGrainedPat [idempotent] {
        /// organization
        org: String,
        /// ids of the fine-grained tokens
        pat_ids: Vec<i64>,
    } -> RevokeFineGrainedPatOutputs {
        /// number of token ids submitted
        submitted: u64,
    }
}

impl Perform for RevokeFineGrainedPat {
    async fn perform(
        self,
        gh: &Github,
        _: Call<'_>,
    ) -> Result<RevokeFineGrainedPatOutputs, ActionError> {
        let org = path_segment("org", &self.org)?;
        let ids: Vec<u64> = self
            .pat_ids
            .iter()
            .filter_map(|&id| u64::try_from(id).ok())
            .collect();
        if ids.is_empty() {
            return Err(ActionError::permanent("`pat_ids` holds no token id"));
        }
        let path = format!("/orgs/{org}/personal-access-tokens");
        for batch in ids.chunks(PAT_BATCH) {
            let body = json!({ "action": "revoke", "pat_ids": batch });
            ask(gh.api()?, Method::POST, &path, Some(&body), &[202]).await?;
        }
        Ok(RevokeFineGrainedPatOutputs {
            submitted: ids.len() as u64,
        })
    }
}

action! {
    /// The organization audit log for a token or actor, all pages, summarised
    "github.audit_log" in Github => AuditLog [idempotent] {
        /// organization
        org: String,
        /// audit log search phrase
        phrase: Option<String>,
        /// only events by this token (searched by its SHA-256, never sent)
        token: Option<String> [secret],
        /// how far back (e.g. 7d)
        since: Option<String>,
    } -> AuditLogOutputs {
        /// number of events
        events: u64,
        /// distinct actions
        actions: Vec<String>,
        /// distinct actors
        actors: Vec<String>,
        /// first event time
        first_seen: Value,
        /// last event time
        last_seen: Value,
        /// leaked tokens past the first 25, whose events were not searched
        not_searched: u64,
    }
}

impl Perform for AuditLog {
    async fn perform(self, gh: &Github, _: Call<'_>) -> Result<AuditLogOutputs, ActionError> {
        let org = path_segment("org", &self.org)?;
        let (phrases, not_searched) = self.phrases()?;
        let mut summary = AuditSummary::default();
        let path = format!("/orgs/{org}/audit-log");
        for phrase in phrases {
            let mut query = format!("per_page={PER_PAGE}&include=all");
            if !phrase.is_empty() {
                query.push_str("&phrase=");
                query.push_str(&utf8_percent_encode(&phrase, NON_ALPHANUMERIC).to_string());
            }
            for event in gh.all_pages(&format!("{path}?{query}"), &path).await? {
                summary.add(&event);
            }
        }
        Ok(summary.outputs(not_searched))
    }
}

impl AuditLog {
    /// The search phrases, one per leaked token (the audit log matches a
    /// token by its SHA-256, so the token itself never leaves quench), and
    /// how many tokens were left unsearched.
    fn phrases(&self) -> Result<(Vec<String>, usize), ActionError> {
        let mut base: Vec<String> = Vec::new();
        if let Some(p) = self.phrase.as_deref().map(str::trim)
            && !p.is_empty()
        {
            base.push(p.to_string());
        }
        if let Some(since) = &self.since {
            let d = crate::time::parse_duration(since)
                .map_err(|e| ActionError::permanent(format!("bad `since`: {e}")))?;
            let from = chrono::Utc::now()
                - chrono::Duration::from_std(d)
                    .map_err(|_| ActionError::permanent(format!("`since: {since}` is too long")))?;
            base.push(format!("created:>={}", from.format("%Y-%m-%d")));
        }
        let (mut tokens, _) = leaked_tokens(self.token.as_slice());
        let not_searched = tokens.len().saturating_sub(MAX_AUDITED_TOKENS);
        tokens.truncate(MAX_AUDITED_TOKENS);
        if tokens.is_empty() {
            return Ok((vec![base.join(" ")], not_searched));
        }
        let phrases = tokens
            .iter()
            .map(|t| {
                let mut p = base.clone();
                p.push(format!("hashed_token:\"{}\"", hashed_token(t)));
                p.join(" ")
            })
            .collect();
        Ok((phrases, not_searched))
    }
}

action! {
    /// List secret-scanning alerts for the leaked secret and resolve them
    "github.secret_scanning_alerts" in Github => SecretScanningAlerts [idempotent] {
        /// owner/name
        repo: String,
        /// only alerts for this secret
        secret: Option<String> [secret],
        /// false_positive | wont_fix | revoked | used_in_tests
        resolve: Option<String>,
    } -> SecretScanningAlertsOutputs {
        /// number of alerts
        alerts: u64,
        /// number resolved
        resolved: u64,
    }
}

impl Perform for SecretScanningAlerts {
    async fn perform(
        self,
        gh: &Github,
        _: Call<'_>,
    ) -> Result<SecretScanningAlertsOutputs, ActionError> {
        let repo = repo_param(&self.repo)?;
        if let Some(r) = &self.resolve
            && !RESOLUTIONS.contains(&r.as_str())
        {
            return Err(ActionError::permanent(format!(
                "`resolve: {r}` is not a resolution GitHub accepts: use one of {}",
                ticked(RESOLUTIONS)
            )));
        }
        let (wanted, _) = leaked_tokens(self.secret.as_slice());
        let wanted: BTreeSet<&str> = wanted.iter().map(String::as_str).collect();
        let path = format!("/repos/{repo}/secret-scanning/alerts");
        let alerts = gh
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
        if let Some(resolution) = &self.resolve {
            let open = matching
                .iter()
                .filter(|a| a.get("state").and_then(Value::as_str) == Some("open"));
            for number in open.filter_map(|a| a.get("number").and_then(Value::as_u64)) {
                let alert_path = format!("{path}/{number}");
                let body = json!({
                    "state": "resolved",
                    "resolution": resolution,
                    "resolution_comment": "resolved by quench during the incident response",
                });
                ask(gh.api()?, Method::PATCH, &alert_path, Some(&body), &[200]).await?;
                resolved += 1;
            }
        }
        Ok(SecretScanningAlertsOutputs {
            alerts: matching.len() as u64,
            resolved,
        })
    }
}

action! {
    /// Set a repository Actions secret (sealed with the repository's public
    /// key)
    "github.set_actions_secret" in Github => SetActionsSecret [idempotent] {
        /// owner/name
        repo: String,
        /// secret name
        name: String,
        /// the new value
        value: Option<String> [secret],
        /// instead of `value`: a source read when the step runs (`file:PATH`,
        /// `env:VAR`), for a value made during the incident
        value_from: Option<String>,
    } -> SetActionsSecretOutputs {
        /// `created` or `updated`
        outcome: String,
    }
}

impl Perform for SetActionsSecret {
    async fn perform(
        self,
        gh: &Github,
        _: Call<'_>,
    ) -> Result<SetActionsSecretOutputs, ActionError> {
        let repo = repo_param(&self.repo)?;
        let name = path_segment("name", &self.name)?;
        let value = self.value(name)?;
        let api = gh.api()?;
        let key_path = format!("/repos/{repo}/actions/secrets/public-key");
        let key = ask(api, Method::GET, &key_path, None, &[200]).await?;
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
        Ok(SetActionsSecretOutputs {
            outcome: outcome.into(),
        })
    }
}

impl SetActionsSecret {
    /// The value to seal: given, or read now from `value_from`.
    fn value(&self, name: &str) -> Result<String, ActionError> {
        match (&self.value, &self.value_from) {
            (Some(v), None) => Ok(v.clone()),
            (None, Some(source)) => {
                let bad = |e: String| ActionError::permanent(format!("`value_from`: {e}"));
                let source =
                    crate::secret::SecretSource::parse(source).map_err(|e| bad(e.to_string()))?;
                let value = source.read(name).map_err(|e| bad(e.to_string()))?;
                Ok(value.expose().to_string())
            }
            _ => Err(ActionError::permanent(
                "give exactly one of `value` and `value_from`",
            )),
        }
    }
}

action! {
    /// Open an issue (prevention follow-ups)
    "github.create_issue" in Github => CreateIssue {
        /// owner/name
        repo: String,
        /// issue title
        title: String,
        /// issue body (Markdown)
        body: Option<String>,
        /// labels
        labels: Option<Vec<String>>,
    } -> CreateIssueOutputs {
        /// issue number
        number: Value,
        /// issue URL
        url: Value,
    }
}

impl Perform for CreateIssue {
    async fn perform(self, gh: &Github, _: Call<'_>) -> Result<CreateIssueOutputs, ActionError> {
        let repo = repo_param(&self.repo)?;
        let mut body = json!({ "title": given("title", &self.title)? });
        if let Some(text) = self.body {
            body["body"] = json!(text);
        }
        if let Some(labels) = self.labels {
            body["labels"] = json!(labels);
        }
        let path = format!("/repos/{repo}/issues");
        let issue = ask(gh.api()?, Method::POST, &path, Some(&body), &[201]).await?;
        Ok(CreateIssueOutputs {
            number: issue["number"].clone(),
            url: issue["html_url"].clone(),
        })
    }
}

action! {
    /// Prove leaked tokens dead: `GET /user` as each must answer 401 (the
    /// first 25; a token GitHub still accepts fails the attempt, to be retried)
    "github.verify_revoked" in Github => VerifyRevoked [idempotent, proves_dead] {
        /// the leaked token; several, one a line, or a whole .env file
        token: String [secret],
    } -> VerifyRevokedOutputs {
        /// number of tokens GitHub refused
        checked: u64,
        /// leaked tokens past the first 25, which were not checked
        unchecked: u64,
    }
}

impl Perform for VerifyRevoked {
    /// Each token authenticates as itself, on the client that sends no
    /// token of ours. A token proven dead is not asked about again by a
    /// later attempt of the step: each check spends a request of the hour's
    /// unauthenticated budget.
    async fn perform(
        self,
        gh: &Github,
        call: Call<'_>,
    ) -> Result<VerifyRevokedOutputs, ActionError> {
        let (mut tokens, _) = leaked_tokens(std::slice::from_ref(&self.token));
        if tokens.is_empty() {
            return Err(ActionError::permanent("`token` holds no token to check"));
        }
        let unchecked = tokens.len().saturating_sub(MAX_VERIFIED_TOKENS);
        tokens.truncate(MAX_VERIFIED_TOKENS);
        let total = tokens.len();
        for token in &tokens {
            let hash = hashed_token(token);
            if gh.progress(call.step, |p| p.dead.contains(&hash)) {
                continue;
            }
            let auth = bearer(token, "`token` holds a value that is not a token")?;
            let reply = send(&gh.anonymous, Method::GET, "/user", None, Some(auth)).await?;
            refused(reply, total)?;
            gh.progress(call.step, |p| p.dead.insert(hash));
        }
        Ok(VerifyRevokedOutputs {
            checked: total as u64,
            unchecked: unchecked as u64,
        })
    }
}

/// `Ok` when GitHub refused the token (401). A 2xx, or a 403 that is not a
/// rate limit (GitHub authenticated the token, then forbade the call), says
/// the token still works: a retryable error, as revocation takes a moment
/// to reach every GitHub server. Any other answer is classified as usual.
fn refused(reply: Reply, total: usize) -> Result<(), ActionError> {
    let status = reply.status;
    let login = serde_json::from_str::<Value>(&reply.body)
        .ok()
        .and_then(|b| b.get("login")?.as_str().map(str::to_string))
        .filter(|l| path_segment("login", l).is_ok());
    let error = match reply.expect(&Method::GET, "/user", &[401]) {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let accepted = (200..300).contains(&status) || status == 403;
    if !accepted || matches!(error.class, super::ErrorClass::RateLimited { .. }) {
        return Err(error);
    }
    let which = if total == 1 {
        "the leaked token".to_string()
    } else {
        format!("one of the {total} leaked tokens")
    };
    let login = login.map(|l| format!(" (as `{l}`)")).unwrap_or_default();
    Err(ActionError::transient(format!(
        "GitHub still accepts {which}{login}: `GET /user` answered {status}; its revocation has not taken effect yet"
    )))
}

pub const DEFAULT_API_URL: &str = "https://api.github.com";

const NO_TOKEN: &str = "no GitHub token: set GITHUB_TOKEN or [providers.github] token";

/// The most credentials `POST /credentials/revoke` takes in one request.
pub const REVOKE_BATCH: usize = 1000;
/// The most token ids `POST /orgs/{org}/personal-access-tokens` takes.
pub const PAT_BATCH: usize = 100;
/// The most leaked tokens whose audit-log events are searched, one search
/// each: a leaked `.env` of hundreds would otherwise spend the rate limit.
const MAX_AUDITED_TOKENS: usize = 25;
/// The most leaked tokens proven dead, one `GET /user` each: a request with
/// a refused token counts against the 60 an hour GitHub allows a caller
/// without one.
const MAX_VERIFIED_TOKENS: usize = 25;
/// The largest page GitHub serves.
const PER_PAGE: u32 = 100;
/// GitHub's advice for a secondary rate limit that names no delay: wait at
/// least a minute.
const SECONDARY_WAIT: Duration = Duration::from_secs(60);
/// The resolutions GitHub accepts for a secret-scanning alert.
pub const RESOLUTIONS: &[&str] = &["false_positive", "wont_fix", "revoked", "used_in_tests"];
/// Prefixes of GitHub's credentials: a `.env` value without one is not sent.
const TOKEN_PREFIXES: &[&str] = &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"];

/// Whether an action acts with the engine's own token. Revocation by value,
/// an installation token revoking itself and a leaked token asked whether
/// it still works carry their own authority.
pub fn needs_engine_token(action: &str) -> bool {
    ![
        RevokeCredentials::SPEC.name,
        RevokeInstallationToken::SPEC.name,
        VerifyRevoked::SPEC.name,
    ]
    .contains(&action)
}

/// The GitHub clients of one incident.
#[derive(Debug, Clone)]
pub struct Github {
    /// Authenticated with the engine's token (kept only so it is redacted
    /// from everything written), or why the actions that need it cannot act.
    api: Result<(Octocrab, Secret), String>,
    /// Sends no token: github.com answers an authenticated revocation
    /// request with 403, and an installation token brings its own.
    anonymous: Octocrab,
    base: Uri,
    /// What each step's attempts got done so far, for its next attempt.
    progress: Arc<Mutex<HashMap<String, Progress>>>,
}

/// What a step's attempts got done: its retry carries on from there instead
/// of spending GitHub's hourly budget again.
#[derive(Debug, Default)]
struct Progress {
    /// Revocation batches GitHub accepted.
    batches: usize,
    /// Hashes of the tokens proven dead: only those still accepted are asked
    /// about again.
    dead: BTreeSet<String>,
}

impl Github {
    /// The base URI from `[providers.github] api_url` or `GITHUB_API_URL`,
    /// the token from `[providers.github] token` or `GITHUB_TOKEN`.
    pub fn build(config: &GithubConfig) -> Result<Github, String> {
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
        let api =
            match config::credential("github_token", config.token.as_deref(), &["GITHUB_TOKEN"]) {
                Ok(Some(token)) => {
                    let api = builder()?
                        .personal_token(token.expose().to_string())
                        .build()
                        .map_err(|e| format!("failed to build the GitHub client: {e}"))?;
                    Ok((api, token))
                }
                Ok(None) => Err(NO_TOKEN.into()),
                Err(e) => Err(format!("no GitHub token: {e}")),
            };
        Ok(Github {
            api,
            anonymous,
            base,
            progress: Arc::default(),
        })
    }

    /// The engine's token, if one is configured.
    pub fn token(&self) -> Option<&Secret> {
        self.api.as_ref().ok().map(|(_, t)| t)
    }

    /// Why the actions that need the engine's token cannot act, if they cannot.
    pub fn no_token(&self) -> Option<&str> {
        self.api.as_ref().err().map(String::as_str)
    }

    fn api(&self) -> Result<&Octocrab, ActionError> {
        self.api
            .as_ref()
            .map(|(api, _)| api)
            .map_err(ActionError::permanent)
    }

    /// Reads or updates what `step`'s attempts got done.
    fn progress<T>(&self, step: &str, f: impl FnOnce(&mut Progress) -> T) -> T {
        let mut all = self.progress.lock().expect("progress lock poisoned");
        f(all.entry(step.to_string()).or_default())
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

    /// The organization's fine-grained personal access tokens, each with
    /// the repositories it reaches when it names them.
    pub async fn org_pats(&self, org: &str) -> Result<Vec<PatRecord>, ActionError> {
        let first = format!("/orgs/{org}/personal-access-tokens?per_page=100");
        let shown = format!("/orgs/{org}/personal-access-tokens");
        let mut out = Vec::new();
        for pat in self.all_pages(&first, &shown).await? {
            let mut record = PatRecord::from_listing(&pat);
            if record.repository_selection == "subset" {
                let first = format!("{shown}/{}/repositories?per_page=100", record.id);
                let repos = self.all_pages(&first, &first).await?;
                record.repositories = repos
                    .iter()
                    .filter_map(|r| r["full_name"].as_str().map(str::to_string))
                    .collect();
            }
            out.push(record);
        }
        Ok(out)
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

/// One entry of `GET /orgs/{org}/personal-access-tokens`.
#[derive(Debug, Clone)]
pub struct PatRecord {
    pub id: u64,
    pub owner: String,
    pub token_name: String,
    /// `all`, `subset` or `none`.
    pub repository_selection: String,
    pub repositories: Vec<String>,
    /// `scope/permission: access`, e.g. `repository/contents: write`.
    pub permissions: Vec<String>,
    pub granted: Option<chrono::DateTime<chrono::Utc>>,
    /// `None`: the token never expires.
    pub expires: Option<chrono::DateTime<chrono::Utc>>,
    pub expired: bool,
    pub last_used: Option<chrono::DateTime<chrono::Utc>>,
}

impl PatRecord {
    fn from_listing(v: &Value) -> PatRecord {
        let time = |k: &str| v[k].as_str().and_then(|t| t.parse().ok());
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let mut permissions = Vec::new();
        if let Some(scopes) = v["permissions"].as_object() {
            for (scope, perms) in scopes {
                for (name, access) in perms.as_object().into_iter().flatten() {
                    let access = access.as_str().unwrap_or_default();
                    permissions.push(format!("{scope}/{name}: {access}"));
                }
            }
        }
        PatRecord {
            id: v["id"].as_u64().unwrap_or_default(),
            owner: text(&v["owner"]["login"]),
            token_name: text(&v["token_name"]),
            repository_selection: text(&v["repository_selection"]),
            repositories: Vec::new(),
            permissions,
            granted: time("access_granted_at"),
            expires: time("token_expires_at"),
            expired: v["token_expired"].as_bool().unwrap_or(false),
            last_used: time("token_last_used_at"),
        }
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

/// Sends one request with the client's own authorization: its JSON answer
/// when its status is one of `ok`.
async fn ask(
    client: &Octocrab,
    method: Method,
    path: &str,
    body: Option<&Value>,
    ok: &[u16],
) -> Result<Value, ActionError> {
    let reply = send(client, method.clone(), path, body, None).await?;
    reply.expect(&method, path, ok)
}

/// The `Authorization` of `token`, marked sensitive so no log shows it;
/// `bad` when it cannot be a header.
fn bearer(token: &str, bad: &str) -> Result<HeaderValue, ActionError> {
    let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| ActionError::permanent(bad))?;
    auth.set_sensitive(true);
    Ok(auth)
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
            e.to_string().lines().next().unwrap_or_default()
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
pub fn leaked_tokens(texts: &[String]) -> (Vec<String>, usize) {
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

    fn outputs(self, not_searched: usize) -> AuditLogOutputs {
        let time = |ms: Option<i64>| {
            ms.and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
                .unwrap_or(Value::Null)
        };
        AuditLogOutputs {
            events: self.events as u64,
            actions: self
                .actions
                .iter()
                .map(|(a, n)| format!("{a} ×{n}"))
                .collect(),
            actors: self.actors.into_iter().collect(),
            first_seen: time(self.first_ms),
            last_seen: time(self.last_ms),
            not_searched: not_searched as u64,
        }
    }
}

/// A parameter that becomes one path segment: it may not smuggle in another.
fn path_segment<'a>(name: &str, value: &'a str) -> Result<&'a str, ActionError> {
    let v = given(name, value)?.trim();
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

/// `owner/name`, each a path segment.
fn repo_param(value: &str) -> Result<String, ActionError> {
    let v = given("repo", value)?.trim();
    if let Some((owner, name)) = v.split_once('/')
        && let (Ok(o), Ok(n)) = (path_segment("owner", owner), path_segment("name", name))
    {
        return Ok(format!("{o}/{n}"));
    }
    Err(ActionError::permanent(format!(
        "`repo: {v}` is not `owner/name`"
    )))
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

    fn reply(status: u16, pairs: &[(&'static str, &str)], body: &str) -> Reply {
        Reply {
            status,
            headers: headers(pairs),
            body: body.into(),
        }
    }

    #[test]
    fn only_a_401_proves_a_token_dead() {
        use super::super::ErrorClass::*;
        assert!(refused(reply(401, &[], r#"{"message":"Bad credentials"}"#), 1).is_ok());
        let e = refused(reply(200, &[], r#"{"login":"ci-bot","id":1}"#), 1).unwrap_err();
        assert_eq!(e.class, Transient);
        assert_eq!(
            e.message,
            "GitHub still accepts the leaked token (as `ci-bot`): `GET /user` answered 200; its revocation has not taken effect yet"
        );
        // An installation token is authenticated, then forbidden `/user`.
        let e = refused(
            reply(
                403,
                &[],
                r#"{"message":"Resource not accessible by integration"}"#,
            ),
            3,
        )
        .unwrap_err();
        assert_eq!(e.class, Transient);
        assert!(
            e.message
                .starts_with("GitHub still accepts one of the 3 leaked tokens: "),
            "{}",
            e.message
        );
        let limited = [("x-ratelimit-remaining", "0"), ("retry-after", "30")];
        let e = refused(
            reply(403, &limited, r#"{"message":"API rate limit exceeded"}"#),
            1,
        )
        .unwrap_err();
        assert_eq!(
            e.class,
            RateLimited {
                retry_after: Some(Duration::from_secs(30))
            }
        );
        assert_eq!(
            refused(reply(502, &[], "<html>"), 1).unwrap_err().class,
            Transient
        );
        let e = refused(reply(404, &[], r#"{"message":"Not Found"}"#), 1).unwrap_err();
        assert_eq!(
            (e.class, e.message.as_str()),
            (Permanent, "`GET /user` answered 404: Not Found")
        );
    }

    #[test]
    fn a_leaked_env_file_yields_its_github_tokens_only() {
        let env = "# leaked\nexport GITHUB_TOKEN=ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n\
                   DATABASE_URL=postgres://u:p@db/x\nDEPLOY='github_pat_11ABCDEFG_xyz'\n\n\
                   ghs_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\nghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n";
        let (tokens, skipped) = leaked_tokens(&[env.to_string()]);
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
        assert_eq!(repo_param("acme/deploy").unwrap(), "acme/deploy");
        for bad in ["acme", "acme/../x", "acme/deploy/x", "acme/de?ploy", "../x"] {
            assert!(repo_param(bad).is_err(), "{bad}");
        }
    }
}
