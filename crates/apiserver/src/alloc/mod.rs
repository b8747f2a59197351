//! ClusterIP and NodePort allocation for Services, done at create/update
//! time as kube-apiserver does (not by a controller).

mod bitmap;
mod families;
mod ranges;
mod repair;
mod service;
mod spec;

pub use ranges::{ClusterIpAllocator, NodePortAllocator, RangeError, ServiceIpRanges};
pub use repair::repair;
pub use service::{AllocError, AllocTxn, Allocators, allocate_service, release_service};
