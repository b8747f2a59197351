//! Validation of API objects with upstream's field paths and messages
//! (`pkg/apis/*/validation` and apimachinery's `ValidateObjectMeta`).
//!
//! Each kind validates as its upstream `Validate<Kind>` / `Validate<Kind>Update`
//! does, so the errors (and their order) are the ones kubectl users know.
//! ClusterIP/NodePort allocation errors are the allocator's, not ours.

pub mod fields;
pub mod meta;
pub mod net;
mod others;
mod pod;
mod service;
mod workloads;

use crate::resources::ResourceDef;
use crate::status::FieldError;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use meta::NameRule;
use serde_json::Value;

pub use service::prepare_service_update;

/// Errors in a new object (`Validate<Kind>`).
pub fn validate_create(rd: &ResourceDef, obj: &Value) -> Vec<FieldError> {
    match (rd.group, rd.kind) {
        ("", "Service") => service::validate(obj),
        ("", "Pod") => pod::validate_pod(obj),
        ("apps", "Deployment") => workloads::validate_deployment(obj),
        ("apps", "ReplicaSet") => workloads::validate_replica_set(obj),
        _ => {
            let mut errs = validate_meta(rd, obj);
            errs.extend(others::validate(rd, obj));
            errs
        }
    }
}

/// Errors in an update of `old` to `new` (`Validate<Kind>Update`).
pub fn validate_update(rd: &ResourceDef, new: &Value, old: &Value) -> Vec<FieldError> {
    match (rd.group, rd.kind) {
        ("", "Service") => service::validate_update(new, old),
        ("", "Pod") => pod::validate_pod_update(new, old),
        ("apps", "Deployment") => workloads::validate_deployment_update(new, old),
        ("apps", "ReplicaSet") => workloads::validate_replica_set_update(new, old),
        _ => others::validate_update(rd, new, old),
    }
}

/// The metadata of any object.
fn object_meta(obj: &Value) -> Result<ObjectMeta, Vec<FieldError>> {
    match obj.get("metadata") {
        None | Some(Value::Null) => Ok(ObjectMeta::default()),
        Some(m) => fields::decode(m),
    }
}

/// `ValidateObjectMeta` with the resource's scope and name rule.
fn validate_meta(rd: &ResourceDef, obj: &Value) -> Vec<FieldError> {
    match object_meta(obj) {
        Ok(m) => meta::validate_object_meta(&m, rd.namespaced, NameRule::of(rd)),
        Err(e) => e,
    }
}
