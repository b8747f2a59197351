//! `kubectl exec` over both transports (SPDY for kubectl 1.27, websocket for
//! 1.33): output, exit codes, piped stdin and a terminal session with a resize.

use crate::harness::{Cluster, KUBECTL_127, KUBECTL_133, netexec_pod, stdout};
use crate::pty::PtyProcess;
use std::time::{Duration, Instant};

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

#[test]
fn exec_over_spdy_and_websocket_prints_output_propagates_exit_codes_and_pipes_stdin() {
    let c = Cluster::start_node();
    assert!(c.apply(&netexec_pod("shell"), &[]).status.success());
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
        let piped = c.kubectl_input(bin, &["exec", "-i", "shell", "--", "sh", "-c", "wc -l; echo done"], &input);
        assert!(piped.status.success(), "{bin}: {}", String::from_utf8_lossy(&piped.stderr));
        assert_eq!(String::from_utf8_lossy(&piped.stdout).split_whitespace().collect::<Vec<_>>(), ["20000", "done"], "{bin}");
        // A terminal session: kubectl on a 30×100 pty from the test, the remote
        // shell on one of the agent's; a resize to 50×132 reaches the remote.
        let mut cmd = c.on_node(bin);
        cmd.arg("--kubeconfig").arg(c.kubeconfig()).env("HOME", c.dir()).env_remove("KUBECONFIG");
        cmd.args(["exec", "-it", "shell", "--", "sh", "-c", "tty; stty size; read x; stty size; echo got $x; exit 7"]);
        let mut term = PtyProcess::spawn(cmd, 30, 100);
        term.wait_for("30 100", Duration::from_secs(20));
        term.resize(50, 132);
        std::thread::sleep(Duration::from_secs(1));
        term.type_text("hello\r");
        let (code, text) = term.wait(Duration::from_secs(20));
        assert!(text.contains("/dev/pts/"), "{bin}: no terminal in the container: {text:?}");
        assert!(text.contains("50 132"), "{bin}: the resize did not reach the remote terminal: {text:?}");
        assert!(text.contains("got hello"), "{bin}: {text:?}");
        assert_eq!(code, Some(7), "{bin}: {text:?}");
    }
}

