//! `kubectl get -w` sees changes as they happen.

use crate::harness::Cluster;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn get_svc_watch_sees_adds_and_deletes() {
    let c = Cluster::start();
    let ns = c.netns.clone().unwrap_or_default();
    let mut watcher = Command::new("ip")
        .args(["netns", "exec", &ns, "kubectl", "--kubeconfig"])
        .arg(c.kubeconfig())
        .args(["get", "svc", "-w", "--request-timeout=0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kubectl -w");
    std::thread::sleep(Duration::from_millis(800));
    c.ok(&["create", "service", "clusterip", "watched", "--tcp=80:80"]);
    c.ok(&["delete", "svc", "watched"]);
    let mut out = watcher.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.matches("watched").count() < 2 && Instant::now() < deadline {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert!(seen.contains("kubernetes"), "initial list missing:\n{seen}");
    assert!(seen.matches("watched").count() >= 2, "the add and the delete should both show:\n{seen}");
}
