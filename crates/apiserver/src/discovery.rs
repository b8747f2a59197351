//! Discovery documents (legacy and aggregated v2), `/version` and OpenAPI.

use portico_api::resources::{self, CATALOGUE, ResourceDef, SUBRESOURCE_VERBS, Subresource, VERBS};
use serde_json::{Value, json};

/// The Kubernetes version Portico's API reports.
pub const KUBE_MAJOR: &str = "1";
/// Minor version.
pub const KUBE_MINOR: &str = "32";
/// Full git version string.
pub const GIT_VERSION: &str = "v1.32.0-portico";

/// Content type of aggregated discovery responses.
pub const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": env!("CARGO_PKG_VERSION"),
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a }),
    })
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") }
}

/// `/api` in the legacy format.
pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]})
}

fn api_group(group: &str) -> Value {
    let versions: Vec<Value> = resources::group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": group_version(g, v), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": versions, "preferredVersion": preferred})
}

/// `/apis/<group>`.
pub fn group(group: &str) -> Value {
    let mut g = api_group(group);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    g
}

/// `/apis` in the legacy format.
pub fn groups() -> Value {
    let mut names: Vec<&str> = Vec::new();
    for (g, _) in resources::group_versions() {
        if !g.is_empty() && !names.contains(&g) {
            names.push(g);
        }
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": names.iter().map(|g| api_group(g)).collect::<Vec<_>>()})
}

fn legacy_resource(r: &ResourceDef) -> Value {
    let mut v = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": VERBS,
        "storageVersionHash": "",
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    v
}

fn subresource_entry(r: &ResourceDef, sub: Subresource) -> Value {
    let mut v = json!({"name": format!("{}/{}", r.plural, sub.name()), "singularName": "", "namespaced": r.namespaced, "verbs": SUBRESOURCE_VERBS});
    match sub {
        Subresource::Scale => {
            v["group"] = json!("autoscaling");
            v["version"] = json!("v1");
            v["kind"] = json!("Scale");
        }
        Subresource::Status => v["kind"] = json!(r.kind),
    }
    v
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub fn resource_list(group: &str, version: &str) -> Value {
    let mut out = Vec::new();
    for r in CATALOGUE.iter().filter(|r| r.group == group && r.version == version) {
        out.push(legacy_resource(r));
        out.extend(r.subresources.iter().map(|s| subresource_entry(r, *s)));
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version(group, version), "resources": out})
}

fn aggregated_resource(r: &ResourceDef) -> Value {
    let mut v = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": VERBS,
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    let subs: Vec<Value> = r
        .subresources
        .iter()
        .map(|s| {
            let kind = match s {
                Subresource::Scale => json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}),
                Subresource::Status => json!({"group": r.group, "version": r.version, "kind": r.kind}),
            };
            json!({"subresource": s.name(), "responseKind": kind, "verbs": SUBRESOURCE_VERBS})
        })
        .collect();
    if !subs.is_empty() {
        v["subresources"] = json!(subs);
    }
    v
}

/// Aggregated discovery (`APIGroupDiscoveryList`) for `/api` (`core = true`) or `/apis`.
pub fn aggregated(core: bool) -> Value {
    let mut items = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (g, _) in resources::group_versions() {
        if g.is_empty() != core || seen.contains(&g) {
            continue;
        }
        seen.push(g);
        let versions: Vec<Value> = resources::group_versions()
            .into_iter()
            .filter(|(gg, _)| *gg == g)
            .map(|(_, v)| {
                let res: Vec<Value> = CATALOGUE.iter().filter(|r| r.group == g && r.version == v).map(aggregated_resource).collect();
                json!({"version": v, "resources": res, "freshness": "Current"})
            })
            .collect();
        items.push(json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions}));
    }
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// Whether an Accept header asks for aggregated discovery v2.
pub fn wants_aggregated(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|item| {
            let params: Vec<&str> = item.split(';').map(str::trim).collect();
            params.first() == Some(&"application/json")
                && params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&"v=v2")
                && params.contains(&"as=APIGroupDiscoveryList")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_list_has_scale_free_services_with_short_names() {
        let l = resource_list("", "v1");
        let svc = l["resources"].as_array().and_then(|a| a.iter().find(|r| r["name"] == "services")).cloned().unwrap_or_default();
        assert_eq!(svc["shortNames"], json!(["svc"]));
        assert_eq!(svc["categories"], json!(["all"]));
    }

    #[test]
    fn apps_has_scale_subresource() {
        let l = resource_list("apps", "v1");
        assert!(l["resources"].as_array().is_some_and(|a| a.iter().any(|r| r["name"] == "deployments/scale" && r["kind"] == "Scale")));
    }

    #[test]
    fn aggregated_accept_is_recognised() {
        assert!(wants_aggregated(Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json")));
        assert!(!wants_aggregated(Some("application/json, */*")));
    }
}
