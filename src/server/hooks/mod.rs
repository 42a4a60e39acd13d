//! Detectors that start the response with nobody typing: GitHub secret
//! scanning (`POST /hooks/github`), AWS Health through EventBridge
//! (`POST /hooks/aws`) and any detector that signs its JSON
//! (`POST /hooks/generic/{name}`).
//!
//! A request is verified before anything is read from it, matched against
//! `[[triggers]]` (deny by default), recorded in the `hooks` audit log, and
//! answered at once (`receive`). What the answer promised runs in the
//! background (`respond`): the secret is fetched where the detector keeps
//! it, and the credential's incident is started, or joined when one
//! already responds to the same credential (`registry`). GitHub tokens of
//! many incidents are revoked in shared requests (`revoke`).
//!
//! - `sign`     — each detector's signature or API key, in constant time
//! - `triggers` — matching a detection, its inputs from templates or pointers
//! - `registry` — one incident per credential, one processing per delivery
//! - `github`   — the alert payload, and the alert, location and commit fetched
//! - `aws`      — the Health event, and the key's owner from IAM
//! - `revoke`   — GitHub token revocation batched across incidents
//! - `receive`  — the three endpoints: verify, match, record, answer
//! - `respond`  — in the background: fetch, start or join, say so in Slack

pub mod aws;
pub mod github;
mod receive;
pub mod registry;
mod respond;
pub mod revoke;
pub mod sign;
pub mod triggers;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use serde_json::{Value, json};

pub(super) use receive::{aws as aws_hook, generic as generic_hook, github as github_hook};

use super::audit::AuditLog;
use super::verify::Replays;
use crate::config::Config;
use crate::journal;
use crate::secret::{Redactor, Secret};

/// The hooks log's format version.
pub const LOG_VERSION: u32 = 1;

/// What the hooks need from `quench.toml`, read when the server starts so
/// that a missing secret stops it there, not at the first delivery.
#[derive(Default)]
pub struct HookSettings {
    github: Option<Secret>,
    /// The API key's header (lowercase) and value.
    aws: Option<(String, Secret)>,
    generic: BTreeMap<String, Secret>,
    /// Where alerts are read and tokens revoked.
    api: github::Api,
}

impl HookSettings {
    /// Reads the hooks' secrets, and checks every trigger against its
    /// runbook: it loads, its `unattended` names phases, and a GitHub
    /// trigger's runbook declares the one secret the alert fills.
    pub fn load(config: &Config, runbooks: &super::runbooks::Runbooks) -> Result<Self, String> {
        let read = |name: &str, source: &str| {
            crate::config::credential(name, Some(source), &[])
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("`{name}` is not set"))
        };
        let h = &config.hooks;
        let github = match &h.github {
            Some(g) => Some(read("github_webhook_secret", &g.secret)?),
            None => None,
        };
        let aws = match &h.aws {
            Some(a) => Some((a.header.to_lowercase(), read("aws_hook_key", &a.value)?)),
            None => None,
        };
        let mut generic = BTreeMap::new();
        for (name, g) in &h.generic {
            generic.insert(
                name.clone(),
                read(&format!("{name}_hook_secret"), &g.secret)?,
            );
        }
        for (i, t) in config.triggers.iter().enumerate() {
            let at = |why: String| format!("trigger {} (`{}`): {why}", i + 1, t.runbook);
            let loaded = runbooks.load(&t.runbook).map_err(at)?;
            triggers::phases(&t.unattended).map_err(at)?;
            let declared = loaded.0.secrets.len();
            if t.source == "github" && declared != 1 {
                return Err(at(format!(
                    "a GitHub alert fills one secret, and the runbook declares {declared}"
                )));
            }
        }
        Ok(HookSettings {
            github,
            aws,
            generic,
            api: github::Api::from_config(&config.providers.github)?,
        })
    }

    /// Every secret the hooks hold, so each is swept from what they write.
    fn secrets(&self) -> Vec<Secret> {
        let mut all: Vec<Secret> = self.generic.values().cloned().collect();
        all.extend(self.github.iter().cloned());
        all.extend(self.aws.iter().map(|(_, s)| s.clone()));
        all.extend(self.api.token().cloned());
        all
    }
}

/// The hooks' state in a running server.
pub(super) struct Hooks {
    settings: HookSettings,
    log: AuditLog,
    registry: registry::Registry,
    /// Generic hooks' signed requests already taken.
    replays: Replays,
    /// Shared GitHub revocations, when a client could be built.
    batcher: Option<Arc<revoke::Batcher>>,
    iam: aws::Iam,
    http: Option<reqwest::Client>,
}

impl Hooks {
    /// Opens the `hooks` audit log and rebuilds the registry from it.
    pub fn start(
        settings: HookSettings,
        store: &crate::store::Store,
        http: &crate::providers::http::Clients,
    ) -> std::io::Result<Hooks> {
        let registry = registry::Registry::default();
        registry.restore(
            &super::audit::read(store, "hooks", "").join("\n"),
            Utc::now(),
        );
        let sink = super::audit::Sink::open(store, "hooks")?;
        let http = http.for_url(&settings.api.base).ok().cloned();
        Ok(Hooks {
            batcher: http
                .clone()
                .map(|c| revoke::Batcher::new(&settings.api.base, c)),
            settings,
            log: AuditLog::start(sink)?,
            registry,
            replays: Replays::default(),
            iam: aws::Iam::default(),
            http,
        })
    }

    /// Queues one line for `hooks.jsonl`, swept of the hooks' secrets and
    /// of `secrets`.
    fn record(&self, secrets: &[Secret], mut entry: Value) {
        entry["v"] = json!(LOG_VERSION);
        entry["ts"] = json!(journal::format_ts(&Utc::now()));
        Redactor::of(self.settings.secrets().iter().chain(secrets)).redact_value(&mut entry);
        self.log.append(entry.to_string());
    }
}
