//! STS as AWS answers a key, for the one thing moto does not check: whether
//! a key still works. GetCallerIdentity in STS's query protocol, SigV4
//! checked: a key IAM does not hold, or holds as Inactive, is refused with
//! `InvalidClientTokenId`; a request its secret did not sign with
//! `SignatureDoesNotMatch`. The keys are moto's own, read from its
//! `/moto-api/data.json` at every request. `lag` keeps a key accepted that
//! long after moto first shows it inactive, as IAM's eventual consistency
//! does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// What the peer answered one request.
#[derive(Debug, Clone)]
pub struct Answered {
    pub key: String,
    /// `accepted`, `InvalidClientTokenId` or `SignatureDoesNotMatch`.
    pub answer: &'static str,
}

struct Peer {
    moto: String,
    lag: Duration,
    /// When each key was first seen inactive.
    dead_since: Mutex<HashMap<String, Instant>>,
    answered: Mutex<Vec<Answered>>,
}

pub struct StrictSts {
    peer: Arc<Peer>,
    pub addr: SocketAddr,
}

impl StrictSts {
    pub fn start(moto_url: &str, lag: Duration) -> StrictSts {
        let peer = Arc::new(Peer {
            moto: moto_url.to_string(),
            lag,
            dead_since: Mutex::default(),
            answered: Mutex::default(),
        });
        let app = Router::new()
            .route("/", post(answer))
            .with_state(peer.clone());
        let addr = super::serve_on_loopback(app);
        StrictSts { peer, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every answer given, in order.
    pub fn answered(&self) -> Vec<Answered> {
        self.peer.answered.lock().unwrap().clone()
    }
}

/// A key as moto holds it.
struct Key {
    secret: String,
    active: bool,
    user: String,
}

async fn moto_key(moto: &str, id: &str) -> Option<Key> {
    let data: serde_json::Value = reqwest::get(format!("{moto}/moto-api/data.json"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let keys = data.pointer("/iam/AccessKey")?.as_array()?;
    let k = keys.iter().find(|k| k["access_key_id"] == id)?;
    Some(Key {
        secret: k["secret_access_key"].as_str()?.to_string(),
        active: k["status"] == "Active",
        user: k["user_name"].as_str().unwrap_or("unknown").to_string(),
    })
}

fn error(code: &str, message: &str) -> Response {
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>strict-sts</RequestId></ErrorResponse>"
    );
    (StatusCode::FORBIDDEN, [("content-type", "text/xml")], body).into_response()
}

async fn answer(State(peer): State<Arc<Peer>>, headers: HeaderMap, body: Bytes) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if form.get("Action").map(String::as_str) != Some("GetCallerIdentity") {
        return (StatusCode::BAD_REQUEST, "only GetCallerIdentity").into_response();
    }
    let Some(auth) = Auth::parse(&headers) else {
        return error(
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        );
    };
    let known = moto_key(&peer.moto, &auth.key).await;
    let live = match &known {
        None => false,
        Some(k) if k.active => true,
        Some(_) => {
            let since = *peer
                .dead_since
                .lock()
                .unwrap()
                .entry(auth.key.clone())
                .or_insert_with(Instant::now);
            since.elapsed() < peer.lag
        }
    };
    let verdict = match &known {
        _ if !live => "InvalidClientTokenId",
        Some(k) if !auth.signed_by(&k.secret, &headers, &body) => "SignatureDoesNotMatch",
        _ => "accepted",
    };
    peer.answered.lock().unwrap().push(Answered {
        key: auth.key.clone(),
        answer: verdict,
    });
    match (verdict, known) {
        ("InvalidClientTokenId", _) => error(
            verdict,
            "The security token included in the request is invalid.",
        ),
        ("SignatureDoesNotMatch", _) => error(
            verdict,
            "The request signature we calculated does not match the signature you provided.",
        ),
        (_, known) => {
            let user = known.map(|k| k.user).unwrap_or_default();
            let body = format!(
                "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/{user}</Arn><UserId>AIDASTRICTSTS</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>strict-sts</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
            );
            ([("content-type", "text/xml")], body).into_response()
        }
    }
}

/// A SigV4 `Authorization` header's parts.
struct Auth {
    key: String,
    /// `date/region/service/aws4_request`.
    scope: String,
    signed_headers: Vec<String>,
    signature: String,
}

impl Auth {
    fn parse(headers: &HeaderMap) -> Option<Auth> {
        let h = headers.get("authorization")?.to_str().ok()?;
        let rest = h.strip_prefix("AWS4-HMAC-SHA256 ")?;
        let part = |name: &str| {
            rest.split(',')
                .map(str::trim)
                .find_map(|p| p.strip_prefix(name))
                .map(str::to_string)
        };
        let credential = part("Credential=")?;
        let (key, scope) = credential.split_once('/')?;
        Some(Auth {
            key: key.to_string(),
            scope: scope.to_string(),
            signed_headers: part("SignedHeaders=")?
                .split(';')
                .map(str::to_string)
                .collect(),
            signature: part("Signature=")?,
        })
    }

    /// Whether `secret` made this request's signature (a `POST /`).
    fn signed_by(&self, secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
        let value = |h: &str| {
            headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        let canonical_headers: String = self
            .signed_headers
            .iter()
            .map(|h| format!("{h}:{}\n", value(h)))
            .collect();
        let payload = match value("x-amz-content-sha256") {
            p if !p.is_empty() => p,
            _ => hex(&Sha256::digest(body)),
        };
        let canonical = format!(
            "POST\n/\n\n{canonical_headers}\n{}\n{payload}",
            self.signed_headers.join(";")
        );
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{}\n{}",
            value("x-amz-date"),
            self.scope,
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let mut key = format!("AWS4{secret}").into_bytes();
        for part in self.scope.split('/') {
            key = hmac(&key, part.as_bytes());
        }
        hex(&hmac(&key, to_sign.as_bytes())) == self.signature
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
