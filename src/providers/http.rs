//! `http.request`: a templated request to any internal API, with the expected
//! status and outputs taken from the JSON response by JSON pointer.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde_json::{Map, Value};

use super::ParamType as P;
use super::{ActionError, ActionSpec, OutputValue, Outputs, Provider, opt, out, req, secret};
use crate::secret::Secret;

pub const ACTIONS: &[ActionSpec] = &[ActionSpec {
    name: "http.request",
    provider: Provider::Http,
    doc: "A request to any HTTP API; outputs from the JSON response by JSON pointer",
    params: &[
        opt(
            "method",
            P::String,
            "GET (default), POST, PUT, PATCH, DELETE, HEAD",
        ),
        req(
            "url",
            P::String,
            "the URL (never a secret: URLs end up in logs)",
        ),
        secret(opt("headers", P::StringMap, "request headers")),
        secret(opt("json", P::Any, "a JSON body")),
        secret(opt("body", P::String, "a raw body")),
        opt(
            "expect_status",
            P::IntList,
            "accepted statuses, default any 2xx",
        ),
        opt(
            "outputs",
            P::StringMap,
            "output name → JSON pointer into the response",
        ),
        opt("secret_outputs", P::StringList, "which outputs are secret"),
    ],
    outputs: &[out("status", "the response status")],
    dynamic_outputs: true,
    idempotent: false,
    proves_dead: false,
    run: None,
}];

pub const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// Methods that HTTP defines as idempotent (RFC 9110, 9.2.2): a request
/// repeated after a crash has the effect of one.
pub const IDEMPOTENT_METHODS: &[&str] = &["GET", "HEAD", "PUT", "DELETE", "OPTIONS"];

/// Longest slice of a response body an error carries. The engine redacts
/// the error, then cuts it to what the journal shows.
const ERROR_BODY_CHARS: usize = 4096;

/// The clients of `http.request`, shared by every step of an incident so
/// connections to an API are reused across steps.
///
/// A plain-`http://` URL never needs a certificate, so it is served by a
/// client with no root certificates at all, which costs nothing to build.
/// The TLS client loads every system root certificate (~4 ms), so it is built
/// on the first `https://` request, not at start-up: a runbook against an
/// internal plain-HTTP API reaches its first request that much sooner.
#[derive(Debug, Clone, Default)]
pub struct Clients {
    plain: Arc<OnceLock<Result<reqwest::Client, String>>>,
    tls: Arc<OnceLock<Result<reqwest::Client, String>>>,
    gates: super::pace::Gates,
}

impl Clients {
    /// The client for `url`, or why none can be built (for example: no root
    /// certificate could be loaded, so no `https://` request can be checked).
    pub fn for_url(&self, url: &str) -> Result<&reqwest::Client, &str> {
        let plain = url
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
        let built = if plain {
            self.plain.get_or_init(plain_client)
        } else {
            self.tls.get_or_init(client)
        };
        built.as_ref().map_err(String::as_str)
    }
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("quench/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(90))
}

/// A client that checks certificates against the system's roots. Building
/// it fails, and never panics, when no root certificate can be loaded.
pub fn client() -> Result<reqwest::Client, String> {
    builder()
        .build()
        .map_err(|e| format!("failed to build the HTTPS client: {}", error_chain(&e)))
}

/// A client for `http://` URLs only: it trusts no certificate, so it would
/// refuse any `https://` server, and it needs no system roots.
fn plain_client() -> Result<reqwest::Client, String> {
    builder()
        .tls_certs_only(std::iter::empty())
        .build()
        .map_err(|e| format!("failed to build the HTTP client: {}", error_chain(&e)))
}

/// `e` and its causes, `: `-separated (reqwest's own message is only "builder error").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn str_param<'a>(params: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    params.get(name).and_then(Value::as_str)
}

/// A step's `headers`, each value marked sensitive: it may be a secret.
fn header_map(headers: &Map<String, Value>) -> Result<HeaderMap, ActionError> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| ActionError::permanent(format!("`{k}` is not a header name")))?;
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        // The error names only the header.
        let mut value = HeaderValue::from_str(&text).map_err(|_| {
            ActionError::permanent(format!("header `{k}` has a value that is not valid"))
        })?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}

/// Performs one attempt of `http.request` with already-rendered parameters,
/// which has `timeout` to be answered from when it leaves its host's gate.
/// `step` names the secret outputs (`[REDACTED step.name …]`).
pub async fn request(
    clients: &Clients,
    step: &str,
    params: &Map<String, Value>,
    timeout: Duration,
) -> Result<Outputs, ActionError> {
    let method_name = str_param(params, "method").unwrap_or("GET").to_uppercase();
    let method = reqwest::Method::from_bytes(method_name.as_bytes())
        .map_err(|_| ActionError::permanent(format!("`{method_name}` is not an HTTP method")))?;
    let url = str_param(params, "url").unwrap_or_default();
    let client = clients
        .for_url(url)
        .map_err(|why| ActionError::permanent(format!("the http provider cannot act: {why}")))?;
    let mut rb = client.request(method.clone(), url);

    if let Some(Value::Object(headers)) = params.get("headers") {
        rb = rb.headers(header_map(headers)?);
    }
    if let Some(json) = params.get("json") {
        rb = rb.json(json);
    } else if let Some(body) = str_param(params, "body") {
        rb = rb.body(body.to_string());
    }

    let gate = clients.gates.of(url);
    let mut ticket = gate.enter().await;
    crate::logging::startup("a request is sent");
    let exchange = async {
        let response = rb.send().await.map_err(|e| {
            let what = if e.is_connect() {
                "failed to connect"
            } else if e.is_timeout() {
                "timed out"
            } else {
                "failed to send the request"
            };
            ActionError::transient(format!("{method} {url}: {what}"))
        })?;
        let status = response.status();
        ticket.answered(status, response.headers());
        let retry_after = retry_after(response.headers());
        let bytes = response.bytes().await.map_err(|_| {
            ActionError::transient(format!("{method} {url}: the response was cut off"))
        })?;
        Ok((status, retry_after, bytes))
    };
    let (status, retry_after, bytes) = super::within(timeout, exchange).await?;

    let expected = match params.get("expect_status") {
        Some(Value::Array(codes)) => codes
            .iter()
            .any(|c| c.as_u64() == Some(status.as_u16().into())),
        _ => status.is_success(),
    };
    if !expected {
        let body = String::from_utf8_lossy(&bytes);
        let snippet: String = body.trim().chars().take(ERROR_BODY_CHARS).collect();
        let message = format!("{method} {url} answered {status}: {snippet}");
        return Err(match status.as_u16() {
            429 => ActionError::rate_limited(retry_after, message),
            503 if retry_after.is_some() => ActionError::rate_limited(retry_after, message),
            408 | 500..=599 => ActionError::transient(message),
            _ => ActionError::permanent(message),
        });
    }

    let mut outputs: Outputs = vec![("status".into(), OutputValue::Plain(status.as_u16().into()))];
    let Some(Value::Object(wanted)) = params.get("outputs") else {
        return Ok(outputs);
    };
    let secret_names: Vec<&str> = match params.get("secret_outputs") {
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let body: Value = serde_json::from_slice(&bytes).map_err(|_| {
        ActionError::permanent(format!(
            "{method} {url} answered {status} with a body that is not JSON, so its outputs cannot be read"
        ))
    })?;
    for (name, pointer) in wanted {
        let pointer = pointer.as_str().unwrap_or_default();
        let value = body.pointer(pointer).ok_or_else(|| {
            ActionError::permanent(format!(
                "{method} {url} answered {status} without `{pointer}` (output `{name}`)"
            ))
        })?;
        let value = if secret_names.contains(&name.as_str()) {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            OutputValue::Secret(Secret::new(format!("{step}.{name}"), text))
        } else {
            OutputValue::Plain(value.clone())
        };
        outputs.push((name.clone(), value));
    }
    Ok(outputs)
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}
