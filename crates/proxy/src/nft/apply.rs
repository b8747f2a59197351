//! Running `nft`: one script, one atomic transaction.

use std::io::Write;
use std::process::{Command, Stdio};

/// Why `nft` failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The binary could not be run.
    #[error("running nft: {0} (install it: apt-get install nftables)")]
    Spawn(#[source] std::io::Error),
    /// nft rejected the transaction (nothing was changed).
    #[error("nft rejected the transaction: {0}")]
    Rejected(String),
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

/// Deletes a table if it exists.
pub fn delete_table(family: &str, table: &str) -> Result<(), NftError> {
    apply(&format!("add table {family} {table}\ndelete table {family} {table}\n"))
}
