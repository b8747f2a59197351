//! One container's process: its command line, environment, log file, start
//! in the sandbox's namespaces (with its stdin and output kept for `kubectl
//! attach` when it asks for stdin or a tty), and stop (SIGTERM to the process group, then
//! SIGKILL after the grace period).

use crate::host::Host;
use crate::images::{self, Unresolved};
use k8s_openapi::api::core::v1::Container;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Why a container could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The image resolves to no program.
    #[error(transparent)]
    Image(#[from] Unresolved),
    /// The program is not on this host (`StartError`, exit code 128 upstream).
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    /// The log file or the process could not be created.
    #[error("{0}")]
    Io(String),
}

/// Default `PATH` for container processes.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The log file of a container's `n`th run.
pub fn log_path(host: &Host, uid: &str, container: &str, n: i32) -> PathBuf {
    host.pod_dir(uid).join("logs").join(container).join(format!("{n}.log"))
}

fn find_program(program: &str, path_var: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| PathBuf::from(program));
    }
    path_var.split(':').map(|d| Path::new(d).join(program)).find(|p| p.is_file())
}

/// Starts a container process in the sandbox of `pause_pid`. Returns the child.
pub fn start(host: &Host, uid: &str, pause_pid: u32, c: &Container, env: &[(String, String)], run: i32) -> Result<tokio::process::Child, StartError> {
    let resolved = host.images.resolve(c.image.as_deref().unwrap_or(""), c.command.as_ref().is_some_and(|v| !v.is_empty()))?;
    let expand = |v: &Vec<String>| v.iter().map(|a| crate::env_vars::expand(a, env)).collect::<Vec<_>>();
    let argv = images::argv(&resolved, &expand(&c.command.clone().unwrap_or_default()), &expand(&c.args.clone().unwrap_or_default()));
    let Some(program) = argv.first() else { return Err(StartError::NotFound(String::new())) };
    let path_var = env.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str()).unwrap_or(DEFAULT_PATH);
    if find_program(program, path_var).is_none() {
        return Err(StartError::NotFound(program.clone()));
    }
    let log = log_path(host, uid, &c.name, run);
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| StartError::Io(format!("creating {}: {e}", dir.display())))?;
    }
    let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).map_err(|e| StartError::Io(format!("opening {}: {e}", log.display())))?;
    let err = file.try_clone().map_err(|e| StartError::Io(e.to_string()))?;
    let mut cmd = tokio::process::Command::new(&host.exe);
    cmd.arg("sandbox-exec").arg("--pid").arg(pause_pid.to_string());
    if let Some(w) = c.working_dir.as_deref().filter(|w| !w.is_empty()) {
        cmd.arg("--workdir").arg(w);
    }
    let (stdin, tty) = (c.stdin.unwrap_or(false), c.tty.unwrap_or(false));
    if tty {
        cmd.arg("--tty");
    }
    cmd.arg("--").args(&argv);
    cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    let starting = |e: std::io::Error| StartError::Io(format!("starting {}: {e}", host.exe.display()));
    if stdin || tty {
        drop(err);
        // With a tty, sandbox-exec's setsid makes the process its own group leader.
        if !tty {
            cmd.process_group(0);
        }
        return crate::attach::spawn(&host.attach, uid, &c.name, cmd, file, tty, c.stdin_once.unwrap_or(false)).map_err(starting);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::from(file)).stderr(Stdio::from(err)).process_group(0);
    let child = cmd.spawn().map_err(starting)?;
    host.attach.insert_logged(uid, &c.name, child.id().unwrap_or(0), log);
    Ok(child)
}

/// Sends `signal` to the container's process group (ignoring a group already gone).
pub fn signal(pid: u32, signal: Signal) {
    if let Ok(p) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(p), signal);
    }
}

/// SIGTERM now, SIGKILL after `grace` (in the background).
pub fn stop(pid: u32, grace: Duration) {
    signal(pid, Signal::SIGTERM);
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        signal(pid, Signal::SIGKILL);
    });
}
