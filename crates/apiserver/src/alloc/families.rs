//! The IP family fields of a Service on a single- or dual-stack cluster:
//! upstream `NormalizeClusterIPs`, `patchAllocatedValues` (the IP part) and
//! `initIPFamilyFields`, run before any IP is allocated.

use super::service::AllocError;
use super::spec::{is_headless, needs_cluster_ip, policy, remove_spec, selectorless, set_spec, spec_str, spec_strings, svc_type};
use portico_api::status::{BadValue, FieldError};
use serde_json::{Value, json};
use std::net::IpAddr;

const IP_FORMAT: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

/// `IPv4` or `IPv6` for an address, `unknown` otherwise (upstream `familyOf`).
pub fn family_of(ip: &str) -> &'static str {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => "IPv4",
        Ok(IpAddr::V6(_)) => "IPv6",
        Err(_) => "unknown",
    }
}

fn other_family(f: &str) -> &'static str {
    if f == "IPv4" { "IPv6" } else { "IPv4" }
}

/// Keeps the allocated IPs an update left out (upstream `patchAllocatedValues`).
pub fn patch_cluster_ips(old: &Value, new: &mut Value) {
    if !(needs_cluster_ip(old) && needs_cluster_ip(new)) {
        return;
    }
    if spec_str(new, "clusterIP").is_empty() && !spec_str(old, "clusterIP").is_empty() {
        set_spec(new, "clusterIP", json!(spec_str(old, "clusterIP")));
    }
    let old_ips = spec_strings(old, "clusterIPs");
    if spec_strings(new, "clusterIPs").is_empty() && !old_ips.is_empty() {
        set_spec(new, "clusterIPs", json!(old_ips));
    }
}

/// Keeps `clusterIP` and `clusterIPs` in step (upstream `NormalizeClusterIPs`).
pub fn normalize_cluster_ips(old: Option<&Value>, new: &mut Value) {
    let ip = spec_str(new, "clusterIP").to_owned();
    let ips = spec_strings(new, "clusterIPs");
    let Some(old) = old else {
        if !ip.is_empty() && ips.is_empty() {
            set_spec(new, "clusterIPs", json!([ip]));
        }
        return;
    };
    let old_ip = spec_str(old, "clusterIP");
    let old_ips = spec_strings(old, "clusterIPs");
    if !old_ips.is_empty() && ips.is_empty() && old_ip == ip {
        set_spec(new, "clusterIPs", json!(old_ips));
    }
    if old_ip != ip {
        let same = spec_strings(new, "clusterIPs") == old_ips;
        if !old_ip.is_empty() && ip.is_empty() {
            if same {
                remove_spec(new, "clusterIPs");
            }
        } else if same {
            set_spec(new, "clusterIPs", json!([ip]));
        }
    }
}

/// Upstream `isMatchingPreferDualStackClusterIPFields`: an update of a
/// PreferDualStack Service that leaves its IPs and families alone.
pub fn matching_prefer_dual_stack(old: Option<&Value>, new: &Value) -> bool {
    let Some(old) = old else { return false };
    let Some(p) = policy(new) else { return false };
    svc_type(old) == svc_type(new)
        && matches!(svc_type(new), "ClusterIP" | "NodePort" | "LoadBalancer")
        && p == "PreferDualStack"
        && policy(old).is_none_or(|op| op == "PreferDualStack")
        && spec_strings(old, "clusterIPs") == spec_strings(new, "clusterIPs")
        && spec_strings(old, "ipFamilies") == spec_strings(new, "ipFamilies")
}

fn invalid(errs: Vec<FieldError>) -> Result<(), AllocError> {
    if errs.is_empty() { Ok(()) } else { Err(AllocError::Invalid(errs)) }
}

/// Defaults and checks `ipFamilyPolicy` and `ipFamilies` against the
/// cluster's families, primary first (upstream `initIPFamilyFields`).
pub fn init_ip_family_fields(cluster_families: &[&str], old: Option<&Value>, new: &mut Value) -> Result<(), AllocError> {
    let cluster_family = cluster_families.first().copied().unwrap_or("IPv4");
    let configured = |f: &str| cluster_families.contains(&f);
    if svc_type(new) == "ExternalName" || matching_prefer_dual_stack(old, new) {
        return Ok(());
    }
    if policy(new).is_none() {
        let p = match old.and_then(policy) {
            Some(p) => p.to_owned(),
            None if is_headless(new) && selectorless(new) => "RequireDualStack".to_owned(),
            None => "SingleStack".to_owned(),
        };
        set_spec(new, "ipFamilyPolicy", json!(p));
    }
    let pol = policy(new).unwrap_or("SingleStack").to_owned();
    let mut ips = spec_strings(new, "clusterIPs");
    let mut families = spec_strings(new, "ipFamilies");

    // Loose pre-validation, so that what follows only sees addresses.
    invalid(
        ips.iter()
            .enumerate()
            .filter(|(i, ip)| !(*i == 0 && *ip == "None") && ip.parse::<IpAddr>().is_err())
            .map(|(i, ip)| FieldError::invalid(format!("spec.clusterIPs[{i}]"), ip.as_str(), IP_FORMAT))
            .collect(),
    )?;

    let mut errs = Vec::new();
    let policy_err = |detail: &str| FieldError::invalid("spec.ipFamilyPolicy", BadValue::Str(pol.clone()), detail);
    if let Some(old) = old {
        let (old_ips, old_families) = (spec_strings(old, "clusterIPs"), spec_strings(old, "ipFamilies"));
        if pol == "SingleStack" {
            if old_ips == ips && ips.len() > 1 {
                ips.truncate(1);
            }
            if old_families == families && families.len() > 1 {
                families.truncate(1);
            }
        } else {
            if !ips.is_empty() && ips.len() < old_ips.len() {
                errs.push(policy_err("must be 'SingleStack' to release the secondary cluster IP"));
            }
            if !families.is_empty() && families.len() < old_families.len() {
                errs.push(policy_err("must be 'SingleStack' to release the secondary IP family"));
            }
        }
    }
    if pol == "SingleStack" {
        if ips.len() == 2 {
            errs.push(policy_err("must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified"));
        }
        if families.len() == 2 {
            errs.push(policy_err("must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"));
        }
    }
    for (i, ip) in ips.iter().enumerate() {
        if ip == "None" {
            break;
        }
        let fam = family_of(ip);
        if i >= families.len() {
            if configured(fam) {
                families.push(fam.to_owned());
            } else {
                errs.push(FieldError::invalid(format!("spec.clusterIPs[{i}]"), BadValue::string_slice(&ips), format!("{fam} is not configured on this cluster")));
            }
        }
    }
    if ips.is_empty() {
        remove_spec(new, "clusterIPs");
    } else {
        set_spec(new, "clusterIPs", json!(ips));
    }
    invalid(errs)?;

    // Headless and selectorless: families are free, even on one stack.
    if is_headless(new) && selectorless(new) {
        if families.is_empty() {
            families.push(cluster_family.to_owned());
        }
        if families.len() < 2 && pol != "SingleStack" {
            families.push(other_family(&families[0]).to_owned());
        }
        set_spec(new, "ipFamilies", json!(families));
        return Ok(());
    }

    let mut errs = Vec::new();
    if pol == "RequireDualStack" && cluster_families.len() < 2 {
        errs.push(policy_err("this cluster is not configured for dual-stack services"));
    }
    for (i, f) in families.iter().enumerate() {
        if !configured(f) {
            errs.push(FieldError::invalid(format!("spec.ipFamilies[{i}]"), f.as_str(), "not configured on this cluster"));
        }
    }
    invalid(errs)?;
    if families.is_empty() {
        families.push(cluster_family.to_owned());
    }
    // A Service that asks for dual-stack on a dual-stack cluster gets the other family too.
    if pol != "SingleStack" && families.len() == 1 && cluster_families.len() == 2 {
        families.push(other_family(&families[0]).to_owned());
    }
    set_spec(new, "ipFamilies", json!(families));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(spec: Value) -> Value {
        json!({"metadata": {"name": "s"}, "spec": spec})
    }

    fn errors(r: Result<(), AllocError>) -> Vec<String> {
        match r {
            Err(AllocError::Invalid(errs)) => errs.iter().map(ToString::to_string).collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn create_defaults_single_stack_and_infers_families() {
        let mut s = svc(json!({"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"], "selector": {"a": "b"}}));
        init_ip_family_fields(&["IPv4"], None, &mut s).expect("ok");
        assert_eq!((s["spec"]["ipFamilyPolicy"].as_str(), &s["spec"]["ipFamilies"]), (Some("SingleStack"), &json!(["IPv4"])));
        let mut e = svc(json!({"type": "ExternalName", "externalName": "x.example"}));
        init_ip_family_fields(&["IPv4"], None, &mut e).expect("ok");
        assert!(e["spec"].get("ipFamilyPolicy").is_none() && e["spec"].get("ipFamilies").is_none());
    }

    #[test]
    fn headless_selectorless_is_require_dual_stack_with_both_families() {
        let mut s = svc(json!({"clusterIP": "None", "clusterIPs": ["None"]}));
        init_ip_family_fields(&["IPv4"], None, &mut s).expect("ok");
        assert_eq!(s["spec"]["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
        // With a selector it is an ordinary single-stack Service.
        let mut h = svc(json!({"clusterIP": "None", "clusterIPs": ["None"], "selector": {"app": "x"}}));
        init_ip_family_fields(&["IPv4"], None, &mut h).expect("ok");
        assert_eq!((h["spec"]["ipFamilyPolicy"].as_str(), &h["spec"]["ipFamilies"]), (Some("SingleStack"), &json!(["IPv4"])));
    }

    #[test]
    fn other_families_and_dual_stack_are_refused_with_upstream_messages() {
        let mut v6 = svc(json!({"clusterIP": "fd00::5", "clusterIPs": ["fd00::5"], "selector": {"a": "b"}}));
        assert_eq!(
            errors(init_ip_family_fields(&["IPv4"], None, &mut v6)),
            ["spec.clusterIPs[0]: Invalid value: []string{\"fd00::5\"}: IPv6 is not configured on this cluster"]
        );
        let mut fam = svc(json!({"ipFamilies": ["IPv6"], "selector": {"a": "b"}}));
        assert_eq!(errors(init_ip_family_fields(&["IPv4"], None, &mut fam)), ["spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster"]);
        let mut req = svc(json!({"ipFamilyPolicy": "RequireDualStack", "selector": {"a": "b"}}));
        assert_eq!(
            errors(init_ip_family_fields(&["IPv4"], None, &mut req)),
            ["spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"]
        );
        let mut two = svc(json!({"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4", "IPv6"], "selector": {"a": "b"}}));
        assert_eq!(
            errors(init_ip_family_fields(&["IPv4"], None, &mut two))[0],
            "spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"
        );
        let mut bad = svc(json!({"clusterIP": "nope", "clusterIPs": ["nope"]}));
        assert_eq!(
            errors(init_ip_family_fields(&["IPv4"], None, &mut bad)),
            ["spec.clusterIPs[0]: Invalid value: \"nope\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
        );
    }

    #[test]
    fn prefer_dual_stack_stays_single_family_here() {
        let mut s = svc(json!({"ipFamilyPolicy": "PreferDualStack", "selector": {"a": "b"}}));
        init_ip_family_fields(&["IPv4"], None, &mut s).expect("ok");
        assert_eq!((s["spec"]["ipFamilyPolicy"].as_str(), &s["spec"]["ipFamilies"]), (Some("PreferDualStack"), &json!(["IPv4"])));
    }

    #[test]
    fn updates_adopt_the_old_policy() {
        let old = svc(json!({"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"], "ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4"]}));
        let mut new = svc(json!({"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"], "type": "NodePort"}));
        init_ip_family_fields(&["IPv4"], Some(&old), &mut new).expect("ok");
        assert_eq!(new["spec"]["ipFamilyPolicy"], "PreferDualStack");
        assert_eq!(new["spec"]["ipFamilies"], json!(["IPv4"]));
    }

    #[test]
    fn normalize_and_patch_cluster_ips() {
        let mut c = svc(json!({"clusterIP": "10.96.0.9"}));
        normalize_cluster_ips(None, &mut c);
        assert_eq!(c["spec"]["clusterIPs"], json!(["10.96.0.9"]));
        // An old client that only sends clusterIP keeps clusterIPs.
        let old = svc(json!({"clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"]}));
        let mut u = svc(json!({"clusterIP": "10.96.0.9"}));
        normalize_cluster_ips(Some(&old), &mut u);
        assert_eq!(u["spec"]["clusterIPs"], json!(["10.96.0.9"]));
        // Clearing clusterIP alone clears clusterIPs on the client's behalf.
        let mut cleared = svc(json!({"clusterIP": "", "clusterIPs": ["10.96.0.9"]}));
        normalize_cluster_ips(Some(&old), &mut cleared);
        assert!(cleared["spec"].get("clusterIPs").is_none());
        // A PUT without IPs gets the old ones back.
        let mut put = svc(json!({"ports": [{"port": 80}]}));
        patch_cluster_ips(&old, &mut put);
        assert_eq!((put["spec"]["clusterIP"].as_str(), &put["spec"]["clusterIPs"]), (Some("10.96.0.9"), &json!(["10.96.0.9"])));
        assert_eq!(family_of("fd00::1"), "IPv6");
        assert_eq!(family_of("x"), "unknown");
    }
}
