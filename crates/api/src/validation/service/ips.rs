//! `ValidateServiceClusterIPsRelatedFields` and the update rules for cluster
//! IPs and IP families (`validateUpgradeDowngradeClusterIPs`/`IPFamilies`).

use super::{is_headless, ty};
use crate::status::{BadValue, FieldError};
use crate::validation::fields::{go_slice, opt_str};
use crate::validation::net::{is_ipv6_string, parse_ip_sloppy, validate_ip};
use k8s_openapi::api::core::v1::ServiceSpec;

const FAMILIES: &[&str] = &["IPv4", "IPv6"];
const FAMILY_POLICIES: &[&str] = &["PreferDualStack", "RequireDualStack", "SingleStack"];

fn cluster_ips(spec: &ServiceSpec) -> BadValue {
    go_slice("string", spec.cluster_ips.as_ref())
}

/// `ValidateServiceClusterIPsRelatedFields` (skipped for ExternalName).
pub fn validate_cluster_ips_related_fields(spec: &ServiceSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if ty(spec) == "ExternalName" {
        return errs;
    }
    let ip = spec.cluster_ip.as_deref().unwrap_or("");
    let ips = spec.cluster_ips.as_deref().unwrap_or_default();
    let families = spec.ip_families.as_deref().unwrap_or_default();
    if !ip.is_empty() {
        if ips.is_empty() {
            errs.push(FieldError::required("spec.clusterIPs", ""));
        } else if ips[0] != ip {
            errs.push(FieldError::invalid("spec.clusterIPs", cluster_ips(spec), "first value must match `clusterIP`"));
        }
    } else if !ips.is_empty() {
        errs.push(FieldError::invalid("spec.clusterIPs", cluster_ips(spec), "must be empty when `clusterIP` is not specified"));
    }
    for (i, f) in families.iter().enumerate() {
        if !FAMILIES.contains(&f.as_str()) {
            errs.push(FieldError::not_supported(format!("spec.ipFamilies[{i}]"), f.as_str(), FAMILIES));
        }
        if families[..i].contains(f) {
            errs.push(FieldError::duplicate(format!("spec.ipFamilies[{i}]"), f.as_str()));
        }
    }
    if let Some(policy) = spec.ip_family_policy.as_deref()
        && !FAMILY_POLICIES.contains(&policy)
    {
        errs.push(FieldError::not_supported("spec.ipFamilyPolicy", policy, FAMILY_POLICIES));
    }
    let mut invalid_ips = false;
    for (i, cip) in ips.iter().enumerate() {
        if i == 0 && cip == "None" {
            if ips.len() > 1 {
                invalid_ips = true;
                errs.push(FieldError::invalid("spec.clusterIPs", cluster_ips(spec), "'None' must be the first and only value"));
            }
            continue;
        }
        let e = validate_ip(&format!("spec.clusterIPs[{i}]"), cip);
        invalid_ips |= !e.is_empty();
        errs.extend(e);
    }
    if ips.len() > 2 {
        errs.push(FieldError::invalid("spec.clusterIPs", cluster_ips(spec), "may only hold up to 2 values"));
    }
    // Further checks would only restate a bad IP or a misplaced None.
    if invalid_ips {
        return errs;
    }
    if ips.len() > 1 {
        let v6: Vec<bool> = ips.iter().map(|s| is_ipv6_string(s)).collect();
        let dual_stack = ips.len() == 2 && v6[0] != v6[1] && ips.iter().all(|s| parse_ip_sloppy(s).is_some());
        if !dual_stack {
            errs.push(FieldError::invalid("spec.clusterIPs", cluster_ips(spec), "may specify no more than one IP for each IP family"));
        }
    }
    if !is_headless(spec) && !ips.is_empty() && !families.is_empty() {
        for (i, (cip, fam)) in ips.iter().zip(families).enumerate() {
            if fam == "IPv4" && is_ipv6_string(cip) {
                errs.push(FieldError::invalid(format!("spec.clusterIPs[{i}]"), cip.as_str(), format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`")));
            }
            if fam == "IPv6" && !is_ipv6_string(cip) {
                errs.push(FieldError::invalid(format!("spec.clusterIPs[{i}]"), cip.as_str(), format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`")));
            }
        }
    }
    errs
}

/// `validateUpgradeDowngradeClusterIPs`.
pub fn validate_upgrade_downgrade_cluster_ips(old: &ServiceSpec, new: &ServiceSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if ty(new) == "ExternalName" || ty(old) == "ExternalName" || (is_headless(old) && is_headless(new)) {
        return errs;
    }
    let (o, n) = (old.cluster_ips.as_deref().unwrap_or_default(), new.cluster_ips.as_deref().unwrap_or_default());
    let changed = |errs: &mut Vec<FieldError>, i: usize| {
        errs.push(FieldError::invalid(format!("spec.clusterIPs[{i}]"), cluster_ips(new), "may not change once set"));
    };
    if o.len() == n.len() {
        for (i, ip) in o.iter().enumerate() {
            if *ip != n[i] {
                changed(&mut errs, i);
            }
        }
    } else if o.len() > n.len() {
        if n.is_empty() {
            errs.push(FieldError::invalid("spec.clusterIPs[0]", cluster_ips(new), "primary clusterIP can not be unset"));
        }
        if !o.is_empty() && !n.is_empty() && n[0] != o[0] {
            changed(&mut errs, 0);
        }
        if n.len() == 1 && new.ip_family_policy.as_deref() != Some("SingleStack") {
            errs.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                opt_str(new.ip_family_policy.as_ref()),
                "must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !o.is_empty() && n[0] != o[0] {
        changed(&mut errs, 0);
    }
    errs
}

/// `validateUpgradeDowngradeIPFamilies`.
pub fn validate_upgrade_downgrade_ip_families(old: &ServiceSpec, new: &ServiceSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if ty(new) == "ExternalName" || ty(old) == "ExternalName" || is_headless(old) != is_headless(new) || is_headless(new) {
        return errs;
    }
    let (o, n) = (old.ip_families.as_deref().unwrap_or_default(), new.ip_families.as_deref().unwrap_or_default());
    let families = go_slice("core.IPFamily", new.ip_families.as_ref());
    if o.len() == n.len() {
        for (i, f) in o.iter().enumerate() {
            if *f != n[i] {
                // Upstream reports every difference at index 0.
                errs.push(FieldError::invalid("spec.ipFamilies[0]", families.clone(), "may not change once set"));
            }
        }
    } else if o.len() > n.len() {
        if new.cluster_ips.as_ref().is_none_or(Vec::is_empty) {
            errs.push(FieldError::invalid("spec.ipFamilies[0]", families.clone(), "primary ipFamily can not be unset"));
        }
        if !n.is_empty() && n[0] != o[0] {
            errs.push(FieldError::invalid("spec.ipFamilies[0]", cluster_ips(new), "may not change once set"));
        }
        if n.len() == 1 && new.ip_family_policy.as_deref() != Some("SingleStack") {
            errs.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                opt_str(new.ip_family_policy.as_ref()),
                "must be set to 'SingleStack' when releasing the secondary ipFamily",
            ));
        }
    } else if !o.is_empty() && !n.is_empty() && n[0] != o[0] {
        errs.push(FieldError::invalid("spec.ipFamilies[0]", cluster_ips(new), "may not change once set"));
    }
    errs
}
