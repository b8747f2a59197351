//! Keeping the zone current: Service, EndpointSlice and Namespace watches
//! feed a world model; after every burst of events the changed Services are
//! re-derived into a copy of the zone, which is swapped in atomically.

use crate::zone::{Zone, ZoneConfig, service_view};
use arc_swap::ArcSwap;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

type Key = (String, String);

enum Ev {
    Svc(watcher::Event<Service>),
    Slice(watcher::Event<EndpointSlice>),
    Ns(watcher::Event<Namespace>),
}

#[derive(Default)]
struct World {
    services: HashMap<Key, Service>,
    slices: HashMap<Key, EndpointSlice>,
    by_service: HashMap<Key, BTreeSet<String>>,
    namespaces: HashSet<String>,
}

fn key_of(m: &kube::api::ObjectMeta) -> Key {
    (m.namespace.clone().unwrap_or_default(), m.name.clone().unwrap_or_default())
}

fn owner(s: &EndpointSlice) -> Option<Key> {
    Some((s.metadata.namespace.clone().unwrap_or_default(), s.metadata.labels.as_ref()?.get("kubernetes.io/service-name")?.clone()))
}

impl World {
    fn put_slice(&mut self, s: EndpointSlice) -> Vec<Key> {
        let k = key_of(&s.metadata);
        let mut touched = Vec::new();
        if let Some(p) = self.slices.get(&k).and_then(owner) {
            if let Some(set) = self.by_service.get_mut(&p) {
                set.remove(&k.1);
            }
            touched.push(p);
        }
        if let Some(o) = owner(&s) {
            self.by_service.entry(o.clone()).or_default().insert(k.1.clone());
            touched.push(o);
        }
        self.slices.insert(k, s);
        touched
    }

    fn remove_slice(&mut self, s: &EndpointSlice) -> Vec<Key> {
        let k = key_of(&s.metadata);
        let o = self.slices.remove(&k).as_ref().and_then(owner).or_else(|| owner(s));
        if let Some(o) = &o {
            if let Some(set) = self.by_service.get_mut(o) {
                set.remove(&k.1);
            }
        }
        o.into_iter().collect()
    }

    fn view(&self, k: &Key) -> Option<crate::zone::Svc> {
        let svc = self.services.get(k)?;
        let slices: Vec<&EndpointSlice> = self.by_service.get(k).into_iter().flatten().filter_map(|n| self.slices.get(&(k.0.clone(), n.clone()))).collect();
        Some(service_view(svc, &slices))
    }
}

fn now_serial() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(1)
}

/// Watches the API and keeps `zone` current until the watches end.
pub async fn run(client: kube::Client, cfg: ZoneConfig, zone: Arc<ArcSwap<Zone>>, ready: impl Fn()) {
    let s = watcher(Api::<Service>::all(client.clone()), watcher::Config::default()).default_backoff().map(|e| e.map(Ev::Svc)).boxed();
    let e = watcher(Api::<EndpointSlice>::all(client.clone()), watcher::Config::default()).default_backoff().map(|e| e.map(Ev::Slice)).boxed();
    let n = watcher(Api::<Namespace>::all(client), watcher::Config::default()).default_backoff().map(|e| e.map(Ev::Ns)).boxed();
    let mut events = futures::stream::select(futures::stream::select(s, e), n);
    let mut world = World::default();
    let (mut svc_list, mut slice_list, mut ns_list): (Option<Vec<Service>>, Option<Vec<EndpointSlice>>, Option<Vec<Namespace>>) = (None, None, None);
    let mut inited = [false; 3];
    let mut full = true;
    let mut dirty: HashSet<Key> = HashSet::new();
    loop {
        let Some(first) = events.next().await else { return };
        let mut batch = vec![first];
        while let Some(Some(ev)) = events.next().now_or_never() {
            batch.push(ev);
            if batch.len() > 10_000 {
                break;
            }
        }
        for ev in batch {
            match ev {
                Ok(Ev::Svc(ev)) => match ev {
                    watcher::Event::Init => svc_list = Some(Vec::new()),
                    watcher::Event::InitApply(o) => svc_list.get_or_insert_with(Vec::new).push(o),
                    watcher::Event::InitDone => {
                        world.services = svc_list.take().unwrap_or_default().into_iter().map(|s| (key_of(&s.metadata), s)).collect();
                        inited[0] = true;
                        full = true;
                    }
                    watcher::Event::Apply(o) => {
                        let k = key_of(&o.metadata);
                        world.services.insert(k.clone(), o);
                        dirty.insert(k);
                    }
                    watcher::Event::Delete(o) => {
                        let k = key_of(&o.metadata);
                        world.services.remove(&k);
                        dirty.insert(k);
                    }
                },
                Ok(Ev::Slice(ev)) => match ev {
                    watcher::Event::Init => slice_list = Some(Vec::new()),
                    watcher::Event::InitApply(o) => slice_list.get_or_insert_with(Vec::new).push(o),
                    watcher::Event::InitDone => {
                        world.slices.clear();
                        world.by_service.clear();
                        for s in slice_list.take().unwrap_or_default() {
                            world.put_slice(s);
                        }
                        inited[1] = true;
                        full = true;
                    }
                    watcher::Event::Apply(o) => dirty.extend(world.put_slice(o)),
                    watcher::Event::Delete(o) => dirty.extend(world.remove_slice(&o)),
                },
                Ok(Ev::Ns(ev)) => match ev {
                    watcher::Event::Init => ns_list = Some(Vec::new()),
                    watcher::Event::InitApply(o) => ns_list.get_or_insert_with(Vec::new).push(o),
                    watcher::Event::InitDone => {
                        world.namespaces = ns_list.take().unwrap_or_default().iter().filter_map(|n| n.metadata.name.clone()).collect();
                        inited[2] = true;
                        full = true;
                    }
                    watcher::Event::Apply(o) => {
                        world.namespaces.extend(o.metadata.name.clone());
                    }
                    watcher::Event::Delete(o) => {
                        if let Some(n) = &o.metadata.name {
                            world.namespaces.remove(n);
                        }
                    }
                },
                Err(e) => tracing::warn!(error = %e, "DNS watch failed; retrying"),
            }
        }
        if !inited.iter().all(|x| *x) {
            continue;
        }
        let mut next: Zone = if full { Zone::default() } else { (**zone.load()).clone() };
        next.synced = true;
        next.serial = now_serial();
        next.namespaces = world.namespaces.iter().map(|n| n.to_lowercase()).collect();
        let keys: Vec<Key> = if full { world.services.keys().cloned().collect() } else { dirty.drain().collect() };
        for k in keys {
            let view = world.view(&k);
            next.put(k, view, &cfg);
        }
        dirty.clear();
        if full {
            tracing::info!(services = next.services.len(), "DNS zone synced");
            ready();
        }
        full = false;
        zone.store(Arc::new(next));
    }
}
