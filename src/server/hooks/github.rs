//! GitHub's `secret_scanning_alert` webhook: what its payload says, and
//! what quench reads with the engine's token, since the payload never
//! carries the secret: the alert (`secret`, `secret_type`), its first
//! location and that commit's date, when the secret leaked.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::{self, GithubConfig};
use crate::secret::Secret;

/// What the payload says about an alert.
#[derive(Debug, Clone)]
pub struct Alert {
    pub action: String,
    pub number: u64,
    /// `owner/name`.
    pub repository: String,
    pub secret_type: String,
    /// Where a person reads it.
    pub url: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

impl Alert {
    /// The alert of a `secret_scanning_alert` payload, or why there is none.
    pub fn from_payload(v: &Value) -> Result<Alert, String> {
        let alert = &v["alert"];
        let number = alert["number"]
            .as_u64()
            .ok_or("the payload has no `alert.number`")?;
        let repository = v["repository"]["full_name"]
            .as_str()
            .filter(|r| is_repo(r))
            .ok_or("the payload has no `repository.full_name` of the form `owner/name`")?;
        Ok(Alert {
            action: v["action"].as_str().unwrap_or_default().to_string(),
            number,
            repository: repository.to_string(),
            secret_type: alert["secret_type"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            url: alert["html_url"].as_str().map(str::to_string),
            created_at: alert["created_at"].as_str().and_then(parse_time),
        })
    }
}

/// `owner/name`, nothing that could leave the repository's API paths.
fn is_repo(r: &str) -> bool {
    let ok = |part: &str| {
        !part.is_empty()
            && part != "."
            && part != ".."
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    r.split_once('/').is_some_and(|(o, n)| ok(o) && ok(n))
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Where and when the secret leaked: the alert's first location.
#[derive(Debug, Clone)]
pub struct Leak {
    /// `acme/deploy@f14d7de:config/.env:3`, or the location's kind.
    pub location: String,
    /// The commit's author date: the earliest the secret can have been in it.
    pub at: Option<DateTime<Utc>>,
}

/// A request that failed, and whether trying again can help.
#[derive(Debug, Clone)]
pub struct Failure {
    pub retryable: bool,
    pub message: String,
}

/// The GitHub API as the engine reaches it: `[providers.github]`'s
/// `api_url` and token, or `GITHUB_API_URL` and `GITHUB_TOKEN`.
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    token: Option<Secret>,
}

impl Default for Api {
    fn default() -> Self {
        Api {
            base: crate::providers::github::DEFAULT_API_URL.into(),
            token: None,
        }
    }
}

impl Api {
    pub fn from_config(config: &GithubConfig) -> Result<Api, String> {
        let base = config::setting(config.api_url.as_deref(), &["GITHUB_API_URL"])
            .unwrap_or_else(|| crate::providers::github::DEFAULT_API_URL.to_string());
        let token = config::credential("github_token", config.token.as_deref(), &["GITHUB_TOKEN"])
            .map_err(|e| e.to_string())?;
        Ok(Api {
            base: base.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// The engine's token, so it is redacted like any secret.
    pub fn token(&self) -> Option<&Secret> {
        self.token.as_ref()
    }

    async fn get(&self, http: &reqwest::Client, path: &str) -> Result<Value, Failure> {
        let Some(token) = &self.token else {
            return Err(Failure {
                retryable: false,
                message: "no GitHub token to read the alert with: set GITHUB_TOKEN or [providers.github] token".into(),
            });
        };
        let response = http
            .get(format!("{}{path}", self.base))
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(|e| Failure {
                retryable: true,
                message: format!("`GET {path}`: failed to reach GitHub: {}", e.without_url()),
            })?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|_| Failure {
            retryable: true,
            message: format!("`GET {path}`: the answer was cut off"),
        })?;
        if status != 200 {
            let said = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or_default();
            return Err(Failure {
                retryable: status == 429 || status >= 500,
                message: format!("`GET {path}` answered HTTP {status} {said}")
                    .trim_end()
                    .to_string(),
            });
        }
        serde_json::from_str(&body).map_err(|_| Failure {
            retryable: true,
            message: format!("`GET {path}`: the answer is not JSON"),
        })
    }

    /// The alert's secret and its type.
    pub async fn secret(
        &self,
        http: &reqwest::Client,
        alert: &Alert,
    ) -> Result<(String, String), Failure> {
        let path = format!(
            "/repos/{}/secret-scanning/alerts/{}",
            alert.repository, alert.number
        );
        let v = self.get(http, &path).await?;
        let secret = v["secret"].as_str().filter(|s| !s.is_empty());
        let Some(secret) = secret else {
            return Err(Failure {
                retryable: false,
                message: format!("`GET {path}` holds no `secret`"),
            });
        };
        let kind = v["secret_type"].as_str().unwrap_or(&alert.secret_type);
        Ok((secret.to_string(), kind.to_string()))
    }

    /// The alert's first location, and the date of its commit.
    pub async fn leak(
        &self,
        http: &reqwest::Client,
        alert: &Alert,
    ) -> Result<Option<Leak>, Failure> {
        let path = format!(
            "/repos/{}/secret-scanning/alerts/{}/locations",
            alert.repository, alert.number
        );
        let v = self.get(http, &path).await?;
        let Some(first) = v.as_array().and_then(|l| l.first()) else {
            return Ok(None);
        };
        let kind = first["type"].as_str().unwrap_or("unknown");
        let details = &first["details"];
        let sha = details["commit_sha"]
            .as_str()
            .filter(|s| kind == "commit" && s.chars().all(|c| c.is_ascii_hexdigit()));
        let Some(sha) = sha else {
            return Ok(Some(Leak {
                location: format!("{} ({kind})", alert.repository),
                at: None,
            }));
        };
        let file = details["path"].as_str().unwrap_or_default();
        let line = details["start_line"].as_u64().unwrap_or(0);
        let short = sha.get(..7).unwrap_or(sha);
        let commit = self
            .get(http, &format!("/repos/{}/commits/{sha}", alert.repository))
            .await?;
        let c = &commit["commit"];
        let at = c["author"]["date"]
            .as_str()
            .or(c["committer"]["date"].as_str())
            .and_then(parse_time);
        Ok(Some(Leak {
            location: format!("{}@{short}:{file}:{line}", alert.repository),
            at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_names_its_alert_and_repository() {
        let payload = serde_json::json!({
            "action": "created",
            "alert": {"number": 42, "secret_type": "github_personal_access_token",
                      "html_url": "https://github.com/acme/deploy/security/secret-scanning/42",
                      "created_at": "2026-12-07T10:00:00Z"},
            "repository": {"full_name": "acme/deploy"}
        });
        let a = Alert::from_payload(&payload).unwrap();
        assert_eq!((a.number, a.repository.as_str()), (42, "acme/deploy"));
        assert_eq!(
            a.created_at.unwrap().to_rfc3339(),
            "2026-12-07T10:00:00+00:00"
        );
        for bad in ["acme", "acme/../x", "../deploy", "acme/de ploy", "a/b/c"] {
            let mut p = payload.clone();
            p["repository"]["full_name"] = serde_json::json!(bad);
            assert!(Alert::from_payload(&p).is_err(), "{bad}");
        }
    }
}
