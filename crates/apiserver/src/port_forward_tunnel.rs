//! `kubectl port-forward` from kubectl 1.31 on: SPDY/3.1 tunnelled through a
//! websocket (subprotocol `SPDY/3.1+portforward.k8s.io`, the SPDY bytes in
//! binary messages). As upstream's API server does, the websocket ends here
//! and the node agent is spoken to in plain SPDY — the bytes are the same,
//! only their framing differs.

use crate::handler::Body;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, frame::coding::CloseCode};

/// The websocket subprotocol of the tunnel.
pub const PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The stream protocol spoken inside SPDY.
const STREAM_PROTOCOL: &str = "portforward.k8s.io";
/// Bytes read from the agent per websocket message.
const READ_CHUNK: usize = 32 * 1024;

/// The client's websocket key when `headers` ask for the tunnel.
pub fn requested(headers: &HeaderMap) -> Option<String> {
    let upgrade = headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return None;
    }
    let offers = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == PROTOCOL);
    if !offers {
        return None;
    }
    headers.get(header::SEC_WEBSOCKET_KEY).and_then(|k| k.to_str().ok()).map(str::to_owned)
}

/// The upgrade headers of the SPDY request sent to the agent instead of the client's websocket ones.
pub fn agent_headers() -> [(header::HeaderName, HeaderValue); 3] {
    [
        (header::CONNECTION, HeaderValue::from_static("Upgrade")),
        (header::UPGRADE, HeaderValue::from_static("SPDY/3.1")),
        (header::HeaderName::from_static("x-stream-protocol-version"), HeaderValue::from_static(STREAM_PROTOCOL)),
    ]
}

/// The `101` that accepts the client's websocket with the tunnel subprotocol.
pub fn switching_protocols(key: &str) -> Response<Body> {
    let mut r = Response::new(http_body_util::Full::new(Bytes::new()).boxed_unsync());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(PROTOCOL));
    r
}

/// Carries the SPDY bytes between the client's websocket and the agent's
/// connection until either side ends; each end's close reaches the other.
pub async fn bridge(client: hyper::upgrade::Upgraded, agent: hyper::upgrade::Upgraded) {
    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(hyper_util::rt::TokioIo::new(client), Role::Server, None).await;
    let (mut ws_tx, mut ws_rx) = ws.split();
    let (mut agent_rd, mut agent_wr) = tokio::io::split(hyper_util::rt::TokioIo::new(agent));
    let up = async move {
        while let Some(msg) = ws_rx.next().await {
            match msg {
                Ok(Message::Binary(b)) => {
                    if agent_wr.write_all(&b).await.is_err() {
                        break;
                    }
                }
                Ok(Message::Close(_)) | Err(_) => break,
                // Pings are answered by the websocket layer; text is not part of the protocol.
                Ok(_) => {}
            }
        }
        let _ = agent_wr.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            match agent_rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if ws_tx.send(Message::binary(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = ws_tx.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))).await;
        let _ = ws_tx.close().await;
    };
    // Either side ending ends the tunnel: SPDY has no half-closed connection.
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_websocket_offering_the_tunnel_is_tunnelled() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(requested(&h), None);
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("portforward.k8s.io, SPDY/3.1+portforward.k8s.io"));
        assert_eq!(requested(&h).as_deref(), Some("dGhlIHNhbXBsZSBub25jZQ=="));
        h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert_eq!(requested(&h), None);
    }
}
