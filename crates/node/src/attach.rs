//! `kubectl attach` (and `kubectl run -i/-it`) targets. Containers started
//! with `stdin: true` or `tty: true`: the agent keeps their stdin pipe or pty
//! master, writes what they print to the container's log file (so `kubectl
//! logs` still works) and hands a copy to every attached client; `stdinOnce`
//! closes the container's stdin when the first attached client that sent it
//! detaches. Other containers write straight to their log file: an attached
//! client is sent what is appended to it (all as stdout) until the process
//! exits.

use crate::remote_command::{Input, Output, Session};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, watch};

/// How many output chunks an attached client may fall behind before it skips some.
const OUTPUT_BACKLOG: usize = 256;
/// How many stdin operations may wait for the container.
const STDIN_QUEUE: usize = 32;
/// How many output chunks may wait for one slow client.
const SESSION_QUEUE: usize = 32;

/// What is done to the container's stdin.
#[derive(Debug)]
enum StdinOp {
    Data(Bytes),
    Close,
    Resize { width: u16, height: u16 },
}

/// One running container's streams.
pub struct Attachable {
    /// The process, so a restart's exit does not end the next run's entry.
    pid: u32,
    kind: Kind,
}

enum Kind {
    /// Started with stdin or a tty: the agent holds its streams.
    Kept {
        output: broadcast::Sender<Output>,
        stdin: mpsc::Sender<StdinOp>,
        /// True once everything the process printed has been sent.
        done: watch::Receiver<bool>,
        stdin_once: bool,
    },
    /// Writing to its log file directly.
    Logged {
        log: std::path::PathBuf,
        /// True once the process has exited.
        exited: watch::Sender<bool>,
    },
}

/// How often an attached client of a log-writing container is sent what was appended.
const LOG_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Pod UID and container name.
type Key = (String, String);

/// The attachable containers of this agent, by pod UID and container name.
#[derive(Default, Clone)]
pub struct Registry {
    inner: Arc<Mutex<HashMap<Key, Arc<Attachable>>>>,
}

/// Why a container cannot be attached to.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// It has not been started here.
    #[error("container {container} not found in pod {pod}")]
    NotFound {
        /// The container.
        container: String,
        /// The pod.
        pod: String,
    },
    /// Its process has ended.
    #[error("container {container} in pod {pod} is not running")]
    NotRunning {
        /// The container.
        container: String,
        /// The pod.
        pod: String,
    },
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("containers", &self.inner.lock().len()).finish()
    }
}

impl Registry {
    /// The streams of a running container.
    pub fn get(&self, uid: &str, container: &str, pod: &str) -> Result<Arc<Attachable>, AttachError> {
        let found = self.inner.lock().get(&(uid.to_owned(), container.to_owned())).cloned();
        let a = found.ok_or_else(|| AttachError::NotFound { container: container.to_owned(), pod: pod.to_owned() })?;
        let ended = match &a.kind {
            Kind::Kept { done, .. } => *done.borrow(),
            Kind::Logged { exited, .. } => *exited.borrow(),
        };
        if ended {
            return Err(AttachError::NotRunning { container: container.to_owned(), pod: pod.to_owned() });
        }
        Ok(a)
    }

    /// Registers a container that writes to `log` itself.
    pub fn insert_logged(&self, uid: &str, container: &str, pid: u32, log: std::path::PathBuf) {
        let (exited, _) = watch::channel(false);
        self.insert(uid, container, Arc::new(Attachable { pid, kind: Kind::Logged { log, exited } }));
    }

    /// Process `pid` of a container has exited: its attached clients get the
    /// rest of its log and end.
    pub fn exited(&self, uid: &str, container: &str, pid: u32) {
        if let Some(a) = self.inner.lock().get(&(uid.to_owned(), container.to_owned()))
            && a.pid == pid
            && let Kind::Logged { exited, .. } = &a.kind
        {
            exited.send_replace(true);
        }
    }

    /// Forgets every container of a pod.
    pub fn remove_pod(&self, uid: &str) {
        self.inner.lock().retain(|(u, _), _| u != uid);
    }

    fn insert(&self, uid: &str, container: &str, a: Arc<Attachable>) {
        self.inner.lock().insert((uid.to_owned(), container.to_owned()), a);
    }
}

/// Starts `cmd` (a `sandbox-exec`, with `--tty` when `tty`) with its stdin kept
/// and its output going to `log` and to attached clients; registers it.
pub fn spawn(registry: &Registry, uid: &str, container: &str, mut cmd: tokio::process::Command, log: std::fs::File, tty: bool, stdin_once: bool) -> std::io::Result<tokio::process::Child> {
    let (output, _) = broadcast::channel(OUTPUT_BACKLOG);
    let (stdin_tx, stdin_rx) = mpsc::channel(STDIN_QUEUE);
    let (done_tx, done) = watch::channel(false);
    let log = tokio::fs::File::from_std(log);
    let (child, sources, writer, master): (_, Vec<Source>, Box<dyn AsyncWrite + Unpin + Send>, Option<OwnedFd>) = if tty {
        let pty = nix::pty::openpty(None, None).map_err(std::io::Error::from)?;
        crate::remote_command::set_size(&pty.master, 80, 24);
        cmd.stdin(Stdio::from(pty.slave.try_clone()?)).stdout(Stdio::from(pty.slave.try_clone()?)).stderr(Stdio::from(pty.slave));
        let child = cmd.spawn()?;
        // The Command holds copies of the slave; without them the master sees the end when the process goes.
        drop(cmd);
        let read = tokio::fs::File::from_std(std::fs::File::from(pty.master.try_clone()?));
        let write = tokio::fs::File::from_std(std::fs::File::from(pty.master.try_clone()?));
        (child, vec![(Box::new(read), false)], Box::new(write), Some(pty.master))
    } else {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let missing = || std::io::Error::other("the container's pipes were not created");
        let out = child.stdout.take().ok_or_else(missing)?;
        let err = child.stderr.take().ok_or_else(missing)?;
        let input = child.stdin.take().ok_or_else(missing)?;
        (child, vec![(Box::new(out), false), (Box::new(err), true)], Box::new(input), None)
    };
    tokio::spawn(write_stdin(stdin_rx, writer, master));
    tokio::spawn(pump(sources, log, output.clone(), done_tx));
    let pid = child.id().unwrap_or(0);
    registry.insert(uid, container, Arc::new(Attachable { pid, kind: Kind::Kept { output, stdin: stdin_tx, done, stdin_once } }));
    Ok(child)
}

/// One output of the process, and whether it is stderr.
type Source = (Box<dyn AsyncRead + Unpin + Send>, bool);

/// Copies every output of the process to the log file and to attached clients.
async fn pump(sources: Vec<Source>, log: tokio::fs::File, output: broadcast::Sender<Output>, done: watch::Sender<bool>) {
    let log = Arc::new(tokio::sync::Mutex::new(log));
    let mut readers = tokio::task::JoinSet::new();
    for (mut r, is_stderr) in sources {
        let (log, output) = (log.clone(), output.clone());
        readers.spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            // A pty master reads EIO once the last slave is closed: that is its end.
            while let Ok(n @ 1..) = r.read(&mut buf).await {
                let chunk = Bytes::copy_from_slice(&buf[..n]);
                {
                    let mut f = log.lock().await;
                    let _ = f.write_all(&chunk).await;
                    let _ = f.flush().await;
                }
                // No one attached is not an error.
                let _ = output.send(if is_stderr { Output::Stderr(chunk) } else { Output::Stdout(chunk) });
            }
        });
    }
    while readers.join_next().await.is_some() {}
    let _ = done.send(true);
}

async fn write_stdin(mut ops: mpsc::Receiver<StdinOp>, writer: Box<dyn AsyncWrite + Unpin + Send>, master: Option<OwnedFd>) {
    let mut writer = Some(writer);
    while let Some(op) = ops.recv().await {
        match op {
            StdinOp::Data(b) => {
                if let Some(w) = writer.as_mut()
                    && (w.write_all(&b).await.is_err() || w.flush().await.is_err())
                {
                    writer = None;
                }
            }
            StdinOp::Close => match (&master, writer.as_mut()) {
                // A terminal cannot be half-closed: end of input is the EOF character (^D).
                (Some(_), Some(w)) => {
                    let _ = w.write_all(&[4]).await;
                    let _ = w.flush().await;
                }
                _ => writer = None,
            },
            StdinOp::Resize { width, height } => {
                if let Some(m) = &master {
                    crate::remote_command::set_size(m, width, height);
                }
            }
        }
    }
}

/// Resolves once the process's output has all been sent.
async fn finished(done: &mut watch::Receiver<bool>) {
    let _ = done.wait_for(|d| *d).await.map(|_| ());
}

impl Attachable {
    /// Attaches a client: it gets what the container prints from now on and,
    /// with `stdin`, writes to its stdin. The session ends when the process's
    /// output ends (status Success, as the kubelet reports) or the client goes.
    pub fn session(self: &Arc<Self>, stdin: bool) -> Session {
        let (out_tx, out_rx) = mpsc::channel(SESSION_QUEUE);
        let (in_tx, in_rx) = mpsc::channel::<Input>(STDIN_QUEUE);
        let status = match &self.kind {
            Kind::Kept { output, stdin: to_stdin, done, stdin_once } => {
                let kept = KeptSession { output: output.subscribe(), stdin: to_stdin.clone(), done: done.clone(), stdin_once: *stdin_once && stdin, send_stdin: stdin };
                tokio::spawn(kept.run(in_rx, out_tx))
            }
            Kind::Logged { log, exited } => {
                // Where "from now on" starts: taken here, not when the task first runs.
                let from = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
                tokio::spawn(follow_log(log.clone(), from, exited.subscribe(), in_rx, out_tx))
            }
        };
        Session { output: out_rx, input: in_tx, status }
    }
}

/// One client attached to a container whose streams the agent holds.
struct KeptSession {
    output: broadcast::Receiver<Output>,
    stdin: mpsc::Sender<StdinOp>,
    done: watch::Receiver<bool>,
    /// Whether this session's end closes the container's stdin.
    stdin_once: bool,
    send_stdin: bool,
}

impl KeptSession {
    async fn run(mut self, mut input: mpsc::Receiver<Input>, out: mpsc::Sender<Output>) -> serde_json::Value {
        let mut stdin_closed = false;
        loop {
            tokio::select! {
                o = self.output.recv() => match o {
                    Ok(o) => {
                        if out.send(o).await.is_err() {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => tracing::debug!(skipped = n, "an attached client fell behind"),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                () = finished(&mut self.done) => {
                    // Everything printed was sent before `done`: hand over what is still queued.
                    while let Ok(o) = self.output.try_recv() {
                        if out.send(o).await.is_err() {
                            break;
                        }
                    }
                    break;
                }
                i = input.recv() => match i {
                    Some(Input::Stdin(b)) if self.send_stdin => {
                        let _ = self.stdin.send(StdinOp::Data(b)).await;
                    }
                    Some(Input::StdinEnd) => self.close_stdin(&mut stdin_closed),
                    Some(Input::Resize { width, height }) => {
                        let _ = self.stdin.send(StdinOp::Resize { width, height }).await;
                    }
                    Some(Input::Stdin(_)) => {}
                    None => {
                        self.close_stdin(&mut stdin_closed);
                        break;
                    }
                },
            }
        }
        success()
    }

    fn close_stdin(&self, closed: &mut bool) {
        if self.stdin_once && !*closed {
            *closed = true;
            let _ = self.stdin.try_send(StdinOp::Close);
        }
    }
}

fn success() -> serde_json::Value {
    serde_json::json!({"metadata": {}, "status": "Success"})
}

/// Sends what is appended to `log` after byte `pos` until the process has exited
/// (then the rest) or the client goes; input is dropped: there is no stdin.
async fn follow_log(log: std::path::PathBuf, mut pos: u64, mut exited: watch::Receiver<bool>, mut input: mpsc::Receiver<Input>, out: mpsc::Sender<Output>) -> serde_json::Value {
    let mut tick = tokio::time::interval(LOG_POLL);
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            r = exited.wait_for(|e| *e) => { drop(r); true }
            i = input.recv() => match i {
                Some(_) => continue,
                None => return success(),
            },
        };
        let mut buf = Vec::new();
        if let Ok(mut f) = tokio::fs::File::open(&log).await
            && tokio::io::AsyncSeekExt::seek(&mut f, std::io::SeekFrom::Start(pos)).await.is_ok()
        {
            let _ = f.read_to_end(&mut buf).await;
        }
        pos += buf.len() as u64;
        if !buf.is_empty() && out.send(Output::Stdout(Bytes::from(buf))).await.is_err() {
            return success();
        }
        if last {
            return success();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(mut s: Session) -> (Vec<u8>, serde_json::Value) {
        let mut out = Vec::new();
        while let Some(o) = s.output.recv().await {
            let (Output::Stdout(b) | Output::Stderr(b)) = o;
            out.extend_from_slice(&b);
        }
        (out, s.status.await.expect("status"))
    }

    #[tokio::test]
    async fn stdin_once_closes_the_containers_stdin_when_the_session_ends_and_the_log_keeps_the_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log_path = dir.path().join("0.log");
        let log = std::fs::File::create(&log_path).expect("log");
        let registry = Registry::default();
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "cat; echo done"]);
        let mut child = spawn(&registry, "uid", "c", cmd, log, false, true).expect("spawn");
        let a = registry.get("uid", "c", "pod").expect("attachable");
        let s = a.session(true);
        s.input.send(Input::Stdin(Bytes::from_static(b"hello\n"))).await.expect("stdin");
        s.input.send(Input::StdinEnd).await.expect("end");
        let (out, status) = collect(s).await;
        assert_eq!(String::from_utf8_lossy(&out), "hello\ndone\n");
        assert_eq!(status["status"], "Success");
        assert!(child.wait().await.expect("wait").success());
        assert_eq!(std::fs::read_to_string(&log_path).expect("log"), "hello\ndone\n");
        assert!(matches!(registry.get("uid", "c", "pod"), Err(AttachError::NotRunning { .. })));
        assert!(matches!(registry.get("uid", "other", "pod"), Err(AttachError::NotFound { .. })));
    }

    #[tokio::test]
    async fn without_stdin_once_a_detached_client_leaves_stdin_open_for_the_next() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(dir.path().join("0.log")).expect("log");
        let registry = Registry::default();
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "read a; echo got $a; read b; echo got $b"]);
        let mut child = spawn(&registry, "uid", "c", cmd, log, false, false).expect("spawn");
        let a = registry.get("uid", "c", "pod").expect("attachable");
        let mut first = a.session(true);
        first.input.send(Input::Stdin(Bytes::from_static(b"one\n"))).await.expect("stdin");
        assert_eq!(first.output.recv().await, Some(Output::Stdout(Bytes::from_static(b"got one\n"))));
        drop(first.input);
        assert_eq!(first.output.recv().await, None, "the detached session ends");
        let second = a.session(true);
        second.input.send(Input::Stdin(Bytes::from_static(b"two\n"))).await.expect("stdin");
        let (out, _) = collect(second).await;
        assert_eq!(String::from_utf8_lossy(&out), "got two\n");
        assert!(child.wait().await.expect("wait").success());
    }

    #[tokio::test]
    async fn a_log_writing_container_sends_what_is_appended_until_it_exits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("0.log");
        std::fs::write(&log, "before\n").expect("log");
        let registry = Registry::default();
        registry.insert_logged("uid", "c", 42, log.clone());
        let mut s = registry.get("uid", "c", "pod").expect("attachable").session(false);
        std::fs::OpenOptions::new().append(true).open(&log).and_then(|mut f| std::io::Write::write_all(&mut f, b"after\n")).expect("append");
        assert_eq!(s.output.recv().await, Some(Output::Stdout(Bytes::from_static(b"after\n"))), "only what comes after the attach");
        registry.exited("uid", "c", 41);
        assert!(registry.get("uid", "c", "pod").is_ok(), "another process's exit leaves the entry running");
        std::fs::OpenOptions::new().append(true).open(&log).and_then(|mut f| std::io::Write::write_all(&mut f, b"last\n")).expect("append");
        registry.exited("uid", "c", 42);
        let (out, status) = collect(s).await;
        assert_eq!(String::from_utf8_lossy(&out), "last\n");
        assert_eq!(status["status"], "Success");
        assert!(matches!(registry.get("uid", "c", "pod"), Err(AttachError::NotRunning { .. })));
    }
}
