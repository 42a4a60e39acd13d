//! Accepting connections for `quench serve`, within limits: a client gets a
//! few seconds to send its headers and its body, at most so many
//! connections are open at once, and a body may be as large as Slack's
//! payloads and no larger. A client that sends a request slowly, or never
//! finishes one, cannot hold the server.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// How long a client has to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client has to send a request's body, once its headers came.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest body taken: Slack's commands and clicks are a few KB, a
/// click on a long message tens of KB.
pub const MAX_BODY: usize = 64 * 1024;
/// Connections open at once; one more is closed as soon as it is accepted.
pub const MAX_CONNECTIONS: usize = 256;
/// How long, once told to stop, connections in flight get to finish.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` says to stop, then waits
/// (a while) for the connections in flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    mut shutdown: watch::Receiver<Option<String>>,
) -> std::io::Result<()> {
    let app = app.layer(axum::middleware::from_fn(read_body));
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let stream = tokio::select! {
            // Told to stop: no new connection is taken.
            _ = shutdown.wait_for(|s| s.is_some()) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors, a connection reset before it
                // was taken: the listener is still good.
                Err(e) => {
                    tracing::warn!("failed to accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            // Reap finished connections as they end.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!("{MAX_CONNECTIONS} connections are open: one more was closed");
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        connections.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!("a connection ended: {e}");
            }
            drop(permit);
        });
    }
    let _ = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// Reads a request's whole body before any handler sees it: within
/// [`BODY_TIMEOUT`] (408 otherwise) and [`MAX_BODY`] (413 otherwise), so
/// that nothing is buffered without bound before its signature is checked.
async fn read_body(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await;
    match read {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => StatusCode::PAYLOAD_TOO_LARGE.into_response(),
        Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
    }
}
