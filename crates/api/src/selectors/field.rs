//! Field selectors: `fields.ParseSelector`, the per-kind field-label
//! conversions of `pkg/apis/core/v1/conversion.go` (and the generic
//! fallback), and the selectable field sets of each registry strategy.

use super::SelectorError;
use crate::resources::ResourceDef;
use serde_json::Value;
use std::fmt;

/// One `field=value` or `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    /// The field label, e.g. `spec.nodeName`.
    pub field: String,
    /// The unescaped value.
    pub value: String,
    /// Whether the term is `!=`.
    pub negated: bool,
}

/// A field selector: the AND of its terms. The default matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

/// `splitTerms`: splits on commas that are not escaped with a backslash.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// `splitTerm`: the first `!=`, `==` or `=` (tried in that order at each position).
fn split_term(term: &str) -> Option<(&str, &str, &str)> {
    for (i, _) in term.char_indices() {
        for op in ["!=", "==", "="] {
            if term[i..].starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

/// `UnescapeValue`: `\\`, `\,` and `\=` are the only escapes; bare `,` or `=` are errors.
fn unescape_value(s: &str) -> Result<String, SelectorError> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => {
                    return Err(SelectorError::FieldSyntax(format!(
                        "invalid field selector: invalid escape sequence: \\{other}"
                    )));
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // Upstream formats the rune with `%v`, which prints its code point.
            ',' | '=' => {
                return Err(SelectorError::FieldSyntax(format!(
                    "invalid field selector: unescaped character in value: {}",
                    u32::from(c)
                )));
            }
            other => out.push(other),
        }
    }
    if in_slash {
        return Err(SelectorError::FieldSyntax("invalid field selector: invalid escape sequence: \\".to_owned()));
    }
    Ok(out)
}

/// `EscapeValue`, for printing a selector back.
fn escape_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace(',', "\\,").replace('=', "\\=")
}

/// How a kind's field labels are accepted: which labels, and the message for others.
enum Conversion {
    /// A kind with its own conversion func: these labels, else `field label not supported`.
    Listed(&'static [&'static str]),
    /// `runtime.DefaultMetaV1FieldSelectorConversion`: only name and namespace.
    Default,
}

const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
    // Old v1 clients' name for spec.nodeName.
    "spec.host",
];
const NODE_FIELDS: &[&str] = &["metadata.name", "spec.unschedulable"];
const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    "metadata.namespace",
    "metadata.name",
];
const NAMESPACE_FIELDS: &[&str] = &["status.phase", "metadata.name"];
const SECRET_FIELDS: &[&str] = &["type", "metadata.namespace", "metadata.name"];
const SERVICE_FIELDS: &[&str] = &["metadata.namespace", "metadata.name", "spec.clusterIP", "spec.type"];

/// The field-label conversion registered for a kind (core/v1 registers some; apps,
/// discovery, networking and coordination register none).
fn conversion(rd: &ResourceDef) -> Conversion {
    match (rd.group, rd.kind) {
        ("", "Pod") => Conversion::Listed(POD_FIELDS),
        ("", "Node") => Conversion::Listed(NODE_FIELDS),
        ("", "Event") => Conversion::Listed(EVENT_FIELDS),
        ("", "Namespace") => Conversion::Listed(NAMESPACE_FIELDS),
        ("", "Secret") => Conversion::Listed(SECRET_FIELDS),
        ("", "Service") => Conversion::Listed(SERVICE_FIELDS),
        _ => Conversion::Default,
    }
}

fn str_at<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn bool_at(obj: &Value, ptr: &str) -> String {
    obj.pointer(ptr).and_then(Value::as_bool).unwrap_or(false).to_string()
}

/// The value of a field label in the object's selectable field set
/// (`GetAttrs`/`ToSelectableFields`); labels outside the set read `""`.
fn field_value(rd: &ResourceDef, obj: &Value, field: &str) -> String {
    match field {
        "metadata.name" => return str_at(obj, "/metadata/name").to_owned(),
        // Cluster-scoped kinds leave metadata.namespace out of their field set.
        "metadata.namespace" if rd.namespaced => return str_at(obj, "/metadata/namespace").to_owned(),
        _ => {}
    }
    let value = match (rd.group, rd.kind, field) {
        ("", "Pod", "spec.nodeName" | "spec.host") => str_at(obj, "/spec/nodeName"),
        ("", "Pod", "spec.restartPolicy") => str_at(obj, "/spec/restartPolicy"),
        ("", "Pod", "spec.schedulerName") => str_at(obj, "/spec/schedulerName"),
        ("", "Pod", "spec.serviceAccountName") => str_at(obj, "/spec/serviceAccountName"),
        ("", "Pod", "spec.hostNetwork") => return bool_at(obj, "/spec/hostNetwork"),
        ("", "Pod", "status.phase") => str_at(obj, "/status/phase"),
        ("", "Pod", "status.podIP") => match obj.pointer("/status/podIPs/0/ip").and_then(Value::as_str) {
            Some(ip) => ip,
            None => str_at(obj, "/status/podIP"),
        },
        ("", "Pod", "status.nominatedNodeName") => str_at(obj, "/status/nominatedNodeName"),
        ("", "Node", "spec.unschedulable") => return bool_at(obj, "/spec/unschedulable"),
        ("", "Namespace", "status.phase") => str_at(obj, "/status/phase"),
        ("", "Secret", "type") => str_at(obj, "/type"),
        ("", "Service", "spec.clusterIP") => str_at(obj, "/spec/clusterIP"),
        ("", "Service", "spec.type") => str_at(obj, "/spec/type"),
        ("", "Event", f) => match f.strip_prefix("involvedObject.") {
            Some(sub) => obj.get("involvedObject").and_then(|o| o.get(sub)).and_then(Value::as_str).unwrap_or(""),
            None => match f {
                "reason" => str_at(obj, "/reason"),
                "type" => str_at(obj, "/type"),
                // The core/v1 field name for the reporting controller.
                "reportingComponent" => str_at(obj, "/reportingComponent"),
                "source" => match str_at(obj, "/source/component") {
                    "" => str_at(obj, "/reportingComponent"),
                    c => c,
                },
                _ => "",
            },
        },
        ("apps", "ReplicaSet", "status.replicas") => {
            return obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0).to_string();
        }
        _ => "",
    };
    value.to_owned()
}

impl FieldSelector {
    /// A selector that matches everything.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses the `fieldSelector` syntax (`fields.ParseSelector`): comma-joined
    /// `k=v`, `k==v`, `k!=v` terms; `\,`, `\=` and `\\` escape values. Terms are
    /// kept sorted as upstream keeps them. No whitespace is trimmed.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(SelectorError::FieldSyntax(format!("invalid selector: '{s}'; can't understand '{part}'")));
            };
            let value = unescape_value(rhs)?;
            terms.push(FieldTerm { field: lhs.to_owned(), value, negated: op == "!=" });
        }
        Ok(Self { terms })
    }

    /// Checks every field label against the resource's field-label conversion,
    /// failing on the first unsupported one (in term order) with upstream's message.
    pub fn validate_for(&self, rd: &ResourceDef) -> Result<(), SelectorError> {
        let conversion = conversion(rd);
        for term in &self.terms {
            match &conversion {
                Conversion::Listed(fields) if !fields.contains(&term.field.as_str()) => {
                    return Err(SelectorError::FieldLabelNotSupported(term.field.clone()));
                }
                Conversion::Default if !matches!(term.field.as_str(), "metadata.name" | "metadata.namespace") => {
                    return Err(SelectorError::UnknownField(term.field.clone()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether the object's selectable fields satisfy every term (a missing field reads `""`).
    pub fn matches(&self, rd: &ResourceDef, obj: &Value) -> bool {
        self.terms.iter().all(|t| (field_value(rd, obj, &t.field) == t.value) != t.negated)
    }

    /// Whether the selector places no restriction.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The terms, sorted as parsed.
    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    /// The value a field must equal for this selector to match, if one term requires it.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms.iter().find(|t| t.field == field && !t.negated).map(|t| t.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    /// `Selector.String()`: terms joined by `,`, values escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if t.negated { "!=" } else { "=" };
            write!(f, "{}{op}{}", t.field, escape_value(&t.value))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
