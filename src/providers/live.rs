//! The live providers: built once per incident, only those the runbook uses,
//! each from `quench.toml` or its ecosystem's environment variables.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::github::Github;
use super::{ActionError, ActionSpec, Outputs, Provider};
use crate::config::Config;

#[derive(Debug, Clone)]
pub struct Live {
    http: reqwest::Client,
    // Boxed: octocrab's clients are large, and `Live` travels in an enum.
    github: Option<Box<Github>>,
    /// Providers the runbook uses that cannot act, and why (not built in
    /// this version, or misconfigured).
    unavailable: BTreeMap<Provider, String>,
    /// Actions that cannot act though their provider can: GitHub revokes a
    /// leaked token by value with no token of ours, but reading the audit
    /// log needs one.
    unavailable_actions: BTreeMap<&'static str, String>,
}

impl Live {
    /// Builds the clients for the providers in `used`.
    pub async fn build(config: &Config, used: &BTreeSet<Provider>) -> Live {
        let mut unavailable = BTreeMap::new();
        let mut unavailable_actions = BTreeMap::new();
        for &p in used {
            if !p.is_built() {
                unavailable.insert(p, format!("the `{p}` provider is not built yet"));
            }
        }
        let mut github = None;
        if used.contains(&Provider::Github) {
            match Github::build(&config.providers.github) {
                Ok(built) => {
                    if let Some(why) = built.no_token {
                        for a in Provider::Github.actions() {
                            if super::github::needs_engine_token(a.name) {
                                unavailable_actions.insert(a.name, why.clone());
                            }
                        }
                    }
                    github = Some(Box::new(built.github));
                }
                Err(why) => {
                    unavailable.insert(Provider::Github, why);
                }
            }
        }
        Live {
            http: super::http::client(),
            github,
            unavailable,
            unavailable_actions,
        }
    }

    /// Why `action` cannot act, if it cannot.
    pub fn unavailable(&self, action: &ActionSpec) -> Option<&str> {
        self.unavailable
            .get(&action.provider)
            .or_else(|| self.unavailable_actions.get(action.name))
            .map(String::as_str)
    }

    pub async fn execute(
        &self,
        action: &ActionSpec,
        step: &str,
        params: &Map<String, Value>,
    ) -> Result<Outputs, ActionError> {
        if let Some(why) = self.unavailable(action) {
            return Err(ActionError::permanent(why.to_string()));
        }
        match (action.provider, &self.github) {
            (Provider::Http, _) => super::http::request(&self.http, step, params).await,
            (Provider::Github, Some(github)) => github.execute(action, step, params).await,
            (other, _) => Err(ActionError::permanent(format!(
                "`{}` is not performed by the `{other}` provider (internal error: please report it)",
                action.name
            ))),
        }
    }
}
