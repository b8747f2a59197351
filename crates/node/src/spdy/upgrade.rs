//! The HTTP/1.1 side of a SPDY/3.1 stream connection (apimachinery's
//! `httpstream.Handshake`): negotiate `X-Stream-Protocol-Version`, answer
//! `101 Switching Protocols`, then serve SPDY on the upgraded connection.

use super::Connection;
use crate::server::{Body, full as response};
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use std::future::Future;

/// Answers the upgrade request when the client offers `protocol`, then runs
/// `serve` on the SPDY connection; a client that offers other protocols gets
/// the kubelet's 403.
pub fn upgrade<F, Fut>(mut req: Request<Incoming>, protocol: &'static str, serve: F) -> Response<Body>
where
    F: FnOnce(Connection) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let offered: Vec<String> = req
        .headers()
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_owned()))
        .collect();
    if !offered.iter().any(|p| p == protocol) {
        return response(
            StatusCode::FORBIDDEN,
            format!("unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts [\"{protocol}\"]"),
        );
    }
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(&mut req).await else { return };
        serve(Connection::start(hyper_util::rt::TokioIo::new(upgraded))).await;
    });
    let mut r = response(StatusCode::SWITCHING_PROTOCOLS, String::new());
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert("x-stream-protocol-version", HeaderValue::from_static(protocol));
    r
}
