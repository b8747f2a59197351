//! The core kubectl workflow with the oldest and newest kubectl on the machine.

use crate::harness::{Cluster, KUBECTL_127, KUBECTL_133, NGINX, row, stderr, stdout};

fn core_subset(bin: &str) {
    let c = Cluster::start();
    let path = c.write_file(NGINX);
    let p = path.to_str().unwrap_or_default();
    let out = c.kubectl_with(bin, &["apply", "-f", p]);
    assert_eq!(stdout(&out), "deployment.apps/my-nginx created\nservice/my-nginx created\n", "{bin}: {}", stderr(&out));
    let out = c.kubectl_with(bin, &["apply", "-f", p]);
    assert_eq!(stdout(&out), "deployment.apps/my-nginx unchanged\nservice/my-nginx unchanged\n", "{bin}: {}", stderr(&out));
    let svc = stdout(&c.kubectl_with(bin, &["get", "svc"]));
    assert_eq!(&row(&svc, "my-nginx")[..2], ["my-nginx", "ClusterIP"], "{bin}: {svc}");
    let out = c.kubectl_with(bin, &["create", "service", "nodeport", "np", "--tcp=1234:80"]);
    assert_eq!(stdout(&out), "service/np created\n", "{bin}: {}", stderr(&out));
    let out = c.kubectl_with(bin, &["scale", "deployment", "my-nginx", "--replicas=3"]);
    assert_eq!(stdout(&out), "deployment.apps/my-nginx scaled\n", "{bin}: {}", stderr(&out));
    let describe = stdout(&c.kubectl_with(bin, &["describe", "svc", "my-nginx"]));
    assert!(describe.contains("Session Affinity:"), "{bin}: {describe}");
    let out = c.kubectl_with(bin, &["delete", "-f", p]);
    assert!(out.status.success(), "{bin}: {}", stderr(&out));
}

#[test]
fn kubectl_1_27_core_workflow() {
    core_subset(KUBECTL_127);
}

#[test]
fn kubectl_1_33_core_workflow() {
    core_subset(KUBECTL_133);
}
