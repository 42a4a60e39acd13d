//! The live providers: built once per incident, only those the runbook uses,
//! each from `quench.toml` or its ecosystem's environment variables.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::action::{Call, Client};
use super::aws::Aws;
use super::git::Git;
use super::github::Github;
use super::kubernetes::Kubernetes;
use super::slack::Slack;
use super::vault::Vault;
use super::{ActionError, ActionSpec, Outputs, Provider};
use crate::config::Config;
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct Live {
    http: super::http::Clients,
    aws: Option<Box<Aws>>,
    vault: Option<Vault>,
    // Boxed: octocrab's clients are large, and `Live` travels in an enum.
    github: Option<Box<Github>>,
    slack: Option<Slack>,
    git: Option<Git>,
    kubernetes: Option<Kubernetes>,
    /// Providers the runbook uses that cannot act, and why (not built in
    /// this version, or misconfigured).
    unavailable: BTreeMap<Provider, String>,
    /// Actions that cannot act though their provider can: GitHub revokes a
    /// leaked token by value with no token of ours, but reading the audit
    /// log needs one.
    unavailable_actions: BTreeMap<&'static str, String>,
}

impl Live {
    /// Builds the clients for the providers in `used`, and no others.
    pub async fn build(config: &Config, used: &BTreeSet<Provider>) -> Live {
        let mut live = Live {
            http: super::http::Clients::default(),
            aws: None,
            vault: None,
            github: None,
            slack: None,
            git: None,
            kubernetes: None,
            unavailable: BTreeMap::new(),
            unavailable_actions: BTreeMap::new(),
        };
        for &p in used {
            match p {
                Provider::Aws => {
                    live.aws = Some(Box::new(Aws::build(&config.providers.aws).await));
                }
                Provider::Vault => match super::http::client()
                    .and_then(|http| Vault::build(&config.providers.vault, http))
                {
                    Ok(v) => live.vault = Some(v),
                    Err(why) => {
                        live.unavailable.insert(p, why);
                    }
                },
                Provider::Github => match Github::build(&config.providers.github) {
                    Ok(built) => {
                        if let Some(why) = built.no_token {
                            for a in Provider::Github.actions() {
                                if super::github::needs_engine_token(a.name) {
                                    live.unavailable_actions.insert(a.name, why.clone());
                                }
                            }
                        }
                        live.github = Some(Box::new(built.github));
                    }
                    Err(why) => {
                        live.unavailable.insert(p, why);
                    }
                },
                Provider::Slack => match Slack::build(&config.providers.slack) {
                    Ok(built) => {
                        for a in Provider::Slack.actions() {
                            if let Some(why) = &built.no_token
                                && super::slack::needs_bot_token(a.name)
                            {
                                live.unavailable_actions.insert(a.name, why.clone());
                            } else if a.name == "slack.request_approval"
                                && !super::slack::APPROVALS.served()
                            {
                                live.unavailable_actions.insert(
                                    a.name,
                                    "the click is received by `quench serve`, which is not running in this process".into(),
                                );
                            }
                        }
                        live.slack = Some(built.slack);
                    }
                    Err(why) => {
                        live.unavailable.insert(p, why);
                    }
                },
                Provider::Git => live.git = Some(Git),
                Provider::Kubernetes => {
                    match Kubernetes::build(&config.providers.kubernetes).await {
                        Ok(k) => live.kubernetes = Some(k),
                        Err(why) => {
                            live.unavailable.insert(p, why);
                        }
                    }
                }
                _ if !p.is_built() => {
                    live.unavailable
                        .insert(p, format!("the `{p}` provider is not built yet"));
                }
                _ => {}
            }
        }
        live
    }

    /// Why `action` cannot act, if it cannot.
    pub fn unavailable(&self, action: &ActionSpec) -> Option<&str> {
        self.unavailable
            .get(&action.provider)
            .or_else(|| self.unavailable_actions.get(action.name))
            .map(String::as_str)
    }

    /// The engine's own credentials, so they are redacted like any secret.
    pub fn credentials(&self) -> Vec<Secret> {
        let vault = self.vault.iter().map(|v| v.token().clone());
        let github = self.github.iter().filter_map(|g| g.token().cloned());
        let slack = self.slack.iter().filter_map(|s| s.token().cloned());
        vault.chain(github).chain(slack).collect()
    }

    /// Performs one attempt, which has the call's timeout to be answered
    /// (an `http.request`'s from when it leaves its host's gate), and keeps
    /// what it notes in the call's notes.
    pub async fn execute(
        &self,
        action: &ActionSpec,
        call: Call<'_>,
        params: &Map<String, Value>,
    ) -> Result<Outputs, ActionError> {
        if let Some(why) = self.unavailable(action) {
            return Err(ActionError::permanent(why.to_string()));
        }
        let Some(run) = action.run else {
            return Err(ActionError::permanent(format!(
                "`{}` is performed by the engine, not a provider (internal error: please report it)",
                action.name
            )));
        };
        run(self, action, call, params).await
    }
}

impl Client for super::http::Clients {
    fn of(live: &Live) -> Option<&Self> {
        Some(&live.http)
    }
}

impl Client for Aws {
    fn of(live: &Live) -> Option<&Self> {
        live.aws.as_deref()
    }
}

impl Client for Vault {
    fn of(live: &Live) -> Option<&Self> {
        live.vault.as_ref()
    }
}

impl Client for Github {
    fn of(live: &Live) -> Option<&Self> {
        live.github.as_deref()
    }
}

impl Client for Slack {
    fn of(live: &Live) -> Option<&Self> {
        live.slack.as_ref()
    }
}

impl Client for Git {
    fn of(live: &Live) -> Option<&Self> {
        live.git.as_ref()
    }
}

impl Client for Kubernetes {
    fn of(live: &Live) -> Option<&Self> {
        live.kubernetes.as_ref()
    }
}
