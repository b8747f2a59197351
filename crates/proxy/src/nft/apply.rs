//! Applying a transaction: a full sync pipes its script to `nft -f -`; an
//! incremental one goes to the kernel over netlink when the compiler knows
//! every statement, else through `nft` too. Either way all or nothing.

use super::netlink;
use std::io::Write;
use std::process::{Command, Stdio};

/// Why a transaction failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The binary could not be run.
    #[error("running nft: {0} (install it: apt-get install nftables)")]
    Spawn(#[source] std::io::Error),
    /// nft or the kernel rejected the transaction (nothing was changed).
    #[error("nft rejected the transaction: {0}")]
    Rejected(String),
    /// The netlink socket failed; the outcome may be unknown (a full resync follows).
    #[error("talking to nf_tables over netlink: {0}")]
    Netlink(#[source] std::io::Error),
}

/// Which way an incremental transaction went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// One netlink batch.
    Netlink,
    /// `nft -f -` (a statement the netlink compiler does not know).
    Nft,
}

/// Applies `script` with `nft -f -` (all or nothing).
pub fn apply(script: &str) -> Result<(), NftError> {
    let mut child = Command::new("nft").args(["-f", "-"]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().map_err(NftError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(NftError::Spawn)?;
    }
    let out = child.wait_with_output().map_err(NftError::Spawn)?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        // Keep the first lines: nft prints the offending statement with a caret.
        Err(NftError::Rejected(err.lines().take(6).collect::<Vec<_>>().join("\n")))
    }
}

/// Applies an incremental script (what `plan::diff` writes): over netlink,
/// or through `nft` when the netlink compiler does not know a statement.
pub fn apply_incremental(script: &str) -> Result<Path, NftError> {
    match netlink::compile(script) {
        Ok(tx) => match tx.apply() {
            Ok(()) => Ok(Path::Netlink),
            Err(netlink::NetlinkError::Rejected(e)) => Err(NftError::Rejected(e)),
            Err(netlink::NetlinkError::Io(e)) => Err(NftError::Netlink(e)),
        },
        Err(why) => {
            tracing::debug!(%why, "incremental sync through nft");
            apply(script).map(|()| Path::Nft)
        }
    }
}

/// Deletes a table if it exists.
pub fn delete_table(family: &str, table: &str) -> Result<(), NftError> {
    apply(&format!("add table {family} {table}\ndelete table {family} {table}\n"))
}

/// The names of the tables of `family` (`ip`, `ip6`) in the kernel (a
/// netlink dump: `nft list tables` would fetch the whole ruleset first).
pub fn tables(family: &str) -> Result<Vec<String>, NftError> {
    netlink::table_names(family).map_err(NftError::Netlink)
}
