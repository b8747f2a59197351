//! ClusterIP and NodePort allocation for Services, done at create/update
//! time as kube-apiserver does (not by a controller).

mod bitmap;
mod ranges;
mod service;

pub use ranges::{ClusterIpAllocator, NodePortAllocator, RangeError};
pub use service::{AllocError, AllocTxn, Allocators, allocate_service, release_service, repair};
