//! AWS Health's `AWS_RISK_CREDENTIALS_EXPOSED`, as an EventBridge API
//! destination delivers it: the event's JSON, the exposed access key ids in
//! `detail.affectedEntities[].entityValue`. Who owns a key is asked of IAM
//! (`GetAccessKeyLastUsed`), with the clients the `aws` provider builds;
//! a key of an account the engine's credentials cannot manage is said so.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::OnceCell;

use aws_sdk_iam::error::ProvideErrorMetadata;

use crate::config::AwsConfig;
use crate::providers::aws::Aws;

pub const EVENT_TYPE: &str = "AWS_RISK_CREDENTIALS_EXPOSED";

/// What the event says.
#[derive(Debug, Clone)]
pub struct Exposed {
    /// The event's `id`: its delivery id.
    pub id: String,
    pub account: String,
    pub region: String,
    pub time: Option<DateTime<Utc>>,
    pub arn: Option<String>,
    /// The exposed access key ids.
    pub keys: Vec<String>,
}

impl Exposed {
    /// The exposure an event reports, or why it reports none.
    pub fn from_event(v: &Value) -> Result<Exposed, String> {
        let detail = &v["detail"];
        let kind = detail["eventTypeCode"].as_str().unwrap_or_default();
        if v["source"] != "aws.health" || kind != EVENT_TYPE {
            return Err(format!(
                "not an AWS Health `{EVENT_TYPE}` event (source `{}`, type `{kind}`)",
                v["source"].as_str().unwrap_or_default()
            ));
        }
        let keys: Vec<String> = detail["affectedEntities"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["entityValue"].as_str())
            .filter(|k| is_key_id(k))
            .map(str::to_string)
            .collect();
        if keys.is_empty() {
            return Err("the event names no access key id in `detail.affectedEntities`".into());
        }
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        Ok(Exposed {
            id: text("id"),
            account: text("account"),
            region: text("region"),
            time: v["time"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
            arn: detail["eventArn"].as_str().map(str::to_string),
            keys,
        })
    }
}

/// `AKIA…`/`ASIA…` and 16 more: nothing else is looked up.
fn is_key_id(k: &str) -> bool {
    k.len() == 20
        && (k.starts_with("AKIA") || k.starts_with("ASIA"))
        && k.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// IAM and STS as the engine's AWS credentials reach them, built on the
/// first event (loading the SDK's configuration is not free).
#[derive(Default)]
pub struct Iam {
    clients: OnceCell<(aws_sdk_iam::Client, aws_sdk_sts::Client)>,
    /// The account the engine's credentials belong to.
    account: OnceCell<String>,
}

impl Iam {
    async fn clients(&self, config: &AwsConfig) -> &(aws_sdk_iam::Client, aws_sdk_sts::Client) {
        self.clients
            .get_or_init(|| async {
                let aws = Aws::build(config).await;
                (
                    aws_sdk_iam::Client::new(aws.sdk()),
                    aws_sdk_sts::Client::new(aws.sdk()),
                )
            })
            .await
    }

    /// The engine's own account (`sts:GetCallerIdentity`).
    pub async fn account(&self, config: &AwsConfig) -> Result<String, String> {
        let (_, sts) = self.clients(config).await;
        self.account
            .get_or_try_init(|| async {
                let out = sts
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| refusal("STS GetCallerIdentity", &e))?;
                out.account()
                    .map(str::to_string)
                    .ok_or_else(|| "STS GetCallerIdentity named no account".to_string())
            })
            .await
            .cloned()
    }

    /// The IAM user that owns `key` (`iam:GetAccessKeyLastUsed`).
    pub async fn owner(&self, config: &AwsConfig, key: &str) -> Result<String, String> {
        let (iam, _) = self.clients(config).await;
        let out = iam
            .get_access_key_last_used()
            .access_key_id(key)
            .send()
            .await
            .map_err(|e| refusal("IAM GetAccessKeyLastUsed", &e))?;
        out.user_name()
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("IAM GetAccessKeyLastUsed names no user for `{key}`"))
    }
}

fn refusal(call: &str, e: &impl ProvideErrorMetadata) -> String {
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{call}: {code}: {message}"),
        (Some(code), None) => format!("{call}: {code}"),
        _ => format!("{call}: no answer from AWS"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exposure_event_names_its_keys() {
        let event = serde_json::json!({
            "version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602",
            "detail-type": "AWS Health Event", "source": "aws.health",
            "account": "123456789012", "time": "2026-12-07T10:00:00Z", "region": "us-east-1",
            "resources": [],
            "detail": {
                "eventArn": "arn:aws:health:global::event/RISK/AWS_RISK_CREDENTIALS_EXPOSED/x",
                "service": "RISK", "eventTypeCode": "AWS_RISK_CREDENTIALS_EXPOSED",
                "eventTypeCategory": "issue",
                "affectedEntities": [{"entityValue": "AKIAIOSFODNN7EXAMPLE"}, {"entityValue": "not a key"}]
            }
        });
        let e = Exposed::from_event(&event).unwrap();
        assert_eq!(e.keys, ["AKIAIOSFODNN7EXAMPLE"]);
        assert_eq!(
            (e.account.as_str(), e.region.as_str()),
            ("123456789012", "us-east-1")
        );
        let mut other = event.clone();
        other["detail"]["eventTypeCode"] = serde_json::json!("AWS_EC2_OPERATIONAL_ISSUE");
        assert!(Exposed::from_event(&other).is_err());
    }
}
