//! `kubectl exec` over SPDY/3.1 (kubectl before 1.30, and newer ones whose
//! websocket upgrade fails): the `v4.channel.k8s.io` stream protocol of the
//! kubelet's remotecommand server — the client opens one stream per
//! `streamType` (error, stdin, stdout, stderr, resize), the command starts
//! once all it asked for are there, and the error stream ends with a
//! metav1.Status carrying the exit code.

use crate::remote_command::{self, Input, Output, Spec};
use crate::spdy::{Connection, Stream};
use crate::spdy::upgrade::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use std::time::Duration;

/// The stream protocol served (the only one kubectl 1.27+ needs).
pub const PROTOCOL: &str = "v4.channel.k8s.io";
/// How long the client has to open the streams it asked for (kubelet's default).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The output streams the client asked for.
pub struct Wanted {
    /// `stdout=true`.
    pub stdout: bool,
    /// `stderr=true` without a tty.
    pub stderr: bool,
}

/// Answers the upgrade request and serves the exec on the upgraded connection.
pub fn upgrade(req: Request<Incoming>, spec: Spec, wanted: Wanted) -> Response<Body> {
    crate::spdy::upgrade::upgrade(req, PROTOCOL, move |conn| serve(conn, spec, wanted))
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
    fn complete(&self, spec: &Spec, wanted: &Wanted) -> bool {
        self.error.is_some()
            && (!spec.stdin || self.stdin.is_some())
            && (!wanted.stdout || self.stdout.is_some())
            && (!wanted.stderr || self.stderr.is_some())
            && (!spec.tty || self.resize.is_some())
    }
}

async fn gather(conn: &mut Connection, spec: &Spec, wanted: &Wanted) -> Option<Streams> {
    let mut s = Streams::default();
    let collect = async {
        while !s.complete(spec, wanted) {
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

async fn serve(mut conn: Connection, spec: Spec, wanted: Wanted) {
    let Some(mut streams) = gather(&mut conn, &spec, &wanted).await else {
        tracing::debug!("exec client did not open its streams in time");
        conn.close().await;
        return;
    };
    let command = spec.command.clone();
    let (in_tx, in_rx) = tokio::sync::mpsc::channel(32);
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
    let status = match remote_command::run(spec, in_rx) {
        Ok((mut out, task)) => {
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
            remote_command::exit_status(&command, task.await.unwrap_or(137))
        }
        Err(e) => remote_command::start_failure(&e),
    };
    if let Some(e) = error {
        let _ = e.writer.write(status.to_string().as_bytes()).await;
        let _ = e.writer.close().await;
    }
    for s in [&streams.stdout, &streams.stderr].into_iter().flatten() {
        let _ = s.writer.close().await;
    }
    conn.close().await;
}
