//! `kubectl run --rm -it`, `kubectl run --rm -i` with piped stdin and
//! `kubectl attach -i`: containers started with stdin (and a tty) whose
//! streams the agent keeps, over SPDY (kubectl 1.27) and websocket (1.33).

use crate::harness::{Cluster, KUBECTL_127, KUBECTL_133, stdout};
use crate::node::until;
use crate::pty::PtyProcess;
use std::time::Duration;

/// kubectl `bin` with `args`, fed `input` on stdin: (exit code, stdout, stderr).
fn kubectl_piped(c: &Cluster, bin: &str, args: &[&str], input: &[u8]) -> (Option<i32>, String, String) {
    // kubectl attaches once the pod runs; stdin waits in the pipe meanwhile.
    let out = c.kubectl_input(bin, args, input);
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn gone(c: &Cluster, pod: &str) {
    until(c, &format!("pod {pod} deleted"), Duration::from_secs(30), &["get", "pods", "-o", "name"], |s| !s.contains(&format!("pod/{pod}")));
}

#[test]
fn run_rm_it_gives_a_shell_on_a_terminal_that_resizes_and_deletes_the_pod_after() {
    let c = Cluster::start_node();
    for (i, bin) in [KUBECTL_127, KUBECTL_133].into_iter().enumerate() {
        let name = format!("tmp{i}");
        let mut cmd = c.on_node(bin);
        cmd.arg("--kubeconfig").arg(c.kubeconfig()).env("HOME", c.dir()).env_remove("KUBECONFIG");
        cmd.args(["run", &name, "--image=busybox", "--rm", "-it", "--restart=Never", "--", "sh"]);
        let mut term = PtyProcess::spawn(cmd, 30, 100);
        term.wait_for("If you don't see a command prompt, try pressing enter.", Duration::from_secs(60));
        term.type_text("echo hi-$((6*7)); hostname; stty size\r");
        term.wait_for("hi-42", Duration::from_secs(20));
        term.wait_for(&format!("\n{name}\r"), Duration::from_secs(20));
        term.wait_for("30 100", Duration::from_secs(20));
        term.resize(50, 132);
        std::thread::sleep(Duration::from_secs(1));
        term.type_text("stty size; tty\r");
        term.wait_for("50 132", Duration::from_secs(20));
        term.wait_for("/dev/pts/", Duration::from_secs(20));
        term.type_text("exit 3\r");
        let (code, screen) = term.wait(Duration::from_secs(60));
        // kubectl run reports the container's exit code, after deleting the pod (--rm).
        assert_eq!(code, Some(3), "{bin}: {screen:?}");
        assert!(screen.contains(&format!("pod \"{name}\" deleted")), "{bin}: {screen:?}");
        gone(&c, &name);
    }
}

#[test]
fn run_rm_i_pipes_stdin_to_the_container_and_attach_i_reaches_a_running_one() {
    let c = Cluster::start_node();
    for (i, bin) in [KUBECTL_127, KUBECTL_133].into_iter().enumerate() {
        let name = format!("cat{i}");
        let input: String = (0..2000).map(|n| format!("line {n}\n")).collect();
        let (code, out, err) = kubectl_piped(&c, bin, &["run", &name, "--image=busybox", "--rm", "-i", "--restart=Never", "--", "sh", "-c", "cat; echo done"], input.as_bytes());
        assert_eq!(code, Some(0), "{bin}: {err}");
        assert!(out.starts_with(&input) && out.contains("done\n"), "{bin}: stdout {} bytes: {:?}…; stderr {err}", out.len(), &out[..out.len().min(200)]);
        gone(&c, &name);
    }
    // A pod of its own with stdin (not once): attach -i twice, then the logs hold both sessions.
    // stdout and stderr are separate pipes (as with a container runtime): the pause keeps their order in the log.
    let pod = "apiVersion: v1
kind: Pod
metadata:
  name: reader
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: reader
    image: busybox
    stdin: true
    command: [\"sh\", \"-c\", \"read a; echo got $a; read b; echo got $b >&2; sleep 0.3; echo bye\"]
";
    assert!(c.apply(pod, &[]).status.success());
    until(&c, "reader running", Duration::from_secs(60), &["get", "pod", "reader", "-o", "jsonpath={.status.phase}"], |s| s == "Running");
    // The first session (SPDY) is killed after its line; the container's stdin stays open (stdinOnce is false).
    let mut cmd = c.on_node(KUBECTL_127);
    cmd.arg("--kubeconfig").arg(c.kubeconfig()).env("HOME", c.dir()).env_remove("KUBECONFIG").args(["attach", "-i", "reader"]);
    let mut first = PtyProcess::spawn(cmd, 24, 80);
    std::thread::sleep(Duration::from_secs(2));
    first.type_text("first\n");
    first.wait_for("got first", Duration::from_secs(20));
    drop(first);
    let (code, out, err) = kubectl_piped(&c, KUBECTL_133, &["attach", "-i", "reader"], b"second\n");
    assert_eq!(code, Some(0), "1.33 attach: {err}");
    assert!(err.contains("got second") && out.contains("bye"), "1.33 attach: stdout {out:?} stderr {err:?}");
    until(&c, "reader done", Duration::from_secs(30), &["get", "pod", "reader", "-o", "jsonpath={.status.phase}"], |s| s == "Succeeded");
    let logs = stdout(&c.kubectl(&["logs", "reader"]));
    assert_eq!(logs, "got first\ngot second\nbye\n");
    // A container without stdin: attach streams what it prints until it exits.
    let ticker = "apiVersion: v1
kind: Pod
metadata:
  name: ticker
spec:
  restartPolicy: Never
  containers:
  - name: ticker
    image: busybox
    command: [\"sh\", \"-c\", \"for i in 1 2 3 4 5 6 7 8; do echo tick-$i; sleep 1; done\"]
";
    assert!(c.apply(ticker, &[]).status.success());
    until(&c, "ticker running", Duration::from_secs(60), &["get", "pod", "ticker", "-o", "jsonpath={.status.phase}"], |s| s == "Running");
    let (code, out, err) = kubectl_piped(&c, KUBECTL_133, &["attach", "ticker"], b"");
    assert_eq!(code, Some(0), "attach to ticker: {err}");
    assert!(out.ends_with("tick-7\ntick-8\n"), "attach to ticker: {out:?} {err}");
    // Attaching to a container that has ended is refused.
    let late = c.kubectl_with(KUBECTL_133, &["attach", "reader"]);
    assert!(!late.status.success(), "attach to a finished pod: {}", stdout(&late));
}
