//! `quench.toml`: where the engine's own credentials come from, provider
//! endpoints, and who may do what from Slack. Optional: with none, every
//! provider reads its ecosystem's standard environment variables.

use std::path::Path;

use serde::Deserialize;

use crate::secret::{Secret, SecretSource};

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where incidents are kept: a directory, or a `postgres://` URL
    /// (without a password); `--store` and `QUENCH_STORE` override it.
    pub store: Option<String>,
    #[serde(default)]
    pub postgres: PostgresConfig,
    #[serde(default)]
    pub providers: Providers,
    #[serde(default)]
    pub chatops: ChatOps,
}

/// `[postgres]`: how a PostgreSQL store is reached and leased.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// A source (`env:VAR`, `file:PATH`), never a literal; default
    /// `PGPASSWORD`.
    pub password: Option<String>,
    /// How long a runner's lease on an incident lasts unless renewed
    /// (default 15s): how long a dead replica's incident waits.
    pub lease: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Providers {
    #[serde(default)]
    pub aws: AwsConfig,
    #[serde(default)]
    pub github: GithubConfig,
    #[serde(default)]
    pub vault: VaultConfig,
    #[serde(default)]
    pub slack: SlackConfig,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    pub api_url: Option<String>,
    /// A source (`env:VAR`, `file:PATH`, `vault:PATH#FIELD`), never a literal.
    pub token: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    pub address: Option<String>,
    /// A source, never a literal.
    pub token: Option<String>,
    pub kv_mount: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    pub api_url: Option<String>,
    /// A source, never a literal.
    pub bot_token: Option<String>,
    /// A source, never a literal.
    pub signing_secret: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatOps {
    #[serde(default)]
    pub allow: Vec<AllowRule>,
}

/// Every field a rule lists must match; an omitted field matches anything.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowRule {
    pub runbooks: Option<Vec<String>>,
    pub users: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub actions: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read `{path}`: {reason}")]
    Io { path: String, reason: String },
    #[error("`{path}` is not valid: {message}")]
    Invalid { path: String, message: String },
    #[error(
        "`{key}` in `{path}` must be a source (`env:VAR`, `file:PATH` or `vault:PATH#FIELD`), not a literal credential"
    )]
    Literal { path: String, key: String },
    #[error("{0}")]
    Credential(String),
}

impl Config {
    /// `--config FILE`, else `quench.toml` in the working directory if there
    /// is one, else the defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => {
                let p = Path::new("quench.toml");
                if !p.is_file() {
                    return Ok(Config::default());
                }
                p.to_path_buf()
            }
        };
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Io {
            path: shown.clone(),
            reason: e.kind().to_string(),
        })?;
        Self::parse(&shown, &text)
    }

    pub fn parse(path: &str, text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let p = &config.providers;
        for (key, value) in [
            ("providers.github.token", &p.github.token),
            ("providers.vault.token", &p.vault.token),
            ("providers.slack.bot_token", &p.slack.bot_token),
            ("providers.slack.signing_secret", &p.slack.signing_secret),
            ("postgres.password", &config.postgres.password),
        ] {
            if let Some(v) = value
                && !is_source(v)
            {
                return Err(ConfigError::Literal {
                    path: path.to_string(),
                    key: key.to_string(),
                });
            }
        }
        if let Some(lease) = &config.postgres.lease {
            crate::time::parse_duration(lease).map_err(|e| ConfigError::Invalid {
                path: path.to_string(),
                message: format!("`postgres.lease`: {e}"),
            })?;
        }
        Ok(config)
    }
}

fn is_source(v: &str) -> bool {
    v.starts_with("env:") || v.starts_with("file:") || v.starts_with("vault:")
}

/// Reads a credential: the configured source if there is one, else the
/// first of the ecosystem's environment variables that is set.
pub fn credential(
    name: &str,
    configured: Option<&str>,
    env_vars: &[&str],
) -> Result<Option<Secret>, ConfigError> {
    if let Some(source) = configured {
        let source = SecretSource::parse(source)
            .map_err(|e| ConfigError::Credential(format!("`{name}`: {e}")))?;
        return source
            .read(name)
            .map(Some)
            .map_err(|e| ConfigError::Credential(format!("`{name}`: {e}")));
    }
    for var in env_vars {
        if let Ok(v) = std::env::var(var)
            && !v.is_empty()
        {
            return Ok(Some(Secret::new(name, v)));
        }
    }
    Ok(None)
}

/// The first setting given: the config file's, else an environment variable's.
pub fn setting(configured: Option<&str>, env_vars: &[&str]) -> Option<String> {
    configured.map(str::to_string).or_else(|| {
        env_vars
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_must_be_sources() {
        let err =
            Config::parse("q.toml", "[providers.github]\ntoken = \"ghp_literal\"\n").unwrap_err();
        assert!(err.to_string().contains("must be a source"), "{err}");
        assert!(!err.to_string().contains("ghp_literal"));
        let ok = Config::parse("q.toml", "[providers.github]\ntoken = \"env:GH\"\n").unwrap();
        assert_eq!(ok.providers.github.token.as_deref(), Some("env:GH"));
    }

    #[test]
    fn unknown_keys_are_errors_with_a_location() {
        let err = Config::parse("q.toml", "[providers.aws]\nregoin = \"eu-west-1\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("regoin") && text.contains("line 2"), "{text}");
    }

    #[test]
    fn chatops_rules_parse() {
        let c = Config::parse(
            "q.toml",
            "[[chatops.allow]]\nrunbooks = [\"aws-*\"]\nusers = [\"U0123\"]\nactions = [\"run\"]\n",
        )
        .unwrap();
        assert_eq!(c.chatops.allow.len(), 1);
        assert!(c.chatops.allow[0].channels.is_none());
    }
}
