//! The agent's own HTTP API (the kubelet API the API server proxies to):
//! `/containerLogs/{ns}/{pod}/{container}`, `/exec/{ns}/{pod}/{container}` and
//! `/attach/{ns}/{pod}/{container}` (websocket `v5.channel.k8s.io`/`v4.channel.k8s.io`,
//! or SPDY/3.1 for kubectl before 1.30), `/portForward/{ns}/{pod}` (SPDY/3.1
//! `portforward.k8s.io`) and `/healthz`.
//! Every request but `/healthz` must carry the bearer token this agent
//! published in its Node's annotations.

use crate::agent::PodIndex;
use crate::host::Host;
use crate::remote_command;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// The response body of the agent's HTTP API.
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// A response of `status` with a plain-text body.
pub fn full(status: StatusCode, text: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(text.into()).map_err(|never: Infallible| match never {}).boxed());
    *r.status_mut() = status;
    r
}

struct Ctx {
    token: String,
    host: Arc<Host>,
    index: PodIndex,
}

/// Starts the server; the returned task serves until aborted.
pub async fn serve(addr: SocketAddr, token: String, host: Arc<Host>, index: PodIndex) -> Result<tokio::task::JoinHandle<()>, crate::agent::Error> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| crate::agent::Error::Listen { addr, source })?;
    let ctx = Arc::new(Ctx { token, host, index });
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let ctx = ctx.clone();
                    async move { Ok::<_, Infallible>(handle(ctx, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), svc).with_upgrades().await;
            });
        }
    }))
}

fn query(req: &Request<Incoming>) -> Vec<(String, String)> {
    portico_netexec::netexec::parse_query_all(req.uri().query().unwrap_or(""))
}

async fn handle(ctx: Arc<Ctx>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if path == "/healthz" {
        return full(StatusCode::OK, "ok");
    }
    let auth = req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    if auth.strip_prefix("Bearer ") != Some(ctx.token.as_str()) {
        return full(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["containerLogs", ns, pod, container] => logs(&ctx, ns, pod, container, &query(&req)).await,
        ["portForward", ns, pod] | ["portForward", ns, pod, _] => {
            let (ns, pod) = (ns.to_string(), pod.to_string());
            port_forward(&ctx, req, &ns, &pod)
        }
        ["attach", ns, pod, container] => attach(&ctx, req, ns, pod, container),
        ["exec", ns, pod, container] => {
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            exec(ctx, req, ns, pod, container).await
        }
        _ => full(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

fn last_value<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn truthy(q: &[(String, String)], key: &str) -> bool {
    matches!(last_value(q, key), Some("true" | "1" | "True"))
}

/// The log files of a container, oldest run first.
fn runs(host: &Host, uid: &str, container: &str) -> Vec<std::path::PathBuf> {
    let dir = host.pod_dir(uid).join("logs").join(container);
    let mut files: Vec<(i32, std::path::PathBuf)> = std::fs::read_dir(&dir)
        .map(|rd| rd.flatten().filter_map(|e| Some((e.file_name().to_str()?.strip_suffix(".log")?.parse().ok()?, e.path()))).collect())
        .unwrap_or_default();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

fn tail(data: &[u8], lines: usize) -> &[u8] {
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut count = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            count += 1;
            if count == lines {
                return &data[i + 1..];
            }
        }
    }
    if lines == 0 { &data[data.len()..] } else { data }
}

async fn logs(ctx: &Ctx, ns: &str, pod: &str, container: &str, q: &[(String, String)]) -> Response<Body> {
    let Some(uid) = ctx.index.uid(ns, pod) else { return full(StatusCode::NOT_FOUND, format!("pod {ns}/{pod} is not running on this node")) };
    let files = runs(&ctx.host, &uid, container);
    let previous = truthy(q, "previous");
    let file = if previous { files.len().checked_sub(2).and_then(|i| files.get(i)) } else { files.last() };
    let Some(file) = file.cloned() else {
        let msg = if previous {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating")
        };
        return full(StatusCode::BAD_REQUEST, msg);
    };
    let data = tokio::fs::read(&file).await.unwrap_or_default();
    let mut start = match last_value(q, "tailLines").and_then(|t| t.parse::<usize>().ok()) {
        Some(n) => data.len() - tail(&data, n).len(),
        None => 0,
    };
    if let Some(limit) = last_value(q, "limitBytes").and_then(|l| l.parse::<usize>().ok()) {
        let end = (start + limit).min(data.len());
        return full(StatusCode::OK, Bytes::copy_from_slice(&data[start..end]));
    }
    if !truthy(q, "follow") || previous {
        return full(StatusCode::OK, Bytes::copy_from_slice(&data[start..]));
    }
    // Follow: stream what is there, then poll the file for more until the container's run ends.
    let first = Bytes::copy_from_slice(&data[start..]);
    start = data.len();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
    let host = ctx.host.clone();
    let (uid, container) = (uid.clone(), container.to_owned());
    tokio::spawn(async move {
        if !first.is_empty() && tx.send(Ok(Frame::data(first))).await.is_err() {
            return;
        }
        let mut pos = start as u64;
        loop {
            let mut buf = Vec::new();
            if let Ok(mut f) = tokio::fs::File::open(&file).await
                && f.seek(std::io::SeekFrom::Start(pos)).await.is_ok() {
                    let _ = f.read_to_end(&mut buf).await;
                }
            if !buf.is_empty() {
                pos += buf.len() as u64;
                if tx.send(Ok(Frame::data(Bytes::from(buf)))).await.is_err() {
                    return;
                }
            } else if tx.is_closed() || runs(&host, &uid, &container).last() != Some(&file) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let stream = tokio_stream_from(rx);
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    r
}

fn tokio_stream_from<T: Send + 'static>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The UID and sandbox record of a pod running here, or the response saying why not.
fn sandbox(ctx: &Ctx, ns: &str, pod: &str) -> Result<(String, crate::sandbox::Record), Box<Response<Body>>> {
    let Some(uid) = ctx.index.uid(ns, pod) else { return Err(Box::new(full(StatusCode::NOT_FOUND, format!("pod {ns}/{pod} is not running on this node")))) };
    let record: Option<crate::sandbox::Record> = std::fs::read(ctx.host.pod_dir(&uid).join("sandbox.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let Some(record) = record.filter(|r| r.pause_pid > 0) else { return Err(Box::new(full(StatusCode::BAD_REQUEST, format!("pod {pod} has no running sandbox")))) };
    Ok((uid, record))
}

fn port_forward(ctx: &Ctx, req: Request<Incoming>, ns: &str, pod: &str) -> Response<Body> {
    let (uid, record) = match sandbox(ctx, ns, pod) {
        Ok(found) => found,
        Err(r) => return *r,
    };
    let upgrade = req.headers().get(http::header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if !upgrade.starts_with("spdy/") {
        return full(StatusCode::BAD_REQUEST, "port forwarding needs a SPDY/3.1 upgrade with protocol portforward.k8s.io");
    }
    // hostNetwork pods have no namespace of their own: the pause process's is the host's.
    let netns = match record.netns.as_str() {
        "" => std::path::PathBuf::from(format!("/proc/{}/ns/net", record.pause_pid)),
        name => std::path::Path::new("/run/netns").join(name),
    };
    crate::port_forward::upgrade(req, crate::port_forward::Target { sandbox: uid, netns })
}

async fn exec(ctx: Arc<Ctx>, req: Request<Incoming>, ns: String, pod: String, container: String) -> Response<Body> {
    let q = query(&req);
    let command: Vec<String> = q.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect();
    if command.is_empty() {
        return full(StatusCode::BAD_REQUEST, "you must specify at least one command for the container");
    }
    let (uid, record) = match sandbox(&ctx, &ns, &pod) {
        Ok(found) => found,
        Err(r) => return *r,
    };
    let env: Vec<(String, String)> = std::fs::read(ctx.host.pod_dir(&uid).join("env").join(format!("{container}.json")))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if env.is_empty() {
        return full(StatusCode::BAD_REQUEST, format!("container {container} is not valid for pod {pod}"));
    }
    let wanted = wanted(&q);
    let spec = remote_command::Spec { exe: ctx.host.exe.clone(), pause: record.pause_pid, env, command, stdin: wanted.stdin, tty: wanted.tty };
    serve_session(req, Box::new(move || remote_command::exec_session(spec)), wanted)
}

/// `kubectl attach` (and `kubectl run -i/-it`): a session on a running
/// container's own stdin and output.
fn attach(ctx: &Ctx, req: Request<Incoming>, ns: &str, pod: &str, container: &str) -> Response<Body> {
    let q = query(&req);
    let Some(uid) = ctx.index.uid(ns, pod) else { return full(StatusCode::NOT_FOUND, format!("pod {ns}/{pod} is not running on this node")) };
    let target = match ctx.host.attach.get(&uid, container, pod) {
        Ok(a) => a,
        Err(e) => return full(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let wanted = wanted(&q);
    let stdin = wanted.stdin;
    serve_session(req, Box::new(move || Ok(target.session(stdin))), wanted)
}

/// The streams a remote command request asks for (`stderr` is merged into the terminal with `tty`).
fn wanted(q: &[(String, String)]) -> crate::exec_spdy::Wanted {
    let tty = truthy(q, "tty");
    crate::exec_spdy::Wanted { stdin: truthy(q, "stdin"), stdout: truthy(q, "stdout"), stderr: truthy(q, "stderr") && !tty, tty }
}

/// Serves a session over the transport the client asked for: SPDY/3.1 or a websocket.
fn serve_session(req: Request<Incoming>, start: remote_command::Starter, wanted: crate::exec_spdy::Wanted) -> Response<Body> {
    let upgrade = req.headers().get(http::header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if upgrade.starts_with("spdy/") {
        return crate::exec_spdy::upgrade(req, start, wanted);
    }
    crate::exec_ws::upgrade(req, start, wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_lines_like_the_kubelet() {
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc\n", 5), b"a\nb\nc\n");
        assert_eq!(tail(b"a\nb\nc", 1), b"c");
    }
}
