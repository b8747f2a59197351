use super::*;
use crate::defaults::apply_defaults;
use crate::resources::find;
use serde_json::json;

fn deployment(spec: Value) -> Value {
    let mut d = json!({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "2"}, "spec": spec});
    apply_defaults(find("apps", "v1", "deployments").expect("deployments"), &mut d);
    d
}

fn texts(errs: Vec<FieldError>) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

fn template(labels: Value) -> Value {
    json!({"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
}

#[test]
fn a_plain_deployment_is_valid() {
    let d = deployment(json!({"selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "web"}))}));
    assert!(texts(validate_deployment(&d)).is_empty(), "{:?}", texts(validate_deployment(&d)));
}

#[test]
fn selector_is_required_and_must_match() {
    let d = deployment(json!({"template": template(json!({"app": "web"}))}));
    assert_eq!(texts(validate_deployment(&d)), [
        "spec.selector: Required value",
        "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
    ]);
    let d = deployment(json!({"selector": {"matchLabels": {"app": "api"}}, "template": template(json!({"app": "web"}))}));
    assert_eq!(texts(validate_deployment(&d)), ["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"]);
    let d = deployment(json!({"selector": {}, "template": template(json!({"app": "web"}))}));
    assert_eq!(
        texts(validate_deployment(&d)),
        ["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"]
    );
}

#[test]
fn selector_expressions_are_validated() {
    let d = deployment(json!({"selector": {"matchExpressions": [{"key": "app", "operator": "In"}, {"key": "tier", "operator": "Near", "values": ["x"]}]},
                              "template": template(json!({"app": "web"}))}));
    assert_eq!(texts(validate_deployment(&d)), [
        "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
        "spec.selector.matchExpressions[1].operator: Invalid value: \"Near\": not a valid selector operator",
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"app\", Operator:\"In\", Values:[]string(nil)}, v1.LabelSelectorRequirement{Key:\"tier\", Operator:\"Near\", Values:[]string{\"x\"}}}}: invalid label selector",
    ]);
}

#[test]
fn replicas_strategy_and_deadlines() {
    let d = deployment(json!({"replicas": -1, "selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "web"})),
        "strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}}, "minReadySeconds": 700, "revisionHistoryLimit": -2}));
    assert_eq!(texts(validate_deployment(&d)), [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0",
        "spec.revisionHistoryLimit: Invalid value: -2: must be greater than or equal to 0",
        "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds",
    ]);
    let d = deployment(json!({"selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "web"})),
        "strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}}));
    assert_eq!(texts(validate_deployment(&d)), ["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]);
    let d = deployment(json!({"selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "web"})),
        "strategy": {"rollingUpdate": {"maxUnavailable": "150%", "maxSurge": "x"}}}));
    assert_eq!(texts(validate_deployment(&d)), [
        "spec.strategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"x\"}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%",
    ]);
}

#[test]
fn template_restart_policy_must_be_always() {
    let mut t = template(json!({"app": "web"}));
    t["spec"]["restartPolicy"] = json!("Never");
    let d = deployment(json!({"selector": {"matchLabels": {"app": "web"}}, "template": t}));
    assert_eq!(texts(validate_deployment(&d)), ["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]);
}

#[test]
fn selector_is_immutable_on_update() {
    let old = deployment(json!({"selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "web", "v": "2"}))}));
    let new = deployment(json!({"selector": {"matchLabels": {"app": "web", "v": "2"}}, "template": template(json!({"app": "web", "v": "2"}))}));
    assert_eq!(
        texts(validate_deployment_update(&new, &old)),
        ["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"v\":\"2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"]
    );
    let mut scaled = old.clone();
    scaled["spec"]["replicas"] = json!(5);
    assert!(texts(validate_deployment_update(&scaled, &old)).is_empty());
}

#[test]
fn replica_sets() {
    let mut rs = json!({"metadata": {"name": "web-1", "namespace": "default", "resourceVersion": "1"},
                        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(json!({"app": "other"}))}});
    apply_defaults(find("apps", "v1", "replicasets").expect("rs"), &mut rs);
    assert_eq!(texts(validate_replica_set(&rs)), ["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"]);
    let mut new = rs.clone();
    new["spec"]["selector"]["matchLabels"]["app"] = json!("other");
    assert_eq!(
        texts(validate_replica_set_update(&new, &rs)),
        ["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"other\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"]
    );
}
