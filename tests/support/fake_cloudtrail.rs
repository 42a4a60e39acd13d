//! CloudTrail's LookupEvents, as its JSON protocol (awsJson1.1) describes
//! it, for the one call moto does not implement: a SigV4-signed `POST /`
//! with `X-Amz-Target`, lookup attributes, a time window and `NextToken`
//! pagination. Each region has its own trail, as in AWS: a request signed
//! for a region sees the events whose record names it (`awsRegion`,
//! `us-east-1` when it names none).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// The target as the API reference writes it, and as the SDK sends it
/// (the service accepts both).
const TARGETS: [&str; 2] = [
    "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
    "CloudTrail_20131101.LookupEvents",
];
/// Small pages, so pagination is exercised.
const PAGE: usize = 2;

#[derive(Clone, Debug)]
pub enum Trail {
    /// These events, made by the key being looked up.
    Events(Vec<Value>),
    /// Every request answers 500.
    Broken,
    /// Every request answers 500 with an HTML page, as a proxy in front of
    /// the service might.
    BrokenHtml,
}

#[derive(Clone)]
pub struct FakeCloudTrail {
    requests: Arc<Mutex<Vec<Value>>>,
    pub addr: SocketAddr,
}

/// An event as CloudTrail returns it, from its record: the summary fields
/// LookupEvents adds, and the record as a JSON string.
pub fn record(name: &str, epoch: i64, key: &str, read_only: bool, detail: Value) -> Value {
    let source = detail["eventSource"]
        .as_str()
        .unwrap_or("iam.amazonaws.com")
        .to_string();
    let mut detail = detail;
    detail["eventName"] = json!(name);
    detail["readOnly"] = json!(read_only);
    detail["eventSource"] = json!(source);
    json!({
        "EventId": format!("ev-{name}-{epoch}"),
        "EventName": name,
        "ReadOnly": read_only.to_string(),
        "AccessKeyId": key,
        "EventTime": epoch as f64,
        "EventSource": source,
        "Resources": [],
        "CloudTrailEvent": detail.to_string(),
    })
}

/// An event as CloudTrail returns it: the detail is a JSON string.
pub fn event(name: &str, epoch: i64, ip: &str, agent: &str, key: &str) -> Value {
    json!({
        "EventId": format!("ev-{name}-{epoch}"),
        "EventName": name,
        "ReadOnly": "true",
        "AccessKeyId": key,
        "EventTime": epoch as f64,
        "EventSource": "s3.amazonaws.com",
        "Username": "ci-bot",
        "Resources": [],
        "CloudTrailEvent": json!({
            "eventName": name,
            "sourceIPAddress": ip,
            "userAgent": agent,
            "userIdentity": {"accessKeyId": key},
        }).to_string(),
    })
}

impl FakeCloudTrail {
    pub fn start(trail: Trail) -> FakeCloudTrail {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = (trail, requests.clone());
        let app = Router::new().route("/", post(lookup)).with_state(state);
        let addr = super::serve_on_loopback(app);
        FakeCloudTrail { requests, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bodies of the LookupEvents requests received.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [("content-type", "application/x-amz-json-1.1")],
        json!({"__type": kind, "message": message}).to_string(),
    )
        .into_response()
}

async fn lookup(
    State((trail, requests)): State<(Trail, Arc<Mutex<Vec<Value>>>)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    if !TARGETS.contains(&header("x-amz-target").as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            "unknown X-Amz-Target",
        );
    }
    if !header("content-type").starts_with("application/x-amz-json-1.1") {
        return error(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            "wrong content type",
        );
    }
    let auth = header("authorization");
    if !auth.starts_with("AWS4-HMAC-SHA256 ") || !auth.contains("/cloudtrail/aws4_request") {
        return error(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationTokenException",
            "request is not SigV4-signed for cloudtrail",
        );
    }
    // Credential=KEY/DATE/REGION/cloudtrail/aws4_request
    let region = auth
        .split("/cloudtrail/aws4_request")
        .next()
        .and_then(|s| s.rsplit('/').next())
        .unwrap_or_default()
        .to_string();
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            "body is not JSON",
        );
    };
    let mut seen = req.clone();
    seen["_region"] = json!(region);
    requests.lock().unwrap().push(seen);
    if let Trail::BrokenHtml = trail {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/html")],
            "<html><head><title>500 Internal Server Error</title></head>\n<body><h1>Internal Server Error</h1><p>upstream connect error</p></body></html>",
        )
            .into_response();
    }
    let Trail::Events(events) = trail else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "the service is unavailable",
        );
    };
    let attrs = req["LookupAttributes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let [attr] = attrs.as_slice() else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidLookupAttributesException",
            "exactly one lookup attribute",
        );
    };
    if attr["AttributeKey"] != "AccessKeyId" {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidLookupAttributesException",
            "unexpected attribute key",
        );
    }
    let key = attr["AttributeValue"].as_str().unwrap_or_default();
    let (Some(start), Some(end)) = (req["StartTime"].as_f64(), req["EndTime"].as_f64()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidTimeRangeException",
            "StartTime and EndTime are required here",
        );
    };
    if start > end {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidTimeRangeException",
            "StartTime is after EndTime",
        );
    }
    let matching: Vec<&Value> = events
        .iter()
        .filter(|e| e["AccessKeyId"] == key)
        .filter(|e| region_of(e) == region)
        .filter(|e| (start..=end).contains(&e["EventTime"].as_f64().unwrap_or(0.0)))
        .collect();
    let from: usize = match req["NextToken"].as_str() {
        None => 0,
        Some(t) => match t.strip_prefix("page-").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidNextTokenException",
                    "bad NextToken",
                );
            }
        },
    };
    let page: Vec<&Value> = matching.iter().skip(from).take(PAGE).copied().collect();
    let mut out = json!({ "Events": page });
    if from + PAGE < matching.len() {
        out["NextToken"] = json!(format!("page-{}", from + PAGE));
    }
    (
        [("content-type", "application/x-amz-json-1.1")],
        out.to_string(),
    )
        .into_response()
}

/// The region whose trail holds an event: its record's `awsRegion`.
fn region_of(e: &Value) -> String {
    e["CloudTrailEvent"]
        .as_str()
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
        .and_then(|d| d["awsRegion"].as_str().map(str::to_string))
        .unwrap_or_else(|| "us-east-1".into())
}
