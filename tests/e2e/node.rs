//! The node agent end to end: pods as processes in their own network
//! namespaces, wired by CNI, probed, exec'd into, logged — driven by kubectl.

use crate::harness::{Cluster, stdout};
use std::process::Command;
use std::time::{Duration, Instant};

/// Polls `kubectl ARGS` until `check` accepts its stdout; returns that stdout.
pub(crate) fn until(c: &Cluster, what: &str, limit: Duration, args: &[&str], check: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let out = c.kubectl(args);
        let text = stdout(&out);
        if out.status.success() && check(&text) {
            return text;
        }
        if start.elapsed() > limit {
            let pods = stdout(&c.kubectl(&["get", "pods", "-o", "wide"]));
            panic!("{what}: not true after {limit:?}; last output:\n{text}\npods:\n{pods}\nlog tail:\n{}", tail(&c.log(), 40));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub(crate) fn node_run(c: &Cluster, program: &str, args: &[&str]) -> String {
    let out = c.on_node(program).args(args).output().expect("run on node");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const NETEXEC: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: netexec
spec:
  replicas: 2
  selector:
    matchLabels: {app: netexec}
  template:
    metadata:
      labels: {app: netexec}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: netexec
        image: registry.k8s.io/e2e-test-images/agnhost:2.53
        args: [\"netexec\", \"--http-port=8080\"]
        ports: [{containerPort: 8080, name: http}]
        readinessProbe:
          httpGet: {path: /readyz, port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: netexec
spec:
  selector: {app: netexec}
  ports: [{port: 80, targetPort: http}]
";

/// (name, ip) of the pods that are Running and Ready.
fn ready_pods(text: &str) -> Vec<(String, String)> {
    text.lines().filter_map(|l| l.split_once(' ')).map(|(n, ip)| (n.to_owned(), ip.trim().to_owned())).collect()
}

const READY_PODS: &[&str] = &["get", "pods", "-l", "app=netexec", "-o", "jsonpath={range .items[?(@.status.containerStatuses[0].ready==true)]}{.metadata.name} {.status.podIP}{\"\\n\"}{end}"];

#[test]
fn deployment_pods_get_their_own_ips_and_answer_exec_logs_and_curl() {
    let c = Cluster::start_node();
    let out = c.apply(NETEXEC, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = until(&c, "two ready netexec pods", Duration::from_secs(60), READY_PODS, |t| ready_pods(t).len() == 2);
    let pods = ready_pods(&text);
    let cidr = c.ok(&["get", "nodes", "-o", "jsonpath={.items[0].spec.podCIDR}"]);
    let prefix = cidr.split('/').next().expect("cidr").rsplit_once('.').expect("ipv4").0.to_owned();
    assert_ne!(pods[0].1, pods[1].1, "distinct pod IPs");
    for (name, ip) in &pods {
        assert!(ip.starts_with(&format!("{prefix}.")), "{ip} is not in the node's pod CIDR {cidr}");
        // From the node: the pod answers with its own name.
        assert_eq!(node_run(&c, "curl", &["-sS", "--max-time", "5", &format!("http://{ip}:8080/hostname")]), *name);
    }
    let wide = c.ok(&["get", "pods", "-o", "wide"]);
    for (name, ip) in &pods {
        let row: Vec<&str> = wide.lines().find(|l| l.starts_with(name.as_str())).expect("row").split_whitespace().collect();
        assert_eq!(&row[1..3], ["1/1", "Running"], "{wide}");
        assert_eq!(row[5], ip, "{wide}");
    }
    // Pod to pod across the bridge (netexec's /dial, as the upstream e2e tests do).
    let dial = node_run(&c, "curl", &["-sS", "--max-time", "10", &format!("http://{}:8080/dial?request=hostname&protocol=http&host={}&port=8080&tries=1", pods[0].1, pods[1].1)]);
    assert_eq!(dial, format!("{{\"responses\":[\"{}\"]}}", pods[1].0));
    let dial = node_run(&c, "curl", &["-sS", "--max-time", "10", &format!("http://{}:8080/dial?request=hostname&protocol=udp&host={}&port=8081&tries=1", pods[0].1, pods[1].1)]);
    assert_eq!(dial, format!("{{\"responses\":[\"{}\"]}}", pods[1].0));
    // exec and logs through the API server.
    assert_eq!(c.ok(&["exec", &pods[0].0, "--", "hostname"]).trim(), pods[0].0);
    let resolv = c.ok(&["exec", &pods[0].0, "--", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 10.96.0.10") && resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"), "{resolv}");
    assert!(resolv.contains("options ndots:5"), "{resolv}");
    let failed = c.kubectl(&["exec", &pods[0].0, "--", "sh", "-c", "echo oops >&2; exit 3"]);
    assert_eq!(failed.status.code(), Some(3), "exit code of the remote command");
    assert!(String::from_utf8_lossy(&failed.stderr).contains("oops"));
    let logs = c.ok(&["logs", &pods[0].0]);
    assert!(logs.contains("Started HTTP server on port 8080"), "{logs}");
    // The Service's endpoints are exactly the ready pods.
    let mut want: Vec<String> = pods.iter().map(|(_, ip)| format!("{ip}:8080")).collect();
    want.sort();
    until(&c, "endpoints of both pods", Duration::from_secs(10), &["get", "ep", "netexec", "-o", "jsonpath={.subsets[*].addresses[*].ip}"], |t| {
        pods.iter().all(|(_, ip)| t.contains(ip.as_str()))
    });
    // Deleting a pod brings a replacement with a new IP.
    c.ok(&["delete", "pod", &pods[0].0]);
    let text = until(&c, "a replacement pod", Duration::from_secs(60), READY_PODS, |t| {
        let p = ready_pods(t);
        p.len() == 2 && !p.iter().any(|(n, _)| *n == pods[0].0)
    });
    let now = ready_pods(&text);
    let replacement = now.iter().find(|(n, _)| *n != pods[1].0).expect("replacement");
    assert_ne!(replacement.1, pods[0].1, "the replacement has a new IP");
    assert_eq!(node_run(&c, "curl", &["-sS", "--max-time", "5", &format!("http://{}:8080/hostname", replacement.1)]), replacement.0);
    // The old pod's address no longer answers.
    let old = c.on_node("curl").args(["-sS", "--max-time", "2", &format!("http://{}:8080/hostname", pods[0].1)]).output().expect("curl");
    assert!(!old.status.success(), "the deleted pod's IP still answers");
}

#[test]
fn probes_restart_and_unready_and_images_that_resolve_to_nothing() {
    let c = Cluster::start_node();
    let flag = c.dir().join("ready-flag");
    std::fs::write(&flag, "").expect("flag");
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: probed, labels: {{app: probed}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [\"sh\", \"-c\", \"echo started; touch /tmp/alive-$HOSTNAME-{pid}; exec sleep 3600\"]
    readinessProbe:
      exec: {{command: [\"test\", \"-f\", \"{flag}\"]}}
      periodSeconds: 1
    livenessProbe:
      exec: {{command: [\"test\", \"-f\", \"/tmp/alive-probed-{pid}\"]}}
      periodSeconds: 1
      failureThreshold: 2
---
apiVersion: v1
kind: Service
metadata: {{name: probed}}
spec:
  selector: {{app: probed}}
  ports: [{{port: 80}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  containers:
  - name: web
    image: nginx:1.25
---
apiVersion: v1
kind: Pod
metadata: {{name: crash}}
spec:
  containers:
  - name: c
    image: busybox
    command: [\"sh\", \"-c\", \"echo dying; exit 1\"]
",
        flag = flag.display(),
        pid = std::process::id()
    );
    let out = c.apply(&manifest, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ip = until(&c, "probed ready", Duration::from_secs(30), &["get", "pod", "probed", "-o", "jsonpath={.status.containerStatuses[0].ready} {.status.podIP}"], |t| t.starts_with("true "));
    let ip = ip.trim_start_matches("true ").to_owned();
    until(&c, "probed in endpoints", Duration::from_secs(10), &["get", "ep", "probed", "-o", "jsonpath={.subsets[*].addresses[*].ip}"], |t| t == ip);
    // Failing readiness: not Ready, and out of the endpoints.
    std::fs::remove_file(&flag).expect("rm flag");
    until(&c, "probed not ready", Duration::from_secs(10), &["get", "pod", "probed"], |t| t.lines().nth(1).is_some_and(|l| l.split_whitespace().nth(1) == Some("0/1")));
    until(&c, "probed out of the endpoints", Duration::from_secs(10), &["get", "ep", "probed", "-o", "jsonpath={.subsets[*].addresses[*].ip}|{.subsets[*].notReadyAddresses[*].ip}"], |t| t == format!("|{ip}"));
    // Failing liveness: the container restarts and RESTARTS counts up.
    let _ = std::fs::remove_file(format!("/tmp/alive-probed-{}", std::process::id()));
    until(&c, "a liveness restart", Duration::from_secs(20), &["get", "pod", "probed", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"], |t| t.parse::<u32>().is_ok_and(|n| n >= 1));
    let row = c.ok(&["get", "pod", "probed"]);
    assert!(row.lines().nth(1).is_some_and(|l| l.split_whitespace().nth(3).is_some_and(|r| r != "0")), "{row}");
    let _ = std::fs::remove_file(format!("/tmp/alive-probed-{}", std::process::id()));
    // An image that resolves to nothing waits with a reason that says what to do.
    let state = until(&c, "web waiting", Duration::from_secs(20), &["get", "pod", "web", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}"], |t| t.starts_with("ErrImagePull|") || t.starts_with("ImagePullBackOff|"));
    assert!(state.contains("has no mapping for image \"nginx:1.25\"") && state.contains("images.yaml"), "{state}");
    let row = c.ok(&["get", "pod", "web"]);
    assert!(row.contains("ErrImagePull") || row.contains("ImagePullBackOff"), "{row}");
    // A crashing container goes into CrashLoopBackOff; its output is in the logs.
    until(&c, "crash loop", Duration::from_secs(30), &["get", "pod", "crash"], |t| t.contains("CrashLoopBackOff"));
    assert_eq!(c.ok(&["logs", "crash"]).trim(), "dying");
}

/// A pod holding a host port, next to the Deployment in the leak check.
const HOSTPORT_POD: &str = "apiVersion: v1
kind: Pod
metadata: {name: hostport}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: netexec
    image: portico/netexec
    ports: [{containerPort: 8080, hostPort: 54325}]
";

/// Host-port rules on the node (rules carry their pod's UID as comment).
fn hostport_rules(c: &Cluster) -> usize {
    node_run(c, "nft", &["list", "table", "ip", "portico-hostports"]).lines().filter(|l| l.contains(" comment \"")).count()
}

/// Sandbox records on disk that name their pause process.
fn complete_sandboxes(c: &Cluster) -> usize {
    std::fs::read_dir(c.data.join("agent/pods"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read(e.path().join("sandbox.json")).ok())
                .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .filter(|r| r["pause_pid"].as_u64().is_some_and(|p| p > 0))
                .count()
        })
        .unwrap_or(0)
}

fn leftovers(c: &Cluster) -> (Vec<String>, Vec<String>, usize) {
    let netns: Vec<String> = String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().expect("ip").stdout)
        .lines()
        .filter(|l| l.starts_with(&c.netns_prefix))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_owned())
        .collect();
    let leases: Vec<String> = std::fs::read_dir(c.data.join("agent/cni/networks/portico"))
        .map(|rd| rd.flatten().filter_map(|e| e.file_name().into_string().ok()).filter(|n| n.parse::<std::net::IpAddr>().is_ok()).collect())
        .unwrap_or_default();
    let data = c.data.display().to_string();
    let procs = std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().chars().all(|ch| ch.is_ascii_digit()))
                .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
                .filter(|cmd| {
                    let s = String::from_utf8_lossy(cmd);
                    s.contains("sandbox-init") && s.contains(&data)
                })
                .count()
        })
        .unwrap_or(0);
    (netns, leases, procs)
}

#[test]
fn agent_stop_and_cleanup_leave_nothing_behind() {
    let mut c = Cluster::start_node();
    let out = c.apply(NETEXEC, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = c.apply(HOSTPORT_POD, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = ready_pods(&until(&c, "two ready pods", Duration::from_secs(60), READY_PODS, |t| ready_pods(t).len() == 2));
    until(&c, "the host-port pod running", Duration::from_secs(60), &["get", "pod", "hostport", "-o", "jsonpath={.status.phase}"], |t| t == "Running");
    let (netns, leases, procs) = leftovers(&c);
    assert_eq!((netns.len(), leases.len(), procs, hostport_rules(&c)), (3, 3, 3, 2), "what a running node holds");
    // A killed agent leaves its pods running; a restart removes and recreates them.
    c.restart();
    until(&c, "two recreated ready pods after a restart", Duration::from_secs(60), READY_PODS, |t| {
        let now = ready_pods(t);
        now.len() == 2 && now.iter().all(|(_, ip)| before.iter().all(|(_, old)| old != ip))
    });
    until(&c, "the host-port pod running again", Duration::from_secs(60), &["get", "pod", "hostport", "-o", "jsonpath={.status.phase}"], |t| t == "Running");
    until(&c, "all three sandboxes up", Duration::from_secs(30), &["get", "pods"], |_| leftovers(&c).2 == 3);
    let (netns, leases, procs) = leftovers(&c);
    assert_eq!((netns.len(), leases.len(), procs, hostport_rules(&c)), (3, 3, 3, 2), "a restart adopts by recreating, leaking nothing");
    // SIGTERM stops the pods and removes their sandboxes.
    assert!(c.terminate().is_some_and(|s| s.success()), "portico exits 0 on SIGTERM");
    assert_eq!(leftovers(&c), (vec![], vec![], 0), "after SIGTERM");
    assert_eq!(hostport_rules(&c), 0, "host-port rules after SIGTERM");
    // kill -9 then `portico agent --cleanup` also removes everything.
    c.restart();
    until(&c, "two ready pods again", Duration::from_secs(60), READY_PODS, |t| ready_pods(t).len() == 2);
    // Every sandbox record complete (a kill -9 while a sandbox is being created can leak its pause process).
    until(&c, "all three sandboxes up", Duration::from_secs(30), &["get", "pods"], |_| leftovers(&c).2 == 3 && complete_sandboxes(&c) == 3);
    c.kill9();
    assert_eq!((leftovers(&c).0.len(), hostport_rules(&c)), (3, 2), "pods and their host ports survive a killed agent");
    let out = c.on_node(env!("CARGO_BIN_EXE_portico")).args(["agent", "--cleanup", "--data-dir"]).arg(&c.data).output().expect("cleanup");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(leftovers(&c), (vec![], vec![], 0), "after portico agent --cleanup");
    let links = node_run(&c, "ip", &["-o", "link"]);
    assert!(!links.contains("portico0") && !links.contains("veth"), "{links}");
    let nft = node_run(&c, "nft", &["list", "ruleset"]);
    assert!(!nft.contains("portico-cni") && !nft.contains("portico-hostports"), "{nft}");
}
