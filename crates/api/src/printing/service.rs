//! Printers for Service, Endpoints and EndpointSlice.

use super::descriptions as d;
use super::{
    AGE, Column, NAME, Printer, age, array_at, format_labels, int_at, list_with_more, load_balancer_ingress, name,
    no_conditions, str_at,
};
use jiff::Timestamp;
use serde_json::{Value, json};

/// Service: Name, Type, Cluster-IP, External-IP, Port(s), Age; wide Selector.
pub(super) const SERVICE: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Type", d::SERVICE_SPEC_TYPE),
        Column::string("Cluster-IP", d::SERVICE_SPEC_CLUSTER_IP),
        Column::string("External-IP", d::SERVICE_SPEC_EXTERNAL_IPS),
        Column::string("Port(s)", d::SERVICE_SPEC_PORTS),
        AGE,
        Column::wide("Selector", d::SERVICE_SPEC_SELECTOR),
    ],
    cells: service_cells,
    conditions: no_conditions,
};

/// `spec.type`, defaulted as the apiserver's decoding would.
fn service_type(svc: &Value) -> &str {
    svc.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP")
}

fn strings(values: &[Value]) -> Vec<&str> {
    values.iter().map(|v| v.as_str().unwrap_or("")).collect()
}

/// `getServiceExternalIP` (wide: load-balancer addresses are not clipped).
fn external_ip(svc: &Value) -> String {
    let external_ips = strings(array_at(svc, "/spec/externalIPs"));
    match service_type(svc) {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_owned()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer_ingress(array_at(svc, "/status/loadBalancer/ingress"));
            if !external_ips.is_empty() {
                let mut all: Vec<&str> = if lb.is_empty() { Vec::new() } else { lb.split(',').collect() };
                all.extend(external_ips);
                return all.join(",");
            }
            if lb.is_empty() { "<pending>".to_owned() } else { lb }
        }
        "ExternalName" => str_at(svc, "/spec/externalName").to_owned(),
        _ => "<unknown>".to_owned(),
    }
}

/// `makePortString`: `80/TCP`, or `80:30380/TCP` with a node port; `<none>` without ports.
fn port_string(svc: &Value) -> String {
    let pieces: Vec<String> = array_at(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let port = int_at(p, "/port");
            let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match int_at(p, "/nodePort") {
                n if n > 0 => format!("{port}:{n}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    if pieces.is_empty() { "<none>".to_owned() } else { pieces.join(",") }
}

fn service_cells(svc: &Value, now: Timestamp) -> Vec<Value> {
    // Defaulting keeps `clusterIPs` in step with `clusterIP`; older objects may carry only the latter.
    let cluster_ip = match array_at(svc, "/spec/clusterIPs").first().and_then(Value::as_str) {
        Some(ip) => ip.to_owned(),
        None => match str_at(svc, "/spec/clusterIP") {
            "" => "<none>".to_owned(),
            ip => ip.to_owned(),
        },
    };
    vec![
        json!(name(svc)),
        json!(service_type(svc)),
        json!(cluster_ip),
        json!(external_ip(svc)),
        json!(port_string(svc)),
        json!(age(svc, now)),
        json!(format_labels(svc.pointer("/spec/selector"))),
    ]
}

/// Endpoints: Name, Endpoints, Age.
pub(super) const ENDPOINTS: Printer = Printer {
    columns: &[NAME, Column::string("Endpoints", d::ENDPOINTS_SUBSETS), AGE],
    cells: endpoints_cells,
    conditions: no_conditions,
};

/// `host:port` as Go's `net.JoinHostPort` writes it (IPv6 in brackets).
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// `formatEndpoints(endpoints, nil)`: ready addresses × ports, at most three, then `+ N more...`.
fn format_endpoints(ep: &Value) -> String {
    const MAX: usize = 3;
    let subsets = array_at(ep, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_owned();
    }
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0;
    for ss in subsets {
        let addresses = array_at(ss, "/addresses");
        let ports = array_at(ss, "/ports");
        if ports.is_empty() {
            // Headless services may have no ports: list the addresses alone.
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(str_at(a, "/ip").to_owned());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(str_at(a, "/ip"), int_at(port, "/port")));
            }
        }
    }
    let ret = list.join(",");
    if more { format!("{ret} + {} more...", count - MAX) } else { ret }
}

fn endpoints_cells(ep: &Value, now: Timestamp) -> Vec<Value> {
    vec![json!(name(ep)), json!(format_endpoints(ep)), json!(age(ep, now))]
}

/// EndpointSlice: Name, AddressType, Ports, Endpoints, Age.
pub(super) const ENDPOINT_SLICE: Printer = Printer {
    columns: &[
        NAME,
        Column::string("AddressType", d::ENDPOINT_SLICE_ADDRESS_TYPE),
        Column::string("Ports", d::ENDPOINT_SLICE_PORTS),
        Column::string("Endpoints", d::ENDPOINT_SLICE_ENDPOINTS),
        AGE,
    ],
    cells: endpoint_slice_cells,
    conditions: no_conditions,
};

/// `formatDiscoveryPorts`: port numbers (or names, or `*`), at most three.
fn format_discovery_ports(ports: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut more = false;
    for port in ports {
        if list.len() < MAX {
            let text = match (port.get("port").and_then(Value::as_i64), port.get("name").and_then(Value::as_str)) {
                (Some(n), _) => n.to_string(),
                (None, Some(name)) => name.to_owned(),
                (None, None) => "*".to_owned(),
            };
            list.push(text);
        } else if list.len() == MAX {
            more = true;
        }
    }
    list_with_more(&list, more, ports.len(), MAX)
}

/// `formatDiscoveryEndpoints`: addresses of all endpoints, at most three.
fn format_discovery_endpoints(endpoints: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut more = false;
    let mut count = 0;
    for ep in endpoints {
        for address in array_at(ep, "/addresses") {
            if list.len() < MAX {
                list.push(address.as_str().unwrap_or("").to_owned());
            } else if list.len() == MAX {
                more = true;
            }
            count += 1;
        }
    }
    list_with_more(&list, more, count, MAX)
}

fn endpoint_slice_cells(slice: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name(slice)),
        json!(str_at(slice, "/addressType")),
        json!(format_discovery_ports(array_at(slice, "/ports"))),
        json!(format_discovery_endpoints(array_at(slice, "/endpoints"))),
        json!(age(slice, now)),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cells, names, priorities};
    use serde_json::{Value, json};

    fn svc(spec: Value, status: Value) -> Value {
        json!({"metadata": {"name": "web", "creationTimestamp": "2024-05-01T11:55:00Z"}, "spec": spec, "status": status})
    }

    #[test]
    fn service_columns_match_upstream() {
        assert_eq!(names("Service"), ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"]);
        assert_eq!(priorities("Service"), [0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn cluster_ip_service() {
        let s = svc(
            json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
                "selector": {"k8s-app": "kube-dns", "app": "dns"}}),
            json!({}),
        );
        assert_eq!(
            cells("Service", &s),
            json!(["web", "ClusterIP", "10.96.0.10", "<none>", "53/UDP,53/TCP", "5m", "app=dns,k8s-app=kube-dns"])
        );
    }

    #[test]
    fn node_port_service_shows_node_port() {
        let s = svc(
            json!({"type": "NodePort", "clusterIPs": ["10.96.12.7"], "externalIPs": ["192.0.2.1", "192.0.2.2"],
                "ports": [{"port": 80, "nodePort": 30380, "protocol": "TCP"}]}),
            json!({}),
        );
        assert_eq!(
            cells("Service", &s),
            json!(["web", "NodePort", "10.96.12.7", "192.0.2.1,192.0.2.2", "80:30380/TCP", "5m", "<none>"])
        );
    }

    #[test]
    fn load_balancer_pending_then_assigned() {
        let spec = json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.20"],
            "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}, {"port": 443, "nodePort": 31001, "protocol": "TCP"}]});
        let pending = svc(spec.clone(), json!({"loadBalancer": {}}));
        assert_eq!(cells("Service", &pending)[3], json!("<pending>"));
        assert_eq!(cells("Service", &pending)[4], json!("80:31000/TCP,443:31001/TCP"));
        let assigned = svc(
            spec.clone(),
            json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "a-very-long-hostname.example.com"}, {"ip": "203.0.113.9"}]}}),
        );
        // The server prints the wide form: never clipped to 16 characters.
        assert_eq!(cells("Service", &assigned)[3], json!("203.0.113.9,a-very-long-hostname.example.com"));
        let mut with_external = spec;
        with_external["externalIPs"] = json!(["198.51.100.1"]);
        let both = svc(with_external, json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}));
        assert_eq!(cells("Service", &both)[3], json!("203.0.113.9,198.51.100.1"));
    }

    #[test]
    fn headless_and_external_name() {
        let headless = svc(
            json!({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"], "selector": {"app": "db"}}),
            json!({}),
        );
        assert_eq!(
            cells("Service", &headless),
            json!(["web", "ClusterIP", "None", "<none>", "<none>", "5m", "app=db"])
        );
        let ext = svc(
            json!({"type": "ExternalName", "externalName": "example.com", "ports": [{"port": 443, "protocol": "TCP"}]}),
            json!({}),
        );
        assert_eq!(
            cells("Service", &ext),
            json!(["web", "ExternalName", "<none>", "example.com", "443/TCP", "5m", "<none>"])
        );
    }

    fn endpoints(subsets: Value) -> Value {
        json!({"metadata": {"name": "web", "creationTimestamp": "2024-05-01T10:00:00Z"}, "subsets": subsets})
    }

    #[test]
    fn endpoints_list_at_most_three() {
        assert_eq!(names("Endpoints"), ["Name", "Endpoints", "Age"]);
        let ep = endpoints(json!([{
            "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}],
            "ports": [{"port": 80, "protocol": "TCP"}]
        }]));
        assert_eq!(cells("Endpoints", &ep), json!(["web", "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more...", "120m"]));
    }

    #[test]
    fn endpoints_count_every_port_and_subset() {
        let ep = endpoints(json!([
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]},
            {"addresses": [{"ip": "fd00::1"}], "notReadyAddresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 8080}]}
        ]));
        assert_eq!(cells("Endpoints", &ep)[1], json!("10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more..."));
        let v6 = endpoints(json!([{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 8080}]}]));
        assert_eq!(cells("Endpoints", &v6)[1], json!("[fd00::1]:8080"));
    }

    #[test]
    fn endpoints_without_ports_or_subsets() {
        let headless = endpoints(json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]}]));
        assert_eq!(cells("Endpoints", &headless)[1], json!("10.0.0.1,10.0.0.2"));
        assert_eq!(cells("Endpoints", &endpoints(json!([])))[1], json!("<none>"));
        assert_eq!(cells("Endpoints", &json!({"metadata": {"name": "x"}}))[1], json!("<none>"));
        let only_not_ready = endpoints(json!([{"notReadyAddresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]));
        assert_eq!(cells("Endpoints", &only_not_ready)[1], json!(""));
    }

    #[test]
    fn endpoint_slice_ports_and_addresses() {
        assert_eq!(names("EndpointSlice"), ["Name", "AddressType", "Ports", "Endpoints", "Age"]);
        let slice = json!({"metadata": {"name": "web-abc12", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "metrics"}, {}, {"port": 9000}],
            "endpoints": [{"addresses": ["10.244.0.5"]}, {"addresses": ["10.244.0.6", "10.244.0.7"]}, {"addresses": ["10.244.0.8"]}]});
        assert_eq!(
            cells("EndpointSlice", &slice),
            json!([
                "web-abc12",
                "IPv4",
                "80,metrics,* + 1 more...",
                "10.244.0.5,10.244.0.6,10.244.0.7 + 1 more...",
                "60m"
            ])
        );
        let empty = json!({"metadata": {"name": "e", "creationTimestamp": "2024-05-01T11:00:00Z"}, "addressType": "IPv4", "endpoints": []});
        assert_eq!(cells("EndpointSlice", &empty), json!(["e", "IPv4", "<unset>", "<unset>", "60m"]));
    }
}
