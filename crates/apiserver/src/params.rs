//! Query parameters and content negotiation.

use portico_api::status::ApiError;
use std::collections::HashMap;

/// Decoded query string (last value wins, as Go's `url.Values.Get`... first wins there; we keep the first).
#[derive(Debug, Clone, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        let mut map = HashMap::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.entry(percent_decode(k)).or_insert_with(|| percent_decode(v));
        }
        Self(map)
    }
    /// A parameter's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    /// A boolean parameter (`true`/`1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | "True"))
    }
    /// A non-negative integer parameter.
    pub fn number(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| ApiError::bad_request(format!("invalid {key} {v:?}"))),
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let hex = if b == b'%' && i + 2 < bytes.len() {
            std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        } else {
            None
        };
        match (b, hex) {
            (_, Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (other, None) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How unknown fields in a request body are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Reject with 400.
    Strict,
    /// Accept and return a `Warning` header.
    Warn,
    /// Accept silently.
    Ignore,
}

impl FieldValidation {
    /// From the query; upstream's default is `Warn`.
    pub fn from_query(q: &Query) -> Result<Self, ApiError> {
        match q.get("fieldValidation") {
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Strict") => Ok(Self::Strict),
            Some("Ignore") => Ok(Self::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}. Supported values are: Strict, Warn, Ignore"
            ))),
        }
    }
}

/// Options shared by create, update and patch.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// `dryRun=All`: validate and default, but store nothing.
    pub dry_run: bool,
    /// The field manager recorded in `managedFields`.
    pub field_manager: String,
    /// Unknown-field handling.
    pub field_validation: FieldValidation,
    /// `force` for server-side apply.
    pub force: bool,
    /// Set for server-side apply, which records its own `managedFields`.
    pub apply: bool,
}

impl WriteOptions {
    /// From the query and the request's user agent.
    pub fn from_query(q: &Query, user_agent: &str) -> Result<Self, ApiError> {
        let dry_run = match q.get("dryRun") {
            None | Some("") => false,
            Some("All") => true,
            Some(other) => return Err(ApiError::bad_request(format!("Invalid dry run value: {other:?}; supported values: \"All\""))),
        };
        let field_manager = match q.get("fieldManager") {
            Some(m) if !m.is_empty() => {
                if m.len() > 128 {
                    return Err(ApiError::bad_request("fieldManager: Too long: may not be more than 128 bytes"));
                }
                m.to_owned()
            }
            // Upstream derives the manager from the user agent's program name.
            _ => user_agent.split('/').next().unwrap_or("unknown").to_owned(),
        };
        Ok(Self { dry_run, field_manager, field_validation: FieldValidation::from_query(q)?, force: q.flag("force"), apply: false })
    }
}

/// What the client accepts, reduced to what we can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Plain JSON objects.
    Json,
    /// `meta.k8s.io/v1` Table.
    Table,
    /// `meta.k8s.io/v1` PartialObjectMetadata(List).
    PartialMetadata,
    /// YAML.
    Yaml,
}

impl Accept {
    /// Picks the first media type in the header we can serve.
    pub fn from_header(accept: Option<&str>) -> Result<Self, ApiError> {
        let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else { return Ok(Self::Json) };
        for item in accept.split(',') {
            let mut parts = item.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
            let param = |k: &str| params.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v);
            match media {
                "application/json" | "*/*" | "application/*" | "application/json-seq" => {
                    match (param("as"), param("g"), param("v")) {
                        (Some("Table"), Some("meta.k8s.io"), Some("v1" | "v1beta1")) => return Ok(Self::Table),
                        (Some("PartialObjectMetadata" | "PartialObjectMetadataList"), Some("meta.k8s.io"), Some("v1")) => {
                            return Ok(Self::PartialMetadata);
                        }
                        (Some(_), _, _) => continue,
                        _ => return Ok(Self::Json),
                    }
                }
                "application/yaml" => return Ok(Self::Yaml),
                // We answer protobuf requests in JSON: clients offer JSON as the alternative.
                "application/vnd.kubernetes.protobuf" => continue,
                _ => continue,
            }
        }
        if accept.contains("application/vnd.kubernetes.protobuf") {
            return Ok(Self::Json);
        }
        Err(ApiError::not_acceptable(format!("only the following media types are accepted: application/json, application/yaml (got {accept})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_get_accept_is_table() {
        let a = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(Accept::from_header(Some(a)).ok(), Some(Accept::Table));
        assert_eq!(Accept::from_header(Some("application/vnd.kubernetes.protobuf,application/json")).ok(), Some(Accept::Json));
        assert_eq!(Accept::from_header(None).ok(), Some(Accept::Json));
    }

    #[test]
    fn query_decodes_selectors() {
        let q = Query::parse(Some("labelSelector=app%3Dweb%2Ctier+in+%28a%29&limit=500"));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert_eq!(q.number("limit").ok().flatten(), Some(500));
    }
}
