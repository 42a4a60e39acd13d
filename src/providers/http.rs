//! `http.request`: a templated request to any internal API, with the expected
//! status and outputs taken from the JSON response by JSON pointer.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde_json::Value;

use super::action::{Call, IntoOutputs, Named, Perform};
use super::{ActionError, OutputSpec, OutputValue, Outputs, error_chain};
use crate::action;

pub const ACTIONS: &[super::ActionSpec] = &[Request::SPEC];

action! {
    /// A request to any HTTP API; outputs from the JSON response by JSON pointer
    "http.request" in Http => Request {
        /// GET (default), POST, PUT, PATCH, DELETE, HEAD
        method: Option<String>,
        /// the URL (never a secret: URLs end up in logs)
        url: String,
        /// request headers
        headers: Option<BTreeMap<String, String>> [secret],
        /// a JSON body
        json: Option<Value> [secret],
        /// a raw body
        body: Option<String> [secret],
        /// accepted statuses, default any 2xx
        expect_status: Option<Vec<i64>>,
        /// instead of `expect_status`: the statuses to wait for (e.g. [401,
        /// 403]); any other answer fails the attempt, to be retried. A step
        /// that waits for a refusal of the leaked credential proves it dead
        until_status: Option<Vec<i64>>,
        /// output name → JSON pointer into the response
        outputs: Option<BTreeMap<String, String>>,
        /// which outputs are secret
        secret_outputs: Option<Vec<String>>,
    } -> Named<Status>
}

impl Perform for Request {
    /// The timeout starts when the request leaves its host's gate, not
    /// while it queues there.
    const TIMES_ITSELF: bool = true;

    async fn perform(
        self,
        clients: &Clients,
        call: Call<'_>,
    ) -> Result<Named<Status>, ActionError> {
        let name = self.method.as_deref().unwrap_or("GET").to_uppercase();
        let method = reqwest::Method::from_bytes(name.as_bytes())
            .map_err(|_| ActionError::permanent(format!("`{name}` is not an HTTP method")))?;
        let url = self.url.as_str();
        let client = clients.for_url(url).map_err(|why| {
            ActionError::permanent(format!("the http provider cannot act: {why}"))
        })?;
        let mut rb = client.request(method.clone(), url);
        if let Some(headers) = &self.headers {
            rb = rb.headers(header_map(headers)?);
        }
        if let Some(json) = &self.json {
            rb = rb.json(json);
        } else if let Some(body) = &self.body {
            rb = rb.body(body.clone());
        }
        let what = format!("{method} {url}");
        let (status, retry_after, bytes) = exchange(clients, url, rb, &what, call.timeout).await?;
        let code = i64::from(status.as_u16());
        if let Some(until) = &self.until_status {
            if !until.contains(&code) {
                return Err(not_yet(&what, status, retry_after, until));
            }
        } else {
            let expected = match &self.expect_status {
                Some(codes) => codes.contains(&code),
                None => status.is_success(),
            };
            if !expected {
                return Err(refused(&what, status, retry_after, &bytes));
            }
        }
        let named = match &self.outputs {
            Some(wanted) => self.read_outputs(wanted, call, &what, status, &bytes)?,
            None => Vec::new(),
        };
        Ok(Named(Status(status.as_u16()), named))
    }
}

impl Request {
    /// The outputs the step names, each read by its JSON pointer from the
    /// response; those in `secret_outputs` are secrets named `step.name`.
    fn read_outputs(
        &self,
        wanted: &BTreeMap<String, String>,
        call: Call<'_>,
        what: &str,
        status: StatusCode,
        bytes: &[u8],
    ) -> Result<Outputs, ActionError> {
        let secret_names = self.secret_outputs.as_deref().unwrap_or_default();
        let body: Value = serde_json::from_slice(bytes).map_err(|_| {
            ActionError::permanent(format!(
                "{what} answered {status} with a body that is not JSON, so its outputs cannot be read"
            ))
        })?;
        let mut outputs = Outputs::new();
        for (name, pointer) in wanted {
            let value = body.pointer(pointer).ok_or_else(|| {
                ActionError::permanent(format!(
                    "{what} answered {status} without `{pointer}` (output `{name}`)"
                ))
            })?;
            let value = if secret_names.contains(name) {
                OutputValue::Secret(call.secret(name, super::text_of(value)))
            } else {
                OutputValue::Plain(value.clone())
            };
            outputs.push((name.clone(), value));
        }
        Ok(outputs)
    }
}

/// The response's status, which every request outputs before those the
/// step names.
#[derive(Debug)]
pub struct Status(u16);

impl IntoOutputs for Status {
    const SPECS: &'static [OutputSpec] = &[OutputSpec {
        name: "status",
        secret: false,
        doc: "the response status",
    }];

    fn into_outputs(self) -> Outputs {
        vec![("status".into(), OutputValue::Plain(self.0.into()))]
    }
}

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
        let built = if is_plain_http(url) {
            self.plain.get_or_init(plain_client)
        } else {
            self.tls.get_or_init(client)
        };
        built.as_ref().map_err(String::as_str)
    }
}

/// Whether `url` is plain `http://`, without TLS.
pub fn is_plain_http(url: &str) -> bool {
    url.get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
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

/// A step's `headers`, each value marked sensitive: it may be a secret.
fn header_map(headers: &BTreeMap<String, String>) -> Result<HeaderMap, ActionError> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| ActionError::permanent(format!("`{k}` is not a header name")))?;
        // The error names only the header.
        let mut value = HeaderValue::from_str(v).map_err(|_| {
            ActionError::permanent(format!("header `{k}` has a value that is not valid"))
        })?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}

/// Sends the request once its host's gate lets it go; it has `timeout`
/// from then to be answered. `what` is its method and URL.
async fn exchange(
    clients: &Clients,
    url: &str,
    rb: reqwest::RequestBuilder,
    what: &str,
    timeout: Duration,
) -> Result<(StatusCode, Option<Duration>, Vec<u8>), ActionError> {
    let gate = clients.gates.of(url);
    let mut ticket = gate.enter().await;
    crate::logging::startup("a request is sent");
    let exchange = async {
        let response = rb.send().await.map_err(|e| {
            let failed = if e.is_connect() {
                "failed to connect"
            } else if e.is_timeout() {
                "timed out"
            } else {
                "failed to send the request"
            };
            ActionError::transient(format!("{what}: {failed}"))
        })?;
        let status = response.status();
        ticket.answered(status, response.headers());
        let retry_after = retry_after(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|_| ActionError::transient(format!("{what}: the response was cut off")))?;
        Ok((status, retry_after, Vec::from(bytes)))
    };
    super::within(timeout, exchange).await
}

/// The error of a response whose status the step did not expect.
fn refused(
    what: &str,
    status: StatusCode,
    retry_after: Option<Duration>,
    bytes: &[u8],
) -> ActionError {
    let body = String::from_utf8_lossy(bytes);
    let snippet: String = body.trim().chars().take(ERROR_BODY_CHARS).collect();
    let message = format!("{what} answered {status}: {snippet}");
    match status.as_u16() {
        429 => ActionError::rate_limited(retry_after, message),
        503 if retry_after.is_some() => ActionError::rate_limited(retry_after, message),
        408 | 500..=599 => ActionError::transient(message),
        _ => ActionError::permanent(message),
    }
}

/// The error of a response whose status is not yet one of `until`: always
/// retryable, so the step polls until the API answers as it waits for (a
/// 429, or a 503 that says when, waits as long as it says).
fn not_yet(
    what: &str,
    status: StatusCode,
    retry_after: Option<Duration>,
    until: &[i64],
) -> ActionError {
    let codes: Vec<String> = until.iter().map(i64::to_string).collect();
    let wanted = match codes.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => "a status it waits for".into(),
    };
    let message = format!("{what} answered {status}, not yet {wanted}");
    match status.as_u16() {
        429 => ActionError::rate_limited(retry_after, message),
        503 if retry_after.is_some() => ActionError::rate_limited(retry_after, message),
        _ => ActionError::transient(message),
    }
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
    fn an_answer_not_yet_waited_for_is_retried_and_names_its_status() {
        use super::super::ErrorClass;
        let e = not_yet("GET http://api/whoami", StatusCode::OK, None, &[401, 403]);
        assert_eq!(e.class, ErrorClass::Transient);
        assert_eq!(
            e.message,
            "GET http://api/whoami answered 200 OK, not yet 401 or 403"
        );
        let e = not_yet("GET u", StatusCode::NOT_FOUND, None, &[401]);
        assert_eq!(
            (e.class, e.message.as_str()),
            (
                ErrorClass::Transient,
                "GET u answered 404 Not Found, not yet 401"
            )
        );
        let wait = Some(Duration::from_secs(2));
        let e = not_yet("GET u", StatusCode::TOO_MANY_REQUESTS, wait, &[401]);
        assert_eq!(e.class, ErrorClass::RateLimited { retry_after: wait });
    }

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
