//! Patch strategies of list fields (the `patchStrategy`/`patchMergeKey` tags of `k8s.io/api`).

/// How a list field is patched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch's list replaces the whole list (the default, "atomic").
    Replace,
    /// Elements are maps merged by the value of this key.
    MergeByKey(&'static str),
    /// A list of primitives merged as a set (e.g. `finalizers`).
    MergePrimitives,
}

const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// The strategy of the list at `path` (field names from the object root, no indices).
pub fn list_strategy(group: &str, kind: &str, path: &[&str]) -> ListStrategy {
    use ListStrategy::{MergeByKey, MergePrimitives, Replace};
    // Object metadata, at the root or in a pod template.
    match path {
        [.., "metadata", "finalizers"] => return MergePrimitives,
        [.., "metadata", "ownerReferences"] => return MergeByKey("uid"),
        ["status", "conditions"] => return MergeByKey("type"),
        _ => {}
    }
    let pod_spec: Option<&[&str]> = match (group, kind, path) {
        ("", "Pod", ["spec", rest @ ..]) => Some(rest),
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet", ["spec", "template", "spec", rest @ ..]) => Some(rest),
        _ => None,
    };
    if let Some(rel) = pod_spec {
        return match rel {
            [c] if CONTAINER_LISTS.contains(c) => MergeByKey("name"),
            [c, "ports"] if CONTAINER_LISTS.contains(c) => MergeByKey("containerPort"),
            [c, "env"] if CONTAINER_LISTS.contains(c) => MergeByKey("name"),
            [c, "volumeMounts"] if CONTAINER_LISTS.contains(c) => MergeByKey("mountPath"),
            [c, "volumeDevices"] if CONTAINER_LISTS.contains(c) => MergeByKey("devicePath"),
            ["volumes"] | ["imagePullSecrets"] | ["resourceClaims"] | ["schedulingGates"] => MergeByKey("name"),
            ["hostAliases"] => MergeByKey("ip"),
            ["topologySpreadConstraints"] => MergeByKey("topologyKey"),
            _ => Replace,
        };
    }
    match (group, kind, path) {
        ("", "Service", ["spec", "ports"]) => MergeByKey("port"),
        ("", "Node", ["status", "addresses"]) => MergeByKey("type"),
        ("", "Pod", ["status", "podIPs"]) => MergeByKey("ip"),
        ("", "Node", ["spec", "podCIDRs"]) => MergePrimitives,
        _ => Replace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_merge_keys() {
        assert_eq!(list_strategy("", "Service", &["spec", "ports"]), ListStrategy::MergeByKey("port"));
        assert_eq!(list_strategy("apps", "Deployment", &["spec", "template", "spec", "containers"]), ListStrategy::MergeByKey("name"));
        assert_eq!(
            list_strategy("apps", "Deployment", &["spec", "template", "spec", "containers", "ports"]),
            ListStrategy::MergeByKey("containerPort")
        );
        assert_eq!(list_strategy("", "Pod", &["spec", "containers", "env"]), ListStrategy::MergeByKey("name"));
        assert_eq!(list_strategy("", "ConfigMap", &["metadata", "finalizers"]), ListStrategy::MergePrimitives);
        assert_eq!(list_strategy("", "Pod", &["spec", "containers", "command"]), ListStrategy::Replace);
        assert_eq!(list_strategy("", "Endpoints", &["subsets"]), ListStrategy::Replace);
        assert_eq!(list_strategy("", "Service", &["spec", "externalIPs"]), ListStrategy::Replace);
    }
}
