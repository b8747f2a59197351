//! Label selectors: apimachinery's `labels.Parse`, `labels.NewRequirement`,
//! `metav1.LabelSelectorAsSelector` and `labels.SelectorFromSet`.

use super::SelectorError;
use super::qualified_name::{is_qualified_name, is_valid_label_value};
use crate::status::{BadValue, FieldError};
use serde_json::{Map, Value};
use std::fmt;

/// How a requirement relates a label to its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `k in (a,b)`: the label exists and has one of the values.
    In,
    /// `k notin (a,b)`: the label is absent or has none of the values.
    NotIn,
    /// `k=v`.
    Equals,
    /// `k==v` (same as `=`).
    DoubleEquals,
    /// `k!=v`: the label is absent or differs.
    NotEquals,
    /// `k`: the label exists.
    Exists,
    /// `!k`: the label does not exist.
    DoesNotExist,
    /// `k>n`: the label is an integer greater than n.
    GreaterThan,
    /// `k<n`: the label is an integer less than n.
    LessThan,
}

/// One `key operator values` term of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

/// A label selector: the AND of its requirements.
///
/// The default (and [`LabelSelector::empty`]) matches everything;
/// [`LabelSelector::nothing`] (what a missing `metav1.LabelSelector` means)
/// matches no object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl Requirement {
    /// `labels.NewRequirement`: validates the key, the number of values for the
    /// operator and each value, reporting every problem at once.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self, SelectorError> {
        let mut errs = Vec::new();
        let key_errs = is_qualified_name(key);
        if !key_errs.is_empty() {
            errs.push(FieldError::invalid("key", key, key_errs.join("; ")));
        }
        // Upstream prints the values with `%#v`; an empty list arrives as a nil slice.
        let shown = || {
            if values.is_empty() { BadValue::Raw("[]string(nil)".to_owned()) } else { BadValue::string_slice(&values) }
        };
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                errs.push(FieldError::invalid(
                    "values",
                    shown(),
                    "for 'in', 'notin' operators, values set can't be empty",
                ));
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if values.len() != 1 => {
                errs.push(FieldError::invalid(
                    "values",
                    shown(),
                    "exact-match compatibility requires one single value",
                ));
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                errs.push(FieldError::invalid(
                    "values",
                    shown(),
                    "values set must be empty for exists and does not exist",
                ));
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(FieldError::invalid(
                        "values",
                        shown(),
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(FieldError::invalid(
                            format!("values[{i}]"),
                            v.as_str(),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let value_errs = is_valid_label_value(v);
            if !value_errs.is_empty() {
                errs.push(FieldError::invalid(format!("values[{i}][{key}]"), v.as_str(), value_errs.join("; ")));
            }
        }
        if errs.is_empty() {
            Ok(Self { key: key.to_owned(), operator, values })
        } else {
            Err(SelectorError::InvalidRequirement(errs))
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, as given.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn has_value(&self, v: &str) -> bool {
        self.values.iter().any(|x| x == v)
    }

    /// Whether a set of labels satisfies this requirement.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        let value = labels.get(&self.key).and_then(Value::as_str);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => value.is_some_and(|v| self.has_value(v)),
            Operator::NotIn | Operator::NotEquals => value.is_none_or(|v| !self.has_value(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(actual), [bound]) = (value.and_then(|v| v.parse::<i64>().ok()), self.values.as_slice())
                else {
                    return false;
                };
                let Ok(bound) = bound.parse::<i64>() else { return false };
                if self.operator == Operator::GreaterThan { actual > bound } else { actual < bound }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// Upstream's `Requirement.String()`: `!k`, `k`, `k=v`, `k!=v`, `k in (a,b)` (values sorted).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            Operator::DoesNotExist => return write!(f, "!{}", self.key),
            Operator::Exists => return write!(f, "{}", self.key),
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
        };
        let mut values: Vec<&str> = self.values.iter().map(String::as_str).collect();
        values.sort_unstable();
        let joined = values.join(",");
        if matches!(self.operator, Operator::In | Operator::NotIn) {
            write!(f, "{}{op}({joined})", self.key)
        } else {
            write!(f, "{}{op}{joined}", self.key)
        }
    }
}

impl LabelSelector {
    /// A selector that matches everything.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A selector that matches nothing (`labels.Nothing()`).
    pub fn nothing() -> Self {
        Self { requirements: Vec::new(), nothing: true }
    }

    /// A selector of the given requirements, sorted by key as upstream keeps them.
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Self { requirements, nothing: false }
    }

    /// Parses the `labelSelector` query syntax (`labels.Parse`), with upstream's error messages.
    ///
    /// ```text
    /// <selector>    ::= <requirement> | <requirement> "," <selector>
    /// <requirement> ::= [!] KEY [ ("in" | "notin") "(" VALUES ")" | ("=" | "==" | "!=" | ">" | "<") VALUE ]
    /// ```
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        super::label_parser::parse(s).map(Self::from_requirements).map_err(SelectorError::LabelSyntax)
    }

    /// `metav1.LabelSelectorAsSelector` of a `metav1.LabelSelector` object:
    /// `null` selects nothing, `{}` everything; `matchLabels` and
    /// `matchExpressions` (`In`, `NotIn`, `Exists`, `DoesNotExist`) are ANDed.
    pub fn from_label_selector_json(sel: &Value) -> Result<Self, SelectorError> {
        let Some(obj) = sel.as_object() else {
            return Ok(Self::nothing());
        };
        let match_labels = obj.get("matchLabels").and_then(Value::as_object);
        let expressions = obj.get("matchExpressions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
        let mut requirements = Vec::new();
        if let Some(labels) = match_labels {
            let mut keys: Vec<&String> = labels.keys().collect();
            keys.sort_unstable();
            for k in keys {
                let v = labels.get(k).and_then(Value::as_str).unwrap_or("");
                requirements.push(Requirement::new(k, Operator::Equals, vec![v.to_owned()])?);
            }
        }
        for expr in expressions {
            let op = expr.get("operator").and_then(Value::as_str).unwrap_or("");
            let operator = match op {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(SelectorError::InvalidOperator(other.to_owned())),
            };
            let values: Vec<String> = expr
                .get("values")
                .and_then(Value::as_array)
                .map(|vs| vs.iter().map(|v| v.as_str().unwrap_or("").to_owned()).collect())
                .unwrap_or_default();
            let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
            requirements.push(Requirement::new(key, operator, values)?);
        }
        Ok(Self::from_requirements(requirements))
    }

    /// `labels.SelectorFromSet` of a string map such as a Service's `spec.selector`:
    /// every pair must match exactly; an empty map matches everything. Not validated.
    pub fn from_map(map: &Map<String, Value>) -> Self {
        let requirements = map
            .iter()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                operator: Operator::Equals,
                values: vec![v.as_str().unwrap_or("").to_owned()],
            })
            .collect();
        Self::from_requirements(requirements)
    }

    /// Whether the selector places no restriction (`Empty()` upstream; false for [`Self::nothing`]).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether this selector can match no object at all ([`Self::nothing`]).
    pub fn matches_nothing(&self) -> bool {
        self.nothing
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether a set of labels (`metadata.labels`) satisfies every requirement.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// [`Self::matches`] on an object's `metadata.labels` (absent labels are an empty set).
    pub fn matches_object(&self, obj: &Value) -> bool {
        match obj.pointer("/metadata/labels").and_then(Value::as_object) {
            Some(labels) => self.matches(labels),
            None => self.matches(&Map::new()),
        }
    }

    /// The single value a label must have for this selector to match, if it requires one
    /// (`RequiresExactMatch`: `=`, `==`, or `in` with one value).
    pub fn requires_exact_match(&self, label: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == label)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical string form (`Selector.String()`): requirements joined by `,`; empty for nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
