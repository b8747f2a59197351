//! IPv6 and dual-stack Services end to end: a dual-stack cluster, a
//! selector-less RequireDualStack Service whose hand-written IPv6
//! EndpointSlice points at a TCP server on an IPv6 address in its own network
//! namespace, reached over the IPv6 ClusterIP from the node and from outside,
//! over a NodePort on the node's IPv6 address, and a Service without IPv6
//! endpoints refusing at once; dual-stack pods behind a selector Service;
//! a single-stack cluster's refusals; and an IPv6 UDP Service (ClusterIP
//! from the node, NodePort from outside) whose clients' conntrack entries are
//! deleted when they go stale: a flow from before the Service existed, the
//! endpoint a flow reaches going away, zero endpoints and back.

use crate::harness::{Cluster, stdout};
use crate::proxy::{apply, netexec, ready_ips, udp_from_fixed_port, wait};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) const NODE_IP6: &str = "fd00:200::2";
pub(crate) const OUTSIDE_IP6: &str = "fd00:200::1";
/// The node's end of the link to the backend namespace.
const LINK_IP6: &str = "fd00:201::1";
const BACKEND_IP6: &str = "fd00:201::2";

fn sh(script: &str) {
    let out = Command::new("sh").args(["-ec", script]).output().expect("sh");
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A network namespace off the node holding a netexec server on an IPv6
/// address; removed (server included) when dropped, also on failure.
struct Backend {
    ns: String,
    server: Child,
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// Gives the node and the outside namespace IPv6 addresses on the uplink,
/// the node a default route through the outside and the outside a route to
/// the IPv6 Service range through the node.
pub(crate) fn wire_uplink_ipv6(c: &Cluster) {
    let node = c.netns.clone().expect("node namespace");
    let outside = c.outside.clone().expect("outside namespace");
    let links = stdout(&Command::new("ip").args(["-n", &outside, "-o", "link", "show"]).output().expect("ip link"));
    let uplink = links.lines().filter_map(|l| l.split(':').nth(1)).map(|n| n.trim().split('@').next().unwrap_or("").to_owned()).find(|n| n != "lo").expect("outside uplink");
    sh(&format!(
        "ip -n {node} -6 addr add {NODE_IP6}/64 dev eth0 nodad; ip -n {node} -6 route add default via {OUTSIDE_IP6}
         ip -n {outside} -6 addr add {OUTSIDE_IP6}/64 dev {uplink} nodad; ip -n {outside} -6 route add fd00:10:96::/112 via {NODE_IP6}"
    ));
}

/// Wires IPv6 on the uplink and a new backend namespace behind the node, and
/// starts the backend's server on port 8080.
fn wire_ipv6(c: &Cluster) -> Backend {
    wire_uplink_ipv6(c);
    let node = c.netns.clone().expect("node namespace");
    let ns = format!("{node}-v6");
    let tag = format!("{}{}", std::process::id() % 100000, node.rsplit('-').next().unwrap_or("0"));
    let (a, b) = (format!("v6n{tag}"), format!("v6b{tag}"));
    sh(&format!(
        "ip netns add {ns}; ip -n {ns} link set lo up
         ip -n {node} link add {a} type veth peer name {b} netns {ns}
         ip -n {node} -6 addr add {LINK_IP6}/64 dev {a} nodad; ip -n {node} link set {a} up
         ip -n {ns} link set {b} name eth0; ip -n {ns} -6 addr add {BACKEND_IP6}/64 dev eth0 nodad; ip -n {ns} link set eth0 up
         ip -n {ns} -6 route add default via {LINK_IP6}"
    ));
    let server = Command::new("ip")
        .args(["netns", "exec", &ns, env!("CARGO_BIN_EXE_portico"), "netexec", "--http-port=8080", "--udp-port=-1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("netexec in the backend namespace");
    let backend = Backend { ns, server };
    let start = Instant::now();
    while !curl6(c.on_node("curl"), &format!("http://[{BACKEND_IP6}]:8080/echo?msg=up")).0 {
        assert!(start.elapsed() < Duration::from_secs(10), "the backend server did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    backend
}

/// `curl -6` (success, body, stderr, time taken).
fn curl6(cmd: Command, url: &str) -> (bool, String, String, Duration) {
    let (code, body, err, took) = curl_code(cmd, &["-6"], url);
    (code == Some(0), body, err, took)
}

/// curl with `flags`: (exit code, body, stderr, time taken); code 7 is "could not connect" (refused).
fn curl_code(mut cmd: Command, flags: &[&str], url: &str) -> (Option<i32>, String, String, Duration) {
    let start = Instant::now();
    let out = cmd.args(flags).args(["-g", "-sS", "--max-time", "3", url]).output().expect("curl");
    (out.status.code(), stdout(&out), String::from_utf8_lossy(&out.stderr).into_owned(), start.elapsed())
}

/// A log without its ANSI colour sequences (`ESC [ ... m`).
fn without_colours(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            out.push(ch);
        }
    }
    out
}

fn tables(c: &Cluster) -> String {
    stdout(&c.on_node("timeout").args(["20", "nft", "list", "tables"]).output().expect("nft"))
}

#[test]
fn proxy_dual_stack_services_over_ipv6_cluster_ip_node_port_and_reject() {
    let c = Cluster::start_node_with(&["--service-cidr", "10.96.0.0/12,fd00:10:96::/112", "--cluster-cidr", "10.244.0.0/16,fd00:10:244::/56"]);
    let _backend = wire_ipv6(&c);
    assert!(!tables(&c).contains("ip6 portico"), "no IPv6 Service yet, so no ip6 table: {}", tables(&c));
    apply(
        &c,
        &format!(
            "apiVersion: v1
kind: Service
metadata: {{name: web6}}
spec:
  type: NodePort
  ipFamilyPolicy: RequireDualStack
  ports: [{{name: http, port: 80, targetPort: 8080, nodePort: 30680}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web6-v6
  labels: {{kubernetes.io/service-name: web6}}
addressType: IPv6
ports: [{{name: http, port: 8080, protocol: TCP}}]
endpoints:
- addresses: [\"{BACKEND_IP6}\"]
  conditions: {{ready: true}}
---
apiVersion: v1
kind: Service
metadata: {{name: empty6}}
spec:
  ipFamilyPolicy: RequireDualStack
  ports: [{{name: http, port: 80, targetPort: 8080}}]
"
        ),
    );
    // Both families allocated, primary first.
    let ips = c.ok(&["get", "svc", "web6", "-o", "jsonpath={.spec.clusterIPs}"]);
    let list: Vec<String> = ips.trim_matches(|ch| ch == '[' || ch == ']').split(',').map(|s| s.trim_matches('"').to_owned()).collect();
    assert_eq!(list.len(), 2, "clusterIPs {ips}");
    assert!(list[0].starts_with("10.") && list[1].starts_with("fd00:10:96::"), "an IPv4 then an IPv6 ClusterIP: {ips}");
    assert_eq!(c.ok(&["get", "svc", "web6", "-o", "jsonpath={.spec.ipFamilies}"]), "[\"IPv4\",\"IPv6\"]");
    let v6 = list[1].clone();
    // A single-stack Service gets the primary family; asking for dual-stack later adds the IPv6 address.
    c.ok(&["create", "service", "clusterip", "plain", "--tcp=80:8080"]);
    assert_eq!(c.ok(&["get", "svc", "plain", "-o", "jsonpath={.spec.ipFamilyPolicy} {.spec.ipFamilies}"]), "SingleStack [\"IPv4\"]");
    c.ok(&["patch", "svc", "plain", "-p", "{\"spec\":{\"ipFamilyPolicy\":\"RequireDualStack\"}}"]);
    let upgraded = c.ok(&["get", "svc", "plain", "-o", "jsonpath={.spec.ipFamilies} {.spec.clusterIPs[1]}"]);
    assert!(upgraded.starts_with("[\"IPv4\",\"IPv6\"] fd00:10:96::"), "upgraded to dual-stack: {upgraded}");
    // Cluster DNS answers AAAA with the IPv6 ClusterIP and A with the IPv4 one.
    let dig = |t: &str| {
        stdout(&c.on_node("dig").args(["+time=2", "+tries=2", "+short", "@10.96.0.10", "web6.default.svc.cluster.local", t]).output().expect("dig")).trim().to_owned()
    };
    wait(&c, "cluster DNS has web6", Duration::from_secs(10), || !dig("A").is_empty());
    assert_eq!((dig("A"), dig("AAAA")), (list[0].clone(), v6.clone()), "A and AAAA answers of a dual-stack Service");
    // From the node (the host of the cluster).
    let url = format!("http://[{v6}]/echo?msg=hello6");
    wait(&c, "the IPv6 ClusterIP answers from the node", Duration::from_secs(10), || curl6(c.on_node("curl"), &url).1 == "hello6");
    assert!(tables(&c).contains("table ip6 portico"), "the ip6 table exists now: {}", tables(&c));
    // From outside the node: off the cluster's IPv6 pod range, so masqueraded to the node's address on the backend link.
    let (ok, body, err, _) = curl6(c.outside("curl"), &format!("http://[{v6}]/clientip"));
    assert!(ok, "IPv6 ClusterIP from outside: {err}");
    assert!(body.starts_with(&format!("[{LINK_IP6}]:")), "the server sees the node's address (masquerade), got {body:?}");
    // NodePort on the node's IPv6 address.
    let (ok, body, err, _) = curl6(c.outside("curl"), &format!("http://[{NODE_IP6}]:30680/echo?msg=np6"));
    assert!(ok && body == "np6", "NodePort over IPv6 from outside: {body:?} {err}");
    // The IPv4 side of the same Service has no endpoints: refused at once over IPv4 too.
    let (code, _, err, took) = curl_code(c.on_node("curl"), &["-4"], &format!("http://{}/", list[0]));
    assert!(code == Some(7) && took < Duration::from_secs(1), "IPv4 without endpoints refuses at once: {err} ({took:?})");
    // A Service without IPv6 endpoints refuses at once (a reset, not a timeout).
    let empty = c.ok(&["get", "svc", "empty6", "-o", "jsonpath={.spec.clusterIPs[1]}"]);
    // The refusal is the proxy's (not a missing route): the address is in the ip6 no-endpoint map.
    let map = stdout(&c.on_node("timeout").args(["20", "nft", "list", "map", "ip6", "portico", "no-endpoint-services"]).output().expect("nft"));
    assert!(map.contains(&format!("{empty} . tcp . 80 : goto reject-chain")), "{map}");
    for (who, cmd) in [("node", c.on_node("curl")), ("outside", c.outside("curl"))] {
        let (code, _, err, took) = curl_code(cmd, &["-6"], &format!("http://[{empty}]/"));
        assert_eq!(code, Some(7), "{who}: no IPv6 endpoints refuses the connection: {err}");
        assert!(took < Duration::from_secs(1), "{who}: refused at once, took {took:?}");
    }
    // Changes once the ip6 table exists (`plain` gaining its IPv6 ClusterIP) reach
    // the kernel as netlink batches, not through nft (the proxy's debug lines say which way).
    let plain6 = c.ok(&["get", "svc", "plain", "-o", "jsonpath={.spec.clusterIPs[1]}"]);
    wait(&c, "plain's IPv6 ClusterIP refuses (no endpoints)", Duration::from_secs(10), || {
        stdout(&c.on_node("timeout").args(["20", "nft", "list", "map", "ip6", "portico", "no-endpoint-services"]).output().expect("nft")).contains(&format!("{plain6} . tcp . 80 : goto reject-chain"))
    });
    let log = without_colours(&c.log());
    let ip6: Vec<&str> = log.lines().filter(|l| l.contains("incremental proxy sync") && l.contains("table=ip6 portico")).collect();
    assert!(!ip6.is_empty(), "an incremental sync of the ip6 table was logged:\n{log}");
    assert!(ip6.iter().all(|l| l.contains("path=Netlink")), "every ip6 incremental sync went over netlink:\n{}", ip6.join("\n"));
    assert!(!log.contains("incremental sync through nft"), "no incremental sync fell back to nft:\n{log}");
    // Rules survive a killed agent; `portico agent --cleanup` removes both families' tables.
    let mut c = c;
    c.kill9();
    assert!(tables(&c).contains("table ip6 portico"), "rules stay while the agent is down");
    let out = c.on_node(env!("CARGO_BIN_EXE_portico")).args(["agent", "--cleanup", "--data-dir"]).arg(&c.data).output().expect("cleanup");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let left = tables(&c);
    assert!(!left.contains("table ip portico") && !left.contains("table ip6 portico"), "after cleanup: {left}");
}

#[test]
fn proxy_single_stack_cluster_refuses_ipv6_services_with_upstream_errors() {
    let c = Cluster::start();
    let path = c.write_file(
        "apiVersion: v1
kind: Service
metadata: {name: dual}
spec:
  ipFamilyPolicy: RequireDualStack
  ports: [{port: 80}]
",
    );
    let err = c.fails(&["create", "-f", path.to_str().expect("path")]);
    assert!(
        err.contains("spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"),
        "{err}"
    );
    let path = c.write_file("apiVersion: v1\nkind: Service\nmetadata: {name: six}\nspec:\n  ipFamilies: [IPv6]\n  ports: [{port: 80}]\n");
    let err = c.fails(&["create", "-f", path.to_str().expect("path")]);
    assert!(err.contains("spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster"), "{err}");
    let path = c.write_file("apiVersion: v1\nkind: Service\nmetadata: {name: prefer}\nspec:\n  ipFamilyPolicy: PreferDualStack\n  ports: [{port: 80}]\n");
    c.ok(&["create", "-f", path.to_str().expect("path")]);
    assert_eq!(c.ok(&["get", "svc", "prefer", "-o", "jsonpath={.spec.ipFamilies}"]), "[\"IPv4\"]", "PreferDualStack falls back to the one family");
}

#[test]
fn proxy_dual_stack_pods_are_ipv6_endpoints_of_a_selector_service() {
    let c = Cluster::start_node_with(&["--service-cidr", "10.96.0.0/12,fd00:10:96::/112", "--cluster-cidr", "10.244.0.0/16,fd00:10:244::/56"]);
    // The node reaches the IPv6 Service range by its IPv6 default route, as a real node would.
    wire_uplink_ipv6(&c);
    assert_eq!(c.ok(&["get", "nodes", "-o", "jsonpath={.items[0].spec.podCIDRs}"]), "[\"10.244.0.0/24\",\"fd00:10:244::/64\"]", "a pod range per family");
    apply(
        &c,
        &format!(
            "{}---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  ipFamilyPolicy: PreferDualStack
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: sticky}}
spec:
  ipFamilyPolicy: PreferDualStack
  sessionAffinity: ClientIP
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
",
            netexec("web", 2, "")
        ),
    );
    wait(&c, "two ready pods", Duration::from_secs(60), || ready_ips(&c, "web").len() == 2);
    let names: Vec<String> = ready_ips(&c, "web").into_iter().map(|(n, _)| n).collect();
    // Each pod has an IPv4 and an IPv6 address, in that order.
    let pod_ips = c.ok(&["get", "pods", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.status.podIPs[*].ip}{\"\\n\"}{end}"]);
    let mut v6_ips: Vec<String> = Vec::new();
    for line in pod_ips.lines() {
        let ips: Vec<&str> = line.split_whitespace().collect();
        assert!(ips.len() == 2 && ips[0].starts_with("10.244.0.") && ips[1].starts_with("fd00:10:244::"), "podIPs {line:?}");
        v6_ips.push(ips[1].to_owned());
    }
    v6_ips.sort();
    // One slice per family.
    let slices = |c: &Cluster| c.ok(&["get", "endpointslices", "-l", "kubernetes.io/service-name=web", "-o", "jsonpath={range .items[*]}{.addressType} {.endpoints[*].addresses[0]}{\"\\n\"}{end}"]);
    wait(&c, "an IPv6 EndpointSlice with both pods", Duration::from_secs(10), || {
        slices(&c).lines().any(|l| {
            let mut words: Vec<&str> = l.split_whitespace().collect();
            words.first() == Some(&"IPv6") && {
                words.remove(0);
                words.sort_unstable();
                words == v6_ips.iter().map(String::as_str).collect::<Vec<_>>()
            }
        })
    });
    assert!(slices(&c).lines().any(|l| l.starts_with("IPv4 ") && l.split_whitespace().count() == 3), "and an IPv4 one: {}", slices(&c));
    let v6 = c.ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIPs[1]}"]);
    assert!(v6.starts_with("fd00:10:96::"), "PreferDualStack on a dual-stack cluster gets an IPv6 ClusterIP: {v6}");
    let url = format!("http://[{v6}]/hostname");
    // From the node, and from a pod (its own IPv6 address and default route from `portico cni`).
    wait(&c, "the IPv6 ClusterIP reaches a pod from the node", Duration::from_secs(10), || names.contains(&curl6(c.on_node("curl"), &url).1));
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let out = c.kubectl(&["exec", &names[0], "--", "curl", "-6", "-g", "-sS", "--max-time", "3", &url]);
        let body = stdout(&out);
        assert!(out.status.success() && names.contains(&body), "from a pod over IPv6: {body:?} {}", String::from_utf8_lossy(&out.stderr));
        seen.insert(body);
    }
    // Both backends, the client pod itself among them: hairpin traffic is masqueraded over IPv6 too.
    assert_eq!(seen.len(), 2, "20 requests over IPv6 reach both pods: {seen:?}");
    // ClientIP affinity over IPv6 (the ip6 affinity sets): every request from the node to one pod.
    let sticky = format!("http://[{}]/hostname", c.ok(&["get", "svc", "sticky", "-o", "jsonpath={.spec.clusterIPs[1]}"]));
    wait(&c, "the sticky IPv6 ClusterIP answers", Duration::from_secs(10), || names.contains(&curl6(c.on_node("curl"), &sticky).1));
    let hits: std::collections::BTreeSet<String> = (0..15).map(|_| curl6(c.on_node("curl"), &sticky).1).collect();
    assert_eq!(hits.len(), 1, "15 requests with ClientIP affinity reach one pod: {hits:?}");
}

/// The replies of a running [`udp_from_fixed_port`] client as they arrive,
/// each with the time it was read; the client is killed when dropped.
pub(crate) struct UdpReplies {
    client: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl UdpReplies {
    /// Starts the client with `python3` (a command in the client's namespace).
    pub(crate) fn start(python3: Command, addr: &str, port: u16, secs: u32) -> Self {
        let mut client = udp_from_fixed_port(python3, addr, port, secs);
        let out = client.stdout.take().expect("client stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().push((Instant::now(), line));
            }
        });
        Self { client, lines }
    }

    /// The replies read at or after `since`.
    pub(crate) fn since(&self, since: Instant) -> Vec<String> {
        self.lines.lock().iter().filter(|(t, _)| *t >= since).map(|(_, l)| l.clone()).collect()
    }

    /// Waits up to `limit` for a reply `want` read at or after `since`; returns how long after `since` it came.
    pub(crate) fn wait_for(&self, want: &str, since: Instant, limit: Duration) -> Duration {
        self.wait_until(since, limit, &format!("from {want}"), |l| l == want).1
    }

    /// Waits up to `limit` for the first reply read at or after `since` that `pick` accepts;
    /// returns it and how long after `since` it came.
    pub(crate) fn wait_until(&self, since: Instant, limit: Duration, what: &str, pick: impl Fn(&str) -> bool) -> (String, Duration) {
        loop {
            let first = self.lines.lock().iter().find(|(t, l)| *t >= since && pick(l)).map(|(t, l)| (l.clone(), *t - since));
            if let Some(found) = first {
                return found;
            }
            assert!(since.elapsed() < limit, "no UDP reply {what} within {limit:?}; replies since: {:?}", self.since(since));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for UdpReplies {
    fn drop(&mut self) {
        let _ = self.client.kill();
        let _ = self.client.wait();
    }
}

/// Ready IPv6 endpoints of `svc` (addresses from its IPv6 EndpointSlices).
fn ready_v6_endpoints(c: &Cluster, svc: &str) -> Vec<String> {
    let text = c.ok(&[
        "get",
        "endpointslices",
        "-l",
        &format!("kubernetes.io/service-name={svc}"),
        "-o",
        "jsonpath={range .items[?(@.addressType==\"IPv6\")]}{range .endpoints[*]}{.addresses[0]} {.conditions.ready}{\"\\n\"}{end}{end}",
    ]);
    text.lines().filter_map(|l| l.strip_suffix(" true")).map(str::to_owned).collect()
}

/// The ready pod of `app` with its IPv6 address, once there is exactly one.
fn one_ready_pod_v6(c: &Cluster, app: &str, not: &str) -> (String, String) {
    let mut found = None;
    wait(c, &format!("one ready {app} pod other than {not:?}"), Duration::from_secs(60), || {
        let ready = ready_ips(c, app);
        found = match ready.as_slice() {
            [(name, _)] if name != not => {
                let ip = c.ok(&["get", "pod", name, "-o", "jsonpath={.status.podIPs[1].ip}"]);
                Some((name.clone(), ip))
            }
            _ => None,
        };
        found.is_some()
    });
    found.expect("a ready pod")
}

#[test]
fn proxy_ipv6_udp_flow_follows_a_new_service_a_replaced_pod_and_zero_endpoints_and_back() {
    let c = Cluster::start_node_with(&["--service-cidr", "10.96.0.0/12,fd00:10:96::/112", "--cluster-cidr", "10.244.0.0/16,fd00:10:244::/56"]);
    wire_uplink_ipv6(&c);
    apply(&c, &netexec("udp6", 1, ""));
    let (first, first_ip) = one_ready_pod_v6(&c, "udp6", "");
    // One client per path, one source port each, for the whole test: every answer rides the
    // same conntrack entry. The node's client starts before the Service exists, so its first
    // packets leave unNATed and make an entry that must go when the Service gets its endpoint.
    let vip = "fd00:10:96::53";
    let start = Instant::now();
    let node = UdpReplies::start(c.on_node("python3"), vip, 53, 90);
    std::thread::sleep(Duration::from_secs(1));
    let before = node.since(start);
    assert!(!before.is_empty() && before.iter().all(|r| r == "-"), "no answers before the Service exists: {before:?}");
    apply(
        &c,
        &format!(
            "apiVersion: v1
kind: Service
metadata: {{name: udp6}}
spec:
  type: NodePort
  ipFamilyPolicy: SingleStack
  ipFamilies: [IPv6]
  clusterIP: {vip}
  selector: {{app: udp6}}
  ports: [{{name: dns-like, port: 53, targetPort: udp, protocol: UDP, nodePort: 30553}}]
"
        ),
    );
    wait(&c, "the first pod in the IPv6 endpoints", Duration::from_secs(20), || ready_v6_endpoints(&c, "udp6") == [first_ip.clone()]);
    let published = Instant::now();
    let took = node.wait_for(&first, published, Duration::from_secs(5));
    eprintln!("UDP over the ClusterIP reached the first pod {took:?} after its endpoint was published");
    // From outside through the NodePort on the node's IPv6 address.
    let outside = UdpReplies::start(c.outside("python3"), NODE_IP6, 30553, 90);
    outside.wait_for(&first, published, Duration::from_secs(5));
    let clients = [("ClusterIP from the node", &node), ("NodePort from outside", &outside)];
    // A second endpoint does not move the flows (their entries stay); then the pod they reach
    // goes away while the other stays ready, so the Service never has zero endpoints.
    c.ok(&["scale", "deploy", "udp6", "--replicas=2"]);
    wait(&c, "two ready IPv6 endpoints", Duration::from_secs(30), || ready_v6_endpoints(&c, "udp6").len() == 2);
    let scaled = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    for (path, client) in clients {
        let got = client.since(scaled);
        assert!(got.contains(&first) && got.iter().all(|r| r == &first || r == "-"), "{path}: the flow stays on {first} when a second endpoint comes: {got:?}");
    }
    c.ok(&["delete", "pod", &first, "--wait=false"]);
    wait(&c, "the deleted pod out of the ready IPv6 endpoints", Duration::from_secs(20), || !ready_v6_endpoints(&c, "udp6").contains(&first_ip));
    let moved = Instant::now();
    for (path, client) in clients {
        let (second, took) = client.wait_until(moved, Duration::from_secs(5), &format!("from a pod other than {first}"), |r| r != "-" && r != first);
        eprintln!("UDP ({path}) reached {second} {took:?} after {first} left the ready endpoints");
        let after = client.since(moved + took);
        assert!(after.iter().all(|r| r != &first), "{path}: no answer from {first} after it left: {after:?}");
    }
    // No endpoints, then one again: the flows come back to the new pod. (Meanwhile the reject
    // refuses each packet as a new flow, before conntrack confirms an entry for it.)
    c.ok(&["scale", "deploy", "udp6", "--replicas=0"]);
    wait(&c, "no IPv6 endpoints", Duration::from_secs(30), || c.ok(&["get", "endpointslices", "-l", "kubernetes.io/service-name=udp6", "-o", "jsonpath={.items[*].endpoints[*].addresses}"]).is_empty());
    let empty = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    for (path, client) in clients {
        let silent = client.since(empty + Duration::from_millis(500));
        assert!(!silent.is_empty() && silent.iter().all(|r| r == "-"), "{path}: no answers while the Service has no endpoints: {silent:?}");
    }
    c.ok(&["scale", "deploy", "udp6", "--replicas=1"]);
    let (third, third_ip) = one_ready_pod_v6(&c, "udp6", "");
    wait(&c, "the third pod in the IPv6 endpoints", Duration::from_secs(20), || ready_v6_endpoints(&c, "udp6") == [third_ip.clone()]);
    let back = Instant::now();
    for (path, client) in clients {
        let took = client.wait_for(&third, back, Duration::from_secs(5));
        eprintln!("UDP ({path}) reached the pod after zero endpoints {took:?} after its endpoint was published");
        let after = client.since(back + took);
        assert!(after.iter().all(|r| r == &third || r == "-"), "{path}: every answer after the move is from {third}: {after:?}");
    }
}
