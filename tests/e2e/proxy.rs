//! The Service proxy end to end: real pods, clients on the node, in pods and
//! in an outside namespace, through ClusterIP, NodePort, LoadBalancer and
//! external IPs, with affinity, UDP and no-endpoint behaviour.

use crate::harness::{Cluster, NODE_IP, stdout};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

pub(crate) fn wait(c: &Cluster, what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not true after {limit:?}\npods:\n{}\nlog tail:\n{}", stdout(&c.kubectl(&["get", "pods", "-o", "wide"])), {
            let l = c.log();
            l.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
        });
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// curl from the node: (success, body).
fn curl(c: &Cluster, url: &str) -> (bool, String) {
    let out = c.on_node("curl").args(["-sS", "--max-time", "3", url]).output().expect("curl");
    (out.status.success(), stdout(&out))
}

/// curl from the outside namespace.
fn curl_outside(c: &Cluster, url: &str) -> (bool, String) {
    let out = c.outside("curl").args(["-sS", "--max-time", "3", url]).output().expect("curl");
    (out.status.success(), stdout(&out))
}

pub(crate) fn netexec(name: &str, replicas: u32, extra_ports: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: netexec
        image: registry.k8s.io/e2e-test-images/agnhost:2.53
        args: [\"netexec\", \"--http-port=8080\", \"--udp-port=8081\"]
        ports: [{{containerPort: 8080, name: http}}, {{containerPort: 8081, name: udp, protocol: UDP}}]
        readinessProbe:
          httpGet: {{path: /readyz, port: 8080}}
          periodSeconds: 1
{extra_ports}"
    )
}

pub(crate) fn ready_ips(c: &Cluster, app: &str) -> Vec<(String, String)> {
    let text = c.ok(&["get", "pods", "-l", &format!("app={app}"), "-o", "jsonpath={range .items[?(@.status.containerStatuses[0].ready==true)]}{.metadata.name} {.status.podIP}{\"\\n\"}{end}"]);
    text.lines().filter_map(|l| l.split_once(' ')).map(|(a, b)| (a.to_owned(), b.to_owned())).collect()
}

fn endpoints(c: &Cluster, svc: &str) -> String {
    stdout(&c.kubectl(&["get", "ep", svc, "-o", "jsonpath={.subsets[*].addresses[*].ip}"]))
}

pub(crate) fn apply(c: &Cluster, manifest: &str) {
    let out = c.apply(manifest, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Sends "hostname" over UDP with `python3` (a `python3` command, e.g.
/// `Cluster::on_node`), from one fixed source port, every 100 ms for `secs`
/// seconds, to an IPv4 or IPv6 `addr`; prints each reply (`-` when none came
/// within 100 ms) as a line of the child's stdout.
pub(crate) fn udp_from_fixed_port(mut python3: std::process::Command, addr: &str, port: u16, secs: u32) -> std::process::Child {
    let (family, any) = if addr.contains(':') { ("AF_INET6", "::") } else { ("AF_INET", "0.0.0.0") };
    let script = format!(
        "import socket,time,sys\ns=socket.socket(socket.{family},socket.SOCK_DGRAM)\ns.bind(('{any}',40555))\ns.settimeout(0.1)\nend=time.time()+{secs}\nwhile time.time()<end:\n  try:\n    s.sendto(b'hostname',('{addr}',{port}))\n    print(s.recv(2048).decode(),flush=True)\n  except Exception:\n    print('-',flush=True)\n  time.sleep(0.1)\n"
    );
    python3.args(["-c", &script]).stdout(std::process::Stdio::piped()).spawn().expect("python3")
}

#[test]
fn cluster_ip_balances_preserves_source_hairpins_and_survives_pod_replacement() {
    let c = Cluster::start_node();
    apply(&c, &format!("{}---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports:
  - {{name: http, port: 80, targetPort: http}}
  - {{name: dns-like, port: 80, targetPort: udp, protocol: UDP}}
", netexec("web", 2, "")));
    wait(&c, "two ready pods in the endpoints", Duration::from_secs(60), || ready_ips(&c, "web").len() == 2 && endpoints(&c, "web").split(' ').count() == 2);
    let pods = ready_ips(&c, "web");
    let cip = c.ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    // 100 requests from the node reach both pods.
    let mut seen = BTreeSet::new();
    for _ in 0..100 {
        let (ok, body) = curl(&c, &format!("http://{cip}/hostname"));
        assert!(ok, "request to the ClusterIP failed");
        seen.insert(body);
    }
    assert_eq!(seen, pods.iter().map(|(n, _)| n.clone()).collect::<BTreeSet<_>>(), "both pods answer");
    // From a pod: the other pod sees the client pod's own IP; the pod reaches itself (hairpin).
    let (a_name, a_ip) = &pods[0];
    let (mut saw_other, mut saw_self) = (false, false);
    for _ in 0..60 {
        let out = c.ok(&["exec", a_name, "--", "curl", "-sS", "--max-time", "3", &format!("http://{cip}/hostname")]);
        let ip = c.ok(&["exec", a_name, "--", "curl", "-sS", "--max-time", "3", &format!("http://{cip}/clientip")]);
        if out == *a_name {
            saw_self = true;
        } else if ip.starts_with(&format!("{a_ip}:")) {
            saw_other = true;
        }
        if saw_self && saw_other {
            break;
        }
    }
    assert!(saw_other, "a pod on the same node sees the client pod's IP");
    assert!(saw_self, "a pod reaches itself through its Service (hairpin)");
    // UDP through the same port number, and conntrack after the endpoint is replaced.
    c.ok(&["scale", "deploy", "web", "--replicas=1"]);
    wait(&c, "one endpoint", Duration::from_secs(30), || endpoints(&c, "web").split(' ').count() == 1);
    let only = ready_ips(&c, "web");
    let only = only.first().expect("one pod").clone();
    let client = udp_from_fixed_port(c.on_node("python3"), &cip, 80, 25);
    std::thread::sleep(Duration::from_secs(2));
    c.ok(&["delete", "pod", &only.0, "--wait=false"]);
    wait(&c, "a replacement pod in the endpoints", Duration::from_secs(30), || {
        let eps = endpoints(&c, "web");
        !eps.is_empty() && !eps.contains(&only.1)
    });
    let new_name = ready_ips(&c, "web").first().expect("replacement").0.clone();
    let out = client.wait_with_output().expect("udp client");
    let replies: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert!(replies.contains(&only.0), "UDP reached the first pod: {replies:?}");
    assert!(replies.contains(&new_name), "UDP from the same source port reaches the replacement (stale conntrack entry deleted): {replies:?}");
    // After the endpoints moved, no request goes to the dead IP.
    for _ in 0..20 {
        let (ok, body) = curl(&c, &format!("http://{cip}/hostname"));
        assert!(ok && body == new_name, "after the endpoint update every request reaches {new_name}, got {body:?}");
    }
}

#[test]
fn node_port_load_balancer_external_ips_manual_cluster_ip_and_selectorless() {
    let c = Cluster::start_node();
    // A TCP server on the node itself, for a selector-less Service (the external MySQL pattern).
    let mut host_server = c
        .on_node(env!("CARGO_BIN_EXE_portico"))
        .args(["netexec", "serve-hostname", "--port=3306", "--tcp"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("server on the node");
    apply(&c, &format!("{}---
apiVersion: v1
kind: Service
metadata: {{name: np}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080, nodePort: 30380}}]
---
apiVersion: v1
kind: Service
metadata: {{name: manual}}
spec:
  clusterIP: 10.102.1.87
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: lb}}
spec:
  type: LoadBalancer
  selector: {{app: web}}
  ports: [{{port: 8088, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: ext}}
spec:
  selector: {{app: web}}
  externalIPs: [198.51.100.7]
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: mysql}}
spec:
  ports: [{{port: 3306}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: mysql}}
subsets:
- addresses: [{{ip: {NODE_IP}}}]
  ports: [{{port: 3306}}]
", netexec("web", 2, "")));
    wait(&c, "two ready pods", Duration::from_secs(60), || ready_ips(&c, "web").len() == 2 && endpoints(&c, "np").split(' ').count() == 2);
    let names: BTreeSet<String> = ready_ips(&c, "web").into_iter().map(|(n, _)| n).collect();
    // NodePort from outside the node.
    wait(&c, "NodePort answers from outside", Duration::from_secs(10), || {
        let (ok, body) = curl_outside(&c, &format!("http://{NODE_IP}:30380/hostname"));
        ok && names.contains(&body)
    });
    // Manual ClusterIP.
    let (ok, body) = curl(&c, "http://10.102.1.87/hostname");
    assert!(ok && names.contains(&body), "manual clusterIP: {body:?}");
    // LoadBalancer: an ingress IP, reachable from outside.
    let mut lb_ip = String::new();
    wait(&c, "LoadBalancer ingress IP", Duration::from_secs(20), || {
        lb_ip = c.ok(&["get", "svc", "lb", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"]);
        !lb_ip.is_empty()
    });
    let row = c.ok(&["get", "svc", "lb"]);
    assert!(row.contains(&lb_ip), "EXTERNAL-IP column shows {lb_ip}: {row}");
    let (ok, body) = curl_outside(&c, &format!("http://{lb_ip}:8088/hostname"));
    assert!(ok && names.contains(&body), "LoadBalancer from outside: {body:?}");
    // externalIPs: the outside routes the address to the node.
    let route = c.outside("ip").args(["route", "add", "198.51.100.7/32", "via", NODE_IP]).output().expect("ip route");
    assert!(route.status.success());
    let (ok, body) = curl_outside(&c, "http://198.51.100.7/hostname");
    assert!(ok && names.contains(&body), "externalIP from outside: {body:?}");
    // Selector-less Service with hand-written Endpoints reaches the server on the node.
    let cip = c.ok(&["get", "svc", "mysql", "-o", "jsonpath={.spec.clusterIP}"]);
    let pod = names.iter().next().expect("pod").clone();
    let mut got = String::new();
    wait(&c, "selector-less Service reaches the node's server", Duration::from_secs(10), || {
        got = stdout(&c.kubectl(&["exec", &pod, "--", "curl", "-sS", "--max-time", "2", &format!("telnet://{cip}:3306")]));
        !got.is_empty()
    });
    assert!(!got.trim().is_empty(), "the server on the node answered with its hostname");
    let _ = host_server.kill();
    let _ = host_server.wait();
}

#[test]
fn affinity_no_endpoints_and_rule_lifecycle() {
    let c = Cluster::start_node();
    apply(&c, &format!("{}---
apiVersion: v1
kind: Service
metadata: {{name: sticky}}
spec:
  selector: {{app: web}}
  sessionAffinity: ClientIP
  sessionAffinityConfig: {{clientIP: {{timeoutSeconds: 2}}}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: empty}}
spec:
  selector: {{app: nothing}}
  ports: [{{port: 80}}]
", netexec("web", 3, "")));
    wait(&c, "three ready endpoints", Duration::from_secs(60), || endpoints(&c, "sticky").split(' ').count() == 3);
    let cip = c.ok(&["get", "svc", "sticky", "-o", "jsonpath={.spec.clusterIP}"]);
    let burst = |n: usize| -> BTreeSet<String> { (0..n).map(|_| curl(&c, &format!("http://{cip}/hostname")).1).collect() };
    let first = burst(15);
    assert_eq!(first.len(), 1, "ClientIP affinity: 15 requests, one backend: {first:?}");
    // After timeoutSeconds of silence the choice is made again.
    let mut changed = false;
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(2600));
        let again = burst(3);
        assert_eq!(again.len(), 1, "still sticky within the timeout: {again:?}");
        if again != first {
            changed = true;
            break;
        }
    }
    assert!(changed, "a new backend is chosen after the affinity timeout");
    // None: requests spread again.
    c.ok(&["patch", "svc", "sticky", "-p", r#"{"spec":{"sessionAffinity":"None"}}"#]);
    wait(&c, "affinity off", Duration::from_secs(10), || burst(15).len() > 1);
    c.ok(&["patch", "svc", "sticky", "-p", r#"{"spec":{"sessionAffinity":"ClientIP"}}"#]);
    wait(&c, "affinity back on", Duration::from_secs(10), || burst(10).len() == 1);
    // No endpoints: refused at once, not a timeout.
    let ecip = c.ok(&["get", "svc", "empty", "-o", "jsonpath={.spec.clusterIP}"]);
    let start = Instant::now();
    let out = c.on_node("curl").args(["-sS", "--max-time", "5", &format!("http://{ecip}/")]).output().expect("curl");
    assert_eq!(out.status.code(), Some(7), "connection refused: {}", String::from_utf8_lossy(&out.stderr));
    assert!(start.elapsed() < Duration::from_secs(1), "refused at once, took {:?}", start.elapsed());
    // Metrics and health of the proxy.
    let metrics = stdout(&c.on_node("curl").args(["-sS", "http://127.0.0.1:10256/metrics"]).output().expect("curl"));
    assert!(metrics.contains("kubeproxy_sync_proxy_rules_duration_seconds_count") && metrics.contains("kubeproxy_network_programming_duration_seconds_bucket"), "{metrics}");
    assert_eq!(stdout(&c.on_node("curl").args(["-sS", "http://127.0.0.1:10256/healthz"]).output().expect("curl")), "ok");
    // Rules stay when Portico stops (traffic keeps flowing), and cleanup removes them.
    let mut c = c;
    c.kill9();
    let (ok, _) = curl(&c, &format!("http://{cip}/hostname"));
    assert!(ok, "traffic flows while the proxy is down");
    let out = c.on_node(env!("CARGO_BIN_EXE_portico")).args(["agent", "--cleanup", "--data-dir"]).arg(&c.data).output().expect("cleanup");
    assert!(out.status.success());
    let tables = stdout(&c.on_node("nft").args(["list", "tables"]).output().expect("nft"));
    assert!(!tables.contains("portico"), "{tables}");
}

#[test]
fn services_spread_over_shard_tables_all_answer() {
    // Two Service ports per table: the few Services here already need shard tables.
    let c = Cluster::start_node_with(&["--proxy-ports-per-table", "2"]);
    let svc = |name: &str, selector: &str| format!("---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: {selector}}}\n  ports: [{{port: 80, targetPort: 8080}}]\n");
    let mut manifest = netexec("web", 2, "");
    for name in ["s1", "s2", "s3", "s4", "s5"] {
        manifest.push_str(&svc(name, "web"));
    }
    manifest.push_str(&svc("empty", "nothing"));
    manifest.push_str("---\napiVersion: v1\nkind: Service\nmetadata: {name: np}\nspec:\n  type: NodePort\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080, nodePort: 30381}]\n");
    apply(&c, &manifest);
    wait(&c, "two ready pods behind every Service", Duration::from_secs(60), || {
        ready_ips(&c, "web").len() == 2 && ["s1", "s2", "s3", "s4", "s5", "np"].iter().all(|s| endpoints(&c, s).split(' ').count() == 2)
    });
    let names: BTreeSet<String> = ready_ips(&c, "web").into_iter().map(|(n, _)| n).collect();
    let nft = |args: &[&str]| stdout(&c.on_node("nft").args(args).output().expect("nft"));
    let shard_tables = || -> Vec<String> { nft(&["list", "tables", "ip"]).lines().filter_map(|l| l.strip_prefix("table ip ")).filter(|t| t.starts_with("portico-shard-")).map(str::to_owned).collect() };
    let table_of = |cip: &str| -> Option<String> { shard_tables().into_iter().find(|t| nft(&["list", "table", "ip", t]).contains(&format!("{cip} . tcp . 80 : goto"))) };
    let cips: Vec<(String, String)> = ["s1", "s2", "s3", "s4", "s5"].iter().map(|s| (s.to_string(), c.ok(&["get", "svc", s, "-o", "jsonpath={.spec.clusterIP}"]))).collect();
    let mut in_shards = 0;
    let pod = names.iter().next().expect("pod").clone();
    for (name, cip) in &cips {
        in_shards += usize::from(table_of(cip).is_some());
        wait(&c, &format!("{name} ({cip}) answers from the node"), Duration::from_secs(10), || {
            let (ok, body) = curl(&c, &format!("http://{cip}/hostname"));
            ok && names.contains(&body)
        });
        let from_pod = stdout(&c.kubectl(&["exec", &pod, "--", "curl", "-sS", "--max-time", "3", &format!("http://{cip}/hostname")]));
        assert!(names.contains(&from_pod), "{name} ({cip}) from a pod: {from_pod:?}");
    }
    assert!(in_shards >= 3, "most of the Services live in shard tables ({in_shards} of 5; tables {:?})", shard_tables());
    // The NodePort lives in the main table and answers from outside; no endpoints still means refused at once.
    assert!(nft(&["list", "table", "ip", "portico"]).contains("tcp . 30381 : goto"), "the NodePort is in the main table");
    wait(&c, "NodePort answers from outside", Duration::from_secs(10), || {
        let (ok, body) = curl_outside(&c, &format!("http://{NODE_IP}:30381/hostname"));
        ok && names.contains(&body)
    });
    let ecip = c.ok(&["get", "svc", "empty", "-o", "jsonpath={.spec.clusterIP}"]);
    let start = Instant::now();
    let out = c.on_node("curl").args(["-sS", "--max-time", "5", &format!("http://{ecip}/")]).output().expect("curl");
    assert_eq!(out.status.code(), Some(7), "connection refused: {}", String::from_utf8_lossy(&out.stderr));
    assert!(start.elapsed() < Duration::from_secs(1), "refused at once, took {:?}", start.elapsed());
    // A Service in a shard table goes: its rules leave that table, the others keep answering.
    let (gone, gone_ip) = cips.iter().find(|(_, cip)| table_of(cip).is_some()).expect("a Service in a shard table").clone();
    let table = table_of(&gone_ip).expect("its table");
    c.ok(&["delete", "svc", &gone]);
    wait(&c, "the deleted Service's rules are gone", Duration::from_secs(10), || !nft(&["list", "table", "ip", &table]).contains(&gone_ip));
    for (name, cip) in cips.iter().filter(|(n, _)| *n != gone) {
        let (ok, body) = curl(&c, &format!("http://{cip}/hostname"));
        assert!(ok && names.contains(&body), "{name} after {gone} went: {body:?}");
    }
    // Cleanup removes the shard tables with the main one.
    let mut c = c;
    c.kill9();
    let out = c.on_node(env!("CARGO_BIN_EXE_portico")).args(["agent", "--cleanup", "--data-dir"]).arg(&c.data).output().expect("cleanup");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tables = stdout(&c.on_node("nft").args(["list", "tables"]).output().expect("nft"));
    assert!(!tables.contains("portico"), "{tables}");
}
