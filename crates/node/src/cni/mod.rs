//! The Container Network Interface: spec types, the runtime that runs plugin
//! chains for pods, and Portico's built-in bridge + host-local plugin.

pub mod hostport;
pub mod ipam;
pub mod link;
pub mod plugin;
pub mod runtime;

use serde::{Deserialize, Serialize};

/// The spec versions Portico's plugin and runtime speak, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The newest spec version.
pub const CURRENT_VERSION: &str = "1.1.0";

/// A CNI error as plugins print it on stdout (spec §"Error").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, thiserror::Error)]
#[error("{msg}{}", if details.is_empty() { String::new() } else { format!(": {details}") })]
pub struct CniError {
    /// The spec version of the error document.
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    /// Well-known codes 1–11, 50–51; 100+ plugin-specific.
    pub code: u32,
    /// A short message.
    pub msg: String,
    /// Longer details.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    /// An error with a code, message and details.
    pub fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> Self {
        Self { cni_version: CURRENT_VERSION.to_owned(), code, msg: msg.into(), details: details.into() }
    }
}

/// Well-known error codes.
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid required environment variables.
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content.
    pub const DECODING_FAILURE: u32 = 6;
    /// Invalid network config.
    pub const INVALID_NETWORK_CONFIG: u32 = 7;
    /// Try again later.
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// Generic plugin failure (as the reference bridge plugin uses).
    pub const PLUGIN_FAILURE: u32 = 999;
}

/// An interface in an ADD result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// Hardware address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// The netns path, for interfaces inside the container.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// An IP configuration in an ADD result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct IpConfig {
    /// Address in CIDR notation.
    pub address: String,
    /// Gateway address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route in a result or an IPAM configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Route {
    /// Destination CIDR.
    pub dst: String,
    /// Next hop (default: the gateway).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gw: String,
}

/// An ADD result (spec §5).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct AddResult {
    /// Spec version.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Interfaces created.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// Routes installed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings.
    #[serde(default)]
    pub dns: serde_json::Value,
}

/// Checks a container ID as the spec requires: non-empty, alphanumeric first, then `[A-Za-z0-9_.-]`.
pub fn valid_container_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric()) && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Checks that `version` is one Portico speaks; the error is the spec's code 1.
pub fn check_version(version: &str) -> Result<(), CniError> {
    if SUPPORTED_VERSIONS.contains(&version) {
        return Ok(());
    }
    Err(CniError::new(
        code::INCOMPATIBLE_VERSION,
        "incompatible CNI versions",
        format!("config is {:?}, plugin supports [{}]", version, SUPPORTED_VERSIONS.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(" ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids() {
        assert!(valid_container_id("abc123"));
        assert!(valid_container_id("a_b.c-d"));
        assert!(!valid_container_id(""));
        assert!(!valid_container_id("-abc"));
        assert!(!valid_container_id("a/b"));
    }

    #[test]
    fn version_errors_name_the_config_version() {
        let e = check_version("9.9.9").expect_err("unsupported");
        assert_eq!(e.code, 1);
        assert_eq!(e.msg, "incompatible CNI versions");
        assert!(e.details.starts_with("config is \"9.9.9\", plugin supports [\"0.3.0\""), "{}", e.details);
    }
}
