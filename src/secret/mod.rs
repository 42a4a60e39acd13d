//! Secret values: the `Secret` type that cannot print itself, where secrets
//! come from (`env:`, `file:`, `stdin`), and the `Redactor` that sweeps every
//! outgoing value for every known secret in every common encoding.

mod redactor;

use std::fmt;

use sha2::{Digest, Sha256};

pub use redactor::{Redactor, encoded_forms};

/// The shortest secret quench accepts. A shorter value (`ts`, `e`) is part
/// of ordinary words, so it could be neither swept reliably nor told apart.
pub const MIN_SECRET_LEN: usize = 8;

/// A secret value. `Debug` and `Display` print a redaction marker; the value
/// is read only through [`Secret::expose`], so leaking one takes a visible act.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    name: String,
    value: String,
}

impl Secret {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw value. Call this only where the value leaves quench for the
    /// provider that needs it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// The marker that replaces this secret everywhere it would be shown.
    pub fn marker(&self) -> String {
        marker(&self.name, &self.value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.marker())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.marker())
    }
}

/// How every [`marker`] begins.
pub const MARKER_START: &str = "[REDACTED ";

/// `[REDACTED name sha256:1a2b3c4d]`: the first 8 hex digits of the value's
/// SHA-256 let responders tell two secrets apart without seeing either.
pub fn marker(name: &str, value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{MARKER_START}{name} sha256:{hex}]")
}

/// Where a secret is read from. A literal value is never accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(String),
    Stdin,
    /// `vault:MOUNT/PATH#FIELD`: a field of a KV v2 secret, read with the
    /// engine's Vault credentials.
    Vault {
        mount: String,
        path: String,
        field: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "`{given}` is not a secret source: use `env:VAR`, `file:PATH` or `stdin` \
         (a secret is never accepted as a literal in argv)"
    )]
    NotASource { given: String },
    #[error(
        "`{0}` is not a Vault source: write `vault:MOUNT/PATH#FIELD`, e.g. `vault:secret/quench/github#token`"
    )]
    VaultSyntax(String),
    #[error(
        "a `vault:` source is read with the engine's Vault client, which is not available here"
    )]
    NeedsVault,
    #[error("environment variable `{0}` is not set")]
    EnvMissing(String),
    #[error("failed to read secret file `{path}`: {reason}")]
    File { path: String, reason: String },
    #[error("failed to read secret from stdin: {0}")]
    Stdin(String),
    #[error("secret `{0}` is empty")]
    Empty(String),
    #[error(
        "secret `{0}` is shorter than {MIN_SECRET_LEN} characters: a value that short cannot be \
         told apart from ordinary text, so quench could not keep it out of what it writes; \
         check that the source holds the whole credential"
    )]
    TooShort(String),
}

impl SecretSource {
    /// Parses `env:VAR`, `file:PATH` or `stdin`. The error never repeats what
    /// was given when it could be the secret itself.
    pub fn parse(s: &str) -> Result<Self, SourceError> {
        if let Some(var) = s.strip_prefix("env:").filter(|v| !v.is_empty()) {
            return Ok(Self::Env(var.to_string()));
        }
        if let Some(path) = s.strip_prefix("file:").filter(|v| !v.is_empty()) {
            return Ok(Self::File(path.to_string()));
        }
        if s == "stdin" || s == "-" {
            return Ok(Self::Stdin);
        }
        if let Some(rest) = s.strip_prefix("vault:") {
            let parsed = rest.split_once('#').and_then(|(full, field)| {
                let (mount, path) = full.split_once('/')?;
                (!mount.is_empty() && !path.is_empty() && !field.is_empty()).then(|| Self::Vault {
                    mount: mount.to_string(),
                    path: path.to_string(),
                    field: field.to_string(),
                })
            });
            return parsed.ok_or_else(|| SourceError::VaultSyntax(s.to_string()));
        }
        Err(SourceError::NotASource {
            given: "<value withheld>".to_string(),
        })
    }

    /// Reads the secret. A trailing newline (as `echo` and editors leave) is
    /// not part of the secret.
    pub fn read(&self, name: &str) -> Result<Secret, SourceError> {
        let raw = match self {
            Self::Env(var) => {
                std::env::var(var).map_err(|_| SourceError::EnvMissing(var.clone()))?
            }
            Self::File(path) => std::fs::read_to_string(path).map_err(|e| SourceError::File {
                path: path.clone(),
                reason: e.kind().to_string(),
            })?,
            Self::Stdin => {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|e| SourceError::Stdin(e.kind().to_string()))?;
                line
            }
            Self::Vault { .. } => return Err(SourceError::NeedsVault),
        };
        let value = raw.trim_end_matches(['\r', '\n']).to_string();
        if value.is_empty() {
            return Err(SourceError::Empty(name.to_string()));
        }
        Ok(Secret::new(name, value))
    }
}

/// Refuses a runbook's secret that is empty or too short to be swept from
/// what quench writes ([`MIN_SECRET_LEN`]).
pub fn check_len(name: &str, value: &str) -> Result<(), SourceError> {
    if value.is_empty() {
        return Err(SourceError::Empty(name.to_string()));
    }
    if value.chars().count() < MIN_SECRET_LEN {
        return Err(SourceError::TooShort(name.to_string()));
    }
    Ok(())
}

/// The value of a `NAME=value` line of a `.env` file (`export ` and quotes
/// allowed), or `None` when the line is not one.
pub fn dotenv_value(line: &str) -> Option<&str> {
    let line = line.strip_prefix("export ").unwrap_or(line);
    let (name, value) = line.split_once('=')?;
    let name = name.trim();
    let is_name = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !is_name {
        return None;
    }
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_itself() {
        let s = Secret::new("leaked_token", "ghp_abc123");
        assert!(!format!("{s}").contains("ghp_abc123"));
        assert!(!format!("{s:?}").contains("ghp_abc123"));
        assert!(format!("{s}").starts_with("[REDACTED leaked_token sha256:"));
    }

    #[test]
    fn sources_refuse_literals_without_echoing_them() {
        let err = SecretSource::parse("ghp_literal").unwrap_err().to_string();
        assert!(!err.contains("ghp_literal"));
        assert_eq!(
            SecretSource::parse("env:X").unwrap(),
            SecretSource::Env("X".into())
        );
        assert_eq!(SecretSource::parse("stdin").unwrap(), SecretSource::Stdin);
        assert_eq!(
            SecretSource::parse("vault:secret/quench/gh#token").unwrap(),
            SecretSource::Vault {
                mount: "secret".into(),
                path: "quench/gh".into(),
                field: "token".into()
            }
        );
        assert!(SecretSource::parse("vault:secret/quench").is_err());
    }
}
