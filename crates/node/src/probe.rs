//! Container probes (startup, liveness, readiness): httpGet, tcpSocket and
//! exec with the upstream fields and defaults (period 10 s, timeout 1 s,
//! success threshold 1, failure threshold 3). Each probe runs in its own task
//! and reports only transitions, after the thresholds are met.

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// startupProbe.
    Startup,
    /// livenessProbe.
    Liveness,
    /// readinessProbe.
    Readiness,
}

/// A transition a probe task reports.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The container.
    pub container: String,
    /// The container start generation the probe belongs to.
    pub generation: u64,
    /// Which probe.
    pub kind: Kind,
    /// Now succeeding (`true`) or failing (`false`).
    pub success: bool,
    /// The last failure's message.
    pub message: String,
}

/// Where and how a probe runs.
#[derive(Debug, Clone)]
pub struct Target {
    /// The pod's IP (default host for httpGet and tcpSocket).
    pub pod_ip: IpAddr,
    /// The pause process, for exec probes.
    pub pause_pid: u32,
    /// The `portico` binary.
    pub exe: PathBuf,
    /// The container's env (exec probes see it).
    pub env: Vec<(String, String)>,
}

fn port_of(c: &Container, port: &IntOrString) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).map_err(|_| format!("invalid port {p}")),
        IntOrString::String(name) => {
            if let Ok(p) = name.parse::<u16>() {
                return Ok(p);
            }
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port: {name} in {}", c.name))
        }
    }
}

/// Runs a probe once; `Ok` on success, `Err(message)` on failure.
pub async fn run_once(c: &Container, probe: &Probe, t: &Target) -> Result<(), String> {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(h) = &probe.http_get {
        let port = port_of(c, &h.port)?;
        let host = h.host.clone().filter(|x| !x.is_empty()).unwrap_or_else(|| t.pod_ip.to_string());
        let path = h.path.clone().unwrap_or_else(|| "/".into());
        if h.scheme.as_deref() == Some("HTTPS") {
            return Err("HTTPS probes are not supported by Portico yet".into());
        }
        let addr = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let headers: String = h.http_headers.iter().flatten().map(|hh| format!("{}: {}\r\n", hh.name, hh.value)).collect();
        let work = async {
            let mut s = tokio::net::TcpStream::connect(&addr).await.map_err(|e| format!("Get \"http://{addr}{path}\": dial tcp {addr}: connect: {}", short_io(&e)))?;
            let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.32\r\nAccept: */*\r\n{headers}Connection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 1024];
            let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
            let head = String::from_utf8_lossy(&buf[..n]);
            let code: u16 = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| "malformed HTTP response".to_owned())?;
            if (200..400).contains(&code) { Ok(()) } else { Err(format!("HTTP probe failed with statuscode: {code}")) }
        };
        return tokio::time::timeout(timeout, work)
            .await
            .unwrap_or_else(|_| Err(format!("Get \"http://{addr}{path}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)")));
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = port_of(c, &tcp.port)?;
        let host = tcp.host.clone().filter(|x| !x.is_empty()).unwrap_or_else(|| t.pod_ip.to_string());
        let addr = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {addr}: connect: {}", short_io(&e))),
            Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
        };
    }
    if let Some(exec) = &probe.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        if cmd.is_empty() {
            return Err("exec probe has no command".into());
        }
        let mut p = tokio::process::Command::new(&t.exe);
        p.arg("sandbox-exec").arg("--pid").arg(t.pause_pid.to_string()).arg("--").args(&cmd);
        p.env_clear().envs(t.env.iter().map(|(k, v)| (k, v))).stdin(std::process::Stdio::null()).kill_on_drop(true);
        return match tokio::time::timeout(timeout, p.output()).await {
            Ok(Ok(o)) if o.status.success() => Ok(()),
            Ok(Ok(o)) => Err(format!("command {cmd:?} exited with {}: {}", o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).trim())),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("command {cmd:?} timed out")),
        };
    }
    if probe.grpc.is_some() {
        return Err("gRPC probes are not supported by Portico yet".into());
    }
    Err("probe has no handler".into())
}

fn short_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        _ => e.to_string(),
    }
}

/// Runs a probe forever, reporting transitions on `tx`. The initial state is
/// failing for readiness and startup (so the first success is reported) and
/// succeeding for liveness (so only failures are).
pub async fn run_loop(c: Container, probe: Probe, kind: Kind, generation: u64, target: Target, tx: mpsc::Sender<Transition>) {
    let period = Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
    let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
    tokio::time::sleep(Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64)).await;
    let mut state = kind == Kind::Liveness;
    let (mut oks, mut fails) = (0, 0);
    // Until a readiness or startup probe first succeeds, extra attempts between
    // the regular ones (25 ms, doubling) let a pod turn Ready as soon as it
    // answers instead of a whole period later. They can only report success;
    // failures are counted on the regular schedule, so thresholds keep their meaning.
    let mut eager = kind != Kind::Liveness && success_threshold == 1;
    loop {
        let tick = tokio::time::Instant::now() + period;
        let mut r = run_once(&c, &probe, &target).await;
        let mut gap = Duration::from_millis(25);
        while eager && r.is_err() && tokio::time::Instant::now() + gap < tick {
            tokio::time::sleep(gap).await;
            gap = (gap * 2).min(period);
            if run_once(&c, &probe, &target).await.is_ok() {
                r = Ok(());
            }
        }
        let message = match &r {
            Ok(()) => {
                eager = false;
                oks += 1;
                fails = 0;
                String::new()
            }
            Err(m) => {
                fails += 1;
                oks = 0;
                m.clone()
            }
        };
        let flip = if state { fails >= failure_threshold } else { oks >= success_threshold };
        if flip {
            state = !state;
            let t = Transition { container: c.name.clone(), generation, kind, success: state, message };
            if tx.send(t).await.is_err() {
                return;
            }
            if kind == Kind::Startup && state {
                return;
            }
            if kind == Kind::Liveness && !state {
                // The container is restarted; a new task probes the new one.
                return;
            }
        }
        tokio::time::sleep_until(tick).await;
    }
}
