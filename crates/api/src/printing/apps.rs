//! Printers for Deployment and ReplicaSet.

use super::descriptions as d;
use super::{AGE, Column, NAME, Printer, age, array_at, container_cells, int_at, name, no_conditions};
use crate::selectors::LabelSelector;
use jiff::Timestamp;
use serde_json::{Value, json};

/// The Containers column of workload kinds.
const CONTAINERS: Column = Column::wide("Containers", "Names of each container in the template.");
/// The Images column of workload kinds.
const IMAGES: Column = Column::wide("Images", "Images referenced by each container in the template.");

/// `spec.replicas`, defaulted to 1 as the apiserver's decoding does.
fn desired_replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

/// Deployment: Name, Ready, Up-to-date, Available, Age; wide Containers, Images, Selector.
pub(super) const DEPLOYMENT: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Ready", "Number of the pod with ready state"),
        Column::string("Up-to-date", d::DEPLOYMENT_STATUS_UPDATED_REPLICAS),
        Column::string("Available", d::DEPLOYMENT_STATUS_AVAILABLE_REPLICAS),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::wide("Selector", d::DEPLOYMENT_SPEC_SELECTOR),
    ],
    cells: deployment_cells,
    conditions: no_conditions,
};

fn deployment_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ready = format!("{}/{}", int_at(obj, "/status/readyReplicas"), desired_replicas(obj));
    let (containers, images) = container_cells(array_at(obj, "/spec/template/spec/containers"));
    // `LabelSelectorAsSelector(...).String()`: a missing selector selects nothing and prints "".
    let selector = match LabelSelector::from_label_selector_json(obj.pointer("/spec/selector").unwrap_or(&Value::Null))
    {
        Ok(s) => s.to_string(),
        Err(_) => "<invalid>".to_owned(),
    };
    vec![
        json!(name(obj)),
        json!(ready),
        json!(int_at(obj, "/status/updatedReplicas")),
        json!(int_at(obj, "/status/availableReplicas")),
        json!(age(obj, now)),
        json!(containers),
        json!(images),
        json!(selector),
    ]
}

/// ReplicaSet: Name, Desired, Current, Ready, Age; wide Containers, Images, Selector.
pub(super) const REPLICA_SET: Printer = Printer {
    columns: &[
        NAME,
        Column::integer("Desired", d::REPLICA_SET_SPEC_REPLICAS),
        Column::integer("Current", d::REPLICA_SET_STATUS_REPLICAS),
        Column::integer("Ready", d::REPLICA_SET_STATUS_READY_REPLICAS),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::wide("Selector", d::REPLICA_SET_SPEC_SELECTOR),
    ],
    cells: replica_set_cells,
    conditions: no_conditions,
};

fn replica_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (containers, images) = container_cells(array_at(obj, "/spec/template/spec/containers"));
    // `metav1.FormatLabelSelector`: `<none>` when empty, `<error>` when invalid.
    let selector = match LabelSelector::from_label_selector_json(obj.pointer("/spec/selector").unwrap_or(&Value::Null))
    {
        Ok(s) => match s.to_string() {
            e if e.is_empty() => "<none>".to_owned(),
            s => s,
        },
        Err(_) => "<error>".to_owned(),
    };
    vec![
        json!(name(obj)),
        json!(desired_replicas(obj)),
        json!(int_at(obj, "/status/replicas")),
        json!(int_at(obj, "/status/readyReplicas")),
        json!(age(obj, now)),
        json!(containers),
        json!(images),
        json!(selector),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cells, names, priorities, types};
    use serde_json::json;

    fn workload(replicas: Option<i64>, status: serde_json::Value) -> serde_json::Value {
        let mut obj = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "edge"]}]},
                "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "sidecar", "image": "busybox"}]}}
            },
            "status": status
        });
        if let Some(r) = replicas {
            obj["spec"]["replicas"] = json!(r);
        }
        obj
    }

    #[test]
    fn deployment_columns_match_upstream() {
        assert_eq!(
            names("Deployment"),
            ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"]
        );
        assert_eq!(priorities("Deployment"), [0, 0, 0, 0, 0, 1, 1, 1]);
        assert_eq!(types("Deployment"), ["string"; 8]);
    }

    #[test]
    fn deployment_ready_over_desired() {
        let d =
            workload(Some(3), json!({"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}));
        assert_eq!(
            cells("Deployment", &d),
            json!(["web", "2/3", 3, 2, "60m", "web,sidecar", "nginx:1.27,busybox", "app=web,tier in (edge,front)"])
        );
        let fresh = workload(None, json!({}));
        assert_eq!(
            cells("Deployment", &fresh).as_array().map(|c| c[1..4].to_vec()),
            Some(vec![json!("0/1"), json!(0), json!(0)])
        );
        let scaled_to_zero = workload(Some(0), json!({}));
        assert_eq!(cells("Deployment", &scaled_to_zero)[1], json!("0/0"));
    }

    #[test]
    fn deployment_without_selector_prints_nothing() {
        let d = json!({"metadata": {"name": "x"}, "spec": {"replicas": 1}});
        assert_eq!(cells("Deployment", &d)[7], json!(""));
        let bad = json!({"metadata": {"name": "x"}, "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}}});
        assert_eq!(cells("Deployment", &bad)[7], json!("<invalid>"));
    }

    #[test]
    fn replica_set_integers() {
        assert_eq!(
            names("ReplicaSet"),
            ["Name", "Desired", "Current", "Ready", "Age", "Containers", "Images", "Selector"]
        );
        assert_eq!(
            types("ReplicaSet"),
            ["string", "integer", "integer", "integer", "string", "string", "string", "string"]
        );
        let rs = workload(Some(2), json!({"replicas": 2, "readyReplicas": 1}));
        assert_eq!(
            cells("ReplicaSet", &rs),
            json!(["web", 2, 2, 1, "60m", "web,sidecar", "nginx:1.27,busybox", "app=web,tier in (edge,front)"])
        );
        let no_selector = json!({"metadata": {"name": "x"}, "spec": {"selector": {}}});
        assert_eq!(cells("ReplicaSet", &no_selector)[7], json!("<none>"));
        let bad = json!({"metadata": {"name": "x"}, "spec": {"selector": {"matchLabels": {"a b": "c"}}}});
        assert_eq!(cells("ReplicaSet", &bad)[7], json!("<error>"));
    }
}
