//! `bench-api`: measures Portico's API server with a real client (kube-rs).
//!
//! Starts the server in-process on a temporary SQLite data dir, then:
//! 1. creates N Services with C concurrent clients (objects/s, p50/p99),
//! 2. lists them (full list and 500-item pages),
//! 3. fans every create of a second batch out to M watchers (events/s
//!    delivered, p50/p99 create→delivery latency),
//!
//! In the same run it measures the raw SQLite commit rate of the store on the
//! same disk, which bounds the create rate. No kube-apiserver exists on this
//! machine to compare with, so the figures are absolute.

use anyhow::Context;
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// Services to create.
    #[arg(long, default_value_t = 2000)]
    services: usize,
    /// Concurrent creators.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Watchers for the fan-out phase.
    #[arg(long, default_value_t = 50)]
    watchers: usize,
    /// Services created during the fan-out phase.
    #[arg(long, default_value_t = 500)]
    fanout_services: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn service(name: &str) -> anyhow::Result<Service> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "labels": {"bench": "api"}},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }))?)
}

async fn create_many(api: &Api<Service>, prefix: &str, n: usize, concurrency: usize) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let started = Instant::now();
    let mut lat: Vec<Duration> = futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            let name = format!("{prefix}-{i}");
            async move {
                let t = Instant::now();
                api.create(&PostParams::default(), &service(&name)?).await.with_context(|| format!("creating {name}"))?;
                Ok::<_, anyhow::Error>(t.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    lat.sort();
    Ok((started.elapsed(), lat))
}

async fn sqlite_commit_rate(dir: &std::path::Path, n: usize) -> anyhow::Result<f64> {
    use portico_store::Store;
    let store = portico_store::sqlite::SqliteStore::open(&dir.join("raw.db"))?;
    let value = bytes::Bytes::from(vec![b'x'; 600]);
    let started = Instant::now();
    for i in 0..n {
        store.create(&format!("/bench/raw/{i}"), value.clone()).await?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let store = portico_store::sqlite::SqliteStore::open(&dir.path().join("portico.db"))?;
    let cfg = portico_apiserver::Config {
        data_dir: dir.path().join("data"),
        bind: "127.0.0.1:0".parse()?,
        ..Default::default()
    };
    let running = portico_apiserver::start(cfg, Arc::new(store)).await?;
    let kubeconfig = kube::config::Kubeconfig::read_from(&running.kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let client = kube::Client::try_from(config)?;
    let api: Api<Service> = Api::namespaced(client.clone(), "default");

    let raw = sqlite_commit_rate(dir.path(), 500).await?;
    println!("raw SQLite commit rate (sequential, fsync per commit): {raw:.0} commits/s");

    let (took, lat) = create_many(&api, "bench", args.services, args.concurrency).await?;
    println!(
        "create {} Services, concurrency {}: {:.0} objects/s, p50 {:.2} ms, p99 {:.2} ms",
        args.services,
        args.concurrency,
        args.services as f64 / took.as_secs_f64(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );

    let mut list_lat = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let l = api.list(&ListParams::default().labels("bench=api")).await?;
        anyhow::ensure!(l.items.len() == args.services, "list returned {} items", l.items.len());
        list_lat.push(t.elapsed());
    }
    list_lat.sort();
    println!(
        "list {} Services: p50 {:.1} ms ({:.0} objects/s)",
        args.services,
        percentile(&list_lat, 0.5).as_secs_f64() * 1e3,
        args.services as f64 / percentile(&list_lat, 0.5).as_secs_f64()
    );
    let t = Instant::now();
    let mut pages = 0;
    let mut lp = ListParams::default().limit(500);
    loop {
        let page = api.list(&lp).await?;
        pages += 1;
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    println!("paged list (limit=500): {pages} pages in {:.1} ms", t.elapsed().as_secs_f64() * 1e3);

    // Watch fan-out: M watchers from the current revision, then a batch of creates.
    let rv = api.list_metadata(&ListParams::default().limit(1)).await?.metadata.resource_version.unwrap_or_default();
    let created_at = Arc::new(parking_lot_free::Times::new(args.fanout_services));
    let mut watchers = Vec::new();
    for _ in 0..args.watchers {
        let api = api.clone();
        let rv = rv.clone();
        let times = created_at.clone();
        let want = args.fanout_services;
        watchers.push(tokio::spawn(async move {
            let mut stream = api.watch(&WatchParams::default().timeout(290), &rv).await?.boxed();
            let mut lat = Vec::with_capacity(want);
            while lat.len() < want {
                match stream.try_next().await? {
                    Some(WatchEvent::Added(s)) => {
                        let name = s.metadata.name.unwrap_or_default();
                        if let Some(i) = name.strip_prefix("fan-").and_then(|n| n.parse::<usize>().ok()) {
                            lat.push(times.since(i));
                        }
                    }
                    Some(_) => {}
                    None => anyhow::bail!("watch ended early after {} events", lat.len()),
                }
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    futures::stream::iter(0..args.fanout_services)
        .map(|i| {
            let api = api.clone();
            let times = created_at.clone();
            async move {
                times.mark(i);
                api.create(&PostParams::default(), &service(&format!("fan-{i}"))?).await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(args.concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    let mut all = Vec::new();
    for w in watchers {
        all.extend(w.await??);
    }
    let took = t.elapsed();
    all.sort();
    println!(
        "watch fan-out: {} creates x {} watchers = {} events in {:.2} s ({:.0} events/s), create→event p50 {:.2} ms, p99 {:.2} ms",
        args.fanout_services,
        args.watchers,
        all.len(),
        took.as_secs_f64(),
        all.len() as f64 / took.as_secs_f64(),
        percentile(&all, 0.5).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3
    );
    running.shutdown().await;
    Ok(())
}

mod parking_lot_free {
    //! Start times of creates, recorded lock-free by index.
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// One start time per create.
    pub struct Times(Vec<OnceLock<Instant>>);

    impl Times {
        /// Room for `n` creates.
        pub fn new(n: usize) -> Self {
            Self((0..n).map(|_| OnceLock::new()).collect())
        }
        /// Records the start of create `i`.
        pub fn mark(&self, i: usize) {
            let _ = self.0[i].set(Instant::now());
        }
        /// Time since create `i` started.
        pub fn since(&self, i: usize) -> Duration {
            self.0.get(i).and_then(|c| c.get()).map(Instant::elapsed).unwrap_or_default()
        }
    }
}
