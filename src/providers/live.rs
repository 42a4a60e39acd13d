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

#[derive(Debug, Clone, Default)]
pub struct Live {
    http: super::http::Clients,
    aws: Option<Box<Aws>>,
    vault: Option<Vault>,
    // Boxed: octocrab's clients are large, and `Live` travels in an enum.
    github: Option<Box<Github>>,
    slack: Option<Slack>,
    git: Option<Git>,
    kubernetes: Option<Kubernetes>,
    /// Providers the runbook uses that cannot act (misconfigured), and why.
    unavailable: BTreeMap<Provider, String>,
    /// Actions that cannot act though their provider can: GitHub revokes a
    /// leaked token by value with no token of ours, but reading the audit
    /// log needs one.
    unavailable_actions: BTreeMap<&'static str, String>,
}

impl Live {
    /// Builds the clients for the providers in `used`, and no others.
    pub async fn build(config: &Config, used: &BTreeSet<Provider>) -> Live {
        let mut live = Live::default();
        for &p in used {
            let built = match p {
                Provider::Aws => {
                    live.aws = Some(Box::new(Aws::build(&config.providers.aws).await));
                    Ok(())
                }
                Provider::Vault => super::http::client()
                    .and_then(|http| Vault::build(&config.providers.vault, http))
                    .map(|v| live.vault = Some(v)),
                Provider::Github => Github::build(&config.providers.github).map(|github| {
                    live.no_token(p, github.no_token(), super::github::needs_engine_token);
                    live.github = Some(Box::new(github));
                }),
                Provider::Slack => Slack::build(&config.providers.slack).map(|slack| {
                    live.no_token(p, slack.no_token(), super::slack::needs_bot_token);
                    if !super::slack::APPROVALS.served() {
                        live.unavailable_actions
                            .entry(super::slack::RequestApproval::SPEC.name)
                            .or_insert_with(|| "the click is received by `quench serve`, which is not running in this process".into());
                    }
                    live.slack = Some(slack);
                }),
                Provider::Git => {
                    live.git = Some(Git);
                    Ok(())
                }
                Provider::Kubernetes => Kubernetes::build(&config.providers.kubernetes)
                    .await
                    .map(|k| live.kubernetes = Some(k)),
                Provider::Http | Provider::Manual | Provider::Incident => Ok(()),
            };
            if let Err(why) = built {
                live.unavailable.insert(p, why);
            }
        }
        live
    }

    /// Marks `p`'s actions that `needs` the engine's token unavailable, when
    /// there is none (`why`).
    fn no_token(&mut self, p: Provider, why: Option<&str>, needs: fn(&str) -> bool) {
        let Some(why) = why else { return };
        for a in p.actions().iter().filter(|a| needs(a.name)) {
            self.unavailable_actions.insert(a.name, why.to_string());
        }
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

/// Each provider's client: the field of `Live` it is in, if built.
macro_rules! client_of {
    ($($client:ty => $field:ident.$get:ident()),* $(,)?) => {$(
        impl Client for $client {
            fn of(live: &Live) -> Option<&Self> {
                live.$field.$get()
            }
        }
    )*};
}

client_of! {
    Aws => aws.as_deref(),
    Vault => vault.as_ref(),
    Github => github.as_deref(),
    Slack => slack.as_ref(),
    Git => git.as_ref(),
    Kubernetes => kubernetes.as_ref(),
}
