//! IAM's GetAccessKeyLastUsed with dates the test sets, in front of moto
//! (whose keys are all new, and whose last-used record cannot be set).
//! Every other IAM call goes on to moto. Like IAM, it answers only a
//! well-formed Query request, and `N/A` for a key never used.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use chrono::{DateTime, SecondsFormat, Utc};

/// A key's last recorded use.
#[derive(Clone, Debug)]
pub struct Use {
    pub at: DateTime<Utc>,
    pub service: String,
    pub region: String,
}

struct Peer {
    upstream: String,
    uses: Mutex<HashMap<String, Use>>,
    asked: Mutex<Vec<String>>,
}

pub struct LastUsedIam {
    peer: Arc<Peer>,
    pub addr: SocketAddr,
}

impl LastUsedIam {
    pub fn start(moto_url: &str) -> LastUsedIam {
        let peer = Arc::new(Peer {
            upstream: moto_url.to_string(),
            uses: Mutex::new(HashMap::new()),
            asked: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(any(answer)).with_state(peer.clone());
        let addr = super::serve_on_loopback(app);
        LastUsedIam { peer, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Records that `key` was last used at `at`, with `service` in `region`.
    pub fn used(&self, key: &str, at: DateTime<Utc>, service: &str, region: &str) {
        self.peer.uses.lock().unwrap().insert(
            key.to_string(),
            Use {
                at,
                service: service.into(),
                region: region.into(),
            },
        );
    }

    /// The keys GetAccessKeyLastUsed was asked about, in order.
    pub fn asked(&self) -> Vec<String> {
        self.peer.asked.lock().unwrap().clone()
    }
}

async fn answer(
    State(peer): State<Arc<Peer>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if form.get("Action").map(String::as_str) == Some("GetAccessKeyLastUsed") {
        return last_used(&peer, &method, &headers, &form);
    }
    let answer = super::forward(&peer.upstream, method, &uri, &headers, body).await;
    super::relay(answer).await
}

fn last_used(
    peer: &Peer,
    method: &Method,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Response {
    let signed = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256 "));
    let key = form.get("AccessKeyId").cloned().unwrap_or_default();
    if method != Method::POST
        || !signed
        || form.get("Version").map(String::as_str) != Some("2010-05-08")
        || key.is_empty()
    {
        return error(400, "ValidationError", "malformed GetAccessKeyLastUsed");
    }
    peer.asked.lock().unwrap().push(key.clone());
    let used = peer.uses.lock().unwrap().get(&key).cloned();
    let record = match used {
        Some(u) => format!(
            "<Region>{}</Region><LastUsedDate>{}</LastUsedDate><ServiceName>{}</ServiceName>",
            u.region,
            u.at.to_rfc3339_opts(SecondsFormat::Secs, true),
            u.service
        ),
        None => "<Region>N/A</Region><ServiceName>N/A</ServiceName>".to_string(),
    };
    let xml = format!(
        "<GetAccessKeyLastUsedResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><GetAccessKeyLastUsedResult><AccessKeyLastUsed>{record}</AccessKeyLastUsed><UserName>ci-bot</UserName></GetAccessKeyLastUsedResult><ResponseMetadata><RequestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</RequestId></ResponseMetadata></GetAccessKeyLastUsedResponse>"
    );
    (StatusCode::OK, [("content-type", "text/xml")], xml).into_response()
}

fn error(status: u16, code: &str, message: &str) -> Response {
    let xml = format!(
        "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>0</RequestId></ErrorResponse>"
    );
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "text/xml")],
        xml,
    )
        .into_response()
}
