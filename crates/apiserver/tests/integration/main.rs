//! In-process API server tests: a real server on loopback over an in-memory
//! store, driven by kube-rs and raw HTTP requests.

mod harness;
mod semantics;
mod transport;
