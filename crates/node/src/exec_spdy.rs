//! `kubectl exec` and `kubectl attach` over SPDY/3.1 (kubectl before 1.30,
//! and newer ones whose websocket upgrade fails): the `v4.channel.k8s.io`
//! stream protocol of the kubelet's remotecommand server — the client opens
//! one stream per `streamType` (error, stdin, stdout, stderr, resize), the
//! session starts once all it asked for are there, and the error stream ends
//! with a metav1.Status (carrying the exit code of an exec).

use crate::remote_command::{self, Input, Output, Session, Starter};
use crate::spdy::{Connection, Stream};
use crate::server::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use std::time::Duration;

/// The stream protocol served (the only one kubectl 1.27+ needs).
pub const PROTOCOL: &str = "v4.channel.k8s.io";
/// How long the client has to open the streams it asked for (kubelet's default).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The streams the client asked for.
pub struct Wanted {
    /// `stdin=true`.
    pub stdin: bool,
    /// `stdout=true`.
    pub stdout: bool,
    /// `stderr=true` without a tty.
    pub stderr: bool,
    /// `tty=true` (a resize stream comes).
    pub tty: bool,
}

/// Answers the upgrade request and serves the session `start` begins on the upgraded connection.
pub fn upgrade(req: Request<Incoming>, start: Starter, wanted: Wanted) -> Response<Body> {
    crate::spdy::upgrade::upgrade(req, PROTOCOL, move |conn| serve(conn, start, wanted))
}

/// The streams of one exec, by type.
#[derive(Default)]
struct Streams {
    error: Option<Stream>,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    resize: Option<Stream>,
}

impl Streams {
    fn complete(&self, wanted: &Wanted) -> bool {
        self.error.is_some()
            && (!wanted.stdin || self.stdin.is_some())
            && (!wanted.stdout || self.stdout.is_some())
            && (!wanted.stderr || self.stderr.is_some())
            && (!wanted.tty || self.resize.is_some())
    }
}

async fn gather(conn: &mut Connection, wanted: &Wanted) -> Option<Streams> {
    let mut s = Streams::default();
    let collect = async {
        while !s.complete(wanted) {
            let stream = conn.accept().await?;
            let slot = match stream.header("streamtype") {
                Some("error") => &mut s.error,
                Some("stdin") => &mut s.stdin,
                Some("stdout") => &mut s.stdout,
                Some("stderr") => &mut s.stderr,
                Some("resize") => &mut s.resize,
                other => {
                    tracing::debug!(stream_type = ?other, "ignoring an exec stream of unknown type");
                    continue;
                }
            };
            *slot = Some(stream);
        }
        Some(())
    };
    tokio::time::timeout(STREAM_CREATION_TIMEOUT, collect).await.ok().flatten()?;
    Some(s)
}

async fn serve(mut conn: Connection, start: Starter, wanted: Wanted) {
    let Some(mut streams) = gather(&mut conn, &wanted).await else {
        tracing::debug!("exec client did not open its streams in time");
        conn.close().await;
        return;
    };
    let (in_tx, mut out, status) = match start() {
        Ok(Session { output, input, status }) => (input, output, status),
        Err(status) => {
            if let Some(e) = streams.error.take() {
                let _ = e.writer.write(status.to_string().as_bytes()).await;
                let _ = e.writer.close().await;
            }
            conn.close().await;
            return;
        }
    };
    if let Some(mut s) = streams.stdin.take() {
        let tx = in_tx.clone();
        tokio::spawn(async move {
            while let Some(b) = s.data.recv().await {
                if tx.send(Input::Stdin(b)).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(Input::StdinEnd).await;
        });
    }
    if let Some(mut s) = streams.resize.take() {
        let tx = in_tx.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Some(b) = s.data.recv().await {
                buf.extend_from_slice(&b);
                while let Some(end) = buf.iter().position(|c| *c == b'\n') {
                    let line: Vec<u8> = buf.drain(..=end).collect();
                    if let Some(i) = remote_command::parse_resize(&line)
                        && tx.send(i).await.is_err()
                    {
                        return;
                    }
                }
            }
        });
    }
    let error = streams.error.take();
    while let Some(o) = out.recv().await {
        let (target, b) = match o {
            Output::Stdout(b) => (&streams.stdout, b),
            Output::Stderr(b) => (&streams.stderr, b),
        };
        if let Some(s) = target
            && s.writer.write(&b).await.is_err()
        {
            break;
        }
    }
    drop(in_tx);
    let status = status.await.unwrap_or_else(|e| remote_command::internal_error(&e.to_string()));
    if let Some(e) = error {
        let _ = e.writer.write(status.to_string().as_bytes()).await;
        let _ = e.writer.close().await;
    }
    for s in [&streams.stdout, &streams.stderr].into_iter().flatten() {
        let _ = s.writer.close().await;
    }
    conn.close().await;
}
