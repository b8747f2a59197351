//! API errors as Kubernetes `Status` objects, and field errors with upstream's wording.
//!
//! Mirrors `k8s.io/apimachinery/pkg/api/errors` and
//! `k8s.io/apimachinery/pkg/util/validation/field`: the reason, code and
//! message text of every constructor are the upstream ones, because kubectl
//! prints them verbatim.

use serde_json::{Value, json};
use std::fmt;

/// The kind of a field validation error (`field.ErrorType` upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// `Not found`
    NotFound,
    /// `Required value`
    Required,
    /// `Duplicate value`
    Duplicate,
    /// `Invalid value`
    Invalid,
    /// `Unsupported value`
    NotSupported,
    /// `Forbidden`
    Forbidden,
    /// `Too long`
    TooLong,
    /// `Too many`
    TooMany,
    /// `Internal error`
    Internal,
    /// `Invalid value` (type mismatch)
    TypeInvalid,
}

impl ErrorType {
    /// The text upstream prints for this type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "Not found",
            Self::Required => "Required value",
            Self::Duplicate => "Duplicate value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Internal => "Internal error",
        }
    }

    /// The `StatusCause.reason` for this type.
    pub fn cause_reason(self) -> &'static str {
        match self {
            Self::NotFound => "FieldValueNotFound",
            Self::Required => "FieldValueRequired",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Internal => "InternalError",
            Self::TypeInvalid => "FieldValueTypeInvalid",
        }
    }
}

/// The offending value of a field error, formatted the way Go's `%v`/`%q`/`%#v` would.
#[derive(Debug, Clone, PartialEq)]
pub enum BadValue {
    /// No value is printed.
    Omit,
    /// Printed as `null`.
    Null,
    /// An integer, printed plain.
    Int(i64),
    /// A boolean, printed plain.
    Bool(bool),
    /// A string, printed quoted (`%q`).
    Str(String),
    /// Already formatted text, printed as is (e.g. `[]string{"1.1.1.1"}`).
    Raw(String),
}

impl BadValue {
    /// Formats a list of strings as Go's `%#v` of a `[]string`.
    pub fn string_slice<S: AsRef<str>>(items: &[S]) -> Self {
        let inner: Vec<String> = items.iter().map(|s| go_quote(s.as_ref())).collect();
        Self::Raw(format!("[]string{{{}}}", inner.join(", ")))
    }
}

impl From<&str> for BadValue {
    fn from(s: &str) -> Self {
        Self::Str(s.to_owned())
    }
}
impl From<String> for BadValue {
    fn from(s: String) -> Self {
        Self::Str(s)
    }
}
impl From<i64> for BadValue {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}
impl From<i32> for BadValue {
    fn from(v: i32) -> Self {
        Self::Int(v.into())
    }
}
impl From<bool> for BadValue {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

/// Quotes a string the way Go's `%q` does for the characters that occur in API objects.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One field validation error (`field.Error` upstream).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// What is wrong.
    pub error_type: ErrorType,
    /// The field path, e.g. `spec.ports[0].nodePort`.
    pub field: String,
    /// The offending value.
    pub bad_value: BadValue,
    /// Extra explanation appended after the value.
    pub detail: String,
}

impl FieldError {
    /// Builds an error of any type.
    pub fn new(error_type: ErrorType, field: impl Into<String>, bad_value: BadValue, detail: impl Into<String>) -> Self {
        Self { error_type, field: field.into(), bad_value, detail: detail.into() }
    }
    /// `field.Required(path, detail)`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Required, field, BadValue::Omit, detail)
    }
    /// `field.Invalid(path, value, detail)`.
    pub fn invalid(field: impl Into<String>, value: impl Into<BadValue>, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Invalid, field, value.into(), detail)
    }
    /// `field.Forbidden(path, detail)`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Forbidden, field, BadValue::Omit, detail)
    }
    /// `field.Duplicate(path, value)`.
    pub fn duplicate(field: impl Into<String>, value: impl Into<BadValue>) -> Self {
        Self::new(ErrorType::Duplicate, field, value.into(), "")
    }
    /// `field.NotFound(path, value)`.
    pub fn not_found(field: impl Into<String>, value: impl Into<BadValue>) -> Self {
        Self::new(ErrorType::NotFound, field, value.into(), "")
    }
    /// `field.TooLong(path, value, max)`: upstream prints only the limit.
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Self::new(ErrorType::TooLong, field, BadValue::Omit, format!("may not be more than {max} bytes"))
    }
    /// `field.TooMany(path, actual, max)`.
    pub fn too_many(field: impl Into<String>, actual: usize, max: usize) -> Self {
        Self::new(ErrorType::TooMany, field, BadValue::Int(actual as i64), format!("must have at most {max} items"))
    }
    /// `field.Internal(path, err)`.
    pub fn internal(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(ErrorType::Internal, field, BadValue::Omit, detail)
    }
    /// `field.NotSupported(path, value, validValues)`: detail lists the supported values quoted.
    pub fn not_supported<S: AsRef<str>>(field: impl Into<String>, value: impl Into<BadValue>, valid: &[S]) -> Self {
        let quoted: Vec<String> = valid.iter().map(|v| go_quote(v.as_ref())).collect();
        let detail = if quoted.is_empty() { String::new() } else { format!("supported values: {}", quoted.join(", ")) };
        Self::new(ErrorType::NotSupported, field, value.into(), detail)
    }

    /// The message without the field path (`ErrorBody()` upstream).
    pub fn body(&self) -> String {
        let mut s = match (self.error_type, &self.bad_value) {
            (ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong | ErrorType::Internal, _) | (_, BadValue::Omit) => {
                self.error_type.as_str().to_owned()
            }
            (t, v) => {
                let value = match v {
                    BadValue::Null => "null".to_owned(),
                    BadValue::Int(i) => i.to_string(),
                    BadValue::Bool(b) => b.to_string(),
                    BadValue::Str(s) => go_quote(s),
                    BadValue::Raw(r) => r.clone(),
                    BadValue::Omit => String::new(),
                };
                format!("{}: {}", t.as_str(), value)
            }
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// Joins several errors the way `utilerrors.NewAggregate(...).Error()` does.
pub fn aggregate_message(errs: &[FieldError]) -> String {
    let mut seen = std::collections::HashSet::new();
    let msgs: Vec<String> = errs.iter().map(ToString::to_string).filter(|m| seen.insert(m.clone())).collect();
    if msgs.len() == 1 { msgs.into_iter().next().unwrap_or_default() } else { format!("[{}]", msgs.join(", ")) }
}

/// A group and resource (`schema.GroupResource`), printed `services` or `deployments.apps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupResource {
    /// API group, empty for core.
    pub group: String,
    /// Plural resource name.
    pub resource: String,
}

impl fmt::Display for GroupResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() { f.write_str(&self.resource) } else { write!(f, "{}.{}", self.resource, self.group) }
    }
}

/// One cause in `Status.details.causes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// Machine-readable reason, e.g. `FieldValueInvalid`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// Field path, if any.
    pub field: String,
}

/// `Status.details`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Details {
    /// Object name.
    pub name: String,
    /// API group.
    pub group: String,
    /// Kind (for Invalid) or resource (for NotFound and friends), as upstream.
    pub kind: String,
    /// Object UID, if known.
    pub uid: String,
    /// Causes.
    pub causes: Vec<Cause>,
    /// Seconds the client should wait before retrying.
    pub retry_after_seconds: Option<i32>,
}

/// An API error that becomes a `Status` response.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `Status.reason` (e.g. `NotFound`, `Invalid`).
    pub reason: &'static str,
    /// `Status.message`.
    pub message: String,
    /// `Status.details`, when upstream sets them (boxed: errors travel in `Result`s).
    pub details: Option<Box<Details>>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    fn simple(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), details: None }
    }
    fn with_gr(code: u16, reason: &'static str, message: String, gr: &GroupResource, name: &str) -> Self {
        let details = Details { name: name.to_owned(), group: gr.group.clone(), kind: gr.resource.clone(), ..Default::default() };
        Self { code, reason, message, details: Some(Box::new(details)) }
    }
    /// 404 `NotFound`: `services "x" not found`.
    pub fn not_found(gr: &GroupResource, name: &str) -> Self {
        Self::with_gr(404, "NotFound", format!("{gr} {} not found", go_quote(name)), gr, name)
    }
    /// 409 `AlreadyExists`: `services "x" already exists`.
    pub fn already_exists(gr: &GroupResource, name: &str) -> Self {
        Self::with_gr(409, "AlreadyExists", format!("{gr} {} already exists", go_quote(name)), gr, name)
    }
    /// 409 `Conflict` with upstream's optimistic-concurrency message.
    pub fn conflict_modified(gr: &GroupResource, name: &str) -> Self {
        Self::conflict(gr, name, "the object has been modified; please apply your changes to the latest version and try again")
    }
    /// 409 `Conflict`: `Operation cannot be fulfilled on services "x": <why>`.
    pub fn conflict(gr: &GroupResource, name: &str, why: &str) -> Self {
        Self::with_gr(409, "Conflict", format!("Operation cannot be fulfilled on {gr} {}: {why}", go_quote(name)), gr, name)
    }
    /// 422 `Invalid`: `Service "x" is invalid: <errors>`; `kind` is `Service` or `Deployment.apps`.
    pub fn invalid(group: &str, kind: &str, name: &str, errs: &[FieldError]) -> Self {
        let qualified = if group.is_empty() { kind.to_owned() } else { format!("{kind}.{group}") };
        let causes = errs
            .iter()
            .map(|e| Cause { reason: e.error_type.cause_reason().to_owned(), message: e.body(), field: e.field.clone() })
            .collect();
        let details = Details { name: name.to_owned(), group: group.to_owned(), kind: kind.to_owned(), causes, ..Default::default() };
        Self {
            code: 422,
            reason: "Invalid",
            message: format!("{qualified} {} is invalid: {}", go_quote(name), aggregate_message(errs)),
            details: Some(Box::new(details)),
        }
    }
    /// 400 `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::simple(400, "BadRequest", message)
    }
    /// 401 `Unauthorized`.
    pub fn unauthorized() -> Self {
        Self::simple(401, "Unauthorized", "Unauthorized")
    }
    /// 403 `Forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::simple(403, "Forbidden", message)
    }
    /// 405 `MethodNotAllowed`.
    pub fn method_not_supported(gr: &GroupResource, action: &str) -> Self {
        Self::simple(405, "MethodNotAllowed", format!("{action} is not supported on resources of kind {}", go_quote(&gr.to_string())))
    }
    /// 406 `NotAcceptable`.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::simple(406, "NotAcceptable", message)
    }
    /// 410 `Expired`: `too old resource version: X (Y)`.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::simple(410, "Expired", message)
    }
    /// 410 `Gone`.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::simple(410, "Gone", message)
    }
    /// 413 `RequestEntityTooLarge`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::simple(413, "RequestEntityTooLarge", format!("Request entity too large: {}", message.into()))
    }
    /// 415 `UnsupportedMediaType`.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::simple(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type})"))
    }
    /// 500 `InternalError`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::simple(500, "InternalError", format!("Internal error occurred: {}", message.into()))
    }
    /// 503 `ServiceUnavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::simple(503, "ServiceUnavailable", message)
    }
    /// 404 for a path that names no resource.
    pub fn path_not_found() -> Self {
        Self::simple(404, "NotFound", "the server could not find the requested resource")
    }

    /// The `Status` object as JSON.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            let mut details = serde_json::Map::new();
            if !d.name.is_empty() {
                details.insert("name".into(), json!(d.name));
            }
            if !d.group.is_empty() {
                details.insert("group".into(), json!(d.group));
            }
            if !d.kind.is_empty() {
                details.insert("kind".into(), json!(d.kind));
            }
            if !d.uid.is_empty() {
                details.insert("uid".into(), json!(d.uid));
            }
            if !d.causes.is_empty() {
                let causes: Vec<Value> = d
                    .causes
                    .iter()
                    .map(|c| {
                        let mut m = serde_json::Map::new();
                        m.insert("reason".into(), json!(c.reason));
                        m.insert("message".into(), json!(c.message));
                        if !c.field.is_empty() {
                            m.insert("field".into(), json!(c.field));
                        }
                        Value::Object(m)
                    })
                    .collect();
                details.insert("causes".into(), Value::Array(causes));
            }
            if let Some(r) = d.retry_after_seconds {
                details.insert("retryAfterSeconds".into(), json!(r));
            }
            status["details"] = Value::Object(details);
        }
        status
    }
}

/// A success `Status` (returned by some deletes).
pub fn success_status(details: Option<Details>) -> Value {
    let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"});
    if let Some(d) = details {
        s["details"] = json!({"name": d.name, "group": d.group, "kind": d.kind, "uid": d.uid});
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_message_matches_upstream() {
        let e = FieldError::invalid(
            "spec.ports[0].nodePort",
            80,
            "provided port is not in the valid range. The range of valid ports is 30000-32767",
        );
        let err = ApiError::invalid("", "Service", "x", &[e]);
        assert_eq!(
            err.message,
            "Service \"x\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
        let st = err.to_status();
        assert_eq!(st["code"], 422);
        assert_eq!(st["details"]["causes"][0]["reason"], "FieldValueInvalid");
        assert_eq!(st["details"]["causes"][0]["field"], "spec.ports[0].nodePort");
    }

    #[test]
    fn several_errors_are_bracketed() {
        let errs = [FieldError::required("spec.ports[0].name", ""), FieldError::required("spec.ports[1].name", "")];
        let err = ApiError::invalid("apps", "Deployment", "d", &errs);
        assert_eq!(
            err.message,
            "Deployment.apps \"d\" is invalid: [spec.ports[0].name: Required value, spec.ports[1].name: Required value]"
        );
    }

    #[test]
    fn not_supported_lists_values() {
        let e = FieldError::not_supported("spec.type", "Foo", &["ClusterIP", "ExternalName"]);
        assert_eq!(e.to_string(), "spec.type: Unsupported value: \"Foo\": supported values: \"ClusterIP\", \"ExternalName\"");
    }

    #[test]
    fn not_found_names_group_resource() {
        let gr = GroupResource { group: "apps".into(), resource: "deployments".into() };
        assert_eq!(ApiError::not_found(&gr, "web").message, "deployments.apps \"web\" not found");
    }
}
