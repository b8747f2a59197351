//! Label and field selectors (interim equality-only forms until the api crate's land).

use portico_api::resources::ResourceDef;
use serde_json::{Map, Value};

/// A label selector.
#[derive(Debug, Clone, Default)]
pub struct LabelSelector(Vec<(String, String)>);

/// A selector that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(String);

impl LabelSelector {
    /// Parses `k=v,k2=v2`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| SelectorError(format!("unsupported selector {part}")))?;
            out.push((k.trim().to_owned(), v.trim_start_matches('=').trim().to_owned()));
        }
        Ok(Self(out))
    }
    /// Whether the labels match.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        self.0.iter().all(|(k, v)| labels.get(k).and_then(Value::as_str) == Some(v))
    }
}

/// A field selector.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, String)>);

impl FieldSelector {
    /// Parses `k=v,k2=v2`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        LabelSelector::parse(s).map(|l| Self(l.0))
    }
    /// Checks the fields are supported for the resource.
    pub fn validate_for(&self, _def: &ResourceDef) -> Result<(), SelectorError> {
        Ok(())
    }
    /// Whether an object matches.
    pub fn matches(&self, _def: &ResourceDef, obj: &Value) -> bool {
        self.0.iter().all(|(k, v)| {
            let mut cur = obj;
            for seg in k.split('.') {
                cur = cur.get(seg).unwrap_or(&Value::Null);
            }
            cur.as_str().unwrap_or("") == v
        })
    }
}
