//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), which
//! `kubectl create service|namespace|configmap|secret|deployment` send: the
//! `k8s\0` magic, a `runtime.Unknown` envelope naming apiVersion and kind,
//! and the typed message, decoded here into the JSON the rest of the server
//! works on.

mod schema;
pub mod wire;

use portico_api::status::ApiError;
use serde_json::{Value, json};
use wire::{Raw, Reader};

const MAGIC: &[u8] = b"k8s\0";

/// Decodes a protobuf body into the equivalent JSON object.
pub fn decode(bytes: &[u8]) -> Result<Value, ApiError> {
    let body = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| ApiError::bad_request("provided protobuf body does not start with the k8s\\0 prefix"))?;
    let bad = |e: wire::WireError| ApiError::bad_request(e.to_string());
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    let mut r = Reader::new(body);
    while let Some((tag, v)) = r.next_field().map_err(bad)? {
        match (tag, v) {
            (1, Raw::Bytes(tm)) => {
                let mut tr = Reader::new(tm);
                while let Some((t, tv)) = tr.next_field().map_err(bad)? {
                    if let Raw::Bytes(s) = tv {
                        let s = String::from_utf8_lossy(s).into_owned();
                        match t {
                            1 => api_version = s,
                            2 => kind = s,
                            _ => {}
                        }
                    }
                }
            }
            (2, Raw::Bytes(b)) => raw = Some(b),
            _ => {}
        }
    }
    let (_, _, msg) = schema::ROOTS
        .iter()
        .find(|(av, k, _)| *av == api_version && *k == kind)
        .ok_or_else(|| ApiError::unsupported_media_type(&format!("application/vnd.kubernetes.protobuf for {api_version} {kind}")))?;
    let mut obj = wire::message(msg, raw.unwrap_or_default(), 0).map_err(bad)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod encoded_tests;
#[cfg(test)]
mod tests;
