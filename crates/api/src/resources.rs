//! The catalogue of resources Portico serves: names, scope, short names,
//! categories and subresources, as kube-apiserver advertises them.

/// A subresource served under `<resource>/<name>/<sub>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// `/status`: replaces only `.status`.
    Status,
    /// `/scale`: an `autoscaling/v1` `Scale` view of `spec.replicas`.
    Scale,
}

impl Subresource {
    /// The path segment.
    pub fn name(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Scale => "scale",
        }
    }
}

/// One served resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group, empty for core.
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Plural resource name (URL segment).
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Categories (`all` makes `kubectl get all` include it).
    pub categories: &'static [&'static str],
    /// Subresources.
    pub subresources: &'static [Subresource],
    /// Whether `metadata.generation` is maintained (bumped on spec changes).
    pub tracks_generation: bool,
}

/// The verbs every resource supports.
pub const VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
/// The verbs of a subresource.
pub const SUBRESOURCE_VERBS: &[&str] = &["get", "patch", "update"];

const STATUS: &[Subresource] = &[Subresource::Status];
const STATUS_SCALE: &[Subresource] = &[Subresource::Scale, Subresource::Status];
const NONE: &[Subresource] = &[];

macro_rules! res {
    ($g:expr, $v:expr, $kind:expr, $plural:expr, $singular:expr, $ns:expr, $short:expr, $cat:expr, $sub:expr, $gen:expr) => {
        ResourceDef {
            group: $g,
            version: $v,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $ns,
            short_names: $short,
            categories: $cat,
            subresources: $sub,
            tracks_generation: $gen,
        }
    };
}

/// Every resource, in discovery order.
pub static CATALOGUE: &[ResourceDef] = &[
    res!("", "v1", "ConfigMap", "configmaps", "configmap", true, &["cm"], &[], NONE, false),
    res!("", "v1", "Endpoints", "endpoints", "endpoints", true, &["ep"], &[], NONE, false),
    res!("", "v1", "Event", "events", "event", true, &["ev"], &[], NONE, false),
    res!("", "v1", "Namespace", "namespaces", "namespace", false, &["ns"], &[], STATUS, false),
    res!("", "v1", "Node", "nodes", "node", false, &["no"], &[], STATUS, false),
    res!("", "v1", "Pod", "pods", "pod", true, &["po"], &["all"], STATUS, false),
    res!("", "v1", "Secret", "secrets", "secret", true, &[], &[], NONE, false),
    res!("", "v1", "Service", "services", "service", true, &["svc"], &["all"], STATUS, false),
    res!("apps", "v1", "Deployment", "deployments", "deployment", true, &["deploy"], &["all"], STATUS_SCALE, true),
    res!("apps", "v1", "ReplicaSet", "replicasets", "replicaset", true, &["rs"], &["all"], STATUS_SCALE, true),
    res!("coordination.k8s.io", "v1", "Lease", "leases", "lease", true, &[], &[], NONE, false),
    res!("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", true, &[], &[], NONE, false),
    res!("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", true, &["ing"], &[], STATUS, true),
    res!("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "ingressclass", false, &[], &[], NONE, false),
];

impl ResourceDef {
    /// `group/version`, or `version` for core.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_owned() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The group-resource used in error messages.
    pub fn group_resource(&self) -> crate::status::GroupResource {
        crate::status::GroupResource { group: self.group.to_owned(), resource: self.plural.to_owned() }
    }

    /// Whether this resource has the given subresource.
    pub fn has(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }

    /// The store key prefix for this resource, e.g. `/registry/apps/deployments/`.
    pub fn key_prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/registry/core/{}/", self.plural)
        } else {
            format!("/registry/{}/{}/", self.group, self.plural)
        }
    }
}

/// Finds a resource by group, version and plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    CATALOGUE.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Finds a resource by group and kind.
pub fn find_kind(group: &str, kind: &str) -> Option<&'static ResourceDef> {
    CATALOGUE.iter().find(|r| r.group == group && r.kind == kind)
}

/// The distinct `(group, version)` pairs served, core first.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in CATALOGUE {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_plural_and_kind() {
        assert_eq!(find("", "v1", "services").map(|r| r.kind), Some("Service"));
        assert_eq!(find_kind("apps", "Deployment").map(|r| r.plural), Some("deployments"));
        assert!(find("apps", "v1", "services").is_none());
    }

    #[test]
    fn core_comes_first() {
        assert_eq!(group_versions()[0], ("", "v1"));
    }
}
