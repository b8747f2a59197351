//! Label and field selectors: parsing with upstream's syntax and messages,
//! validation of field labels per resource, and matching against objects.

pub mod field;
pub mod label;
mod label_parser;
pub mod qualified_name;

pub use field::FieldSelector;
pub use label::{LabelSelector, Operator, Requirement};

use crate::status::{FieldError, aggregate_message, go_quote};

/// Why a selector was rejected. `Display` gives the text kube-apiserver puts in
/// the `BadRequest` Status (label syntax errors already carry their
/// `unable to parse requirement: ` prefix where upstream adds one).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SelectorError {
    /// A `labelSelector` string that `labels.Parse` rejects.
    #[error("{0}")]
    LabelSyntax(String),
    /// A requirement with an invalid key, value count or value (`labels.NewRequirement`).
    #[error("{}", aggregate_message(.0))]
    InvalidRequirement(Vec<FieldError>),
    /// A `matchExpressions` operator other than `In`, `NotIn`, `Exists`, `DoesNotExist`.
    #[error("{} is not a valid label selector operator", go_quote(.0))]
    InvalidOperator(String),
    /// A `fieldSelector` string that `fields.ParseSelector` rejects.
    #[error("{0}")]
    FieldSyntax(String),
    /// A field label the resource's field-label conversion does not accept.
    #[error("field label not supported: {0}")]
    FieldLabelNotSupported(String),
    /// A field label of a resource that has no conversion of its own (only
    /// `metadata.name` and `metadata.namespace` are selectable).
    #[error("{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"", go_quote(.0))]
    UnknownField(String),
}
