//! Go's `json.UnmarshalTypeError` text for a body that does not fit the
//! schema: `json: cannot unmarshal <json type> into Go struct field
//! <Struct>.<field.path> of type <go type>`.
//!
//! serde reports only a line, so bodies are printed one value per line and
//! the line gives the field's path; the Go names (the innermost struct, the
//! expected type) come from the decoder's own "expected ..." wording, probed
//! by replacing values and decoding again.

use super::RoundTrip;
use serde_json::{Value, json};

/// One step of a path into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// Prints `v` as JSON with every value starting on its own line, and the path
/// of the value that starts on each line (index 0 is line 1).
pub(super) fn print_lines(v: &Value) -> (String, Vec<Vec<Seg>>) {
    fn go(v: &Value, path: &mut Vec<Seg>, out: &mut String, lines: &mut Vec<Vec<Seg>>) {
        let newline = |out: &mut String, lines: &mut Vec<Vec<Seg>>, p: Vec<Seg>| {
            out.push('\n');
            lines.push(p);
        };
        match v {
            Value::Object(m) => {
                out.push('{');
                for (i, (k, c)) in m.iter().enumerate() {
                    path.push(Seg::Key(k.clone()));
                    newline(out, lines, path.clone());
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push_str(": ");
                    go(c, path, out, lines);
                    path.pop();
                    if i + 1 < m.len() {
                        out.push(',');
                    }
                }
                newline(out, lines, path.clone());
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, c) in a.iter().enumerate() {
                    path.push(Seg::Index(i));
                    newline(out, lines, path.clone());
                    go(c, path, out, lines);
                    path.pop();
                    if i + 1 < a.len() {
                        out.push(',');
                    }
                }
                newline(out, lines, path.clone());
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    let mut lines = vec![Vec::new()];
    go(v, &mut Vec::new(), &mut out, &mut lines);
    (out, lines)
}

fn get<'a>(v: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, s| match s {
        Seg::Key(k) => v.get(k),
        Seg::Index(i) => v.get(i),
    })
}

fn set(v: &mut Value, path: &[Seg], new: Value) {
    let mut cur = v;
    for s in path {
        let next = match s {
            Seg::Key(k) => cur.get_mut(k),
            Seg::Index(i) => cur.get_mut(i),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    *cur = new;
}

/// The serde message without its position.
fn core(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// What the decoder expected, from `invalid type: ..., expected X`.
fn expected(e: &serde_json::Error) -> Option<String> {
    let c = core(e);
    (c.starts_with("invalid type: ") || c.starts_with("invalid value: ")).then(|| c.rsplit_once(", expected ").map(|(_, x)| x.to_owned())).flatten()
}

/// Decodes `doc` with `path` replaced by `probe`; what the decoder then expected there.
fn probe(doc: &Value, path: &[Seg], probe: Value, decode: RoundTrip) -> Option<String> {
    let mut d = doc.clone();
    set(&mut d, path, probe);
    let (text, _) = print_lines(&d);
    decode(&text).err().and_then(|e| expected(&e))
}

/// Go's name for what serde expected at `path`.
fn go_type(doc: &Value, path: &[Seg], expected: &str, decode: RoundTrip) -> String {
    match expected {
        "i32" | "IntOrString" => "int32".into(),
        "i64" => "int64".into(),
        "f64" => "float64".into(),
        "a boolean" => "bool".into(),
        "a string" | "a timestamp string" => "string".into(),
        "a base64-encoded string" => "[]uint8".into(),
        "Quantity" => "resource.Quantity".into(),
        "a sequence" => {
            let mut elem = path.to_vec();
            elem.push(Seg::Index(0));
            match probe(doc, path, json!([true]), decode) {
                None => "[]bool".into(),
                Some(x) => format!("[]{}", go_type(doc, &elem, &x, decode)),
            }
        }
        "a map" => {
            let mut elem = path.to_vec();
            elem.push(Seg::Key("k".into()));
            match probe(doc, path, json!({"k": true}), decode).as_deref() {
                None => "map[string]bool".into(),
                Some("Quantity") => "v1.ResourceList".into(),
                Some(x) => format!("map[string]{}", go_type(doc, &elem, x, decode)),
            }
        }
        name => format!("v1.{name}"),
    }
}

/// Go's word for a JSON value in `cannot unmarshal <what>`.
fn json_kind(v: &Value, numeric_target: bool) -> String {
    match v {
        Value::String(_) => "string".into(),
        Value::Bool(_) => "bool".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
        Value::Number(n) if numeric_target => format!("number {n}"),
        Value::Number(_) => "number".into(),
        Value::Null => "null".into(),
    }
}

/// The message kube-apiserver's decoder gives for the first value of `doc`
/// that does not fit (after `<Kind> in version "v1" cannot be handled as a <Kind>: `).
pub(super) fn describe(doc: &Value, err: &serde_json::Error, decode: RoundTrip) -> String {
    let (_, lines) = print_lines(doc);
    let path = lines.get(err.line().saturating_sub(1)).cloned().unwrap_or_default();
    let Some(exp) = expected(err) else {
        // Errors of custom decoders (base64, timestamps) are passed through as Go does.
        let c = core(err);
        if let Some(offset) = c.strip_prefix("Invalid symbol ").and_then(|r| r.split_once("offset ")).map(|(_, o)| o.trim_end_matches('.')) {
            return format!("illegal base64 data at input byte {offset}");
        }
        if let Some(Value::String(s)) = get(doc, &path)
            && ["year", "timestamp", "date", "time"].iter().any(|w| c.contains(w))
        {
            let q = crate::status::go_quote(s);
            return format!("parsing time {q} as \"2006-01-02T15:04:05Z07:00\": cannot parse {q} as \"2006\"");
        }
        return c;
    };
    if exp == "Quantity" {
        return "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'".into();
    }
    let ty = go_type(doc, &path, &exp, decode);
    let numeric = matches!(ty.as_str(), "int32" | "int64" | "float64");
    let what = json_kind(get(doc, &path).unwrap_or(&Value::Null), numeric);
    // Walk the ancestors: struct members make up Go's field path, map keys and
    // array indices do not; the innermost struct names the error.
    let mut fields = Vec::new();
    let mut innermost: Option<String> = None;
    for k in (0..path.len()).rev() {
        let Seg::Key(key) = &path[k] else { continue };
        match probe(doc, &path[..k], json!(0), decode) {
            Some(x) if x == "a map" => {}
            Some(x) if x == "a sequence" => {}
            Some(name) => {
                innermost.get_or_insert(name);
                fields.push(key.clone());
            }
            None => fields.push(key.clone()),
        }
    }
    fields.reverse();
    match innermost {
        Some(s) if !fields.is_empty() => format!("json: cannot unmarshal {what} into Go struct field {s}.{} of type {ty}", fields.join(".")),
        _ => format!("json: cannot unmarshal {what} into Go value of type {ty}"),
    }
}
