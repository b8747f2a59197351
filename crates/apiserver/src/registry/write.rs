//! Create, update and patch: the upstream write sequence for every kind.

use super::{MAX_CONFLICT_RETRIES, ObjectRef, Registry, decode, encode, store_error};
use crate::object;
use crate::params::{FieldValidation, WriteOptions};
use crate::semantics;
use portico_api::resources::{ResourceDef, Subresource};
use portico_api::status::ApiError;
use portico_store::StoreError;
use serde_json::{Value, json};

/// The result of a write.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// The object as stored (or as it would be, for dry runs).
    pub object: Value,
    /// Whether the write created the object (201 rather than 200).
    pub created: bool,
    /// Warnings for the `Warning` response header.
    pub warnings: Vec<String>,
}

/// The patch formats accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply)
    Apply,
}

impl PatchType {
    /// From the request's content type.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" => Some(Self::Apply),
            _ => None,
        }
    }
}

const GENERATE_NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn random_suffix() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes.iter().take(5).map(|b| GENERATE_NAME_ALPHABET[*b as usize % GENERATE_NAME_ALPHABET.len()] as char).collect()
}

/// Checks `apiVersion`/`kind` in a body against the resource addressed.
fn check_type_meta(def: &ResourceDef, obj: &Value, expect_kind: &str, expect_version: &str) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(format!("the object provided is unrecognized (must be of type {expect_kind})")));
    }
    let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    if !kind.is_empty() && kind != expect_kind {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {expect_kind}): couldn't get version/kind; json parse error: kind {kind} does not match {expect_kind}"
        )));
    }
    if !av.is_empty() && av != expect_version {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({expect_version})"
        )));
    }
    let _ = def;
    Ok(())
}

/// Strict field validation of a body; returns warnings for `Warn`.
pub(crate) fn check_fields(def: &ResourceDef, obj: &Value, mode: FieldValidation) -> Result<Vec<String>, ApiError> {
    match (mode, semantics::check_body(def, obj)?) {
        (_, None) | (FieldValidation::Ignore, _) => Ok(Vec::new()),
        (FieldValidation::Strict, Some((message, _))) => Err(ApiError::bad_request(message)),
        (FieldValidation::Warn, Some((_, fields))) => Ok(fields.iter().map(|f| format!("unknown field {}", portico_api::status::go_quote(f))).collect()),
    }
}

/// Fields of the stored object that clients cannot change.
const SYSTEM_META: &[&str] = &["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "namespace", "name"];

impl Registry {
    /// Creates an object in `namespace` (ignored for cluster-scoped resources).
    pub async fn create(&self, def: &'static ResourceDef, namespace: Option<&str>, mut obj: Value, opts: &WriteOptions) -> Result<WriteOutcome, ApiError> {
        check_type_meta(def, &obj, def.kind, &def.api_version())?;
        let warnings = check_fields(def, &obj, opts.field_validation)?;
        object::drop_nulls(&mut obj);
        obj["apiVersion"] = json!(def.api_version());
        obj["kind"] = json!(def.kind);
        if def.namespaced {
            let ns = namespace.unwrap_or("default");
            let body_ns = object::namespace(&obj);
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
            }
            object::set_meta(&mut obj, "namespace", json!(ns));
            self.check_namespace_accepts_content(ns).await?;
        } else {
            object::remove_meta(&mut obj, "namespace");
        }
        if object::name(&obj).is_empty() {
            let generate = object::meta_str(&obj, "generateName").to_owned();
            if !generate.is_empty() {
                object::set_meta(&mut obj, "name", json!(format!("{generate}{}", random_suffix())));
            }
        }
        prepare_for_create(def, &mut obj);
        semantics::apply_defaults(def, &mut obj);
        let txn = self.allocate(def, None, &mut obj)?;
        let errs = semantics::validate_create(def, &obj);
        if !errs.is_empty() {
            self.settle(txn, false);
            return Err(ApiError::invalid(def.group, def.kind, object::name(&obj), &errs));
        }
        if !opts.apply {
            semantics::record_managed_fields(def, None, &mut obj, &opts.field_manager, None);
        }
        let r = ObjectRef { def, namespace, name: object::name(&obj) };
        let key = Self::key(&r);
        if opts.dry_run {
            self.settle(txn, false);
            return Ok(WriteOutcome { object: obj, created: true, warnings });
        }
        let written = self.store.create(&key, encode(&obj)?).await;
        self.settle(txn, written.is_ok());
        let kv = match written {
            Ok(kv) => kv,
            Err(StoreError::AlreadyExists(_)) => return Err(ApiError::already_exists(&def.group_resource(), object::name(&obj))),
            Err(e) => return Err(store_error(e)),
        };
        Ok(WriteOutcome { object: decode(&kv)?, created: true, warnings })
    }

    /// Replaces an object (PUT), or its status or scale subresource.
    pub async fn update(&self, r: &ObjectRef<'_>, sub: Option<Subresource>, mut body: Value, opts: &WriteOptions) -> Result<WriteOutcome, ApiError> {
        let (kind, version) = body_kind(r.def, sub);
        check_type_meta(r.def, &body, &kind, &version)?;
        let warnings = if sub == Some(Subresource::Scale) { Vec::new() } else { check_fields(r.def, &body, opts.field_validation)? };
        object::drop_nulls(&mut body);
        let body_name = object::name(&body);
        if !body_name.is_empty() && body_name != r.name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({})",
                r.name
            )));
        }
        if r.def.namespaced {
            let body_ns = object::namespace(&body);
            if !body_ns.is_empty() && Some(body_ns) != r.namespace {
                return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
            }
        }
        let precondition = object::resource_version(&body).map_err(|rv| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?;
        for _ in 0..MAX_CONFLICT_RETRIES {
            let Some((old, rev)) = self.try_get(r).await? else {
                if sub.is_none() && allow_create_on_update(r.def) {
                    object::set_meta(&mut body, "name", json!(r.name));
                    return self.create(r.def, r.namespace, body, opts).await;
                }
                return Err(ApiError::not_found(&r.def.group_resource(), r.name));
            };
            if let Some(p) = precondition
                && p != rev {
                    return Err(ApiError::conflict_modified(&r.def.group_resource(), r.name));
                }
            let new = match sub {
                Some(Subresource::Scale) => scale_to_object(r.def, &old, &body)?,
                _ => body.clone(),
            };
            match self.finish_update(r, sub, &old, rev, new, opts).await? {
                Some(mut out) => {
                    out.warnings.extend(warnings);
                    if sub == Some(Subresource::Scale) {
                        out.object = object_to_scale(r.def, &out.object);
                    }
                    return Ok(out);
                }
                None if precondition.is_some() => return Err(ApiError::conflict_modified(&r.def.group_resource(), r.name)),
                None => continue,
            }
        }
        Err(ApiError::conflict_modified(&r.def.group_resource(), r.name))
    }

    /// Patches an object or a subresource.
    pub async fn patch(&self, r: &ObjectRef<'_>, sub: Option<Subresource>, ty: PatchType, patch: &Value, opts: &WriteOptions) -> Result<WriteOutcome, ApiError> {
        if ty == PatchType::Apply && sub == Some(Subresource::Scale) {
            return Err(ApiError::unsupported_media_type("application/apply-patch+yaml"));
        }
        for _ in 0..MAX_CONFLICT_RETRIES {
            let Some((old, rev)) = self.try_get(r).await? else {
                if ty != PatchType::Apply || sub.is_some() {
                    return Err(ApiError::not_found(&r.def.group_resource(), r.name));
                }
                // Server-side apply creates a missing object from the applied configuration.
                check_type_meta(r.def, patch, r.def.kind, &r.def.api_version())?;
                let mut obj = semantics::server_side_apply(r.def, None, patch, &opts.field_manager, opts.force)?;
                object::set_meta(&mut obj, "name", json!(r.name));
                let apply_opts = WriteOptions { apply: true, ..opts.clone() };
                match self.create(r.def, r.namespace, obj, &apply_opts).await {
                    Err(e) if e.code == 409 && e.reason == "AlreadyExists" => continue,
                    other => return other,
                }
            };
            let view = if sub == Some(Subresource::Scale) { object_to_scale(r.def, &old) } else { old.clone() };
            let patched = match ty {
                PatchType::Merge => semantics::merge_patch(&view, patch),
                PatchType::Strategic => semantics::strategic_merge_patch(r.def, &view, patch)?,
                PatchType::Json => semantics::json_patch(&view, patch)?,
                PatchType::Apply => {
                    check_type_meta(r.def, patch, r.def.kind, &r.def.api_version())?;
                    semantics::server_side_apply(r.def, Some(&view), patch, &opts.field_manager, opts.force)?
                }
            };
            let warnings = if sub == Some(Subresource::Scale) { Vec::new() } else { check_fields(r.def, &patched, opts.field_validation)? };
            let precondition = object::resource_version(&patched).ok().flatten();
            if precondition.is_some_and(|p| p != rev) {
                return Err(ApiError::conflict_modified(&r.def.group_resource(), r.name));
            }
            let mut new = if sub == Some(Subresource::Scale) { scale_to_object(r.def, &old, &patched)? } else { patched };
            object::drop_nulls(&mut new);
            if object::name(&new) != r.name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({})",
                    object::name(&new),
                    r.name
                )));
            }
            let apply_opts = WriteOptions { apply: ty == PatchType::Apply, ..opts.clone() };
            if let Some(mut out) = self.finish_update(r, sub, &old, rev, new, &apply_opts).await? {
                out.warnings.extend(warnings);
                if sub == Some(Subresource::Scale) {
                    out.object = object_to_scale(r.def, &out.object);
                }
                return Ok(out);
            }
        }
        Err(ApiError::conflict_modified(&r.def.group_resource(), r.name))
    }

    /// The shared tail of update and patch. `Ok(None)` means the store revision
    /// moved under us and the caller should retry.
    async fn finish_update(
        &self,
        r: &ObjectRef<'_>,
        sub: Option<Subresource>,
        old: &Value,
        rev: u64,
        mut new: Value,
        opts: &WriteOptions,
    ) -> Result<Option<WriteOutcome>, ApiError> {
        let def = r.def;
        new["apiVersion"] = json!(def.api_version());
        new["kind"] = json!(def.kind);
        match sub {
            Some(Subresource::Status) => {
                let mut merged = old.clone();
                match new.get("status") {
                    Some(s) => merged["status"] = s.clone(),
                    None => {
                        if let Some(m) = merged.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                new = merged;
            }
            _ => {
                if def.has(Subresource::Status) {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
            }
        }
        for field in SYSTEM_META {
            match object::meta(old).and_then(|m| m.get(*field)) {
                Some(v) => object::set_meta(&mut new, field, v.clone()),
                None => object::remove_meta(&mut new, field),
            }
        }
        object::set_meta(&mut new, "resourceVersion", json!(rev.to_string()));
        semantics::apply_defaults(def, &mut new);
        if sub.is_none() {
            semantics::prepare_update(def, &mut new, old);
        }
        if def.tracks_generation && new.get("spec") != old.get("spec") {
            let g = object::meta(old).and_then(|m| m.get("generation")).and_then(Value::as_i64).unwrap_or(0);
            object::set_meta(&mut new, "generation", json!(g + 1));
        }
        let txn = if sub.is_none() { self.allocate(def, Some(old), &mut new)? } else { None };
        let errs = semantics::validate_update(def, &new, old);
        if !errs.is_empty() {
            self.settle(txn, false);
            return Err(ApiError::invalid(def.group, def.kind, r.name, &errs));
        }
        if !opts.apply {
            semantics::record_managed_fields(def, Some(old), &mut new, &opts.field_manager, sub.map(Subresource::name));
        }
        if &new == old || opts.dry_run {
            self.settle(txn, false);
            return Ok(Some(WriteOutcome { object: new, created: false, warnings: Vec::new() }));
        }
        let key = Self::key(r);
        let finishing = object::is_deleting(&new) && object::finalizers(&new).is_empty();
        // When the last finalizer goes, the pending deletion completes now.
        let written = if finishing { self.store.delete(&key, Some(rev)).await } else { self.store.update(&key, encode(&new)?, Some(rev)).await };
        self.settle(txn, written.is_ok());
        match written {
            Ok(kv) => {
                let object = decode(&kv)?;
                if finishing {
                    self.released(def, &object);
                }
                Ok(Some(WriteOutcome { object, created: false, warnings: Vec::new() }))
            }
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(StoreError::NotFound(_)) => Err(ApiError::not_found(&def.group_resource(), r.name)),
            Err(e) => Err(store_error(e)),
        }
    }

    /// Rejects content in a namespace that does not exist or is terminating.
    pub(crate) async fn check_namespace_accepts_content(&self, ns: &str) -> Result<(), ApiError> {
        let nsdef = portico_api::resources::find("", "v1", "namespaces").ok_or_else(|| ApiError::internal("no namespaces resource"))?;
        match self.try_get(&ObjectRef { def: nsdef, namespace: None, name: ns }).await? {
            None => Err(ApiError::not_found(&nsdef.group_resource(), ns)),
            Some((n, _)) if object::is_deleting(&n) => Err(ApiError::forbidden(format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            ))),
            Some(_) => Ok(()),
        }
    }
}

/// Resources whose PUT creates a missing object (upstream `AllowCreateOnUpdate`).
fn allow_create_on_update(def: &ResourceDef) -> bool {
    matches!(def.plural, "endpoints" | "events" | "leases" | "endpointslices" | "nodes")
}

/// System metadata and status reset for a new object (upstream `PrepareForCreate`).
fn prepare_for_create(def: &ResourceDef, obj: &mut Value) {
    for f in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "generation", "selfLink"] {
        object::remove_meta(obj, f);
    }
    object::set_meta(obj, "uid", json!(uuid::Uuid::new_v4().to_string()));
    object::set_meta(obj, "creationTimestamp", json!(object::now_rfc3339()));
    if def.tracks_generation {
        object::set_meta(obj, "generation", json!(1));
    }
    // Status is the system's to write, except where upstream lets creators set it.
    if def.has(Subresource::Status) && !matches!(def.plural, "nodes" | "pods")
        && let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
    if def.plural == "pods" {
        obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
    }
}

/// The kind and apiVersion a write body must carry.
fn body_kind(def: &ResourceDef, sub: Option<Subresource>) -> (String, String) {
    match sub {
        Some(Subresource::Scale) => ("Scale".into(), "autoscaling/v1".into()),
        _ => (def.kind.into(), def.api_version()),
    }
}

/// The `autoscaling/v1` Scale view of a workload.
pub fn object_to_scale(def: &ResourceDef, obj: &Value) -> Value {
    let meta = object::meta(obj).cloned().unwrap_or_default();
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    let mut scale_meta = serde_json::Map::new();
    for f in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if let Some(v) = meta.get(f) {
            scale_meta.insert(f.into(), v.clone());
        }
    }
    let _ = def;
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector},
    })
}

/// Applies a Scale's `spec.replicas` to the workload.
fn scale_to_object(def: &ResourceDef, old: &Value, scale: &Value) -> Result<Value, ApiError> {
    let replicas = scale.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
    if replicas < 0 {
        let err = portico_api::status::FieldError::invalid("spec.replicas", replicas, "must be greater than or equal to 0");
        return Err(ApiError::invalid("autoscaling", "Scale", object::name(old), &[err]));
    }
    let mut new = old.clone();
    new["spec"]["replicas"] = json!(replicas);
    let _ = def;
    Ok(new)
}
