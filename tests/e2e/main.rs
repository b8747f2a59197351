//! End-to-end tests: the real `portico` binary started in its own network
//! namespace, driven by the real `kubectl` (1.32, plus 1.27 and 1.33),
//! `curl` and kube-rs. Every test starts its own cluster and removes it,
//! namespace and data dir included, even when it fails.

mod harness;

mod attach;
mod cni;
mod controllers;
mod dns;
mod durability;
mod errors;
mod hostport;
mod kube_client;
mod kubectl_apply;
mod kubectl_create;
mod node;
mod portforward;
mod proxy;
mod proxy_ipv6;
mod pty;
mod streams;
mod versions;
mod watch;
