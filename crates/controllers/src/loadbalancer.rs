//! LoadBalancer addresses: ServiceLB style by default (the Ready nodes'
//! InternalIPs are the ingress addresses), or a dedicated IP per Service
//! from a pool (`--lb-pool`). Allocation is derived from the Services'
//! statuses, so nothing leaks: an address is free once no Service shows it.

use crate::Error;
use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// The `loadBalancerClass` Portico answers for (besides none).
pub const LB_CLASS: &str = "portico.dev/lb";

fn ingress_ips(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| i.iter().filter_map(|x| x.ip.clone()).collect())
        .unwrap_or_default()
}

fn is_ours(svc: &Service) -> bool {
    let spec = svc.spec.as_ref();
    spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer") && spec.and_then(|s| s.load_balancer_class.as_deref()).is_none_or(|c| c == LB_CLASS)
}

/// The Ready nodes' InternalIPs, sorted.
pub fn node_addresses(nodes: &[&Node]) -> Vec<String> {
    let mut ips: Vec<String> = nodes
        .iter()
        .filter(|n| n.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")))
        .flat_map(|n| n.status.as_ref().and_then(|s| s.addresses.clone()).unwrap_or_default())
        .filter(|a| a.type_ == "InternalIP")
        .map(|a| a.address)
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// The pool address for a Service: its current one if still valid, else the
/// requested `loadBalancerIP` if free, else the first free one.
pub fn pool_address(pool: Ipv4Net, current: &[String], requested: Option<&str>, taken: &[String]) -> Option<Ipv4Addr> {
    let usable = |ip: &Ipv4Addr| pool.contains(ip) && *ip != pool.network() && *ip != pool.broadcast() && !taken.contains(&ip.to_string());
    if let Some(ip) = current.iter().filter_map(|c| c.parse::<Ipv4Addr>().ok()).find(|ip| usable(ip)) {
        return Some(ip);
    }
    if let Some(r) = requested.filter(|r| !r.is_empty()) {
        return r.parse::<Ipv4Addr>().ok().filter(|ip| usable(ip));
    }
    pool.hosts().find(|ip| usable(ip))
}

struct Ctx {
    client: Client,
    pool: Option<Ipv4Net>,
    nodes: Store<Node>,
    services: Store<Service>,
    lock: Mutex<()>,
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let current = ingress_ips(&svc);
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &svc.namespace().unwrap_or_default());
    let set = |ips: Vec<String>| {
        let ingress: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip, "ipMode": "VIP"})).collect();
        json!({"status": {"loadBalancer": if ingress.is_empty() { json!({"ingress": null}) } else { json!({"ingress": ingress}) }}})
    };
    if !is_ours(&svc) {
        // Type changed away from LoadBalancer: the address is released.
        let foreign_class = svc.spec.as_ref().and_then(|s| s.load_balancer_class.as_deref()).is_some_and(|c| c != LB_CLASS);
        if !current.is_empty() && !foreign_class {
            api.patch_status(&svc.name_any(), &PatchParams::default(), &Patch::Merge(set(Vec::new()))).await?;
        }
        return Ok(Action::await_change());
    }
    let _guard = ctx.lock.lock().await;
    let want: Vec<String> = match ctx.pool {
        None => {
            let nodes = ctx.nodes.state();
            node_addresses(&nodes.iter().map(|n| n.as_ref()).collect::<Vec<_>>())
        }
        Some(pool) => {
            let me = ObjectRef::from_obj(svc.as_ref());
            let taken: Vec<String> = ctx.services.state().iter().filter(|s| ObjectRef::from_obj(s.as_ref()) != me && is_ours(s)).flat_map(|s| ingress_ips(s)).collect();
            let requested = svc.spec.as_ref().and_then(|s| s.load_balancer_ip.as_deref());
            pool_address(pool, &current, requested, &taken).map(|ip| vec![ip.to_string()]).unwrap_or_default()
        }
    };
    if want != current {
        api.patch_status(&svc.name_any(), &PatchParams::default(), &Patch::Merge(set(want))).await?;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Runs the LoadBalancer address controller.
pub async fn run(client: Client, pool: Option<Ipv4Net>) {
    let (nodes, writer) = reflector::store::<Node>();
    let node_stream = reflector::reflector(writer, watcher(Api::<Node>::all(client.clone()), watcher::Config::default())).default_backoff().touched_objects();
    let controller = Controller::new(Api::<Service>::all(client.clone()), watcher::Config::default());
    let services = controller.store();
    let for_nodes = services.clone();
    let ctx = Arc::new(Ctx { client, pool, nodes, services, lock: Mutex::new(()) });
    controller
        // Node changes move ServiceLB addresses.
        .watches_stream(node_stream, move |_n| for_nodes.state().iter().filter(|s| is_ours(s)).map(|s| ObjectRef::from_obj(s.as_ref())).collect::<Vec<_>>())
        .run(reconcile, |_, _, _| Action::requeue(Duration::from_secs(1)), ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_addresses_are_stable_requested_or_first_free() {
        let pool: Ipv4Net = "192.0.2.0/29".parse().expect("pool");
        let taken = vec!["192.0.2.1".to_owned()];
        assert_eq!(pool_address(pool, &[], None, &taken), Some("192.0.2.2".parse().expect("ip")));
        assert_eq!(pool_address(pool, &["192.0.2.5".into()], None, &taken), Some("192.0.2.5".parse().expect("ip")));
        assert_eq!(pool_address(pool, &[], Some("192.0.2.4"), &taken), Some("192.0.2.4".parse().expect("ip")));
        assert_eq!(pool_address(pool, &[], Some("192.0.2.1"), &taken), None, "a taken requested IP is not handed out");
        let full: Vec<String> = (1..7).map(|i| format!("192.0.2.{i}")).collect();
        assert_eq!(pool_address(pool, &[], None, &full), None);
    }
}
