//! The Portico node agent (the kubelet's job for a cluster whose pods are processes).
//!
//! It registers the Node and keeps its Lease fresh, runs the pods scheduled to
//! it — each pod a network namespace wired by CNI with its own hostname,
//! `/etc/hosts` and `/etc/resolv.conf`, each container a host process inside
//! those namespaces — probes them, reports their status, and serves the logs,
//! exec and port-forward streams the API server proxies to it. It learns the
//! world only through the Kubernetes API (list + watch), like every Portico
//! component except the API server.

pub mod agent;
pub mod attach;
pub mod cni;
pub mod container;
pub mod dns_files;
pub mod env_vars;
pub mod exec_spdy;
pub mod exec_ws;
pub mod host;
pub mod images;
pub mod nsexec;
pub mod port_forward;
pub mod probe;
pub mod remote_command;
pub mod sandbox;
pub mod server;
pub mod spdy;
pub mod worker;
