//! Vault and OpenBao over their HTTP API: KV v2, token/lease revocation,
//! and the proof that a leaked token is dead.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::action::{Call, Perform};
use super::{ActionError, given};
use crate::action;
use crate::config::{self, VaultConfig};
use crate::secret::Secret;

pub const ACTIONS: &[super::ActionSpec] = &[
    KvPut::SPEC,
    KvGet::SPEC,
    RevokePrefix::SPEC,
    RevokeAccessor::SPEC,
    LookupAccessor::SPEC,
    VerifyRevoked::SPEC,
];

action! {
    /// Write a KV v2 secret (consumers read the new credential here)
    "vault.kv_put" in Vault => KvPut {
        /// path under the mount, e.g. quench/aws/ci-bot
        path: String,
        /// field → value
        data: BTreeMap<String, String> [secret],
        /// KV v2 mount, default `secret`
        mount: Option<String>,
    } -> KvPutOutputs {
        /// the new version
        version: Value,
    }
}

impl Perform for KvPut {
    async fn perform(self, vault: &Vault, _: Call<'_>) -> Result<KvPutOutputs, ActionError> {
        let path = format!("{}/data/{}", vault.mount(&self.mount), self.path);
        let body = json!({ "data": self.data });
        let answer = vault
            .call(Method::POST, &path, Some(body), "create/update")
            .await?;
        Ok(KvPutOutputs {
            version: answer.pointer("/data/version").cloned().unwrap_or_default(),
        })
    }
}

action! {
    /// Read a field of a KV v2 secret
    "vault.kv_get" in Vault => KvGet [idempotent] {
        /// path under the mount
        path: String,
        /// the field to read
        field: String,
        /// KV v2 mount, default `secret`
        mount: Option<String>,
    } -> KvGetOutputs {
        /// the field's value
        value: Secret,
        /// version read
        version: Value,
    }
}

impl Perform for KvGet {
    async fn perform(self, vault: &Vault, call: Call<'_>) -> Result<KvGetOutputs, ActionError> {
        let mount = vault.mount(&self.mount);
        let (value, version) = vault.kv_get(&mount, &self.path, &self.field).await?;
        Ok(KvGetOutputs {
            value: call.secret(&self.field, value),
            version,
        })
    }
}

action! {
    /// Revoke every lease under a prefix
    "vault.revoke_prefix" in Vault => RevokePrefix [idempotent] {
        /// lease prefix, e.g. aws/creds/ci
        prefix: String,
    } -> ()
}

impl Perform for RevokePrefix {
    async fn perform(self, vault: &Vault, _: Call<'_>) -> Result<(), ActionError> {
        let path = format!("sys/leases/revoke-prefix/{}", self.prefix);
        vault.call(Method::PUT, &path, None, "sudo").await?;
        Ok(())
    }
}

action! {
    /// Revoke a token by its accessor (the token itself is not needed)
    "vault.revoke_accessor" in Vault => RevokeAccessor [idempotent] {
        /// the token's accessor
        accessor: String,
    } -> ()
}

impl Perform for RevokeAccessor {
    async fn perform(self, vault: &Vault, _: Call<'_>) -> Result<(), ActionError> {
        let body = json!({ "accessor": self.accessor });
        let path = "auth/token/revoke-accessor";
        vault.call(Method::POST, path, Some(body), "update").await?;
        Ok(())
    }
}

action! {
    /// What a token accessor belongs to: display name, policies, expiry
    "vault.lookup_accessor" in Vault => LookupAccessor [idempotent] {
        /// the token's accessor
        accessor: String,
    } -> LookupAccessorOutputs {
        /// token display name
        display_name: Value,
        /// attached policies
        policies: Value,
        /// expiry, or empty
        expire_time: Value,
        /// creation time (Unix seconds)
        creation_time: Value,
    }
}

impl Perform for LookupAccessor {
    async fn perform(
        self,
        vault: &Vault,
        _: Call<'_>,
    ) -> Result<LookupAccessorOutputs, ActionError> {
        let data = vault.lookup_accessor(&self.accessor).await?;
        let field = |k: &str| data.get(k).cloned().unwrap_or_default();
        Ok(LookupAccessorOutputs {
            display_name: field("display_name"),
            policies: field("policies"),
            expire_time: field("expire_time"),
            creation_time: field("creation_time"),
        })
    }
}

action! {
    /// Prove a leaked token dead: `GET /v1/auth/token/lookup-self` as the
    /// token must answer 403; a token Vault still accepts fails the attempt,
    /// to be retried
    "vault.verify_revoked" in Vault => VerifyRevoked [idempotent, proves_dead] {
        /// the leaked token
        token: String [secret],
    } -> ()
}

impl Perform for VerifyRevoked {
    /// The leaked token looks itself up: only Vault's answer to the token
    /// itself proves it dead. The engine's token is not sent. Vault answers
    /// an unknown or revoked token `permission denied`, and a live token its
    /// policy refuses the same words wrapped as a list ("1 error occurred"):
    /// only the first is proof.
    async fn perform(self, vault: &Vault, _: Call<'_>) -> Result<(), ActionError> {
        let leaked = given("token", &self.token)?.trim();
        let path = "auth/token/lookup-self";
        let answer = vault.send(leaked, Method::GET, path, None).await?;
        match answer.status {
            StatusCode::FORBIDDEN if answer.errors().contains("error occurred") => {
                Err(ActionError::permanent(format!(
                    "Vault took the leaked token, then refused it `{path}` (a token without the `default` policy may not look itself up): it may still work, so it is not proven dead"
                )))
            }
            StatusCode::FORBIDDEN => Ok(()),
            s if s.is_success() => Err(ActionError::transient(format!(
                "Vault still accepts the leaked token: `GET /v1/{path}` answered {s}; its revocation has not taken effect yet"
            ))),
            _ => Err(answer.error(&Method::GET, path)),
        }
    }
}

/// The KV v2 mount when neither the step nor quench.toml names one.
pub const DEFAULT_KV_MOUNT: &str = "secret";

/// A Vault (or OpenBao) server: they share the HTTP API.
#[derive(Debug, Clone)]
pub struct Vault {
    http: reqwest::Client,
    address: String,
    token: Secret,
    kv_mount: String,
}

impl Vault {
    /// From quench.toml, else `VAULT_ADDR`/`VAULT_TOKEN` (or `BAO_ADDR`/
    /// `BAO_TOKEN`). `Err` says what is missing.
    pub fn build(config: &VaultConfig, http: reqwest::Client) -> Result<Vault, String> {
        let address = config::setting(config.address.as_deref(), &["VAULT_ADDR", "BAO_ADDR"])
            .ok_or("no Vault address: set VAULT_ADDR (or BAO_ADDR) or [providers.vault] address")?;
        let token = config::credential(
            "vault_token",
            config.token.as_deref(),
            &["VAULT_TOKEN", "BAO_TOKEN"],
        )
        .map_err(|e| e.to_string())?
        .ok_or("no Vault token: set VAULT_TOKEN (or BAO_TOKEN) or [providers.vault] token")?;
        Ok(Vault {
            http,
            address: address.trim_end_matches('/').to_string(),
            token,
            kv_mount: config
                .kv_mount
                .clone()
                .unwrap_or_else(|| DEFAULT_KV_MOUNT.into()),
        })
    }

    pub fn token(&self) -> &Secret {
        &self.token
    }

    /// The step's KV mount, else quench.toml's.
    fn mount(&self, step: &Option<String>) -> String {
        step.clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| self.kv_mount.clone())
    }

    /// Reads one field of a KV v2 secret: (value, version).
    pub async fn kv_get(
        &self,
        mount: &str,
        path: &str,
        field: &str,
    ) -> Result<(String, Value), ActionError> {
        let body = self
            .call(Method::GET, &format!("{mount}/data/{path}"), None, "read")
            .await?;
        let Some(value) = body.pointer(&format!("/data/data/{field}")) else {
            return Err(ActionError::permanent(format!(
                "`{mount}/{path}` has no field `{field}`"
            )));
        };
        let version = body["data"]["metadata"]["version"].clone();
        Ok((super::text_of(value), version))
    }

    /// Every token the engine's token may list by accessor, looked up:
    /// accessor, display name, policies, TTL, creation and expiry. The
    /// token's own id is dropped as soon as it is read.
    pub async fn token_accessors(&self) -> Result<Vec<TokenRecord>, ActionError> {
        let list = Method::from_bytes(b"LIST").expect("LIST is a method");
        let body = self
            .call(list, "auth/token/accessors", None, "list")
            .await?;
        let mut out = Vec::new();
        for accessor in strings(body.pointer("/data/keys")) {
            let data = self.lookup_accessor(&accessor).await?;
            out.push(TokenRecord::from_lookup(accessor, &data));
        }
        Ok(out)
    }

    /// What `auth/token/lookup-accessor` says of `accessor`: its `data`.
    async fn lookup_accessor(&self, accessor: &str) -> Result<Value, ActionError> {
        let path = "auth/token/lookup-accessor";
        let body = json!({ "accessor": accessor });
        let answer = self.call(Method::POST, path, Some(body), "update").await?;
        Ok(answer.get("data").cloned().unwrap_or(Value::Null))
    }

    /// One request to `/v1/{path}` with the engine's token. A refusal names
    /// the capability that token needs on that path.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        capability: &str,
    ) -> Result<Value, ActionError> {
        let answer = self
            .send(self.token.expose(), method.clone(), path, body)
            .await?;
        if answer.status.is_success() {
            // An empty answer (204) reads as null too.
            return Ok(serde_json::from_str(&answer.text).unwrap_or(Value::Null));
        }
        let error = answer.error(&method, path);
        Err(if answer.status == StatusCode::FORBIDDEN {
            ActionError::permanent(format!(
                "{} (the engine's Vault token needs `{capability}` on `{path}`)",
                error.message
            ))
        } else {
            error
        })
    }

    /// Sends one request to `/v1/{path}` as `token`, which is marked
    /// sensitive so no log of the request shows it.
    async fn send(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, ActionError> {
        let url = format!("{}/v1/{path}", self.address);
        let mut token = HeaderValue::from_str(token)
            .map_err(|_| ActionError::permanent("the Vault token is not a valid header value"))?;
        token.set_sensitive(true);
        let mut rb = self
            .http
            .request(method.clone(), &url)
            .header("X-Vault-Token", token)
            .header("X-Vault-Request", "true");
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.map_err(|e| {
            ActionError::transient(if e.is_connect() {
                format!("failed to connect to Vault at {}", self.address)
            } else {
                format!("{method} /v1/{path}: the request failed")
            })
        })?;
        let status = resp.status();
        let retry_after = super::http::retry_after(resp.headers());
        let text = resp.text().await.unwrap_or_default();
        Ok(Answer {
            status,
            retry_after,
            text,
        })
    }
}

/// A Vault token as `auth/token/lookup-accessor` describes it.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub accessor: String,
    pub display_name: String,
    pub policies: Vec<String>,
    /// Seconds left; 0 for a token that never expires.
    pub ttl: u64,
    pub created: Option<chrono::DateTime<chrono::Utc>>,
    /// `None`: the token never expires.
    pub expires: Option<chrono::DateTime<chrono::Utc>>,
}

impl TokenRecord {
    fn from_lookup(accessor: String, data: &Value) -> TokenRecord {
        TokenRecord {
            accessor,
            display_name: data["display_name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            policies: strings(data.get("policies")),
            ttl: data["ttl"].as_u64().unwrap_or(0),
            created: data["creation_time"]
                .as_i64()
                .and_then(|s| chrono::DateTime::from_timestamp(s, 0)),
            expires: data["expire_time"].as_str().and_then(|t| t.parse().ok()),
        }
    }
}

/// The strings of a JSON list.
fn strings(list: Option<&Value>) -> Vec<String> {
    let items = list.and_then(Value::as_array).into_iter().flatten();
    items
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// One answer from Vault.
struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    text: String,
}

impl Answer {
    /// Vault's `errors`, `; `-separated.
    fn errors(&self) -> String {
        let body: Value = serde_json::from_str(&self.text).unwrap_or_default();
        strings(body.get("errors")).join("; ")
    }

    /// The error of an answer that is not what the request wanted, with
    /// Vault's `errors`: 429 waits, 5xx is worth another try, the rest is
    /// permanent.
    fn error(&self, method: &Method, path: &str) -> ActionError {
        let message = format!(
            "{method} /v1/{path} answered {}: {}",
            self.status,
            self.errors()
        );
        match self.status {
            StatusCode::TOO_MANY_REQUESTS => ActionError::rate_limited(
                self.retry_after.or(Some(Duration::from_secs(1))),
                message,
            ),
            s if s.is_server_error() => ActionError::transient(message),
            _ => ActionError::permanent(message),
        }
    }
}
