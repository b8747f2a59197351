//! The patch formats the API accepts: JSON merge patch (RFC 7386), JSON
//! patch (RFC 6902) and Kubernetes strategic merge patch.

mod json_patch;
pub mod managed;
mod merge;
mod strategic;
mod strategy;

pub use json_patch::json_patch;
pub use merge::json_merge_patch;
pub use strategic::strategic_merge_patch;
pub use strategy::{ListStrategy, list_strategy};

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document itself is malformed.
    #[error("{0}")]
    Invalid(String),
    /// A JSON patch operation failed (missing path, failed test, ...).
    #[error("{0}")]
    Operation(String),
}
