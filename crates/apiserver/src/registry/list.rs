//! Lists with selectors and pagination.

use super::{Registry, decode, store_error};
use crate::params::Query;
use portico_api::selectors::{FieldSelector, LabelSelector};
use base64::Engine;
use portico_api::resources::ResourceDef;
use portico_api::status::ApiError;
use portico_store::ListOptions;
use serde_json::{Value, json};

/// Parsed list parameters.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
    /// Page size (0 = all).
    pub limit: usize,
    /// Where the previous page ended.
    pub continue_key: Option<String>,
}

/// A page of objects.
#[derive(Debug, Clone)]
pub struct ListOutcome {
    /// Matching objects.
    pub items: Vec<Value>,
    /// The list's `metadata` (`resourceVersion`, `continue`, `remainingItemCount`).
    pub meta: Value,
    /// The store revision the list was read at.
    pub revision: u64,
}

impl ListParams {
    /// From the query string, validating selectors for the resource.
    pub fn from_query(def: &ResourceDef, q: &Query) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
            .and_then(|f| f.validate_for(def).map(|()| f))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let limit = q.number("limit")?.unwrap_or(0) as usize;
        let continue_key = match q.get("continue") {
            None | Some("") => None,
            Some(token) => Some(decode_continue(token)?),
        };
        Ok(Self { labels, fields, limit, continue_key })
    }

    /// Whether an object passes both selectors.
    pub fn matches(&self, def: &ResourceDef, obj: &Value) -> bool {
        self.labels.matches(&crate::object::labels(obj)) && self.fields.matches(def, obj)
    }
}

fn decode_continue(token: &str) -> Result<String, ApiError> {
    let bad = || ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    v.get("start").and_then(Value::as_str).map(str::to_owned).ok_or_else(bad)
}

fn encode_continue(revision: u64, key: &str) -> String {
    let v = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": key});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

impl Registry {
    /// Lists a collection (one namespace or all), filtered and paginated.
    pub async fn list(&self, def: &'static ResourceDef, namespace: Option<&str>, params: &ListParams) -> Result<ListOutcome, ApiError> {
        let prefix = Self::collection_prefix(def, namespace);
        let mut items = Vec::new();
        let mut start_after = params.continue_key.clone();
        let mut revision = None;
        let page = if params.limit == 0 { 0 } else { params.limit.max(64) };
        loop {
            let res = self
                .store
                .list(&prefix, &ListOptions { limit: page, start_after: start_after.clone() })
                .await
                .map_err(store_error)?;
            revision.get_or_insert(res.revision);
            let mut last_key = None;
            let mut stopped_early = false;
            for (i, kv) in res.items.iter().enumerate() {
                let obj = decode(kv)?;
                last_key = Some(kv.key.clone());
                if params.matches(def, &obj) {
                    items.push(obj);
                    if params.limit > 0 && items.len() == params.limit {
                        stopped_early = i + 1 < res.items.len() || res.more;
                        break;
                    }
                }
            }
            let rev = revision.unwrap_or(res.revision);
            if params.limit > 0 && items.len() == params.limit {
                let mut meta = json!({"resourceVersion": rev.to_string()});
                if stopped_early
                    && let Some(k) = &last_key {
                        meta["continue"] = json!(encode_continue(rev, k));
                    }
                return Ok(ListOutcome { items, meta, revision: rev });
            }
            if !res.more || page == 0 {
                return Ok(ListOutcome { items, meta: json!({"resourceVersion": rev.to_string()}), revision: rev });
            }
            start_after = last_key;
        }
    }
}
