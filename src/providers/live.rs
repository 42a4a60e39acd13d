//! The live providers: built once per process, only for what a runbook uses.

use serde_json::{Map, Value};

use super::{ActionError, ActionSpec, Outputs, Provider};

#[derive(Debug, Clone)]
pub struct Live {
    http: reqwest::Client,
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

impl Live {
    pub fn new() -> Self {
        Self {
            http: super::http::client(),
        }
    }

    pub async fn execute(
        &self,
        action: &ActionSpec,
        step: &str,
        params: &Map<String, Value>,
    ) -> Result<Outputs, ActionError> {
        match action.provider {
            Provider::Http => super::http::request(&self.http, step, params).await,
            other => Err(ActionError::permanent(format!(
                "the `{other}` provider cannot run live in this build"
            ))),
        }
    }
}
