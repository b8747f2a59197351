//! Acknowledged writes survive `kill -9`; allocations stay consistent.

use crate::harness::{Cluster, stdout};

fn rv(c: &Cluster, what: &[&str]) -> u64 {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", "jsonpath={.metadata.resourceVersion}"]);
    c.ok(&args).parse().expect("numeric resourceVersion")
}

#[test]
fn writes_survive_kill_9_and_allocations_are_repaired() {
    let mut c = Cluster::start();
    let mut ports = Vec::new();
    for i in 0..10 {
        c.ok(&["create", "configmap", &format!("cm{i}"), &format!("--from-literal=i={i}")]);
        c.ok(&["create", "service", "nodeport", &format!("np{i}"), "--tcp=80:80"]);
        ports.push(c.ok(&["get", "svc", &format!("np{i}"), "-o", "jsonpath={.spec.clusterIP} {.spec.ports[0].nodePort}"]));
    }
    c.ok(&["label", "configmap", "cm3", "edited=yes"]);
    let before = rv(&c, &["configmap", "cm3"]);
    c.kill9();
    c.restart();
    for (i, before) in ports.iter().enumerate() {
        assert_eq!(c.ok(&["get", "configmap", &format!("cm{i}"), "-o", "jsonpath={.data.i}"]), i.to_string());
        let now = c.ok(&["get", "svc", &format!("np{i}"), "-o", "jsonpath={.spec.clusterIP} {.spec.ports[0].nodePort}"]);
        assert_eq!(&now, before, "allocation of np{i} changed");
    }
    assert_eq!(c.ok(&["get", "configmap", "cm3", "-o", "jsonpath={.metadata.labels.edited}"]), "yes");
    c.ok(&["create", "configmap", "after", "--from-literal=a=b"]);
    assert!(rv(&c, &["configmap", "after"]) > before, "resourceVersions must keep increasing across restarts");
    // New Services never collide with the ones that survived.
    for i in 0..10 {
        c.ok(&["create", "service", "nodeport", &format!("new{i}"), "--tcp=80:80"]);
    }
    let all = c.ok(&["get", "svc", "-o", "jsonpath={range .items[*]}{.spec.clusterIP} {.spec.ports[0].nodePort}{\"\\n\"}{end}"]);
    let mut ips: Vec<&str> = all.lines().map(|l| l.split(' ').next().unwrap_or_default()).collect();
    let mut nps: Vec<&str> = all.lines().filter_map(|l| l.split(' ').nth(1)).filter(|p| !p.is_empty()).collect();
    let (n_ips, n_nps) = (ips.len(), nps.len());
    ips.sort_unstable();
    ips.dedup();
    nps.sort_unstable();
    nps.dedup();
    assert_eq!((ips.len(), nps.len()), (n_ips, n_nps), "duplicate allocation:\n{all}");
}

#[test]
fn sigterm_drains_and_exits_cleanly() {
    let mut c = Cluster::start();
    c.ok(&["create", "configmap", "before-stop", "--from-literal=a=b"]);
    let status = c.terminate().expect("portico stops within 20s of SIGTERM");
    assert!(status.success(), "exit status {status}:\n{}", c.log());
    c.restart();
    let out = c.kubectl(&["get", "configmap", "before-stop"]);
    assert!(out.status.success() && stdout(&out).contains("before-stop"));
}

#[test]
fn a_restart_mid_rollout_converges_without_duplicates() {
    let mut c = Cluster::start();
    let manifest = crate::harness::NGINX.replace("replicas: 2", "replicas: 6");
    c.apply(&manifest, &[]);
    // Kill the server while the controllers are creating pods.
    c.kill9();
    c.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let pods = c.ok(&["get", "pods", "-o", "name"]);
        let rs = c.ok(&["get", "rs", "-o", "name"]);
        let slices = c.ok(&["get", "endpointslices", "-l", "kubernetes.io/service-name=my-nginx", "-o", "name"]);
        if pods.lines().count() == 6 && rs.lines().count() == 1 && slices.lines().count() == 1 {
            // Stays converged.
            std::thread::sleep(std::time::Duration::from_secs(1));
            assert_eq!(c.ok(&["get", "pods", "-o", "name"]).lines().count(), 6);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "did not converge:\n{pods}\n{rs}\n{slices}\n{}", c.log());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let lease = c.ok(&["get", "lease", "-n", "kube-system", "portico-controller-manager", "-o", "jsonpath={.spec.holderIdentity}"]);
    assert!(!lease.is_empty(), "the controller lease has a holder");
}
