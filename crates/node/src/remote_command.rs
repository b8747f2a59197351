//! One `kubectl exec` command, whatever carries it (websocket or SPDY): the
//! process joined to the pod's namespaces through `portico sandbox-exec`,
//! with pipes or a pty (`tty=true`), fed by [`Input`] and emitting
//! [`Output`], ending with the exit code the error stream reports.

use bytes::Bytes;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// How many output chunks may wait for a slow client.
const OUTPUT_QUEUE: usize = 32;

/// What the process should run.
pub struct Spec {
    /// The portico binary (for `sandbox-exec`).
    pub exe: std::path::PathBuf,
    /// The sandbox's pause process.
    pub pause: u32,
    /// The container's environment.
    pub env: Vec<(String, String)>,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Whether the client sends stdin.
    pub stdin: bool,
    /// Whether the process gets a terminal.
    pub tty: bool,
}

/// What the client sends.
#[derive(Debug)]
pub enum Input {
    /// Bytes for stdin.
    Stdin(Bytes),
    /// Stdin is at its end.
    StdinEnd,
    /// The terminal's new size.
    Resize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
}

/// What the process wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Standard output (or the terminal).
    Stdout(Bytes),
    /// Standard error.
    Stderr(Bytes),
}

/// Parses one resize message (`{"Width":80,"Height":24}`).
pub fn parse_resize(json: &[u8]) -> Option<Input> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Size {
        width: u16,
        height: u16,
    }
    let s: Size = serde_json::from_slice(json).ok()?;
    Some(Input::Resize { width: s.width, height: s.height })
}

/// What a stream session (an exec or an attach) serves: the output to send,
/// where the client's input goes, and the Status its error stream ends with.
pub struct Session {
    /// Output for the client; ends when there is no more.
    pub output: mpsc::Receiver<Output>,
    /// The client's input; dropping it means the client is gone.
    pub input: mpsc::Sender<Input>,
    /// The final Status (exit code for an exec, Success for an attach).
    pub status: tokio::task::JoinHandle<serde_json::Value>,
}

/// Starts a session once the client's streams are there; an error is the Status to report.
pub type Starter = Box<dyn FnOnce() -> Result<Session, serde_json::Value> + Send>;

/// An exec's session: the command runs until it exits; the client going away kills it.
pub fn exec_session(spec: Spec) -> Result<Session, serde_json::Value> {
    let command = spec.command.clone();
    let (input, in_rx) = mpsc::channel(32);
    let (output, task) = run(spec, in_rx).map_err(|e| start_failure(&e))?;
    let status = tokio::spawn(async move { exit_status(&command, task.await.unwrap_or(137)) });
    Ok(Session { output, input, status })
}

/// Sets a pty's window size.
pub fn set_size(master: &OwnedFd, width: u16, height: u16) {
    let ws = rustix::termios::Winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
    if let Err(e) = rustix::termios::tcsetwinsize(master, ws) {
        tracing::debug!(error = %e, "resizing the exec terminal");
    }
}

fn pump(mut r: Box<dyn tokio::io::AsyncRead + Unpin + Send>, stderr: bool, tx: mpsc::Sender<Output>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        // A pty master reads EIO once the last slave is closed: that is its end.
        while let Ok(n @ 1..) = r.read(&mut buf).await {
            let b = Bytes::copy_from_slice(&buf[..n]);
            if tx.send(if stderr { Output::Stderr(b) } else { Output::Stdout(b) }).await.is_err() {
                break;
            }
        }
    })
}

/// Starts the command. Output arrives on the returned receiver, which ends
/// when every output is at its end; the task's result is the exit code
/// (128 + signal for a killed process). Dropping `input` kills the process.
pub fn run(spec: Spec, mut input: mpsc::Receiver<Input>) -> std::io::Result<(mpsc::Receiver<Output>, tokio::task::JoinHandle<i32>)> {
    let mut cmd = tokio::process::Command::new(&spec.exe);
    cmd.arg("sandbox-exec").arg("--pid").arg(spec.pause.to_string());
    if spec.tty {
        cmd.arg("--tty");
    }
    cmd.arg("--").args(&spec.command);
    cmd.env_clear().envs(spec.env.iter().map(|(k, v)| (k, v)));
    cmd.kill_on_drop(true);
    let (tx, rx) = mpsc::channel(OUTPUT_QUEUE);
    let mut pumps = Vec::new();
    let mut stdin_w: Option<Box<dyn tokio::io::AsyncWrite + Unpin + Send>> = None;
    let mut master: Option<OwnedFd> = None;
    let mut child = if spec.tty {
        let pty = nix::pty::openpty(None, None).map_err(std::io::Error::from)?;
        set_size(&pty.master, 80, 24);
        cmd.stdin(Stdio::from(pty.slave.try_clone()?)).stdout(Stdio::from(pty.slave.try_clone()?)).stderr(Stdio::from(pty.slave));
        let child = cmd.spawn()?;
        // The Command holds our copies of the slave; drop them so the master sees the end.
        drop(cmd);
        let read = std::fs::File::from(pty.master.try_clone()?);
        pumps.push(pump(Box::new(tokio::fs::File::from_std(read)), false, tx.clone()));
        if spec.stdin {
            stdin_w = Some(Box::new(tokio::fs::File::from_std(std::fs::File::from(pty.master.try_clone()?))));
        }
        master = Some(pty.master);
        child
    } else {
        cmd.stdin(if spec.stdin { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        if let Some(o) = child.stdout.take() {
            pumps.push(pump(Box::new(o), false, tx.clone()));
        }
        if let Some(e) = child.stderr.take() {
            pumps.push(pump(Box::new(e), true, tx.clone()));
        }
        if let Some(i) = child.stdin.take() {
            stdin_w = Some(Box::new(i));
        }
        child
    };
    drop(tx);
    let task = tokio::spawn(async move {
        let mut input_open = true;
        let status = loop {
            tokio::select! {
                st = child.wait() => break st,
                msg = input.recv(), if input_open => match msg {
                    Some(Input::Stdin(b)) => {
                        if let Some(w) = stdin_w.as_mut() {
                            let _ = w.write_all(&b).await;
                            let _ = w.flush().await;
                        }
                    }
                    Some(Input::StdinEnd) => {
                        // On a terminal, end of input is the EOF character (^D) as upstream sends it.
                        if master.is_some() {
                            if let Some(w) = stdin_w.as_mut() {
                                let _ = w.write_all(&[4]).await;
                                let _ = w.flush().await;
                            }
                        } else {
                            stdin_w = None;
                        }
                    }
                    Some(Input::Resize { width, height }) => {
                        if let Some(m) = master.as_ref() {
                            set_size(m, width, height);
                        }
                    }
                    None => {
                        input_open = false;
                        let _ = child.start_kill();
                    }
                },
            }
        };
        drop(stdin_w);
        drop(master);
        for p in pumps {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), p).await;
        }
        use std::os::unix::process::ExitStatusExt;
        match status {
            Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
            Err(_) => 137,
        }
    });
    Ok((rx, task))
}

/// The Status the error stream carries when a command ends.
pub fn exit_status(command: &[String], code: i32) -> serde_json::Value {
    if code == 0 {
        return serde_json::json!({"metadata": {}, "status": "Success"});
    }
    serde_json::json!({"metadata": {}, "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", command.join(" ")),
        "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
}

/// The Status for a command that could not start.
pub fn start_failure(e: &std::io::Error) -> serde_json::Value {
    internal_error(&e.to_string())
}

/// An InternalError Status saying `message`.
pub fn internal_error(message: &str) -> serde_json::Value {
    serde_json::json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError"})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_become_statuses() {
        assert_eq!(exit_status(&["true".into()], 0)["status"], "Success");
        let f = exit_status(&["sh".into(), "-c".into(), "exit 3".into()], 3);
        assert_eq!(f["reason"], "NonZeroExitCode");
        assert_eq!(f["details"]["causes"][0]["message"], "3");
        assert_eq!(f["message"], "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3");
    }

    #[test]
    fn resize_messages_are_kubectls_json() {
        assert!(matches!(parse_resize(br#"{"Width":132,"Height":40}"#), Some(Input::Resize { width: 132, height: 40 })));
        assert!(parse_resize(b"nope").is_none());
    }
}
