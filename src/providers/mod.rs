//! Providers: each declares its actions (parameters, outputs, which are
//! secret) in its own file, and the live ones perform them. `validate`,
//! `plan`, `providers` and `sim` read only these declarations.

pub mod action;
pub mod aws;
pub mod git;
pub mod github;
pub mod http;
pub mod incident;
pub mod kubernetes;
pub mod manual;
mod pace;
pub mod reference;
pub mod slack;
pub mod vault;

mod live;

use std::fmt;
use std::time::Duration;

use crate::secret::Secret;

pub use live::Live;

/// The closed set of providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    Aws,
    Github,
    Git,
    Vault,
    Kubernetes,
    Slack,
    Http,
    Manual,
    Incident,
}

impl Provider {
    pub const ALL: [Provider; 9] = [
        Provider::Aws,
        Provider::Github,
        Provider::Git,
        Provider::Vault,
        Provider::Kubernetes,
        Provider::Slack,
        Provider::Http,
        Provider::Manual,
        Provider::Incident,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::Github => "github",
            Provider::Git => "git",
            Provider::Vault => "vault",
            Provider::Kubernetes => "kubernetes",
            Provider::Slack => "slack",
            Provider::Http => "http",
            Provider::Manual => "manual",
            Provider::Incident => "incident",
        }
    }

    pub fn actions(self) -> &'static [ActionSpec] {
        match self {
            Provider::Aws => aws::ACTIONS,
            Provider::Github => github::ACTIONS,
            Provider::Git => git::ACTIONS,
            Provider::Vault => vault::ACTIONS,
            Provider::Kubernetes => kubernetes::ACTIONS,
            Provider::Slack => slack::ACTIONS,
            Provider::Http => http::ACTIONS,
            Provider::Manual => manual::ACTIONS,
            Provider::Incident => incident::ACTIONS,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The shape a parameter's value must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Int,
    Bool,
    StringList,
    IntList,
    StringMap,
    /// Any YAML value; strings anywhere inside are templates.
    Any,
}

impl ParamType {
    pub fn describe(self) -> &'static str {
        match self {
            ParamType::String => "a string",
            ParamType::Int => "an integer",
            ParamType::Bool => "a boolean",
            ParamType::StringList => "a list of strings",
            ParamType::IntList => "a list of integers",
            ParamType::StringMap => "a mapping of strings",
            ParamType::Any => "any value",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: ParamType,
    pub required: bool,
    /// Whether a secret may flow into this parameter.
    pub secret: bool,
    /// Slack mrkdwn: what a template puts into it is escaped, so a value
    /// cannot mention `@channel` or hide a link.
    pub mrkdwn: bool,
    pub doc: &'static str,
}

#[derive(Debug, Clone, Copy)]
pub struct OutputSpec {
    pub name: &'static str,
    pub secret: bool,
    pub doc: &'static str,
}

#[derive(Debug)]
pub struct ActionSpec {
    pub name: &'static str,
    pub provider: Provider,
    pub doc: &'static str,
    pub params: &'static [ParamSpec],
    pub outputs: &'static [OutputSpec],
    /// Outputs are named by the step itself (`http.request`'s `outputs`).
    pub dynamic_outputs: bool,
    /// Running it twice has the effect of running it once (revoking a
    /// revoked key): safe to repeat after a crash mid-flight.
    pub idempotent: bool,
    /// Its success proves the leaked credential dead: the provider refused
    /// it. A step of such an action is a verify step (see
    /// `runbook::Step::proves_dead`).
    pub proves_dead: bool,
    /// Its implementation; `None` for those the engine performs itself.
    pub run: Option<action::Run>,
    /// It watches for a condition over a window: how long a rehearsal
    /// waits before it is met (see [`action::Watches`]).
    pub window: Option<action::Window>,
}

impl ActionSpec {
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// Every declared action, in provider order.
pub fn all_actions() -> impl Iterator<Item = &'static ActionSpec> {
    Provider::ALL.into_iter().flat_map(|p| p.actions().iter())
}

pub fn find_action(name: &str) -> Option<&'static ActionSpec> {
    all_actions().find(|a| a.name == name)
}

/// One output value of a finished action.
#[derive(Debug, Clone)]
pub enum OutputValue {
    Plain(serde_json::Value),
    Secret(Secret),
}

pub type Outputs = Vec<(String, OutputValue)>;

/// How the engine should treat a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// A 5xx, a reset connection: worth another attempt.
    Transient,
    /// The server asked us to slow down, optionally saying for how long.
    RateLimited { retry_after: Option<Duration> },
    /// The attempt ran past the step's timeout.
    Timeout,
    /// Retrying cannot help (bad request, access denied, not found).
    Permanent,
    /// Not a failure: what the step watches for has not happened yet (the
    /// old key is still in use). The step looks again at `until`, in a
    /// later `quench tick`, or at once on a rehearsal's virtual clock.
    NotYet {
        until: chrono::DateTime<chrono::Utc>,
    },
}

impl ErrorClass {
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::RateLimited { .. } => "rate_limited",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Permanent => "permanent",
            ErrorClass::NotYet { .. } => "not_yet",
        }
    }

    pub fn retryable(self) -> bool {
        !matches!(self, ErrorClass::Permanent | ErrorClass::NotYet { .. })
    }
}

/// A failed attempt. The message never contains a request's secret: the
/// provider leaves it out, and the journal's redactor sweeps what slips by.
#[derive(Debug, Clone)]
pub struct ActionError {
    pub class: ErrorClass,
    pub message: String,
}

impl ActionError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        let message = message.into();
        Self { class, message }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Permanent, message)
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Transient, message)
    }

    pub fn rate_limited(retry_after: Option<Duration>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::RateLimited { retry_after }, message)
    }

    /// What the step watches for has not happened yet: look again at `until`.
    pub fn not_yet(until: chrono::DateTime<chrono::Utc>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::NotYet { until }, message)
    }

    /// The same error about `what`, which its message then names first.
    pub fn about(self, what: impl fmt::Display) -> Self {
        let message = format!("{what}: {}", self.message);
        Self { message, ..self }
    }

    /// An attempt that had no answer within its step's `timeout`.
    pub fn timed_out(timeout: Duration) -> Self {
        let message = format!("no answer within {}", crate::time::human(timeout));
        Self::new(ErrorClass::Timeout, message)
    }
}

/// An attempt (or the part of one that is waited on), with `timeout` to be
/// answered.
pub async fn within<T>(
    timeout: Duration,
    attempt: impl Future<Output = Result<T, ActionError>>,
) -> Result<T, ActionError> {
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(ActionError::timed_out(timeout)))
}

/// `e` and its causes, `: `-separated, each once (reqwest's and gix's own
/// messages are often only the step that failed).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// `items` in backticks, `, `-separated.
pub(crate) fn ticked<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| format!("`{i}`")).collect();
    items.join(", ")
}

/// A JSON value as text: a string as it is, anything else as JSON.
pub(crate) fn text_of(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A required parameter, which a template may have rendered empty.
pub(crate) fn given<'a>(name: &str, value: &'a str) -> Result<&'a str, ActionError> {
    if value.trim().is_empty() {
        return Err(ActionError::permanent(format!("`{name}` is empty")));
    }
    Ok(value)
}

/// A duration parameter, `default` when not given (an optional input
/// renders as "").
pub(crate) fn duration_param(
    value: Option<&str>,
    name: &str,
    default: Duration,
) -> Result<Duration, ActionError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => crate::time::parse_duration(v)
            .map_err(|e| ActionError::permanent(format!("`{name}`: {e}"))),
    }
}

/// Looks at a rollout every `poll` until `look` finds it done (`None`),
/// for at most `wait`; `look` says how far it got. `what` names it.
pub(crate) async fn roll_out<F: Future<Output = Result<Option<String>, ActionError>>>(
    what: &str,
    wait: Duration,
    poll: Duration,
    look: impl Fn() -> F,
) -> Result<(), ActionError> {
    let deadline = tokio::time::Instant::now() + wait;
    while let Some(progress) = look().await? {
        if tokio::time::Instant::now() + poll > deadline {
            return Err(ActionError::permanent(format!(
                "{what} did not complete within {}: {progress}",
                crate::time::human(wait)
            )));
        }
        tokio::time::sleep(poll).await;
    }
    Ok(())
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_are_unique_and_prefixed_by_provider() {
        let mut seen = std::collections::HashSet::new();
        for a in all_actions() {
            assert!(seen.insert(a.name), "duplicate action {}", a.name);
            assert!(
                a.name.starts_with(&format!("{}.", a.provider.name())),
                "{}",
                a.name
            );
        }
    }
}
