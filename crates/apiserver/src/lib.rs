//! Portico's Kubernetes API server.
//!
//! Serves the resources of Service networking over HTTPS the way
//! kube-apiserver does, so the real `kubectl` and kube-rs clients work
//! unchanged: discovery (legacy and aggregated), CRUD with optimistic
//! concurrency, watch, the patch formats kubectl sends, server-side
//! printing, defaulting and validation with upstream messages, and
//! ClusterIP/NodePort allocation at create time. Everything else in
//! Portico is a client of this server; only it opens the store.

pub mod alloc;
pub mod body;
pub mod bootstrap;
pub mod cidrs;
pub mod discovery;
pub mod handler;
pub mod metrics;
pub mod node_proxy;
pub mod port_forward_tunnel;
pub mod object;
pub mod params;
pub mod protobuf_body;
pub mod registry;
pub mod route;
pub mod semantics;
pub mod server;
pub mod tls;

pub use server::{Config, Running, ServerError, start};
