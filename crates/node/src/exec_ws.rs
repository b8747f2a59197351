//! `kubectl exec` and `kubectl attach` over a websocket (kubectl 1.30+):
//! subprotocol `v5.channel.k8s.io` or `v4.channel.k8s.io`, every message one
//! channel byte (stdin, stdout, stderr, error, resize; v5 adds close) and its
//! payload; the error channel ends the session with a metav1.Status.

use crate::exec_spdy::Wanted;
use crate::remote_command::{self, Session, Starter};
use crate::server::{Body, full};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

/// Channel numbers of the remote command protocol.
mod channel {
    pub const STDIN: u8 = 0;
    pub const STDOUT: u8 = 1;
    pub const STDERR: u8 = 2;
    pub const ERROR: u8 = 3;
    pub const RESIZE: u8 = 4;
    pub const CLOSE: u8 = 255;
}

/// Answers the websocket upgrade and serves the session `start` begins on it.
pub fn upgrade(mut req: Request<Incoming>, start: Starter, wanted: Wanted) -> Response<Body> {
    let protocols: Vec<String> = req
        .headers()
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_owned()))
        .collect();
    let Some(protocol) = ["v5.channel.k8s.io", "v4.channel.k8s.io"].into_iter().find(|p| protocols.iter().any(|x| x == p)) else {
        return full(StatusCode::BAD_REQUEST, "exec needs a websocket upgrade with subprotocol v5.channel.k8s.io or v4.channel.k8s.io, or SPDY/3.1");
    };
    let Some(key) = req.headers().get(http::header::SEC_WEBSOCKET_KEY).and_then(|k| k.to_str().ok()).map(str::to_owned) else {
        return full(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    let v5 = protocol.starts_with("v5");
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(&mut req).await else { return };
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(hyper_util::rt::TokioIo::new(upgraded), Role::Server, None).await;
        run(ws, start, wanted, v5).await;
    });
    let mut r = full(StatusCode::SWITCHING_PROTOCOLS, Bytes::new());
    let h = r.headers_mut();
    h.insert(http::header::CONNECTION, http::HeaderValue::from_static("Upgrade"));
    h.insert(http::header::UPGRADE, http::HeaderValue::from_static("websocket"));
    if let Ok(v) = http::HeaderValue::from_str(&tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes())) {
        h.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    h.insert(http::header::SEC_WEBSOCKET_PROTOCOL, http::HeaderValue::from_static(protocol));
    r
}

async fn run<S>(ws: tokio_tungstenite::WebSocketStream<S>, start: Starter, wanted: Wanted, v5: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut source) = ws.split();
    let (stdout, stderr) = (wanted.stdout, wanted.stderr);
    let (in_tx, mut out_rx, status) = match start() {
        Ok(Session { output, input, status }) => (input, output, status),
        Err(status) => {
            let mut m = vec![channel::ERROR];
            m.extend_from_slice(status.to_string().as_bytes());
            let _ = sink.send(Message::binary(m)).await;
            let _ = sink.send(normal_close()).await;
            let _ = sink.close().await;
            return;
        }
    };
    let mut in_tx = Some(in_tx);
    loop {
        tokio::select! {
            msg = out_rx.recv() => match msg {
                Some(remote_command::Output::Stdout(b)) if stdout => {
                    let mut m = vec![channel::STDOUT];
                    m.extend_from_slice(&b);
                    if sink.send(Message::binary(m)).await.is_err() { break; }
                }
                Some(remote_command::Output::Stderr(b)) if stderr => {
                    let mut m = vec![channel::STDERR];
                    m.extend_from_slice(&b);
                    if sink.send(Message::binary(m)).await.is_err() { break; }
                }
                Some(_) => {}
                None => break,
            },
            incoming = source.next(), if in_tx.is_some() => match incoming {
                Some(Ok(Message::Binary(data))) => {
                    let input = match data.first().copied() {
                        Some(channel::STDIN) => Some(remote_command::Input::Stdin(data.slice(1..))),
                        Some(channel::RESIZE) => remote_command::parse_resize(&data[1..]),
                        Some(channel::CLOSE) if v5 && data.get(1) == Some(&channel::STDIN) => Some(remote_command::Input::StdinEnd),
                        _ => None,
                    };
                    if let (Some(i), Some(tx)) = (input, in_tx.as_ref()) {
                        let _ = tx.send(i).await;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => { in_tx = None; }
                _ => {}
            },
        }
    }
    let status = status.await.unwrap_or_else(|e| remote_command::internal_error(&e.to_string()));
    drop(in_tx);
    let mut m = vec![channel::ERROR];
    m.extend_from_slice(status.to_string().as_bytes());
    let _ = sink.send(Message::binary(m)).await;
    let _ = sink.send(normal_close()).await;
    let _ = sink.close().await;
}

/// A close frame with status 1000: the client reads it as the end of every stream.
fn normal_close() -> Message {
    use tokio_tungstenite::tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};
    Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))
}

