//! A runbook's inputs, secrets and detection time, from what a responder
//! gave: checked against the runbook, with located, helpful errors.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::Error;
use crate::config::Config;
use crate::runbook::Runbook;
use crate::runbook::diagnostic::did_you_mean;
use crate::secret::{Secret, SecretSource};

/// Which command the inputs are for: a rehearsal takes each input's
/// `example`, a plan shows a placeholder for one that is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputMode {
    Run,
    Rehearse,
    Plan,
}

pub fn resolve_inputs(
    rb: &Runbook,
    vars: &[String],
    mode: InputMode,
) -> Result<BTreeMap<String, String>, Error> {
    let mut values = BTreeMap::new();
    for v in vars {
        let Some((k, val)) = v.split_once('=') else {
            return Err(Error::Usage(format!("`--var {v}` is not K=V")));
        };
        if rb.secrets.iter().any(|s| s.name == k) {
            return Err(Error::Usage(format!(
                "`{k}` is a secret, and a secret is never accepted in argv: pass `--secret {k}=env:VAR` (or file:PATH, stdin)"
            )));
        }
        let Some(input) = rb.input(k) else {
            let help = did_you_mean(k, rb.inputs.iter().map(|i| i.name.as_str()))
                .map(|h| format!(" ({h})"))
                .unwrap_or_else(|| {
                    let names: Vec<_> = rb.inputs.iter().map(|i| format!("`{}`", i.name)).collect();
                    format!(" (inputs: {})", names.join(", "))
                });
            return Err(Error::Usage(format!(
                "`{}` has no input `{k}`{help}",
                rb.name
            )));
        };
        if let Some(re) = &input.pattern
            && !re.is_match(val)
        {
            return Err(Error::Usage(format!(
                "input `{k}` = `{val}` does not match its pattern `{}`",
                re.as_str()
            )));
        }
        values.insert(k.to_string(), val.to_string());
    }
    let mut missing = Vec::new();
    for i in &rb.inputs {
        if values.contains_key(&i.name) {
            continue;
        }
        let fallback = match mode {
            InputMode::Run => i.default.clone(),
            InputMode::Rehearse => i.default.clone().or_else(|| i.example.clone()),
            InputMode::Plan => i
                .default
                .clone()
                .or_else(|| i.example.clone())
                .or_else(|| Some(format!("<{}>", i.name))),
        };
        match fallback {
            Some(v) => {
                values.insert(i.name.clone(), v);
            }
            None => missing.push(i),
        }
    }
    if !missing.is_empty() {
        let lines: Vec<String> = missing
            .iter()
            .map(|i| {
                format!(
                    "  --var {}=…   {}{}",
                    i.name,
                    i.description.as_deref().unwrap_or(""),
                    i.example
                        .as_deref()
                        .map(|e| format!(" (e.g. {e})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        return Err(Error::Usage(format!(
            "`{}` needs {}:\n{}",
            rb.name,
            if missing.len() == 1 {
                "an input"
            } else {
                "inputs"
            },
            lines.join("\n")
        )));
    }
    Ok(values)
}

pub fn resolve_secrets(
    rb: &Runbook,
    given: &[String],
    rehearsal: bool,
    config: &Config,
) -> Result<Vec<Secret>, Error> {
    let mut out = Vec::new();
    for g in given {
        let Some((k, source)) = g.split_once('=') else {
            return Err(Error::Usage(
                "`--secret` takes K=SOURCE, where SOURCE is `env:VAR`, `file:PATH`, `stdin` or `vault:MOUNT/PATH#FIELD`"
                    .into(),
            ));
        };
        if !rb.secrets.iter().any(|s| s.name == k) {
            let help = did_you_mean(k, rb.secrets.iter().map(|s| s.name.as_str()))
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            return Err(Error::Usage(format!(
                "`{}` declares no secret `{k}`{help}",
                rb.name
            )));
        }
        let source =
            SecretSource::parse(source).map_err(|e| Error::Usage(format!("secret `{k}`: {e}")))?;
        let secret = match &source {
            SecretSource::Vault { mount, path, field } => {
                read_from_vault(config, mount, path, field).map(|value| Secret::new(k, value))
            }
            other => other.read(k).map_err(|e| e.to_string()),
        }
        .and_then(|s| {
            crate::secret::check_len(k, s.expose()).map_err(|e| e.to_string())?;
            Ok(s)
        });
        out.push(secret.map_err(|e| Error::Usage(format!("secret `{k}`: {e}")))?);
    }
    for decl in &rb.secrets {
        if out.iter().any(|s| s.name() == decl.name) {
            continue;
        }
        if rehearsal {
            // A rehearsal needs no real secret: a placeholder stands in, and
            // is redacted like a real one. It starts with no word: a text
            // ending with a secret's first 8 characters loses them, and a
            // rehearsal's approver is named `rehearsal`.
            out.push(Secret::new(
                &decl.name,
                format!("{:016x}-placeholder-{}", rand::random::<u64>(), decl.name),
            ));
        } else if !decl.optional {
            return Err(Error::Usage(format!(
                "`{}` needs secret `{}`{}: pass `--secret {}=env:VAR` (or file:PATH, stdin)",
                rb.name,
                decl.name,
                decl.description
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default(),
                decl.name
            )));
        }
    }
    Ok(out)
}

/// Reads `vault:MOUNT/PATH#FIELD` with the engine's Vault settings, before
/// the incident starts.
fn read_from_vault(
    config: &Config,
    mount: &str,
    path: &str,
    field: &str,
) -> Result<String, String> {
    let vault = crate::providers::vault::Vault::build(
        &config.providers.vault,
        crate::providers::http::client()?,
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("failed to start the runtime: {e}"))?;
    rt.block_on(vault.kv_get(mount, path, field))
        .map(|(value, _)| value)
        .map_err(|e| format!("failed to read it from Vault: {}", e.message))
}

pub fn parse_detected_at(s: Option<&str>) -> Result<Option<DateTime<Utc>>, Error> {
    parse_past("--detected-at", s)
}

/// `--leaked-at`: when the credential leaked, which is no later than its
/// detection (`detected_at`, else now).
pub fn parse_leaked_at(
    s: Option<&str>,
    detected_at: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>, Error> {
    let Some(t) = parse_past("--leaked-at", s)? else {
        return Ok(None);
    };
    if let Some(detected) = detected_at
        && t > detected
    {
        return Err(Error::Usage(format!(
            "`--leaked-at {}` is after `--detected-at {}`: a leak is detected after it happens",
            s.unwrap_or_default(),
            crate::time::format_ts(&detected)
        )));
    }
    Ok(Some(t))
}

/// A time given as `flag` (RFC 3339), not in the future.
fn parse_past(flag: &str, s: Option<&str>) -> Result<Option<DateTime<Utc>>, Error> {
    let Some(s) = s else { return Ok(None) };
    let t = DateTime::parse_from_rfc3339(s)
        .map_err(|e| {
            Error::Usage(format!(
                "`{flag} {s}` is not an RFC 3339 time ({e}), e.g. 2026-11-22T23:10:01Z"
            ))
        })?
        .with_timezone(&Utc);
    if t > Utc::now() + chrono::Duration::minutes(1) {
        return Err(Error::Usage(format!("`{flag} {s}` is in the future")));
    }
    Ok(Some(t))
}
