//! A pod's `/etc/resolv.conf` and `/etc/hosts`, as the kubelet writes them
//! (dnsPolicy ClusterFirst / ClusterFirstWithHostNet / Default / None with
//! dnsConfig; hostAliases; the pod's own hostname line).

use k8s_openapi::api::core::v1::Pod;
use std::net::IpAddr;

/// The parts of a resolv.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` lines.
    pub nameservers: Vec<String>,
    /// The `search` list.
    pub searches: Vec<String>,
    /// `options` entries.
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Parses resolv.conf text (the host's).
    pub fn parse(text: &str) -> Self {
        let mut r = Self::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => r.nameservers.extend(words.next().map(str::to_owned)),
                Some("search") | Some("domain") => r.searches = words.map(str::to_owned).collect(),
                Some("options") => r.options.extend(words.map(str::to_owned)),
                _ => {}
            }
        }
        r
    }

    /// Renders the file.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

/// The pod's resolv.conf given the cluster DNS servers, domain and the host's file.
pub fn resolv_conf(pod: &Pod, cluster_dns: &[IpAddr], domain: &str, host: &ResolvConf) -> ResolvConf {
    let spec = pod.spec.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let host_network = spec.host_network == Some(true);
    let policy = spec.dns_policy.clone().unwrap_or_else(|| "ClusterFirst".into());
    let cluster = ResolvConf {
        nameservers: cluster_dns.iter().map(ToString::to_string).collect(),
        searches: [format!("{ns}.svc.{domain}"), format!("svc.{domain}"), domain.to_owned()]
            .into_iter()
            .chain(host.searches.iter().cloned())
            .collect(),
        options: vec!["ndots:5".into()],
    };
    let mut r = match policy.as_str() {
        "None" => ResolvConf::default(),
        "Default" => host.clone(),
        "ClusterFirstWithHostNet" => cluster,
        // ClusterFirst on the host network falls back to Default, as upstream.
        _ if host_network => host.clone(),
        _ if cluster_dns.is_empty() => host.clone(),
        _ => cluster,
    };
    if let Some(cfg) = spec.dns_config {
        for ns in cfg.nameservers.unwrap_or_default() {
            if !r.nameservers.contains(&ns) {
                r.nameservers.push(ns);
            }
        }
        for s in cfg.searches.unwrap_or_default() {
            if !r.searches.contains(&s) {
                r.searches.push(s);
            }
        }
        for o in cfg.options.unwrap_or_default() {
            let entry = match &o.value {
                Some(v) => format!("{}:{v}", o.name.clone().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            };
            let name = o.name.clone().unwrap_or_default();
            r.options.retain(|x| x.split(':').next() != Some(name.as_str()));
            r.options.push(entry);
        }
    }
    r.nameservers.truncate(3);
    r.searches.truncate(32);
    r
}

/// The pod's hostname: `spec.hostname` or the pod name, at most 63 characters
/// (trailing `-`/`.` trimmed, as the kubelet does).
pub fn pod_hostname(pod: &Pod) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let name = spec.hostname.filter(|h| !h.is_empty()).unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    let mut h: String = name.chars().take(63).collect();
    while h.ends_with('-') || h.ends_with('.') {
        h.pop();
    }
    h
}

/// The pod's /etc/hosts.
pub fn hosts_file(pod: &Pod, ips: &[IpAddr], domain: &str) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let hostname = pod_hostname(pod);
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    for ip in ips {
        match spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => out.push_str(&format!("{ip}\t{hostname}.{sub}.{ns}.svc.{domain}\t{hostname}\n")),
            None => out.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    let aliases = spec.host_aliases.unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            out.push_str(&format!("{}\t{}\n", a.ip, a.hostnames.unwrap_or_default().join("\t")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    #[test]
    fn cluster_first_uses_cluster_dns_search_path_and_ndots() {
        let p = pod(serde_json::json!({"metadata": {"name": "web-1", "namespace": "shop"}, "spec": {"containers": []}}));
        let host = ResolvConf::parse("nameserver 8.8.8.8\nsearch corp.example\n");
        let r = resolv_conf(&p, &["10.96.0.10".parse().expect("ip")], "cluster.local", &host);
        assert_eq!(
            r.render(),
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn none_policy_takes_dns_config_and_default_takes_the_host() {
        let p = pod(serde_json::json!({"metadata": {"name": "a"}, "spec": {"containers": [], "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["1.2.3.4"], "searches": ["ns1.svc.cluster-domain.example"], "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}}));
        let r = resolv_conf(&p, &["10.96.0.10".parse().expect("ip")], "cluster.local", &ResolvConf::default());
        assert_eq!(r.render(), "search ns1.svc.cluster-domain.example\nnameserver 1.2.3.4\noptions ndots:2 edns0\n");
        let p = pod(serde_json::json!({"metadata": {"name": "a"}, "spec": {"containers": [], "dnsPolicy": "Default"}}));
        let host = ResolvConf::parse("nameserver 9.9.9.9\n");
        assert_eq!(resolv_conf(&p, &[], "cluster.local", &host).render(), "nameserver 9.9.9.9\n");
    }

    #[test]
    fn hosts_file_has_the_pod_line_and_aliases() {
        let p = pod(serde_json::json!({"metadata": {"name": "web-1", "namespace": "default"}, "spec": {"containers": [], "hostname": "h", "subdomain": "sub",
            "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["foo", "bar"]}]}}));
        let text = hosts_file(&p, &["10.244.0.5".parse().expect("ip")], "cluster.local");
        assert!(text.contains("10.244.0.5\th.sub.default.svc.cluster.local\th\n"), "{text}");
        assert!(text.ends_with("# Entries added by HostAliases.\n1.2.3.4\tfoo\tbar\n"), "{text}");
    }
}
