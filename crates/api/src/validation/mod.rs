//! Validation of API objects with upstream's field paths and messages
//! (`pkg/apis/*/validation` and apimachinery's `ValidateObjectMeta`).

mod meta;
mod service;
mod workloads;

use crate::resources::ResourceDef;
use crate::status::FieldError;
use serde_json::Value;

pub use service::prepare_service_update;

/// Errors in a new object.
pub fn validate_create(rd: &ResourceDef, obj: &Value) -> Vec<FieldError> {
    let mut errs = meta::validate_object_meta(rd, obj);
    errs.extend(validate_kind(rd, obj));
    errs
}

/// Errors in an update of `old` to `new`.
pub fn validate_update(rd: &ResourceDef, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = meta::validate_object_meta_update(new, old);
    match (rd.group, rd.kind) {
        ("", "Service") => errs.extend(service::validate_update(new, old)),
        ("apps", "Deployment" | "ReplicaSet") => errs.extend(workloads::validate_selector_update(new, old)),
        _ => {}
    }
    errs.extend(meta::validate_object_meta(rd, new));
    errs.extend(validate_kind(rd, new));
    errs
}

fn validate_kind(rd: &ResourceDef, obj: &Value) -> Vec<FieldError> {
    match (rd.group, rd.kind) {
        ("", "Service") => service::validate(obj),
        ("", "Pod") => workloads::validate_pod(obj),
        ("apps", "Deployment") => workloads::validate_workload(obj, "deployment", true),
        ("apps", "ReplicaSet") => workloads::validate_workload(obj, "replicaset", false),
        _ => Vec::new(),
    }
}

/// The text of `validation.IsValidPortNum`.
pub(crate) const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

/// `IsValidIP`'s message.
pub(crate) const IP_FORMAT: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
