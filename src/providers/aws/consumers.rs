//! The consumers of a rotated credential on AWS: ECS services, which read
//! their secrets only when a task starts and so are redeployed, and Lambda
//! functions, whose environment holds it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::types::{Deployment, DeploymentRolloutState};
use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::types::{Environment, LastUpdateStatus};
use serde::{Deserialize, Serialize};

use super::{Aws, classify};
use crate::action;
use crate::providers::action::{Call, Perform};
use crate::providers::{ActionError, ErrorClass, duration_param, roll_out, within};

/// How long a rollout may take when the step says nothing.
const DEFAULT_WAIT: Duration = Duration::from_secs(15 * 60);

/// How often a rollout is looked at when the step says nothing.
const DEFAULT_POLL: Duration = Duration::from_secs(5);

/// How often a Lambda function's configuration update is looked at until
/// it is done (it takes seconds).
const LAMBDA_POLL: Duration = Duration::from_secs(1);

/// The most services one DescribeServices call takes.
const DESCRIBE_BATCH: usize = 10;

action! {
    /// Redeploy ECS services (UpdateService with forceNewDeployment), so their
    /// new tasks read the new secret, and wait until each new deployment is
    /// PRIMARY and its rollout COMPLETED. A retry, or a resumed incident,
    /// waits on the deployments it started and never forces another
    "aws.ecs_redeploy" in Aws => EcsRedeploy {
        /// the cluster's name or ARN
        cluster: String,
        /// the service to redeploy (or give `secret_arn`)
        service: Option<String>,
        /// instead of `service`: every service of the cluster whose task
        /// definition reads this Secrets Manager secret or SSM parameter
        /// (its ARN)
        secret_arn: Option<String>,
        /// how long the rollouts may take (default 15m); the step's
        /// `timeout` bounds each request
        wait: Option<String>,
        /// how often the rollouts are looked at (default 5s)
        poll: Option<String>,
    } -> EcsRedeployOutputs {
        /// the new deployment's id (one per service, space-separated)
        deployment_id: String,
        /// the services redeployed
        services: Vec<String>,
    }
}

/// What an attempt forced, noted before it waits: per service, the id of
/// the deployment it started.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Forced {
    cluster: String,
    deployments: BTreeMap<String, String>,
}

impl Perform for EcsRedeploy {
    /// Each request has the step's timeout; the rollouts have `wait`.
    const TIMES_ITSELF: bool = true;

    async fn perform(self, aws: &Aws, call: Call<'_>) -> Result<EcsRedeployOutputs, ActionError> {
        let wait = duration_param(self.wait.as_deref(), "wait", DEFAULT_WAIT)?;
        let poll = duration_param(self.poll.as_deref(), "poll", DEFAULT_POLL)?;
        let cluster = self.cluster.trim().to_string();
        let services = match (given(&self.service), given(&self.secret_arn)) {
            (Some(service), None) => vec![service.to_string()],
            (None, Some(arn)) => consumers(aws, &cluster, arn, call).await?,
            _ => {
                return Err(ActionError::permanent(
                    "`aws.ecs_redeploy` needs either `service` or `secret_arn`, not both",
                ));
            }
        };
        let mut forced = call
            .noted::<Forced>()
            .filter(|f| f.cluster == cluster)
            .unwrap_or_else(|| Forced {
                cluster: cluster.clone(),
                ..Forced::default()
            });
        for service in &services {
            if forced.deployments.contains_key(service) {
                continue;
            }
            let id = force(aws, &cluster, service, call).await?;
            forced.deployments.insert(service.clone(), id);
            call.note(&forced).await?;
        }
        roll_out("the rollout", wait, poll, || rollouts(aws, &forced, call)).await?;
        Ok(EcsRedeployOutputs {
            deployment_id: forced
                .deployments
                .values()
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
            services: forced.deployments.into_keys().collect(),
        })
    }
}

/// A parameter that was given: an optional input renders as "".
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Starts a new deployment of `service`; returns its id.
async fn force(
    aws: &Aws,
    cluster: &str,
    service: &str,
    call: Call<'_>,
) -> Result<String, ActionError> {
    let out = within(call.timeout, async {
        aws.ecs
            .update_service()
            .cluster(cluster)
            .service(service)
            .force_new_deployment(true)
            .send()
            .await
            .map_err(|e| {
                classify(e, "ecs:UpdateService")
                    .about(format_args!("service `{service}` in cluster `{cluster}`"))
            })
    })
    .await?;
    out.service()
        .and_then(|s| s.deployments().iter().find(|d| d.status() == Some("PRIMARY")))
        .and_then(Deployment::id)
        .map(str::to_string)
        .ok_or_else(|| {
            ActionError::permanent(format!(
                "ECS UpdateService of service `{service}` in cluster `{cluster}` answered without a PRIMARY deployment"
            ))
        })
}

/// How the forced deployments stand: `None` once every one is PRIMARY and
/// COMPLETED, else what is still rolling out. A FAILED rollout, a service
/// that is gone, or a deployment that another one replaced is an error.
async fn rollouts(
    aws: &Aws,
    forced: &Forced,
    call: Call<'_>,
) -> Result<Option<String>, ActionError> {
    let cluster = forced.cluster.as_str();
    let names: Vec<&String> = forced.deployments.keys().collect();
    let mut pending = Vec::new();
    for batch in names.chunks(DESCRIBE_BATCH) {
        let services = batch.iter().map(|s| s.to_string()).collect();
        let out = describe_services(aws, cluster, services, call).await?;
        if let Some(f) = out.failures().first() {
            return Err(ActionError::permanent(format!(
                "ECS DescribeServices: `{}` in cluster `{cluster}`: {}",
                f.arn().unwrap_or_default(),
                f.reason().unwrap_or("not found")
            )));
        }
        for name in batch {
            let id = &forced.deployments[*name];
            let service = out
                .services()
                .iter()
                .find(|s| s.service_name() == Some(name.as_str()) || s.service_arn() == Some(name.as_str()))
                .ok_or_else(|| {
                    ActionError::permanent(format!(
                        "ECS DescribeServices did not describe service `{name}` in cluster `{cluster}`"
                    ))
                })?;
            let deployment = service
                .deployments()
                .iter()
                .find(|d| d.id() == Some(id.as_str()))
                .ok_or_else(|| {
                    ActionError::permanent(format!(
                        "deployment `{id}` of service `{name}` in cluster `{cluster}` is gone: another deployment replaced it"
                    ))
                })?;
            if let Some(progress) = rollout(deployment, name, cluster)? {
                pending.push(progress);
            }
        }
    }
    Ok((!pending.is_empty()).then(|| pending.join("; ")))
}

/// One deployment's rollout: `None` when done, else how far it got.
fn rollout(d: &Deployment, service: &str, cluster: &str) -> Result<Option<String>, ActionError> {
    let id = d.id().unwrap_or_default();
    let counts = format!(
        "{} of {} tasks running",
        d.running_count(),
        d.desired_count()
    );
    let state = d.rollout_state();
    if state == Some(&DeploymentRolloutState::Failed) {
        return Err(ActionError::permanent(format!(
            "the rollout of deployment `{id}` of service `{service}` in cluster `{cluster}` FAILED: {} ({counts}, {} failed)",
            d.rollout_state_reason().unwrap_or("no reason given"),
            d.failed_tasks()
        )));
    }
    let primary = d.status() == Some("PRIMARY");
    let done = match state {
        Some(DeploymentRolloutState::Completed) => true,
        // No rollout state (an older or external controller): the counts.
        None => d.running_count() == d.desired_count(),
        Some(_) => false,
    };
    if primary && done {
        return Ok(None);
    }
    Ok(Some(format!(
        "deployment `{id}` of service `{service}` is {} {} ({counts})",
        d.status().unwrap_or("of no status"),
        state.map_or("without a rollout state", DeploymentRolloutState::as_str),
    )))
}

/// The services of `cluster` whose task definition reads `arn`, by name.
async fn consumers(
    aws: &Aws,
    cluster: &str,
    arn: &str,
    call: Call<'_>,
) -> Result<Vec<String>, ActionError> {
    let mut arns = Vec::new();
    let mut token = None;
    loop {
        let list = aws.ecs.list_services().cluster(cluster);
        let page = ecs(
            call,
            "ecs:ListServices",
            list.set_next_token(token.take()).send(),
        )
        .await
        .map_err(|e| e.about(format_args!("cluster `{cluster}`")))?;
        arns.extend(page.service_arns().iter().cloned());
        match page.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    let mut readers = Vec::new();
    let mut definitions: HashMap<String, bool> = HashMap::new();
    for batch in arns.chunks(DESCRIBE_BATCH) {
        let out = describe_services(aws, cluster, batch.to_vec(), call).await?;
        for service in out.services() {
            let (Some(name), Some(def)) = (service.service_name(), service.task_definition())
            else {
                continue;
            };
            let reads = match definitions.get(def) {
                Some(reads) => *reads,
                None => {
                    let reads = reads_secret(aws, def, arn, call).await?;
                    definitions.insert(def.to_string(), reads);
                    reads
                }
            };
            if reads {
                readers.push(name.to_string());
            }
        }
    }
    if readers.is_empty() {
        return Err(ActionError::permanent(format!(
            "no service in cluster `{cluster}` has a task definition that reads `{arn}`"
        )));
    }
    Ok(readers)
}

/// One ECS request, which has the step's timeout to be answered.
async fn ecs<T, E>(
    call: Call<'_>,
    permission: &str,
    request: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
) -> Result<T, ActionError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    within(call.timeout, async {
        request.await.map_err(|e| classify(e, permission))
    })
    .await
}

async fn describe_services(
    aws: &Aws,
    cluster: &str,
    services: Vec<String>,
    call: Call<'_>,
) -> Result<DescribeServicesOutput, ActionError> {
    let describe = aws.ecs.describe_services().cluster(cluster);
    ecs(
        call,
        "ecs:DescribeServices",
        describe.set_services(Some(services)).send(),
    )
    .await
}

/// Whether task definition `def` hands `arn` to any of its containers.
async fn reads_secret(
    aws: &Aws,
    def: &str,
    arn: &str,
    call: Call<'_>,
) -> Result<bool, ActionError> {
    let describe = aws.ecs.describe_task_definition().task_definition(def);
    let out = ecs(call, "ecs:DescribeTaskDefinition", describe.send()).await?;
    let containers = out
        .task_definition()
        .map(|t| t.container_definitions())
        .unwrap_or_default();
    Ok(containers
        .iter()
        .flat_map(|c| c.secrets())
        .any(|s| references(s.value_from(), arn)))
}

/// Whether a container secret's `valueFrom` names `arn`: the ARN itself; a
/// Secrets Manager ARN with a JSON key, version stage or id after it; or,
/// for an SSM parameter of the same region, the parameter's bare name.
fn references(value_from: &str, arn: &str) -> bool {
    if value_from == arn || value_from.starts_with(&format!("{arn}:")) {
        return true;
    }
    match arn.split_once(":parameter") {
        Some((_, name)) => value_from == name || format!("/{value_from}") == name,
        None => false,
    }
}

action! {
    /// Set one environment variable of a Lambda function (read, change,
    /// write back: its other variables are kept), and wait until the
    /// update is done
    "aws.lambda_update_environment" in Aws => LambdaUpdateEnvironment [idempotent] {
        /// the function's name or ARN
        function: String,
        /// the variable's name
        variable: String,
        /// its new value
        value: String [secret],
    } -> LambdaUpdateEnvironmentOutputs {
        /// the function's revision after the update
        revision_id: String,
    }
}

impl Perform for LambdaUpdateEnvironment {
    async fn perform(
        self,
        aws: &Aws,
        _: Call<'_>,
    ) -> Result<LambdaUpdateEnvironmentOutputs, ActionError> {
        let function = self.function.trim();
        let named = |e: ActionError| e.about(format_args!("function `{function}`"));
        let configuration = async || {
            let get = aws.lambda.get_function_configuration();
            let answer = get.function_name(function).send().await;
            answer.map_err(|e| named(classify(e, "lambda:GetFunctionConfiguration")))
        };
        let current = configuration().await?;
        let mut variables = current
            .environment()
            .and_then(|e| e.variables())
            .cloned()
            .unwrap_or_default();
        variables.insert(self.variable.clone(), self.value);
        // The revision read: a change made in between is not overwritten,
        // the attempt fails and the next one reads again.
        let updated = aws
            .lambda
            .update_function_configuration()
            .function_name(function)
            .environment(
                Environment::builder()
                    .set_variables(Some(variables))
                    .build(),
            )
            .set_revision_id(current.revision_id().map(str::to_string))
            .send()
            .await
            .map_err(|e| {
                let mut err = named(classify(e, "lambda:UpdateFunctionConfiguration"));
                if err.message.contains("PreconditionFailedException")
                    || err.message.contains("ResourceConflictException")
                {
                    err.class = ErrorClass::Transient;
                }
                err
            })?;
        let mut revision = updated.revision_id().unwrap_or_default().to_string();
        let mut status = updated.last_update_status().cloned();
        while status == Some(LastUpdateStatus::InProgress) {
            tokio::time::sleep(LAMBDA_POLL).await;
            let now = configuration().await?;
            revision = now.revision_id().unwrap_or_default().to_string();
            status = now.last_update_status().cloned();
            if status == Some(LastUpdateStatus::Failed) {
                return Err(ActionError::permanent(format!(
                    "function `{function}`: the update of its environment failed: {}",
                    now.last_update_status_reason().unwrap_or("no reason given")
                )));
            }
        }
        Ok(LambdaUpdateEnvironmentOutputs {
            revision_id: revision,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_secret_names_the_arn_itself_a_key_of_it_or_the_bare_parameter() {
        let sm = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf";
        assert!(references(sm, sm));
        assert!(references(&format!("{sm}:password::"), sm));
        assert!(!references(&format!("{sm}x"), sm));
        let ssm = "arn:aws:ssm:us-east-1:123456789012:parameter/app/key";
        assert!(references(ssm, ssm));
        assert!(references("/app/key", ssm));
        assert!(references("app/key", ssm));
        assert!(!references("/app/key2", ssm));
    }

    fn deployment(status: &str, state: Option<DeploymentRolloutState>, running: i32) -> Deployment {
        Deployment::builder()
            .id("ecs-svc/1")
            .status(status)
            .set_rollout_state(state)
            .rollout_state_reason("tasks failed to start")
            .desired_count(2)
            .running_count(running)
            .failed_tasks(3)
            .build()
    }

    #[test]
    fn a_rollout_is_done_once_primary_and_completed_and_a_failed_one_fails_the_step() {
        let done = deployment("PRIMARY", Some(DeploymentRolloutState::Completed), 2);
        assert_eq!(rollout(&done, "api", "prod").unwrap(), None);

        let rolling = deployment("PRIMARY", Some(DeploymentRolloutState::InProgress), 1);
        assert_eq!(
            rollout(&rolling, "api", "prod").unwrap().unwrap(),
            "deployment `ecs-svc/1` of service `api` is PRIMARY IN_PROGRESS (1 of 2 tasks running)"
        );

        let failed = deployment("PRIMARY", Some(DeploymentRolloutState::Failed), 0);
        let e = rollout(&failed, "api", "prod").unwrap_err();
        assert_eq!(e.class, ErrorClass::Permanent);
        assert!(
            e.message
                .contains("FAILED: tasks failed to start (0 of 2 tasks running, 3 failed)"),
            "{}",
            e.message
        );

        // Without a rollout state, the counts decide.
        assert_eq!(
            rollout(&deployment("PRIMARY", None, 2), "api", "prod").unwrap(),
            None
        );
        assert!(
            rollout(&deployment("PRIMARY", None, 1), "api", "prod")
                .unwrap()
                .is_some()
        );
        // A completed deployment that is no longer PRIMARY is not the one serving.
        let replaced = deployment("ACTIVE", Some(DeploymentRolloutState::Completed), 2);
        assert!(rollout(&replaced, "api", "prod").unwrap().is_some());
    }
}
