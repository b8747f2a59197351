//! Kubernetes API semantics for Portico, free of IO and async runtimes.
//!
//! This crate knows what the resources of Service networking are (the
//! catalogue used for routing and discovery), how objects are defaulted and
//! validated with upstream's exact messages, how label and field selectors
//! match, how the patch formats kubectl sends are applied, how errors become
//! `Status` objects and how objects are printed as `meta.k8s.io/v1` Tables.
//! Everything takes values and returns values so it can be unit-tested
//! without a server.

pub mod defaults;
pub mod patch;
pub mod printing;
pub mod resources;
pub mod selectors;
pub mod status;
pub mod strict;
pub mod validation;

pub use k8s_openapi;
