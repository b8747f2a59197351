//! `ValidateObjectMeta` / `ValidateObjectMetaUpdate` (apimachinery's
//! `api/validation/objectmeta.go`, with core's extra finalizer-name check):
//! names, namespace, labels, annotations, owner references and finalizers.

use super::fields::{self, IMMUTABLE, check, nonnegative};
use crate::resources::ResourceDef;
use crate::selectors::qualified_name::{is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_qualified_name, mask_trailing_dash};
use crate::status::{BadValue, FieldError, go_quote};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use std::collections::BTreeMap;

/// `TotalAnnotationSizeLimitB`: 256 KiB of keys and values.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Finalizers without a `/` that upstream accepts (`IsStandardFinalizerName`).
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

/// Which syntax a resource's names follow (`ValidateServiceName`, `ValidateNamespaceName`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// `NameIsDNS1035Label` (Services).
    Dns1035Label,
    /// `NameIsDNSLabel` (Namespaces).
    Dns1123Label,
    /// `NameIsDNSSubdomain` (most kinds).
    Dns1123Subdomain,
}

impl NameRule {
    /// The rule of a resource.
    pub fn of(rd: &ResourceDef) -> Self {
        match (rd.group, rd.kind) {
            ("", "Service") => Self::Dns1035Label,
            ("", "Namespace") => Self::Dns1123Label,
            _ => Self::Dns1123Subdomain,
        }
    }

    /// The messages for `name`; `prefix` for a `generateName`, whose trailing `-` is masked.
    pub fn check(self, name: &str, prefix: bool) -> Vec<String> {
        let name = if prefix { mask_trailing_dash(name) } else { name.to_owned() };
        match self {
            Self::Dns1035Label => is_dns1035_label(&name),
            Self::Dns1123Label => is_dns1123_label(&name),
            Self::Dns1123Subdomain => is_dns1123_subdomain(&name),
        }
    }
}

/// `ValidateAnnotations` at `path`: keys are case-insensitive qualified names,
/// and keys plus values stay within 256 KiB.
pub fn validate_annotations(annotations: Option<&BTreeMap<String, String>>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(annotations) = annotations else { return errs };
    let mut total = 0;
    for (k, v) in annotations {
        errs.extend(check(path, k, is_qualified_name(&k.to_lowercase())));
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

/// The gogo-protobuf `String()` of an owner reference, as upstream prints it.
fn owner_reference_dump(r: &OwnerReference) -> String {
    let opt = |b: Option<bool>| b.map_or("nil".to_owned(), |b| format!("*{b}"));
    format!(
        "&OwnerReference{{Kind:{},Name:{},UID:{},APIVersion:{},Controller:{},BlockOwnerDeletion:{},}}",
        r.kind,
        r.name,
        r.uid,
        r.api_version,
        opt(r.controller),
        opt(r.block_owner_deletion)
    )
}

/// `ValidateOwnerReferences`. Upstream reports at `metadata.ownerReferences`, without an index.
fn validate_owner_references(refs: &[OwnerReference], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut first_controller: Option<String> = None;
    for r in refs {
        let version = r.api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            errs.push(FieldError::invalid(format!("{path}.apiVersion"), r.api_version.as_str(), "version must not be empty"));
        }
        if r.kind.is_empty() {
            errs.push(FieldError::invalid(format!("{path}.kind"), "", "must not be empty"));
        }
        if r.name.is_empty() {
            errs.push(FieldError::invalid(format!("{path}.name"), "", "must not be empty"));
        }
        if r.uid.is_empty() {
            errs.push(FieldError::invalid(format!("{path}.uid"), "", "must not be empty"));
        }
        if r.api_version == "v1" && r.kind == "Event" {
            errs.push(FieldError::invalid(path, BadValue::Raw(owner_reference_dump(r)), "/v1, Kind=Event is disallowed from being an owner"));
        }
        if r.controller == Some(true) {
            let current = format!("{}/{}", r.kind, r.name);
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    path,
                    BadValue::Raw(format!("[]v1.OwnerReference{{{}}}", refs.iter().map(owner_reference_dump).collect::<Vec<_>>().join(", "))),
                    format!("Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"),
                )),
                None => first_controller = Some(current),
            }
        }
    }
    errs
}

/// Core's `validateKubeFinalizerName`: a name without `/` must be a standard one.
fn validate_kube_finalizer_name(name: &str, path: &str) -> Vec<FieldError> {
    if !name.contains('/') && !STANDARD_FINALIZERS.contains(&name) {
        return vec![FieldError::invalid(path, name, "name is neither a standard finalizer name nor is it fully qualified")];
    }
    Vec::new()
}

/// `ValidateFinalizers` plus core's per-index standard-name check.
fn validate_finalizers(finalizers: &[String], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for f in finalizers {
        errs.extend(check(path, f, is_qualified_name(f)));
    }
    if finalizers.iter().any(|f| f == "orphan") && finalizers.iter().any(|f| f == "foregroundDeletion") {
        errs.push(FieldError::invalid(path, BadValue::string_slice(finalizers), "finalizer orphan and foregroundDeletion cannot be both set"));
    }
    errs
}

fn kube_finalizer_names(finalizers: &[String]) -> Vec<FieldError> {
    finalizers.iter().enumerate().flat_map(|(i, f)| validate_kube_finalizer_name(f, &format!("metadata.finalizers[{i}]"))).collect()
}

/// The parts of `ValidateObjectMeta` shared by create and update.
fn validate_common(meta: &ObjectMeta) -> Vec<FieldError> {
    let mut errs = fields::labels(meta.labels.as_ref(), "metadata.labels");
    errs.extend(validate_annotations(meta.annotations.as_ref(), "metadata.annotations"));
    errs.extend(validate_owner_references(meta.owner_references.as_deref().unwrap_or_default(), "metadata.ownerReferences"));
    errs
}

/// `ValidateObjectMeta` (core's wrapper): for a new object, or the whole object on updates that revalidate it.
pub fn validate_object_meta(meta: &ObjectMeta, namespaced: bool, rule: NameRule) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = meta.name.as_deref().unwrap_or("");
    let generate = meta.generate_name.as_deref().unwrap_or("");
    if !generate.is_empty() {
        errs.extend(check("metadata.generateName", generate, rule.check(generate, true)));
    }
    if name.is_empty() {
        errs.push(FieldError::required("metadata.name", "name or generateName is required"));
    } else {
        errs.extend(check("metadata.name", name, rule.check(name, false)));
    }
    let ns = meta.namespace.as_deref().unwrap_or("");
    if namespaced {
        if ns.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            errs.extend(check("metadata.namespace", ns, is_dns1123_label(ns)));
        }
    } else if !ns.is_empty() {
        errs.push(FieldError::forbidden("metadata.namespace", "not allowed on this type"));
    }
    errs.extend(nonnegative(meta.generation.unwrap_or(0), "metadata.generation"));
    errs.extend(validate_common(meta));
    let finalizers = meta.finalizers.as_deref().unwrap_or_default();
    errs.extend(validate_finalizers(finalizers, "metadata.finalizers"));
    errs.extend(kube_finalizer_names(finalizers));
    errs
}

/// Go's `time.Time.String()` of a `metav1.Time` (second precision, UTC).
fn go_time(t: Option<&Time>) -> BadValue {
    match t {
        None => BadValue::Str("null".into()),
        Some(t) => BadValue::Raw(t.0.strftime("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()),
    }
}

/// `ValidateObjectMetaUpdate` (core's wrapper).
pub fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let new_finalizers = new.finalizers.as_deref().unwrap_or_default();
    if old.deletion_timestamp.is_some() {
        let old_finalizers = old.finalizers.as_deref().unwrap_or_default();
        let mut extra: Vec<String> = new_finalizers.iter().filter(|f| !old_finalizers.contains(f)).cloned().collect();
        extra.sort();
        extra.dedup();
        if !extra.is_empty() {
            let list: Vec<String> = extra.iter().map(|f| go_quote(f)).collect();
            errs.push(FieldError::forbidden(
                "metadata.finalizers",
                format!("no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}", list.join(", ")),
            ));
        }
    }
    let rv = new.resource_version.as_deref().unwrap_or("");
    if rv.is_empty() {
        errs.push(FieldError::invalid("metadata.resourceVersion", rv, "must be specified for an update"));
    }
    let (ng, og) = (new.generation.unwrap_or(0), old.generation.unwrap_or(0));
    if ng < og {
        errs.push(FieldError::invalid("metadata.generation", ng, "must not be decremented"));
    }
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    for (field, n, o) in [("name", &new.name, &old.name), ("namespace", &new.namespace, &old.namespace), ("uid", &new.uid, &old.uid)] {
        if s(n) != s(o) {
            errs.push(FieldError::invalid(format!("metadata.{field}"), s(n), IMMUTABLE));
        }
    }
    if new.creation_timestamp != old.creation_timestamp {
        errs.push(FieldError::invalid("metadata.creationTimestamp", go_time(new.creation_timestamp.as_ref()), IMMUTABLE));
    }
    if new.deletion_timestamp != old.deletion_timestamp {
        errs.push(FieldError::invalid("metadata.deletionTimestamp", go_time(new.deletion_timestamp.as_ref()), IMMUTABLE));
    }
    if new.deletion_grace_period_seconds != old.deletion_grace_period_seconds {
        let v = new.deletion_grace_period_seconds.map_or(BadValue::Str("null".into()), BadValue::Int);
        errs.push(FieldError::invalid("metadata.deletionGracePeriodSeconds", v, IMMUTABLE));
    }
    errs.extend(validate_common(new));
    errs.extend(kube_finalizer_names(new_finalizers));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(v: serde_json::Value) -> ObjectMeta {
        serde_json::from_value(v).expect("valid metadata")
    }

    fn texts(errs: Vec<FieldError>) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn service_names_are_dns1035_labels() {
        assert_eq!(
            texts(validate_object_meta(&meta(json!({"name": "1abc", "namespace": "default"})), true, NameRule::Dns1035Label)),
            ["metadata.name: Invalid value: \"1abc\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]
        );
        assert_eq!(
            texts(validate_object_meta(&meta(json!({"name": "a".repeat(64), "namespace": "default"})), true, NameRule::Dns1035Label)),
            [format!("metadata.name: Invalid value: \"{}\": must be no more than 63 characters", "a".repeat(64))]
        );
    }

    #[test]
    fn name_or_generate_name_is_required() {
        assert_eq!(
            texts(validate_object_meta(&meta(json!({"namespace": "default"})), true, NameRule::Dns1123Subdomain)),
            ["metadata.name: Required value: name or generateName is required"]
        );
        // Name generation happens before validation, so a generateName alone still needs the name.
        let errs = texts(validate_object_meta(&meta(json!({"generateName": "web-", "name": "web-x1z2a", "namespace": "d"})), true, NameRule::Dns1035Label));
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(
            texts(validate_object_meta(&meta(json!({"generateName": "Web-", "name": "web-x", "namespace": "d"})), true, NameRule::Dns1123Subdomain)),
            ["metadata.generateName: Invalid value: \"Web-\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]
        );
    }

    #[test]
    fn namespace_rules() {
        assert_eq!(texts(validate_object_meta(&meta(json!({"name": "x"})), true, NameRule::Dns1123Subdomain)), ["metadata.namespace: Required value"]);
        assert_eq!(
            texts(validate_object_meta(&meta(json!({"name": "x", "namespace": "d"})), false, NameRule::Dns1123Label)),
            ["metadata.namespace: Forbidden: not allowed on this type"]
        );
        assert_eq!(texts(validate_object_meta(&meta(json!({"name": "a.b"})), false, NameRule::Dns1123Label)), ["metadata.name: Invalid value: \"a.b\": must not contain dots"]);
    }

    #[test]
    fn labels_and_annotations() {
        let errs = texts(validate_object_meta(&meta(json!({"name": "x", "namespace": "d", "labels": {"app": "-x"}, "annotations": {"a b": "v"}})), true, NameRule::Dns1123Subdomain));
        assert_eq!(errs, [
            "metadata.labels: Invalid value: \"-x\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            "metadata.annotations: Invalid value: \"a b\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ]);
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        assert_eq!(
            texts(validate_object_meta(&meta(json!({"name": "x", "namespace": "d", "annotations": {"k": big}})), true, NameRule::Dns1123Subdomain)),
            ["metadata.annotations: Too long: may not be more than 262144 bytes"]
        );
    }

    #[test]
    fn finalizers_and_owner_references() {
        let errs = texts(validate_object_meta(
            &meta(json!({"name": "x", "namespace": "d", "finalizers": ["orphan", "foregroundDeletion", "custom"],
                         "ownerReferences": [{"apiVersion": "", "kind": "ReplicaSet", "name": "rs", "uid": ""}]})),
            true,
            NameRule::Dns1123Subdomain,
        ));
        assert_eq!(errs, [
            "metadata.ownerReferences.apiVersion: Invalid value: \"\": version must not be empty",
            "metadata.ownerReferences.uid: Invalid value: \"\": must not be empty",
            "metadata.finalizers: Invalid value: []string{\"orphan\", \"foregroundDeletion\", \"custom\"}: finalizer orphan and foregroundDeletion cannot be both set",
            "metadata.finalizers[2]: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified",
        ]);
    }

    #[test]
    fn update_immutables() {
        let old = meta(json!({"name": "x", "namespace": "d", "uid": "u1", "resourceVersion": "5", "generation": 3, "deletionTimestamp": "2024-01-01T00:00:00Z"}));
        let new = meta(json!({"name": "y", "namespace": "d", "uid": "u1", "generation": 2, "finalizers": ["example.com/f"], "deletionTimestamp": "2024-01-01T00:00:00Z"}));
        assert_eq!(texts(validate_object_meta_update(&new, &old)), [
            "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/f\"}",
            "metadata.resourceVersion: Invalid value: \"\": must be specified for an update",
            "metadata.generation: Invalid value: 2: must not be decremented",
            "metadata.name: Invalid value: \"y\": field is immutable",
        ]);
    }
}
