//! Printers for the simple kinds: ConfigMap, Namespace, Secret and Lease.

use super::descriptions as d;
use super::{AGE, Column, NAME, Printer, age, map_len, name, no_conditions, str_at};
use jiff::Timestamp;
use serde_json::{Value, json};

/// ConfigMap: Name, Data, Age.
pub(super) const CONFIG_MAP: Printer = Printer {
    columns: &[NAME, Column::string("Data", d::CONFIG_MAP_DATA), AGE],
    cells: config_map_cells,
    conditions: no_conditions,
};

fn config_map_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let data = map_len(obj, "/data") + map_len(obj, "/binaryData");
    vec![json!(name(obj)), json!(data), json!(age(obj, now))]
}

/// Namespace: Name, Status, Age.
pub(super) const NAMESPACE: Printer = Printer {
    columns: &[NAME, Column::string("Status", "The status of the namespace"), AGE],
    cells: namespace_cells,
    conditions: no_conditions,
};

fn namespace_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![json!(name(obj)), json!(str_at(obj, "/status/phase")), json!(age(obj, now))]
}

/// Secret: Name, Type, Data, Age.
pub(super) const SECRET: Printer = Printer {
    columns: &[NAME, Column::string("Type", d::SECRET_TYPE), Column::string("Data", d::SECRET_DATA), AGE],
    cells: secret_cells,
    conditions: no_conditions,
};

fn secret_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![json!(name(obj)), json!(str_at(obj, "/type")), json!(map_len(obj, "/data")), json!(age(obj, now))]
}

/// Lease: Name, Holder, Age.
pub(super) const LEASE: Printer = Printer {
    columns: &[NAME, Column::string("Holder", d::LEASE_SPEC_HOLDER_IDENTITY), AGE],
    cells: lease_cells,
    conditions: no_conditions,
};

fn lease_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![json!(name(obj)), json!(str_at(obj, "/spec/holderIdentity")), json!(age(obj, now))]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{NOW, cells, names};
    use serde_json::json;

    #[test]
    fn config_map_counts_data_and_binary_data() {
        let cm = json!({"metadata": {"name": "kube-root-ca.crt", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "data": {"ca.crt": "x"}, "binaryData": {"b": "AA=="}});
        assert_eq!(names("ConfigMap"), ["Name", "Data", "Age"]);
        assert_eq!(cells("ConfigMap", &cm), json!(["kube-root-ca.crt", 2, "60m"]));
    }

    #[test]
    fn namespace_shows_phase() {
        let ns = json!({"metadata": {"name": "default", "creationTimestamp": "2024-04-30T12:00:00Z"}, "status": {"phase": "Active"}});
        assert_eq!(names("Namespace"), ["Name", "Status", "Age"]);
        assert_eq!(cells("Namespace", &ns), json!(["default", "Active", "24h"]));
    }

    #[test]
    fn secret_shows_type_and_key_count() {
        let s = json!({"metadata": {"name": "tls", "creationTimestamp": NOW}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(names("Secret"), ["Name", "Type", "Data", "Age"]);
        assert_eq!(cells("Secret", &s), json!(["tls", "kubernetes.io/tls", 2, "0s"]));
        let empty = json!({"metadata": {"name": "e"}, "type": "Opaque"});
        assert_eq!(cells("Secret", &empty), json!(["e", "Opaque", 0, "<unknown>"]));
    }

    #[test]
    fn lease_shows_holder() {
        let l = json!({"metadata": {"name": "node-1", "creationTimestamp": "2024-05-01T11:59:10Z"}, "spec": {"holderIdentity": "node-1"}});
        assert_eq!(names("Lease"), ["Name", "Holder", "Age"]);
        assert_eq!(cells("Lease", &l), json!(["node-1", "node-1", "50s"]));
        let free = json!({"metadata": {"name": "x", "creationTimestamp": NOW}, "spec": {}});
        assert_eq!(cells("Lease", &free), json!(["x", "", "0s"]));
    }
}
