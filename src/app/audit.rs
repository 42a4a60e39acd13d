//! The monthly key review (`quench audit`): every credential the engine
//! can list at AWS IAM, GitHub (an organization's fine-grained tokens) and
//! Vault, with what a reviewer should look at flagged. Read only: nothing
//! is changed, and no secret is ever read.
//!
//! - `sources` — one reader per source, turning its listing into rows
//! - `render`  — the table and the Markdown

mod render;
mod sources;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Error;
use crate::config::{AuditConfig, Config};

/// When no `[audit] max_age` is configured.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(90 * 86_400);
/// When no `[audit] unused_after` is configured.
pub const DEFAULT_UNUSED_AFTER: Duration = Duration::from_secs(30 * 86_400);

/// The sources `quench audit` knows, in the order it reads them.
pub const SOURCES: [&str; 3] = ["aws", "github", "vault"];

/// When a credential is flagged, from `[audit]`.
#[derive(Debug, Clone)]
pub struct Thresholds {
    pub max_age: Duration,
    pub unused_after: Duration,
    /// By IAM user, key id, token owner or name, Vault display name or accessor.
    pub max_age_for: BTreeMap<String, Duration>,
}

impl Thresholds {
    pub fn from_config(c: &AuditConfig) -> Result<Thresholds, Error> {
        let parse = |key: &str, v: &str| {
            crate::time::parse_duration(v)
                .map_err(|e| Error::Usage(format!("`[audit] {key}`: {e}")))
        };
        let given_or = |key: &str, v: &Option<String>, default: Duration| {
            v.as_deref().map_or(Ok(default), |v| parse(key, v))
        };
        Ok(Thresholds {
            max_age: given_or("max_age", &c.max_age, DEFAULT_MAX_AGE)?,
            unused_after: given_or("unused_after", &c.unused_after, DEFAULT_UNUSED_AFTER)?,
            max_age_for: c
                .max_age_for
                .iter()
                .map(|(k, v)| Ok((k.clone(), parse(&format!("max_age_for.{k}"), v)?)))
                .collect::<Result<_, Error>>()?,
        })
    }

    /// The maximum age of the credential known by any of `names`: the
    /// strictest override that names it, else the default.
    fn max_age(&self, names: &[&str]) -> Duration {
        names
            .iter()
            .filter_map(|n| self.max_age_for.get(*n))
            .min()
            .copied()
            .unwrap_or(self.max_age)
    }
}

/// One credential, as the review lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Credential {
    /// `aws`, `github` or `vault`.
    pub source: &'static str,
    /// The key id, the token's id and name, or the Vault accessor.
    pub id: String,
    /// The IAM user, the token's owner, or the Vault display name.
    pub owner: String,
    /// `Active`, `Inactive`, `expired`, `active`.
    pub status: String,
    pub created: Option<String>,
    pub age_days: Option<i64>,
    pub last_used: Option<String>,
    /// The service and region (AWS) of the last use.
    pub last_used_by: Option<String>,
    /// `None` for a credential that never expires (or an AWS key, which
    /// has no expiry at all).
    pub expires: Option<String>,
    /// Policies, permissions and repositories: what it reaches.
    pub scope: Vec<String>,
    pub flags: Vec<String>,
}

/// How one source went.
#[derive(Debug, Clone, Serialize)]
pub struct SourceState {
    pub source: &'static str,
    /// `checked`, `not checked` or `failed`.
    pub state: &'static str,
    /// Why it was not checked, or why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub credentials: usize,
}

/// The review.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    pub now: String,
    pub max_age_days: u64,
    pub unused_after_days: u64,
    pub sources: Vec<SourceState>,
    pub credentials: Vec<Credential>,
    pub flagged: usize,
}

impl Audit {
    /// 2 when a configured source could not be read, else 1 when
    /// anything is flagged, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.sources.iter().any(|s| s.state == "failed") {
            2
        } else if self.flagged > 0 {
            1
        } else {
            0
        }
    }

    pub fn table(&self) -> String {
        render::table(self)
    }

    pub fn markdown(&self) -> String {
        render::markdown(self)
    }
}

/// Which sources are configured: `[audit] sources`, else those whose
/// settings are known. An unknown name is bad input.
pub fn configured(config: &Config) -> Result<Vec<&'static str>, Error> {
    if let Some(named) = &config.audit.sources {
        for n in named {
            if !SOURCES.contains(&n.as_str()) {
                return Err(Error::Usage(format!(
                    "`[audit] sources` names `{n}`: the sources are `aws`, `github` and `vault`"
                )));
            }
        }
        return Ok(SOURCES
            .into_iter()
            .filter(|s| named.iter().any(|n| n == s))
            .collect());
    }
    let aws = &config.providers.aws;
    let aws_known = aws.region.is_some()
        || aws.endpoint_url.is_some()
        || aws.profile.is_some()
        || [
            "AWS_ACCESS_KEY_ID",
            "AWS_PROFILE",
            "AWS_ROLE_ARN",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        ]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()));
    let vault_known = crate::config::setting(
        config.providers.vault.address.as_deref(),
        &["VAULT_ADDR", "BAO_ADDR"],
    )
    .is_some();
    let github_known = config.audit.github_org.is_some();
    Ok(SOURCES
        .into_iter()
        .zip([aws_known, github_known, vault_known])
        .filter_map(|(s, known)| known.then_some(s))
        .collect())
}

/// Reads every configured source as of `now`. `rotating` holds the inputs
/// of the rotations running now: a user named in one may have two keys.
pub async fn review(
    config: &Config,
    rotating: &[BTreeMap<String, String>],
    now: DateTime<Utc>,
) -> Result<Audit, Error> {
    let thresholds = Thresholds::from_config(&config.audit)?;
    let wanted = configured(config)?;
    let mut states = Vec::new();
    let mut credentials = Vec::new();
    for source in SOURCES {
        let (state, detail, n) = if !wanted.contains(&source) {
            ("not checked", Some(sources::unconfigured(source).into()), 0)
        } else {
            match sources::read(source, config, &thresholds, rotating, now).await {
                Ok(rows) => {
                    let n = rows.len();
                    credentials.extend(rows);
                    ("checked", None, n)
                }
                Err(why) => ("failed", Some(why), 0),
            }
        };
        states.push(SourceState {
            source,
            state,
            detail,
            credentials: n,
        });
    }
    Ok(Audit {
        now: crate::time::format_ts(&now),
        max_age_days: thresholds.max_age.as_secs() / 86_400,
        unused_after_days: thresholds.unused_after.as_secs() / 86_400,
        flagged: credentials.iter().filter(|c| !c.flags.is_empty()).count(),
        sources: states,
        credentials,
    })
}

/// Age and use flags shared by every source.
fn age_flags(
    flags: &mut Vec<String>,
    t: &Thresholds,
    names: &[&str],
    created: Option<DateTime<Utc>>,
    last_used: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) {
    let days = |d: Duration| d.as_secs() / 86_400;
    let max_age = t.max_age(names);
    if let Some(age) = created.and_then(|c| (now - c).to_std().ok())
        && age > max_age
    {
        flags.push(format!("older than {}d ({}d)", days(max_age), days(age)));
    }
    let unused_since = last_used.or(created);
    if let Some(idle) = unused_since.and_then(|u| (now - u).to_std().ok())
        && idle > t.unused_after
    {
        flags.push(match last_used {
            Some(_) => format!("unused for {}d", days(idle)),
            None => format!("never used in {}d", days(idle)),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn age_and_use_are_flagged_against_the_strictest_override() {
        let config = AuditConfig {
            max_age_for: [("billing-bot".to_string(), "30d".to_string())].into(),
            ..AuditConfig::default()
        };
        let t = Thresholds::from_config(&config).unwrap();
        let now = at("2027-01-01T00:00:00Z");
        let mut flags = Vec::new();
        let created = Some(at("2026-11-01T00:00:00Z"));
        age_flags(&mut flags, &t, &["ci-bot"], created, Some(now), now);
        assert!(flags.is_empty(), "{flags:?}");
        age_flags(&mut flags, &t, &["billing-bot"], created, None, now);
        assert_eq!(flags, ["older than 30d (61d)", "never used in 61d"]);
    }

    #[test]
    fn a_bad_threshold_is_bad_input() {
        let config = AuditConfig {
            max_age: Some("ninety days".into()),
            ..AuditConfig::default()
        };
        let err = Thresholds::from_config(&config).unwrap_err();
        assert!(err.to_string().contains("`[audit] max_age`"), "{err}");
    }
}
