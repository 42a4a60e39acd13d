//! AWS: IAM access keys, Secrets Manager, CloudTrail and STS. Declared here so
//! runbooks validate, plan and rehearse; live calls arrive with the AWS SDK
//! (`Provider::is_built`).

use super::ParamType as P;
use super::{ActionSpec, Provider, opt, out, req, secret, secret_out};

pub const ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        name: "aws.deactivate_access_key",
        provider: Provider::Aws,
        doc: "Set an IAM access key to Inactive: it stops working at once",
        params: &[
            req("user", P::String, "IAM user that owns the key"),
            req("access_key_id", P::String, "the key id (AKIA…/ASIA…)"),
        ],
        outputs: &[out("status", "the key's status afterwards (Inactive)")],
        dynamic_outputs: false,
        idempotent: true,
        run: None,
    },
    ActionSpec {
        name: "aws.create_access_key",
        provider: Provider::Aws,
        doc: "Create a new access key for an IAM user",
        params: &[req("user", P::String, "IAM user")],
        outputs: &[
            out("access_key_id", "the new key id"),
            secret_out("secret_access_key", "the new secret access key"),
        ],
        dynamic_outputs: false,
        idempotent: false,
        run: None,
    },
    ActionSpec {
        name: "aws.delete_access_key",
        provider: Provider::Aws,
        doc: "Delete an IAM access key for good",
        params: &[
            req("user", P::String, "IAM user that owns the key"),
            req("access_key_id", P::String, "the key id"),
        ],
        outputs: &[],
        dynamic_outputs: false,
        idempotent: true,
        run: None,
    },
    ActionSpec {
        name: "aws.list_access_keys",
        provider: Provider::Aws,
        doc: "List an IAM user's access keys and their status",
        params: &[req("user", P::String, "IAM user")],
        outputs: &[
            out("keys", "list of {access_key_id, status, created}"),
            out("active", "number of Active keys"),
        ],
        dynamic_outputs: false,
        idempotent: true,
        run: None,
    },
    ActionSpec {
        name: "aws.get_access_key_last_used",
        provider: Provider::Aws,
        doc: "When and where an access key was last used",
        params: &[req("access_key_id", P::String, "the key id")],
        outputs: &[
            out("last_used", "RFC 3339 time of last use, or empty"),
            out("service", "service it was last used with"),
            out("region", "region it was last used in"),
        ],
        dynamic_outputs: false,
        idempotent: true,
        run: None,
    },
    ActionSpec {
        name: "aws.put_secret_value",
        provider: Provider::Aws,
        doc: "Store a new value in Secrets Manager (consumers read it there)",
        params: &[
            req("secret_id", P::String, "secret name or ARN"),
            secret(req("value", P::Any, "string, or a mapping stored as JSON")),
        ],
        outputs: &[out("version_id", "the new version id")],
        dynamic_outputs: false,
        idempotent: false,
        run: None,
    },
    ActionSpec {
        name: "aws.get_secret_value",
        provider: Provider::Aws,
        doc: "Read a value from Secrets Manager",
        params: &[
            req("secret_id", P::String, "secret name or ARN"),
            opt("field", P::String, "a JSON field of the value"),
        ],
        outputs: &[secret_out("value", "the value (or the field)")],
        dynamic_outputs: false,
        idempotent: true,
        run: None,
    },
    ActionSpec {
        name: "aws.lookup_events",
        provider: Provider::Aws,
        doc: "CloudTrail events made with an access key, summarised",
        params: &[
            req("access_key_id", P::String, "the key id"),
            opt("since", P::String, "how far back (e.g. 7d), default 90d"),
        ],
        outputs: &[
            out("events", "number of events"),
            out("event_names", "distinct API calls"),
            out("source_ips", "distinct source IP addresses"),
            out("user_agents", "distinct user agents"),
            out("first_seen", "first event time"),
            out("last_seen", "last event time"),
        ],
        dynamic_outputs: false,
        idempotent: true,
        run: None,
    },
    ActionSpec {
        name: "aws.verify_credentials",
        provider: Provider::Aws,
        doc: "STS GetCallerIdentity with a key: proves the new key works",
        params: &[
            req("access_key_id", P::String, "the key id"),
            secret(req("secret_access_key", P::String, "its secret")),
        ],
        outputs: &[out("account", "AWS account id"), out("arn", "caller ARN")],
        dynamic_outputs: false,
        idempotent: true,
        run: None,
    },
];

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use serde_json::{Map, Value, json};

use super::{ActionError, ErrorClass, OutputValue, Outputs};
use crate::config::AwsConfig;
use crate::secret::Secret;

/// The region used when none is configured anywhere: IAM and STS are
/// global, but the SDK needs one to sign with.
const FALLBACK_REGION: &str = "us-east-1";

/// How far back CloudTrail is searched when a step gives no `since`: all
/// the history LookupEvents keeps.
const DEFAULT_LOOKBACK: Duration = Duration::from_secs(90 * 86_400);

/// Longest piece of an unreadable answer's body an error quotes.
const BODY_EXCERPT_CHARS: usize = 160;

/// The AWS clients, built once from the SDK's own configuration chain.
#[derive(Debug, Clone)]
pub struct Aws {
    sdk: aws_config::SdkConfig,
    iam: aws_sdk_iam::Client,
    secrets: aws_sdk_secretsmanager::Client,
    cloudtrail: aws_sdk_cloudtrail::Client,
    /// Per IAM user, the key ids it had before a `CreateAccessKey` of ours
    /// whose outcome is not known (no answer, a 5xx, an unreadable one):
    /// the next attempt looks for a new key before it creates one.
    unsettled_creates: Arc<Mutex<HashMap<String, BTreeSet<String>>>>,
}

impl Aws {
    /// Loads the SDK configuration (profile, credentials, region,
    /// `AWS_ENDPOINT_URL` and its service-specific forms) with quench.toml's
    /// settings on top. The SDK's own retries are off: the engine retries,
    /// so that the journal sees every attempt and a step's timeout bounds
    /// one request.
    pub async fn build(config: &AwsConfig) -> Aws {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::disabled());
        if let Some(p) = &config.profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = &config.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(u) = &config.endpoint_url {
            loader = loader.endpoint_url(u);
        }
        let mut sdk = loader.load().await;
        if sdk.region().is_none() {
            sdk = sdk
                .into_builder()
                .region(aws_config::Region::from_static(FALLBACK_REGION))
                .build();
        }
        Aws {
            iam: aws_sdk_iam::Client::new(&sdk),
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
            cloudtrail: aws_sdk_cloudtrail::Client::new(&sdk),
            sdk,
            unsettled_creates: Arc::default(),
        }
    }

    /// The SDK configuration the clients were built from, for other
    /// clients of the same credentials (`quench serve`'s AWS hook).
    pub fn sdk(&self) -> &aws_config::SdkConfig {
        &self.sdk
    }

    pub async fn execute(
        &self,
        action: &str,
        step: &str,
        p: &Map<String, Value>,
    ) -> Result<Outputs, ActionError> {
        let s = |name: &str| {
            p.get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        match action {
            "aws.deactivate_access_key" => {
                self.iam
                    .update_access_key()
                    .user_name(s("user"))
                    .access_key_id(s("access_key_id"))
                    .status(aws_sdk_iam::types::StatusType::Inactive)
                    .send()
                    .await
                    .map_err(|e| classify(e, "iam:UpdateAccessKey"))?;
                Ok(vec![(
                    "status".into(),
                    OutputValue::Plain("Inactive".into()),
                )])
            }
            "aws.create_access_key" => self.create_access_key(&s("user"), step).await,
            "aws.delete_access_key" => {
                self.iam
                    .delete_access_key()
                    .user_name(s("user"))
                    .access_key_id(s("access_key_id"))
                    .send()
                    .await
                    .map_err(|e| classify(e, "iam:DeleteAccessKey"))?;
                Ok(Vec::new())
            }
            "aws.list_access_keys" => self.list_access_keys(&s("user")).await,
            "aws.get_access_key_last_used" => self.last_used(&s("access_key_id")).await,
            "aws.put_secret_value" => self.put_secret_value(&s("secret_id"), p.get("value")).await,
            "aws.get_secret_value" => {
                self.get_secret_value(&s("secret_id"), &s("field"), step)
                    .await
            }
            "aws.lookup_events" => self.lookup_events(&s("access_key_id"), &s("since")).await,
            "aws.verify_credentials" => {
                self.verify(
                    &s("access_key_id"),
                    p.get("secret_access_key")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                )
                .await
            }
            other => Err(ActionError::permanent(format!(
                "`{other}` is not an aws action (internal error: please report it)"
            ))),
        }
    }

    /// The user's keys, with their status and creation time.
    async fn list_access_keys(&self, user: &str) -> Result<Outputs, ActionError> {
        let out = self
            .iam
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .map_err(|e| classify(e, "iam:ListAccessKeys"))?;
        let keys: Vec<Value> = out
            .access_key_metadata()
            .iter()
            .map(|k| {
                json!({
                    "access_key_id": k.access_key_id(),
                    "status": k.status().map(|s| s.as_str()),
                    "created": k.create_date().map(|d| d.to_string()),
                })
            })
            .collect();
        let active = out
            .access_key_metadata()
            .iter()
            .filter(|k| k.status() == Some(&aws_sdk_iam::types::StatusType::Active))
            .count();
        Ok(vec![
            ("keys".into(), OutputValue::Plain(Value::Array(keys))),
            ("active".into(), OutputValue::Plain(active.into())),
        ])
    }

    /// When, where and with which service the key was last used.
    async fn last_used(&self, key: &str) -> Result<Outputs, ActionError> {
        let out = self
            .iam
            .get_access_key_last_used()
            .access_key_id(key)
            .send()
            .await
            .map_err(|e| classify(e, "iam:GetAccessKeyLastUsed"))?;
        let used = out.access_key_last_used();
        Ok(vec![
            (
                "last_used".into(),
                OutputValue::Plain(
                    used.and_then(|u| u.last_used_date())
                        .map(|d| d.to_string())
                        .unwrap_or_default()
                        .into(),
                ),
            ),
            (
                "service".into(),
                OutputValue::Plain(used.map(|u| u.service_name()).unwrap_or_default().into()),
            ),
            (
                "region".into(),
                OutputValue::Plain(used.map(|u| u.region()).unwrap_or_default().into()),
            ),
        ])
    }

    /// Puts a new version of the secret, creating it the first time.
    async fn put_secret_value(
        &self,
        secret_id: &str,
        value: Option<&Value>,
    ) -> Result<Outputs, ActionError> {
        let value = match value {
            Some(Value::String(v)) => v.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let put = self
            .secrets
            .put_secret_value()
            .secret_id(secret_id)
            .secret_string(&value)
            .send()
            .await;
        let version = match put {
            Ok(out) => out.version_id().unwrap_or_default().to_string(),
            // The first time, the secret may not exist yet.
            Err(e) if e.code() == Some("ResourceNotFoundException") => self
                .secrets
                .create_secret()
                .name(secret_id)
                .secret_string(&value)
                .send()
                .await
                .map_err(|e| classify(e, "secretsmanager:CreateSecret"))?
                .version_id()
                .unwrap_or_default()
                .to_string(),
            Err(e) => return Err(classify(e, "secretsmanager:PutSecretValue")),
        };
        Ok(vec![(
            "version_id".into(),
            OutputValue::Plain(version.into()),
        )])
    }

    /// The secret's value, or one field of it when it is a JSON object.
    async fn get_secret_value(
        &self,
        secret_id: &str,
        field: &str,
        step: &str,
    ) -> Result<Outputs, ActionError> {
        let out = self
            .secrets
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| classify(e, "secretsmanager:GetSecretValue"))?;
        let text = out.secret_string().unwrap_or_default().to_string();
        let value = if field.is_empty() {
            text
        } else {
            let parsed: Value = serde_json::from_str(&text).map_err(|_| {
                ActionError::permanent(format!(
                    "the secret is not JSON, so it has no field `{field}`"
                ))
            })?;
            match parsed.get(field) {
                Some(Value::String(v)) => v.clone(),
                Some(other) => other.to_string(),
                None => {
                    return Err(ActionError::permanent(format!(
                        "the secret has no field `{field}`"
                    )));
                }
            }
        };
        Ok(vec![(
            "value".into(),
            OutputValue::Secret(Secret::new(format!("{step}.value"), value)),
        )])
    }

    /// A new key for `user`, and never a second one: `CreateAccessKey` is
    /// not idempotent, so before an attempt after one whose outcome is
    /// unknown, the user's keys are compared with those it had before. A key
    /// that appeared was made by that attempt; its secret is lost with the
    /// answer, so the step fails for a human rather than make another.
    async fn create_access_key(&self, user: &str, step: &str) -> Result<Outputs, ActionError> {
        let unsettled = self.unsettled_before(user);
        let before = match unsettled {
            Some(before) => {
                self.reconcile(user, &before).await?;
                before
            }
            None => self.key_ids(user).await?,
        };
        self.unsettled_creates
            .lock()
            .expect("unsettled creates lock")
            .insert(user.to_string(), before.clone());
        let created = self.iam.create_access_key().user_name(user).send().await;
        let out = match created {
            Ok(out) => out,
            Err(e) => {
                let err = classify(e, "iam:CreateAccessKey");
                if matches!(
                    err.class,
                    ErrorClass::Permanent | ErrorClass::RateLimited { .. }
                ) {
                    // IAM refused it, so nothing was created.
                    self.settle_create(user);
                    return Err(err);
                }
                self.reconcile(user, &before).await?;
                return Err(err);
            }
        };
        self.settle_create(user);
        let key = out.access_key().ok_or_else(|| {
            ActionError::permanent("IAM CreateAccessKey: the answer holds no key")
        })?;
        Ok(vec![
            (
                "access_key_id".into(),
                OutputValue::Plain(key.access_key_id().into()),
            ),
            (
                "secret_access_key".into(),
                OutputValue::Secret(Secret::new(
                    format!("{step}.secret_access_key"),
                    key.secret_access_key(),
                )),
            ),
        ])
    }

    fn unsettled_before(&self, user: &str) -> Option<BTreeSet<String>> {
        self.unsettled_creates
            .lock()
            .expect("unsettled creates lock")
            .get(user)
            .cloned()
    }

    fn settle_create(&self, user: &str) {
        self.unsettled_creates
            .lock()
            .expect("unsettled creates lock")
            .remove(user);
    }

    /// The ids of `user`'s access keys.
    async fn key_ids(&self, user: &str) -> Result<BTreeSet<String>, ActionError> {
        let out = self
            .iam
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .map_err(|e| classify(e, "iam:ListAccessKeys"))?;
        Ok(out
            .access_key_metadata()
            .iter()
            .filter_map(|k| k.access_key_id().map(str::to_string))
            .collect())
    }

    /// After a `CreateAccessKey` whose outcome is unknown: `Ok` if it made
    /// no key (another attempt is safe), else a permanent error naming the
    /// key it made, or saying that nobody can tell.
    async fn reconcile(&self, user: &str, before: &BTreeSet<String>) -> Result<(), ActionError> {
        let now = match self.key_ids(user).await {
            Ok(now) => now,
            Err(e) => {
                return Err(ActionError::permanent(format!(
                    "IAM CreateAccessKey for `{user}` had no clear answer, and listing its keys failed too ({}): check its keys by hand before creating another",
                    e.message
                )));
            }
        };
        let Some(made) = now.difference(before).next() else {
            self.settle_create(user);
            return Ok(());
        };
        self.settle_create(user);
        Err(ActionError::permanent(format!(
            "IAM CreateAccessKey for `{user}` had no clear answer, but it created key `{made}`, whose secret was lost with the answer: quench does not create a second; delete it (`aws iam delete-access-key --user-name {user} --access-key-id {made}`) and create the replacement by hand"
        )))
    }

    /// Every CloudTrail event made with the key in the window, all pages,
    /// summarised: which calls, from where, with what, first and last seen.
    async fn lookup_events(&self, key: &str, since: &str) -> Result<Outputs, ActionError> {
        use aws_sdk_cloudtrail::primitives::DateTime;
        use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};

        let lookback = if since.is_empty() {
            DEFAULT_LOOKBACK
        } else {
            crate::time::parse_duration(since).map_err(ActionError::permanent)?
        };
        let now = chrono::Utc::now();
        let start = now - chrono::Duration::from_std(lookback).unwrap_or_default();
        let attribute = LookupAttribute::builder()
            .attribute_key(LookupAttributeKey::AccessKeyId)
            .attribute_value(key)
            .build()
            .map_err(|e| ActionError::permanent(format!("failed to build the lookup: {e}")))?;
        let mut events = 0u64;
        let mut names = BTreeSet::new();
        let mut ips = BTreeSet::new();
        let mut agents = BTreeSet::new();
        let (mut first, mut last): (Option<i64>, Option<i64>) = (None, None);
        let mut token: Option<String> = None;
        loop {
            let page = self
                .cloudtrail
                .lookup_events()
                .lookup_attributes(attribute.clone())
                .start_time(DateTime::from_secs(start.timestamp()))
                .end_time(DateTime::from_secs(now.timestamp()))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| classify(e, "cloudtrail:LookupEvents"))?;
            for e in page.events() {
                events += 1;
                if let Some(n) = e.event_name() {
                    names.insert(n.to_string());
                }
                if let Some(t) = e.event_time() {
                    first = Some(first.map_or(t.secs(), |f| f.min(t.secs())));
                    last = Some(last.map_or(t.secs(), |l| l.max(t.secs())));
                }
                if let Some(detail) = e.cloud_trail_event()
                    && let Ok(v) = serde_json::from_str::<Value>(detail)
                {
                    if let Some(ip) = v.get("sourceIPAddress").and_then(Value::as_str) {
                        ips.insert(ip.to_string());
                    }
                    if let Some(ua) = v.get("userAgent").and_then(Value::as_str) {
                        agents.insert(ua.to_string());
                    }
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        let when = |secs: Option<i64>| -> Value {
            secs.and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                .map(|t| crate::time::format_ts(&t))
                .unwrap_or_default()
                .into()
        };
        let list =
            |set: BTreeSet<String>| Value::Array(set.into_iter().map(Value::String).collect());
        Ok(vec![
            ("events".into(), OutputValue::Plain(events.into())),
            ("event_names".into(), OutputValue::Plain(list(names))),
            ("source_ips".into(), OutputValue::Plain(list(ips))),
            ("user_agents".into(), OutputValue::Plain(list(agents))),
            ("first_seen".into(), OutputValue::Plain(when(first))),
            ("last_seen".into(), OutputValue::Plain(when(last))),
        ])
    }

    /// GetCallerIdentity signed with the new key. A brand-new key is often
    /// refused for a few seconds while IAM propagates it, so a refusal is
    /// transient here: the step's retries wait it out.
    async fn verify(&self, key: &str, secret: &str) -> Result<Outputs, ActionError> {
        let creds =
            aws_sdk_sts::config::Credentials::new(key, secret, None, None, "quench-new-key");
        let conf = aws_sdk_sts::config::Builder::from(&self.sdk)
            .credentials_provider(creds)
            .build();
        let out = aws_sdk_sts::Client::from_conf(conf)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| {
                let mut err = classify(e, "sts:GetCallerIdentity");
                if err.class == ErrorClass::Permanent {
                    err.class = ErrorClass::Transient;
                    err.message = format!("the new key is not accepted yet ({})", err.message);
                }
                err
            })?;
        Ok(vec![
            (
                "account".into(),
                OutputValue::Plain(out.account().unwrap_or_default().into()),
            ),
            (
                "arn".into(),
                OutputValue::Plain(out.arn().unwrap_or_default().into()),
            ),
        ])
    }
}

/// Throttling is rate-limited; 5xx, unreadable answers, timeouts and
/// dropped connections are transient; everything else is permanent, and a
/// refusal names the permission the engine's credentials lack. Every
/// message names the service and the operation, and the HTTP status when
/// there was an answer; an answer the SDK could not read is quoted, short.
fn classify<E>(err: SdkError<E, HttpResponse>, permission: &str) -> ActionError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (service, operation) = permission.split_once(':').unwrap_or(("aws", permission));
    let service = match service {
        "iam" => "IAM",
        "cloudtrail" => "CloudTrail",
        "secretsmanager" => "Secrets Manager",
        "sts" => "STS",
        other => other,
    };
    let call = format!("{service} {operation}");
    match &err {
        SdkError::TimeoutError(_) => {
            ActionError::transient(format!("{call}: the request timed out"))
        }
        SdkError::DispatchFailure(_) => {
            ActionError::transient(format!("{call}: failed to reach AWS"))
        }
        SdkError::ResponseError(re) => ActionError::transient(format!(
            "{call}: HTTP {}: an answer that could not be read: {}",
            re.raw().status().as_u16(),
            body_excerpt(re.raw())
        )),
        SdkError::ConstructionFailure(_) => ActionError::permanent(format!(
            "{call}: failed to build the request (are AWS credentials configured?)"
        )),
        SdkError::ServiceError(se) => service_error(&call, se.err(), se.raw(), permission),
        _ => ActionError::transient(format!("{call}: the request failed")),
    }
}

fn service_error<E: ProvideErrorMetadata>(
    call: &str,
    err: &E,
    raw: &HttpResponse,
    permission: &str,
) -> ActionError {
    let status = raw.status();
    let Some(code) = err.code() else {
        // No error code: the body was not what the protocol says (an HTML
        // page from a proxy or load balancer, say).
        let text = format!(
            "{call}: HTTP {}: an answer that could not be read: {}",
            status.as_u16(),
            body_excerpt(raw)
        );
        return if status.is_client_error() {
            ActionError::permanent(text)
        } else {
            ActionError::transient(text)
        };
    };
    let message = err.message().unwrap_or_default();
    let text = format!("{call}: HTTP {} {code}: {message}", status.as_u16());
    match code {
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "LimitExceededException"
        | "RequestThrottled"
        | "SlowDown" => ActionError::rate_limited(None, text),
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken" => ActionError::permanent(format!(
            "{text} (the engine's AWS credentials need `{permission}`)"
        )),
        "ServiceFailure"
        | "InternalFailure"
        | "InternalError"
        | "ServiceUnavailable"
        | "InternalServiceError"
        | "InternalServiceErrorException" => ActionError::transient(text),
        _ if status.is_server_error() => ActionError::transient(text),
        _ => ActionError::permanent(text),
    }
}

/// The start of an answer's body as one line of text: markup dropped,
/// whitespace folded. The engine redacts it before it is journaled.
fn body_excerpt(raw: &HttpResponse) -> String {
    let Some(bytes) = raw.body().bytes() else {
        return "(no body)".into();
    };
    let text = String::from_utf8_lossy(bytes);
    let mut plain = String::with_capacity(text.len().min(4096));
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                plain.push(' ');
            }
            _ if !in_tag => plain.push(c),
            _ => {}
        }
    }
    let folded = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.is_empty() {
        return "(empty body)".into();
    }
    match folded.char_indices().nth(BODY_EXCERPT_CHARS) {
        Some((at, _)) => format!("{}…", &folded[..at]),
        None => folded,
    }
}
