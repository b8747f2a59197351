//! `bench-node`: how long a pod takes from create to Ready on Portico's node
//! agent, and what a pod costs in memory.
//!
//! Runs as root. Creates a network namespace, starts `portico up` in it
//! (release build by default), re-executes itself inside the namespace to
//! drive the API over loopback, then measures:
//! - sequential: pods created one at a time, each timed from the create call
//!   to the watch event that shows it Ready (netexec with an httpGet
//!   readiness probe, as the upstream e2e tests use);
//! - burst: N pods created at once (a Deployment scale-up), each timed the same way;
//! - memory: RSS of the portico process (agent + server) before and after
//!   the burst, and the RSS of each pod's pause and container processes.

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// Pods in the burst.
    #[arg(long, default_value_t = 50)]
    pods: usize,
    /// Pods created one at a time.
    #[arg(long, default_value_t = 20)]
    sequential: usize,
    /// The portico binary.
    #[arg(long, default_value = "target/release/portico")]
    portico: String,
    /// Internal: run the measurement (inside the namespace).
    #[arg(long, hide = true)]
    inside: Option<String>,
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize].as_secs_f64() * 1e3
}

fn pod(name: &str) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"bench": "node"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "netexec", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
            "args": ["netexec", "--http-port=8080", "--udp-port=-1"],
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}, "periodSeconds": 1}}]}
    }))?)
}

fn is_ready(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Creates `names` at once and returns each one's create → Ready time.
async fn measure(api: &Api<Pod>, names: &[String]) -> anyhow::Result<Vec<Duration>> {
    let rv = api.list(&ListParams::default().limit(1)).await?.metadata.resource_version.unwrap_or_default();
    let mut stream = api.watch(&WatchParams::default().labels("bench=node"), &rv).await?.boxed();
    let mut started: HashMap<String, Instant> = HashMap::new();
    for n in names {
        started.insert(n.clone(), Instant::now());
        api.create(&PostParams::default(), &pod(n)?).await?;
    }
    let mut done: HashMap<String, Duration> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while done.len() < names.len() {
        let ev = tokio::time::timeout_at(deadline.into(), stream.next()).await.context("pods did not become Ready in 300 s")?;
        let Some(ev) = ev else { anyhow::bail!("watch ended") };
        if let WatchEvent::Added(p) | WatchEvent::Modified(p) = ev? {
            let name = p.metadata.name.clone().unwrap_or_default();
            if is_ready(&p) && !done.contains_key(&name) {
                if let Some(t) = started.get(&name) {
                    done.insert(name, t.elapsed());
                }
            }
        }
    }
    Ok(names.iter().filter_map(|n| done.get(n).copied()).collect())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// Proportional set size: shared pages (the binary's text) split among the processes sharing them.
fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Pss:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// PIDs whose command line contains all of `needles`.
fn pids_with(needles: &[&str]) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else { return vec![] };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let s = String::from_utf8_lossy(&cmd).replace('\0', " ");
            needles.iter().all(|n| s.contains(n))
        })
        .collect()
}

async fn inside(args: &Args, data: &str) -> anyhow::Result<()> {
    let kc = kube::config::Kubeconfig::read_from(format!("{data}/kubeconfig"))?;
    let client = kube::Client::try_from(kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?)?;
    let api: Api<Pod> = Api::namespaced(client, "default");
    let portico_pid = pids_with(&["portico", "up", "--data-dir", data]).into_iter().min().context("portico process")?;
    // Warm-up pod (first bridge creation, first CNI run).
    measure(&api, &["warmup".to_owned()]).await?;
    let mut seq = Vec::new();
    for i in 0..args.sequential {
        seq.extend(measure(&api, &[format!("seq-{i}")]).await?);
    }
    seq.sort();
    // Only the burst's pods stay for the memory figures.
    api.delete_collection(&DeleteParams::default(), &ListParams::default().labels("bench=node")).await?;
    let start = Instant::now();
    while !api.list(&ListParams::default().labels("bench=node")).await?.items.is_empty() && start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let base_rss = rss_kib(portico_pid);
    let names: Vec<String> = (0..args.pods).map(|i| format!("burst-{i}")).collect();
    let t0 = Instant::now();
    let mut burst = measure(&api, &names).await?;
    let all_ready = t0.elapsed();
    burst.sort();
    let after_rss = rss_kib(portico_pid);
    let pauses = pids_with(&["sandbox-init", data]);
    let pause_rss: u64 = pauses.iter().map(|p| pss_kib(*p)).sum();
    let containers = pids_with(&["netexec", "--http-port=8080", "--udp-port=-1"]);
    let ctr_rss: u64 = containers.iter().map(|p| pss_kib(*p)).sum();
    println!("sequential ({} pods, one at a time): create -> Ready p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", seq.len(), pct(&seq, 0.5), pct(&seq, 0.99), pct(&seq, 1.0));
    println!(
        "burst ({} pods at once): create -> Ready p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; all Ready after {:.2} s",
        burst.len(),
        pct(&burst, 0.5),
        pct(&burst, 0.99),
        pct(&burst, 1.0),
        all_ready.as_secs_f64()
    );
    let n = args.pods as f64;
    println!(
        "memory: portico (API server + controllers + agent) RSS {:.1} MiB -> {:.1} MiB with {} more pods = {:.0} KiB per pod",
        base_rss as f64 / 1024.0,
        after_rss as f64 / 1024.0,
        args.pods,
        (after_rss.saturating_sub(base_rss)) as f64 / n
    );
    println!(
        "memory: per pod sandbox (pause process) {:.0} KiB PSS (over {} pods); per netexec container {:.0} KiB PSS (over {} containers)",
        pause_rss as f64 / pauses.len().max(1) as f64,
        pauses.len(),
        ctr_rss as f64 / containers.len().max(1) as f64,
        containers.len()
    );
    api.delete_collection(&DeleteParams::default(), &ListParams::default().labels("bench=node")).await?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(data) = args.inside.clone() {
        let rt = tokio::runtime::Runtime::new()?;
        return rt.block_on(inside(&args, &data));
    }
    let portico = std::fs::canonicalize(&args.portico).with_context(|| format!("{} (build it with cargo build --release -p portico)", args.portico))?;
    let ns = format!("bench-node-{}", std::process::id());
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let sh = |s: &str| Command::new("sh").args(["-ec", s]).status().map(|st| st.success()).unwrap_or(false);
    anyhow::ensure!(sh(&format!("ip netns add {ns} && ip -n {ns} link set lo up")), "ip netns add failed (run as root)");
    let mut server = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(&portico)
        .args(["up", "--bind", "127.0.0.1:6443", "--netns-prefix", &format!("{ns}-"), "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let kubeconfig = data.join("kubeconfig");
    let start = Instant::now();
    while !kubeconfig.exists() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let me = std::env::current_exe()?;
    let status = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(me)
        .args(["--pods", &args.pods.to_string(), "--sequential", &args.sequential.to_string(), "--inside"])
        .arg(&data)
        .status();
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = server.wait();
    let _ = Command::new("ip").args(["netns", "exec", &ns]).arg(&portico).args(["agent", "--cleanup", "--data-dir"]).arg(&data).status();
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    anyhow::ensure!(status?.success(), "measurement failed");
    Ok(())
}
