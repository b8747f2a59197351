//! `portico cni` against the CNI spec, and pods on Debian's reference plugins.

use crate::harness::{Cluster, stdout};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A "node" namespace and a "container" namespace, removed on drop.
struct Netns {
    node: String,
    container: String,
}

impl Netns {
    fn new() -> Self {
        let k = NEXT.fetch_add(1, Ordering::SeqCst);
        let node = format!("cni-node-{}-{k}", std::process::id());
        let container = format!("cni-ctr-{}-{k}", std::process::id());
        for ns in [&node, &container] {
            assert!(Command::new("ip").args(["netns", "add", ns]).status().expect("ip").success());
        }
        assert!(Command::new("ip").args(["-n", &node, "link", "set", "lo", "up"]).status().expect("ip").success());
        Self { node, container }
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.container)
    }

    /// Runs `portico cni` in the node namespace: (exit code, stdout JSON).
    fn cni(&self, command: &str, id: &str, ifname: &str, conf: &str, netns: Option<&str>) -> (i32, serde_json::Value) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.node, "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]);
        cmd.arg(format!("CNI_COMMAND={command}")).arg(format!("CNI_IFNAME={ifname}")).arg("CNI_PATH=/usr/lib/cni");
        if !id.is_empty() {
            cmd.arg(format!("CNI_CONTAINERID={id}"));
        }
        if let Some(n) = netns {
            cmd.arg(format!("CNI_NETNS={n}"));
        }
        cmd.arg(env!("CARGO_BIN_EXE_portico")).arg("cni").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn portico cni");
        child.stdin.take().expect("stdin").write_all(conf.as_bytes()).expect("write conf");
        let out = child.wait_with_output().expect("wait");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let json = if text.trim().is_empty() { serde_json::Value::Null } else { serde_json::from_str(&text).unwrap_or_else(|e| panic!("{command} printed non-JSON {text:?}: {e}")) };
        (out.status.code().unwrap_or(-1), json)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.node, &self.container] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn conf(dir: &std::path::Path, extra: &str) -> String {
    format!(
        r#"{{"cniVersion":"1.1.0","name":"testnet","type":"portico","bridge":"cnitest0","isGateway":true,"hairpinMode":true{extra},
            "ipam":{{"type":"host-local","subnet":"10.250.7.0/24","routes":[{{"dst":"0.0.0.0/0"}}],"dataDir":"{}"}}}}"#,
        dir.display()
    )
}

#[test]
fn portico_cni_add_check_del_version_follow_the_spec() {
    let ns = Netns::new();
    let dir = tempfile::tempdir().expect("tmp");
    let conf = conf(dir.path(), "");
    let path = ns.path();
    // VERSION.
    let (rc, v) = ns.cni("VERSION", "", "", r#"{"cniVersion":"1.1.0"}"#, None);
    assert_eq!(rc, 0);
    assert_eq!(v["supportedVersions"], serde_json::json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]));
    // ADD: result per the spec, address in the pod, lease file in the reference layout.
    let (rc, r) = ns.cni("ADD", "abc123", "eth0", &conf, Some(&path));
    assert_eq!(rc, 0, "{r}");
    assert_eq!(r["cniVersion"], "1.1.0");
    assert_eq!(r["ips"][0]["address"], "10.250.7.2/24");
    assert_eq!(r["ips"][0]["gateway"], "10.250.7.1");
    assert_eq!(r["ips"][0]["interface"], 2);
    assert_eq!(r["interfaces"][0]["name"], "cnitest0");
    assert_eq!(r["interfaces"][2]["name"], "eth0");
    assert_eq!(r["interfaces"][2]["sandbox"], path.as_str());
    assert!(r["interfaces"][2]["mac"].as_str().is_some_and(|m| m.len() == 17), "{r}");
    let addr = stdout(&Command::new("ip").args(["-n", &ns.container, "-o", "addr", "show", "dev", "eth0"]).output().expect("ip"));
    assert!(addr.contains("10.250.7.2/24"), "{addr}");
    let route = stdout(&Command::new("ip").args(["-n", &ns.container, "route"]).output().expect("ip"));
    assert!(route.contains("default via 10.250.7.1"), "{route}");
    assert_eq!(std::fs::read_to_string(dir.path().join("testnet/10.250.7.2")).expect("lease"), "abc123\r\neth0");
    // The node reaches a server in the container over the bridge.
    let mut server = Command::new("ip")
        .args(["netns", "exec", &ns.container, env!("CARGO_BIN_EXE_portico"), "netexec", "--http-port=18080", "--udp-port=-1"])
        .stdout(Stdio::null())
        .spawn()
        .expect("netexec");
    let start = Instant::now();
    let reached = loop {
        let out = Command::new("ip").args(["netns", "exec", &ns.node, "curl", "-sS", "--max-time", "2", "http://10.250.7.2:18080/clientip"]).output().expect("curl");
        if out.status.success() || start.elapsed() > Duration::from_secs(10) {
            break stdout(&out);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = server.kill();
    let _ = server.wait();
    assert!(reached.starts_with("10.250.7.1:"), "the node reaches the container from the gateway address: {reached:?}");
    // A second ADD of the same interface is an error, with the spec's error JSON.
    let (rc, e) = ns.cni("ADD", "abc123", "eth0", &conf, Some(&path));
    assert_eq!(rc, 1);
    assert_eq!(e["code"], 999);
    assert_eq!(e["msg"], "container veth name provided (eth0) already exists");
    // CHECK with the previous result.
    let mut with_prev: serde_json::Value = serde_json::from_str(&conf).expect("conf");
    with_prev["prevResult"] = r.clone();
    let (rc, e) = ns.cni("CHECK", "abc123", "eth0", &with_prev.to_string(), Some(&path));
    assert_eq!(rc, 0, "{e}");
    let (rc, e) = ns.cni("CHECK", "abc123", "eth0", &conf, Some(&path));
    assert_eq!((rc, e["code"].clone(), e["msg"].clone()), (1, serde_json::json!(7), serde_json::json!("Required prevResult missing")));
    // DEL releases the address and removes the interface; a second DEL succeeds too.
    let (rc, e) = ns.cni("DEL", "abc123", "eth0", &conf, Some(&path));
    assert_eq!(rc, 0, "{e}");
    assert!(!dir.path().join("testnet/10.250.7.2").exists(), "lease released");
    let links = stdout(&Command::new("ip").args(["-n", &ns.container, "-o", "link"]).output().expect("ip"));
    assert!(!links.contains("eth0"), "{links}");
    let (rc, _) = ns.cni("DEL", "abc123", "eth0", &conf, Some(&path));
    assert_eq!(rc, 0, "DEL is idempotent");
    let (rc, _) = ns.cni("DEL", "abc123", "eth0", &conf, None);
    assert_eq!(rc, 0, "DEL without a netns succeeds");
    // Bad input: error codes and messages from the spec.
    let (rc, e) = ns.cni("ADD", "abc123", "eth0", "{not json", Some(&path));
    assert_eq!((rc, e["code"].clone()), (1, serde_json::json!(6)));
    let (_, e) = ns.cni("ADD", "abc123", "eth0", &conf.replace("1.1.0", "9.9.9"), Some(&path));
    assert_eq!((e["code"].clone(), e["msg"].clone()), (serde_json::json!(1), serde_json::json!("incompatible CNI versions")));
    let (_, e) = ns.cni("ADD", "abc123", "eth0", &conf, None);
    assert_eq!((e["code"].clone(), e["msg"].clone()), (serde_json::json!(4), serde_json::json!("required env variables [CNI_NETNS] missing")));
    let (_, e) = ns.cni("ADD", "", "eth0", &conf, Some(&path));
    assert_eq!(e["code"], 4);
    let (_, e) = ns.cni("ADD", "abc123", "eth0", &conf.replace("host-local", "dhcp"), Some(&path));
    assert_eq!(e["code"], 2, "{e}");
    // No leftovers: the bridge is all that remains on the node (removed with the namespace).
    let node_links = stdout(&Command::new("ip").args(["-n", &ns.node, "-o", "link"]).output().expect("ip"));
    assert!(!node_links.contains("veth"), "{node_links}");
}

#[test]
fn pods_run_on_debians_reference_plugins() {
    assert!(std::path::Path::new("/usr/lib/cni/bridge").exists(), "containernetworking-plugins is needed (scripts/test installs it)");
    let conf_dir = tempfile::tempdir().expect("tmp");
    let leases = conf_dir.path().join("leases");
    std::fs::write(
        conf_dir.path().join("10-ref.conflist"),
        format!(
            r#"{{"cniVersion":"1.0.0","name":"refnet","plugins":[
                {{"type":"bridge","bridge":"cni0","isGateway":true,"isDefaultGateway":true,"hairpinMode":true,
                  "ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.88.0.0/24"}}]],"dataDir":"{}"}}}},
                {{"type":"loopback"}},
                {{"type":"portmap","capabilities":{{"portMappings":true}}}}]}}"#,
            leases.display()
        ),
    )
    .expect("conflist");
    let c = Cluster::start_node_with(&["--cni-conf-dir", conf_dir.path().to_str().expect("utf-8"), "--cni-bin-dir", "/usr/lib/cni"]);
    let out = c.apply(
        "apiVersion: v1
kind: Pod
metadata: {name: ref}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: portico/netexec
    ports: [{containerPort: 8080, hostPort: 54322}]
",
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let start = Instant::now();
    let ip = loop {
        let ip = c.ok(&["get", "pod", "ref", "-o", "jsonpath={.status.podIP}"]);
        if ip.starts_with("10.88.0.") {
            break ip;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "pod on the reference plugins got no 10.88.0.0/24 address:\n{}", c.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    let start = Instant::now();
    loop {
        let out = c.on_node("curl").args(["-sS", "--max-time", "2", &format!("http://{ip}:8080/hostname")]).output().expect("curl");
        if stdout(&out) == "ref" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "pod on the reference bridge does not answer: {}", String::from_utf8_lossy(&out.stderr));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(leases.join("refnet").join(&ip).exists(), "host-local lease for {ip}");
    // The runtime hands portmap the pod's hostPort (runtimeConfig.portMappings): reachable from outside.
    let url = format!("http://{}:54322/hostname", crate::harness::NODE_IP);
    let start = Instant::now();
    loop {
        let out = c.outside("curl").args(["-sS", "--max-time", "2", &url]).output().expect("curl");
        if stdout(&out) == "ref" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "host port through the reference portmap plugin: {}", String::from_utf8_lossy(&out.stderr));
        std::thread::sleep(Duration::from_millis(200));
    }
    c.ok(&["delete", "pod", "ref"]);
    assert!(!leases.join("refnet").join(&ip).exists(), "DEL released the lease");
    // portmap's DEL (given the same portMappings) removed its DNAT chain.
    let nat = stdout(&c.on_node("iptables-save").args(["-t", "nat"]).output().expect("iptables-save"));
    assert!(!nat.contains("54322"), "{nat}");
}
