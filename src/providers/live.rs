//! The live providers: built once per incident, only those the runbook uses,
//! each from `quench.toml` or its ecosystem's environment variables.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::{ActionError, ActionSpec, Outputs, Provider};
use crate::config::Config;

#[derive(Debug, Clone)]
pub struct Live {
    http: reqwest::Client,
    /// Providers the runbook uses that cannot act, and why (not built in
    /// this version, or no credentials configured).
    unavailable: BTreeMap<Provider, String>,
}

impl Live {
    /// Builds the clients for the providers in `used`.
    pub async fn build(_config: &Config, used: &BTreeSet<Provider>) -> Live {
        let mut unavailable = BTreeMap::new();
        for &p in used {
            if !p.is_built() {
                unavailable.insert(p, format!("the `{p}` provider is not built yet"));
            }
        }
        Live {
            http: super::http::client(),
            unavailable,
        }
    }

    /// Why `provider` cannot act, if it cannot.
    pub fn unavailable(&self, provider: Provider) -> Option<&str> {
        self.unavailable.get(&provider).map(String::as_str)
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
        match action.provider {
            Provider::Http => super::http::request(&self.http, step, params).await,
            other => Err(ActionError::permanent(format!(
                "`{}` is not performed by the `{other}` provider (internal error: please report it)",
                action.name
            ))),
        }
    }
}
