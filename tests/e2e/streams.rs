//! `kubectl exec` over both transports (SPDY for kubectl 1.27, websocket for
//! 1.33): output, exit codes, piped stdin and a terminal session.

use crate::harness::{Cluster, KUBECTL_127, KUBECTL_133, stdout};
use std::io::Write;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: shell
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: netexec
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: [\"netexec\", \"--http-port=8080\"]
    readinessProbe:
      httpGet: {path: /readyz, port: 8080}
      periodSeconds: 1
";

fn wait_ready(c: &Cluster) {
    let start = Instant::now();
    loop {
        let out = c.kubectl(&["get", "pod", "shell", "-o", "jsonpath={.status.containerStatuses[0].ready}"]);
        if stdout(&out) == "true" {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "pod shell not ready:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// kubectl `bin` with `args`, `input` on its stdin.
fn kubectl_input(c: &Cluster, bin: &str, args: &[&str], input: &[u8]) -> Output {
    let mut cmd = c.on_node(bin);
    cmd.arg("--kubeconfig").arg(c.kubeconfig()).args(args).env("HOME", c.dir()).env_remove("KUBECONFIG");
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl");
    let mut w = child.stdin.take().expect("stdin");
    w.write_all(input).expect("write stdin");
    drop(w);
    child.wait_with_output().expect("kubectl output")
}

#[test]
fn exec_over_spdy_and_websocket_prints_output_propagates_exit_codes_and_pipes_stdin() {
    let c = Cluster::start_node();
    assert!(c.apply(POD, &[]).status.success());
    wait_ready(&c);
    for bin in [KUBECTL_127, KUBECTL_133] {
        let out = c.kubectl_with(bin, &["exec", "shell", "--", "hostname"]);
        assert!(out.status.success(), "{bin}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout(&out).trim(), "shell", "{bin}");
        let failed = c.kubectl_with(bin, &["exec", "shell", "--", "sh", "-c", "echo out; echo oops >&2; exit 3"]);
        assert_eq!(failed.status.code(), Some(3), "{bin}: exit code of the remote command; stderr {}", String::from_utf8_lossy(&failed.stderr));
        assert_eq!(stdout(&failed).trim(), "out", "{bin}");
        assert!(String::from_utf8_lossy(&failed.stderr).contains("oops"), "{bin}");
        let input: Vec<u8> = (0..20000).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        let piped = kubectl_input(&c, bin, &["exec", "-i", "shell", "--", "sh", "-c", "wc -l; echo done"], &input);
        assert!(piped.status.success(), "{bin}: {}", String::from_utf8_lossy(&piped.stderr));
        assert_eq!(String::from_utf8_lossy(&piped.stdout).split_whitespace().collect::<Vec<_>>(), ["20000", "done"], "{bin}");
        // A terminal session: kubectl gets a pty from script(1); the remote shell gets one too.
        let line = format!("{bin} --kubeconfig {} exec -it shell -- sh -c 'tty; stty size; read x; echo got $x; exit 7'", c.kubeconfig().display());
        let mut cmd = c.on_node("script");
        cmd.args(["-qec", &line, "/dev/null"]).env("HOME", c.dir()).env("COLUMNS", "100").env("LINES", "30");
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("script");
        let mut w = child.stdin.take().expect("stdin");
        std::thread::sleep(Duration::from_secs(2));
        w.write_all(b"hello\n").expect("type");
        let out = wait_with_timeout(child, w, Duration::from_secs(20));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.contains("/dev/pts/"), "{bin}: no terminal in the container: {text:?}");
        assert!(text.contains("got hello"), "{bin}: {text:?}");
        assert_eq!(out.status.code(), Some(7), "{bin}: {text:?} {}", String::from_utf8_lossy(&out.stderr));
    }
}

fn wait_with_timeout(mut child: std::process::Child, stdin: std::process::ChildStdin, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(stdin);
    child.wait_with_output().expect("output")
}

