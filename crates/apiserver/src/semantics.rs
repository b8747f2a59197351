//! The per-kind rules the registry applies on every write: defaulting,
//! validation, strict field checks, patching, printing and selectors.
//!
//! This module is the single place where the registry meets `portico_api`'s
//! pure cores, so the write path reads as one sequence of steps.

use portico_api::resources::ResourceDef;
use portico_api::status::{ApiError, Cause, Details, FieldError, go_quote};
use serde_json::Value;

/// Applies upstream defaults for the kind.
pub fn apply_defaults(def: &ResourceDef, obj: &mut Value) {
    portico_api::defaults::apply_defaults(def, obj);
}

/// Validates a new object.
pub fn validate_create(def: &ResourceDef, obj: &Value) -> Vec<FieldError> {
    portico_api::validation::validate_create(def, obj)
}

/// Validates an update against the stored object.
pub fn validate_update(def: &ResourceDef, new: &Value, old: &Value) -> Vec<FieldError> {
    portico_api::validation::validate_update(def, new, old)
}

/// Kind-specific preparation of an update before validation (e.g. Service type changes).
pub fn prepare_update(def: &ResourceDef, new: &mut Value, old: &Value) {
    if def.group.is_empty() && def.kind == "Service" {
        portico_api::validation::prepare_service_update(new, old);
    }
}

/// Checks a body against the kind's schema: `Err` for values of the wrong
/// type (always rejected), else the unknown fields with the strict-mode message.
pub fn check_body(def: &ResourceDef, obj: &Value) -> Result<Option<(String, Vec<String>)>, ApiError> {
    let report = portico_api::strict::check_fields(def, obj);
    let message = portico_api::strict::strict_error_message(def.kind, def.version, &report);
    match (&report.type_error, message) {
        (Some(_), Some(m)) => Err(ApiError::bad_request(m)),
        (_, Some(m)) => Ok(Some((m, report.unknown))),
        (_, None) => Ok(None),
    }
}

/// Applies a JSON merge patch (RFC 7386).
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    portico_api::patch::json_merge_patch(target, patch)
}

fn patch_error(e: portico_api::patch::PatchError) -> ApiError {
    ApiError { code: 422, reason: "Invalid", message: e.to_string(), details: None }
}

/// Applies a strategic merge patch.
pub fn strategic_merge_patch(def: &ResourceDef, target: &Value, patch: &Value) -> Result<Value, ApiError> {
    portico_api::patch::strategic_merge_patch(def.group, def.kind, target, patch).map_err(patch_error)
}

/// Applies a JSON patch (RFC 6902).
pub fn json_patch(target: &Value, ops: &Value) -> Result<Value, ApiError> {
    portico_api::patch::json_patch(target, ops).map_err(patch_error)
}

pub use portico_api::printing::IncludeObject;

/// Builds a `meta.k8s.io/v1` Table of the objects, as of now.
pub fn table(def: &ResourceDef, objects: &[Value], include: IncludeObject, list_meta: Value) -> Value {
    portico_api::printing::table(def, objects, include, list_meta, jiff::Timestamp::now())
}

/// Server-side apply of `applied` by `manager` onto `live` (absent: a new object).
pub fn server_side_apply(def: &ResourceDef, live: Option<&Value>, applied: &Value, manager: &str, force: bool) -> Result<Value, ApiError> {
    let api_version = def.api_version();
    let now = crate::object::now_rfc3339();
    portico_api::patch::managed::server_side_apply(def.group, def.kind, &api_version, live, applied, manager, force, &now).map_err(|c| {
        let lines: Vec<String> = c.0.iter().map(|c| format!("conflict with {} using {api_version}: {}", go_quote(&c.manager), c.field)).collect();
        let message = if lines.len() == 1 {
            format!("Apply failed with 1 conflict: {}", lines[0])
        } else {
            format!("Apply failed with {} conflicts: {}", lines.len(), lines.join("\n"))
        };
        let causes = c
            .0
            .iter()
            .map(|c| Cause { reason: "FieldManagerConflict".into(), message: format!("conflict with {} using {api_version}", go_quote(&c.manager)), field: c.field.clone() })
            .collect();
        ApiError { code: 409, reason: "Conflict", message, details: Some(Box::new(Details { causes, ..Default::default() })) }
    })
}

/// Records `manager`'s ownership of what it changed between `old` and `new`.
pub fn record_managed_fields(def: &ResourceDef, old: Option<&Value>, new: &mut Value, manager: &str, subresource: Option<&str>) {
    let now = crate::object::now_rfc3339();
    match old.and_then(|o| o.pointer("/metadata/managedFields")) {
        Some(mf) => crate::object::set_meta(new, "managedFields", mf.clone()),
        None => crate::object::remove_meta(new, "managedFields"),
    }
    portico_api::patch::managed::record_update(def.group, def.kind, &def.api_version(), old, new, manager, &now, subresource);
}
