//! Field selector parsing, per-resource validation and matching.

use super::*;
use crate::resources::{CATALOGUE, find_kind};
use serde_json::json;

fn rd(group: &str, kind: &str) -> &'static ResourceDef {
    find_kind(group, kind).expect("kind in the catalogue")
}

fn parsed(s: &str) -> FieldSelector {
    FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn validate(s: &str, group: &str, kind: &str) -> Result<(), String> {
    parsed(s).validate_for(rd(group, kind)).map_err(|e| e.to_string())
}

#[test]
fn parses_terms_sorted() {
    let sel = parsed("status.phase!=Failed,spec.nodeName=node-1,metadata.name==web");
    let terms: Vec<(&str, &str, bool)> =
        sel.terms().iter().map(|t| (t.field.as_str(), t.value.as_str(), t.negated)).collect();
    assert_eq!(
        terms,
        [("metadata.name", "web", false), ("spec.nodeName", "node-1", false), ("status.phase", "Failed", true)]
    );
    assert_eq!(sel.to_string(), "metadata.name=web,spec.nodeName=node-1,status.phase!=Failed");
    assert!(parsed("").is_empty());
    assert!(parsed(",,").is_empty());
    assert_eq!(parsed("a=").terms()[0].value, "");
}

#[test]
fn escapes_in_values() {
    let sel = parsed(r"metadata.name=a\,b\=c\\d,type=x");
    assert_eq!(sel.terms()[0].value, r"a,b=c\d");
    assert_eq!(sel.to_string(), r"metadata.name=a\,b\=c\\d,type=x");
}

#[test]
fn syntax_errors_use_upstream_messages() {
    let err = |s: &str| FieldSelector::parse(s).map(|_| ()).map_err(|e| e.to_string());
    assert_eq!(
        err("metadata.name"),
        Err("invalid selector: 'metadata.name'; can't understand 'metadata.name'".to_owned())
    );
    assert_eq!(err("a=b,c"), Err("invalid selector: 'a=b,c'; can't understand 'c'".to_owned()));
    assert_eq!(err(r"a=b\x"), Err(r"invalid field selector: invalid escape sequence: \x".to_owned()));
    assert_eq!(err(r"a=b\"), Err(r"invalid field selector: invalid escape sequence: \".to_owned()));
    // `%v` of a Go rune prints its code point.
    assert_eq!(err("a=b=c"), Err("invalid field selector: unescaped character in value: 61".to_owned()));
}

#[test]
fn whitespace_is_part_of_the_label() {
    assert_eq!(
        validate("metadata.name = web", "", "Service"),
        Err("field label not supported: metadata.name ".to_owned())
    );
}

#[test]
fn pod_field_labels() {
    for f in [
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.podIPs",
        "status.nominatedNodeName",
        "spec.host",
    ] {
        assert_eq!(validate(&format!("{f}=x"), "", "Pod"), Ok(()), "{f}");
    }
    assert_eq!(validate("spec.containers=x", "", "Pod"), Err("field label not supported: spec.containers".to_owned()));
}

#[test]
fn core_kinds_with_their_own_conversions() {
    assert_eq!(validate("spec.unschedulable=true,metadata.name=n", "", "Node"), Ok(()));
    assert_eq!(
        validate("metadata.namespace=x", "", "Node"),
        Err("field label not supported: metadata.namespace".to_owned())
    );
    assert_eq!(validate("status.phase=Active", "", "Namespace"), Ok(()));
    assert_eq!(
        validate("metadata.namespace=x", "", "Namespace"),
        Err("field label not supported: metadata.namespace".to_owned())
    );
    assert_eq!(validate("type=kubernetes.io/tls", "", "Secret"), Ok(()));
    assert_eq!(validate("spec.clusterIP=None,spec.type=ClusterIP", "", "Service"), Ok(()));
    assert_eq!(validate("spec.selector=x", "", "Service"), Err("field label not supported: spec.selector".to_owned()));
    assert_eq!(
        validate(
            "involvedObject.name=web,involvedObject.namespace=default,involvedObject.kind=Service,involvedObject.uid=u,reason=x,source=kubelet,type=Normal,reportingComponent=c",
            "",
            "Event"
        ),
        Ok(())
    );
    assert_eq!(validate("message=x", "", "Event"), Err("field label not supported: message".to_owned()));
}

#[test]
fn other_kinds_accept_only_metadata() {
    for r in CATALOGUE.iter().filter(|r| !r.group.is_empty() || matches!(r.kind, "ConfigMap" | "Endpoints")) {
        assert_eq!(parsed("metadata.name=a,metadata.namespace=b").validate_for(r), Ok(()), "{}", r.kind);
    }
    assert_eq!(
        validate("status.replicas=2", "apps", "ReplicaSet"),
        Err(r#""status.replicas" is not a known field selector: only "metadata.name", "metadata.namespace""#.to_owned())
    );
    assert_eq!(
        validate("spec.ingressClassName=x", "networking.k8s.io", "Ingress"),
        Err(r#""spec.ingressClassName" is not a known field selector: only "metadata.name", "metadata.namespace""#
            .to_owned())
    );
}

#[test]
fn first_invalid_label_in_sorted_order_is_reported() {
    assert_eq!(validate("zzz=1,aaa=2", "", "Pod"), Err("field label not supported: aaa".to_owned()));
}

#[test]
fn matches_pods_like_kubectl_describe_node() {
    let pods = rd("", "Pod");
    let sel = parsed("spec.nodeName=node-1,status.phase!=Succeeded,status.phase!=Failed");
    let pod = |node: &str, phase: &str| json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"nodeName": node}, "status": {"phase": phase}});
    assert!(sel.matches(pods, &pod("node-1", "Running")));
    assert!(!sel.matches(pods, &pod("node-1", "Succeeded")));
    assert!(!sel.matches(pods, &pod("node-2", "Running")));
    assert!(parsed("spec.host=node-1").matches(pods, &pod("node-1", "Running")));
}

#[test]
fn pod_field_values() {
    let pods = rd("", "Pod");
    let pod = json!({"metadata": {"name": "p", "namespace": "ns"},
        "spec": {"restartPolicy": "Always", "schedulerName": "default-scheduler", "serviceAccountName": "default"},
        "status": {"podIP": "10.0.0.9", "podIPs": [{"ip": "10.244.0.5"}], "nominatedNodeName": "n2"}});
    for s in [
        "metadata.name=p",
        "metadata.namespace=ns",
        "spec.hostNetwork=false",
        "spec.restartPolicy=Always",
        "spec.schedulerName=default-scheduler",
        "spec.serviceAccountName=default",
        "status.podIP=10.244.0.5",
        "status.nominatedNodeName=n2",
        "spec.nodeName=",
        // Accepted by the conversion but never in the field set: only "" matches.
        "status.podIPs=",
    ] {
        assert!(parsed(s).matches(pods, &pod), "{s}");
    }
    assert!(!parsed("status.podIPs=10.244.0.5").matches(pods, &pod));
    assert!(parsed("spec.hostNetwork=true").matches(pods, &json!({"spec": {"hostNetwork": true}})));
}

#[test]
fn matches_events_for_kubectl_describe() {
    let events = rd("", "Event");
    let ev = json!({"metadata": {"name": "e", "namespace": "default"},
        "involvedObject": {"kind": "Service", "name": "web", "namespace": "default", "uid": "u-1"},
        "reason": "Created", "type": "Normal", "reportingComponent": "portico-controllers", "source": {}});
    let sel = parsed(
        "involvedObject.name=web,involvedObject.namespace=default,involvedObject.kind=Service,involvedObject.uid=u-1",
    );
    assert!(sel.validate_for(events).is_ok() && sel.matches(events, &ev));
    assert!(parsed("source=portico-controllers").matches(events, &ev), "source falls back to the reporting controller");
    assert!(!parsed("involvedObject.uid=other").matches(events, &ev));
}

#[test]
fn matches_other_kinds() {
    assert!(parsed("spec.unschedulable=false").matches(rd("", "Node"), &json!({"metadata": {"name": "n"}})));
    assert!(parsed("spec.unschedulable=true").matches(rd("", "Node"), &json!({"spec": {"unschedulable": true}})));
    assert!(
        parsed("metadata.namespace=").matches(rd("", "Node"), &json!({"metadata": {"name": "n", "namespace": "x"}}))
    );
    assert!(
        parsed("status.phase=Terminating").matches(rd("", "Namespace"), &json!({"status": {"phase": "Terminating"}}))
    );
    assert!(parsed("type=Opaque").matches(rd("", "Secret"), &json!({"type": "Opaque"})));
    let svc = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.5"}});
    assert!(parsed("spec.type=NodePort,spec.clusterIP=10.96.0.5").matches(rd("", "Service"), &svc));
    let cm = json!({"metadata": {"name": "kube-root-ca.crt", "namespace": "default"}});
    assert!(parsed("metadata.name=kube-root-ca.crt,metadata.namespace=default").matches(rd("", "ConfigMap"), &cm));
    assert!(!parsed("metadata.name!=kube-root-ca.crt").matches(rd("", "ConfigMap"), &cm));
    assert_eq!(parsed("metadata.name=a,type!=b").requires_exact_match("metadata.name"), Some("a"));
    assert_eq!(parsed("type!=b").requires_exact_match("type"), None);
}

#[test]
fn parser_never_panics_on_short_inputs() {
    let alphabet = ["a", "=", "!", ",", "\\", " ", "é"];
    for s in crate::selectors::label::tests::short_strings(&alphabet) {
        if let Ok(sel) = FieldSelector::parse(&s) {
            assert_eq!(FieldSelector::parse(&sel.to_string()).as_ref(), Ok(&sel), "{s:?}");
        }
    }
}
