//! JSON patch (RFC 6902).

use super::PatchError;
use serde_json::Value;

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split(path: &str) -> Result<Vec<String>, PatchError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path.strip_prefix('/').ok_or_else(|| PatchError::Invalid(format!("JSON pointer must start with '/': {path:?}")))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn missing(path: &str) -> PatchError {
    PatchError::Operation(format!("doc is missing path: {path:?}: missing value"))
}

fn get<'a>(doc: &'a Value, tokens: &[String], path: &str) -> Result<&'a Value, PatchError> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        }
        .ok_or_else(|| missing(path))?;
    }
    Ok(cur)
}

fn parent_mut<'a>(doc: &'a mut Value, tokens: &[String], path: &str) -> Result<(&'a mut Value, String), PatchError> {
    let (last, head) = tokens.split_last().ok_or_else(|| PatchError::Operation("cannot address the document root here".into()))?;
    let mut cur = doc;
    for t in head {
        cur = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(move |i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| missing(path))?;
    }
    Ok((cur, last.clone()))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    let tokens = split(path)?;
    if tokens.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = parent_mut(doc, &tokens, path)?;
    match parent {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            let idx = if last == "-" { a.len() } else { last.parse::<usize>().map_err(|_| missing(path))? };
            if idx > a.len() {
                return Err(PatchError::Operation(format!("add operation does not apply: doc is missing path: {path:?}")));
            }
            a.insert(idx, value);
            Ok(())
        }
        _ => Err(missing(path)),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, PatchError> {
    let tokens = split(path)?;
    let (parent, last) = parent_mut(doc, &tokens, path)?;
    match parent {
        Value::Object(m) => m.remove(&last).ok_or_else(|| missing(path)),
        Value::Array(a) => {
            let idx = last.parse::<usize>().ok().filter(|i| *i < a.len()).ok_or_else(|| missing(path))?;
            Ok(a.remove(idx))
        }
        _ => Err(missing(path)),
    }
}

/// Applies a JSON patch (an array of operations) to `target`.
pub fn json_patch(target: &Value, ops: &Value) -> Result<Value, PatchError> {
    let ops = ops.as_array().ok_or_else(|| PatchError::Invalid("json patch must be an array of operations".into()))?;
    let mut doc = target.clone();
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).ok_or_else(|| PatchError::Invalid("missing \"op\" in JSON patch operation".into()))?;
        let path = op.get("path").and_then(Value::as_str).ok_or_else(|| PatchError::Invalid(format!("missing \"path\" in {kind} operation")))?;
        let value = || op.get("value").cloned().ok_or_else(|| PatchError::Invalid(format!("missing \"value\" in {kind} operation")));
        let from = || op.get("from").and_then(Value::as_str).ok_or_else(|| PatchError::Invalid(format!("missing \"from\" in {kind} operation")));
        match kind {
            "add" => add(&mut doc, path, value()?)?,
            "remove" => {
                remove(&mut doc, path)?;
            }
            "replace" => {
                remove(&mut doc, path)?;
                add(&mut doc, path, value()?)?;
            }
            "move" => {
                let v = remove(&mut doc, from()?)?;
                add(&mut doc, path, v)?;
            }
            "copy" => {
                let f = from()?;
                let v = get(&doc, &split(f)?, f)?.clone();
                add(&mut doc, path, v)?;
            }
            "test" => {
                let v = get(&doc, &split(path)?, path)?;
                if *v != value()? {
                    return Err(PatchError::Operation(format!("testing value {path} failed: test failed")));
                }
            }
            other => return Err(PatchError::Invalid(format!("Unexpected kind: {other}"))),
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operations() {
        let doc = json!({"spec": {"replicas": 1, "ports": [{"port": 80}]}, "a~b": {"c/d": 1}});
        let ops = json!([
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/spec/ports/-", "value": {"port": 443}},
            {"op": "test", "path": "/a~0b/c~1d", "value": 1},
            {"op": "copy", "from": "/spec/replicas", "path": "/copied"},
            {"op": "move", "from": "/copied", "path": "/moved"},
            {"op": "remove", "path": "/spec/ports/0"}
        ]);
        let out = json_patch(&doc, &ops).expect("applies");
        assert_eq!(out["spec"], json!({"replicas": 3, "ports": [{"port": 443}]}));
        assert_eq!(out["moved"], json!(3));
        assert!(out.get("copied").is_none());
    }

    #[test]
    fn failures_are_errors() {
        assert!(json_patch(&json!({}), &json!([{"op": "remove", "path": "/nope"}])).is_err());
        assert!(json_patch(&json!({"a": 1}), &json!([{"op": "test", "path": "/a", "value": 2}])).is_err());
        assert!(json_patch(&json!({}), &json!({"op": "add"})).is_err());
    }
}
