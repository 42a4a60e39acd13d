//! Slack's Web API on slack-morphism: messages, channels, invitations,
//! token revocation and the proof of it, approvals with buttons, and the
//! incident's status message and document.
//!
//! Requests go through the client session's `http_post`, so each method is
//! sent with exactly the body Slack documents and answers are read as
//! Slack's `{ok, error}` envelope; slack-morphism's own rate controller is
//! left off: the engine owns retries, and a 429 becomes
//! `ErrorClass::RateLimited` with Slack's `Retry-After`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use slack_morphism::errors::SlackClientError;
use slack_morphism::hyper_tokio::SlackClientHyperConnector;
use slack_morphism::{SlackApiToken, SlackApiTokenValue, SlackClient};
use tokio::sync::oneshot;

use super::action::{Call, Perform};
use super::{ActionError, given};
use crate::action;
use crate::config::{self, SlackConfig};
use crate::secret::Secret;

pub const ACTIONS: &[super::ActionSpec] = &[
    PostMessage::SPEC,
    UpdateMessage::SPEC,
    CreateChannel::SPEC,
    Invite::SPEC,
    RevokeToken::SPEC,
    RequestApproval::SPEC,
    VerifyRevoked::SPEC,
];

action! {
    /// Post a message to a channel (chat.postMessage)
    "slack.post_message" in Slack => PostMessage {
        /// channel name or id
        channel: String,
        /// message text (never a secret)
        text: String [mrkdwn],
        /// reply in this message's thread
        thread_ts: Option<String>,
    } -> PostMessageOutputs {
        /// message timestamp
        ts: Value,
        /// channel id
        channel: Value,
    }
}

impl Perform for PostMessage {
    async fn perform(self, slack: &Slack, _: Call<'_>) -> Result<PostMessageOutputs, ActionError> {
        let channel = given("channel", &self.channel)?;
        let text = given("text", &self.text)?;
        let thread_ts = self.thread_ts.as_deref();
        let (channel, ts) = slack.post(channel, text, None, thread_ts).await?;
        Ok(PostMessageOutputs {
            ts: ts.into(),
            channel: channel.into(),
        })
    }
}

action! {
    /// Replace a message's text (chat.update)
    "slack.update_message" in Slack => UpdateMessage [idempotent] {
        /// channel id
        channel: String,
        /// message timestamp
        ts: String,
        /// new text
        text: String [mrkdwn],
    } -> ()
}

impl Perform for UpdateMessage {
    async fn perform(self, slack: &Slack, _: Call<'_>) -> Result<(), ActionError> {
        let channel = given("channel", &self.channel)?;
        let ts = given("ts", &self.ts)?;
        slack
            .update(channel, ts, given("text", &self.text)?, None)
            .await
    }
}

action! {
    /// Create an incident channel (conversations.create)
    "slack.create_channel" in Slack => CreateChannel {
        /// channel name
        name: String,
        /// private channel
        private: Option<bool>,
    } -> CreateChannelOutputs {
        /// channel id
        channel: Value,
    }
}

impl Perform for CreateChannel {
    async fn perform(
        self,
        slack: &Slack,
        _: Call<'_>,
    ) -> Result<CreateChannelOutputs, ActionError> {
        let body = json!({
            "name": given("name", &self.name)?,
            "is_private": self.private.unwrap_or(false),
        });
        let answer = slack.call("conversations.create", &body).await?;
        Ok(CreateChannelOutputs {
            channel: answer["channel"]["id"].clone(),
        })
    }
}

action! {
    /// Invite users to a channel (conversations.invite)
    "slack.invite" in Slack => Invite [idempotent] {
        /// channel id
        channel: String,
        /// user ids
        users: Vec<String>,
    } -> ()
}

impl Perform for Invite {
    async fn perform(self, slack: &Slack, _: Call<'_>) -> Result<(), ActionError> {
        let channel = given("channel", &self.channel)?;
        if self.users.is_empty() {
            return Err(ActionError::permanent("`users` holds no user id"));
        }
        // Slack takes `users` as one comma-separated string.
        let body = json!({ "channel": channel, "users": self.users.join(",") });
        match slack.call("conversations.invite", &body).await {
            Err(e) if e.message.contains("`already_in_channel`") => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

action! {
    /// Revoke a leaked Slack token (auth.revoke, as the token itself; needs no
    /// bot token)
    "slack.revoke_token" in Slack => RevokeToken [idempotent] {
        /// the leaked token
        token: String [secret],
    } -> RevokeTokenOutputs {
        /// true when Slack revoked it
        revoked: Value,
        /// true when Slack said it was revoked before
        already: bool,
    }
}

impl Perform for RevokeToken {
    /// `auth.revoke` authenticates as the leaked token itself: whoever holds
    /// a token may revoke it, so no token of ours is needed or sent.
    async fn perform(self, slack: &Slack, _: Call<'_>) -> Result<RevokeTokenOutputs, ActionError> {
        let token = api_token(given("token", &self.token)?.trim());
        let method = "auth.revoke";
        match slack.post_as(&token, method, &json!({})).await {
            Ok(answer) => Ok(RevokeTokenOutputs {
                revoked: answer.get("revoked").cloned().unwrap_or(json!(true)),
                already: false,
            }),
            // Revoking a revoked token: the effect we wanted is there.
            Err(SlackClientError::ApiError(a)) if a.code == "token_revoked" => {
                Ok(RevokeTokenOutputs {
                    revoked: json!(true),
                    already: true,
                })
            }
            Err(e) => Err(classify(method, &e)),
        }
    }
}

action! {
    /// Prove a leaked token dead: `auth.test` as the token must be refused
    /// (`invalid_auth`, `token_revoked`, `account_inactive`); a token Slack
    /// still accepts fails the attempt, to be retried
    "slack.verify_revoked" in Slack => VerifyRevoked [idempotent, proves_dead] {
        /// the leaked token
        token: String [secret],
    } -> VerifyRevokedOutputs {
        /// the error code Slack refused the token with
        refused_with: String,
    }
}

impl Perform for VerifyRevoked {
    /// `auth.test` authenticates as the leaked token, as `auth.revoke` does:
    /// only Slack's answer to the token itself proves it dead.
    async fn perform(
        self,
        slack: &Slack,
        _: Call<'_>,
    ) -> Result<VerifyRevokedOutputs, ActionError> {
        let token = api_token(given("token", &self.token)?.trim());
        let method = "auth.test";
        match slack.post_as(&token, method, &json!({})).await {
            Ok(answer) => Err(still_accepted(&answer)),
            Err(SlackClientError::ApiError(a)) if DEAD_CODES.contains(&a.code.as_str()) => {
                Ok(VerifyRevokedOutputs {
                    refused_with: a.code,
                })
            }
            Err(e) => Err(classify(method, &e)),
        }
    }
}

/// The codes with which `auth.test` refuses a token that no longer works:
/// unknown or revoked, or its user deactivated.
const DEAD_CODES: &[&str] = &["invalid_auth", "token_revoked", "account_inactive"];

/// The retryable error of a token `auth.test` accepted (`ok: true`): its
/// revocation has not taken effect yet. It names whom the token acts as
/// (never the token).
fn still_accepted(answer: &Value) -> ActionError {
    let field = |k: &str| {
        answer[k]
            .as_str()
            .filter(|v| v.chars().all(|c| c.is_ascii_alphanumeric()))
    };
    let whom = match (field("user_id"), field("team_id")) {
        (Some(user), Some(team)) => format!(" (as user `{user}` of team `{team}`)"),
        _ => String::new(),
    };
    ActionError::transient(format!(
        "Slack still accepts the leaked token{whom}: `auth.test` answered `ok: true`; its revocation has not taken effect yet"
    ))
}

action! {
    /// Ask for approval with buttons and wait for a click (needs `quench
    /// serve`)
    "slack.request_approval" in Slack => RequestApproval {
        /// channel id
        channel: String,
        /// what is being approved
        text: String [mrkdwn],
        /// Slack user ids who may approve (default: anyone `[[chatops.allow]]`
        /// lets approve)
        approvers: Option<Vec<String>>,
    } -> RequestApprovalOutputs {
        /// who approved
        approved_by: String,
    }
}

impl Perform for RequestApproval {
    async fn perform(
        self,
        slack: &Slack,
        _: Call<'_>,
    ) -> Result<RequestApprovalOutputs, ActionError> {
        let channel = given("channel", &self.channel)?;
        let text = given("text", &self.text)?;
        let (id, rx) = APPROVALS.open(None, self.approvers.unwrap_or_default());
        // Dropped if the post fails or the attempt times out: the button then
        // answers that the question is no longer asked.
        let _guard = Forget(id.clone());
        let blocks = Some(approval_blocks(text, &id));
        let (channel_id, ts) = slack.post(channel, text, blocks, None).await?;
        let decision = rx
            .await
            .map_err(|_| ActionError::permanent("the approval was withdrawn"))?;
        let verdict = if decision.approved {
            "approved"
        } else {
            "declined"
        };
        let _ = slack
            .update(
                &channel_id,
                &ts,
                &format!("{text}\n{verdict} by <@{}>", decision.user),
                Some(json!([])),
            )
            .await;
        if decision.approved {
            Ok(RequestApprovalOutputs {
                approved_by: decision.user,
            })
        } else {
            Err(ActionError::permanent(format!(
                "declined by Slack user `{}`",
                decision.user
            )))
        }
    }
}

pub const DEFAULT_API_URL: &str = "https://slack.com/api/";

/// The longest text `chat.postMessage` takes is 40,000 characters; the
/// document is cut well before, leaving room for the notice that says so.
const MAX_TEXT: usize = 38_000;

/// Slack's error codes that mean "try again": its side failed.
const TRANSIENT_CODES: &[&str] = &[
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

const NO_BOT_TOKEN: &str = "no Slack bot token: set SLACK_BOT_TOKEN or [providers.slack] bot_token";

type Connector = SlackClientHyperConnector<HttpsConnector<HttpConnector>>;

/// Whether an action acts with the engine's bot token. `auth.revoke`
/// authenticates as the token it revokes.
pub fn needs_bot_token(action: &str) -> bool {
    action != RevokeToken::SPEC.name && action != VerifyRevoked::SPEC.name
}

/// The Slack client of one incident (or of `quench serve`).
#[derive(Debug, Clone)]
pub struct Slack {
    client: Arc<SlackClient<Connector>>,
    /// The bot token, or why the actions that need it cannot act.
    bot: Result<(SlackApiToken, Secret), String>,
}

fn api_token(value: &str) -> SlackApiToken {
    SlackApiToken::new(SlackApiTokenValue::new(value.to_string()))
}

impl Slack {
    /// The API base from `[providers.slack] api_url` or `SLACK_API_URL`, the
    /// bot token from `[providers.slack] bot_token` or `SLACK_BOT_TOKEN`.
    pub fn build(config: &SlackConfig) -> Result<Slack, String> {
        let api_url = config::setting(config.api_url.as_deref(), &["SLACK_API_URL"])
            .unwrap_or_else(|| DEFAULT_API_URL.to_string());
        let parsed: http::Uri = api_url
            .parse()
            .ok()
            .filter(|u: &http::Uri| u.scheme().is_some() && u.authority().is_some())
            .ok_or_else(|| format!("the Slack API URL `{api_url}` is not an absolute URL"))?;
        // Plain HTTP is for a local Slack-compatible gateway (and tests);
        // slack-morphism's default connector would refuse it.
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| format!("failed to load the system's root certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let connector = SlackClientHyperConnector::with_connector(https)
            .with_slack_api_url(parsed.to_string().trim_end_matches('/'));
        let client = Arc::new(SlackClient::new(connector));
        let bot = config::credential(
            "slack_bot_token",
            config.bot_token.as_deref(),
            &["SLACK_BOT_TOKEN"],
        )
        .map_err(|e| format!("no Slack bot token: {e}"))
        .and_then(|token| token.ok_or_else(|| NO_BOT_TOKEN.to_string()))
        .map(|token| (api_token(token.expose()), token));
        Ok(Slack { client, bot })
    }

    /// The bot token, if one is configured.
    pub fn token(&self) -> Option<&Secret> {
        self.bot.as_ref().ok().map(|(_, s)| s)
    }

    pub fn has_bot_token(&self) -> bool {
        self.bot.is_ok()
    }

    /// Why the actions that need the bot token cannot act, if they cannot.
    pub fn no_token(&self) -> Option<&str> {
        self.bot.as_ref().err().map(String::as_str)
    }

    /// Posts a message; returns its channel id and `ts`.
    pub async fn post(
        &self,
        channel: &str,
        text: &str,
        blocks: Option<Value>,
        thread_ts: Option<&str>,
    ) -> Result<(String, String), ActionError> {
        let mut body = json!({ "channel": channel, "text": text });
        if let Some(b) = blocks {
            body["blocks"] = b;
        }
        if let Some(t) = thread_ts {
            body["thread_ts"] = json!(t);
        }
        let answer = self.call("chat.postMessage", &body).await?;
        match (answer["channel"].as_str(), answer["ts"].as_str()) {
            (Some(c), Some(t)) => Ok((c.to_string(), t.to_string())),
            _ => Err(ActionError::permanent(
                "`chat.postMessage` answered without `channel` and `ts`",
            )),
        }
    }

    /// Replaces a message in place. `blocks: Some([])` removes its buttons.
    pub async fn update(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: Option<Value>,
    ) -> Result<(), ActionError> {
        let mut body = json!({ "channel": channel, "ts": ts, "text": text });
        if let Some(b) = blocks {
            body["blocks"] = b;
        }
        self.call("chat.update", &body).await.map(|_| ())
    }

    /// Posts the incident document in the status message's thread, cut to
    /// what one message holds.
    pub async fn post_document(
        &self,
        channel: &str,
        thread_ts: &str,
        document: &str,
    ) -> Result<(), ActionError> {
        let text = if document.len() > MAX_TEXT {
            let mut cut = MAX_TEXT;
            while !document.is_char_boundary(cut) {
                cut -= 1;
            }
            format!(
                "{}\n… (cut: the whole document is in the incident's directory)",
                crate::mrkdwn::code_block(&document[..cut])
            )
        } else {
            crate::mrkdwn::code_block(document)
        };
        self.post(channel, &text, None, Some(thread_ts))
            .await
            .map(|_| ())
    }

    async fn call(&self, method: &str, body: &Value) -> Result<Value, ActionError> {
        let (token, _) = self.bot.as_ref().map_err(ActionError::permanent)?;
        self.post_as(token, method, body)
            .await
            .map_err(|e| classify(method, &e))
    }

    /// Posts `method` as `token`; Slack's error as it came, for callers
    /// that read its code themselves.
    async fn post_as(
        &self,
        token: &SlackApiToken,
        method: &str,
        body: &Value,
    ) -> Result<Value, SlackClientError> {
        let session = self.client.open_session(token);
        session
            .http_session_api
            .http_post::<Value, Value>(method, body, None)
            .await
    }
}

/// How the engine should treat a Slack error. Slack answers most failures
/// with HTTP 200 and `{"ok": false, "error": "code"}`; only the code is
/// kept, never the body (it can quote what we sent).
pub fn classify(method: &str, e: &SlackClientError) -> ActionError {
    match e {
        SlackClientError::RateLimitError(r) => ActionError::rate_limited(
            // Slack always sends `Retry-After`; a minute is its advice when
            // a proxy swallowed it.
            Some(r.retry_after.unwrap_or(Duration::from_secs(60))),
            format!("`{method}` was rate limited by Slack"),
        ),
        SlackClientError::ApiError(a) => {
            let message = format!("`{method}` answered `{}`", a.code);
            if a.code == "ratelimited" {
                ActionError::rate_limited(Some(Duration::from_secs(60)), message)
            } else if TRANSIENT_CODES.contains(&a.code.as_str()) {
                ActionError::transient(message)
            } else {
                ActionError::permanent(message)
            }
        }
        SlackClientError::HttpError(h) => {
            let message = format!("`{method}` answered HTTP {}", h.status_code.as_u16());
            if h.status_code.is_server_error() {
                ActionError::transient(message)
            } else {
                ActionError::permanent(message)
            }
        }
        SlackClientError::HttpProtocolError(_) | SlackClientError::EndOfStream(_) => {
            ActionError::transient(format!("`{method}`: failed to reach Slack"))
        }
        SlackClientError::ProtocolError(_) => ActionError::permanent(format!(
            "`{method}` answered something that is not Slack's JSON envelope"
        )),
        other => ActionError::permanent(format!(
            "`{method}` failed: {}",
            other.to_string().lines().next().unwrap_or_default()
        )),
    }
}

/// The Block Kit of an approval request: the question and two buttons
/// whose value names the waiting request.
pub fn approval_blocks(text: &str, id: &str) -> Value {
    json!([
        { "type": "section", "text": { "type": "mrkdwn", "text": text } },
        {
            "type": "actions",
            "block_id": "quench_approval",
            "elements": [
                {
                    "type": "button", "action_id": APPROVE, "value": id, "style": "primary",
                    "text": { "type": "plain_text", "text": "Approve" }
                },
                {
                    "type": "button", "action_id": DENY, "value": id, "style": "danger",
                    "text": { "type": "plain_text", "text": "Deny" }
                }
            ]
        }
    ])
}

/// `action_id`s of the approval buttons.
pub const APPROVE: &str = "quench_approve";
pub const DENY: &str = "quench_deny";

/// A click on an approval button, once the server has authorized it.
#[derive(Debug, Clone)]
pub struct Decision {
    pub approved: bool,
    pub user: String,
}

/// Who may answer a waiting approval.
#[derive(Debug, Clone)]
pub struct Waiting {
    /// The runbook it belongs to, for `[[chatops.allow]]`; `None` for
    /// `slack.request_approval`, whose step names its approvers.
    pub runbook: Option<String>,
    /// Slack user ids; empty means whoever the rules let approve.
    pub approvers: Vec<String>,
}

/// Approvals waiting for a click. Clicks arrive at `quench serve`, which
/// runs every incident it starts in its own process: one registry per
/// process is where both meet.
#[derive(Default)]
pub struct Approvals {
    waiting: Mutex<HashMap<String, (Waiting, oneshot::Sender<Decision>)>>,
    served: AtomicBool,
}

pub static APPROVALS: LazyLock<Approvals> = LazyLock::new(Approvals::default);

impl Approvals {
    /// Registers a question; the id goes in the buttons' `value`.
    pub fn open(
        &self,
        runbook: Option<String>,
        approvers: Vec<String>,
    ) -> (String, oneshot::Receiver<Decision>) {
        let id = format!("{:016x}", rand::random::<u64>());
        let (tx, rx) = oneshot::channel();
        let waiting = Waiting { runbook, approvers };
        self.lock().insert(id.clone(), (waiting, tx));
        (id, rx)
    }

    /// Who may answer `id`, while it waits.
    pub fn waiting(&self, id: &str) -> Option<Waiting> {
        self.lock().get(id).map(|(w, _)| w.clone())
    }

    /// Answers `id`; false when nothing waits for it any more.
    pub fn answer(&self, id: &str, decision: Decision) -> bool {
        let entry = self.lock().remove(id);
        entry.is_some_and(|(_, tx)| tx.send(decision).is_ok())
    }

    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (Waiting, oneshot::Sender<Decision>)>> {
        self.waiting.lock().expect("approvals lock poisoned")
    }

    /// `quench serve` receives clicks in this process from now on.
    pub fn serve(&self) {
        self.served.store(true, Ordering::SeqCst);
    }

    pub fn served(&self) -> bool {
        self.served.load(Ordering::SeqCst)
    }
}

struct Forget(String);

impl Drop for Forget {
    fn drop(&mut self) {
        APPROVALS.forget(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ErrorClass;
    use slack_morphism::errors::{SlackClientApiError, SlackRateLimitError};

    #[test]
    fn slack_errors_are_classified_by_code() {
        let api = |code: &str| {
            classify(
                "chat.postMessage",
                &SlackClientError::ApiError(SlackClientApiError::new(code.into())),
            )
        };
        assert_eq!(api("channel_not_found").class, ErrorClass::Permanent);
        assert_eq!(
            api("channel_not_found").message,
            "`chat.postMessage` answered `channel_not_found`"
        );
        assert_eq!(api("internal_error").class, ErrorClass::Transient);
        let limited = classify(
            "chat.update",
            &SlackClientError::RateLimitError(
                SlackRateLimitError::new().with_retry_after(Duration::from_secs(7)),
            ),
        );
        assert_eq!(
            limited.class,
            ErrorClass::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
    }

    #[test]
    fn a_token_auth_test_accepts_is_still_alive_and_named_by_its_ids_only() {
        let e = still_accepted(&json!({
            "ok": true, "url": "https://acme.slack.com/", "team": "Acme",
            "user": "ci-bot", "team_id": "T0ACME", "user_id": "U0CIBOT"
        }));
        assert_eq!(e.class, ErrorClass::Transient);
        assert_eq!(
            e.message,
            "Slack still accepts the leaked token (as user `U0CIBOT` of team `T0ACME`): `auth.test` answered `ok: true`; its revocation has not taken effect yet"
        );
        let odd = still_accepted(&json!({"ok": true, "user_id": "<!here>", "team_id": "T1"}));
        assert!(!odd.message.contains("here"), "{}", odd.message);
    }

    #[test]
    fn an_answered_approval_is_gone() {
        let (id, mut rx) = APPROVALS.open(Some("rb".into()), vec!["U1".into()]);
        assert_eq!(APPROVALS.waiting(&id).unwrap().approvers, ["U1"]);
        assert!(APPROVALS.answer(
            &id,
            Decision {
                approved: true,
                user: "U1".into()
            }
        ));
        assert!(rx.try_recv().unwrap().approved);
        assert!(APPROVALS.waiting(&id).is_none());
        assert!(!APPROVALS.answer(
            &id,
            Decision {
                approved: true,
                user: "U1".into()
            }
        ));
    }
}
