//! Cluster DNS end to end: `dig` from the node (through the kube-dns Service
//! VIP) and from pods (their resolv.conf), over UDP and TCP.

use crate::harness::{Cluster, OUTSIDE_IP, in_service_range, stdout};
use std::time::{Duration, Instant};

/// A fake upstream resolver in the outside namespace: every A question gets 1.2.3.4.
const UPSTREAM: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5353))
while True:
    q, peer = s.recvfrom(4096)
    i = 12
    while q[i] != 0:
        i += q[i] + 1
    question = q[12:i + 5]
    qtype = q[i + 1:i + 3]
    answers = b""
    count = 0
    if qtype == b"\x00\x01":
        answers = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x01\x02\x03\x04"
        count = 1
    hdr = q[:2] + b"\x81\x80\x00\x01" + count.to_bytes(2, "big") + b"\x00\x00\x00\x00"
    s.sendto(hdr + question + answers, peer)
"#;

fn dig(c: &Cluster, args: &[&str]) -> String {
    let mut all = vec!["+time=2", "+tries=2", "@10.96.0.10"];
    all.extend_from_slice(args);
    stdout(&c.on_node("dig").args(&all).output().expect("dig"))
}

fn short(c: &Cluster, args: &[&str]) -> Vec<String> {
    let mut a = args.to_vec();
    a.push("+short");
    let mut v: Vec<String> = dig(c, &a).lines().map(str::to_owned).collect();
    v.sort();
    v
}

fn status(c: &Cluster, args: &[&str]) -> String {
    dig(c, args).lines().find_map(|l| l.split("status: ").nth(1).map(|s| s.split(',').next().unwrap_or("").to_owned())).unwrap_or_default()
}

fn wait(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not true after {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

const WORKLOAD: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: netexec
        image: registry.k8s.io/e2e-test-images/agnhost:2.53
        args: [\"netexec\", \"--http-port=8080\"]
        ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: my-nginx}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: baidu}
spec:
  type: ExternalName
  externalName: www.baidu.com
---
apiVersion: v1
kind: Service
metadata: {name: dns-test-service}
spec:
  clusterIP: None
  selector: {dns-test: \"true\"}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: querier, labels: {dns-test: \"true\"}}
spec:
  hostname: dns-querier-1
  subdomain: dns-test-service
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: portico/netexec
    args: [\"--http-port=80\"]
";

#[test]
fn cluster_names_resolve_from_the_node_and_from_pods() {
    let c = Cluster::start_node_with(&["--dns-upstream", &format!("{OUTSIDE_IP}:5353")]);
    let mut upstream = c.outside("python3").args(["-c", UPSTREAM]).spawn().expect("fake upstream");
    let out = c.apply(WORKLOAD, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pod_ips = || {
        let t = c.ok(&["get", "pods", "-l", "app=web", "-o", "jsonpath={range .items[?(@.status.containerStatuses[0].ready==true)]}{.status.podIP}{\"\\n\"}{end}"]);
        let mut v: Vec<String> = t.lines().map(str::to_owned).collect();
        v.sort();
        v
    };
    wait("two ready pods", Duration::from_secs(60), || pod_ips().len() == 2);
    let ips = pod_ips();
    let cip = c.ok(&["get", "svc", "my-nginx", "-o", "jsonpath={.spec.clusterIP}"]);
    wait("DNS answers", Duration::from_secs(20), || short(&c, &["my-nginx.default.svc.cluster.local"]) == [cip.clone()]);
    for tcp in [false, true] {
        let t = if tcp { "+tcp" } else { "+notcp" };
        assert_eq!(short(&c, &[t, "my-nginx.default.svc.cluster.local"]), [cip.clone()], "ClusterIP A ({t})");
        assert_eq!(short(&c, &[t, "MY-NGINX.Default.SVC.cluster.local"]), [cip.clone()], "case-insensitive ({t})");
        assert_eq!(short(&c, &[t, "_http._tcp.my-nginx.default.svc.cluster.local", "SRV"]), ["0 100 80 my-nginx.default.svc.cluster.local."], "SRV ({t})");
        assert_eq!(short(&c, &[t, "-x", &cip]), ["my-nginx.default.svc.cluster.local."], "PTR ({t})");
        assert_eq!(short(&c, &[t, "kubernetes.default.svc.cluster.local"]), ["10.96.0.1"], "kubernetes ({t})");
        wait("headless endpoints", Duration::from_secs(10), || short(&c, &[t, "headless.default.svc.cluster.local"]) == ips);
        let srv = short(&c, &[t, "_http._tcp.headless.default.svc.cluster.local", "SRV"]);
        assert_eq!(srv.len(), 2, "{srv:?}");
        assert_eq!(short(&c, &[t, "dns-version.cluster.local", "TXT"]), ["\"1.1.0\""]);
        assert_eq!(short(&c, &[t, "baidu.default.svc.cluster.local"]), ["1.2.3.4", "www.baidu.com."], "ExternalName chased through the forwarder ({t})");
        assert_eq!(short(&c, &[t, "baidu.default.svc.cluster.local", "CNAME"]), ["www.baidu.com."]);
        assert_eq!(short(&c, &[t, "10-244-0-7.default.pod.cluster.local"]), ["10.244.0.7"], "pod record");
        // NXDOMAIN vs NODATA, with the SOA.
        let nx = dig(&c, &[t, "nothere.default.svc.cluster.local"]);
        assert!(nx.contains("status: NXDOMAIN") && nx.contains("SOA\tns.dns.cluster.local. hostmaster.cluster.local."), "{nx}");
        assert_eq!(status(&c, &[t, "my-nginx.default.svc.cluster.local", "AAAA"]), "NOERROR");
        assert!(short(&c, &[t, "my-nginx.default.svc.cluster.local", "AAAA"]).is_empty(), "NODATA");
        assert_eq!(status(&c, &[t, "default.svc.cluster.local"]), "NOERROR", "namespace: NODATA");
        assert_eq!(status(&c, &[t, "nonamespace.svc.cluster.local"]), "NXDOMAIN");
        // Forwarded names go upstream.
        assert_eq!(short(&c, &[t, "example.org"]), ["1.2.3.4"]);
    }
    // The upstream DNS conformance names: hostname/subdomain records of a headless Service's own endpoint.
    wait("querier endpoint record", Duration::from_secs(30), || {
        !short(&c, &["dns-querier-1.dns-test-service.default.svc.cluster.local"]).is_empty()
    });
    let q_ip = c.ok(&["get", "pod", "querier", "-o", "jsonpath={.status.podIP}"]);
    assert_eq!(short(&c, &["dns-querier-1.dns-test-service.default.svc.cluster.local"]), [q_ip.clone()]);
    assert_eq!(short(&c, &["_http._tcp.dns-test-service.default.svc.cluster.local", "SRV"]), ["0 100 80 dns-querier-1.dns-test-service.default.svc.cluster.local."]);
    // From a pod, through its resolv.conf and search path.
    let pod = c.ok(&["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}"]);
    assert_eq!(c.ok(&["exec", &pod, "--", "dig", "+search", "+short", "my-nginx"]).trim(), cip);
    assert_eq!(c.ok(&["exec", &pod, "--", "dig", "+search", "+short", "+tcp", "kubernetes.default"]).trim(), "10.96.0.1");
    let hosts = c.ok(&["exec", &pod, "--", "getent", "hosts", "my-nginx"]);
    assert!(hosts.starts_with(&cip), "{hosts}");
    let hostname = c.ok(&["exec", &pod, "--", "curl", "-sS", "--max-time", "3", "http://my-nginx/hostname"]);
    assert!(hostname.starts_with("web-"), "curl my-nginx from a pod: {hostname}");
    let hosts = c.ok(&["exec", "querier", "--", "getent", "hosts", "dns-querier-1"]);
    assert!(hosts.contains(&q_ip), "/etc/hosts of the querier: {hosts}");
    // A Service created a second ago already resolves.
    c.ok(&["create", "service", "clusterip", "fresh", "--tcp=80"]);
    let fresh = c.ok(&["get", "svc", "fresh", "-o", "jsonpath={.spec.clusterIP}"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(short(&c, &["fresh.default.svc.cluster.local"]), [fresh]);
    // The upstream ExternalName conformance steps: a new target, then type ClusterIP.
    c.ok(&["patch", "svc", "baidu", "-p", r#"{"spec":{"externalName":"bar.example.com"}}"#]);
    wait("ExternalName retargeted", Duration::from_secs(10), || short(&c, &["baidu.default.svc.cluster.local", "CNAME"]) == ["bar.example.com."]);
    c.ok(&["patch", "svc", "baidu", "-p", r#"{"spec":{"type":"ClusterIP","externalName":null,"ports":[{"name":"http","port":80,"protocol":"TCP"}]}}"#]);
    let baidu_ip = c.ok(&["get", "svc", "baidu", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(in_service_range(&baidu_ip), "a ClusterIP was allocated: {baidu_ip:?}");
    wait("ExternalName turned ClusterIP", Duration::from_secs(10), || short(&c, &["baidu.default.svc.cluster.local", "A"]) == [baidu_ip.clone()]);
    // A headless Service scaled to zero is NXDOMAIN.
    c.ok(&["scale", "deploy", "web", "--replicas=0"]);
    wait("headless NXDOMAIN", Duration::from_secs(20), || status(&c, &["headless.default.svc.cluster.local"]) == "NXDOMAIN");
    // Garbage does not hurt the server.
    let garbage = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor p in [b'', b'\\x00', b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\xc0\\x0c\\x00\\x01\\x00\\x01', bytes(range(256))*2]:\n  s.sendto(p, ('10.96.0.10', 53))\n";
    let _ = c.on_node("python3").args(["-c", garbage]).output();
    assert_eq!(short(&c, &["my-nginx.default.svc.cluster.local"]), [cip]);
    let metrics = stdout(&c.on_node("curl").args(["-sS", "http://127.0.0.1:9153/metrics"]).output().expect("curl"));
    let value = |series: &str| -> f64 { metrics.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0.0) };
    assert!(value("coredns_dns_responses_total{rcode=\"NXDOMAIN\"}") >= 1.0, "NXDOMAIN answers counted: {metrics}");
    assert!(value("coredns_dns_responses_total{rcode=\"FORMERR\"}") >= 1.0, "garbage answered with FORMERR counted: {metrics}");
    assert!(value("coredns_dns_requests_total{proto=\"tcp\",type=\"A\"}") >= 1.0, "TCP queries counted: {metrics}");
    assert_eq!(stdout(&c.on_node("curl").args(["-sS", "http://127.0.0.1:9153/ready"]).output().expect("curl")), "OK");
    let _ = upstream.kill();
    let _ = upstream.wait();
}
