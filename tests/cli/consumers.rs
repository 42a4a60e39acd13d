//! The new key reaches its consumers: an ECS service and a Lambda function
//! on moto's server, a Kubernetes Secret and workload on a local API server
//! that follows the published shapes.

use aws_sdk_iam::config::{BehaviorVersion, Credentials, Region};
use serde_json::Value;

use crate::support::fake_cloudtrail::{FakeCloudTrail, Trail};
use crate::support::fake_kubernetes::{FakeKubernetes, Rollout};
use crate::support::peers::{self, BAO_ROOT_TOKEN, Peer};
use crate::support::{Output, Test};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn sdk(moto: &Peer) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&moto.url)
        .credentials_provider(aws_sdk_iam::config::SharedCredentialsProvider::new(
            Credentials::new("testing", "testing", None, None, "test"),
        ))
        .build()
}

/// The ARN of the Secrets Manager secret the `api` task definition reads.
const DB_SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-db-AbCdEf";

/// Cluster `prod` with services `api` (whose task definition reads
/// [`DB_SECRET`]) and `worker` (which reads nothing), each of `desired`
/// tasks; moto reports a rollout COMPLETED only when none are desired.
fn ecs_cluster(moto: &Peer, desired: i32) {
    use aws_sdk_ecs::types::{ContainerDefinition, Secret};
    let ecs = aws_sdk_ecs::Client::new(&sdk(moto));
    rt().block_on(async {
        ecs.create_cluster()
            .cluster_name("prod")
            .send()
            .await
            .unwrap();
        for (family, secret) in [("api", Some(DB_SECRET)), ("worker", None)] {
            let mut container = ContainerDefinition::builder()
                .name(family)
                .image("example/app:1")
                .memory(128);
            if let Some(arn) = secret {
                container = container.secrets(
                    Secret::builder()
                        .name("DB_PASSWORD")
                        .value_from(format!("{arn}:password::"))
                        .build()
                        .unwrap(),
                );
            }
            ecs.register_task_definition()
                .family(family)
                .container_definitions(container.build())
                .send()
                .await
                .unwrap();
            ecs.create_service()
                .cluster("prod")
                .service_name(family)
                .task_definition(family)
                .desired_count(desired)
                .send()
                .await
                .unwrap();
        }
    });
}

/// The service's deployments: (id, status, rollout state).
fn ecs_deployments(moto: &Peer, service: &str) -> Vec<(String, String, String)> {
    let ecs = aws_sdk_ecs::Client::new(&sdk(moto));
    rt().block_on(async {
        let out = ecs
            .describe_services()
            .cluster("prod")
            .services(service)
            .send()
            .await
            .unwrap();
        out.services()[0]
            .deployments()
            .iter()
            .map(|d| {
                (
                    d.id().unwrap_or_default().to_string(),
                    d.status().unwrap_or_default().to_string(),
                    d.rollout_state()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect()
    })
}

/// Function `app`, whose environment holds `LOG_LEVEL` and the old key.
fn lambda_function(moto: &Peer, old: &str) {
    use aws_sdk_lambda::primitives::Blob;
    use aws_sdk_lambda::types::{Environment, FunctionCode, Runtime};
    let conf = sdk(moto);
    let iam = aws_sdk_iam::Client::new(&conf);
    let lambda = aws_sdk_lambda::Client::new(&conf);
    // The smallest zip archive: an empty one.
    let mut zip = b"PK\x05\x06".to_vec();
    zip.extend([0u8; 18]);
    rt().block_on(async {
        let role = iam
            .create_role()
            .role_name("app-lambda")
            .assume_role_policy_document(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
            )
            .send()
            .await
            .unwrap();
        lambda
            .create_function()
            .function_name("app")
            .runtime(Runtime::Python312)
            .role(role.role().unwrap().arn())
            .handler("app.handler")
            .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
            .environment(
                Environment::builder()
                    .variables("LOG_LEVEL", "debug")
                    .variables("APP_AWS_ACCESS_KEY_ID", old)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
}

fn lambda_environment(moto: &Peer) -> std::collections::HashMap<String, String> {
    let lambda = aws_sdk_lambda::Client::new(&sdk(moto));
    rt().block_on(async {
        let out = lambda
            .get_function_configuration()
            .function_name("app")
            .send()
            .await
            .unwrap();
        out.environment()
            .and_then(|e| e.variables())
            .cloned()
            .unwrap_or_default()
    })
}

fn leaked_key(moto: &Peer) -> String {
    let iam = aws_sdk_iam::Client::new(&sdk(moto));
    rt().block_on(async {
        iam.create_user().user_name("ci-bot").send().await.unwrap();
        let out = iam
            .create_access_key()
            .user_name("ci-bot")
            .send()
            .await
            .unwrap();
        out.access_key().unwrap().access_key_id().to_string()
    })
}

struct Peers {
    moto: Peer,
    vault: Peer,
    trail: FakeCloudTrail,
    kube: FakeKubernetes,
}

impl Peers {
    fn start() -> Peers {
        Peers {
            moto: peers::moto(),
            vault: peers::openbao(),
            trail: FakeCloudTrail::start(Trail::Events(Vec::new())),
            kube: FakeKubernetes::start(),
        }
    }

    fn test(&self) -> Test {
        Test::new()
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &self.moto.url)
            .env("AWS_ENDPOINT_URL_CLOUDTRAIL", &self.trail.url())
            .env("VAULT_ADDR", &self.vault.url)
            .env("VAULT_TOKEN", BAO_ROOT_TOKEN)
            .file("kubeconfig", &self.kube.kubeconfig("shop"))
            .env("KUBECONFIG", "kubeconfig")
    }
}

fn journal_of(out: &Output, step: &str) -> Vec<Value> {
    std::fs::read_to_string(out.incident().join("journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["step"] == step)
        .collect()
}

fn assert_nowhere(out: &Output, secret: &str) {
    for (path, text) in out.artifacts() {
        assert!(
            !text.contains(secret),
            "{} holds the new secret",
            path.display()
        );
    }
    assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret));
}

/// The shipped AWS runbook hands the new key to every consumer named: the
/// ECS service is redeployed, the Lambda function's environment and the
/// Kubernetes Secret hold it, the Deployment is restarted and rolled out,
/// and the secret is in none of quench's own artifacts.
#[test]
fn the_new_key_reaches_every_consumer_named() {
    let p = Peers::start();
    let old = leaked_key(&p.moto);
    ecs_cluster(&p.moto, 0);
    lambda_function(&p.moto, &old);
    p.kube.namespace("shop");
    p.kube.secret(
        "shop",
        "aws",
        &[("AWS_ACCESS_KEY_ID", &old), ("REGION", "us-east-1")],
    );
    p.kube.deployment("shop", "api", 2, Rollout::After(3));
    let before = ecs_deployments(&p.moto, "api");

    let (out, _d) = p
        .test()
        .args(&[
            "run",
            "aws-access-key-compromise",
            "--var",
            &format!("access_key_id={old}"),
            "--var",
            "iam_user=ci-bot",
            "--var",
            "ecs_cluster=prod",
            "--var",
            "ecs_service=api",
            "--var",
            "lambda_function=app",
            "--var",
            "kubernetes_secret=aws",
            "--var",
            "kubernetes_workload=api",
        ])
        .run();
    out.code(0);
    let (new_id, new_secret) = crate::aws::stored_key(&p.vault);

    // ECS: a new deployment, PRIMARY and COMPLETED, whose id is the output.
    let after = ecs_deployments(&p.moto, "api");
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after[0].0, before[0].0, "a new deployment");
    assert_eq!((&*after[0].1, &*after[0].2), ("PRIMARY", "COMPLETED"));
    let redeployed = journal_of(&out, "redeploy_ecs");
    let done = redeployed.last().unwrap();
    assert_eq!(done["event"], "step_succeeded", "{redeployed:?}");
    assert_eq!(done["outputs"]["deployment_id"], after[0].0.as_str());
    assert!(
        redeployed.iter().any(|r| r["event"] == "step_noted"
            && r["note"]["deployments"]["api"] == after[0].0.as_str()),
        "{redeployed:?}"
    );

    // Lambda: both variables set, the others kept.
    let env = lambda_environment(&p.moto);
    assert_eq!(env["APP_AWS_ACCESS_KEY_ID"], new_id);
    assert_eq!(env["APP_AWS_SECRET_ACCESS_KEY"], new_secret);
    assert_eq!(env["LOG_LEVEL"], "debug");

    // Kubernetes: the Secret's keys set and its other key kept, by a merge
    // patch; the Deployment restarted by a strategic merge patch of its
    // pod template, and rolled out.
    let data = p.kube.secret_data("shop", "aws");
    assert_eq!(data["AWS_ACCESS_KEY_ID"], new_id);
    assert_eq!(data["AWS_SECRET_ACCESS_KEY"], new_secret);
    assert_eq!(data["REGION"], "us-east-1");
    let writes = p.kube.writes();
    let kinds: Vec<(&str, &str)> = writes
        .iter()
        .map(|(_, path, ct, _)| (path.as_str(), ct.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("shop/secrets/aws", "application/merge-patch+json"),
            (
                "shop/deployments/api",
                "application/strategic-merge-patch+json"
            ),
        ]
    );
    let deployment = p.kube.object("deployments", "shop", "api");
    let restarted_at = &deployment["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"];
    assert!(restarted_at.is_string(), "{deployment}");
    assert_eq!(deployment["metadata"]["generation"], 2);
    let restart = journal_of(&out, "kubernetes_restart");
    assert_eq!(
        restart.last().unwrap()["event"],
        "step_succeeded",
        "{restart:?}"
    );
    assert_eq!(
        restart.last().unwrap()["outputs"]["restarted_at"],
        *restarted_at
    );

    assert_nowhere(&out, &new_secret);
}

/// With no consumer named, each consumer step is skipped with its reason.
#[test]
fn consumers_not_named_are_skipped_with_why() {
    let (out, _d) = Test::new()
        .args(&[
            "rehearse",
            "aws-access-key-compromise",
            "--var",
            "access_key_id=AKIAIOSFODNN7EXAMPLE",
            "--var",
            "iam_user=ci-bot",
        ])
        .run();
    out.code(0);
    for (step, input) in [
        ("redeploy_ecs", "ecs_service"),
        ("lambda_key_id", "lambda_function"),
        ("lambda_secret", "lambda_function"),
        ("kubernetes_secret", "kubernetes_secret"),
        ("kubernetes_restart", "kubernetes_workload"),
    ] {
        let skipped = journal_of(&out, step);
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert_eq!(skipped[0]["event"], "step_skipped");
        assert_eq!(
            skipped[0]["reason"],
            format!("`when` rendered `no {input} was given`")
        );
    }
}

/// A one-step runbook of `action` with these parameters.
fn one_step(action: &str, with: &str) -> String {
    format!(
        "name: consumer\nsteps:\n  - id: consume\n    phase: update\n    action: {action}\n    timeout: 5s\n    retry: {{ attempts: 1 }}\n    with: {with}\n"
    )
}

/// Runs it; the directory is kept until the result is dropped.
fn run_one(p: &Peers, action: &str, with: &str) -> (Output, tempfile::TempDir) {
    p.test()
        .file("consume.yaml", &one_step(action, with))
        .args(&["run", "consume.yaml"])
        .run()
}

fn failure(out: &Output) -> String {
    let failed = journal_of(out, "consume");
    let last = failed.last().unwrap();
    assert_eq!(last["event"], "step_failed", "{failed:?}");
    last["error"].as_str().unwrap().to_string()
}

/// A cluster, service or function that is not there fails its step with a
/// reason that names it.
#[test]
fn missing_aws_consumers_fail_naming_them() {
    let p = Peers::start();
    ecs_cluster(&p.moto, 0);
    let cases = [
        (
            "aws.ecs_redeploy",
            "{ cluster: nowhere, service: api }",
            "service `api` in cluster `nowhere`",
        ),
        (
            "aws.ecs_redeploy",
            "{ cluster: prod, service: ghost }",
            "service `ghost` in cluster `prod`",
        ),
        (
            "aws.ecs_redeploy",
            "{ cluster: prod, secret_arn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:other-XyZ123' }",
            "no service in cluster `prod` has a task definition that reads",
        ),
        (
            "aws.lambda_update_environment",
            "{ function: ghost, variable: X, value: y }",
            "function `ghost`",
        ),
    ];
    for (action, with, named) in cases {
        let (out, _d) = run_one(&p, action, with);
        out.code(1);
        let error = failure(&out);
        assert!(error.contains(named), "{action} {with}: {error}");
    }
}

/// Every service whose task definition reads the secret is redeployed,
/// and only those.
#[test]
fn services_are_found_by_the_secret_they_read() {
    let p = Peers::start();
    ecs_cluster(&p.moto, 0);
    let (api, worker) = (
        ecs_deployments(&p.moto, "api"),
        ecs_deployments(&p.moto, "worker"),
    );
    let (out, _d) = run_one(
        &p,
        "aws.ecs_redeploy",
        &format!("{{ cluster: prod, secret_arn: '{DB_SECRET}' }}"),
    );
    out.code(0);
    assert_ne!(ecs_deployments(&p.moto, "api")[0].0, api[0].0);
    assert_eq!(ecs_deployments(&p.moto, "worker"), worker);
    let done = journal_of(&out, "consume").last().unwrap().clone();
    assert_eq!(done["outputs"]["services"], serde_json::json!(["api"]));
}

/// A rollout that never completes (moto never runs the desired task) fails
/// its step once `wait` is over, naming the deployment and how far it got;
/// the retry that follows waits on the same deployment and forces no other.
#[test]
fn an_ecs_rollout_that_never_completes_fails_and_is_never_forced_twice() {
    let p = Peers::start();
    ecs_cluster(&p.moto, 1);
    let (out, _d) = p
        .test()
        .file(
            "consume.yaml",
            "name: consumer\nsteps:\n  - id: consume\n    phase: update\n    action: aws.ecs_redeploy\n    retry: { attempts: 2, initial: 10ms }\n    with: { cluster: prod, service: api, wait: 300ms, poll: 100ms }\n",
        )
        .args(&["run", "consume.yaml"])
        .run();
    out.code(1);
    let error = failure(&out);
    let deployment = ecs_deployments(&p.moto, "api")[0].0.clone();
    assert!(
        error.contains(&format!("deployment `{deployment}` of service `api` is PRIMARY IN_PROGRESS (0 of 1 tasks running)")),
        "{error}"
    );
    assert!(error.contains("did not complete within 300ms"), "{error}");
    let notes: Vec<_> = journal_of(&out, "consume")
        .into_iter()
        .filter(|r| r["event"] == "step_noted")
        .collect();
    assert_eq!(notes.len(), 1, "one deployment forced: {notes:?}");
}

/// A namespace, Secret or workload that is not there fails its step naming
/// it; an OnDelete StatefulSet is refused before it is touched; a rollout
/// that never completes fails once `wait` is over.
#[test]
fn bad_kubernetes_consumers_fail_with_a_clear_reason() {
    let p = Peers::start();
    p.kube.namespace("shop");
    p.kube.statefulset("shop", "db", 2, "OnDelete");
    p.kube.deployment("shop", "stuck", 2, Rollout::Never);
    let cases = [
        (
            "kubernetes.secret_put",
            "{ namespace: nowhere, name: aws, data: { K: v } }",
            "secret `nowhere/aws` was not found",
        ),
        (
            "kubernetes.secret_put",
            "{ name: ghost, data: { K: v } }",
            "secret `shop/ghost` was not found",
        ),
        (
            "kubernetes.rollout_restart",
            "{ kind: Deployment, name: ghost }",
            "deployment `shop/ghost` was not found",
        ),
        (
            "kubernetes.rollout_restart",
            "{ kind: StatefulSet, name: db }",
            "statefulset `shop/db` has the OnDelete update strategy",
        ),
        (
            "kubernetes.rollout_restart",
            "{ kind: Deployment, name: stuck, wait: 300ms, poll: 50ms }",
            "the rollout of deployment `shop/stuck` did not complete within 300ms: 1 of 2 new replicas updated",
        ),
        (
            "kubernetes.rollout_restart",
            "{ kind: CronJob, name: x }",
            "a restart rolls out a Deployment, a StatefulSet or a DaemonSet",
        ),
    ];
    for (action, with, reason) in cases {
        let (out, _d) = run_one(&p, action, with);
        out.code(1);
        let error = failure(&out);
        assert!(error.contains(reason), "{action} {with}: {error}");
    }
    let touched: Vec<String> = p.kube.writes().into_iter().map(|w| w.1).collect();
    // The OnDelete StatefulSet and the missing Deployment are never patched.
    assert_eq!(touched, ["shop/secrets/ghost", "shop/deployments/stuck"]);
}

/// A StatefulSet and a DaemonSet roll out by their own status.
#[test]
fn statefulsets_and_daemonsets_roll_out_by_their_own_status() {
    let p = Peers::start();
    p.kube.namespace("shop");
    p.kube.statefulset("shop", "db", 2, "RollingUpdate");
    p.kube.daemonset("shop", "agent", 3);
    for (kind, name, resource) in [
        ("StatefulSet", "db", "statefulsets"),
        ("DaemonSet", "agent", "daemonsets"),
    ] {
        let (out, _d) = run_one(
            &p,
            "kubernetes.rollout_restart",
            &format!("{{ kind: {kind}, name: {name}, poll: 10ms }}"),
        );
        out.code(0);
        let object = p.kube.object(resource, "shop", name);
        assert_eq!(object["metadata"]["generation"], 2, "{object}");
        if resource == "statefulsets" {
            assert_eq!(object["status"]["currentRevision"], "db-2", "{object}");
        } else {
            assert_eq!(object["status"]["updatedNumberScheduled"], 3, "{object}");
        }
    }
}

/// quench dies right after it noted the restart it made; `resume` carries
/// on from the note without asking, waits on that restart and makes no
/// second one.
#[test]
fn a_resumed_restart_waits_on_the_one_it_made() {
    let p = Peers::start();
    p.kube.namespace("shop");
    p.kube.deployment("shop", "api", 2, Rollout::After(3));
    let (crashed, _d) = p
        .test()
        .file(
            "consume.yaml",
            &one_step(
                "kubernetes.rollout_restart",
                "{ kind: Deployment, name: api, poll: 10ms }",
            ),
        )
        // Records: the incident's start, the step's, then its note.
        .env("QUENCH_FAULT_ABORT_AFTER_SEQ", "3")
        .args(&["run", "consume.yaml"])
        .run();
    assert_ne!(crashed.code, 0, "the kill point was not reached");
    assert_eq!(
        journal_of(&crashed, "consume").last().unwrap()["event"],
        "step_noted"
    );
    let inc = crashed.incident();
    let id = inc.file_name().unwrap().to_str().unwrap().to_string();
    let store = crashed.dir.join("incidents");
    let (resumed, _d2) = p
        .test()
        .args(&["--store", store.to_str().unwrap(), "resume", &id])
        .run();
    resumed.code(0);
    let records = journal_of(&crashed, "consume");
    assert_eq!(
        records.last().unwrap()["event"],
        "step_succeeded",
        "{records:?}"
    );
    let patches = p.kube.writes();
    assert_eq!(patches.len(), 1, "one restart: {patches:?}");
    let restarted_at = patches[0].3["spec"]["template"]["metadata"]["annotations"]
        ["kubectl.kubernetes.io/restartedAt"]
        .clone();
    assert_eq!(
        records.last().unwrap()["outputs"]["restarted_at"],
        restarted_at
    );
}
