//! Printers for Ingress and IngressClass.

use super::{AGE, Column, NAME, Printer, age, array_at, load_balancer_ingress, name, no_conditions, str_at};
use jiff::Timestamp;
use serde_json::{Value, json};

/// Ingress: Name, Class, Hosts, Address, Ports, Age.
pub(super) const INGRESS: Printer = Printer {
    columns: &[
        NAME,
        Column::string(
            "Class",
            "The name of the IngressClass resource that should be used for additional configuration",
        ),
        Column::string("Hosts", "Hosts that incoming requests are matched against before the ingress rule"),
        Column::string("Address", "Address is a list containing ingress points for the load-balancer"),
        Column::string("Ports", "Ports of TLS configurations that open"),
        AGE,
    ],
    cells: ingress_cells,
    conditions: no_conditions,
};

/// `formatHosts`: the first three rule hosts, `+ N more...` counting rules, `*` if none.
fn format_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == MAX {
            more = true;
        }
        let host = str_at(rule, "/host");
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".to_owned();
    }
    let ret = list.join(",");
    if more { format!("{ret} + {} more...", rules.len() - MAX) } else { ret }
}

fn ingress_cells(ing: &Value, now: Timestamp) -> Vec<Value> {
    let class = ing.pointer("/spec/ingressClassName").and_then(Value::as_str).unwrap_or("<none>");
    let ports = if array_at(ing, "/spec/tls").is_empty() { "80" } else { "80, 443" };
    vec![
        json!(name(ing)),
        json!(class),
        json!(format_hosts(array_at(ing, "/spec/rules"))),
        json!(load_balancer_ingress(array_at(ing, "/status/loadBalancer/ingress"))),
        json!(ports),
        json!(age(ing, now)),
    ]
}

/// IngressClass: Name, Controller, Parameters, Age.
pub(super) const INGRESS_CLASS: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Controller", "Controller that is responsible for handling this class"),
        Column::string("Parameters", "A reference to a resource with additional parameters"),
        AGE,
    ],
    cells: ingress_class_cells,
    conditions: no_conditions,
};

fn ingress_class_cells(class: &Value, now: Timestamp) -> Vec<Value> {
    let parameters = match class.pointer("/spec/parameters").filter(|p| p.is_object()) {
        None => "<none>".to_owned(),
        Some(p) => {
            let mut s = str_at(p, "/kind").to_owned();
            if let Some(group) = p.get("apiGroup").and_then(Value::as_str) {
                s.push('.');
                s.push_str(group);
            }
            format!("{s}/{}", str_at(p, "/name"))
        }
    };
    vec![json!(name(class)), json!(str_at(class, "/spec/controller")), json!(parameters), json!(age(class, now))]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cells, names};
    use serde_json::{Value, json};

    fn ingress(spec: Value, status: Value) -> Value {
        json!({"metadata": {"name": "site", "creationTimestamp": "2024-05-01T11:59:00Z"}, "spec": spec, "status": status})
    }

    #[test]
    fn ingress_columns_match_upstream() {
        assert_eq!(names("Ingress"), ["Name", "Class", "Hosts", "Address", "Ports", "Age"]);
    }

    #[test]
    fn ingress_with_class_hosts_and_tls() {
        let ing = ingress(
            json!({"ingressClassName": "portico", "tls": [{"hosts": ["a.example.com"]}],
                "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}]}),
            json!({"loadBalancer": {"ingress": [{"ip": "192.168.1.10"}, {"ip": "192.168.1.9"}]}}),
        );
        assert_eq!(
            cells("Ingress", &ing),
            json!(["site", "portico", "a.example.com,b.example.com", "192.168.1.10,192.168.1.9", "80, 443", "60s"])
        );
    }

    #[test]
    fn ingress_defaults() {
        let ing = ingress(json!({"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}), json!({}));
        assert_eq!(cells("Ingress", &ing), json!(["site", "<none>", "*", "", "80", "60s"]));
        let hostless = ingress(json!({"rules": [{"http": {}}]}), json!({"loadBalancer": {}}));
        assert_eq!(cells("Ingress", &hostless)[2], json!("*"));
    }

    #[test]
    fn ingress_hosts_cap_at_three_counting_rules() {
        let ing =
            ingress(json!({"rules": [{"host": "a"}, {}, {"host": "b"}, {"host": "c"}, {"host": "d"}]}), json!({}));
        // Upstream counts rules, not hosts: a hostless rule among the first three still counts.
        assert_eq!(cells("Ingress", &ing)[2], json!("a,b,c + 2 more..."));
    }

    #[test]
    fn ingress_class_parameters() {
        assert_eq!(names("IngressClass"), ["Name", "Controller", "Parameters", "Age"]);
        let plain = json!({"metadata": {"name": "portico", "creationTimestamp": "2024-05-01T11:59:00Z"},
            "spec": {"controller": "portico.dev/ingress"}});
        assert_eq!(cells("IngressClass", &plain), json!(["portico", "portico.dev/ingress", "<none>", "60s"]));
        let params = json!({"metadata": {"name": "lb"}, "spec": {"controller": "example.com/lb",
            "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb", "scope": "Cluster"}}});
        assert_eq!(cells("IngressClass", &params)[2], json!("IngressParameters.k8s.example.com/external-lb"));
        let core_params =
            json!({"metadata": {"name": "lb"}, "spec": {"parameters": {"kind": "ConfigMap", "name": "cfg"}}});
        assert_eq!(cells("IngressClass", &core_params)[2], json!("ConfigMap/cfg"));
    }
}
