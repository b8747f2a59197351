//! Protobuf request bodies (interim: not yet decoded).

use portico_api::status::ApiError;
use serde_json::Value;

/// Decodes a `k8s\0`-enveloped protobuf body.
pub fn decode(_bytes: &[u8]) -> Result<Value, ApiError> {
    Err(ApiError::unsupported_media_type("application/vnd.kubernetes.protobuf"))
}
