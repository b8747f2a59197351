//! Container environment: the Service variables every container gets
//! (`{SVC}_SERVICE_HOST`, `{SVC}_SERVICE_PORT`, Docker-link style `{SVC}_PORT_*`),
//! then the container's own `env` with `fieldRef` values resolved.

use k8s_openapi::api::core::v1::{Container, Pod, Service};

fn env_name(service: &str) -> String {
    service.to_uppercase().replace('-', "_")
}

/// The variables for the Services visible to a pod: those of its namespace
/// (when `enableServiceLinks` is not false) plus `kubernetes` from `default`.
pub fn service_env(pod: &Pod, services: &[Service]) -> Vec<(String, String)> {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let links = pod.spec.as_ref().and_then(|s| s.enable_service_links).unwrap_or(true);
    let mut chosen: Vec<&Service> = services
        .iter()
        .filter(|s| {
            let sns = s.metadata.namespace.as_deref().unwrap_or("");
            let name = s.metadata.name.as_deref().unwrap_or("");
            (links && sns == ns) || (sns == "default" && name == "kubernetes")
        })
        .filter(|s| s.spec.as_ref().and_then(|sp| sp.cluster_ip.as_deref()).is_some_and(|ip| !ip.is_empty() && ip != "None"))
        .collect();
    chosen.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    chosen.dedup_by(|a, b| a.metadata.name == b.metadata.name);
    let mut out = Vec::new();
    for s in chosen {
        let spec = s.spec.clone().unwrap_or_default();
        let ip = spec.cluster_ip.unwrap_or_default();
        let name = env_name(s.metadata.name.as_deref().unwrap_or(""));
        let ports = spec.ports.unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        out.push((format!("{name}_SERVICE_HOST"), ip.clone()));
        out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
        for p in &ports {
            if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((format!("{name}_SERVICE_PORT_{}", env_name(pn)), p.port.to_string()));
            }
        }
        let host = if ip.contains(':') { format!("[{ip}]") } else { ip.clone() };
        let proto = first.protocol.clone().unwrap_or_else(|| "TCP".into()).to_lowercase();
        out.push((format!("{name}_PORT"), format!("{proto}://{host}:{}", first.port)));
        for p in &ports {
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let prefix = format!("{name}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((prefix.clone(), format!("{}://{host}:{}", proto.to_lowercase(), p.port)));
            out.push((format!("{prefix}_PROTO"), proto.to_lowercase()));
            out.push((format!("{prefix}_PORT"), p.port.to_string()));
            out.push((format!("{prefix}_ADDR"), ip.clone()));
        }
    }
    out
}

/// The value of a `fieldRef` path for this pod.
pub fn field_ref(pod: &Pod, path: &str, node_name: &str, host_ip: &str) -> Option<String> {
    let status = pod.status.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let m = &pod.metadata;
    if let Some(key) = path.strip_prefix("metadata.labels['").and_then(|k| k.strip_suffix("']")) {
        return m.labels.as_ref().and_then(|l| l.get(key).cloned());
    }
    if let Some(key) = path.strip_prefix("metadata.annotations['").and_then(|k| k.strip_suffix("']")) {
        return m.annotations.as_ref().and_then(|l| l.get(key).cloned());
    }
    Some(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.node_name.unwrap_or_else(|| node_name.to_owned()),
        "spec.serviceAccountName" => spec.service_account_name.unwrap_or_else(|| "default".into()),
        "status.hostIP" => status.host_ip.unwrap_or_else(|| host_ip.to_owned()),
        "status.podIP" => status.pod_ip.unwrap_or_default(),
        "status.podIPs" => status.pod_ips.unwrap_or_default().into_iter().map(|p| p.ip).collect::<Vec<_>>().join(","),
        _ => return None,
    })
}

/// A reference the agent must read from the API (a ConfigMap or Secret key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// `configMapKeyRef`.
    ConfigMap {
        /// Object name.
        name: String,
        /// Key.
        key: String,
        /// Whether a missing key is fine.
        optional: bool,
    },
    /// `secretKeyRef`.
    Secret {
        /// Object name.
        name: String,
        /// Key.
        key: String,
        /// Whether a missing key is fine.
        optional: bool,
    },
}

/// One entry of the container's env after local resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A value known now.
    Value(String, String),
    /// A value to read from the API.
    Lookup(String, Lookup),
}

/// The container's own env with `$(VAR)` references expanded against earlier values.
pub fn container_env(pod: &Pod, c: &Container, node_name: &str, host_ip: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for e in c.env.clone().unwrap_or_default() {
        match e.value_from {
            None => out.push(Entry::Value(e.name, e.value.unwrap_or_default())),
            Some(src) => {
                if let Some(f) = src.field_ref {
                    out.push(Entry::Value(e.name, field_ref(pod, &f.field_path, node_name, host_ip).unwrap_or_default()));
                } else if let Some(r) = src.config_map_key_ref {
                    out.push(Entry::Lookup(e.name, Lookup::ConfigMap { name: r.name, key: r.key, optional: r.optional.unwrap_or(false) }));
                } else if let Some(r) = src.secret_key_ref {
                    out.push(Entry::Lookup(e.name, Lookup::Secret { name: r.name, key: r.key, optional: r.optional.unwrap_or(false) }));
                }
            }
        }
    }
    out
}

/// Expands `$(NAME)` with earlier variables; `$$(NAME)` stays literal `$(NAME)`.
pub fn expand(value: &str, vars: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("$$") {
            out.push('$');
            rest = &tail[2..];
        } else if let Some(end) = tail.strip_prefix("$(").and_then(|t| t.find(')')) {
            let name = &tail[2..2 + end];
            match vars.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&tail[..3 + end]),
            }
            rest = &tail[3 + end..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "ports": ports}})).expect("svc")
    }

    #[test]
    fn service_variables_like_the_kubelet() {
        let pod: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": "p", "namespace": "shop"}, "spec": {"containers": []}})).expect("pod");
        let services = vec![
            svc("default", "kubernetes", "10.96.0.1", serde_json::json!([{"name": "https", "port": 443, "protocol": "TCP"}])),
            svc("shop", "my-nginx", "10.96.3.4", serde_json::json!([{"name": "http", "port": 80, "protocol": "TCP"}])),
            svc("shop", "headless", "None", serde_json::json!([{"port": 80}])),
            svc("other", "x", "10.96.9.9", serde_json::json!([{"port": 1}])),
        ];
        let env = service_env(&pod, &services);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT"), Some("443"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get("MY_NGINX_SERVICE_HOST"), Some("10.96.3.4"));
        assert_eq!(get("MY_NGINX_PORT"), Some("tcp://10.96.3.4:80"));
        assert_eq!(get("MY_NGINX_PORT_80_TCP_ADDR"), Some("10.96.3.4"));
        assert_eq!(get("HEADLESS_SERVICE_HOST"), None);
        assert_eq!(get("X_SERVICE_HOST"), None);
    }

    #[test]
    fn dependent_variables_expand() {
        let vars = vec![("A".to_owned(), "x".to_owned())];
        assert_eq!(expand("$(A)-$(B)-$$(A)", &vars), "x-$(B)-$(A)");
    }
}
