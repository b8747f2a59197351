//! The generic registry: API semantics on top of the store for every kind.
//!
//! Reads decode stored JSON and stamp `resourceVersion` from the store
//! revision; writes run the upstream sequence (system metadata, defaulting,
//! validation, allocation, managed fields) and use the store's revision
//! precondition for optimistic concurrency, retrying read-modify-write
//! operations (patches, deletes) when they raced another writer.

mod delete;
mod list;
mod watch;
mod write;

pub use delete::{DeleteOptions, DeleteOutcome};
pub use list::{ListOutcome, ListParams};
pub use watch::{WatchEvent, WatchParams, WatchStart};
pub use write::{PatchType, WriteOutcome, object_to_scale};


use crate::alloc::{self, AllocError, AllocTxn, Allocators};
use crate::object;
use portico_api::resources::ResourceDef;
use portico_api::status::ApiError;
use portico_store::{KeyValue, SharedStore, StoreError};
use serde_json::Value;

/// How many times a read-modify-write is retried after losing a race.
const MAX_CONFLICT_RETRIES: usize = 16;

/// The registry over one store.
pub struct Registry {
    store: SharedStore,
    allocs: parking_lot::Mutex<Allocators>,
    service_cidrs: Vec<ipnet::IpNet>,
    node_ports: (u16, u16),
}

/// Where an object lives: its resource, namespace and name.
#[derive(Debug, Clone, Copy)]
pub struct ObjectRef<'a> {
    /// The resource.
    pub def: &'static ResourceDef,
    /// Namespace (ignored for cluster-scoped resources).
    pub namespace: Option<&'a str>,
    /// Name.
    pub name: &'a str,
}

impl Registry {
    /// A registry over `store` allocating from the given ranges (service
    /// CIDRs primary first). Call [`Registry::repair_allocations`] before serving.
    pub fn new(store: SharedStore, service_cidrs: Vec<ipnet::IpNet>, node_ports: (u16, u16)) -> Self {
        let (allocs, _) = alloc::repair(&service_cidrs, node_ports, &[]);
        Self { store, allocs: parking_lot::Mutex::new(allocs), service_cidrs, node_ports }
    }

    /// Rebuilds the IP and port allocators from the stored Services.
    pub async fn repair_allocations(&self) -> Result<(), ApiError> {
        let def = portico_api::resources::find("", "v1", "services").ok_or_else(|| ApiError::internal("no services resource"))?;
        let services = self.list(def, None, &ListParams::default()).await?.items;
        let (allocs, problems) = alloc::repair(&self.service_cidrs, self.node_ports, &services);
        for p in &problems {
            tracing::warn!(problem = %p, "allocation repair");
        }
        tracing::info!(services = services.len(), cluster_ips = allocs.ips.used(), "allocators rebuilt from stored services");
        *self.allocs.lock() = allocs;
        Ok(())
    }

    /// Allocates what a Service write needs; `None` for other kinds.
    fn allocate(&self, def: &ResourceDef, old: Option<&Value>, new: &mut Value) -> Result<Option<AllocTxn>, ApiError> {
        if def.plural != "services" || !def.group.is_empty() {
            return Ok(None);
        }
        alloc::allocate_service(&mut self.allocs.lock(), old, new).map(Some).map_err(|e| match e {
            AllocError::Invalid(errs) => ApiError::invalid(def.group, def.kind, object::name(new), &errs),
            AllocError::Internal(msg) => ApiError::internal(msg),
        })
    }

    /// Finishes an allocation: commit after a successful write, revert otherwise.
    fn settle(&self, txn: Option<AllocTxn>, success: bool) {
        if let Some(txn) = txn {
            let mut a = self.allocs.lock();
            if success { txn.commit(&mut a) } else { txn.revert(&mut a) }
        }
    }

    /// Releases what a deleted object held.
    fn released(&self, def: &ResourceDef, last: &Value) {
        if def.plural == "services" && def.group.is_empty() {
            alloc::release_service(&mut self.allocs.lock(), last);
        }
    }

    /// The underlying store.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// The store key of an object.
    pub fn key(r: &ObjectRef<'_>) -> String {
        match (r.def.namespaced, r.namespace) {
            (true, Some(ns)) => format!("{}{}/{}", r.def.key_prefix(), ns, r.name),
            _ => format!("{}{}", r.def.key_prefix(), r.name),
        }
    }

    /// The key prefix of a collection (one namespace, or all).
    pub fn collection_prefix(def: &ResourceDef, namespace: Option<&str>) -> String {
        match (def.namespaced, namespace) {
            (true, Some(ns)) => format!("{}{}/", def.key_prefix(), ns),
            _ => def.key_prefix(),
        }
    }

    /// Reads one object.
    pub async fn get(&self, r: &ObjectRef<'_>) -> Result<Value, ApiError> {
        match self.store.get(&Self::key(r)).await.map_err(store_error)? {
            Some(kv) => decode(&kv),
            None => Err(ApiError::not_found(&r.def.group_resource(), r.name)),
        }
    }

    /// Reads one object, `None` when absent.
    pub async fn try_get(&self, r: &ObjectRef<'_>) -> Result<Option<(Value, u64)>, ApiError> {
        match self.store.get(&Self::key(r)).await.map_err(store_error)? {
            Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
            None => Ok(None),
        }
    }
}

/// Decodes a stored object and stamps its `resourceVersion`.
pub fn decode(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is not valid JSON: {e}", kv.key)))?;
    object::set_meta(&mut v, "resourceVersion", Value::String(kv.mod_revision.to_string()));
    Ok(v)
}

/// Encodes an object for storage (without `resourceVersion`, which is the store's revision).
pub fn encode(obj: &Value) -> Result<bytes::Bytes, ApiError> {
    let mut v = obj.clone();
    object::remove_meta(&mut v, "resourceVersion");
    serde_json::to_vec(&v).map(bytes::Bytes::from).map_err(|e| ApiError::internal(e.to_string()))
}

/// Maps store failures that are not expected outcomes to API errors.
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Expired { requested, oldest } => {
            ApiError::expired(format!("too old resource version: {requested} ({oldest})"))
        }
        other => ApiError::internal(other.to_string()),
    }
}
