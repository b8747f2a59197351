//! Upstream defaulting (`SetDefaults_*` in `pkg/apis/*/v1/defaults.go`),
//! applied to every written object before validation.

use crate::resources::ResourceDef;
use serde_json::{Map, Value, json};

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(Value::is_object) {
        v[key] = json!({});
    }
    v[key].as_object_mut().expect("made an object above")
}

fn default(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(|v| v.is_null() || v == "") {
        m.insert(key.to_owned(), value);
    }
}

/// Applies the kind's defaults in place.
pub fn apply_defaults(rd: &ResourceDef, obj: &mut Value) {
    match (rd.group, rd.kind) {
        ("", "Service") => service(obj),
        ("", "Pod") => {
            let spec = obj_mut(obj, "spec");
            pod_spec(spec);
            // Set on pods (not templates) by the Priority admission plugin upstream.
            default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
            default(spec, "priority", json!(0));
        }
        ("apps", "Deployment") => deployment(obj),
        ("apps", "ReplicaSet") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "replicas", json!(1));
            template(spec);
        }
        ("", "Namespace") => namespace(obj),
        ("", "Secret") => default(obj.as_object_mut().expect("objects are maps"), "type", json!("Opaque")),
        ("", "Endpoints") => {
            for subset in obj.get_mut("subsets").and_then(Value::as_array_mut).into_iter().flatten() {
                for p in subset.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
                    if let Some(m) = p.as_object_mut() {
                        default(m, "protocol", json!("TCP"));
                    }
                }
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            for p in obj.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(m) = p.as_object_mut() {
                    default(m, "protocol", json!("TCP"));
                }
            }
        }
        _ => {}
    }
}

fn service(obj: &mut Value) {
    let spec = obj_mut(obj, "spec");
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let cfg = spec.entry("sessionAffinityConfig").or_insert_with(|| json!({}));
            if cfg.is_object() {
                let cip = obj_mut(cfg, "clientIP");
                default(cip, "timeoutSeconds", json!(10800));
            }
        }
        _ => {}
    }
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP").to_owned();
    for p in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(m) = p.as_object_mut() {
            default(m, "protocol", json!("TCP"));
            let zero = m.get("targetPort").is_none_or(|t| t.is_null() || t == 0 || t == "");
            if zero
                && let Some(port) = m.get("port").cloned() {
                    m.insert("targetPort".into(), port);
                }
        }
    }
    let external_ips = spec.get("externalIPs").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer") || (ty == "ClusterIP" && external_ips) {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty != "ExternalName" {
        default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    let status = obj_mut(obj, "status");
    if !status.contains_key("loadBalancer") {
        status.insert("loadBalancer".into(), json!({}));
    }
}

fn image_pull_policy(image: &str) -> &'static str {
    // `:latest` or no tag (and no digest) pulls always.
    let name = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match name.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn container(c: &mut Value) {
    let Some(m) = c.as_object_mut() else { return };
    default(m, "terminationMessagePath", json!("/dev/termination-log"));
    default(m, "terminationMessagePolicy", json!("File"));
    let image = m.get("image").and_then(Value::as_str).unwrap_or("").to_owned();
    default(m, "imagePullPolicy", json!(image_pull_policy(&image)));
    if !m.contains_key("resources") {
        m.insert("resources".into(), json!({}));
    }
    for p in m.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(pm) = p.as_object_mut() {
            default(pm, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(pr) = m.get_mut(probe).and_then(Value::as_object_mut) {
            default(pr, "timeoutSeconds", json!(1));
            default(pr, "periodSeconds", json!(10));
            default(pr, "successThreshold", json!(1));
            default(pr, "failureThreshold", json!(3));
            if let Some(h) = pr.get_mut("httpGet").and_then(Value::as_object_mut) {
                default(h, "scheme", json!("HTTP"));
                default(h, "path", json!("/"));
            }
        }
    }
}

fn pod_spec(spec: &mut Map<String, Value>) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "enableServiceLinks", json!(true));
    if !spec.contains_key("securityContext") {
        spec.insert("securityContext".into(), json!({}));
    }
    for list in ["containers", "initContainers"] {
        for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            container(c);
        }
    }
}

fn template(spec: &mut Map<String, Value>) {
    let tpl = spec.entry("template").or_insert_with(|| json!({}));
    if tpl.is_object() {
        pod_spec(obj_mut(tpl, "spec"));
    }
}

fn deployment(obj: &mut Value) {
    let spec = obj_mut(obj, "spec");
    default(spec, "replicas", json!(1));
    default(spec, "revisionHistoryLimit", json!(10));
    default(spec, "progressDeadlineSeconds", json!(600));
    let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
    if let Some(st) = strategy.as_object_mut() {
        default(st, "type", json!("RollingUpdate"));
        if st.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            let ru = st.entry("rollingUpdate").or_insert_with(|| json!({}));
            if let Some(ru) = ru.as_object_mut() {
                default(ru, "maxUnavailable", json!("25%"));
                default(ru, "maxSurge", json!("25%"));
            }
        }
    }
    template(spec);
}

fn namespace(obj: &mut Value) {
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned();
    if !name.is_empty() {
        let meta = obj_mut(obj, "metadata");
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        if let Some(l) = labels.as_object_mut() {
            l.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
    }
    let spec = obj_mut(obj, "spec");
    default(spec, "finalizers", json!(["kubernetes"]));
    let status = obj_mut(obj, "status");
    default(status, "phase", json!("Active"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    #[test]
    fn service_defaults() {
        let mut s = json!({"spec": {"ports": [{"port": 80}], "sessionAffinity": "ClientIP"}});
        apply_defaults(find("", "v1", "services").expect("svc"), &mut s);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["ports"][0], json!({"port": 80, "protocol": "TCP", "targetPort": 80}));
        assert_eq!(s["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"], 10800);
        assert_eq!(s["spec"]["internalTrafficPolicy"], "Cluster");
        assert!(s["spec"].get("externalTrafficPolicy").is_none());
        let mut lb = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
        apply_defaults(find("", "v1", "services").expect("svc"), &mut lb);
        assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
    }

    #[test]
    fn deployment_and_pod_defaults() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "n", "image": "nginx"}, {"name": "m", "image": "nginx:1.25"}]}}}});
        apply_defaults(find("apps", "v1", "deployments").expect("deploy"), &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}));
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(pod["containers"][1]["imagePullPolicy"], "IfNotPresent");
    }

    #[test]
    fn namespace_defaults() {
        let mut n = json!({"metadata": {"name": "team"}});
        apply_defaults(find("", "v1", "namespaces").expect("ns"), &mut n);
        assert_eq!(n["status"]["phase"], "Active");
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/metadata.name"], "team");
        assert_eq!(n["spec"]["finalizers"], json!(["kubernetes"]));
    }
}
