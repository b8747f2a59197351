//! The Node printer.

use super::descriptions as d;
use super::{AGE, Column, NAME, Printer, age, array_at, name, no_conditions, str_at};
use jiff::Timestamp;
use serde_json::{Value, json};

/// Node: Name, Status, Roles, Age, Version; wide Internal-IP, External-IP,
/// OS-Image, Kernel-Version, Container-Runtime.
pub(super) const NODE: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Status", "The status of the node"),
        Column::string("Roles", "The roles of the node"),
        AGE,
        Column::string("Version", d::NODE_INFO_KUBELET_VERSION),
        Column::wide("Internal-IP", d::NODE_STATUS_ADDRESSES),
        Column::wide("External-IP", d::NODE_STATUS_ADDRESSES),
        Column::wide("OS-Image", d::NODE_INFO_OS_IMAGE),
        Column::wide("Kernel-Version", d::NODE_INFO_KERNEL_VERSION),
        Column::wide("Container-Runtime", d::NODE_INFO_CONTAINER_RUNTIME_VERSION),
    ],
    cells: node_cells,
    conditions: no_conditions,
};

/// The label prefix that names a role: `node-role.kubernetes.io/<role>`.
const ROLE_PREFIX: &str = "node-role.kubernetes.io/";
/// The legacy role label: `kubernetes.io/role=<role>`.
const ROLE_LABEL: &str = "kubernetes.io/role";

/// `Ready`, `NotReady` or `Unknown` from the Ready condition, plus `SchedulingDisabled`.
fn node_status(node: &Value) -> String {
    // Upstream keeps the last condition of each type.
    let ready = array_at(node, "/status/conditions").iter().rev().find(|c| str_at(c, "/type") == "Ready");
    let mut status = vec![match ready {
        Some(c) if str_at(c, "/status") == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool).unwrap_or(false) {
        status.push("SchedulingDisabled");
    }
    status.join(",")
}

/// `findNodeRoles`: sorted, unique roles from the role labels, or `<none>`.
fn node_roles(node: &Value) -> String {
    let mut roles: Vec<&str> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| {
                    if let Some(role) = k.strip_prefix(ROLE_PREFIX) {
                        (!role.is_empty()).then_some(role)
                    } else if k == ROLE_LABEL {
                        v.as_str().filter(|v| !v.is_empty())
                    } else {
                        None
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    roles.sort_unstable();
    roles.dedup();
    if roles.is_empty() { "<none>".to_owned() } else { roles.join(",") }
}

/// The first address of a type, or `<none>`.
fn node_address(node: &Value, ty: &str) -> String {
    array_at(node, "/status/addresses")
        .iter()
        .find(|a| str_at(a, "/type") == ty)
        .map_or_else(|| "<none>".to_owned(), |a| str_at(a, "/address").to_owned())
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() { "<unknown>" } else { s }
}

fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name(node)),
        json!(node_status(node)),
        json!(node_roles(node)),
        json!(age(node, now)),
        json!(str_at(node, "/status/nodeInfo/kubeletVersion")),
        json!(node_address(node, "InternalIP")),
        json!(node_address(node, "ExternalIP")),
        json!(or_unknown(str_at(node, "/status/nodeInfo/osImage"))),
        json!(or_unknown(str_at(node, "/status/nodeInfo/kernelVersion"))),
        json!(or_unknown(str_at(node, "/status/nodeInfo/containerRuntimeVersion"))),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cells, names, priorities};
    use serde_json::{Value, json};

    fn node(labels: Value, spec: Value, conditions: Value) -> Value {
        json!({
            "metadata": {"name": "node-1", "labels": labels, "creationTimestamp": "2024-04-28T12:00:00Z"},
            "spec": spec,
            "status": {
                "conditions": conditions,
                "addresses": [{"type": "Hostname", "address": "node-1"}, {"type": "InternalIP", "address": "192.168.1.10"}],
                "nodeInfo": {"kubeletVersion": "v1.32.4", "osImage": "Debian GNU/Linux 12 (bookworm)", "kernelVersion": "6.1.0-18-amd64",
                    "containerRuntimeVersion": "portico://0.1.0"}
            }
        })
    }

    #[test]
    fn node_columns_match_upstream() {
        assert_eq!(
            names("Node"),
            [
                "Name",
                "Status",
                "Roles",
                "Age",
                "Version",
                "Internal-IP",
                "External-IP",
                "OS-Image",
                "Kernel-Version",
                "Container-Runtime"
            ]
        );
        assert_eq!(priorities("Node"), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn ready_control_plane_node() {
        let n = node(
            json!({"node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "node-1"}),
            json!({}),
            json!([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]),
        );
        assert_eq!(
            cells("Node", &n),
            json!([
                "node-1",
                "Ready",
                "control-plane",
                "3d",
                "v1.32.4",
                "192.168.1.10",
                "<none>",
                "Debian GNU/Linux 12 (bookworm)",
                "6.1.0-18-amd64",
                "portico://0.1.0"
            ])
        );
    }

    #[test]
    fn cordoned_not_ready_and_unknown() {
        let cordoned = node(json!({}), json!({"unschedulable": true}), json!([{"type": "Ready", "status": "True"}]));
        assert_eq!(cells("Node", &cordoned)[1], json!("Ready,SchedulingDisabled"));
        assert_eq!(cells("Node", &cordoned)[2], json!("<none>"));
        let not_ready = node(json!({}), json!({}), json!([{"type": "Ready", "status": "Unknown"}]));
        assert_eq!(cells("Node", &not_ready)[1], json!("NotReady"));
        let fresh = node(json!({}), json!({"unschedulable": true}), json!([]));
        assert_eq!(cells("Node", &fresh)[1], json!("Unknown,SchedulingDisabled"));
    }

    #[test]
    fn roles_are_sorted_and_unique() {
        let n = node(
            json!({"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/": "", "kubernetes.io/role": "worker",
                "node-role.kubernetes.io/control-plane": "true"}),
            json!({}),
            json!([]),
        );
        assert_eq!(cells("Node", &n)[2], json!("control-plane,worker"));
    }

    #[test]
    fn missing_node_info_is_unknown() {
        let n = json!({"metadata": {"name": "bare"}, "status": {"addresses": [{"type": "ExternalIP", "address": "203.0.113.4"}]}});
        assert_eq!(
            cells("Node", &n),
            json!([
                "bare",
                "Unknown",
                "<none>",
                "<unknown>",
                "",
                "<none>",
                "203.0.113.4",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ])
        );
    }
}
