//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Field sets are kept in the upstream `FieldsV1` form (`{"f:spec":
//! {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, ...}}}}`)
//! and worked on directly: a path is a list of `FieldsV1` keys. This is a
//! compact take on structured-merge-diff: exact for single managers and
//! reporting conflicts between managers on the leaves they both set.

use super::strategic::apply_merge;
use super::strategy::{ListStrategy, list_strategy};
use serde_json::{Map, Value, json};

/// A path of `FieldsV1` keys (`f:spec`, `k:{...}`, `v:...`).
pub type FieldPath = Vec<String>;

/// One field two managers both want with different values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager that owns the field.
    pub manager: String,
    /// The field, rendered like upstream (`.spec.ports[port=80,protocol="TCP"].targetPort`).
    pub field: String,
}

/// Server-side apply failed on conflicts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Apply failed with {} conflict{}", .0.len(), if .0.len() == 1 { "" } else { "s" })]
pub struct ApplyConflict(pub Vec<Conflict>);

/// Metadata fields owned by the system, never tracked.
const SYSTEM_META: &[&str] =
    &["name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink", "generateName"];
/// Map-typed fields (granular maps carry a `.` marker upstream).
const MAP_FIELDS: &[&str] = &["labels", "annotations", "selector", "matchLabels", "data", "stringData", "binaryData", "nodeSelector", "capacity", "allocatable"];

struct Ctx<'a> {
    group: &'a str,
    kind: &'a str,
}

/// SSA list-map keys where they differ from the patch merge key.
fn ssa_keys(ctx: &Ctx<'_>, names: &[&str], merge_key: &'static str) -> Vec<&'static str> {
    match (ctx.kind, names) {
        ("Service", ["spec", "ports"]) => vec!["port", "protocol"],
        (_, [.., "ports"]) if merge_key == "containerPort" => vec!["containerPort", "protocol"],
        _ => vec![merge_key],
    }
}

fn element_key(el: &Value, keys: &[&str]) -> String {
    let mut m = Map::new();
    for k in keys {
        // Defaulted key fields (protocol) count with their default.
        let v = el.get(*k).cloned().unwrap_or_else(|| if *k == "protocol" { json!("TCP") } else { Value::Null });
        m.insert((*k).to_owned(), v);
    }
    format!("k:{}", Value::Object(m))
}

/// The field set of an object (what a manager sets by sending it).
pub fn fields_of(group: &str, kind: &str, obj: &Value, include_status: bool) -> Value {
    let ctx = Ctx { group, kind };
    let mut out = Map::new();
    if let Some(m) = obj.as_object() {
        for (k, v) in m {
            if matches!(k.as_str(), "apiVersion" | "kind") || (k == "status" && !include_status) {
                continue;
            }
            let mut names = vec![k.as_str()];
            let node = if k == "metadata" {
                let mut meta = Map::new();
                for (mk, mv) in v.as_object().into_iter().flatten() {
                    if SYSTEM_META.contains(&mk.as_str()) {
                        continue;
                    }
                    names.push(mk.as_str());
                    meta.insert(format!("f:{mk}"), walk(&ctx, mv, &mut names));
                    names.pop();
                }
                if meta.is_empty() {
                    continue;
                }
                Value::Object(meta)
            } else {
                walk(&ctx, v, &mut names)
            };
            out.insert(format!("f:{k}"), node);
        }
    }
    Value::Object(out)
}

fn walk<'a>(ctx: &Ctx<'_>, v: &'a Value, names: &mut Vec<&'a str>) -> Value {
    match v {
        Value::Object(m) if !m.is_empty() => {
            let mut out = Map::new();
            if names.last().is_some_and(|n| MAP_FIELDS.contains(n)) {
                out.insert(".".into(), json!({}));
            }
            for (k, child) in m {
                names.push(k.as_str());
                out.insert(format!("f:{k}"), walk(ctx, child, names));
                names.pop();
            }
            Value::Object(out)
        }
        Value::Array(items) if !items.is_empty() => match list_strategy(ctx.group, ctx.kind, names) {
            ListStrategy::MergeByKey(key) => {
                let keys = ssa_keys(ctx, names, key);
                let mut out = Map::new();
                out.insert(".".into(), json!({}));
                for el in items {
                    let mut node = match walk(ctx, el, names) {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    };
                    node.insert(".".into(), json!({}));
                    out.insert(element_key(el, &keys), Value::Object(node));
                }
                Value::Object(out)
            }
            ListStrategy::MergePrimitives => {
                let mut out = Map::new();
                out.insert(".".into(), json!({}));
                for el in items {
                    out.insert(format!("v:{el}"), json!({}));
                }
                Value::Object(out)
            }
            ListStrategy::Replace => json!({}),
        },
        _ => json!({}),
    }
}

/// Every leaf path of a field set (`.` markers included).
pub fn leaves(set: &Value) -> Vec<FieldPath> {
    fn go(v: &Value, prefix: &mut FieldPath, out: &mut Vec<FieldPath>) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, child) in m {
                    prefix.push(k.clone());
                    go(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => out.push(prefix.clone()),
        }
    }
    let mut out = Vec::new();
    go(set, &mut Vec::new(), &mut out);
    out
}

/// Whether a field set contains a path.
pub fn contains(set: &Value, path: &[String]) -> bool {
    let mut cur = set;
    for seg in path {
        match cur.get(seg) {
            Some(next) => cur = next,
            None => return false,
        }
    }
    true
}

/// Whether a field set owns exactly this leaf (not just something beneath it).
fn owns_leaf(set: &Value, path: &[String]) -> bool {
    let mut cur = set;
    for seg in path {
        match cur.get(seg) {
            Some(next) => cur = next,
            None => return false,
        }
    }
    cur.as_object().is_none_or(|m| m.is_empty() || m.contains_key("."))
}

fn remove_path(set: &mut Value, path: &[String]) {
    let Some((last, head)) = path.split_last() else { return };
    let mut cur = set;
    for seg in head {
        match cur.get_mut(seg) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

fn insert_path(set: &mut Value, path: &[String]) {
    let mut cur = set;
    for seg in path {
        if !cur.is_object() {
            *cur = json!({});
        }
        cur = cur.as_object_mut().expect("made an object above").entry(seg.clone()).or_insert_with(|| json!({}));
    }
}

/// The value at a field path in an object (`None` when absent).
pub fn lookup<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in path {
        if seg == "." {
            continue;
        }
        cur = if let Some(f) = seg.strip_prefix("f:") {
            cur.get(f)?
        } else if let Some(k) = seg.strip_prefix("k:") {
            let want: Map<String, Value> = serde_json::from_str(k).ok()?;
            cur.as_array()?.iter().find(|el| {
                want.iter().all(|(wk, wv)| el.get(wk).cloned().unwrap_or_else(|| if wk == "protocol" { json!("TCP") } else { Value::Null }) == *wv)
            })?
        } else if let Some(v) = seg.strip_prefix("v:") {
            let want: Value = serde_json::from_str(v).ok()?;
            cur.as_array()?.iter().find(|el| **el == want)?
        } else {
            return None;
        };
    }
    Some(cur)
}

fn remove_value(obj: &mut Value, path: &[String]) {
    let path: Vec<&String> = path.iter().filter(|s| s.as_str() != ".").collect();
    let Some((last, head)) = path.split_last() else { return };
    let head: Vec<String> = head.iter().map(|s| (*s).clone()).collect();
    let Some(parent) = lookup_mut(obj, &head) else { return };
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = parent.as_object_mut() {
            m.remove(f);
        }
    } else if let (Some(target), Some(arr)) = (lookup(&parent.clone(), &[(*last).clone()]).cloned(), parent.as_array_mut()) {
        arr.retain(|el| *el != target);
    }
}

fn lookup_mut<'a>(obj: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut cur = obj;
    for seg in path {
        if seg == "." {
            continue;
        }
        let found = lookup(cur, std::slice::from_ref(seg)).cloned()?;
        cur = if let Some(f) = seg.strip_prefix("f:") {
            cur.get_mut(f)?
        } else {
            cur.as_array_mut()?.iter_mut().find(|el| **el == found)?
        };
    }
    Some(cur)
}

/// Renders a field path the way upstream prints conflicts.
pub fn render_path(path: &[String]) -> String {
    let mut s = String::new();
    for seg in path.iter().filter(|s| s.as_str() != ".") {
        if let Some(f) = seg.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = seg.strip_prefix("k:") {
            let m: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = seg.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

fn entries(obj: Option<&Value>) -> Vec<Value> {
    obj.and_then(|o| o.pointer("/metadata/managedFields")).and_then(Value::as_array).cloned().unwrap_or_default()
}

fn entry_is(e: &Value, manager: &str, operation: &str) -> bool {
    e.get("manager").and_then(Value::as_str) == Some(manager) && e.get("operation").and_then(Value::as_str) == Some(operation)
}

fn set_entries(obj: &mut Value, list: Vec<Value>) {
    let list: Vec<Value> = list.into_iter().filter(|e| e.get("fieldsV1").is_some_and(|f| f.as_object().is_some_and(|m| !m.is_empty()))).collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

fn entry(manager: &str, operation: &str, api_version: &str, now: &str, fields: Value, sub: Option<&str>) -> Value {
    let mut e = json!({"manager": manager, "operation": operation, "apiVersion": api_version, "time": now, "fieldsType": "FieldsV1", "fieldsV1": fields});
    if let Some(s) = sub {
        e["subresource"] = json!(s);
    }
    e
}

/// Records an ordinary write (create, update, patch) by `manager`: it owns
/// the fields it changed, and other managers lose them.
#[allow(clippy::too_many_arguments)]
pub fn record_update(group: &str, kind: &str, api_version: &str, old: Option<&Value>, new: &mut Value, manager: &str, now: &str, subresource: Option<&str>) {
    let status_only = subresource == Some("status");
    let all = fields_of(group, kind, new, status_only);
    let changed: Vec<FieldPath> = leaves(&all)
        .into_iter()
        .filter(|p| !status_only || p.first().is_some_and(|f| f == "f:status"))
        .filter(|p| old.is_none_or(|o| lookup(o, p) != lookup(new, p) || p.last().is_some_and(|l| l == ".") && lookup(o, p).is_none()))
        .collect();
    let mut list = entries(old);
    if changed.is_empty() {
        set_entries(new, list);
        return;
    }
    for e in list.iter_mut() {
        if entry_is(e, manager, "Update") {
            continue;
        }
        if let Some(f) = e.get_mut("fieldsV1") {
            for p in &changed {
                if p.last().is_some_and(|l| l != ".") {
                    remove_path(f, p);
                }
            }
        }
    }
    let mut mine = list.iter().find(|e| entry_is(e, manager, "Update")).and_then(|e| e.get("fieldsV1").cloned()).unwrap_or_else(|| json!({}));
    for p in &changed {
        insert_path(&mut mine, p);
    }
    // Fields that no longer exist are owned by nobody.
    let present = |p: &FieldPath| lookup(new, p).is_some();
    for e in list.iter_mut() {
        if let Some(f) = e.get_mut("fieldsV1") {
            for p in leaves(f) {
                if !present(&p) {
                    remove_path(f, &p);
                }
            }
        }
    }
    for p in leaves(&mine.clone()) {
        if !present(&p) {
            remove_path(&mut mine, &p);
        }
    }
    list.retain(|e| !entry_is(e, manager, "Update"));
    list.push(entry(manager, "Update", api_version, now, mine, subresource));
    set_entries(new, list);
}

/// Server-side apply of `applied` by `manager` onto `live` (None: create).
#[allow(clippy::too_many_arguments)]
pub fn server_side_apply(
    group: &str,
    kind: &str,
    api_version: &str,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, ApplyConflict> {
    let mut applied = applied.clone();
    if let Some(meta) = applied.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    let applied_fields = fields_of(group, kind, &applied, false);
    let mut list = entries(live);
    let base = live.cloned().unwrap_or_else(|| json!({}));
    let mut conflicts = Vec::new();
    for p in leaves(&applied_fields).into_iter().filter(|p| p.last().is_some_and(|l| l != ".")) {
        for e in &list {
            if entry_is(e, manager, "Apply") {
                continue;
            }
            let owner = e.get("manager").and_then(Value::as_str).unwrap_or_default();
            if e.get("fieldsV1").is_some_and(|f| owns_leaf(f, &p)) && lookup(&base, &p) != lookup(&applied, &p) {
                conflicts.push((owner.to_owned(), p.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(ApplyConflict(conflicts.into_iter().map(|(manager, p)| Conflict { manager, field: render_path(&p) }).collect()));
    }
    // Ownership of conflicting fields moves to the applier.
    for (owner, p) in &conflicts {
        for e in list.iter_mut().filter(|e| e.get("manager").and_then(Value::as_str) == Some(owner)) {
            if let Some(f) = e.get_mut("fieldsV1") {
                remove_path(f, p);
            }
        }
    }
    let mut result = base.clone();
    if let Some(prev) = list.iter().find(|e| entry_is(e, manager, "Apply")).and_then(|e| e.get("fieldsV1")).cloned() {
        for p in leaves(&prev) {
            if p.last().is_some_and(|l| l == ".") || contains(&applied_fields, &p) {
                continue;
            }
            let owned_elsewhere = list.iter().any(|e| !entry_is(e, manager, "Apply") && e.get("fieldsV1").is_some_and(|f| contains(f, &p)));
            if !owned_elsewhere {
                remove_value(&mut result, &p);
            }
        }
    }
    let mut result = apply_merge(group, kind, &result, &applied).unwrap_or(applied.clone());
    list.retain(|e| !entry_is(e, manager, "Apply"));
    list.push(entry(manager, "Apply", api_version, now, applied_fields, None));
    if result.get("metadata").is_none() {
        result["metadata"] = json!({});
    }
    set_entries(&mut result, list);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(target: i64) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"app": "web"}},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": target}]}})
    }

    #[test]
    fn fields_v1_shape_matches_upstream() {
        let f = fields_of("", "Service", &svc(8080), false);
        assert_eq!(
            f,
            json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                   "f:spec": {"f:selector": {".": {}, "f:app": {}},
                              "f:ports": {".": {}, "k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:targetPort": {}}}}})
        );
    }

    #[test]
    fn single_manager_apply_then_drop_field() {
        let first = server_side_apply("", "Service", "v1", None, &svc(8080), "kubectl", false, "t").expect("create");
        let mf = first.pointer("/metadata/managedFields").and_then(Value::as_array).cloned().unwrap_or_default();
        assert_eq!(mf.len(), 1);
        assert_eq!(mf[0]["operation"], "Apply");
        assert_eq!(mf[0]["manager"], "kubectl");
        let mut second = svc(8080);
        second["metadata"]["labels"] = Value::Null;
        if let Some(m) = second["metadata"].as_object_mut() {
            m.remove("labels");
        }
        let out = server_side_apply("", "Service", "v1", Some(&first), &second, "kubectl", false, "t").expect("re-apply");
        assert!(out.pointer("/metadata/labels/app").is_none(), "a field the manager stopped applying is removed: {out}");
        assert_eq!(out.pointer("/spec/ports/0/targetPort"), Some(&json!(8080)));
    }

    #[test]
    fn two_managers_conflict_unless_forced() {
        let mut live = svc(8080);
        record_update("", "Service", "v1", None, &mut live, "kubectl-client-side-apply", "t", None);
        let err = server_side_apply("", "Service", "v1", Some(&live), &svc(9090), "kubectl", false, "t").expect_err("conflict");
        assert_eq!(err.0.len(), 1);
        assert_eq!(err.0[0].manager, "kubectl-client-side-apply");
        assert_eq!(err.0[0].field, ".spec.ports[port=80,protocol=\"TCP\"].targetPort");
        let forced = server_side_apply("", "Service", "v1", Some(&live), &svc(9090), "kubectl", true, "t").expect("forced");
        assert_eq!(forced.pointer("/spec/ports/0/targetPort"), Some(&json!(9090)));
        // The same value is no conflict.
        assert!(server_side_apply("", "Service", "v1", Some(&live), &svc(8080), "kubectl", false, "t").is_ok());
    }

    #[test]
    fn updates_move_ownership_of_changed_fields() {
        let mut live = svc(8080);
        record_update("", "Service", "v1", None, &mut live, "a", "t", None);
        let mut next = live.clone();
        next["spec"]["ports"][0]["targetPort"] = json!(1);
        record_update("", "Service", "v1", Some(&live), &mut next, "b", "t", None);
        let mf = next["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
        let a = mf.iter().find(|e| e["manager"] == "a").cloned().unwrap_or_default();
        let b = mf.iter().find(|e| e["manager"] == "b").cloned().unwrap_or_default();
        let path: FieldPath = vec!["f:spec".into(), "f:ports".into(), "k:{\"port\":80,\"protocol\":\"TCP\"}".into(), "f:targetPort".into()];
        assert!(!contains(&a["fieldsV1"], &path));
        assert!(contains(&b["fieldsV1"], &path));
    }
}
