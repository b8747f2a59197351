//! `bench-proxy`: Portico's nftables data plane against a kube-proxy-shaped
//! one, measured in the same run on the same kernel with the same `nft`.
//!
//! The peer renders every Service the way kube-proxy's nftables mode does (a
//! service chain with `numgen random mod N vmap { i : goto endpoint-chain }`,
//! one chain per endpoint with its masquerade check and DNAT); Portico renders
//! its own shape (endpoint choice as one `dnat ... map @endpoint-slots-N`). Both use the same
//! vmap dispatch. kube-proxy itself is not on this machine; its published
//! figures are quoted in the README for orientation only.
//!
//! Measures, in throwaway network namespaces (run as root):
//! - (c) full sync of S Services × 10 endpoints (one `nft -f` transaction);
//! - (b) one new Service programmed with S present: Portico's incremental
//!   diff (one netlink batch, as the sync loop sends it; the peer's through
//!   `nft -f`) vs re-applying the whole ruleset (what iptables-restore-style
//!   proxies do on every change);
//! - (a)/(d) TCP connect + request/response latency through a ClusterIP vs
//!   straight to the pod IP, with 1k and 30k Services present, and bulk
//!   throughput through the ClusterIP vs direct.

use anyhow::Context;
use clap::Parser;
use portico_proxy::nft::apply::{self, Path};
use portico_proxy::nft::plan::{self, State};
use portico_proxy::nft::ruleset::{self, NodeConfig};
use portico_proxy::nft::shards::{Full, Layout, PORTS_PER_TABLE};
use portico_proxy::servicemap::{Algorithm, Endpoint, Family, ServicePort};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// Service counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,30000")]
    services: Vec<usize>,
    /// Endpoints per Service.
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// Latency samples per point.
    #[arg(long, default_value_t = 2000)]
    samples: usize,
    /// New Services programmed one at a time per point (b).
    #[arg(long, default_value_t = 200)]
    new_services: usize,
    /// Largest Service count the kube-proxy-shaped peer is run at (its
    /// per-Service anonymous vmaps take minutes beyond 10k).
    #[arg(long, default_value_t = 10000)]
    peer_max_services: usize,
}

fn sh(script: &str) -> anyhow::Result<()> {
    let st = Command::new("sh").args(["-ec", script]).status()?;
    anyhow::ensure!(st.success(), "failed: {script}");
    Ok(())
}

fn port(i: usize, eps: usize) -> ServicePort {
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + 10 + i as u32);
    let endpoints = (0..eps)
        .map(|e| Endpoint { ip: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 244, 0, 0)) + 2 + ((i * eps + e) % 60000) as u32).into(), port: 8080, local: true })
        .collect::<Vec<_>>();
    ServicePort {
        key: format!("bench/svc-{i}/tcp/http"),
        protocol: "tcp",
        cluster_ip: Some(ip.into()),
        port: 80,
        node_port: None,
        external_ips: vec![],
        affinity: None,
        algorithm: Algorithm::Random,
        internal_local: false,
        external_local: false,
        local_endpoints: endpoints.clone(),
        endpoints,
    }
}

/// kube-proxy's nftables-mode shape for the same Service port (per-endpoint chains).
fn kube_proxy_shape(sp: &ServicePort, cfg: &NodeConfig) -> ruleset::Rendered {
    let mut out = ruleset::Rendered::default();
    let h = ruleset::hash8(&sp.key);
    let svc = format!("service-{h}-{}", sp.key);
    let cip = sp.cluster_ip.unwrap_or(Ipv4Addr::UNSPECIFIED.into());
    let mut vmap = Vec::new();
    for (i, e) in sp.endpoints.iter().enumerate() {
        let ch = format!("endpoint-{h}-{}__{}/{}", sp.key, e.ip, e.port);
        out.chains.insert(ch.clone(), vec![format!("ip saddr {} jump mark-for-masquerade", e.ip), format!("meta l4proto tcp dnat to {}:{}", e.ip, e.port)]);
        vmap.push(format!("{i} : goto {ch}"));
    }
    out.chains.insert(
        svc.clone(),
        vec![
            format!("ip daddr {cip} ip saddr != {} jump mark-for-masquerade", cfg.cluster_cidr.as_deref().unwrap_or("0.0.0.0/0")),
            format!("numgen random mod {} vmap {{ {} }}", sp.endpoints.len(), vmap.join(", ")),
        ],
    );
    out.elements.insert(("service-ips".into(), format!("{cip} . tcp . 80")), format!("goto {svc}"));
    out
}

fn nft_in(ns: &str, script: &str) -> anyhow::Result<Duration> {
    let path = std::env::temp_dir().join(format!("bench-proxy-{}.nft", std::process::id()));
    std::fs::write(&path, script)?;
    let t = Instant::now();
    let out = Command::new("ip").args(["netns", "exec", ns, "nft", "-f"]).arg(&path).output()?;
    let took = t.elapsed();
    let _ = std::fs::remove_file(&path);
    anyhow::ensure!(out.status.success(), "nft failed: {}", String::from_utf8_lossy(&out.stderr).lines().take(3).collect::<Vec<_>>().join(" | "));
    Ok(took)
}

/// Applies an incremental script as the proxy's sync loop does, from a
/// thread inside `ns`; returns the path taken and the time it took.
fn incremental_in(ns: &str, script: String) -> anyhow::Result<(Path, Duration)> {
    let ns = ns.to_owned();
    std::thread::spawn(move || -> anyhow::Result<(Path, Duration)> {
        enter(&ns)?;
        let t = Instant::now();
        let path = apply::apply_incremental(&script)?;
        Ok((path, t.elapsed()))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("apply thread panicked"))?
}

/// Lists the `ip` tables as the sync loop does before a full sync, from a thread inside `ns`.
fn tables_in(ns: &str) -> anyhow::Result<Duration> {
    let ns = ns.to_owned();
    std::thread::spawn(move || -> anyhow::Result<Duration> {
        enter(&ns)?;
        let t = Instant::now();
        apply::tables("ip")?;
        Ok(t.elapsed())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("list thread panicked"))?
}

fn enter(ns: &str) -> anyhow::Result<()> {
    let f = std::fs::File::open(format!("/run/netns/{ns}"))?;
    nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
    Ok(())
}

/// connect + 1-byte request/response, p50/p99 in µs.
fn latency(ns: &str, addr: &str, samples: usize) -> anyhow::Result<(f64, f64)> {
    // Each run starts with no conntrack entries, and the client closes first. The direct
    // and the ClusterIP runs share the pod-side tuples (node:port <-> pod:8080): a SYN that
    // meets a TIME_WAIT socket the pod kept from the other run (or a conntrack entry whose
    // clash remaps the port onto one) is answered with a stale ACK, resets, and is resent
    // 2 jiffies later: ~12 ms for ~1 % of the connects, whatever the ruleset.
    sh(&format!("ip netns exec {ns} conntrack -F 2>/dev/null || true"))?;
    let ns = ns.to_owned();
    let addr = addr.to_owned();
    std::thread::spawn(move || -> anyhow::Result<(f64, f64)> {
        enter(&ns)?;
        let mut v = Vec::with_capacity(samples);
        for _ in 0..samples {
            let t = Instant::now();
            let mut s = TcpStream::connect(&addr)?;
            s.set_nodelay(true)?;
            s.write_all(b"x")?;
            let mut b = [0u8; 1];
            s.read_exact(&mut b)?;
            v.push(t.elapsed());
        }
        v.sort();
        let p = |q: f64| v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
        Ok((p(0.5), p(0.99)))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("latency thread panicked"))?
}

/// Bulk throughput over one connection for `secs`, in Gbit/s.
fn throughput(ns: &str, addr: &str, secs: f64) -> anyhow::Result<f64> {
    let ns = ns.to_owned();
    let addr = addr.to_owned();
    std::thread::spawn(move || -> anyhow::Result<f64> {
        enter(&ns)?;
        let mut s = TcpStream::connect(&addr)?;
        s.write_all(b"B")?;
        let mut buf = vec![0u8; 1 << 16];
        let t = Instant::now();
        let mut total = 0usize;
        while t.elapsed().as_secs_f64() < secs {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n;
        }
        Ok(total as f64 * 8.0 / t.elapsed().as_secs_f64() / 1e9)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("throughput thread panicked"))?
}

/// A server in the pod namespace: 1-byte echo, or a byte stream after "B".
fn serve(ns: &str) -> anyhow::Result<()> {
    let ns = ns.to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = (|| -> anyhow::Result<TcpListener> {
            enter(&ns)?;
            Ok(TcpListener::bind("0.0.0.0:8080")?)
        })();
        let l = match r {
            Ok(l) => {
                let _ = tx.send(Ok(()));
                l
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let _ = s.set_nodelay(true);
                let mut b = [0u8; 1];
                if s.read_exact(&mut b).is_err() {
                    return;
                }
                if b[0] == b'B' {
                    let chunk = vec![7u8; 1 << 16];
                    while s.write_all(&chunk).is_ok() {}
                } else if s.write_all(&b).is_ok() {
                    // The client closes first, so TIME_WAIT stays on its side (see `latency`).
                    let _ = s.read(&mut b);
                }
            });
        }
    });
    rx.recv()??;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let id = std::process::id();
    let (node, pod) = (format!("bp-node-{id}"), format!("bp-pod-{id}"));
    sh(&format!(
        "ip netns add {node}; ip netns add {pod}; ip -n {node} link set lo up; ip -n {pod} link set lo up
         ip link add bpv{id} type veth peer name bpp{id}; ip link set bpv{id} netns {node}; ip link set bpp{id} netns {pod}
         ip -n {node} addr add 10.244.0.1/16 dev bpv{id}; ip -n {node} link set bpv{id} up
         ip -n {pod} addr add 10.244.0.2/16 dev bpp{id}; ip -n {pod} link set bpp{id} up; ip -n {pod} route add default via 10.244.0.1
         ip -n {node} route add 10.96.0.0/12 dev bpv{id}"
    ))?;
    let result = run(&args, &node, &pod);
    let _ = Command::new("ip").args(["netns", "del", &node]).status();
    let _ = Command::new("ip").args(["netns", "del", &pod]).status();
    result
}

fn run(args: &Args, node: &str, pod: &str) -> anyhow::Result<()> {
    let cfg = NodeConfig { table: "portico".into(), family: Family::V4, cluster_cidr: Some("10.244.0.0/16".into()) };
    serve(pod)?;
    println!("(a) data path, no Services programmed yet: direct to the pod");
    let (d50, d99) = latency(node, "10.244.0.2:8080", args.samples)?;
    let direct_tput = throughput(node, "10.244.0.2:8080", 2.0)?;
    println!("    direct: connect+RTT p50 {d50:.1} µs p99 {d99:.1} µs; throughput {direct_tput:.2} Gbit/s");
    for &n in &args.services {
        println!("== {n} Services × {} endpoints", args.endpoints);
        let ports: Vec<ServicePort> = (0..n).map(|i| port(i, args.endpoints)).collect();
        // The measured Service: one endpoint, the real pod.
        let mut target = port(n, 1);
        target.endpoints = vec![Endpoint { ip: Ipv4Addr::new(10, 244, 0, 2).into(), port: 8080, local: true }];
        target.local_endpoints = target.endpoints.clone();
        for (label, kube) in [("portico", false), ("kube-proxy shape", true)] {
            if kube && n > args.peer_max_services {
                println!("  kube-proxy shape: not run at {n} Services (--peer-max-services {})", args.peer_max_services);
                continue;
            }
            // Nothing from the previous point (other shard tables) stays.
            sh(&format!("ip netns exec {node} nft flush ruleset"))?;
            let refs: Vec<&ServicePort> = ports.iter().collect();
            let t = Instant::now();
            let (script, mut layout, chains, rules) = if kube {
                let state = State::from_rendered(ports.iter().map(|p| kube_proxy_shape(p, &cfg)).collect::<Vec<_>>().iter());
                (plan::full(&cfg, &state), None, state.chains.len(), state.rule_count())
            } else {
                let full = Layout::full(&cfg, PORTS_PER_TABLE, &refs);
                let (c, r) = full.counts();
                (full.script(&cfg), Some(full.layout), c, r)
            };
            let build = t.elapsed();
            let apply = nft_in(node, &script)?;
            // The sync loop lists the tables (for stale shard tables) before each full sync:
            // timed with these n Services present, as the next periodic resync finds them.
            let listed = if kube { Duration::ZERO } else { tables_in(node)? };
            println!(
                "  (c) {label:<17} full sync: {:.2} s ({} chains, {} rules{}; render {:.0} ms + table list {:.1} ms + nft {:.2} s; {:.1} MB script)",
                (build + listed + apply).as_secs_f64(),
                chains,
                rules,
                layout.as_ref().map(|l| format!(", {} tables", l.placement.tables())).unwrap_or_default(),
                build.as_secs_f64() * 1e3,
                listed.as_secs_f64() * 1e3,
                apply.as_secs_f64(),
                script.len() as f64 / 1e6
            );
            // As the sync loop does after a full sync.
            drop(script);
            portico_proxy::consolidate_heap();
            // (b) one new Service with n present.
            let mut one = Vec::new();
            let mut whole = Vec::new();
            let mut via_netlink = 0;
            for k in 0..args.new_services.max(1) {
                let mut extra = port(n + 1 + k, args.endpoints);
                extra.key = format!("bench/new-{k}/tcp/http");
                let t = Instant::now();
                let d = match layout.as_mut() {
                    None => {
                        let diff = plan::diff(&cfg, &State::default(), &State::from_rendered([&kube_proxy_shape(&extra, &cfg)]));
                        t.elapsed() + nft_in(node, &diff)?
                    }
                    Some(l) => {
                        // What the sync loop does: netlink when every statement compiles, else nft.
                        let (mut opened, mut diff) = (String::new(), String::new());
                        l.change(&cfg, &extra.key, Some(&extra), &mut opened, &mut diff);
                        let (path, _) = incremental_in(node, opened + &diff)?;
                        l.settle();
                        via_netlink += usize::from(path == Path::Netlink);
                        t.elapsed()
                    }
                };
                one.push(d);
                if k + 1 == args.new_services.max(1) {
                    // The peer's way: the whole ruleset again with the new Service in it
                    // (after the last sample, so the samples all follow the same full sync).
                    let t = Instant::now();
                    let script = match layout.as_ref() {
                        None => {
                            let mut all = refs.clone();
                            all.push(&extra);
                            plan::full(&cfg, &State::from_rendered(all.iter().map(|p| kube_proxy_shape(p, &cfg)).collect::<Vec<_>>().iter()))
                        }
                        // The same objects as the incremental path left, all recreated.
                        Some(l) => Full { layout: l.clone(), states: l.states() }.script(&cfg),
                    };
                    whole.push(t.elapsed() + nft_in(node, &script)?);
                }
            }
            let mut slowest: Vec<(usize, Duration)> = one.iter().copied().enumerate().collect();
            slowest.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
            let slowest: Vec<String> = slowest.iter().take(3).map(|(i, d)| format!("#{i} {:.1}", d.as_secs_f64() * 1e3)).collect();
            one.sort();
            whole.sort();
            let q = |f: f64| one[((one.len() - 1) as f64 * f).round() as usize].as_secs_f64() * 1e3;
            println!(
                "  (b) {label:<17} one new Service live: incremental p50 {:.1} ms p99 {:.1} ms max {:.1} ms ({} Services{}; slowest {}); full re-apply {:.0} ms",
                q(0.5),
                q(0.99),
                q(1.0),
                one.len(),
                if kube { ", nft -f".to_owned() } else { format!(", {via_netlink} via netlink") },
                slowest.join(", "),
                whole[0].as_secs_f64() * 1e3
            );
            // (a)/(d): the measured Service on top.
            match layout.as_mut() {
                None => drop(nft_in(node, &plan::diff(&cfg, &State::default(), &State::from_rendered([&kube_proxy_shape(&target, &cfg)])))?),
                Some(l) => {
                    let (mut opened, mut diff) = (String::new(), String::new());
                    l.change(&cfg, &target.key, Some(&target), &mut opened, &mut diff);
                    nft_in(node, &(opened + &diff))?;
                }
            }
            let vip = format!("{}:80", target.cluster_ip.unwrap_or(Ipv4Addr::UNSPECIFIED.into()));
            // Three alternating rounds of each, medians: one round of each drifted ±10 % between runs.
            let mut rounds: [Vec<f64>; 6] = Default::default();
            for _ in 0..3 {
                let ((s50, s99), (d50, d99)) = (latency(node, &vip, args.samples / 3)?, latency(node, "10.244.0.2:8080", args.samples / 3)?);
                let (tput, dtput) = (throughput(node, &vip, 2.0)?, throughput(node, "10.244.0.2:8080", 2.0)?);
                for (r, v) in rounds.iter_mut().zip([s50, s99, d50, d99, tput, dtput]) {
                    r.push(v);
                }
            }
            let [s50, s99, d50, d99, tput, dtput] = rounds.map(|mut r| {
                r.sort_by(f64::total_cmp);
                r[1]
            });
            println!(
                "  (a/d) {label:<15} connect+RTT (median of 3 rounds) via ClusterIP p50 {s50:.1} µs p99 {s99:.1} µs | direct p50 {d50:.1} µs p99 {d99:.1} µs | ratio direct/ClusterIP {:.2}; throughput ClusterIP {tput:.2} vs direct {dtput:.2} Gbit/s ({:.2}×)",
                d50 / s50,
                tput / dtput
            );
        }
    }
    Ok(())
}
