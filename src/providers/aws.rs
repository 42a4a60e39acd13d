//! AWS over its SDK: IAM access keys, Secrets Manager, CloudTrail and STS;
//! and, each in a module of its own, the actions that prove a revocation:
//!
//! - `sessions`    — ending older sessions, proving the leaked key dead
//! - `lookup`      — what the key did, in every region
//! - `permissions` — what the key could do
//! - `contain`     — undoing what the key left
//! - `quiet`       — watching a rotated-out key go quiet
//! - `trail`, `policy` — reading CloudTrail records and IAM policies
//!
//! and, in `consumers`, handing the new key to ECS services and Lambda
//! functions.

/// Every item of an IAM listing, all pages, or the classified error.
macro_rules! all_pages {
    ($list:expr, $permission:literal) => {
        $list
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| classify(e, $permission))
    };
}

mod consumers;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::{AccessKeyLastUsed, AccessKeyMetadata, StatusType};
use aws_sdk_sts::config::Credentials;
use aws_sdk_sts::operation::get_caller_identity::{
    GetCallerIdentityError, GetCallerIdentityOutput,
};
use serde_json::{Value, json};

use super::action::{Call, Perform};
use super::{ActionError, ErrorClass, ticked};
use crate::action;
use crate::config::AwsConfig;
use crate::secret::Secret;

mod contain;
mod inventory;
mod lookup;
mod permissions;
mod policy;
mod quiet;
mod sessions;
mod trail;

pub use contain::ContainPersistence;
pub use inventory::KeyRecord;
pub use lookup::LookupEvents;
pub use permissions::DescribePermissions;
pub use quiet::WatchKeyQuiet;
pub use sessions::{RevokeOlderSessions, VerifyRevoked};

pub const ACTIONS: &[super::ActionSpec] = &[
    DeactivateAccessKey::SPEC,
    CreateAccessKey::SPEC,
    DeleteAccessKey::SPEC,
    ListAccessKeys::SPEC,
    GetAccessKeyLastUsed::SPEC,
    PutSecretValue::SPEC,
    GetSecretValue::SPEC,
    LookupEvents::SPEC,
    VerifyCredentials::SPEC,
    RevokeOlderSessions::SPEC,
    VerifyRevoked::SPEC,
    DescribePermissions::SPEC,
    ContainPersistence::SPEC,
    consumers::EcsRedeploy::SPEC,
    consumers::LambdaUpdateEnvironment::SPEC,
    WatchKeyQuiet::SPEC,
];

action! {
    /// Set an IAM access key to Inactive: it stops working at once
    "aws.deactivate_access_key" in Aws => DeactivateAccessKey [idempotent] {
        /// IAM user that owns the key
        user: String,
        /// the key id (AKIA…/ASIA…)
        access_key_id: String,
    } -> DeactivateAccessKeyOutputs {
        /// the key's status afterwards (Inactive)
        status: String,
    }
}

impl Perform for DeactivateAccessKey {
    async fn perform(
        self,
        aws: &Aws,
        _: Call<'_>,
    ) -> Result<DeactivateAccessKeyOutputs, ActionError> {
        aws.iam
            .update_access_key()
            .user_name(self.user)
            .access_key_id(self.access_key_id)
            .status(StatusType::Inactive)
            .send()
            .await
            .map_err(|e| classify(e, "iam:UpdateAccessKey"))?;
        Ok(DeactivateAccessKeyOutputs {
            status: StatusType::Inactive.as_str().into(),
        })
    }
}

action! {
    /// Create a new access key for an IAM user
    "aws.create_access_key" in Aws => CreateAccessKey {
        /// IAM user
        user: String,
    } -> CreateAccessKeyOutputs {
        /// the new key id
        access_key_id: String,
        /// the new secret access key
        secret_access_key: Secret,
    }
}

/// How many access keys IAM lets a user have.
const IAM_KEY_LIMIT: usize = 2;

/// A new key for the user, and never a second one: `CreateAccessKey` is not
/// idempotent, so before an attempt after one whose outcome is unknown, the
/// user's keys are compared with those it had before. A key that appeared
/// was made by that attempt; its secret is lost with the answer, so the step
/// fails for a human rather than make another.
impl Perform for CreateAccessKey {
    async fn perform(
        self,
        aws: &Aws,
        call: Call<'_>,
    ) -> Result<CreateAccessKeyOutputs, ActionError> {
        let user = &self.user;
        let unsettled = aws.unsettled().get(user).cloned();
        let before = match unsettled {
            Some(before) => {
                aws.reconcile(user, &before).await?;
                before
            }
            None => aws.key_ids(user).await?,
        };
        // IAM's limit, said before anything is made: a rotation whose user
        // already has two keys is half done, or another is under way.
        if before.len() >= IAM_KEY_LIMIT {
            return Err(ActionError::permanent(format!(
                "`{user}` already has {} access keys ({}), IAM's limit: delete the one no longer used, or finish the rotation under way, before creating another",
                before.len(),
                ticked(&before)
            )));
        }
        aws.unsettled().insert(user.clone(), before.clone());
        let out = match aws.iam.create_access_key().user_name(user).send().await {
            Ok(out) => out,
            Err(e) => {
                let err = classify(e, "iam:CreateAccessKey");
                if matches!(
                    err.class,
                    ErrorClass::Permanent | ErrorClass::RateLimited { .. }
                ) {
                    // IAM refused it, so nothing was created.
                    aws.unsettled().remove(user);
                } else {
                    aws.reconcile(user, &before).await?;
                }
                return Err(err);
            }
        };
        aws.unsettled().remove(user);
        let key = out.access_key().ok_or_else(|| {
            ActionError::permanent("IAM CreateAccessKey: the answer holds no key")
        })?;
        Ok(CreateAccessKeyOutputs {
            access_key_id: key.access_key_id().into(),
            secret_access_key: call.secret("secret_access_key", key.secret_access_key()),
        })
    }
}

action! {
    /// Delete an IAM access key for good
    "aws.delete_access_key" in Aws => DeleteAccessKey [idempotent] {
        /// IAM user that owns the key
        user: String,
        /// the key id
        access_key_id: String,
    } -> ()
}

impl Perform for DeleteAccessKey {
    async fn perform(self, aws: &Aws, _: Call<'_>) -> Result<(), ActionError> {
        aws.iam
            .delete_access_key()
            .user_name(self.user)
            .access_key_id(self.access_key_id)
            .send()
            .await
            .map_err(|e| classify(e, "iam:DeleteAccessKey"))?;
        Ok(())
    }
}

action! {
    /// List an IAM user's access keys and their status
    "aws.list_access_keys" in Aws => ListAccessKeys [idempotent] {
        /// IAM user
        user: String,
    } -> ListAccessKeysOutputs {
        /// list of {access_key_id, status, created}
        keys: Vec<Value>,
        /// number of Active keys
        active: u64,
        /// the one Active key's id; empty when there is none, or several
        active_key_id: String,
    }
}

impl Perform for ListAccessKeys {
    async fn perform(self, aws: &Aws, _: Call<'_>) -> Result<ListAccessKeysOutputs, ActionError> {
        let keys = aws.access_keys(&self.user).await?;
        let active: Vec<&AccessKeyMetadata> = keys
            .iter()
            .filter(|k| k.status() == Some(&StatusType::Active))
            .collect();
        let active_key_id = match active.as_slice() {
            [one] => one.access_key_id().unwrap_or_default().to_string(),
            _ => String::new(),
        };
        Ok(ListAccessKeysOutputs {
            keys: keys
                .iter()
                .map(|k| {
                    json!({
                        "access_key_id": k.access_key_id(),
                        "status": k.status().map(StatusType::as_str),
                        "created": k.create_date().map(ToString::to_string),
                    })
                })
                .collect(),
            active: active.len() as u64,
            active_key_id,
        })
    }
}

action! {
    /// When and where an access key was last used
    "aws.get_access_key_last_used" in Aws => GetAccessKeyLastUsed [idempotent] {
        /// the key id
        access_key_id: String,
    } -> GetAccessKeyLastUsedOutputs {
        /// RFC 3339 time of last use, or empty
        last_used: String,
        /// service it was last used with
        service: String,
        /// region it was last used in
        region: String,
    }
}

impl Perform for GetAccessKeyLastUsed {
    async fn perform(
        self,
        aws: &Aws,
        _: Call<'_>,
    ) -> Result<GetAccessKeyLastUsedOutputs, ActionError> {
        let used = aws.last_used(&self.access_key_id).await?;
        let used = used.as_ref();
        Ok(GetAccessKeyLastUsedOutputs {
            last_used: used
                .and_then(|u| u.last_used_date())
                .map(ToString::to_string)
                .unwrap_or_default(),
            service: used.map(|u| u.service_name()).unwrap_or_default().into(),
            region: used.map(|u| u.region()).unwrap_or_default().into(),
        })
    }
}

action! {
    /// Store a new value in Secrets Manager (consumers read it there)
    "aws.put_secret_value" in Aws => PutSecretValue {
        /// secret name or ARN
        secret_id: String,
        /// string, or a mapping stored as JSON
        value: Value [secret],
    } -> PutSecretValueOutputs {
        /// the new version id
        version_id: String,
    }
}

/// Puts a new version of the secret, creating it the first time.
impl Perform for PutSecretValue {
    async fn perform(self, aws: &Aws, _: Call<'_>) -> Result<PutSecretValueOutputs, ActionError> {
        let value = super::text_of(&self.value);
        let put = aws
            .secrets
            .put_secret_value()
            .secret_id(&self.secret_id)
            .secret_string(&value)
            .send()
            .await;
        let version = match put {
            Ok(out) => out.version_id,
            // The first time, the secret may not exist yet.
            Err(e) if e.code() == Some("ResourceNotFoundException") => {
                aws.secrets
                    .create_secret()
                    .name(self.secret_id)
                    .secret_string(value)
                    .send()
                    .await
                    .map_err(|e| classify(e, "secretsmanager:CreateSecret"))?
                    .version_id
            }
            Err(e) => return Err(classify(e, "secretsmanager:PutSecretValue")),
        };
        Ok(PutSecretValueOutputs {
            version_id: version.unwrap_or_default(),
        })
    }
}

action! {
    /// Read a value from Secrets Manager
    "aws.get_secret_value" in Aws => GetSecretValue [idempotent] {
        /// secret name or ARN
        secret_id: String,
        /// a JSON field of the value
        field: Option<String>,
    } -> GetSecretValueOutputs {
        /// the value (or the field)
        value: Secret,
    }
}

/// The secret's value, or one field of it when it is a JSON object.
impl Perform for GetSecretValue {
    async fn perform(
        self,
        aws: &Aws,
        call: Call<'_>,
    ) -> Result<GetSecretValueOutputs, ActionError> {
        let out = aws
            .secrets
            .get_secret_value()
            .secret_id(self.secret_id)
            .send()
            .await
            .map_err(|e| classify(e, "secretsmanager:GetSecretValue"))?;
        let text = out.secret_string.unwrap_or_default();
        let value = match self.field.filter(|f| !f.is_empty()) {
            None => text,
            Some(field) => json_field(&text, &field)?,
        };
        Ok(GetSecretValueOutputs {
            value: call.secret("value", value),
        })
    }
}

/// `field` of the JSON object `text`, as text.
fn json_field(text: &str, field: &str) -> Result<String, ActionError> {
    let parsed: Value = serde_json::from_str(text).map_err(|_| {
        ActionError::permanent(format!(
            "the secret is not JSON, so it has no field `{field}`"
        ))
    })?;
    parsed
        .get(field)
        .map(super::text_of)
        .ok_or_else(|| ActionError::permanent(format!("the secret has no field `{field}`")))
}

action! {
    /// STS GetCallerIdentity with a key: proves the new key works
    "aws.verify_credentials" in Aws => VerifyCredentials [idempotent] {
        /// the key id
        access_key_id: String,
        /// its secret
        secret_access_key: String [secret],
    } -> VerifyCredentialsOutputs {
        /// AWS account id
        account: String,
        /// caller ARN
        arn: String,
    }
}

/// GetCallerIdentity signed with the new key. A brand-new key is often
/// refused for a few seconds while IAM propagates it, so a refusal is
/// transient here: the step's retries wait it out.
impl Perform for VerifyCredentials {
    async fn perform(
        self,
        aws: &Aws,
        _: Call<'_>,
    ) -> Result<VerifyCredentialsOutputs, ActionError> {
        let creds = Credentials::new(
            self.access_key_id,
            self.secret_access_key,
            None,
            None,
            "quench-new-key",
        );
        let out = aws.caller_identity(creds).await.map_err(|e| {
            let mut err = classify(e, "sts:GetCallerIdentity");
            if err.class == ErrorClass::Permanent {
                err.class = ErrorClass::Transient;
                err.message = format!("the new key is not accepted yet ({})", err.message);
            }
            err
        })?;
        Ok(VerifyCredentialsOutputs {
            account: out.account.unwrap_or_default(),
            arn: out.arn.unwrap_or_default(),
        })
    }
}

/// The region used when none is configured anywhere: IAM and STS are
/// global, but the SDK needs one to sign with.
const FALLBACK_REGION: &str = "us-east-1";

/// How far back CloudTrail is searched when a step gives no `since`: all
/// the history LookupEvents keeps.
const DEFAULT_LOOKBACK: Duration = Duration::from_secs(90 * 86_400);

/// The regions `aws.lookup_events` searches when `[providers.aws] regions`
/// names none: the seventeen every commercial account has enabled. Listing
/// an account's own (opt-in regions included) takes `account:ListRegions`
/// or `ec2:DescribeRegions`, and an SDK crate for either; an account that
/// enabled more lists them in `regions`.
pub const DEFAULT_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "sa-east-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
];

/// Longest piece of an unreadable answer's body an error quotes.
const BODY_EXCERPT_CHARS: usize = 160;

/// The AWS clients, built once from the SDK's own configuration chain.
#[derive(Debug, Clone)]
pub struct Aws {
    sdk: aws_config::SdkConfig,
    iam: aws_sdk_iam::Client,
    secrets: aws_sdk_secretsmanager::Client,
    cloudtrail: aws_sdk_cloudtrail::Client,
    /// The regions CloudTrail is searched in.
    regions: Vec<String>,
    ecs: aws_sdk_ecs::Client,
    lambda: aws_sdk_lambda::Client,
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
            regions: regions(config, &sdk),
            ecs: aws_sdk_ecs::Client::new(&sdk),
            lambda: aws_sdk_lambda::Client::new(&sdk),
            sdk,
            unsettled_creates: Arc::default(),
        }
    }

    /// A CloudTrail client for `region` (LookupEvents sees one region's
    /// trail); the configured one's client is reused.
    fn cloudtrail_in(&self, region: &str) -> aws_sdk_cloudtrail::Client {
        if self.sdk.region().is_some_and(|r| r.as_ref() == region) {
            return self.cloudtrail.clone();
        }
        let conf = aws_sdk_cloudtrail::config::Builder::from(&self.sdk)
            .region(aws_config::Region::new(region.to_string()))
            .build();
        aws_sdk_cloudtrail::Client::from_conf(conf)
    }

    /// The SDK configuration the clients were built from, for other
    /// clients of the same credentials (`quench serve`'s AWS hook).
    pub fn sdk(&self) -> &aws_config::SdkConfig {
        &self.sdk
    }

    /// Never held across an await: callers take it in a statement of its own.
    fn unsettled(&self) -> MutexGuard<'_, HashMap<String, BTreeSet<String>>> {
        self.unsettled_creates
            .lock()
            .expect("unsettled creates lock")
    }

    /// GetCallerIdentity signed with `creds`, not the engine's own.
    async fn caller_identity(
        &self,
        creds: Credentials,
    ) -> Result<GetCallerIdentityOutput, SdkError<GetCallerIdentityError, HttpResponse>> {
        let conf = aws_sdk_sts::config::Builder::from(&self.sdk).credentials_provider(creds);
        let sts = aws_sdk_sts::Client::from_conf(conf.build());
        sts.get_caller_identity().send().await
    }

    /// When, with which service and where IAM last saw `key` used.
    async fn last_used(&self, key: &str) -> Result<Option<AccessKeyLastUsed>, ActionError> {
        let request = self.iam.get_access_key_last_used().access_key_id(key);
        let out = request.send().await;
        let out = out.map_err(|e| classify(e, "iam:GetAccessKeyLastUsed"))?;
        Ok(out.access_key_last_used)
    }

    /// `user`'s access keys.
    async fn access_keys(&self, user: &str) -> Result<Vec<AccessKeyMetadata>, ActionError> {
        let out = self
            .iam
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .map_err(|e| classify(e, "iam:ListAccessKeys"))?;
        Ok(out.access_key_metadata)
    }

    /// The ids of `user`'s access keys.
    async fn key_ids(&self, user: &str) -> Result<BTreeSet<String>, ActionError> {
        let keys = self.access_keys(user).await?;
        Ok(keys.into_iter().filter_map(|k| k.access_key_id).collect())
    }

    /// After a `CreateAccessKey` whose outcome is unknown: `Ok` if it made
    /// no key (another attempt is safe), else a permanent error naming the
    /// key it made, or saying that nobody can tell.
    async fn reconcile(&self, user: &str, before: &BTreeSet<String>) -> Result<(), ActionError> {
        let now = self.key_ids(user).await.map_err(|e| {
            ActionError::permanent(format!(
                "IAM CreateAccessKey for `{user}` had no clear answer, and listing its keys failed too ({}): check its keys by hand before creating another",
                e.message
            ))
        })?;
        self.unsettled().remove(user);
        match now.difference(before).next() {
            None => Ok(()),
            Some(made) => Err(ActionError::permanent(format!(
                "IAM CreateAccessKey for `{user}` had no clear answer, but it created key `{made}`, whose secret was lost with the answer: quench does not create a second; delete it (`aws iam delete-access-key --user-name {user} --access-key-id {made}`) and create the replacement by hand"
            ))),
        }
    }
}

/// `[providers.aws] regions`, else [`DEFAULT_REGIONS`]; outside the
/// commercial partition (China, GovCloud), whose regions those are not,
/// only the configured region.
fn regions(config: &AwsConfig, sdk: &aws_config::SdkConfig) -> Vec<String> {
    if let Some(r) = config.regions.as_ref().filter(|r| !r.is_empty()) {
        return r.clone();
    }
    let own = sdk.region().map_or(FALLBACK_REGION, |r| r.as_ref());
    if ["cn-", "us-gov-", "us-iso"]
        .iter()
        .any(|p| own.starts_with(p))
    {
        return vec![own.to_string()];
    }
    DEFAULT_REGIONS.iter().map(|r| r.to_string()).collect()
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
        "ecs" => "ECS",
        "lambda" => "Lambda",
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
