//! The sync loop: Service and EndpointSlice watches feed a small world
//! model; changed Services are marked dirty; after a short minimum interval
//! the dirty Services are re-derived, re-rendered and diffed against what is
//! in the kernel, and the difference goes to the kernel as one transaction
//! (a netlink batch, for the ip and the ip6 table alike; `nft -f` when a
//! statement is outside the netlink compiler's grammar, such as a whole new
//! shard table). A full resync
//! (`nft -f`) runs at start and periodically, and after any failed
//! transaction. Each IP family has its own tables (a main one and, past
//! 2000 Service ports, shard tables: `nft::shards`) and its own view of the
//! kernel; the IPv6 tables exist only while the node has IPv6 and some
//! Service needs them.

use crate::metrics::Metrics;
use crate::nft::ruleset::NodeConfig;
use crate::nft::shards::{self, Layout};
use crate::servicemap::{self, Family, ServicePort};
use crate::{Config, Error, conntrack, nft};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

type Key = (String, String);

enum Ev {
    Svc(watcher::Event<Service>),
    Slice(watcher::Event<EndpointSlice>),
}

/// The watched objects.
#[derive(Default)]
struct World {
    services: HashMap<Key, Service>,
    slices: HashMap<Key, EndpointSlice>,
    by_service: HashMap<Key, BTreeSet<String>>,
}

fn key_of(m: &kube::api::ObjectMeta) -> Key {
    (m.namespace.clone().unwrap_or_default(), m.name.clone().unwrap_or_default())
}

fn owner(s: &EndpointSlice) -> Option<Key> {
    let svc = s.metadata.labels.as_ref()?.get("kubernetes.io/service-name")?;
    Some((s.metadata.namespace.clone().unwrap_or_default(), svc.clone()))
}

impl World {
    fn slices_of(&self, k: &Key) -> Vec<EndpointSlice> {
        self.by_service.get(k).into_iter().flatten().filter_map(|n| self.slices.get(&(k.0.clone(), n.clone())).cloned()).collect()
    }

    fn put_slice(&mut self, s: EndpointSlice) -> Option<Key> {
        let k = key_of(&s.metadata);
        let prev_owner = self.slices.get(&k).and_then(owner);
        let new_owner = owner(&s);
        if let Some(p) = &prev_owner {
            if let Some(set) = self.by_service.get_mut(p) {
                set.remove(&k.1);
            }
        }
        if let Some(o) = &new_owner {
            self.by_service.entry(o.clone()).or_default().insert(k.1.clone());
        }
        self.slices.insert(k, s);
        new_owner.or(prev_owner)
    }

    fn remove_slice(&mut self, s: &EndpointSlice) -> Option<Key> {
        let k = key_of(&s.metadata);
        let o = self.slices.remove(&k).as_ref().and_then(owner).or_else(|| owner(s));
        if let Some(o) = &o {
            if let Some(set) = self.by_service.get_mut(o) {
                set.remove(&k.1);
            }
        }
        o
    }
}

/// The proxy's view of what is in the kernel (one family's tables).
struct Programmed {
    ports: HashMap<Key, Vec<ServicePort>>,
    layout: Layout,
    hairpin: HashMap<IpAddr, usize>,
    chains: usize,
    rules: usize,
    /// The main table exists (the IPv4 one always does after the first sync).
    present: bool,
}

impl Programmed {
    fn new(ports_per_table: usize) -> Self {
        Self { ports: HashMap::new(), layout: Layout::new(ports_per_table), hairpin: HashMap::new(), chains: 0, rules: 0, present: false }
    }
}

/// Whether this node can carry IPv6 at all (the kernel has it and it is not disabled).
fn node_has_ipv6() -> bool {
    let disabled = std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6").map(|v| v.trim() == "1").unwrap_or(true);
    !disabled && std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|s| !s.trim().is_empty())
}

/// The first range of `family` in a comma-separated `--cluster-cidr` list.
fn cidr_of(list: &str, family: Family) -> Option<String> {
    list.split(',').map(str::trim).find(|c| c.split('/').next().and_then(|a| a.parse::<IpAddr>().ok()).is_some_and(|a| Family::of(a) == family)).map(str::to_owned)
}

pub(crate) async fn run(client: kube::Client, cfg: Config, metrics: Arc<Metrics>) -> Result<(), Error> {
    let families: Vec<Family> = Family::BOTH.into_iter().filter(|f| *f == Family::V4 || node_has_ipv6()).collect();
    tracing::info!(?families, "proxying these IP families");
    let mut tables: Vec<(NodeConfig, Programmed)> =
        families.into_iter().map(|family| (NodeConfig { table: cfg.table.clone(), family, cluster_cidr: cidr_of(&cfg.cluster_cidr, family) }, Programmed::new(cfg.ports_per_table))).collect();
    let svcs = watcher(Api::<Service>::all(client.clone()), watcher::Config::default()).default_backoff().map(|e| e.map(Ev::Svc)).boxed();
    let slices = watcher(Api::<EndpointSlice>::all(client), watcher::Config::default()).default_backoff().map(|e| e.map(Ev::Slice)).boxed();
    let mut events = futures::stream::select(svcs, slices);
    let mut world = World::default();
    let (mut svc_init, mut slice_init) = (false, false);
    let (mut svc_listing, mut slice_listing): (Option<World>, Option<Vec<EndpointSlice>>) = (None, None);
    let mut dirty: HashMap<Key, Instant> = HashMap::new();
    let mut need_full = true;
    let mut next_full = tokio::time::Instant::now() + cfg.full_resync_interval;
    let mut last_sync = tokio::time::Instant::now() - cfg.min_sync_interval;
    loop {
        let due = if svc_init && slice_init && (need_full || !dirty.is_empty()) {
            Some((last_sync + cfg.min_sync_interval).max(tokio::time::Instant::now()))
        } else {
            None
        };
        tokio::select! {
            ev = events.next() => {
                let Some(ev) = ev else { return Err(Error::WatchEnded) };
                let now = Instant::now();
                let mut mark = |k: Key| { dirty.entry(k).or_insert(now); };
                match ev {
                    Ok(Ev::Svc(e)) => match e {
                        watcher::Event::Init => svc_listing = Some(World::default()),
                        watcher::Event::InitApply(s) => { if let Some(l) = svc_listing.as_mut() { l.services.insert(key_of(&s.metadata), s); } }
                        watcher::Event::InitDone => {
                            let listed = svc_listing.take().unwrap_or_default().services;
                            for k in world.services.keys().chain(listed.keys()) { mark(k.clone()); }
                            world.services = listed;
                            svc_init = true;
                        }
                        watcher::Event::Apply(s) => { let k = key_of(&s.metadata); world.services.insert(k.clone(), s); mark(k); }
                        watcher::Event::Delete(s) => { let k = key_of(&s.metadata); world.services.remove(&k); mark(k); }
                    },
                    Ok(Ev::Slice(e)) => match e {
                        watcher::Event::Init => slice_listing = Some(Vec::new()),
                        watcher::Event::InitApply(s) => { if let Some(l) = slice_listing.as_mut() { l.push(s); } }
                        watcher::Event::InitDone => {
                            let listed = slice_listing.take().unwrap_or_default();
                            let old: Vec<Key> = world.by_service.keys().cloned().collect();
                            world.slices.clear();
                            world.by_service.clear();
                            for k in old { mark(k); }
                            for s in listed { if let Some(k) = world.put_slice(s) { mark(k); } }
                            slice_init = true;
                        }
                        watcher::Event::Apply(s) => { if let Some(k) = world.put_slice(s) { mark(k); } }
                        watcher::Event::Delete(s) => { if let Some(k) = world.remove_slice(&s) { mark(k); } }
                    },
                    Err(e) => tracing::warn!(error = %e, "proxy watch failed; retrying"),
                }
                if !dirty.is_empty() { metrics.pending(); }
            }
            _ = sleep_opt(due) => {
                let full = need_full || tokio::time::Instant::now() >= next_full;
                let started = Instant::now();
                let mut result = Ok(());
                for (node, prog) in &mut tables {
                    // A family whose table is not there yet gets it from a full sync once a Service needs it.
                    let r = if full || (!prog.present && dirty.keys().any(|k| !ports_of(&cfg, &world, k, node.family).is_empty())) {
                        full_sync(&cfg, node, &world, prog)
                    } else if prog.present {
                        incremental(&cfg, node, &world, &dirty, prog).await
                    } else {
                        Ok(())
                    };
                    result = result.and(r);
                }
                last_sync = tokio::time::Instant::now();
                let (chains, rules) = tables.iter().fold((0, 0), |(c, r), (_, p)| (c + p.chains, r + p.rules));
                match result {
                    Ok(()) => {
                        let took = started.elapsed().as_secs_f64();
                        if full {
                            metrics.full_sync_duration.observe(took);
                            next_full = tokio::time::Instant::now() + cfg.full_resync_interval;
                            tracing::info!(services = world.services.len(), chains, rules, seconds = took, "full proxy sync");
                        }
                        metrics.sync_duration.observe(took);
                        for (_, at) in dirty.drain() { metrics.programming.observe(at.elapsed().as_secs_f64()); }
                        metrics.rules.set(rules as i64);
                        metrics.chains.set(chains as i64);
                        metrics.synced();
                        need_full = false;
                    }
                    Err(e) => {
                        metrics.sync_failures.inc();
                        tracing::error!(error = %e, "proxy sync failed; a full resync follows");
                        need_full = true;
                    }
                }
            }
        }
    }
}

async fn sleep_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn ports_of(cfg: &Config, world: &World, k: &Key, family: Family) -> Vec<ServicePort> {
    match world.services.get(k) {
        Some(s) => servicemap::build(std::slice::from_ref(s), &world.slices_of(k), &cfg.node_name, family).into_values().collect(),
        None => vec![],
    }
}

fn full_sync(cfg: &Config, node: &NodeConfig, world: &World, prog: &mut Programmed) -> Result<(), Error> {
    let mut ports: HashMap<Key, Vec<ServicePort>> = HashMap::new();
    for k in world.services.keys() {
        ports.insert(k.clone(), ports_of(cfg, world, k, node.family));
    }
    let all: Vec<&ServicePort> = ports.values().flatten().collect();
    let full = Layout::full(node, cfg.ports_per_table, &all);
    let tables = full.layout.placement.tables();
    let family = node.family.nft();
    let stale: String = nft::apply::tables(family)?
        .iter()
        .filter(|name| shards::index_of(&node.table, name).is_some_and(|n| n >= tables))
        .map(|name| format!("delete table {family} {name}\n"))
        .collect();
    // The IPv4 table always exists (as kube-proxy's); the IPv6 one only while something needs it.
    let present = node.family == Family::V4 || !all.is_empty();
    if present {
        if node.family == Family::V6 && !prog.present {
            // Pods' IPv6 traffic to endpoints on other interfaces is forwarded, as ip_forward for IPv4.
            let _ = std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1");
        }
        nft::apply::apply(&(full.script(node) + &stale))?;
    } else {
        nft::apply::apply(&format!("add table {family} {0}\ndelete table {family} {0}\n{stale}", node.table))?;
    }
    let mut hairpin = HashMap::new();
    for r in full.layout.rendered.values() {
        for ip in &r.endpoint_ips {
            *hairpin.entry(*ip).or_insert(0) += 1;
        }
    }
    let (chains, rules) = full.counts();
    *prog = Programmed { ports, layout: full.layout, hairpin, chains, rules, present };
    drop(full.states);
    crate::consolidate_heap();
    Ok(())
}

async fn incremental(cfg: &Config, node: &NodeConfig, world: &World, dirty: &HashMap<Key, Instant>, prog: &mut Programmed) -> Result<(), Error> {
    // Shard tables opened by this sync come first in the transaction.
    let mut opened = String::new();
    let mut script = String::new();
    let mut flushes = Vec::new();
    let mut staged: Vec<(Key, Vec<ServicePort>)> = Vec::new();
    let mut hairpin = prog.hairpin.clone();
    let (mut hp_add, mut hp_del) = (BTreeSet::new(), BTreeSet::new());
    let (mut chains, mut rules) = (prog.chains as i64, prog.rules as i64);
    for k in dirty.keys() {
        let new_ports = ports_of(cfg, world, k, node.family);
        let old_ports = prog.ports.get(k).cloned().unwrap_or_default();
        if new_ports == old_ports {
            continue;
        }
        let mut keys: BTreeSet<String> = old_ports.iter().map(|p| p.key.clone()).collect();
        keys.extend(new_ports.iter().map(|p| p.key.clone()));
        for pk in keys {
            let old_p = old_ports.iter().find(|p| p.key == pk);
            let new_p = new_ports.iter().find(|p| p.key == pk);
            let (old_r, new_r) = prog.layout.change(node, &pk, new_p, &mut opened, &mut script);
            chains += new_r.chains.len() as i64 - old_r.chains.len() as i64;
            rules += new_r.chains.values().map(Vec::len).sum::<usize>() as i64 - old_r.chains.values().map(Vec::len).sum::<usize>() as i64;
            for ip in &old_r.endpoint_ips {
                if let Some(n) = hairpin.get_mut(ip) {
                    *n -= 1;
                    if *n == 0 {
                        hairpin.remove(ip);
                        hp_del.insert(*ip);
                    }
                }
            }
            for ip in &new_r.endpoint_ips {
                let n = hairpin.entry(*ip).or_insert(0);
                if *n == 0 {
                    hp_add.insert(*ip);
                }
                *n += 1;
            }
            flushes.extend(conntrack::flushes(old_p, new_p));
        }
        staged.push((k.clone(), new_ports));
    }
    // An address removed by one Service and added by another stays.
    let both: BTreeSet<IpAddr> = hp_add.intersection(&hp_del).copied().collect();
    let t = node.qualified_table();
    let del: Vec<String> = hp_del.difference(&both).map(|ip| format!("{ip} . {ip}")).collect();
    let add: Vec<String> = hp_add.difference(&both).map(|ip| format!("{ip} . {ip}")).collect();
    if !del.is_empty() {
        script.push_str(&format!("delete element {t} hairpin {{ {} }}\n", del.join(", ")));
    }
    if !add.is_empty() {
        script.push_str(&format!("add element {t} hairpin {{ {} }}\n", add.join(", ")));
    }
    if !script.is_empty() || !opened.is_empty() {
        let path = nft::apply::apply_incremental(&(opened + &script))?;
        tracing::debug!(table = %t, ?path, "incremental proxy sync");
    }
    // The slots freed above are out of the kernel now; later syncs may reuse them.
    prog.layout.settle();
    for (k, ports) in staged {
        if ports.is_empty() {
            prog.ports.remove(&k);
        } else {
            prog.ports.insert(k, ports);
        }
    }
    prog.hairpin = hairpin;
    prog.chains = chains.max(0) as usize;
    prog.rules = rules.max(0) as usize;
    conntrack::run(&flushes, node.family).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_cidr_lists_give_each_family_its_range() {
        let list = "10.244.0.0/16, fd00:10:244::/56";
        assert_eq!(cidr_of(list, Family::V4).as_deref(), Some("10.244.0.0/16"));
        assert_eq!(cidr_of(list, Family::V6).as_deref(), Some("fd00:10:244::/56"));
        assert_eq!(cidr_of("10.244.0.0/16", Family::V6), None, "no IPv6 range: no masquerade rule keyed on it");
    }
}
