//! `bench-dns`: Portico's cluster DNS against Knot DNS serving the same
//! records as a static zone, both driven by `dnsperf` in the same run, plus
//! the zone's memory at scale and the latency from a Service change to the
//! new answer through the API.
//!
//! (a) QPS for the query mix `ndots:5` produces: for every lookup of a short
//!     Service name from a pod, glibc asks A and AAAA; names from another
//!     namespace first miss (NXDOMAIN) under the pod's namespace; external
//!     names miss under all three search domains. Both servers get the same
//!     query file and the same number of UDP workers.
//! (b) forwarded names answered from cache: Portico's forwarder and unbound
//!     both forward to the same Knot instance (serving `example.com`), both
//!     warmed with one pass over the names, then driven by dnsperf.
//! (c) memory of the zone snapshot for 10k Services and 100k endpoints.
//! (d) Service created (API acknowledged) → answer served, p50/p99 (needs
//!     `target/release/portico`; runs `portico up` in a network namespace).

use anyhow::Context;
use arc_swap::ArcSwap;
use clap::Parser;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use portico_dns::zone::{Zone, ZoneConfig};
use serde_json::json;
use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// ClusterIP Services in the QPS test.
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// Seconds per dnsperf run.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Worker threads/sockets for each server.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// The portico binary (for the change-latency test).
    #[arg(long, default_value = "target/release/portico")]
    portico: String,
    /// Internal: run the change-latency measurement inside the namespace.
    #[arg(long, hide = true)]
    inside: Option<String>,
}

fn services(n: usize, headless: usize, eps: usize) -> (Vec<Service>, Vec<EndpointSlice>) {
    let mut svcs = Vec::new();
    let mut slices = Vec::new();
    for i in 0..n {
        let ip = format!("10.{}.{}.{}", 96 + (i >> 16), (i >> 8) & 255, i & 255);
        svcs.push(serde_json::from_value(json!({"metadata": {"name": format!("svc-{i}"), "namespace": "default"},
            "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}]}})).expect("svc"));
    }
    for i in 0..headless {
        svcs.push(serde_json::from_value(json!({"metadata": {"name": format!("hl-{i}"), "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}})).expect("svc"));
        let endpoints: Vec<_> = (0..eps).map(|e| {
            let k = i * eps + e;
            json!({"addresses": [format!("10.{}.{}.{}", 128 + (k >> 16), (k >> 8) & 255, k & 255)], "conditions": {"ready": true}})
        }).collect();
        slices.push(serde_json::from_value(json!({"metadata": {"name": format!("hl-{i}-x"), "namespace": "default", "labels": {"kubernetes.io/service-name": format!("hl-{i}")}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}], "endpoints": endpoints})).expect("slice"));
    }
    (svcs, slices)
}

fn namespaces() -> Vec<Namespace> {
    ["default", "other", "kube-system"].iter().map(|n| serde_json::from_value(json!({"metadata": {"name": n}})).expect("ns")).collect()
}

/// The ndots:5 query mix for `n` Services.
fn query_file(n: usize) -> String {
    let mut q = String::new();
    for i in 0..n {
        // Same namespace: first search domain hits (A and AAAA).
        let _ = writeln!(q, "svc-{i}.default.svc.cluster.local A");
        let _ = writeln!(q, "svc-{i}.default.svc.cluster.local AAAA");
        // "svc-i.other" from a pod in default: miss, then hit.
        let _ = writeln!(q, "svc-{i}.other.default.svc.cluster.local A");
        let _ = writeln!(q, "svc-{i}.other.svc.cluster.local A");
        // An external name: misses under every search domain.
        let _ = writeln!(q, "api{i}.example.com.default.svc.cluster.local A");
        let _ = writeln!(q, "api{i}.example.com.svc.cluster.local A");
        let _ = writeln!(q, "api{i}.example.com.cluster.local A");
    }
    q
}

fn zone_file(n: usize) -> String {
    let mut z = String::from("$ORIGIN cluster.local.\n$TTL 5\n@ SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5\n@ NS ns.dns.cluster.local.\nns.dns A 10.96.0.10\ndns-version TXT \"1.1.0\"\n");
    // Namespace names exist (NODATA) in the cluster zone.
    z.push_str("default.svc TXT \"ns\"\nother.svc TXT \"ns\"\n");
    for i in 0..n {
        let _ = writeln!(z, "svc-{i}.default.svc A 10.{}.{}.{}", 96 + (i >> 16), (i >> 8) & 255, i & 255);
    }
    z
}

/// Names outside the cluster for the forwarding test.
const EXTERNAL_NAMES: usize = 1000;

fn external_zone() -> String {
    let mut z = String::from("$ORIGIN example.com.\n$TTL 3600\n@ SOA ns.example.com. hostmaster.example.com. 1 7200 1800 86400 300\n@ NS ns.example.com.\nns A 127.0.0.1\n");
    for i in 0..EXTERNAL_NAMES {
        let _ = writeln!(z, "www{i} A 192.0.{}.{}", (i >> 8) & 255, i & 255);
    }
    z
}

fn external_queries() -> String {
    (0..EXTERNAL_NAMES).map(|i| format!("www{i}.example.com A\n")).collect()
}

/// One pass over the file (fills caches).
fn warm(port: u16, file: &std::path::Path) -> anyhow::Result<()> {
    let st = Command::new("dnsperf").args(["-s", "127.0.0.1", "-p", &port.to_string(), "-d"]).arg(file).args(["-n", "1", "-c", "1", "-q", "20"]).stdout(Stdio::null()).status().context("dnsperf")?;
    anyhow::ensure!(st.success(), "dnsperf warm-up failed");
    Ok(())
}

fn dnsperf(port: u16, file: &std::path::Path, secs: u32) -> anyhow::Result<(f64, f64)> {
    let out = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-d"])
        .arg(file)
        .args(["-l", &secs.to_string(), "-c", "4", "-q", "200", "-S", "0"])
        .output()
        .context("dnsperf (apt-get install dnsperf)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let qps = text.lines().find_map(|l| l.trim().strip_prefix("Queries per second:")).and_then(|v| v.trim().parse().ok()).context("dnsperf output")?;
    let lat = text.lines().find_map(|l| l.trim().strip_prefix("Average Latency (s):")).and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()).unwrap_or(0.0);
    Ok((qps, lat * 1e6))
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

async fn qps(args: &Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = ZoneConfig { domain: "cluster.local".into(), ttl: 5 };
    let (svcs, slices) = services(args.services, 0, 0);
    let zone = Arc::new(ArcSwap::from_pointee(Zone::build(&svcs, &slices, &namespaces(), &cfg)));
    // Names outside cluster.local go to Knot's example.com zone (test (b)).
    let fwd = portico_dns::forward::Forwarder::new(vec!["127.0.0.1:5301".parse()?]);
    let metrics = portico_dns::metrics::Metrics::new(fwd.hits.clone(), fwd.misses.clone());
    let server = Arc::new(portico_dns::server::Server { zone, cfg, fwd, metrics });
    let _tasks = portico_dns::server::listen(server, "127.0.0.1:5300".parse()?, args.workers).await?;
    // Knot DNS with the same records.
    std::fs::write(dir.path().join("cluster.local.zone"), zone_file(args.services))?;
    std::fs::write(dir.path().join("example.com.zone"), external_zone())?;
    std::fs::create_dir_all(dir.path().join("run"))?;
    std::fs::create_dir_all(dir.path().join("db"))?;
    let conf = format!(
        "server:\n    listen: 127.0.0.1@5301\n    rundir: {d}/run\n    user: root:root\n    udp-workers: {w}\n    tcp-workers: 1\n    background-workers: 1\ndatabase:\n    storage: {d}/db\nlog:\n  - target: stderr\n    any: error\nzone:\n  - domain: cluster.local\n    storage: {d}\n    file: cluster.local.zone\n  - domain: example.com\n    storage: {d}\n    file: example.com.zone\n",
        d = dir.path().display(),
        w = args.workers
    );
    std::fs::write(dir.path().join("knot.conf"), conf)?;
    let mut knot = Command::new("knotd").arg("-c").arg(dir.path().join("knot.conf")).stdout(Stdio::null()).spawn().context("knotd (apt-get install knot)")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let file = dir.path().join("queries.txt");
    std::fs::write(&file, query_file(args.services))?;
    // Sanity: both answer the same way.
    for (port, who) in [(5300, "portico"), (5301, "knot")] {
        let out = Command::new("dig").args(["+short", "-p", &port.to_string(), "@127.0.0.1", "svc-7.default.svc.cluster.local"]).output()?;
        println!("    {who} answers svc-7: {}", String::from_utf8_lossy(&out.stdout).trim());
    }
    let mut rows = Vec::new();
    for round in 0..2 {
        for (port, who) in [(5300, "portico"), (5301, "knot")] {
            let (q, lat) = tokio::task::spawn_blocking({
                let file = file.clone();
                let secs = args.seconds;
                move || dnsperf(port, &file, secs)
            })
            .await??;
            println!("(a) round {round} {who:<8} {q:>10.0} QPS, average latency {lat:.0} µs");
            rows.push((who, q));
        }
    }
    let best = |w: &str| rows.iter().filter(|(n, _)| *n == w).map(|(_, q)| *q).fold(0.0, f64::max);
    println!("(a) ndots:5 mix ({} Services; 4/7 of the queries miss): Portico {:.0} QPS vs Knot {:.0} QPS = {:.2}×", args.services, best("portico"), best("knot"), best("portico") / best("knot"));
    let r = forwarded(args, dir.path()).await;
    let _ = knot.kill();
    let _ = knot.wait();
    r
}

/// (b): Portico's forwarder (port 5300) vs unbound (5302), both in front of Knot (5301).
async fn forwarded(args: &Args, dir: &std::path::Path) -> anyhow::Result<()> {
    let conf = format!(
        "server:\n    interface: 127.0.0.1@5302\n    port: 5302\n    do-daemonize: no\n    username: \"\"\n    chroot: \"\"\n    directory: \"{d}\"\n    pidfile: \"\"\n    use-syslog: no\n    verbosity: 0\n    num-threads: {w}\n    module-config: \"iterator\"\n    do-not-query-localhost: no\n    access-control: 127.0.0.0/8 allow\n    msg-cache-size: 64m\n    rrset-cache-size: 64m\n    prefetch: no\nforward-zone:\n    name: \".\"\n    forward-addr: 127.0.0.1@5301\n",
        d = dir.display(),
        w = args.workers
    );
    std::fs::write(dir.join("unbound.conf"), conf)?;
    let mut unbound = Command::new("unbound").arg("-c").arg(dir.join("unbound.conf")).stdout(Stdio::null()).spawn().context("unbound (apt-get install unbound)")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let file = dir.join("external.txt");
    std::fs::write(&file, external_queries())?;
    let result = async {
        for (port, who) in [(5300, "portico"), (5302, "unbound")] {
            let out = Command::new("dig").args(["+short", "-p", &port.to_string(), "@127.0.0.1", "www7.example.com"]).output()?;
            println!("    {who} answers www7.example.com: {}", String::from_utf8_lossy(&out.stdout).trim());
            let f = file.clone();
            tokio::task::spawn_blocking(move || warm(port, &f)).await??;
        }
        let mut rows = Vec::new();
        for round in 0..2 {
            for (port, who) in [(5300, "portico"), (5302, "unbound")] {
                let f = file.clone();
                let secs = args.seconds;
                let (q, lat) = tokio::task::spawn_blocking(move || dnsperf(port, &f, secs)).await??;
                println!("(b) round {round} {who:<8} {q:>10.0} QPS, average latency {lat:.0} µs");
                rows.push((who, q));
            }
        }
        let best = |w: &str| rows.iter().filter(|(n, _)| *n == w).map(|(_, q)| *q).fold(0.0, f64::max);
        println!("(b) {EXTERNAL_NAMES} forwarded names from cache: Portico {:.0} QPS vs unbound {:.0} QPS = {:.2}×", best("portico"), best("unbound"), best("portico") / best("unbound"));
        anyhow::Ok(())
    }
    .await;
    let _ = unbound.kill();
    let _ = unbound.wait();
    result
}

fn memory() {
    let before = rss_kib();
    let cfg = ZoneConfig { domain: "cluster.local".into(), ttl: 5 };
    let (svcs, slices) = services(5000, 5000, 20);
    let built = rss_kib();
    let t = Instant::now();
    let zone = Zone::build(&svcs, &slices, &namespaces(), &cfg);
    let took = t.elapsed();
    drop(svcs);
    drop(slices);
    let after = rss_kib();
    let eps: usize = zone.services.values().map(|s| s.endpoints.len()).sum();
    println!(
        "(c) zone of {} Services and {eps} endpoints: built in {:.0} ms; process RSS {:.1} MiB (zone alone ≈ {:.1} MiB; API objects {:.1} MiB while building). CoreDNS's sizing rule for the same: (pods+services)/1000 + 54 = {:.0} MiB",
        zone.services.len(),
        took.as_secs_f64() * 1e3,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / 1024.0,
        built.saturating_sub(before) as f64 / 1024.0,
        (100_000.0 + 10_000.0) / 1000.0 + 54.0
    );
    drop(zone);
}

async fn change_latency(data: &str) -> anyhow::Result<()> {
    use kube::api::{Api, PostParams};
    let kc = kube::config::Kubeconfig::read_from(format!("{data}/kubeconfig"))?;
    let client = kube::Client::try_from(kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?)?;
    let api: Api<Service> = Api::namespaced(client, "default");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    sock.set_read_timeout(Some(Duration::from_millis(20)))?;
    let mut lat = Vec::new();
    for i in 0..100 {
        let name = format!("fresh-{i}");
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}))?;
        let created = api.create(&PostParams::default(), &svc).await?;
        let t = Instant::now();
        let ip: std::net::Ipv4Addr = created.spec.and_then(|s| s.cluster_ip).context("clusterIP")?.parse()?;
        let q = portico_dns::wire::build_query(i as u16, &format!("{name}.default.svc.cluster.local"), 1, None);
        loop {
            sock.send_to(&q, "127.0.0.1:5300")?;
            let mut buf = [0u8; 512];
            if let Ok(n) = sock.recv(&mut buf) {
                if let Some((0, recs)) = portico_dns::wire::parse_answers(&buf[..n]) {
                    if recs.iter().any(|r| r.data == portico_dns::wire::RData::A(ip)) {
                        break;
                    }
                }
            }
            anyhow::ensure!(t.elapsed() < Duration::from_secs(10), "no answer for {name}");
            std::thread::sleep(Duration::from_micros(200));
        }
        lat.push(t.elapsed());
    }
    lat.sort();
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    println!("(d) Service created (API acknowledged) -> served by DNS: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (100 Services)", p(0.5), p(0.99), p(1.0));
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(args.workers.max(1)).enable_all().build()?;
    if let Some(data) = args.inside.clone() {
        return rt.block_on(change_latency(&data));
    }
    rt.block_on(qps(&args))?;
    memory();
    // (d) through the API: portico up in a namespace, DNS on 127.0.0.1:5300.
    let portico = std::fs::canonicalize(&args.portico).with_context(|| format!("{} (cargo build --release -p portico)", args.portico))?;
    let ns = format!("bench-dns-{}", std::process::id());
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    Command::new("ip").args(["netns", "add", &ns]).status()?;
    Command::new("ip").args(["-n", &ns, "link", "set", "lo", "up"]).status()?;
    let mut server = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(&portico)
        .args(["up", "--bind", "127.0.0.1:6443", "--disable", "pods,proxy", "--node-ip", "127.0.0.1", "--dns-port", "5300", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let start = Instant::now();
    while !data.join("kubeconfig").exists() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let st = Command::new("ip").args(["netns", "exec", &ns]).arg(std::env::current_exe()?).arg("--inside").arg(&data).status();
    let _ = server.kill();
    let _ = server.wait();
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    anyhow::ensure!(st?.success(), "change-latency run failed");
    Ok(())
}
