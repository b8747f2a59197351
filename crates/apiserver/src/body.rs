//! Request bodies: size limit and decoding by content type.

use portico_api::status::ApiError;
use serde_json::Value;

/// Largest request body accepted (upstream `MaxRequestBodyBytes`, 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// How a body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// JSON (also every JSON patch type).
    Json,
    /// YAML (also `apply-patch+yaml`).
    Yaml,
    /// `application/vnd.kubernetes.protobuf` with the `k8s\0` envelope.
    Protobuf,
}

impl BodyFormat {
    /// The format of a create/update body from its content type (absent means JSON).
    pub fn for_object(content_type: Option<&str>) -> Result<Self, ApiError> {
        let media = content_type.map(|c| c.split(';').next().unwrap_or("").trim()).unwrap_or("");
        match media {
            "" | "application/json" => Ok(Self::Json),
            "application/yaml" => Ok(Self::Yaml),
            "application/vnd.kubernetes.protobuf" => Ok(Self::Protobuf),
            _ => Err(ApiError::unsupported_media_type(content_type.unwrap_or(""))),
        }
    }
}

/// Decodes a body into a JSON value.
pub fn decode(format: BodyFormat, bytes: &[u8]) -> Result<Value, ApiError> {
    match format {
        BodyFormat::Json => serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(json_error(bytes, &e))),
        BodyFormat::Yaml => {
            let v: Value = serde_saphyr::from_slice(bytes)
                .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {}", first_line(&e.to_string()))))?;
            Ok(v)
        }
        BodyFormat::Protobuf => crate::protobuf_body::decode(bytes),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Go's JSON decoder wording for the errors clients see most.
fn json_error(bytes: &[u8], e: &serde_json::Error) -> String {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return "Object 'Kind' is missing in ''".to_owned();
    }
    format!("couldn't get version/kind; json parse error: {}", first_line(&e.to_string()))
}
