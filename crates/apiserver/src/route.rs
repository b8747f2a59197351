//! Parsing request paths into what they address.

use portico_api::resources::{self, ResourceDef, Subresource};

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/version`
    Version,
    /// `/healthz`, `/livez`, `/readyz` (and their sub-checks).
    Health(HealthKind),
    /// `/metrics`
    Metrics,
    /// `/api`
    CoreGroups,
    /// `/apis`
    Groups,
    /// `/api/v1` or `/apis/<group>/<version>`
    GroupVersion {
        /// API group ("" for core).
        group: String,
        /// API version.
        version: String,
    },
    /// `/apis/<group>`
    Group(String),
    /// `/openapi/v2`
    OpenApiV2,
    /// `/openapi/v3` and below.
    OpenApiV3,
    /// A resource collection or object.
    Resource(ResourceRoute),
    /// A pod stream proxied to its node.
    PodStream(PodStream),
}

/// Which health endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthKind {
    /// `/healthz`
    Healthz,
    /// `/livez`
    Livez,
    /// `/readyz`
    Readyz,
}

/// A pod subresource streamed from the pod's node (`log`, `exec`, `attach`, `portforward`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodStream {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// `log`, `exec`, `attach` or `portforward`.
    pub sub: &'static str,
}

/// A path under a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRoute {
    /// The resource.
    pub def: &'static ResourceDef,
    /// The namespace in the path, if any.
    pub namespace: Option<String>,
    /// The object name, if any.
    pub name: Option<String>,
    /// The subresource, if any.
    pub sub: Option<Subresource>,
}

/// Why a path could not be routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Nothing is served there.
    NotFound,
    /// A subresource that exists upstream but is not served here.
    UnsupportedSubresource(String),
}

/// Parses a request path (without the query).
pub fn parse(path: &str) -> Result<Route, RouteError> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let segs: Vec<&str> = if segs == [""] { Vec::new() } else { segs };
    match segs.as_slice() {
        ["version"] => Ok(Route::Version),
        ["healthz", ..] => Ok(Route::Health(HealthKind::Healthz)),
        ["livez", ..] => Ok(Route::Health(HealthKind::Livez)),
        ["readyz", ..] => Ok(Route::Health(HealthKind::Readyz)),
        ["metrics"] => Ok(Route::Metrics),
        ["api"] => Ok(Route::CoreGroups),
        ["apis"] => Ok(Route::Groups),
        ["openapi", "v2"] => Ok(Route::OpenApiV2),
        ["openapi", "v3", ..] => Ok(Route::OpenApiV3),
        ["api", "v1"] => Ok(Route::GroupVersion { group: String::new(), version: "v1".into() }),
        ["apis", group] if resources::CATALOGUE.iter().any(|r| r.group == *group) => Ok(Route::Group((*group).to_owned())),
        ["apis", group, version] if resources::CATALOGUE.iter().any(|r| r.group == *group && r.version == *version) => {
            Ok(Route::GroupVersion { group: (*group).to_owned(), version: (*version).to_owned() })
        }
        ["api", "v1", "namespaces", ns, "pods", name, sub @ ("log" | "exec" | "attach" | "portforward")] if !ns.is_empty() && !name.is_empty() => {
            let sub = match *sub {
                "log" => "log",
                "exec" => "exec",
                "attach" => "attach",
                _ => "portforward",
            };
            Ok(Route::PodStream(PodStream { namespace: (*ns).to_owned(), name: (*name).to_owned(), sub }))
        }
        ["api", "v1", rest @ ..] => resource_route("", "v1", rest),
        ["apis", group, version, rest @ ..] => resource_route(group, version, rest),
        _ => Err(RouteError::NotFound),
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Result<Route, RouteError> {
    let lookup = |plural: &str| resources::find(group, version, plural).ok_or(RouteError::NotFound);
    let (def, namespace, tail): (&'static ResourceDef, Option<String>, &[&str]) = match rest {
        // namespaces/<ns>/<resource>/... addresses a namespaced resource, except
        // namespaces/<name>/<sub>, which is the Namespace's own subresource.
        ["namespaces", ns, plural, tail @ ..]
            if !(group.is_empty() && tail.is_empty() && matches!(*plural, "status" | "finalize")) =>
        {
            let def = lookup(plural)?;
            if !def.namespaced {
                return Err(RouteError::NotFound);
            }
            (def, Some((*ns).to_owned()), tail)
        }
        [plural, tail @ ..] => (lookup(plural)?, None, tail),
        [] => return Err(RouteError::NotFound),
    };
    let (name, sub) = match tail {
        [] => (None, None),
        [name] => (Some((*name).to_owned()), None),
        [name, sub] => {
            let sub = match *sub {
                "status" if def.has(Subresource::Status) => Subresource::Status,
                "scale" if def.has(Subresource::Scale) => Subresource::Scale,
                other => return Err(RouteError::UnsupportedSubresource(other.to_owned())),
            };
            (Some((*name).to_owned()), Some(sub))
        }
        _ => return Err(RouteError::NotFound),
    };
    if name.as_deref() == Some("") {
        return Err(RouteError::NotFound);
    }
    Ok(Route::Resource(ResourceRoute { def, namespace, name, sub }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourceRoute {
        match parse(path) {
            Ok(Route::Resource(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn namespaced_collection_and_object() {
        let r = res("/api/v1/namespaces/default/services");
        assert_eq!((r.def.plural, r.namespace.as_deref(), r.name), ("services", Some("default"), None));
        let r = res("/apis/apps/v1/namespaces/default/deployments/web/scale");
        assert_eq!((r.def.plural, r.name.as_deref(), r.sub), ("deployments", Some("web"), Some(Subresource::Scale)));
    }

    #[test]
    fn namespace_objects_and_their_status() {
        let r = res("/api/v1/namespaces/foo");
        assert_eq!((r.def.plural, r.namespace, r.name.as_deref()), ("namespaces", None, Some("foo")));
        let r = res("/api/v1/namespaces/foo/status");
        assert_eq!((r.def.plural, r.name.as_deref(), r.sub), ("namespaces", Some("foo"), Some(Subresource::Status)));
        let r = res("/api/v1/namespaces");
        assert_eq!((r.def.plural, r.name), ("namespaces", None));
    }

    #[test]
    fn all_namespaces_list_and_unknowns() {
        let r = res("/api/v1/pods");
        assert_eq!((r.def.plural, r.namespace), ("pods", None));
        assert_eq!(parse("/api/v1/widgets"), Err(RouteError::NotFound));
        assert_eq!(parse("/api/v1/namespaces/default/nodes"), Err(RouteError::NotFound));
        assert_eq!(parse("/apis/apps/v1"), Ok(Route::GroupVersion { group: "apps".into(), version: "v1".into() }));
    }

    #[test]
    fn pod_streams_go_to_the_node() {
        let pf = parse("/api/v1/namespaces/default/pods/web/portforward");
        assert_eq!(pf, Ok(Route::PodStream(PodStream { namespace: "default".into(), name: "web".into(), sub: "portforward" })));
        let exec = parse("/api/v1/namespaces/default/pods/web/exec");
        assert_eq!(exec, Ok(Route::PodStream(PodStream { namespace: "default".into(), name: "web".into(), sub: "exec" })));
    }
}
