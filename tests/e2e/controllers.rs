//! What the controllers make kubectl show. No node agent runs yet, so the
//! test plays it: it gives pods an IP and a Ready condition through the
//! status subresource, as a kubelet would.

use crate::harness::{Cluster, NGINX, row};
use std::time::{Duration, Instant};

fn until(c: &Cluster, what: &str, args: &[&str], check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = c.ok(args);
        if check(&out) {
            return out;
        }
        assert!(Instant::now() < deadline, "{what}: last output:\n{out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn deployment_pods_endpoints_and_rollout_status() {
    let c = Cluster::start();
    c.apply(&NGINX.replace("protocol: TCP\n", "protocol: TCP\n    targetPort: 80\n"), &[]);
    let pods = until(&c, "two pods", &["get", "pods", "-o", "name"], |o| o.lines().count() == 2);
    for (i, pod) in pods.lines().enumerate() {
        let status = format!(r#"{{"status":{{"phase":"Running","podIP":"10.244.0.{}","conditions":[{{"type":"Ready","status":"True"}}]}}}}"#, i + 10);
        c.ok(&["patch", pod, "--subresource=status", "--type=merge", "-p", &status]);
    }
    let ep = until(&c, "endpoints", &["get", "ep", "my-nginx"], |o| o.contains("10.244.0.10:80") && o.contains("10.244.0.11:80"));
    assert_eq!(row(&ep, "my-nginx")[1], "10.244.0.10:80,10.244.0.11:80");
    let describe = c.ok(&["describe", "svc", "my-nginx"]);
    assert!(describe.lines().any(|l| l.starts_with("Endpoints:") && l.ends_with("10.244.0.10:80,10.244.0.11:80")), "{describe}");
    let slices = c.ok(&["get", "endpointslices", "-l", "kubernetes.io/service-name=my-nginx"]);
    let r: Vec<&str> = slices.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert_eq!(&r[1..4], ["IPv4", "80", "10.244.0.10,10.244.0.11"], "{slices}");
    let all = until(&c, "deployment ready", &["get", "deploy,rs,pods"], |o| o.contains("2/2"));
    assert!(all.contains("deployment.apps/my-nginx   2/2     2            2"), "{all}");
    let rollout = c.ok(&["rollout", "status", "deploy/my-nginx", "--timeout=20s"]);
    assert_eq!(rollout, "deployment \"my-nginx\" successfully rolled out\n");
    // A pod that turns unready leaves the ready addresses.
    let first = pods.lines().next().unwrap_or_default();
    c.ok(&["patch", first, "--subresource=status", "--type=merge", "-p", r#"{"status":{"conditions":[{"type":"Ready","status":"False"}]}}"#]);
    until(&c, "unready pod leaves", &["get", "ep", "my-nginx"], |o| o.lines().nth(1).is_some_and(|l| l.split_whitespace().nth(1).is_some_and(|e| !e.contains(','))));
    // A new image, then `rollout undo` brings the old template back.
    c.ok(&["set", "image", "deployment/my-nginx", "my-nginx=nginx:1.26"]);
    until(&c, "second revision", &["get", "rs", "-o", "name"], |o| o.lines().count() == 2);
    assert_eq!(c.ok(&["rollout", "undo", "deployment/my-nginx"]), "deployment.apps/my-nginx rolled back\n");
    assert_eq!(c.ok(&["get", "deploy", "my-nginx", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]), "nginx");
    // Deleting the Deployment removes its ReplicaSets and Pods.
    c.ok(&["delete", "deployment", "my-nginx"]);
    until(&c, "cascade", &["get", "rs,pods", "-o", "name"], str::is_empty);
}
