//! Starting `portico up` in a network namespace and running clients against it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The kubectl binaries the suite drives.
pub const KUBECTL: &str = "kubectl";
/// kubectl 1.27 on these machines.
pub const KUBECTL_127: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27";
/// kubectl 1.33 on these machines.
pub const KUBECTL_133: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

/// A running single-machine cluster.
pub struct Cluster {
    /// Network namespace name (`None` when running on the host loopback).
    pub netns: Option<String>,
    /// Data dir (CA, token, kubeconfig, database).
    pub data: PathBuf,
    /// Listen address.
    pub addr: String,
    /// The "outside" namespace on the node's uplink (clusters with a node).
    pub outside: Option<String>,
    /// Whether the node agent runs pods.
    pub node: bool,
    /// Prefix of the pods' network namespace names.
    pub netns_prefix: String,
    extra: Vec<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// The node's address on its uplink (clusters with a node).
pub const NODE_IP: &str = "192.168.200.2";
/// The outside namespace's address on the node's uplink.
pub const OUTSIDE_IP: &str = "192.168.200.1";

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

impl Cluster {
    /// Starts `portico up` in a fresh network namespace on 127.0.0.1:6443.
    pub fn start() -> Self {
        let name = format!("portico-e2e-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let out = run(Command::new("ip").args(["netns", "add", &name]));
        assert!(out.status.success(), "ip netns add failed (the end-to-end tests need root): {}", String::from_utf8_lossy(&out.stderr));
        run(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]));
        Self::boot(Some(name), "127.0.0.1:6443".into(), false)
    }

    /// Starts `portico up` with the node agent running pods, in a fresh
    /// namespace whose `eth0` (NODE_IP) is wired to an "outside" namespace
    /// (OUTSIDE_IP, the node's default gateway).
    pub fn start_node() -> Self {
        Self::start_node_with(&[])
    }

    /// `start_node` with extra `portico up` flags.
    pub fn start_node_with(extra: &[&str]) -> Self {
        let k = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("portico-e2e-{}-{k}", std::process::id());
        let outside = format!("{name}-out");
        let sh = |script: &str| {
            let out = run(Command::new("sh").args(["-ec", script]));
            assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let (a, b) = (format!("pe{}x{k}a", std::process::id() % 100000), format!("pe{}x{k}b", std::process::id() % 100000));
        sh(&format!(
            "ip netns add {name}; ip netns add {outside}; ip -n {name} link set lo up; ip -n {outside} link set lo up
             ip link add {a} type veth peer name {b}; ip link set {a} netns {name}; ip link set {b} netns {outside}
             ip -n {name} link set {a} name eth0; ip -n {name} addr add {NODE_IP}/24 dev eth0; ip -n {name} link set eth0 up
             ip -n {outside} addr add {OUTSIDE_IP}/24 dev {b}; ip -n {outside} link set {b} up
             ip -n {name} route add default via {OUTSIDE_IP}"
        ));
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let netns_prefix = format!("pe2e{}x{k}-", std::process::id());
        let mut c = Self {
            netns: Some(name),
            data,
            addr: "127.0.0.1:6443".into(),
            outside: Some(outside),
            node: true,
            netns_prefix,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            dir,
            child: None,
        };
        c.launch();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = c.kubectl(&["get", "nodes", "-o", "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status} {.items[*].spec.podCIDR}"]);
            let text = stdout(&out);
            if text.starts_with("True") && text.contains('/') {
                break;
            }
            assert!(Instant::now() < deadline, "the node did not become Ready with a pod CIDR in 30s ({text}):\n{}", c.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    /// A command run in the outside namespace (a client off the node).
    pub fn outside(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.outside.as_deref().expect("a cluster with a node"), program]);
        cmd
    }

    /// A command run on the node (in its network namespace).
    pub fn on_node(&self, program: &str) -> Command {
        self.command(program)
    }

    /// Starts `portico up` on the host loopback with a free port (for in-process clients).
    pub fn start_on_host() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
        Self::boot(None, format!("127.0.0.1:{port}"), false)
    }

    fn boot(netns: Option<String>, addr: String, node: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let mut c = Self { netns, data, addr, outside: None, node, netns_prefix: "portico-".into(), extra: vec![], dir, child: None };
        c.launch();
        c
    }

    fn command(&self, program: &str) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns, program]);
                cmd
            }
            None => Command::new(program),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("portico.log")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("log file");
        let mut cmd = self.command(env!("CARGO_BIN_EXE_portico"));
        cmd.args(["up", "--data-dir"]).arg(&self.data).args(["--bind", &self.addr]);
        if self.node {
            cmd.args(["--netns-prefix", &self.netns_prefix]).args(&self.extra);
        } else {
            cmd.args(["--disable", "pods,proxy,dns"]);
        }
        // The proxy's debug lines say which way each incremental sync went.
        cmd.stdout(Stdio::null()).stderr(log).env("RUST_LOG", "info,portico_proxy=debug");
        self.child = Some(cmd.spawn().expect("spawn portico"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.kubeconfig().exists() {
                let out = self.kubectl(&["get", "--raw", "/readyz"]);
                if out.status.success() {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("portico exited with {status} during start-up:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "portico did not become ready in 30s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The process ID of `portico up` (`ip netns exec` execs it in place).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.data.join("kubeconfig")
    }

    /// The admin bearer token.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data.join("token")).expect("token").trim().to_owned()
    }

    /// Runs a kubectl binary against the cluster.
    pub fn kubectl_with(&self, bin: &str, args: &[&str]) -> Output {
        let mut cmd = self.command(bin);
        cmd.arg("--kubeconfig").arg(self.kubeconfig()).arg("--cache-dir").arg(self.dir.path().join(format!("cache-{}", bin.replace('/', "_"))));
        cmd.args(args).env("HOME", self.dir.path()).env_remove("KUBECONFIG");
        run(&mut cmd)
    }

    /// Runs kubectl `bin` with `args` on the node, `input` on its stdin.
    pub fn kubectl_input(&self, bin: &str, args: &[&str], input: &[u8]) -> Output {
        let mut cmd = self.on_node(bin);
        cmd.arg("--kubeconfig").arg(self.kubeconfig()).args(args).env("HOME", self.dir()).env_remove("KUBECONFIG");
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl");
        let mut w = child.stdin.take().expect("stdin");
        std::io::Write::write_all(&mut w, input).expect("write stdin");
        drop(w);
        child.wait_with_output().expect("kubectl output")
    }

    /// Runs the default kubectl.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with(KUBECTL, args)
    }

    /// Runs kubectl, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.status.success(), "kubectl {args:?} failed:\nstdout: {}\nstderr: {}", stdout(&out), stderr(&out));
        stdout(&out)
    }

    /// Runs kubectl, asserts failure, returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(!out.status.success(), "kubectl {args:?} should fail but printed:\n{}", stdout(&out));
        stderr(&out)
    }

    /// Applies a manifest given inline.
    pub fn apply(&self, manifest: &str, extra: &[&str]) -> Output {
        let path = self.write_file(manifest);
        let mut args = vec!["apply", "-f", path.to_str().expect("utf-8 path")];
        args.extend_from_slice(extra);
        self.kubectl(&args)
    }

    /// The test's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file into the test's temp dir and returns its path.
    pub fn write_file(&self, contents: &str) -> PathBuf {
        let path = self.dir.path().join(format!("f{}.yaml", NEXT.fetch_add(1, Ordering::SeqCst)));
        std::fs::write(&path, contents).expect("write manifest");
        path
    }

    /// `curl` against the API: returns (HTTP status, body).
    pub fn curl(&self, method: &str, path: &str, token: Option<&str>, content_type: Option<&str>, body: Option<&Path>) -> (u16, String) {
        let mut cmd = self.command("curl");
        cmd.args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--cacert"]).arg(self.data.join("ca.crt"));
        cmd.args(["-X", method]);
        if let Some(t) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        if let Some(ct) = content_type {
            cmd.args(["-H", &format!("Content-Type: {ct}")]);
        }
        if let Some(b) = body {
            cmd.arg("--data-binary").arg(format!("@{}", b.display()));
        }
        cmd.arg(format!("https://{}{path}", self.addr));
        let out = run(&mut cmd);
        let text = stdout(&out);
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// Kills the server with SIGKILL (no drain, no flush).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same data dir.
    pub fn restart(&mut self) {
        self.kill9();
        self.launch();
    }

    /// Stops the server with SIGTERM and returns its exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let c = self.child.as_mut()?;
        let pid = c.id().to_string();
        run(Command::new("kill").args(["-TERM", &pid]));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                self.child = None;
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill9();
        if self.node {
            // Pods outlive a killed agent: remove them the way a user would.
            let mut cmd = self.command(env!("CARGO_BIN_EXE_portico"));
            cmd.args(["agent", "--cleanup", "--data-dir"]).arg(&self.data);
            let _ = cmd.output();
        }
        if let Some(ns) = &self.outside {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if let Some(ns) = &self.netns {
            // Processes started inside the namespace (kubectl -w) die with it.
            let _ = Command::new("ip").args(["netns", "pids", ns]).output().map(|o| {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            });
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The first line of `text` that starts with `prefix`, split into columns.
pub fn row<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().find(|l| l.starts_with(prefix)).map(|l| l.split_whitespace().collect()).unwrap_or_default()
}

/// Whether `ip` is inside 10.96.0.0/12.
pub fn in_service_range(ip: &str) -> bool {
    let o: Vec<u32> = ip.split('.').filter_map(|p| p.parse().ok()).collect();
    o.len() == 4 && o[0] == 10 && (96..=111).contains(&o[1])
}

/// The demo workload of the seed walkthroughs: a Deployment and its Service.
pub const NGINX: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: my-nginx
spec:
  selector:
    matchLabels:
      run: my-nginx
  replicas: 2
  template:
    metadata:
      labels:
        run: my-nginx
    spec:
      containers:
      - name: my-nginx
        image: nginx
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: my-nginx
  labels:
    run: my-nginx
spec:
  ports:
  - port: 80
    protocol: TCP
  selector:
    run: my-nginx
";

/// A Pod `name` (label `app: name`) running agnhost netexec on :8080 (port
/// name `http`), Ready once netexec answers `/readyz`.
pub fn netexec_pod(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: netexec
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: [\"netexec\", \"--http-port=8080\"]
    ports: [{{containerPort: 8080, name: http}}]
    readinessProbe:
      httpGet: {{path: /readyz, port: 8080}}
      periodSeconds: 1
"
    )
}
