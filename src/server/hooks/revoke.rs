//! GitHub token revocation shared by the incidents a burst of alerts
//! starts: the `github.revoke_credentials` steps of hook-started incidents
//! hand their tokens to one [`Batcher`] (an [`engine::Pool`]) instead of
//! each sending its own `POST /credentials/revoke`.
//!
//! At most one request is in flight. Tokens handed in while it is queue up,
//! and the next request takes all of them (up to GitHub's 1,000) as soon as
//! the one in flight is answered: a lone alert's token leaves at once, and
//! a burst of a hundred alerts costs a few requests, never a fixed wait.
//! Each step still journals its own attempt, and the engine retries it by
//! its own policy when the request that carried its tokens failed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use crate::engine::{Pool, Pooled};
use crate::providers::action::{self, IntoOutputs};
use crate::providers::github::{
    REVOKE_BATCH, RevokeCredentials, RevokeCredentialsOutputs, leaked_tokens,
};
use crate::providers::{ActionError, ActionSpec};
use crate::secret::{Redactor, Secret};

/// Longest piece of GitHub's answer an error quotes.
const MESSAGE_CHARS: usize = 200;

pub struct Batcher {
    url: String,
    http: reqwest::Client,
    state: Mutex<State>,
    /// Requests sent so far, for the log.
    requests: AtomicU64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<(String, Arc<Mutex<Job>>)>,
    sending: bool,
}

/// One step's tokens: answered once every one of them has been sent.
struct Job {
    left: usize,
    /// The distinct requests that carried its tokens, and the last one.
    requests: usize,
    last: u64,
    error: Option<ActionError>,
    done: Option<oneshot::Sender<Result<usize, ActionError>>>,
}

impl Batcher {
    /// Sends to `{api}/credentials/revoke` with `http`.
    pub fn new(api: &str, http: reqwest::Client) -> Arc<Batcher> {
        Arc::new(Batcher {
            url: format!("{}/credentials/revoke", api.trim_end_matches('/')),
            http,
            state: Mutex::new(State::default()),
            requests: AtomicU64::new(0),
        })
    }

    /// Revokes `tokens` in the next request (or requests, past 1,000);
    /// returns how many requests carried them.
    pub async fn revoke(self: &Arc<Self>, tokens: Vec<String>) -> Result<usize, ActionError> {
        let (tx, rx) = oneshot::channel();
        let job = Arc::new(Mutex::new(Job {
            left: tokens.len(),
            requests: 0,
            last: 0,
            error: None,
            done: Some(tx),
        }));
        let start = {
            let mut state = self.state.lock().expect("batcher lock");
            state
                .queue
                .extend(tokens.into_iter().map(|t| (t, job.clone())));
            !std::mem::replace(&mut state.sending, true)
        };
        if start {
            tokio::spawn(self.clone().drive());
        }
        rx.await
            .unwrap_or_else(|_| Err(ActionError::transient("the revocation batcher stopped")))
    }

    /// Sends what is queued, a request at a time, until nothing is.
    async fn drive(self: Arc<Self>) {
        loop {
            let batch: Vec<(String, Arc<Mutex<Job>>)> = {
                let mut state = self.state.lock().expect("batcher lock");
                if state.queue.is_empty() {
                    state.sending = false;
                    return;
                }
                let n = state.queue.len().min(REVOKE_BATCH);
                state.queue.drain(..n).collect()
            };
            let tokens: Vec<&str> = batch.iter().map(|(t, _)| t.as_str()).collect();
            let sent = self.send(&tokens).await;
            let seq = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::debug!(
                tokens = tokens.len(),
                ok = sent.is_ok(),
                "credentials/revoke sent"
            );
            for (_, job) in batch {
                settle(&job, seq, &sent);
            }
        }
    }

    /// One `POST /credentials/revoke`, without a token (GitHub refuses an
    /// authenticated one).
    async fn send(&self, tokens: &[&str]) -> Result<(), ActionError> {
        let failed = |e: reqwest::Error| {
            ActionError::transient(format!(
                "`POST /credentials/revoke`: failed to reach GitHub: {}",
                e.without_url()
            ))
        };
        let response = self
            .http
            .post(&self.url)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .json(&json!({ "credentials": tokens }))
            .send()
            .await
            .map_err(failed)?;
        let status = response.status().as_u16();
        if status == 202 {
            return Ok(());
        }
        let retry_after = crate::providers::http::retry_after(response.headers());
        let body = response.text().await.unwrap_or_default();
        // Other incidents' tokens rode in the same request: an answer that
        // echoes any of them is swept before it reaches this one's journal.
        let batched = tokens.iter().enumerate();
        let redactor =
            Redactor::of(batched.map(|(i, t)| Secret::new(format!("batched_{}", i + 1), *t)));
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_default();
        let text = format!(
            "`POST /credentials/revoke` answered HTTP {status}: {}",
            redactor.excerpt(&message, MESSAGE_CHARS)
        );
        Err(match status {
            429 | 403 if retry_after.is_some() || status == 429 => {
                ActionError::rate_limited(retry_after, text)
            }
            500..=599 => ActionError::transient(text),
            _ => ActionError::permanent(text),
        })
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// One token of `job` went in request `seq`, which ended `sent`.
fn settle(job: &Mutex<Job>, seq: u64, sent: &Result<(), ActionError>) {
    let mut job = job.lock().expect("job lock");
    job.left -= 1;
    if job.last != seq {
        job.last = seq;
        job.requests += 1;
    }
    if let Err(e) = sent {
        job.error.get_or_insert_with(|| e.clone());
    }
    if job.left == 0
        && let Some(done) = job.done.take()
    {
        let result = match job.error.take() {
            Some(e) => Err(e),
            None => Ok(job.requests),
        };
        let _ = done.send(result);
    }
}

impl Pool for Arc<Batcher> {
    fn perform<'a>(
        &'a self,
        action: &'a ActionSpec,
        params: &'a Map<String, Value>,
    ) -> Option<Pooled<'a>> {
        if action.name != RevokeCredentials::SPEC.name {
            return None;
        }
        Some(Box::pin(async move {
            let params: RevokeCredentials = action::parse(action, params)?;
            let (tokens, skipped) = leaked_tokens(&params.credentials);
            if tokens.is_empty() {
                return Err(ActionError::permanent(
                    "`credentials` holds no token to revoke",
                ));
            }
            let submitted = tokens.len() as u64;
            let requests = self.revoke(tokens).await? as u64;
            Ok(RevokeCredentialsOutputs {
                submitted,
                requests,
                skipped: skipped as u64,
            }
            .into_outputs())
        }))
    }
}
