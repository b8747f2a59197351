//! The seed walkthrough with kubectl: apply, get, describe, edit, delete.

use crate::harness::{Cluster, NGINX, in_service_range, row, stderr, stdout};

#[test]
fn apply_get_describe_reapply_and_delete() {
    let c = Cluster::start();
    let out = c.apply(NGINX, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "deployment.apps/my-nginx created\nservice/my-nginx created\n");

    let svc = c.ok(&["get", "svc"]);
    let header: Vec<&str> = svc.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]);
    let r = row(&svc, "my-nginx");
    assert_eq!(&r[..2], ["my-nginx", "ClusterIP"]);
    assert!(in_service_range(r[2]), "cluster IP {} outside 10.96.0.0/12", r[2]);
    assert_eq!(&r[3..5], ["<none>", "80/TCP"]);
    assert_eq!(&row(&svc, "kubernetes")[..5], ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"]);

    let wide = c.ok(&["get", "svc", "-o", "wide"]);
    assert!(wide.lines().next().unwrap_or_default().ends_with("SELECTOR"), "{wide}");
    assert_eq!(row(&wide, "my-nginx").last().copied(), Some("run=my-nginx"));

    let ep = c.ok(&["get", "ep"]);
    assert_eq!(ep.lines().next().map(|l| l.split_whitespace().collect::<Vec<_>>()), Some(vec!["NAME", "ENDPOINTS", "AGE"]));
    assert!(ep.contains("kubernetes"), "{ep}");

    let all = c.ok(&["get", "all"]);
    assert!(all.contains("service/my-nginx"), "{all}");
    assert!(all.contains("deployment.apps/my-nginx"), "{all}");
    assert!(all.contains("READY   UP-TO-DATE   AVAILABLE"), "{all}");

    let describe = c.ok(&["describe", "svc", "my-nginx"]);
    for line in ["Type:", "IP:", "Port:", "TargetPort:", "Endpoints:", "Session Affinity:"] {
        assert!(describe.lines().any(|l| l.starts_with(line)), "describe lacks {line}:\n{describe}");
    }
    assert!(describe.lines().any(|l| l.starts_with("Type:") && l.ends_with("ClusterIP")), "{describe}");
    assert!(describe.lines().any(|l| l.starts_with("TargetPort:") && l.ends_with("80/TCP")), "{describe}");
    assert!(describe.lines().any(|l| l.starts_with("Session Affinity:") && l.ends_with("None")), "{describe}");

    // Unchanged, then an edit (strategic merge patch path), then unchanged again.
    assert_eq!(stdout(&c.apply(NGINX, &[])), "deployment.apps/my-nginx unchanged\nservice/my-nginx unchanged\n");
    let edited = NGINX.replace("protocol: TCP\n", "protocol: TCP\n    targetPort: 8080\n").replace("replicas: 2", "replicas: 3");
    assert_eq!(stdout(&c.apply(&edited, &[])), "deployment.apps/my-nginx configured\nservice/my-nginx configured\n");
    assert_eq!(stdout(&c.apply(&edited, &[])), "deployment.apps/my-nginx unchanged\nservice/my-nginx unchanged\n");
    assert_eq!(c.ok(&["get", "svc", "my-nginx", "-o", "jsonpath={.spec.ports[0].targetPort}"]), "8080");
    assert_eq!(c.ok(&["get", "deploy", "my-nginx", "-o", "jsonpath={.spec.replicas}"]), "3");

    let path = c.write_file(&edited);
    let out = c.kubectl(&["delete", "-f", path.to_str().unwrap_or_default()]);
    assert_eq!(stdout(&out), "deployment.apps \"my-nginx\" deleted\nservice \"my-nginx\" deleted\n", "{}", stderr(&out));
    assert!(c.fails(&["get", "svc", "my-nginx"]).contains("Error from server (NotFound): services \"my-nginx\" not found"));
}

#[test]
fn server_side_apply_and_conflicts() {
    let c = Cluster::start();
    let out = c.apply(NGINX, &["--server-side"]);
    assert_eq!(stdout(&out), "deployment.apps/my-nginx serverside-applied\nservice/my-nginx serverside-applied\n", "{}", stderr(&out));
    let mf = c.ok(&["get", "svc", "my-nginx", "-o", "jsonpath={.metadata.managedFields[*].manager}:{.metadata.managedFields[*].operation}"]);
    assert_eq!(mf, "kubectl:Apply");
    // Another manager changes a field the first one owns: conflict, then forced.
    let changed = NGINX.replace("protocol: TCP\n", "protocol: TCP\n    targetPort: 9090\n");
    let path = c.write_file(&changed);
    let p = path.to_str().unwrap_or_default();
    c.ok(&["apply", "--server-side", "--field-manager", "other", "-f", p]);
    let back = NGINX.replace("protocol: TCP\n", "protocol: TCP\n    targetPort: 7070\n");
    let err = stderr(&c.apply(&back, &["--server-side"]));
    assert!(err.contains("Apply failed with 1 conflict: conflict with \"other\""), "{err}");
    let out = c.apply(&back, &["--server-side", "--force-conflicts"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(c.ok(&["get", "svc", "my-nginx", "-o", "jsonpath={.spec.ports[0].targetPort}"]), "7070");
}

#[test]
fn yaml_round_trips_and_server_dry_run_stores_nothing() {
    let c = Cluster::start();
    c.apply(NGINX, &[]);
    let yaml = c.ok(&["get", "svc", "my-nginx", "-o", "yaml"]);
    let path = c.write_file(&yaml);
    let out = c.kubectl(&["replace", "-f", path.to_str().unwrap_or_default()]);
    assert_eq!(stdout(&out), "service/my-nginx replaced\n", "{}", stderr(&out));
    let again = c.ok(&["get", "svc", "my-nginx", "-o", "yaml"]);
    let ip = |s: &str| s.lines().find(|l| l.trim_start().starts_with("clusterIP:")).map(str::to_owned);
    assert_eq!(ip(&yaml), ip(&again));

    let dry = NGINX.replace("my-nginx", "dry");
    let out = c.apply(&dry, &["--dry-run=server"]);
    assert!(stdout(&out).contains("service/dry created (server dry run)"), "{}{}", stdout(&out), stderr(&out));
    assert!(c.fails(&["get", "svc", "dry"]).contains("NotFound"));
    assert!(c.fails(&["get", "deploy", "dry"]).contains("NotFound"));
}
