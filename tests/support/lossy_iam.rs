//! A proxy in front of moto's IAM that loses the answer to the first
//! `CreateAccessKey`: the way a load balancer's 500 looks from the client,
//! once after IAM did the work, or before it reached IAM at all.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

/// Where the first `CreateAccessKey` is lost.
#[derive(Clone, Copy, Debug)]
pub enum Loss {
    /// IAM created the key; its answer never arrives.
    AfterIam,
    /// The request never reached IAM.
    BeforeIam,
}

struct Proxy {
    upstream: String,
    loss: Loss,
    lost: AtomicBool,
    actions: Mutex<Vec<String>>,
}

pub struct LossyIam {
    proxy: Arc<Proxy>,
    pub addr: SocketAddr,
}

impl LossyIam {
    pub fn start(upstream: &str, loss: Loss) -> LossyIam {
        let proxy = Arc::new(Proxy {
            upstream: upstream.to_string(),
            loss,
            lost: AtomicBool::new(false),
            actions: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .fallback(any(forward))
            .with_state(proxy.clone());
        let addr = super::serve_on_loopback(app);
        LossyIam { proxy, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The IAM actions requested through the proxy, in order.
    pub fn actions(&self) -> Vec<String> {
        self.proxy.actions.lock().unwrap().clone()
    }
}

const LOST: &str = "<html><body><h1>502 Bad Gateway</h1></body></html>";

async fn forward(
    State(proxy): State<Arc<Proxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let action = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    proxy.actions.lock().unwrap().push(action.clone());
    let lose = action == "CreateAccessKey" && !proxy.lost.swap(true, Ordering::SeqCst);
    if lose && matches!(proxy.loss, Loss::BeforeIam) {
        return (
            StatusCode::BAD_GATEWAY,
            [("content-type", "text/html")],
            LOST,
        )
            .into_response();
    }
    let answer = super::forward(&proxy.upstream, method, &uri, &headers, body).await;
    if lose {
        return (
            StatusCode::BAD_GATEWAY,
            [("content-type", "text/html")],
            LOST,
        )
            .into_response();
    }
    super::relay(answer).await
}
