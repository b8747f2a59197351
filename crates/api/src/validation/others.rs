//! The other kinds: Namespace, ConfigMap, Secret, Endpoints, EndpointSlice,
//! Ingress, IngressClass and the rest of the catalogue.

use crate::resources::ResourceDef;
use crate::status::FieldError;
use serde_json::Value;

/// Kind-specific rules beyond metadata for a new object.
pub fn validate(rd: &ResourceDef, obj: &Value) -> Vec<FieldError> {
    let _ = (rd, obj);
    Vec::new()
}

/// `Validate<Kind>Update` for the other kinds.
pub fn validate_update(rd: &ResourceDef, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = super::validate_meta_update(new, old);
    errs.extend(validate(rd, new));
    errs
}
