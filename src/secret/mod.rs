//! Secret values: the `Secret` type that cannot print itself, where secrets
//! come from (`env:`, `file:`, `stdin`), and the `Redactor` that sweeps every
//! outgoing string for every known secret in every encoding we emit.

use std::fmt;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use sha2::{Digest, Sha256};

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

/// `value` raw and in every encoding quench or a provider might emit
/// (URL-encoded, base64, JSON-escaped), each with `marker`.
fn push_forms(forms: &mut Vec<(String, String)>, value: &str, marker: String) {
    let url = percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    let json = serde_json::to_string(value).unwrap_or_default();
    for form in [
        value.to_string(),
        url,
        base64::engine::general_purpose::STANDARD.encode(value),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value),
        json.trim_matches('"').to_string(),
    ] {
        forms.push((form, marker.clone()));
    }
}

/// The shortest line of a multi-line secret swept on its own: shorter ones
/// (`true`, a port) would redact ordinary words.
const MIN_PART: usize = 8;

/// Replaces every known secret, raw and in the encodings quench or a provider
/// might emit (URL-encoded, base64, JSON-escaped), with its marker. Cloning
/// shares the set, so a secret learned mid-incident (a new key from a
/// provider) is swept from everything written afterwards.
#[derive(Clone, Default)]
pub struct Redactor {
    needles: Arc<RwLock<Vec<(String, String)>>>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.needles().len();
        write!(f, "Redactor({n} needles)")
    }
}

/// Every secret this process has learned, for sweeping what is not tied to
/// one incident (log lines).
static PROCESS: std::sync::LazyLock<Redactor> = std::sync::LazyLock::new(Redactor::default);

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide set: every secret any redactor learned.
    pub fn process() -> &'static Redactor {
        &PROCESS
    }

    pub fn add(&self, secret: &Secret) {
        let value = secret.expose();
        if value.is_empty() {
            return;
        }
        let mut forms = Vec::new();
        push_forms(&mut forms, value, secret.marker());
        // A secret of several lines (a list of leaked tokens, a leaked
        // `.env` file) is swept line by line too, and value by value: a
        // provider acts on each token alone.
        if value.contains('\n') {
            for line in value.lines().map(str::trim) {
                let part = crate::providers::github::dotenv_value(line).unwrap_or(line);
                if part.len() >= MIN_PART && part != value {
                    push_forms(&mut forms, part, marker(secret.name(), part));
                }
            }
        }
        if !Arc::ptr_eq(&self.needles, &PROCESS.needles) {
            PROCESS.insert(&forms);
        }
        self.insert(&forms);
    }

    /// The needles, even from a lock a panic poisoned: a sweep that skipped
    /// them would let every secret through.
    fn needles(&self) -> std::sync::RwLockReadGuard<'_, Vec<(String, String)>> {
        self.needles.read().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, forms: &[(String, String)]) {
        let mut needles = self.needles.write().unwrap_or_else(|e| e.into_inner());
        // One pass and one sort, however many lines: a leaked `.env` of
        // thousands of tokens must not delay the revocation.
        let mut known: std::collections::HashSet<String> =
            needles.iter().map(|(n, _)| n.clone()).collect();
        for (form, marker) in forms {
            if !form.is_empty() && known.insert(form.clone()) {
                needles.push((form.clone(), marker.clone()));
            }
        }
        // Longest first, so a value that contains another is replaced whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.0.len()));
    }

    pub fn redact(&self, text: &str) -> String {
        self.redacted(text).unwrap_or_else(|| text.to_string())
    }

    /// `text` redacted, or `None` when it holds no known secret.
    pub fn redacted(&self, text: &str) -> Option<String> {
        let needles = self.needles();
        let mut out: Option<String> = None;
        for (needle, marker) in needles.iter() {
            let current = out.as_deref().unwrap_or(text);
            if current.contains(needle.as_str()) {
                out = Some(current.replace(needle.as_str(), marker));
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.needles().is_empty()
    }
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
    fn redactor_sweeps_raw_url_and_base64_forms() {
        let r = Redactor::new();
        let s = Secret::new("k", "s3cr3t/+value=");
        r.add(&s);
        let b64 = base64::engine::general_purpose::STANDARD.encode("s3cr3t/+value=");
        let text = format!("a s3cr3t/+value= b s3cr3t%2F%2Bvalue%3D c {b64}");
        let out = r.redact(&text);
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(!out.contains(&b64), "{out}");
        assert_eq!(out.matches("[REDACTED k sha256:").count(), 3);
    }

    #[test]
    fn each_line_of_a_multi_line_secret_is_swept_alone() {
        let r = Redactor::new();
        r.add(&Secret::new(
            "leaked_token",
            "ghp_first_token_aaaa\nexport GH=ghp_second_token_bbbb\nPORT=80\n",
        ));
        let out = r.redact("a ghp_first_token_aaaa b ghp_second_token_bbbb c PORT=80");
        assert!(!out.contains("ghp_"), "{out}");
        assert!(out.ends_with("c PORT=80"), "{out}");
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
