//! `kubectl port-forward` end to end: SPDY for kubectl 1.27, SPDY tunnelled
//! in a websocket for 1.33, to a pod and through a Service, with many and
//! concurrent connections, a large body, a port nothing listens on, and a
//! killed kubectl whose connections the agent must close.

use crate::harness::{Cluster, KUBECTL_127, KUBECTL_133, netexec_pod, stdout};
use crate::node::until;
use parking_lot::Mutex;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The netexec pod `pf` and a Service `pf` in front of it.
fn pod_and_service() -> String {
    format!(
        "{}---
apiVersion: v1
kind: Service
metadata:
  name: pf
spec:
  selector: {{app: pf}}
  ports: [{{port: 80, targetPort: http}}]
",
        netexec_pod("pf")
    )
}

/// A running `kubectl port-forward`, killed when dropped.
struct Forward {
    child: Child,
    /// The local port from `Forwarding from 127.0.0.1:NNNN -> REMOTE`.
    port: u16,
    /// The remote port kubectl named in that line.
    remote: u16,
    stderr: Arc<Mutex<String>>,
}

impl Forward {
    fn start(c: &Cluster, bin: &str, target: &str, ports: &str) -> Forward {
        Self::start_with(c, bin, &[target, ports])
    }

    /// `kubectl port-forward ARGS`.
    fn start_with(c: &Cluster, bin: &str, args: &[&str]) -> Forward {
        let (target, ports) = (args[0], args[1]);
        let mut cmd = c.on_node(bin);
        cmd.arg("--kubeconfig").arg(c.kubeconfig()).arg("port-forward").args(args).env("HOME", c.dir()).env_remove("KUBECONFIG");
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl port-forward");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Owned from here on, so a failed start still kills kubectl.
        let mut fwd = Forward { child, port: 0, remote: 0, stderr };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| panic!("{bin} port-forward {target} {ports}: no Forwarding line; stderr: {}", fwd.stderr.lock()));
            // "Forwarding from 127.0.0.1:NNNN -> 8080" (and a [::1] line kubectl may fail to bind).
            if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                let (local, remote) = rest.split_once(" -> ").expect("Forwarding line shape");
                fwd.port = local.parse().expect("local port");
                fwd.remote = remote.trim().parse().expect("remote port");
                // The rest of stdout ("Handling connection for ...") is drained so kubectl never blocks.
                std::thread::spawn(move || for _ in rx {});
                return fwd;
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl -sS URL` on the node: (exit code, body).
fn curl(c: &Cluster, url: &str) -> (i32, String) {
    let out = c.on_node("curl").args(["-sS", "--max-time", "20", url]).output().expect("curl");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_ready(c: &Cluster) {
    until(c, "pod pf ready", Duration::from_secs(60), &["get", "pod", "pf", "-o", "jsonpath={.status.containerStatuses[0].ready}"], |s| s == "true");
}

#[test]
fn port_forward_to_a_pod_and_a_service_with_spdy_and_the_websocket_tunnel() {
    let c = Cluster::start_node();
    assert!(c.apply(&pod_and_service(), &[]).status.success());
    wait_ready(&c);
    for bin in [KUBECTL_127, KUBECTL_133] {
        let fwd = Forward::start(&c, bin, "pod/pf", ":8080");
        assert_eq!(fwd.remote, 8080, "{bin}");
        for i in 0..5 {
            assert_eq!(curl(&c, &fwd.url("/hostname")), (0, "pf".into()), "{bin}: request {i}; stderr {}", fwd.stderr.lock());
        }
        let concurrent: Vec<_> = (0..8)
            .map(|_| c.on_node("curl").args(["-sS", "--max-time", "20", &fwd.url("/hostname")]).stdout(Stdio::piped()).spawn().expect("curl"))
            .collect();
        for child in concurrent {
            let out = child.wait_with_output().expect("curl");
            assert_eq!((out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned()), (Some(0), "pf".into()), "{bin}: concurrent");
        }
        // The longest URI hyper takes is 64 KiB: a 60 000-byte message goes up and comes back.
        let big: String = (0..60_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let (code, body) = curl(&c, &fwd.url(&format!("/echo?msg={big}")));
        assert_eq!(code, 0, "{bin}: large echo");
        assert!(body == big, "{bin}: large echo came back as {} bytes", body.len());
        // A few MiB down: `seq 1 400000` run by the pod.
        let (code, body) = curl(&c, &fwd.url("/shell?cmd=seq%201%20400000"));
        assert_eq!(code, 0, "{bin}: large download");
        let output: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{bin}: {} bytes, not JSON: {e}", body.len()));
        let want: String = (1..=400_000).map(|i| format!("{i}\n")).collect();
        assert!(output["output"].as_str() == Some(want.as_str()), "{bin}: the download came back as {} bytes", body.len());
        // A client that half-closes after its request still gets the answer,
        // and the pod's close ends the client's read.
        let half = format!(
            "import socket; s = socket.create_connection(('127.0.0.1', {})); s.sendall(b'GET /hostname HTTP/1.1\\r\\nHost: pf\\r\\n\\r\\n'); s.shutdown(socket.SHUT_WR); s.settimeout(20); b = b''\nwhile True:\n    d = s.recv(65536)\n    if not d: break\n    b += d\nprint(b.decode())",
            fwd.port
        );
        let out = c.on_node("python3").args(["-c", &half]).output().expect("python3");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success() && text.starts_with("HTTP/1.1 200") && text.trim_end().ends_with("pf"), "{bin}: half-closed client got {text:?} {}", String::from_utf8_lossy(&out.stderr));
        assert!(!fwd.stderr.lock().contains("rror"), "{bin}: {}", fwd.stderr.lock());
    }
    // svc/NAME: kubectl picks a pod of the Service and its target port (named here).
    let svc = Forward::start(&c, KUBECTL_133, "svc/pf", ":80");
    assert_eq!(svc.remote, 8080, "the Service's targetPort http resolved to the container port");
    assert_eq!(curl(&c, &svc.url("/hostname")), (0, "pf".into()));
}

#[test]
fn every_kubectl_from_1_27_to_1_33_forwards_and_1_31_on_tunnel_through_a_websocket() {
    let c = Cluster::start_node();
    assert!(c.apply(&pod_and_service(), &[]).status.success());
    wait_ready(&c);
    for minor in 27..=33 {
        let bin = format!("/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}");
        let fwd = Forward::start_with(&c, &bin, &["pod/pf", ":8080", "-v=6"]);
        assert_eq!(curl(&c, &fwd.url("/hostname")), (0, "pf".into()), "{bin}: {}", fwd.stderr.lock());
        let log = fwd.stderr.lock().clone();
        // client-go's tunneling dialer logs the subprotocol it got; a fallback to plain SPDY logs that.
        let tunnelled = log.contains("negotiated protocol: portforward.k8s.io");
        eprintln!("kubectl 1.{minor}: websocket tunnel {tunnelled}");
        assert_eq!(tunnelled, minor >= 31, "{bin}: {log}");
        assert!(!log.to_lowercase().contains("fallback"), "{bin}: {log}");
    }
}

#[test]
fn a_port_nothing_listens_on_reports_the_kubelet_error() {
    let c = Cluster::start_node();
    assert!(c.apply(&pod_and_service(), &[]).status.success());
    wait_ready(&c);
    for bin in [KUBECTL_127, KUBECTL_133] {
        let mut fwd = Forward::start(&c, bin, "pod/pf", ":9999");
        let (code, body) = curl(&c, &fwd.url("/hostname"));
        assert_ne!(code, 0, "{bin}: a connection to a closed port must fail, got {body:?}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !fwd.stderr.lock().contains("error forwarding port 9999 to pod") {
            assert!(Instant::now() < deadline, "{bin}: no kubelet error in kubectl's stderr: {}", fwd.stderr.lock());
            std::thread::sleep(Duration::from_millis(100));
        }
        let text = fwd.stderr.lock().clone();
        assert!(text.contains("connect: connection refused"), "{bin}: {text}");
        // kubectl itself gives up on the whole forward once the kubelet reports
        // an error (client-go closes the connection), as against a real kubelet.
        let deadline = Instant::now() + Duration::from_secs(10);
        while fwd.running() {
            assert!(Instant::now() < deadline, "{bin}: kubectl kept running after the error: {text}");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(fwd.stderr.lock().contains("error: lost connection to pod"), "{bin}: {}", fwd.stderr.lock());
        // The agent keeps serving: a new forward to the listening port works.
        let ok = Forward::start(&c, bin, "pod/pf", ":8080");
        assert_eq!(curl(&c, &ok.url("/hostname")), (0, "pf".into()), "{bin}");
    }
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0)
}

/// The pod's pause process, from the agent's sandbox record.
fn pause_pid(c: &Cluster) -> u64 {
    let pids: Vec<u64> = std::fs::read_dir(c.data.join("agent/pods"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read(e.path().join("sandbox.json")).ok())
                .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .filter_map(|r| r["pause_pid"].as_u64().filter(|p| *p > 0))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(pids.len(), 1, "one pod, one sandbox");
    pids[0]
}

/// Established connections inside the pod's network namespace to its port 8080.
fn pod_connections(pause: u64) -> usize {
    let net = format!("--net=/proc/{pause}/ns/net");
    let out = Command::new("timeout").args(["20", "nsenter", &net, "ss", "-tnH", "state", "established", "( sport = :8080 )"]).output().expect("ss");
    assert!(out.status.success(), "ss in the pod: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).count()
}

#[test]
fn a_killed_kubectl_leaves_no_connection_fd_or_thread_behind() {
    let c = Cluster::start_node();
    assert!(c.apply(&pod_and_service(), &[]).status.success());
    wait_ready(&c);
    let pid = c.pid().expect("portico pid");
    let pause = pause_pid(&c);
    for bin in [KUBECTL_127, KUBECTL_133] {
        let (fds, threads) = (fd_count(pid), thread_count(pid));
        let mut fwd = Forward::start(&c, bin, "pod/pf", ":8080");
        // Two idle keep-alive connections held open by clients that never close them.
        let script = format!("exec 3<>/dev/tcp/127.0.0.1/{}; printf 'GET /hostname HTTP/1.1\\r\\nHost: pf\\r\\n\\r\\n' >&3; sleep 120", fwd.port);
        let mut holders: Vec<Child> = (0..2).map(|_| c.on_node("bash").args(["-c", &script]).spawn().expect("bash")).collect();
        let deadline = Instant::now() + Duration::from_secs(15);
        while pod_connections(pause) < 2 {
            assert!(Instant::now() < deadline, "{bin}: the forwarded connections did not reach the pod; stderr {}", fwd.stderr.lock());
            std::thread::sleep(Duration::from_millis(200));
        }
        let during = fd_count(pid);
        assert!(during >= fds + 2, "{bin}: forwarding shows in the agent's fds ({fds} → {during})");
        fwd.child.kill().expect("kill kubectl");
        let _ = fwd.child.wait();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (conns, now_fds, now_threads) = (pod_connections(pause), fd_count(pid), thread_count(pid));
            if conns == 0 && now_fds <= fds && now_threads <= threads + 2 {
                eprintln!("{bin}: fds {fds} → {during} → {now_fds}, threads {threads} → {now_threads}");
                break;
            }
            assert!(Instant::now() < deadline, "{bin}: after kubectl was killed: {conns} connections in the pod, fds {fds} → {now_fds}, threads {threads} → {now_threads}");
            std::thread::sleep(Duration::from_millis(200));
        }
        for h in &mut holders {
            let _ = h.kill();
            let _ = h.wait();
        }
        drop(fwd);
    }
    assert!(stdout(&c.kubectl(&["get", "pod", "pf"])).contains("Running"));
}
