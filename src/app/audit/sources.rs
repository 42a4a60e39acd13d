//! One reader per source: list what the engine's credentials can see and
//! turn each entry into a [`Credential`] with its flags. An error names
//! what could not be read; it never carries a credential.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Credential, Thresholds, age_flags};
use crate::config::Config;
use crate::providers::aws::{Aws, KeyRecord};
use crate::providers::github::{Github, PatRecord};
use crate::providers::vault::{TokenRecord, Vault};

/// Why a source is not checked.
pub fn unconfigured(source: &str) -> &'static str {
    match source {
        "aws" => "no AWS settings: set AWS_PROFILE or AWS_ACCESS_KEY_ID, or [providers.aws]",
        "github" => "no organization: set `[audit] github_org`",
        _ => "no Vault address: set VAULT_ADDR (or BAO_ADDR) or [providers.vault] address",
    }
}

pub async fn read(
    source: &str,
    config: &Config,
    t: &Thresholds,
    rotating: &[BTreeMap<String, String>],
    now: DateTime<Utc>,
) -> Result<Vec<Credential>, String> {
    match source {
        "aws" => aws(config, t, rotating, now).await,
        "github" => github(config, t, now).await,
        _ => vault(config, t, now).await,
    }
}

fn ts(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(|t| crate::time::format_ts(&t))
}

fn age_days(created: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<i64> {
    created.map(|c| (now - c).num_days())
}

async fn aws(
    config: &Config,
    t: &Thresholds,
    rotating: &[BTreeMap<String, String>],
    now: DateTime<Utc>,
) -> Result<Vec<Credential>, String> {
    let aws = Aws::build(&config.providers.aws).await;
    let keys = aws.all_access_keys().await.map_err(|e| e.message)?;
    let mut by_user: BTreeMap<&str, Vec<&KeyRecord>> = BTreeMap::new();
    for k in &keys {
        by_user.entry(&k.user).or_default().push(k);
    }
    let mut out = Vec::new();
    for (user, keys) in by_user {
        let active = keys.iter().filter(|k| k.status == "Active").count();
        let broad = if active > 0 {
            aws.broad_permissions(user).await.map_err(|e| e.message)?
        } else {
            Vec::new()
        };
        let in_rotation = rotating.iter().any(|i| i.values().any(|v| v == user));
        for k in keys {
            let mut flags = Vec::new();
            if k.status == "Active" {
                age_flags(
                    &mut flags,
                    t,
                    &[user, &k.key_id],
                    k.created,
                    k.last_used,
                    now,
                );
                if active > 1 && !in_rotation {
                    flags.push("two active keys, no rotation running".into());
                }
                flags.extend(broad.iter().cloned());
            }
            out.push(Credential {
                source: "aws",
                id: k.key_id.clone(),
                owner: user.to_string(),
                status: k.status.clone(),
                created: ts(k.created),
                age_days: age_days(k.created, now),
                last_used: ts(k.last_used),
                last_used_by: k.last_service.as_ref().map(|s| match &k.last_region {
                    Some(r) => format!("{s} in {r}"),
                    None => s.clone(),
                }),
                expires: None,
                scope: Vec::new(),
                flags,
            });
        }
    }
    Ok(out)
}

async fn github(
    config: &Config,
    t: &Thresholds,
    now: DateTime<Utc>,
) -> Result<Vec<Credential>, String> {
    let org = config
        .audit
        .github_org
        .as_deref()
        .ok_or(unconfigured("github"))?;
    let github = Github::build(&config.providers.github)?;
    if let Some(why) = github.no_token() {
        return Err(why.to_string());
    }
    let pats = github.org_pats(org).await.map_err(|e| e.message)?;
    Ok(pats.iter().map(|p| pat(p, t, now)).collect())
}

fn pat(p: &PatRecord, t: &Thresholds, now: DateTime<Utc>) -> Credential {
    let id = format!("{} ({})", p.id, p.token_name);
    let mut flags = Vec::new();
    if !p.expired {
        age_flags(
            &mut flags,
            t,
            &[&p.owner, &p.token_name],
            p.granted,
            p.last_used,
            now,
        );
        if p.expires.is_none() {
            flags.push("no expiry".into());
        }
        if p.repository_selection == "all" {
            flags.push("wildcard: every repository of the organization".into());
        }
        for perm in &p.permissions {
            if perm.contains("administration: write") {
                flags.push(format!("admin: {perm}"));
            }
        }
    }
    let mut scope = p.permissions.clone();
    scope.push(match p.repository_selection.as_str() {
        "subset" => format!("repositories: {}", p.repositories.join(", ")),
        other => format!("repositories: {other}"),
    });
    Credential {
        source: "github",
        id,
        owner: p.owner.clone(),
        status: if p.expired { "expired" } else { "active" }.into(),
        created: ts(p.granted),
        age_days: age_days(p.granted, now),
        last_used: ts(p.last_used),
        last_used_by: None,
        expires: ts(p.expires),
        scope,
        flags,
    }
}

async fn vault(
    config: &Config,
    t: &Thresholds,
    now: DateTime<Utc>,
) -> Result<Vec<Credential>, String> {
    let vault = Vault::build(&config.providers.vault, reqwest::Client::new())?;
    let tokens = vault.token_accessors().await.map_err(|e| e.message)?;
    Ok(tokens.iter().map(|tk| token(tk, t, now)).collect())
}

/// Vault does not record a token's last use, so only its age, expiry and
/// policies are judged.
fn token(tk: &TokenRecord, t: &Thresholds, now: DateTime<Utc>) -> Credential {
    let mut flags = Vec::new();
    let max_age = t.max_age(&[&tk.display_name, &tk.accessor]);
    if let Some(age) = tk.created.and_then(|c| (now - c).to_std().ok())
        && age > max_age
    {
        flags.push(format!(
            "older than {}d ({}d)",
            max_age.as_secs() / 86_400,
            age.as_secs() / 86_400
        ));
    }
    if tk.expires.is_none() {
        flags.push("no expiry".into());
    }
    if tk.policies.iter().any(|p| p == "root") {
        flags.push("admin: the `root` policy".into());
    }
    Credential {
        source: "vault",
        id: tk.accessor.clone(),
        owner: tk.display_name.clone(),
        status: if tk.expires.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        }
        .into(),
        created: ts(tk.created),
        age_days: age_days(tk.created, now),
        last_used: None,
        last_used_by: None,
        expires: ts(tk.expires),
        scope: tk.policies.iter().map(|p| format!("policy: {p}")).collect(),
        flags,
    }
}
