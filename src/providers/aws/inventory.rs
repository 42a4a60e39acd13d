//! Reading every IAM user's access keys, with their last use, for the
//! monthly review (`quench audit`).

use chrono::{DateTime, Utc};

use super::permissions::Read;
use super::{Aws, classify, policy};
use crate::providers::ActionError;

/// One access key as the review sees it: never its secret, which IAM does
/// not hand back after creation anyway.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub user: String,
    pub key_id: String,
    /// `Active` or `Inactive`.
    pub status: String,
    pub created: Option<DateTime<Utc>>,
    pub last_used: Option<DateTime<Utc>>,
    /// The service and region of that last use (`N/A` when never used).
    pub last_service: Option<String>,
    pub last_region: Option<String>,
}

pub(super) fn to_chrono(t: &aws_sdk_iam::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

impl Aws {
    /// Every user's access keys, each with its last use.
    pub async fn all_access_keys(&self) -> Result<Vec<KeyRecord>, ActionError> {
        let users = all_pages!(self.iam.list_users(), "iam:ListUsers")?;
        let mut out = Vec::new();
        for user in users {
            let name = user.user_name().to_string();
            for key in self.access_keys(&name).await? {
                let key_id = key.access_key_id().unwrap_or_default().to_string();
                let last = self.last_used(&key_id).await?;
                let last = last.as_ref();
                let known = |s: Option<&str>| s.filter(|s| *s != "N/A").map(str::to_string);
                out.push(KeyRecord {
                    user: name.clone(),
                    status: key
                        .status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    created: key.create_date().and_then(to_chrono),
                    last_used: last.and_then(|l| l.last_used_date()).and_then(to_chrono),
                    last_service: known(last.map(|l| l.service_name())),
                    last_region: known(last.map(|l| l.region())),
                    key_id,
                });
            }
        }
        Ok(out)
    }

    /// What `user`'s policies expose that the review flags: admin (every
    /// action on every resource) and allows on every resource.
    pub async fn broad_permissions(&self, user: &str) -> Result<Vec<String>, ActionError> {
        let mut read = Read::default();
        self.policies(user, &mut read).await?;
        Ok(policy::flags(&read.statements)
            .into_iter()
            .filter(|f| f.starts_with("admin:") || f.starts_with("every resource:"))
            .collect())
    }
}
