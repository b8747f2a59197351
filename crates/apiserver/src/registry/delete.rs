//! Deletion: preconditions, finalizers, graceful deletion and collections.

use super::{MAX_CONFLICT_RETRIES, ObjectRef, Registry, decode, encode, store_error};
use crate::object;
use crate::params::Query;
use portico_api::status::ApiError;
use portico_store::StoreError;
use serde_json::{Value, json};

/// `DeleteOptions` from the body and query.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// `Background` (default), `Foreground` or `Orphan`.
    pub propagation: Option<String>,
    /// Grace period override.
    pub grace_period_seconds: Option<i64>,
    /// `preconditions.uid`.
    pub precondition_uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub precondition_rv: Option<String>,
    /// `dryRun: [All]`.
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Merges the JSON body (may be empty) and the query string.
    pub fn parse(body: &[u8], q: &Query) -> Result<Self, ApiError> {
        let mut o = Self::default();
        if !body.iter().all(u8::is_ascii_whitespace) {
            let v: Value = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
            o.propagation = v.get("propagationPolicy").and_then(Value::as_str).map(str::to_owned);
            if v.get("orphanDependents").and_then(Value::as_bool) == Some(true) && o.propagation.is_none() {
                o.propagation = Some("Orphan".into());
            }
            o.grace_period_seconds = v.get("gracePeriodSeconds").and_then(Value::as_i64);
            o.precondition_uid = v.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_owned);
            o.precondition_rv = v.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(str::to_owned);
            o.dry_run = v.get("dryRun").and_then(Value::as_array).is_some_and(|a| a.iter().any(|x| x == "All"));
        }
        if let Some(p) = q.get("propagationPolicy") {
            o.propagation = Some(p.to_owned());
        }
        if let Some(g) = q.number("gracePeriodSeconds")? {
            o.grace_period_seconds = Some(g as i64);
        }
        if q.get("dryRun") == Some("All") {
            o.dry_run = true;
        }
        match o.propagation.as_deref() {
            None | Some("Background" | "Foreground" | "Orphan") => Ok(o),
            Some(other) => Err(ApiError::invalid(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                &[portico_api::status::FieldError::not_supported("propagationPolicy", other, &["Foreground", "Background", "Orphan", "nil"])],
            )),
        }
    }
}

/// The result of a delete: the object, and whether it is gone (200) or pending (202).
#[derive(Debug, Clone)]
pub struct DeleteOutcome {
    /// The object (last state, or with `deletionTimestamp` set).
    pub object: Value,
    /// Whether it was removed from the store.
    pub deleted: bool,
}

const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

impl Registry {
    /// Deletes an object, honouring preconditions, finalizers and grace periods.
    pub async fn delete(&self, r: &ObjectRef<'_>, opts: &DeleteOptions) -> Result<DeleteOutcome, ApiError> {
        let gr = r.def.group_resource();
        if r.def.plural == "namespaces" && PROTECTED_NAMESPACES.contains(&r.name) {
            return Err(ApiError::forbidden(format!("namespaces {} is forbidden: this namespace may not be deleted", portico_api::status::go_quote(r.name))));
        }
        for _ in 0..MAX_CONFLICT_RETRIES {
            let Some((old, rev)) = self.try_get(r).await? else {
                return Err(ApiError::not_found(&gr, r.name));
            };
            if let Some(uid) = &opts.precondition_uid {
                let actual = object::meta_str(&old, "uid");
                if uid != actual {
                    return Err(ApiError::conflict(&gr, r.name, &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}")));
                }
            }
            if let Some(want) = &opts.precondition_rv
                && *want != rev.to_string() {
                    return Err(ApiError::conflict(&gr, r.name, &format!(
                        "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rev}"
                    )));
                }
            let mut finalizers = object::finalizers(&old);
            match opts.propagation.as_deref() {
                Some("Foreground") => add_unique(&mut finalizers, "foregroundDeletion"),
                Some("Orphan") => add_unique(&mut finalizers, "orphan"),
                _ => {}
            }
            let graceful = self.grace_period(r, &old, opts);
            let namespace_pending = r.def.plural == "namespaces";
            if finalizers.is_empty() && graceful.is_none() && !namespace_pending {
                if opts.dry_run {
                    return Ok(DeleteOutcome { object: old, deleted: true });
                }
                match self.store.delete(&Self::key(r), Some(rev)).await {
                    Ok(kv) => {
                        let object = decode(&kv)?;
                        self.released(r.def, &object);
                        return Ok(DeleteOutcome { object, deleted: true });
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(StoreError::NotFound(_)) => return Err(ApiError::not_found(&gr, r.name)),
                    Err(e) => return Err(store_error(e)),
                }
            }
            // Deletion is pending: mark the object and let its finalizers (or
            // the agent, for graceful pod deletion) finish it.
            let mut new = old.clone();
            if !object::is_deleting(&old) {
                let grace = graceful.unwrap_or(0);
                let when = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
                let when = when.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
                object::set_meta(&mut new, "deletionTimestamp", json!(when));
                object::set_meta(&mut new, "deletionGracePeriodSeconds", json!(grace));
            } else if let Some(g) = graceful {
                // A shorter grace period may replace a longer one.
                let cur = object::meta(&old).and_then(|m| m.get("deletionGracePeriodSeconds")).and_then(Value::as_i64).unwrap_or(0);
                if g < cur {
                    object::set_meta(&mut new, "deletionGracePeriodSeconds", json!(g));
                }
            }
            if !finalizers.is_empty() {
                object::set_meta(&mut new, "finalizers", json!(finalizers));
            }
            if namespace_pending {
                new["status"]["phase"] = json!("Terminating");
            }
            if new == old || opts.dry_run {
                return Ok(DeleteOutcome { object: new, deleted: false });
            }
            match self.store.update(&Self::key(r), encode(&new)?, Some(rev)).await {
                Ok(kv) => return Ok(DeleteOutcome { object: decode(&kv)?, deleted: false }),
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound(_)) => return Err(ApiError::not_found(&gr, r.name)),
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(ApiError::conflict_modified(&gr, r.name))
    }

    /// Pods bound to a node are deleted gracefully; everything else at once.
    fn grace_period(&self, r: &ObjectRef<'_>, obj: &Value, opts: &DeleteOptions) -> Option<i64> {
        if r.def.plural != "pods" {
            return None;
        }
        let bound = obj.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
        let finished = matches!(obj.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"));
        let grace = opts
            .grace_period_seconds
            .or_else(|| obj.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
            .unwrap_or(30);
        (bound && !finished && grace > 0).then_some(grace)
    }
}

fn add_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|f| f == item) {
        list.push(item.to_owned());
    }
}
