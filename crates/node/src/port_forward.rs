//! `kubectl port-forward` on the agent: the kubelet's `portforward.k8s.io`
//! protocol over SPDY/3.1. For every forwarded connection the client opens an
//! error stream and a data stream carrying the same `requestID` and `port`;
//! once both are there the agent connects to `localhost:PORT` inside the
//! pod's network namespace and copies bytes both ways, half-closing each
//! direction as it ends. A failed connect is reported on the error stream
//! with the kubelet's text.

use crate::server::Body;
use crate::spdy::{Connection, Stream};
use http::{Request, Response};
use hyper::body::Incoming;
use nix::sched::{CloneFlags, setns};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The stream protocol served.
pub const PROTOCOL: &str = "portforward.k8s.io";
/// How long the client has to open the second stream of a pair (kubelet's default).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connect to the pod's loopback may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the client's direction may keep going after the pod closed its
/// side (containerd gives the same second, as socat does).
const DRAIN_GRACE: Duration = Duration::from_secs(1);
/// Bytes read from the pod per data frame.
const READ_CHUNK: usize = 32 * 1024;

/// The pod whose ports are forwarded.
#[derive(Debug, Clone)]
pub struct Target {
    /// The sandbox's id in messages (the pod UID, as the CNI container id).
    pub sandbox: String,
    /// The network namespace to connect in (`/run/netns/…` or the pause process's).
    pub netns: PathBuf,
}

/// Why a connect inside the pod failed; the text is what the client sees.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The network namespace could not be opened or joined.
    #[error("failed to execute portforward in network namespace {netns:?}: {reason}")]
    Netns {
        /// The namespace path.
        netns: PathBuf,
        /// What failed.
        reason: String,
    },
    /// Nothing accepted the connection on either loopback address.
    #[error(
        "failed to execute portforward in network namespace {netns:?}: failed to connect to localhost:{port} inside namespace {sandbox:?}, IPv4: dial tcp4 127.0.0.1:{port}: {v4} IPv6 dial tcp6 [::1]:{port}: {v6} "
    )]
    Connect {
        /// The namespace path.
        netns: PathBuf,
        /// The sandbox id.
        sandbox: String,
        /// The port.
        port: u16,
        /// The IPv4 failure, Go-style (`connect: connection refused`).
        v4: String,
        /// The IPv6 failure.
        v6: String,
    },
    /// The connecting thread could not be started or vanished.
    #[error("failed to execute portforward in network namespace {netns:?}: {reason}")]
    Thread {
        /// The namespace path.
        netns: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// Answers the upgrade request and serves port forwarding to `target`.
pub fn upgrade(req: Request<Incoming>, target: Target) -> Response<Body> {
    crate::spdy::upgrade::upgrade(req, PROTOCOL, move |conn| serve(conn, Arc::new(target)))
}

/// The streams of one forwarded connection, gathered by `requestID`.
struct Pair {
    port: u16,
    error: Option<Stream>,
    data: Option<Stream>,
    since: Instant,
}

/// A stream's `port` header, validated as the kubelet does.
fn port_header(s: &Stream) -> Result<u16, String> {
    let text = s.header("port").ok_or_else(|| "\"port\" header is required".to_owned())?;
    let port: u16 = text.parse().map_err(|e| format!("unable to parse {text:?} as a port: {e}"))?;
    if port == 0 {
        return Err(format!("port {text:?} must be > 0"));
    }
    Ok(port)
}

/// Serves one SPDY connection until the client goes away; every forward it
/// started ends with it (their sockets close).
async fn serve(mut conn: Connection, target: Arc<Target>) {
    let mut pending: HashMap<String, Pair> = HashMap::new();
    let mut forwards = tokio::task::JoinSet::new();
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            stream = conn.accept() => {
                let Some(stream) = stream else { break };
                if let Some(pair) = add(&mut pending, stream).await {
                    forwards.spawn(forward(pair, target.clone()));
                }
            }
            Some(_) = forwards.join_next(), if !forwards.is_empty() => {}
            _ = sweep.tick() => {
                let expired: Vec<String> = pending.iter().filter(|(_, p)| p.since.elapsed() > STREAM_CREATION_TIMEOUT).map(|(k, _)| k.clone()).collect();
                for id in expired {
                    if let Some(p) = pending.remove(&id) {
                        tracing::debug!(request = %id, "port-forward streams not complete in time");
                        if let Some(e) = &p.error {
                            let _ = e.writer.write(b"timed out waiting for streams").await;
                            let _ = e.writer.close().await;
                        }
                        if let Some(d) = &p.data {
                            let _ = d.writer.reset().await;
                        }
                    }
                }
            }
        }
    }
    forwards.abort_all();
    while forwards.join_next().await.is_some() {}
    conn.close().await;
}

/// Files `stream` under its request; returns the pair once it is complete.
async fn add(pending: &mut HashMap<String, Pair>, stream: Stream) -> Option<(u16, Stream, Stream)> {
    let port = match port_header(&stream) {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(error = %e, "refusing a port-forward stream");
            let _ = stream.writer.reset().await;
            return None;
        }
    };
    // Clients before requestID existed paired streams by creation order; every
    // kubectl this serves sends the header.
    let id = stream.header("requestid").unwrap_or("").to_owned();
    let pair = pending.entry(id.clone()).or_insert_with(|| Pair { port, error: None, data: None, since: Instant::now() });
    let slot = match stream.header("streamtype") {
        Some("error") => &mut pair.error,
        Some("data") => &mut pair.data,
        other => {
            tracing::debug!(stream_type = ?other, "refusing a port-forward stream of unknown type");
            let _ = stream.writer.reset().await;
            return None;
        }
    };
    if slot.is_some() {
        let kind = stream.header("streamtype").unwrap_or("");
        let msg = format!("error processing stream for request {id}: {kind} stream already assigned");
        tracing::debug!("{msg}");
        if let Some(e) = &pair.error {
            let _ = e.writer.write(msg.as_bytes()).await;
        }
        let _ = stream.writer.reset().await;
        return None;
    }
    *slot = Some(stream);
    if pair.error.is_some() && pair.data.is_some() {
        let p = pending.remove(&id)?;
        return Some((p.port, p.error?, p.data?));
    }
    None
}

/// Forwards one connection; both streams are closed when it ends.
async fn forward((port, error, data): (u16, Stream, Stream), target: Arc<Target>) {
    match connect(&target, port).await {
        Ok(tcp) => copy(tcp, data.data, &data.writer).await,
        Err(e) => {
            let msg = format!("error forwarding port {port} to pod {}, uid : {e}", target.sandbox);
            tracing::info!("{msg}");
            let _ = error.writer.write(msg.as_bytes()).await;
            let _ = data.writer.close().await;
        }
    }
    let _ = error.writer.close().await;
}

/// Copies between the pod's socket and the data stream: the client's FIN
/// half-closes the socket, the pod's EOF ends the stream with FIN.
async fn copy(tcp: tokio::net::TcpStream, mut from_client: tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>, to_client: &crate::spdy::StreamWriter) {
    let (mut rd, mut wr) = tcp.into_split();
    let inbound = async move {
        while let Some(b) = from_client.recv().await {
            if wr.write_all(&b).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    };
    let outbound = async move {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_client.write(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = to_client.close().await;
    };
    tokio::pin!(inbound, outbound);
    tokio::select! {
        () = &mut outbound => { let _ = tokio::time::timeout(DRAIN_GRACE, &mut inbound).await; }
        () = &mut inbound => outbound.await,
    }
}

/// Connects to `localhost:port` inside the pod: a short-lived thread joins the
/// pod's network namespace (namespaces are per thread), connects, and hands
/// the socket back; the socket stays in the pod's namespace.
async fn connect(target: &Target, port: u16) -> Result<tokio::net::TcpStream, ForwardError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let t = target.clone();
    let thread_error = |reason: String| ForwardError::Thread { netns: target.netns.clone(), reason };
    std::thread::Builder::new()
        .name("portforward-connect".into())
        .spawn(move || {
            let _ = tx.send(connect_in_namespace(&t, port));
        })
        .map_err(|e| thread_error(format!("starting a thread: {e}")))?;
    let stream = rx.await.map_err(|_| thread_error("the connecting thread ended without an answer".into()))??;
    stream.set_nonblocking(true).map_err(|e| thread_error(e.to_string()))?;
    tokio::net::TcpStream::from_std(stream).map_err(|e| thread_error(e.to_string()))
}

fn connect_in_namespace(target: &Target, port: u16) -> Result<std::net::TcpStream, ForwardError> {
    let netns_error = |reason: String| ForwardError::Netns { netns: target.netns.clone(), reason };
    let f = std::fs::File::open(&target.netns).map_err(|e| netns_error(e.to_string()))?;
    setns(&f, CloneFlags::CLONE_NEWNET).map_err(|e| netns_error(format!("setns: {}", e.desc())))?;
    let v4 = match std::net::TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), CONNECT_TIMEOUT) {
        Ok(s) => return Ok(s),
        Err(e) => go_dial_error(&e),
    };
    match std::net::TcpStream::connect_timeout(&SocketAddr::from((Ipv6Addr::LOCALHOST, port)), CONNECT_TIMEOUT) {
        Ok(s) => Ok(s),
        Err(e) => Err(ForwardError::Connect { netns: target.netns.clone(), sandbox: target.sandbox.clone(), port, v4, v6: go_dial_error(&e) }),
    }
}

/// An OS error as Go's net package prints it after the address.
fn go_dial_error(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::TimedOut {
        return "i/o timeout".into();
    }
    match e.raw_os_error() {
        Some(code) => format!("connect: {}", nix::errno::Errno::from_raw(code).desc().to_lowercase()),
        None => format!("connect: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connect_reads_like_containerd() {
        let e = ForwardError::Connect {
            netns: "/run/netns/p1".into(),
            sandbox: "uid-1".into(),
            port: 9999,
            v4: go_dial_error(&std::io::Error::from_raw_os_error(111)),
            v6: go_dial_error(&std::io::Error::from_raw_os_error(111)),
        };
        assert_eq!(
            e.to_string(),
            "failed to execute portforward in network namespace \"/run/netns/p1\": failed to connect to localhost:9999 inside namespace \"uid-1\", IPv4: dial tcp4 127.0.0.1:9999: connect: connection refused IPv6 dial tcp6 [::1]:9999: connect: connection refused "
        );
    }
}
