//! The nftables backend: a pure renderer from the ServiceMap to ruleset
//! objects (`ruleset`), a planner that turns the difference between what is
//! in the kernel and what should be into one `nft -f` transaction (`plan`),
//! the allocator of endpoint slots in the shared maps (`slots`), the
//! spreading of Service ports over tables (`shards`), and the thin
//! edges that run `nft` (`apply`) or send incremental transactions to the
//! kernel over netlink (`netlink`).

pub mod apply;
pub mod netlink;
pub mod plan;
pub mod ruleset;
pub mod shards;
pub mod slots;

#[cfg(test)]
mod golden;
