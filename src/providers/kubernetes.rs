//! Kubernetes over kube-rs: a Secret's keys set to the new credential, and
//! the workloads that read it restarted and waited on until they roll out.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::action::{Call, Perform};
use super::{ActionError, duration_param, roll_out, within};
use crate::action;
use crate::config::KubernetesConfig;

pub const ACTIONS: &[super::ActionSpec] = &[SecretPut::SPEC, RolloutRestart::SPEC];

/// The annotation `kubectl rollout restart` sets on the pod template.
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// How long a rollout may take when the step says nothing.
const DEFAULT_WAIT: Duration = Duration::from_secs(15 * 60);

/// How often a rollout is looked at when the step says nothing.
const DEFAULT_POLL: Duration = Duration::from_secs(2);

action! {
    /// Set keys of a Kubernetes Secret (a merge patch: its other keys are kept)
    "kubernetes.secret_put" in Kubernetes => SecretPut [idempotent] {
        /// the Secret's namespace (default: the kubeconfig context's)
        namespace: Option<String>,
        /// the Secret's name
        name: String,
        /// key → new value
        data: BTreeMap<String, String> [secret],
    } -> SecretPutOutputs {
        /// the keys set
        keys: Vec<String>,
    }
}

impl Perform for SecretPut {
    async fn perform(
        self,
        kube: &Kubernetes,
        _: Call<'_>,
    ) -> Result<SecretPutOutputs, ActionError> {
        let ns = kube.namespace(self.namespace.as_deref());
        let what = format!("secret `{ns}/{}`", self.name);
        let b64 = base64::engine::general_purpose::STANDARD;
        let data: serde_json::Map<String, Value> = self
            .data
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(b64.encode(v))))
            .collect();
        let api: Api<KubeSecret> = Api::namespaced(kube.client.clone(), &ns);
        api.patch(
            &self.name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": data })),
        )
        .await
        // The API server may quote a refused value: only its status is kept.
        .map_err(|e| refused(e, &what, false))?;
        Ok(SecretPutOutputs {
            keys: self.data.into_keys().collect(),
        })
    }
}

action! {
    /// Restart a Deployment, StatefulSet or DaemonSet as `kubectl rollout
    /// restart` does, and wait until the rollout is done, by the kind's own
    /// status. One with the OnDelete update strategy never rolls out by
    /// itself: the step says so and fails. A retry, or a resumed incident,
    /// waits on the restart it made and never makes another
    "kubernetes.rollout_restart" in Kubernetes => RolloutRestart {
        /// the workload's namespace (default: the kubeconfig context's)
        namespace: Option<String>,
        /// Deployment, StatefulSet or DaemonSet
        kind: String,
        /// the workload's name
        name: String,
        /// how long the rollout may take (default 15m); the step's
        /// `timeout` bounds each request
        wait: Option<String>,
        /// how often the rollout is looked at (default 2s)
        poll: Option<String>,
    } -> RolloutRestartOutputs {
        /// the restart's time, as the pod template's annotation holds it
        restarted_at: String,
        /// the workload's generation that rolled out
        generation: i64,
    }
}

/// What an attempt restarted, noted before it waits.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Restarted {
    kind: String,
    namespace: String,
    name: String,
    restarted_at: String,
    generation: i64,
}

impl Perform for RolloutRestart {
    /// Each request has the step's timeout; the rollout has `wait`.
    const TIMES_ITSELF: bool = true;

    async fn perform(
        self,
        kube: &Kubernetes,
        call: Call<'_>,
    ) -> Result<RolloutRestartOutputs, ActionError> {
        let kind = Kind::parse(&self.kind)?;
        let wait = duration_param(self.wait.as_deref(), "wait", DEFAULT_WAIT)?;
        let poll = duration_param(self.poll.as_deref(), "poll", DEFAULT_POLL)?;
        let namespace = kube.namespace(self.namespace.as_deref());
        let what = format!("{} `{namespace}/{}`", kind.name(), self.name);
        let api: Api<DynamicObject> =
            Api::namespaced_with(kube.client.clone(), &namespace, &kind.resource());
        let get = async || {
            within(call.timeout, async {
                api.get(&self.name)
                    .await
                    .map_err(|e| refused(e, &what, true))
            })
            .await
        };
        let noted = call
            .noted::<Restarted>()
            .filter(|r| r.kind == kind.name() && r.namespace == namespace && r.name == self.name);
        let restarted = match noted {
            Some(r) => r,
            None => {
                on_delete(kind, &get().await?.data, &what)?;
                let restarted_at = crate::time::format_ts(&chrono::Utc::now());
                let patch = json!({"spec": {"template": {"metadata": {"annotations": {(RESTARTED_AT): &restarted_at}}}}});
                let patched = within(call.timeout, async {
                    api.patch(
                        &self.name,
                        &PatchParams::default(),
                        &Patch::Strategic(patch),
                    )
                    .await
                    .map_err(|e| refused(e, &what, true))
                })
                .await?;
                let restarted = Restarted {
                    kind: kind.name().into(),
                    namespace: namespace.clone(),
                    name: self.name.clone(),
                    restarted_at,
                    generation: patched.metadata.generation.unwrap_or_default(),
                };
                call.note(&restarted).await?;
                restarted
            }
        };
        roll_out(&format!("the rollout of {what}"), wait, poll, || async {
            rollout(kind, &get().await?.data, restarted.generation, &what)
        })
        .await?;
        Ok(RolloutRestartOutputs {
            restarted_at: restarted.restarted_at,
            generation: restarted.generation,
        })
    }
}

/// The workload kinds a restart rolls out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl Kind {
    fn parse(kind: &str) -> Result<Kind, ActionError> {
        match kind.trim().to_ascii_lowercase().as_str() {
            "deployment" | "deployments" | "deploy" => Ok(Kind::Deployment),
            "statefulset" | "statefulsets" | "sts" => Ok(Kind::StatefulSet),
            "daemonset" | "daemonsets" | "ds" => Ok(Kind::DaemonSet),
            other => Err(ActionError::permanent(format!(
                "`kind` is `{other}`: a restart rolls out a Deployment, a StatefulSet or a DaemonSet"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "deployment",
            Kind::StatefulSet => "statefulset",
            Kind::DaemonSet => "daemonset",
        }
    }

    fn resource(self) -> ApiResource {
        match self {
            Kind::Deployment => ApiResource::erase::<Deployment>(&()),
            Kind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
            Kind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
        }
    }
}

/// A StatefulSet or DaemonSet whose pods are replaced only when deleted:
/// a restart would never roll out.
fn on_delete(kind: Kind, object: &Value, what: &str) -> Result<(), ActionError> {
    let strategy = object
        .pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str);
    if kind != Kind::Deployment && strategy == Some("OnDelete") {
        return Err(ActionError::permanent(format!(
            "{what} has the OnDelete update strategy: its pods are replaced only when deleted, so a restart never rolls out; delete its pods to replace them"
        )));
    }
    Ok(())
}

/// How the rollout of `generation` stands, by the kind's own status, as
/// `kubectl rollout status` reads it: `None` when done, else how far it got.
fn rollout(
    kind: Kind,
    object: &Value,
    generation: i64,
    what: &str,
) -> Result<Option<String>, ActionError> {
    on_delete(kind, object, what)?;
    let int = |pointer: &str| object.pointer(pointer).and_then(Value::as_i64);
    let status = |field: &str| int(&format!("/status/{field}")).unwrap_or(0);
    if int("/status/observedGeneration").unwrap_or(0) < generation {
        return Ok(Some(format!(
            "generation {generation} is not observed by its controller yet"
        )));
    }
    let pending = match kind {
        Kind::Deployment => {
            let stalled = object
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded");
            if stalled {
                return Err(ActionError::permanent(format!(
                    "the rollout of {what} exceeded its progress deadline"
                )));
            }
            let replicas = int("/spec/replicas").unwrap_or(1);
            let updated = status("updatedReplicas");
            if updated < replicas {
                Some(format!("{updated} of {replicas} new replicas updated"))
            } else if status("replicas") > updated {
                Some(format!(
                    "{} old replicas are pending termination",
                    status("replicas") - updated
                ))
            } else if status("availableReplicas") < updated {
                Some(format!(
                    "{} of {updated} updated replicas are available",
                    status("availableReplicas")
                ))
            } else {
                None
            }
        }
        Kind::DaemonSet => {
            let desired = status("desiredNumberScheduled");
            let updated = status("updatedNumberScheduled");
            if updated < desired {
                Some(format!("{updated} of {desired} new pods scheduled"))
            } else if status("numberAvailable") < desired {
                Some(format!(
                    "{} of {desired} updated pods are available",
                    status("numberAvailable")
                ))
            } else {
                None
            }
        }
        Kind::StatefulSet => {
            let replicas = int("/spec/replicas").unwrap_or(1);
            let text = |p: &str| object.pointer(p).and_then(Value::as_str);
            let (update, current) = (
                text("/status/updateRevision"),
                text("/status/currentRevision"),
            );
            if let Some(partition) = int("/spec/updateStrategy/rollingUpdate/partition")
                && partition > 0
            {
                let want = replicas - partition;
                let updated = status("updatedReplicas");
                (updated < want)
                    .then(|| format!("{updated} of {want} pods above the partition updated"))
            } else if update.is_none() || update != current {
                Some(format!(
                    "{} of {replicas} pods at the new revision",
                    status("updatedReplicas")
                ))
            } else if status("readyReplicas") < replicas {
                Some(format!(
                    "{} of {replicas} pods ready",
                    status("readyReplicas")
                ))
            } else {
                None
            }
        }
    };
    Ok(pending)
}

/// A failed request about `what`: 404 names it as missing; 409, 429 and
/// 5xx are worth another attempt; no answer is transient. `quote` says
/// whether the server's message may be repeated (not when it may hold a
/// value that was sent).
fn refused(err: kube::Error, what: &str, quote: bool) -> ActionError {
    let kube::Error::Api(status) = &err else {
        return ActionError::transient(format!(
            "the Kubernetes API server did not answer about {what}: {err}"
        ));
    };
    let code = status.code;
    let reason = if status.reason.is_empty() {
        "no reason"
    } else {
        status.reason.as_str()
    };
    let said = if quote && !status.message.is_empty() {
        format!(": {}", status.message)
    } else {
        String::new()
    };
    let text = format!("{what}: HTTP {code} {reason}{said}");
    match code {
        404 => ActionError::permanent(format!("{what} was not found (HTTP 404{said})")),
        401 | 403 => ActionError::permanent(format!(
            "{text} (the engine's Kubernetes credentials need `get` and `patch` on it)"
        )),
        429 => ActionError::rate_limited(None, text),
        409 => ActionError::transient(text),
        c if c >= 500 => ActionError::transient(text),
        _ => ActionError::permanent(text),
    }
}

/// The Kubernetes client, built once from the kubeconfig (or the pod's
/// service account).
#[derive(Clone)]
pub struct Kubernetes {
    client: kube::Client,
}

impl std::fmt::Debug for Kubernetes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubernetes")
            .field("namespace", &self.client.default_namespace())
            .finish_non_exhaustive()
    }
}

impl Kubernetes {
    /// From quench.toml's kubeconfig and context, else kube's inference
    /// (`KUBECONFIG`, `~/.kube/config`, the in-cluster service account).
    pub async fn build(config: &KubernetesConfig) -> Result<Kubernetes, String> {
        let options = kube::config::KubeConfigOptions {
            context: config.context.clone(),
            ..Default::default()
        };
        let loaded = match (&config.kubeconfig, &config.context) {
            (Some(path), _) => match kube::config::Kubeconfig::read_from(path) {
                Ok(file) => kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            (None, Some(_)) => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| e.to_string()),
            (None, None) => kube::Config::infer().await.map_err(|e| e.to_string()),
        };
        let config = loaded.map_err(|e| {
            format!("the `kubernetes` provider has no configuration (set KUBECONFIG, or run in a pod): {e}")
        })?;
        let client = kube::Client::try_from(config)
            .map_err(|e| format!("the `kubernetes` provider cannot build its client: {e}"))?;
        Ok(Kubernetes { client })
    }

    /// The namespace a step names, else the context's.
    fn namespace(&self, given: Option<&str>) -> String {
        given
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or(self.client.default_namespace())
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(spec_replicas: i64, status: Value) -> Value {
        json!({"spec": {"replicas": spec_replicas}, "status": status})
    }

    #[test]
    fn a_deployment_is_done_when_every_replica_is_updated_and_available() {
        let what = "deployment `default/api`";
        let seen = |status| rollout(Kind::Deployment, &deployment(2, status), 3, what).unwrap();
        assert!(
            seen(json!({"observedGeneration": 2}))
                .unwrap()
                .contains("not observed")
        );
        assert!(
            seen(json!({"observedGeneration": 3, "updatedReplicas": 1, "replicas": 2}))
                .unwrap()
                .contains("1 of 2 new replicas")
        );
        assert!(
            seen(json!({"observedGeneration": 3, "updatedReplicas": 2, "replicas": 3}))
                .unwrap()
                .contains("1 old replicas")
        );
        assert_eq!(
            seen(
                json!({"observedGeneration": 3, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 2})
            ),
            None
        );
    }

    #[test]
    fn on_delete_never_rolls_out() {
        let sts = json!({"spec": {"updateStrategy": {"type": "OnDelete"}}});
        let err = rollout(Kind::StatefulSet, &sts, 1, "statefulset `x/y`").unwrap_err();
        assert!(err.message.contains("OnDelete"), "{}", err.message);
    }

    #[test]
    fn a_statefulset_is_done_when_its_revisions_agree() {
        let sts = |update: &str| json!({"spec": {"replicas": 2}, "status": {"observedGeneration": 4, "updateRevision": update, "currentRevision": "web-1", "updatedReplicas": 2, "readyReplicas": 2}});
        assert!(
            rollout(Kind::StatefulSet, &sts("web-2"), 4, "s")
                .unwrap()
                .is_some()
        );
        assert_eq!(
            rollout(Kind::StatefulSet, &sts("web-1"), 4, "s").unwrap(),
            None
        );
    }
}
