//! Vault and OpenBao over their HTTP API: KV v2 and token/lease revocation.
//! Declared here so runbooks validate, plan and rehearse; live calls arrive
//! with the vault provider (`Provider::is_built`).

use super::ParamType as P;
use super::{ActionSpec, Provider, opt, out, req, secret, secret_out};

pub const ACTIONS: &[ActionSpec] = &[
    ActionSpec {
        name: "vault.kv_put",
        provider: Provider::Vault,
        doc: "Write a KV v2 secret (consumers read the new credential here)",
        params: &[
            req(
                "path",
                P::String,
                "path under the mount, e.g. quench/aws/ci-bot",
            ),
            secret(req("data", P::StringMap, "field → value")),
            opt("mount", P::String, "KV v2 mount, default `secret`"),
        ],
        outputs: &[out("version", "the new version")],
        dynamic_outputs: false,
        idempotent: false,
    },
    ActionSpec {
        name: "vault.kv_get",
        provider: Provider::Vault,
        doc: "Read a field of a KV v2 secret",
        params: &[
            req("path", P::String, "path under the mount"),
            req("field", P::String, "the field to read"),
            opt("mount", P::String, "KV v2 mount, default `secret`"),
        ],
        outputs: &[
            secret_out("value", "the field's value"),
            out("version", "version read"),
        ],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "vault.revoke_prefix",
        provider: Provider::Vault,
        doc: "Revoke every lease under a prefix",
        params: &[req("prefix", P::String, "lease prefix, e.g. aws/creds/ci")],
        outputs: &[],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "vault.revoke_accessor",
        provider: Provider::Vault,
        doc: "Revoke a token by its accessor (the token itself is not needed)",
        params: &[req("accessor", P::String, "the token's accessor")],
        outputs: &[],
        dynamic_outputs: false,
        idempotent: true,
    },
    ActionSpec {
        name: "vault.lookup_accessor",
        provider: Provider::Vault,
        doc: "What a token accessor belongs to: display name, policies, expiry",
        params: &[req("accessor", P::String, "the token's accessor")],
        outputs: &[
            out("display_name", "token display name"),
            out("policies", "attached policies"),
            out("expire_time", "expiry, or empty"),
            out("creation_time", "creation time (Unix seconds)"),
        ],
        dynamic_outputs: false,
        idempotent: true,
    },
];

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::{ActionError, OutputValue, Outputs};
use crate::config::{self, VaultConfig};
use crate::secret::Secret;

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
        let mount = Some(s("mount"))
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| self.kv_mount.clone());
        match action {
            "vault.kv_put" => {
                let data = p.get("data").cloned().unwrap_or_else(|| json!({}));
                let body = self
                    .call(
                        Method::POST,
                        &format!("{mount}/data/{}", s("path")),
                        Some(json!({ "data": data })),
                        "create/update",
                    )
                    .await?;
                let version = body
                    .pointer("/data/version")
                    .cloned()
                    .unwrap_or(Value::Null);
                Ok(vec![("version".into(), OutputValue::Plain(version))])
            }
            "vault.kv_get" => {
                let (field, value, version) = self.kv_get(&mount, &s("path"), &s("field")).await?;
                Ok(vec![
                    (
                        "value".into(),
                        OutputValue::Secret(Secret::new(format!("{step}.{field}"), value)),
                    ),
                    ("version".into(), OutputValue::Plain(version)),
                ])
            }
            "vault.revoke_prefix" => {
                self.call(
                    Method::PUT,
                    &format!("sys/leases/revoke-prefix/{}", s("prefix")),
                    None,
                    "sudo",
                )
                .await?;
                Ok(Vec::new())
            }
            "vault.revoke_accessor" => {
                self.call(
                    Method::POST,
                    "auth/token/revoke-accessor",
                    Some(json!({ "accessor": s("accessor") })),
                    "update",
                )
                .await?;
                Ok(Vec::new())
            }
            "vault.lookup_accessor" => {
                let body = self
                    .call(
                        Method::POST,
                        "auth/token/lookup-accessor",
                        Some(json!({ "accessor": s("accessor") })),
                        "update",
                    )
                    .await?;
                let d = |k: &str| {
                    body.pointer(&format!("/data/{k}"))
                        .cloned()
                        .unwrap_or(Value::Null)
                };
                Ok(vec![
                    ("display_name".into(), OutputValue::Plain(d("display_name"))),
                    ("policies".into(), OutputValue::Plain(d("policies"))),
                    ("expire_time".into(), OutputValue::Plain(d("expire_time"))),
                    (
                        "creation_time".into(),
                        OutputValue::Plain(d("creation_time")),
                    ),
                ])
            }
            other => Err(ActionError::permanent(format!(
                "`{other}` is not a vault action (internal error: please report it)"
            ))),
        }
    }

    /// Reads one field of a KV v2 secret: (field, value, version).
    pub async fn kv_get(
        &self,
        mount: &str,
        path: &str,
        field: &str,
    ) -> Result<(String, String, Value), ActionError> {
        let body = self
            .call(Method::GET, &format!("{mount}/data/{path}"), None, "read")
            .await?;
        let value = match body.pointer(&format!("/data/data/{field}")) {
            Some(Value::String(v)) => v.clone(),
            Some(other) => other.to_string(),
            None => {
                return Err(ActionError::permanent(format!(
                    "`{mount}/{path}` has no field `{field}`"
                )));
            }
        };
        let version = body
            .pointer("/data/metadata/version")
            .cloned()
            .unwrap_or(Value::Null);
        Ok((field.to_string(), value, version))
    }

    /// One request to `/v1/{path}`. A refusal names the capability the
    /// engine's token needs on that path.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        capability: &str,
    ) -> Result<Value, ActionError> {
        let url = format!("{}/v1/{path}", self.address);
        let mut rb = self
            .http
            .request(method.clone(), &url)
            .header("X-Vault-Token", self.token.expose())
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
        if status.is_success() {
            return Ok(if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::Null)
            });
        }
        let errors = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("errors").cloned())
            .and_then(|e| {
                e.as_array().map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
            })
            .unwrap_or_default();
        let message = format!("{method} /v1/{path} answered {status}: {errors}");
        Err(match status {
            StatusCode::TOO_MANY_REQUESTS => {
                ActionError::rate_limited(retry_after.or(Some(Duration::from_secs(1))), message)
            }
            StatusCode::FORBIDDEN => ActionError::permanent(format!(
                "{message} (the engine's Vault token needs `{capability}` on `{path}`)"
            )),
            s if s.is_server_error() => ActionError::transient(message),
            _ => ActionError::permanent(message),
        })
    }
}
