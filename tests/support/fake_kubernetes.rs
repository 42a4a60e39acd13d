//! A Kubernetes API server for the objects quench touches, as the API's
//! published shapes describe them: apps/v1 Deployments, StatefulSets and
//! DaemonSets and core/v1 Secrets at their REST paths, GET and PATCH with a
//! bearer token, merge and strategic merge patches by content type (415 for
//! others), `Status` objects for 401, 404 and 415, and a controller that
//! moves a rollout on with each GET after a change to the pod template.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

pub const TOKEN: &str = "kube-test-token";

/// How a workload's controller behaves after its pod template changes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rollout {
    /// Done after this many GETs.
    After(u32),
    /// Never done: one new replica comes up, the next never does.
    Never,
}

#[derive(Clone, Debug)]
struct Object {
    body: Value,
    rollout: Rollout,
    /// GETs since the template last changed.
    gets: u32,
}

#[derive(Default)]
struct Cluster {
    namespaces: Vec<String>,
    /// (resource, namespace, name) → object.
    objects: BTreeMap<(String, String, String), Object>,
    /// (method, path, content type, body) of every write.
    writes: Vec<(String, String, String, Value)>,
}

#[derive(Clone)]
pub struct FakeKubernetes {
    cluster: Arc<Mutex<Cluster>>,
    pub addr: SocketAddr,
}

impl FakeKubernetes {
    pub fn start() -> FakeKubernetes {
        let cluster = Arc::new(Mutex::new(Cluster {
            namespaces: vec!["default".into()],
            ..Cluster::default()
        }));
        let app = Router::new()
            .route(
                "/apis/apps/v1/namespaces/{ns}/{resource}/{name}",
                get(object).patch(object),
            )
            .route(
                "/api/v1/namespaces/{ns}/{resource}/{name}",
                get(core_object).patch(core_object),
            )
            .with_state(cluster.clone());
        let addr = super::serve_on_loopback(app);
        FakeKubernetes { cluster, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig for this server, with `namespace` as its context's.
    pub fn kubeconfig(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n- name: test\n  cluster:\n    server: {}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: {namespace}\nusers:\n- name: test\n  user:\n    token: {TOKEN}\n",
            self.url()
        )
    }

    pub fn namespace(&self, ns: &str) {
        self.cluster.lock().unwrap().namespaces.push(ns.into());
    }

    /// A Deployment of `replicas`, rolled out.
    pub fn deployment(&self, ns: &str, name: &str, replicas: i64, rollout: Rollout) {
        let body = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "generation": 1, "resourceVersion": "1"},
            "spec": {"replicas": replicas, "template": {"metadata": {"labels": {"app": name}}}},
            "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                       "readyReplicas": replicas, "availableReplicas": replicas},
        });
        self.put("deployments", ns, name, body, rollout);
    }

    /// A StatefulSet of `replicas`, rolled out, with this update strategy.
    pub fn statefulset(&self, ns: &str, name: &str, replicas: i64, strategy: &str) {
        let body = json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": ns, "generation": 1, "resourceVersion": "1"},
            "spec": {"replicas": replicas, "updateStrategy": {"type": strategy},
                     "template": {"metadata": {"labels": {"app": name}}}},
            "status": {"observedGeneration": 1, "replicas": replicas, "readyReplicas": replicas,
                       "updatedReplicas": replicas, "currentReplicas": replicas,
                       "currentRevision": format!("{name}-1"), "updateRevision": format!("{name}-1")},
        });
        self.put("statefulsets", ns, name, body, Rollout::After(2));
    }

    /// A DaemonSet on `nodes` nodes, rolled out.
    pub fn daemonset(&self, ns: &str, name: &str, nodes: i64) {
        let body = json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": ns, "generation": 1, "resourceVersion": "1"},
            "spec": {"updateStrategy": {"type": "RollingUpdate"},
                     "template": {"metadata": {"labels": {"app": name}}}},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": nodes,
                       "currentNumberScheduled": nodes, "updatedNumberScheduled": nodes,
                       "numberReady": nodes, "numberAvailable": nodes},
        });
        self.put("daemonsets", ns, name, body, Rollout::After(2));
    }

    /// A Secret holding `data` (plain values, stored base64).
    pub fn secret(&self, ns: &str, name: &str, data: &[(&str, &str)]) {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(b64.encode(v))))
            .collect();
        let body = json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": "1"},
            "data": data,
        });
        self.put("secrets", ns, name, body, Rollout::After(0));
    }

    fn put(&self, resource: &str, ns: &str, name: &str, body: Value, rollout: Rollout) {
        self.cluster.lock().unwrap().objects.insert(
            (resource.into(), ns.into(), name.into()),
            Object {
                body,
                rollout,
                gets: 0,
            },
        );
    }

    /// A Secret's data, decoded.
    pub fn secret_data(&self, ns: &str, name: &str) -> BTreeMap<String, String> {
        use base64::Engine as _;
        let c = self.cluster.lock().unwrap();
        let o = &c.objects[&("secrets".into(), ns.into(), name.into())];
        o.body["data"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v.as_str().unwrap())
                    .unwrap();
                (k.clone(), String::from_utf8(bytes).unwrap())
            })
            .collect()
    }

    /// An object as the server holds it.
    pub fn object(&self, resource: &str, ns: &str, name: &str) -> Value {
        let c = self.cluster.lock().unwrap();
        c.objects[&(resource.into(), ns.into(), name.into())]
            .body
            .clone()
    }

    /// Every write: (method, path, content type, body).
    pub fn writes(&self) -> Vec<(String, String, String, Value)> {
        self.cluster.lock().unwrap().writes.clone()
    }
}

/// A `Status` object, as the API server answers a failure.
fn status(code: StatusCode, reason: &str, message: &str, details: Value) -> Response {
    (
        code,
        [("content-type", "application/json")],
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason,
            "details": details, "code": code.as_u16(),
        })
        .to_string(),
    )
        .into_response()
}

async fn core_object(
    state: State<Arc<Mutex<Cluster>>>,
    method: Method,
    path: Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(state, method, path, headers, body, "").await
}

async fn object(
    state: State<Arc<Mutex<Cluster>>>,
    method: Method,
    path: Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(state, method, path, headers, body, "apps").await
}

async fn handle(
    State(cluster): State<Arc<Mutex<Cluster>>>,
    method: Method,
    Path((ns, resource, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
    group: &str,
) -> Response {
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    if header("authorization") != format!("Bearer {TOKEN}") {
        return status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized",
            json!({}),
        );
    }
    let known = match group {
        "apps" => ["deployments", "statefulsets", "daemonsets"].contains(&resource.as_str()),
        _ => resource == "secrets",
    };
    let qualified = if group.is_empty() {
        resource.clone()
    } else {
        format!("{resource}.{group}")
    };
    if !known {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
            json!({}),
        );
    }
    let mut c = cluster.lock().unwrap();
    let not_found = || {
        status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{qualified} \"{name}\" not found"),
            json!({"name": name, "group": group, "kind": resource}),
        )
    };
    if !c.namespaces.contains(&ns) {
        return not_found();
    }
    let key = (resource.clone(), ns.clone(), name.clone());
    if method == Method::GET {
        let Some(o) = c.objects.get_mut(&key) else {
            return not_found();
        };
        o.gets += 1;
        progress(o, &resource);
        return axum::Json(o.body.clone()).into_response();
    }
    let content_type = header("content-type");
    if !matches!(
        content_type.as_str(),
        "application/merge-patch+json" | "application/strategic-merge-patch+json"
    ) {
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            &format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {content_type}"
            ),
            json!({}),
        );
    }
    let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the patch is not JSON",
            json!({}),
        );
    };
    c.writes.push((
        method.to_string(),
        format!("{ns}/{resource}/{name}"),
        content_type,
        patch.clone(),
    ));
    let Some(o) = c.objects.get_mut(&key) else {
        return not_found();
    };
    let template_before = o.body["spec"]["template"].clone();
    merge(&mut o.body, &patch);
    let version: u64 = o.body["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    o.body["metadata"]["resourceVersion"] = json!((version + 1).to_string());
    if o.body["spec"]["template"] != template_before {
        let generation = o.body["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        o.body["metadata"]["generation"] = json!(generation);
        o.gets = 0;
        start_rollout(o, &resource);
    }
    axum::Json(o.body.clone()).into_response()
}

/// RFC 7386 merge patch; a strategic merge patch of maps is the same.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().unwrap();
    for (k, v) in patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The controller sees a new template: nothing is updated yet (an OnDelete
/// StatefulSet or DaemonSet only moves its update revision).
fn start_rollout(o: &mut Object, resource: &str) {
    let s = &mut o.body["status"];
    match resource {
        "deployments" => s["updatedReplicas"] = json!(0),
        "daemonsets" => s["updatedNumberScheduled"] = json!(0),
        "statefulsets" => {
            let name = o.body["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let generation = o.body["metadata"]["generation"].as_i64().unwrap_or(0);
            o.body["status"]["updateRevision"] = json!(format!("{name}-{generation}"));
            o.body["status"]["updatedReplicas"] = json!(0);
        }
        _ => {}
    }
}

/// One more look by the controller: the generation is observed at once;
/// the rollout is done after `After(n)` GETs, never for `Never`, and never
/// for an OnDelete workload.
fn progress(o: &mut Object, resource: &str) {
    if resource == "secrets" {
        return;
    }
    let generation = o.body["metadata"]["generation"].clone();
    o.body["status"]["observedGeneration"] = generation;
    let on_delete = o.body["spec"]["updateStrategy"]["type"] == "OnDelete";
    let done = match o.rollout {
        Rollout::After(n) => o.gets >= n && !on_delete,
        Rollout::Never => false,
    };
    let s = &mut o.body["status"];
    match resource {
        "deployments" => {
            let replicas = o.body["spec"]["replicas"].as_i64().unwrap_or(1);
            let s = &mut o.body["status"];
            if done {
                s["updatedReplicas"] = json!(replicas);
                s["replicas"] = json!(replicas);
                s["availableReplicas"] = json!(replicas);
            } else {
                // One new replica up, the old ones still there.
                s["updatedReplicas"] = json!(1.min(replicas - 1).max(0));
                s["replicas"] = json!(replicas + 1);
            }
        }
        "daemonsets" if done => {
            s["updatedNumberScheduled"] = s["desiredNumberScheduled"].clone();
        }
        "statefulsets" if done => {
            s["currentRevision"] = s["updateRevision"].clone();
            s["updatedReplicas"] = s["replicas"].clone();
        }
        _ => {}
    }
}
