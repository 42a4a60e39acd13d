//! The live providers: built once per incident, only those the runbook uses,
//! each from `quench.toml` or its ecosystem's environment variables.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::aws::Aws;
use super::vault::Vault;
use super::{ActionError, ActionSpec, Outputs, Provider};
use crate::config::Config;
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct Live {
    http: reqwest::Client,
    aws: Option<Aws>,
    vault: Option<Vault>,
    /// Providers the runbook uses that cannot act, and why (not built in
    /// this version, or no credentials configured).
    unavailable: BTreeMap<Provider, String>,
}

impl Live {
    /// Builds the clients for the providers in `used`, and no others.
    pub async fn build(config: &Config, used: &BTreeSet<Provider>) -> Live {
        let http = super::http::client();
        let mut live = Live {
            http: http.clone(),
            aws: None,
            vault: None,
            unavailable: BTreeMap::new(),
        };
        for &p in used {
            match p {
                Provider::Aws => live.aws = Some(Aws::build(&config.providers.aws).await),
                Provider::Vault => match Vault::build(&config.providers.vault, http.clone()) {
                    Ok(v) => live.vault = Some(v),
                    Err(why) => {
                        live.unavailable.insert(p, why);
                    }
                },
                _ if !p.is_built() => {
                    live.unavailable
                        .insert(p, format!("the `{p}` provider is not built yet"));
                }
                _ => {}
            }
        }
        live
    }

    /// Why `provider` cannot act, if it cannot.
    pub fn unavailable(&self, provider: Provider) -> Option<&str> {
        self.unavailable.get(&provider).map(String::as_str)
    }

    /// The engine's own credentials, so they are redacted like any secret.
    pub fn credentials(&self) -> Vec<Secret> {
        self.vault.iter().map(|v| v.token().clone()).collect()
    }

    pub fn vault(&self) -> Option<&Vault> {
        self.vault.as_ref()
    }

    pub async fn execute(
        &self,
        action: &ActionSpec,
        step: &str,
        params: &Map<String, Value>,
    ) -> Result<Outputs, ActionError> {
        if let Some(why) = self.unavailable(action.provider) {
            return Err(ActionError::permanent(why.to_string()));
        }
        match (action.provider, &self.aws, &self.vault) {
            (Provider::Http, _, _) => super::http::request(&self.http, step, params).await,
            (Provider::Aws, Some(aws), _) => aws.execute(action.name, step, params).await,
            (Provider::Vault, _, Some(vault)) => vault.execute(action.name, step, params).await,
            (other, _, _) => Err(ActionError::permanent(format!(
                "`{}` needs the `{other}` provider, which was not set up (internal error: please report it)",
                action.name
            ))),
        }
    }
}
