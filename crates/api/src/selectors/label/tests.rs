//! Label selector parsing, errors and matching, against upstream's behaviour.

use super::*;
use serde_json::json;

fn labels(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn parse_err(s: &str) -> String {
    LabelSelector::parse(s).map(|s| s.to_string()).expect_err(s).to_string()
}

/// The canonical form of a parsed selector.
fn canonical(s: &str) -> String {
    LabelSelector::parse(s).map(|s| s.to_string()).unwrap_or_else(|e| panic!("{s}: {e}"))
}

const KEY_REGEX_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

#[test]
fn parses_every_operator() {
    assert_eq!(canonical("app=web"), "app=web");
    assert_eq!(canonical("app==web"), "app==web");
    assert_eq!(canonical("app!=web"), "app!=web");
    assert_eq!(canonical("tier in (front, back)"), "tier in (back,front)");
    assert_eq!(canonical("tier notin (a)"), "tier notin (a)");
    assert_eq!(canonical("app"), "app");
    assert_eq!(canonical("!app"), "!app");
    assert_eq!(canonical("n>5,m<3"), "m<3,n>5");
}

#[test]
fn sorts_requirements_by_key_and_dedups_values() {
    assert_eq!(canonical("z=1,a in (y,x,y),m"), "a in (x,y),m,z=1");
}

#[test]
fn whitespace_is_ignored_between_tokens() {
    assert_eq!(canonical("  app = web ,\ttier\nin ( a , b ) "), "app=web,tier in (a,b)");
    assert_eq!(canonical(""), "");
    assert_eq!(canonical("   "), "");
    assert!(LabelSelector::parse("").map(|s| s.is_empty()).unwrap_or(false));
}

#[test]
fn empty_values() {
    assert_eq!(LabelSelector::parse("a=").map(|s| s.requirements()[0].values().to_vec()), Ok(vec![String::new()]));
    assert_eq!(LabelSelector::parse("a in ()").map(|s| s.requirements()[0].values().to_vec()), Ok(vec![String::new()]));
    assert_eq!(
        LabelSelector::parse("x in (foo,,baz),y,z notin ()").map(|s| s.requirements()[0].values().to_vec()),
        Ok(vec![String::new(), "baz".to_owned(), "foo".to_owned()])
    );
    assert_eq!(canonical("a in (,)"), "a in ()");
}

#[test]
fn in_and_notin_are_words_in_value_position() {
    assert_eq!(canonical("in=notin"), "in=notin");
    assert_eq!(canonical("x in (in,notin)"), "x in (in,notin)");
}

#[test]
fn syntax_errors_use_upstream_messages() {
    assert_eq!(parse_err("a b"), "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt");
    assert_eq!(parse_err("a=b,"), "found '', expected: identifier after ','");
    assert_eq!(parse_err("a=b c"), "found 'c', expected: ',' or 'end of string'");
    assert_eq!(parse_err("=a"), "found '=', expected: !, identifier, or 'end of string'");
    assert_eq!(parse_err("a in b"), "unable to parse requirement: found 'b' expected: '('");
    assert_eq!(parse_err("a in (b c)"), "unable to parse requirement: found 'c', expected: ',' or ')'");
    assert_eq!(parse_err("a in (b,"), "unable to parse requirement: found '', expected: ',', or identifier");
    assert_eq!(parse_err("a in (=)"), "unable to parse requirement: found '=', expected: ',', ')' or identifier");
    assert_eq!(parse_err("a=(b)"), "unable to parse requirement: found '(', expected: identifier");
    assert_eq!(parse_err("!=a"), "found '!=', expected: !, identifier, or 'end of string'");
    assert_eq!(parse_err("! =a"), "unable to parse requirement: found '=', expected: identifier");
    assert_eq!(parse_err("!a=b"), "found '=', expected: ',' or 'end of string'");
}

#[test]
fn invalid_keys_report_a_nil_path() {
    assert_eq!(
        parse_err("app:monolith"),
        format!("unable to parse requirement: <nil>: Invalid value: \"app:monolith\": {KEY_REGEX_MSG}")
    );
    assert_eq!(
        parse_err("app.kubernetes_io/name=vault"),
        "unable to parse requirement: <nil>: Invalid value: \"app.kubernetes_io/name\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
}

#[test]
fn invalid_values_report_their_path() {
    assert_eq!(
        parse_err("app=a@b"),
        "unable to parse requirement: values[0][app]: Invalid value: \"a@b\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
    );
    assert_eq!(
        parse_err("n>x"),
        "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"
    );
}

#[test]
fn matching_semantics() {
    let l = labels(json!({"app": "web", "tier": "front", "n": "7"}));
    let m = |s: &str| LabelSelector::parse(s).map(|sel| sel.matches(&l)).unwrap_or_else(|e| panic!("{s}: {e}"));
    assert!(m(""));
    assert!(m("app=web"));
    assert!(m("app==web,tier"));
    assert!(!m("app=db"));
    assert!(m("app!=db"));
    assert!(m("missing!=x"), "!= matches an absent label");
    assert!(m("tier in (front,back)"));
    assert!(!m("missing in (a)"));
    assert!(m("tier notin (back)"));
    assert!(m("missing notin (a)"), "notin matches an absent label");
    assert!(!m("tier notin (front)"));
    assert!(m("!missing"));
    assert!(!m("!app"));
    assert!(m("n>5") && m("n<8") && !m("n>7") && !m("app>1") && !m("missing<1"));
    assert!(!m("app=web,tier=back"));
}

#[test]
fn label_selector_json() {
    let sel = LabelSelector::from_label_selector_json(&json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front", "edge"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "zone", "operator": "Exists"}
        ]
    }))
    .expect("valid");
    assert_eq!(sel.to_string(), "app=web,!canary,env notin (dev),tier in (edge,front),zone");
    assert!(sel.matches(&labels(json!({"app": "web", "tier": "edge", "zone": "a"}))));
    assert!(!sel.matches(&labels(json!({"app": "web", "tier": "edge", "zone": "a", "canary": "1"}))));
    assert!(!sel.matches(&labels(json!({"app": "web", "tier": "edge"}))));
}

#[test]
fn label_selector_json_empty_and_null() {
    let everything = LabelSelector::from_label_selector_json(&json!({})).expect("valid");
    assert!(everything.is_empty() && everything.matches(&Map::new()));
    let also =
        LabelSelector::from_label_selector_json(&json!({"matchLabels": {}, "matchExpressions": []})).expect("valid");
    assert!(also.is_empty());
    let nothing = LabelSelector::from_label_selector_json(&Value::Null).expect("valid");
    assert!(nothing.matches_nothing() && !nothing.is_empty());
    assert!(!nothing.matches(&labels(json!({"app": "web"}))));
    assert_eq!(nothing.to_string(), "");
}

#[test]
fn label_selector_json_errors() {
    let bad_op = LabelSelector::from_label_selector_json(
        &json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]}),
    );
    assert_eq!(bad_op.map_err(|e| e.to_string()), Err("\"Equals\" is not a valid label selector operator".to_owned()));
    let no_values =
        LabelSelector::from_label_selector_json(&json!({"matchExpressions": [{"key": "a", "operator": "In"}]}));
    assert_eq!(
        no_values.map_err(|e| e.to_string()),
        Err("values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty".to_owned())
    );
    let exists_with_values = LabelSelector::from_label_selector_json(
        &json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
    );
    assert_eq!(
        exists_with_values.map_err(|e| e.to_string()),
        Err("values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not exist".to_owned())
    );
    let bad_key = LabelSelector::from_label_selector_json(&json!({"matchLabels": {"a b": "c"}}));
    assert_eq!(bad_key.map_err(|e| e.to_string()), Err(format!("key: Invalid value: \"a b\": {KEY_REGEX_MSG}")));
}

#[test]
fn several_requirement_errors_are_aggregated() {
    let err = Requirement::new("-k", Operator::Equals, vec!["-v".to_owned()]).map(|_| ()).map_err(|e| e.to_string());
    let msg = err.expect_err("invalid");
    assert!(msg.starts_with("[key: Invalid value: \"-k\": "), "{msg}");
    assert!(msg.contains(", values[0][-k]: Invalid value: \"-v\": a valid label"), "{msg}");
}

#[test]
fn service_selector_from_map() {
    let sel = LabelSelector::from_map(&labels(json!({"tier": "front", "app": "web"})));
    assert_eq!(sel.to_string(), "app=web,tier=front");
    assert!(sel.matches(&labels(json!({"app": "web", "tier": "front", "extra": "1"}))));
    assert!(!sel.matches(&labels(json!({"app": "web"}))));
    assert!(LabelSelector::from_map(&Map::new()).matches(&Map::new()));
    assert_eq!(sel.requires_exact_match("app"), Some("web"));
    assert_eq!(sel.requires_exact_match("zone"), None);
}

#[test]
fn matches_object_labels() {
    let sel = LabelSelector::parse("app=web").expect("valid");
    assert!(sel.matches_object(&json!({"metadata": {"labels": {"app": "web"}}})));
    assert!(!sel.matches_object(&json!({"metadata": {}})));
    assert!(LabelSelector::parse("!app").expect("valid").matches_object(&json!({"metadata": {}})));
}

/// Every string of up to four symbols from an alphabet of grammar pieces, for no-panic sweeps.
pub(crate) fn short_strings(alphabet: &[&str]) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut frontier = vec![String::new()];
    for _ in 0..4 {
        let next: Vec<String> = frontier.iter().flat_map(|s| alphabet.iter().map(move |a| format!("{s}{a}"))).collect();
        out.extend(next.iter().cloned());
        frontier = next;
    }
    out
}

#[test]
fn parser_never_panics_on_short_inputs() {
    let alphabet = ["a", "=", "!", "(", ")", ",", " ", "in", "<", ">", "\0", "é", "/"];
    for s in short_strings(&alphabet) {
        if let Ok(sel) = LabelSelector::parse(&s) {
            // Whatever parses prints back to something that parses to the same selector.
            assert_eq!(LabelSelector::parse(&sel.to_string()).as_ref(), Ok(&sel), "{s:?}");
        }
    }
}
