//! `bench-controllers`: how fast a pod readiness change reaches the
//! EndpointSlices, with many Services and pods.
//!
//! Starts the API server (SQLite) and the controllers in-process, creates S
//! Services with P pods each (pods get IPs and turn ready through the status
//! subresource, as a node agent would), waits for the slices to settle, then
//! flips the readiness of K pods one at a time and measures, for each, the
//! time from the acknowledged status write to the watch event of the slice
//! that reflects it. Upstream's EndpointSlice controller can batch updates
//! (`--endpointslice-updates-batch-period`, often set to 1 s at scale); the
//! figures here are per change, with no batching.

use anyhow::Context;
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// Services.
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// Pods per Service.
    #[arg(long, default_value_t = 10)]
    pods: usize,
    /// Readiness flips to time.
    #[arg(long, default_value_t = 200)]
    flips: usize,
    /// Concurrent writers while setting up.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize].as_secs_f64() * 1e3
}

fn ip(svc: usize, pod: usize) -> String {
    let n = svc * 16 + pod;
    format!("10.{}.{}.{}", 200 + n / 65536, (n / 256) % 256, n % 256)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let store = portico_store::sqlite::SqliteStore::open(&dir.path().join("portico.db"))?;
    let cfg = portico_apiserver::Config { data_dir: dir.path().join("data"), bind: "127.0.0.1:0".parse()?, ..Default::default() };
    let running = portico_apiserver::start(cfg, Arc::new(store)).await?;
    let kc = kube::config::Kubeconfig::read_from(&running.kubeconfig)?;
    let client = kube::Client::try_from(kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?)?;
    let controllers = tokio::spawn(portico_controllers::run(client.clone(), Default::default()));
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");

    let t = Instant::now();
    futures::stream::iter(0..args.services)
        .map(|s| {
            let svcs = svcs.clone();
            async move {
                let svc: Service = serde_json::from_value(json!({"metadata": {"name": format!("svc-{s}")},
                    "spec": {"selector": {"app": format!("app-{s}")}, "ports": [{"port": 80, "targetPort": 8080}]}}))?;
                svcs.create(&PostParams::default(), &svc).await.context("create service")?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(args.concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    let work: Vec<(usize, usize)> = (0..args.services).flat_map(|s| (0..args.pods).map(move |p| (s, p))).collect();
    futures::stream::iter(work.clone())
        .map(|(s, p)| {
            let pods = pods.clone();
            async move {
                let name = format!("pod-{s}-{p}");
                let pod: Pod = serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": format!("app-{s}")}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]}}))?;
                pods.create(&PostParams::default(), &pod).await.context("create pod")?;
                let status = json!({"status": {"phase": "Running", "podIP": ip(s, p), "conditions": [{"type": "Ready", "status": "True"}]}});
                pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(status)).await.context("pod status")?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(args.concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    println!("setup: {} Services, {} pods written in {:.1} s", args.services, work.len(), t.elapsed().as_secs_f64());

    // Wait until every Service has a slice with all its pods.
    let t = Instant::now();
    loop {
        let list = slices.list(&ListParams::default()).await?;
        let full = list.items.iter().filter(|s| s.endpoints.len() == args.pods && s.endpoints.iter().all(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))).count();
        if full >= args.services {
            break;
        }
        anyhow::ensure!(t.elapsed() < Duration::from_secs(600), "slices did not settle: {full}/{}", args.services);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("initial sync: all {} Services' slices complete {:.1} s after the last pod write", args.services, t.elapsed().as_secs_f64());

    let rv = slices.list_metadata(&ListParams::default().limit(1)).await?.metadata.resource_version.unwrap_or_default();
    let mut events = slices.watch(&WatchParams::default().timeout(290), &rv).await?.boxed();
    let mut lat = Vec::with_capacity(args.flips);
    for k in 0..args.flips {
        let (s, p) = work[(k * 7919) % work.len()];
        let name = format!("pod-{s}-{p}");
        let target = ip(s, p);
        let ready = k % 2 == 1;
        let status = json!({"status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
        // Read the current state so flips alternate per pod.
        let cur = pods.get(&name).await?;
        let was_ready = cur.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let want = !was_ready;
        let status = if want == ready { status } else { json!({"status": {"conditions": [{"type": "Ready", "status": if want { "True" } else { "False" }}]}}) };
        let t = Instant::now();
        pods.patch_status(&name, &PatchParams::default(), &Patch::Strategic(status)).await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), events.try_next()).await {
                Ok(Ok(Some(WatchEvent::Modified(slice)))) => {
                    let hit = slice.endpoints.iter().any(|e| e.addresses.first() == Some(&target) && e.conditions.as_ref().and_then(|c| c.ready) == Some(want));
                    if hit {
                        lat.push(t.elapsed());
                        break;
                    }
                }
                Ok(Ok(Some(_))) => {}
                other => anyhow::bail!("watch failed while waiting for {name}: {other:?}"),
            }
        }
    }
    lat.sort();
    println!(
        "readiness change -> EndpointSlice update ({} Services x {} pods, {} flips): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        args.services,
        args.pods,
        lat.len(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );
    controllers.abort();
    running.shutdown().await;
    Ok(())
}
