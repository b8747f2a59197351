//! Strategic merge patch as kube-apiserver applies it: recursive map merge,
//! `null` deletes, lists merged by their merge key, and the directives
//! client-side `kubectl apply` sends (`$patch`, `$setElementOrder/<f>`,
//! `$deleteFromPrimitiveList/<f>`, `$retainKeys`). Unknown directives are
//! ignored, as upstream does for forward compatibility.

use super::PatchError;
use super::strategy::{ListStrategy, list_strategy};
use serde_json::{Map, Value};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVES: &str = "$deleteFromPrimitiveList/";

struct Ctx<'a> {
    group: &'a str,
    kind: &'a str,
    /// Server-side apply: list-map keys include `protocol` for ports, as the
    /// OpenAPI `x-kubernetes-list-map-keys` say (SMP keys on the port alone).
    apply: bool,
}

/// Applies a strategic merge patch to an object of the given kind.
pub fn strategic_merge_patch(group: &str, kind: &str, target: &Value, patch: &Value) -> Result<Value, PatchError> {
    merge_with(Ctx { group, kind, apply: false }, target, patch)
}

/// Merges an applied configuration into an object with server-side apply's
/// list-map keys (`port` + `protocol` for Service and container ports).
pub fn apply_merge(group: &str, kind: &str, target: &Value, patch: &Value) -> Result<Value, PatchError> {
    merge_with(Ctx { group, kind, apply: true }, target, patch)
}

fn merge_with(ctx: Ctx<'_>, target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let patch = patch.as_object().ok_or_else(|| PatchError::Invalid("strategic merge patch must be a JSON object".into()))?;
    let mut out = target.as_object().cloned().unwrap_or_default();
    match merge_map(&ctx, &mut out, patch, &mut Vec::new())? {
        MapOutcome::Keep => Ok(Value::Object(out)),
        MapOutcome::Delete => Ok(Value::Object(Map::new())),
    }
}

enum MapOutcome {
    Keep,
    Delete,
}

/// Removes directives from a value that is inserted where nothing existed.
fn strip_directives(ctx: &Ctx<'_>, v: &Value, path: &mut Vec<String>) -> Result<Option<Value>, PatchError> {
    match v {
        Value::Object(m) => {
            let mut empty = Map::new();
            match merge_map(ctx, &mut empty, m, path)? {
                MapOutcome::Keep => Ok(Some(Value::Object(empty))),
                MapOutcome::Delete => Ok(None),
            }
        }
        Value::Array(a) => {
            let mut empty = Vec::new();
            merge_list(ctx, &mut empty, a, path)?;
            Ok(Some(Value::Array(empty)))
        }
        other => Ok(Some(other.clone())),
    }
}

fn merge_map(ctx: &Ctx<'_>, original: &mut Map<String, Value>, patch: &Map<String, Value>, path: &mut Vec<String>) -> Result<MapOutcome, PatchError> {
    match patch.get(PATCH).and_then(Value::as_str) {
        Some("delete") => return Ok(MapOutcome::Delete),
        Some("replace") => {
            original.clear();
            for (k, v) in patch.iter().filter(|(k, _)| k.as_str() != PATCH) {
                path.push(k.clone());
                let stripped = strip_directives(ctx, v, path)?;
                path.pop();
                if let Some(v) = stripped {
                    original.insert(k.clone(), v);
                }
            }
            return Ok(MapOutcome::Keep);
        }
        Some("merge") | None => {}
        Some(other) => return Err(PatchError::Invalid(format!("Unknown patch type: {other} in map: {}", Value::Object(patch.clone())))),
    }
    if let Some(keep) = patch.get(RETAIN_KEYS) {
        let keep: Vec<&str> = keep
            .as_array()
            .ok_or_else(|| PatchError::Invalid("$retainKeys must be a list of field names".into()))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        original.retain(|k, _| keep.contains(&k.as_str()));
    }
    let mut orders: Vec<(&str, &Vec<Value>)> = Vec::new();
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix(SET_ORDER) {
            let list = v.as_array().ok_or_else(|| PatchError::Invalid(format!("{k} must be a list")))?;
            orders.push((field, list));
            continue;
        }
        if let Some(field) = k.strip_prefix(DELETE_PRIMITIVES) {
            let gone = v.as_array().ok_or_else(|| PatchError::Invalid(format!("{k} must be a list")))?;
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|x| !gone.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        path.push(k.clone());
        if v.is_null() {
            original.remove(k);
        } else {
            match (original.get_mut(k), v) {
                (Some(Value::Object(o)), Value::Object(p)) => {
                    if let MapOutcome::Delete = merge_map(ctx, o, p, path)? {
                        original.remove(k);
                    }
                }
                (Some(Value::Array(o)), Value::Array(p)) => merge_list(ctx, o, p, path)?,
                _ => match strip_directives(ctx, v, path)? {
                    Some(v) => {
                        original.insert(k.clone(), v);
                    }
                    None => {
                        original.remove(k);
                    }
                },
            }
        }
        path.pop();
    }
    for (field, order) in orders {
        path.push(field.to_owned());
        let strategy = strategy_at(ctx, path);
        path.pop();
        if let Some(Value::Array(list)) = original.get_mut(field) {
            apply_order(list, order, strategy);
        }
    }
    Ok(MapOutcome::Keep)
}

fn strategy_at(ctx: &Ctx<'_>, path: &[String]) -> ListStrategy {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    list_strategy(ctx.group, ctx.kind, &p)
}

fn merge_list(ctx: &Ctx<'_>, original: &mut Vec<Value>, patch: &[Value], path: &mut Vec<String>) -> Result<(), PatchError> {
    let is_replace = |v: &Value| v.get(PATCH).and_then(Value::as_str) == Some("replace");
    match strategy_at(ctx, path) {
        ListStrategy::Replace => {
            let mut out = Vec::with_capacity(patch.len());
            for v in patch {
                if let Some(v) = strip_directives(ctx, v, path)? {
                    out.push(v);
                }
            }
            *original = out;
        }
        ListStrategy::MergePrimitives => {
            if patch.iter().any(is_replace) {
                *original = patch.iter().filter(|v| !is_replace(v)).cloned().collect();
                return Ok(());
            }
            for v in patch {
                if !original.contains(v) {
                    original.push(v.clone());
                }
            }
        }
        ListStrategy::MergeByKey(key) => {
            if patch.iter().any(is_replace) {
                let mut out = Vec::new();
                for v in patch.iter().filter(|v| !is_replace(v)) {
                    if let Some(v) = strip_directives(ctx, v, path)? {
                        out.push(v);
                    }
                }
                *original = out;
                return Ok(());
            }
            for p in patch {
                let Some(pm) = p.as_object() else {
                    return Err(PatchError::Invalid(format!("the list element {p} must be an object keyed by {key:?}")));
                };
                let Some(kv) = pm.get(key) else {
                    return Err(PatchError::Invalid(format!("map: {p} does not contain declared merge key: {key}")));
                };
                // Under apply, ports are keyed by (port, protocol): TCP and UDP 53 are two entries.
                let proto_keyed = ctx.apply && matches!(key, "port" | "containerPort");
                let proto = |v: &Value| v.get("protocol").and_then(Value::as_str).unwrap_or("TCP").to_owned();
                let same = |o: &Value| o.get(key) == Some(kv) && (!proto_keyed || proto(o) == proto(p));
                if pm.get(PATCH).and_then(Value::as_str) == Some("delete") {
                    original.retain(|o| !same(o));
                    continue;
                }
                match original.iter_mut().find(|o| same(o)) {
                    Some(Value::Object(o)) => {
                        if let MapOutcome::Delete = merge_map(ctx, o, pm, path)? {
                            original.retain(|o| !same(o));
                        }
                    }
                    _ => {
                        if let Some(v) = strip_directives(ctx, p, path)? {
                            original.push(v);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Reorders a merged list by a `$setElementOrder` list: listed elements take
/// the given relative order; the others keep their place relative to them.
fn apply_order(list: &mut [Value], order: &[Value], strategy: ListStrategy) {
    let key_of = |v: &Value| -> Value {
        match strategy {
            ListStrategy::MergeByKey(k) => v.get(k).cloned().unwrap_or(Value::Null),
            _ => v.clone(),
        }
    };
    let wanted: Vec<Value> = order.iter().map(key_of).collect();
    let rank = |v: &Value| wanted.iter().position(|w| *w == key_of(v));
    // Positions held by ordered elements are refilled in the wanted order.
    let mut ordered: Vec<Value> = list.iter().filter(|v| rank(v).is_some()).cloned().collect();
    ordered.sort_by_key(|v| rank(v));
    let mut it = ordered.into_iter();
    for slot in list.iter_mut() {
        if rank(slot).is_some()
            && let Some(next) = it.next() {
                *slot = next;
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(kind: &str, t: Value, p: Value) -> Value {
        let group = if matches!(kind, "Deployment" | "ReplicaSet") { "apps" } else { "" };
        strategic_merge_patch(group, kind, &t, &p).expect("patch applies")
    }

    #[test]
    fn kubectl_apply_service_target_port_change() {
        let live = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}], "type": "ClusterIP"}});
        let patch = json!({"spec": {"$setElementOrder/ports": [{"port": 80}], "ports": [{"port": 80, "targetPort": 9090}]}});
        assert_eq!(smp("Service", live, patch), json!({"spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 9090}], "type": "ClusterIP"}}));
    }

    #[test]
    fn adding_and_deleting_ports_by_merge_key() {
        let live = json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}});
        let patch = json!({"spec": {"$setElementOrder/ports": [{"port": 8080}, {"port": 80}], "ports": [{"port": 8080, "name": "alt"}, {"$patch": "delete", "port": 443}]}});
        assert_eq!(smp("Service", live, patch)["spec"]["ports"], json!([{"port": 8080, "name": "alt"}, {"port": 80, "name": "http"}]));
    }

    #[test]
    fn deployment_image_change_keeps_other_container_fields() {
        let live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}], "imagePullPolicy": "IfNotPresent"},
            {"name": "side", "image": "busybox"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "nginx"}, {"name": "side"}], "containers": [{"image": "nginx:1.26", "name": "nginx"}]}}}});
        let out = smp("Deployment", live, patch);
        let c = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(c[0], json!({"name": "nginx", "image": "nginx:1.26", "ports": [{"containerPort": 80}], "imagePullPolicy": "IfNotPresent"}));
        assert_eq!(c[1]["name"], "side");
    }

    #[test]
    fn null_deletes_and_env_delete_directive() {
        let live = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"containers": [{"name": "c", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]}});
        let patch = json!({"metadata": {"labels": {"a": null}}, "spec": {"containers": [{"name": "c", "env": [{"$patch": "delete", "name": "X"}]}]}});
        let out = smp("Pod", live, patch);
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(out["spec"]["containers"][0]["env"], json!([{"name": "Y", "value": "2"}]));
    }

    #[test]
    fn atomic_lists_replace_and_primitive_lists_merge() {
        let live = json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"externalIPs": ["1.1.1.1", "2.2.2.2"]}});
        let patch = json!({"metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a"]}, "spec": {"externalIPs": ["3.3.3.3"]}});
        let out = smp("Service", live, patch);
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "c"]));
        assert_eq!(out["spec"]["externalIPs"], json!(["3.3.3.3"]));
    }

    #[test]
    fn retain_keys_and_replace_directives() {
        let live = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}, "selector": {"matchLabels": {"a": "b"}}}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}, "selector": {"$patch": "replace", "matchLabels": {"c": "d"}}}});
        let out = smp("Deployment", live, patch);
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(out["spec"]["selector"], json!({"matchLabels": {"c": "d"}}));
    }

    #[test]
    fn directives_never_leak_into_new_fields() {
        let live = json!({"spec": {}});
        let patch = json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "a", "image": "x"}]}}}});
        let out = smp("Deployment", live, patch);
        assert_eq!(out, json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}}));
    }

    #[test]
    fn merge_list_element_without_key_is_an_error() {
        let err = strategic_merge_patch("", "Service", &json!({"spec": {"ports": []}}), &json!({"spec": {"ports": [{"name": "x"}]}}));
        assert!(err.is_err());
    }

    #[test]
    fn apply_keys_ports_by_port_and_protocol() {
        let applied = json!({"spec": {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}});
        let out = apply_merge("", "Service", &json!({}), &applied).expect("apply");
        assert_eq!(out["spec"]["ports"].as_array().map(Vec::len), Some(2), "{out}");
        // A strategic merge patch keys on the port alone, as upstream.
        let out = strategic_merge_patch("", "Service", &json!({}), &applied).expect("smp");
        assert_eq!(out["spec"]["ports"].as_array().map(Vec::len), Some(1), "{out}");
    }
}
