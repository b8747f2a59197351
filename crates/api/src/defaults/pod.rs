//! Pod, pod template and workload defaults: `SetDefaults_Pod` (Pods only),
//! `SetDefaults_PodSpec`, `SetDefaults_Container`, probes, handlers, volumes,
//! and apps/v1 `SetDefaults_Deployment` / `SetDefaults_ReplicaSet`.

use super::{default_int, default_ptr, default_str, each_mut, obj_mut};
use serde_json::{Map, Value, json};

/// Mode of files projected from Secrets, ConfigMaps and the downward API (0644).
const DEFAULT_FILE_MODE: i64 = 0o644;

/// `parsers.ParseImageName`'s tag: `latest` when there is neither tag nor digest.
pub(super) fn image_tag(image: &str) -> &str {
    let (name, digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag,
        None if digest => "",
        None => "latest",
    }
}

/// `SetDefaults_HTTPGetAction`.
fn http_get(m: &mut Map<String, Value>) {
    if let Some(h) = m.get_mut("httpGet").and_then(Value::as_object_mut) {
        default_str(h, "path", "/");
        default_str(h, "scheme", "HTTP");
    }
}

/// `SetDefaults_Probe` plus its handler's defaults.
fn probe(p: &mut Map<String, Value>) {
    default_int(p, "timeoutSeconds", 1);
    default_int(p, "periodSeconds", 10);
    default_int(p, "successThreshold", 1);
    default_int(p, "failureThreshold", 3);
    http_get(p);
    if let Some(g) = p.get_mut("grpc").and_then(Value::as_object_mut) {
        default_ptr(g, "service", json!(""));
    }
}

/// `SetDefaults_ObjectFieldSelector`.
fn field_ref(m: &mut Map<String, Value>) {
    if let Some(f) = m.get_mut("fieldRef").and_then(Value::as_object_mut) {
        default_str(f, "apiVersion", "v1");
    }
}

/// `SetDefaults_Container` and the defaults of what a container holds.
fn container(c: &mut Map<String, Value>) {
    if c.get("imagePullPolicy").is_none_or(|v| v.is_null() || v == "") {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        let policy = if image_tag(image) == "latest" { "Always" } else { "IfNotPresent" };
        c.insert("imagePullPolicy".into(), json!(policy));
    }
    default_str(c, "terminationMessagePath", "/dev/termination-log");
    default_str(c, "terminationMessagePolicy", "File");
    // Go always encodes the (non-pointer) resources struct.
    default_ptr(c, "resources", json!({}));
    for p in each_mut(c, "ports") {
        default_str(p, "protocol", "TCP");
    }
    for name in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(name).and_then(Value::as_object_mut) {
            probe(p);
        }
    }
    if let Some(lc) = c.get_mut("lifecycle").and_then(Value::as_object_mut) {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = lc.get_mut(hook).and_then(Value::as_object_mut) {
                http_get(h);
            }
        }
    }
    for env in each_mut(c, "env") {
        if let Some(vf) = env.get_mut("valueFrom").and_then(Value::as_object_mut) {
            field_ref(vf);
        }
    }
}

/// `SetDefaults_Volume` and the volume sources' defaults.
fn volume(v: &mut Map<String, Value>) {
    if v.iter().all(|(k, val)| k == "name" || val.is_null()) {
        v.insert("emptyDir".into(), json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = v.get_mut(source).and_then(Value::as_object_mut) {
            default_ptr(s, "defaultMode", json!(DEFAULT_FILE_MODE));
        }
    }
    if let Some(h) = v.get_mut("hostPath").and_then(Value::as_object_mut) {
        default_ptr(h, "type", json!(""));
    }
    if let Some(d) = v.get_mut("downwardAPI").and_then(Value::as_object_mut) {
        for item in each_mut(d, "items") {
            field_ref(item);
        }
    }
    if let Some(p) = v.get_mut("projected").and_then(Value::as_object_mut) {
        for s in each_mut(p, "sources") {
            if let Some(t) = s.get_mut("serviceAccountToken").and_then(Value::as_object_mut) {
                default_ptr(t, "expirationSeconds", json!(3600));
            }
            if let Some(d) = s.get_mut("downwardAPI").and_then(Value::as_object_mut) {
                for item in each_mut(d, "items") {
                    field_ref(item);
                }
            }
        }
    }
}

/// `SetDefaults_PodSpec` and everything nested in a pod spec (templates included).
fn pod_spec(spec: &mut Map<String, Value>) {
    default_str(spec, "dnsPolicy", "ClusterFirst");
    default_str(spec, "restartPolicy", "Always");
    default_ptr(spec, "securityContext", json!({}));
    default_ptr(spec, "terminationGracePeriodSeconds", json!(30));
    default_str(spec, "schedulerName", "default-scheduler");
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for c in each_mut(spec, list) {
            container(c);
        }
    }
    for v in each_mut(spec, "volumes") {
        volume(v);
    }
}

/// `SetDefaults_Pod` (Pods only, not templates) on top of the pod spec defaults,
/// plus what the Priority admission plugin sets on every Pod.
pub(super) fn pod(root: &mut Map<String, Value>) {
    let spec = obj_mut(root, "spec");
    pod_spec(spec);
    for list in ["containers", "initContainers"] {
        for c in each_mut(spec, list) {
            // Requests default to limits, resource by resource.
            let Some(limits) = c.get("resources").and_then(|r| r.get("limits")).and_then(Value::as_object).cloned() else { continue };
            let requests = obj_mut(obj_mut(c, "resources"), "requests");
            for (k, v) in limits {
                requests.entry(k).or_insert(v);
            }
        }
    }
    default_ptr(spec, "enableServiceLinks", json!(true));
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for list in ["containers", "initContainers"] {
            for c in each_mut(spec, list) {
                for p in each_mut(c, "ports") {
                    if p.get("hostPort").is_none_or(|h| h.is_null() || h == 0) {
                        let cp = p.get("containerPort").cloned().unwrap_or(json!(0));
                        p.insert("hostPort".into(), cp);
                    }
                }
            }
        }
    }
    default_ptr(spec, "priority", json!(0));
    default_str(spec, "preemptionPolicy", "PreemptLowerPriority");
}

/// The pod template of a workload spec.
fn template(spec: &mut Map<String, Value>) {
    pod_spec(obj_mut(obj_mut(spec, "template"), "spec"));
}

/// `SetDefaults_Deployment`.
pub(super) fn deployment(root: &mut Map<String, Value>) {
    let spec = obj_mut(root, "spec");
    default_ptr(spec, "replicas", json!(1));
    let strategy = obj_mut(spec, "strategy");
    default_str(strategy, "type", "RollingUpdate");
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        let ru = obj_mut(strategy, "rollingUpdate");
        default_ptr(ru, "maxUnavailable", json!("25%"));
        default_ptr(ru, "maxSurge", json!("25%"));
    }
    default_ptr(spec, "revisionHistoryLimit", json!(10));
    default_ptr(spec, "progressDeadlineSeconds", json!(600));
    template(spec);
}

/// `SetDefaults_ReplicaSet`.
pub(super) fn replica_set(root: &mut Map<String, Value>) {
    let spec = obj_mut(root, "spec");
    default_ptr(spec, "replicas", json!(1));
    template(spec);
}
