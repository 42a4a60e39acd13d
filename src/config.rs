//! `quench.toml`: where the engine's own credentials come from, provider
//! endpoints, and who may do what from Slack. Optional: with none, every
//! provider reads its ecosystem's standard environment variables.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::secret::{Secret, SecretSource};

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where incidents are kept: a directory, or a `postgres://` URL
    /// (without a password); `--store` and `QUENCH_STORE` override it.
    pub store: Option<String>,
    pub postgres: PostgresConfig,
    pub providers: Providers,
    pub chatops: ChatOps,
    /// Detectors that start responses: `quench serve`'s `/hooks/…`.
    pub hooks: Hooks,
    /// Which detections start which runbook. Deny by default: a detection
    /// no trigger matches starts nothing.
    pub triggers: Vec<Trigger>,
    /// Scheduled rotations, started by `quench tick` when due.
    pub rotations: Vec<RotationConfig>,
    /// The monthly key review, `quench audit`.
    pub audit: AuditConfig,
}

/// `[audit]`: what `quench audit` reads and when it flags a credential.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// The sources to review, of `aws`, `github`, `vault`. Omitted: AWS
    /// when an AWS setting is known, Vault when its address is, GitHub
    /// when `github_org` is set.
    pub sources: Option<Vec<String>>,
    /// The organization whose fine-grained personal access tokens are read.
    pub github_org: Option<String>,
    /// A credential older than this is flagged (default `90d`).
    pub max_age: Option<String>,
    /// A credential not used for this long is flagged (default `30d`).
    pub unused_after: Option<String>,
    /// Per-credential maximum ages, by IAM user, key id, token owner or
    /// name, or Vault display name or accessor: `"billing-bot" = "30d"`.
    pub max_age_for: BTreeMap<String, String>,
}

/// `[[rotations]]`: a rotation runbook, its inputs, and how often it runs.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationConfig {
    /// What `quench rotations` calls it (default: the runbook's name).
    pub name: Option<String>,
    pub runbook: String,
    /// `90d`, or a cron expression (`0 3 1 */3 *`), in UTC.
    pub every: String,
    #[serde(default)]
    pub inputs: std::collections::BTreeMap<String, String>,
    /// A Slack channel told when a run fails, each time it is retried, and
    /// when it is given up on (default: none).
    pub channel: Option<String>,
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
#[serde(default, deny_unknown_fields)]
pub struct Providers {
    pub aws: AwsConfig,
    pub github: GithubConfig,
    pub vault: VaultConfig,
    pub slack: SlackConfig,
    pub kubernetes: KubernetesConfig,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
    /// The regions `aws.lookup_events` searches (default: those every
    /// account has enabled; see `providers::aws::DEFAULT_REGIONS`).
    pub regions: Option<Vec<String>>,
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

/// Without either, kube's own inference: `KUBECONFIG` (or
/// `~/.kube/config`) and its current context, else the pod's service
/// account.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// A kubeconfig file to read instead of `KUBECONFIG`'s.
    pub kubeconfig: Option<String>,
    /// The kubeconfig context to use instead of its current one.
    pub context: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatOps {
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

/// The detectors `quench serve` takes detections from; each is off until
/// configured.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hooks {
    /// Where hook-started incidents keep their status message and ask for
    /// approvals, unless a trigger names its own.
    pub channel: Option<String>,
    pub github: Option<GithubHook>,
    pub aws: Option<AwsHook>,
    pub generic: BTreeMap<String, GenericHook>,
}

/// GitHub's `secret_scanning_alert` webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubHook {
    /// The webhook's secret: a source, never a literal.
    pub secret: String,
}

/// AWS Health events, delivered by an EventBridge API destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsHook {
    /// The API key's header name, as the connection sends it.
    pub header: String,
    /// The API key: a source, never a literal.
    pub value: String,
}

/// Any detector that signs its JSON as quench documents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericHook {
    /// The signing secret: a source, never a literal.
    pub secret: String,
}

/// One detection → runbook rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// `github`, `aws` or `generic:NAME`.
    pub source: String,
    /// GitHub secret types (`github_personal_access_token`); omitted: any.
    pub secret_types: Option<Vec<String>>,
    /// `owner/name` globs (`acme/*`); omitted: any repository.
    pub repos: Option<Vec<String>>,
    pub runbook: String,
    /// Input values: templates over the detection (`{{repository}}`); for
    /// a generic hook, JSON pointers into its body (`/key/id`).
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// A generic hook's secrets: JSON pointers into its body.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Phases that run without waiting for a person.
    #[serde(default)]
    pub unattended: Vec<String>,
    /// The Slack channel for this trigger's incidents.
    pub channel: Option<String>,
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
            Some(p) => p,
            None if Path::new("quench.toml").is_file() => Path::new("quench.toml"),
            None => return Ok(Config::default()),
        };
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
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
        if let Some((key, _)) = config.credentials().find(|(_, v)| !is_source(v)) {
            return Err(ConfigError::Literal {
                path: path.to_string(),
                key,
            });
        }
        config.check_triggers(path)?;
        if let Some(lease) = &config.postgres.lease {
            crate::time::parse_duration(lease).map_err(|e| ConfigError::Invalid {
                path: path.to_string(),
                message: format!("`postgres.lease`: {e}"),
            })?;
        }
        Ok(config)
    }

    /// Every credential the file gives, by its key: each must be a source.
    fn credentials(&self) -> impl Iterator<Item = (String, &str)> {
        let (p, h) = (&self.providers, &self.hooks);
        let generic = h
            .generic
            .iter()
            .map(|(name, g)| (format!("hooks.generic.{name}.secret"), &g.secret));
        [
            ("providers.github.token", p.github.token.as_ref()),
            ("providers.vault.token", p.vault.token.as_ref()),
            ("providers.slack.bot_token", p.slack.bot_token.as_ref()),
            (
                "providers.slack.signing_secret",
                p.slack.signing_secret.as_ref(),
            ),
            ("postgres.password", self.postgres.password.as_ref()),
            ("hooks.github.secret", h.github.as_ref().map(|g| &g.secret)),
            ("hooks.aws.value", h.aws.as_ref().map(|a| &a.value)),
        ]
        .into_iter()
        .filter_map(|(key, v)| Some((key.to_string(), v?)))
        .chain(generic)
        .map(|(key, v)| (key, v.as_str()))
    }

    /// Each trigger names a configured hook (its runbook and phases are
    /// checked when `quench serve` starts).
    fn check_triggers(&self, path: &str) -> Result<(), ConfigError> {
        let h = &self.hooks;
        for (i, t) in self.triggers.iter().enumerate() {
            let configured = match t.source.as_str() {
                "github" => h.github.is_some(),
                "aws" => h.aws.is_some(),
                s => s
                    .strip_prefix("generic:")
                    .is_some_and(|n| h.generic.contains_key(n)),
            };
            if !configured {
                return Err(ConfigError::Invalid {
                    path: path.to_string(),
                    message: format!(
                        "trigger {} has source `{}`, which no `[hooks]` table configures (`github`, `aws` or `generic:NAME`)",
                        i + 1,
                        t.source
                    ),
                });
            }
        }
        Ok(())
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
        let read = SecretSource::parse(source).and_then(|s| s.read(name));
        return read
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
    fn hooks_take_sources_and_triggers_name_a_configured_hook() {
        let hooks = "[hooks.github]\nsecret = \"env:GH_HOOK\"\n[hooks.generic.canary]\nsecret = \"file:/etc/canary\"\n";
        let trigger = |source: &str| {
            format!(
                "{hooks}[[triggers]]\nsource = \"{source}\"\nrunbook = \"rb\"\ninputs = {{ repo = \"{{{{repository}}}}\" }}\n"
            )
        };
        let ok = Config::parse("q.toml", &trigger("generic:canary")).unwrap();
        assert_eq!(ok.triggers[0].inputs["repo"], "{{repository}}");
        assert!(Config::parse("q.toml", &trigger("github")).is_ok());
        for unknown in ["aws", "generic:other", "gitlab"] {
            let err = Config::parse("q.toml", &trigger(unknown)).unwrap_err();
            assert!(
                err.to_string()
                    .contains("which no `[hooks]` table configures"),
                "{err}"
            );
        }
        let literal = Config::parse(
            "q.toml",
            "[hooks.aws]\nheader = \"x-key\"\nvalue = \"k3y\"\n",
        )
        .unwrap_err();
        assert!(
            literal.to_string().contains("`hooks.aws.value`"),
            "{literal}"
        );
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
