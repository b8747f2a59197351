//! A table-driven protobuf wire decoder that produces Kubernetes JSON.

use base64::Engine;
use serde_json::{Map, Value, json};

/// How a field's bytes become JSON.
#[derive(Debug)]
pub enum Kind {
    /// UTF-8 string.
    String,
    /// int32/int64 varint.
    Int,
    /// bool varint.
    Bool,
    /// double.
    Float,
    /// bytes, as base64 in JSON.
    Bytes,
    /// `metav1.Time`: RFC 3339 seconds.
    Time,
    /// `metav1.MicroTime`: RFC 3339 with microseconds.
    MicroTime,
    /// `metav1.Duration` (nanoseconds), as Go's duration string.
    Duration,
    /// `intstr.IntOrString`.
    IntOrString,
    /// `resource.Quantity`: its string form.
    Quantity,
    /// A message carrying raw JSON in field 1 (`RawExtension`, `FieldsV1`).
    RawJson,
    /// A nested message.
    Message(&'static Msg),
    /// A repeated field.
    Repeated(&'static Kind),
    /// A `map<string, V>`.
    MapOf(&'static Kind),
}

/// One field of a message.
#[derive(Debug)]
pub struct Field {
    /// Protobuf field number.
    pub tag: u32,
    /// JSON name; empty for a struct Go inlines into its parent
    /// (`json:",inline"`).
    pub name: &'static str,
    /// Whether Go's JSON keeps the zero value (pointer fields and fields
    /// without `omitempty`; Go always puts non-pointer scalars on the wire).
    pub keep_zero: bool,
    /// Value kind.
    pub kind: Kind,
}

/// A message schema.
#[derive(Debug)]
pub struct Msg {
    /// Type name (for errors).
    pub name: &'static str,
    /// Fields.
    pub fields: &'static [Field],
}

/// A malformed body.
#[derive(Debug, thiserror::Error)]
#[error("protobuf body: {0}")]
pub struct WireError(pub String);

fn err(s: impl Into<String>) -> WireError {
    WireError(s.into())
}

/// A cursor over protobuf bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// A raw field value.
pub enum Raw<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

impl<'a> Reader<'a> {
    /// Reads `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or_else(|| err("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(err("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or_else(|| err("truncated field"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next (field number, value), or `None` at the end.
    pub fn next_field(&mut self) -> Result<Option<(u32, Raw<'a>)>, WireError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3).map_err(|_| err("field number out of range"))?;
        let raw = match key & 7 {
            0 => Raw::Varint(self.varint()?),
            1 => Raw::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| err("fixed64"))?)),
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| err("length out of range"))?;
                Raw::Bytes(self.take(n)?)
            }
            5 => Raw::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| err("fixed32"))?)),
            w => return Err(err(format!("unsupported wire type {w}"))),
        };
        Ok(Some((tag, raw)))
    }
}

fn time(secs: i64, nanos: i64, micro: bool) -> Value {
    // Go's zero time is serialised as null.
    if secs == 0 && nanos == 0 {
        return Value::Null;
    }
    let Ok(ts) = jiff::Timestamp::new(secs, i32::try_from(nanos).unwrap_or(0)) else { return Value::Null };
    if micro { json!(ts.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()) } else { json!(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()) }
}

fn varint_of(raw: &Raw<'_>) -> Result<u64, WireError> {
    match raw {
        Raw::Varint(v) => Ok(*v),
        _ => Err(err("expected a varint")),
    }
}

fn bytes_of<'a>(raw: &Raw<'a>) -> Result<&'a [u8], WireError> {
    match raw {
        Raw::Bytes(b) => Ok(b),
        _ => Err(err("expected a length-delimited field")),
    }
}

/// Decodes one value of a (non-repeated) kind.
fn value(kind: &Kind, raw: &Raw<'_>, depth: usize) -> Result<Value, WireError> {
    Ok(match kind {
        Kind::String => json!(std::str::from_utf8(bytes_of(raw)?).map_err(|_| err("string is not UTF-8"))?),
        Kind::Int => json!(varint_of(raw)? as i64),
        Kind::Bool => json!(varint_of(raw)? != 0),
        Kind::Float => match raw {
            Raw::Fixed64(v) => json!(f64::from_bits(*v)),
            _ => return Err(err("expected a double")),
        },
        Kind::Bytes => json!(base64::engine::general_purpose::STANDARD.encode(bytes_of(raw)?)),
        Kind::Time | Kind::MicroTime | Kind::Duration | Kind::IntOrString | Kind::Quantity | Kind::RawJson => {
            let mut r = Reader::new(bytes_of(raw)?);
            let mut f: [Option<Raw<'_>>; 4] = [None, None, None, None];
            while let Some((tag, v)) = r.next_field()? {
                if (1..=3).contains(&tag) {
                    f[tag as usize] = Some(v);
                }
            }
            let int = |i: usize| f[i].as_ref().map(varint_of).transpose().map(|v| v.unwrap_or(0) as i64);
            let string = |i: usize| -> Result<String, WireError> {
                match &f[i] {
                    Some(v) => Ok(String::from_utf8_lossy(bytes_of(v)?).into_owned()),
                    None => Ok(String::new()),
                }
            };
            match kind {
                Kind::Time => time(int(1)?, int(2)?, false),
                Kind::MicroTime => time(int(1)?, int(2)?, true),
                Kind::Duration => json!(format!("{}s", int(1)? as f64 / 1e9)),
                Kind::IntOrString => {
                    if int(1)? == 1 { json!(string(3)?) } else { json!(int(2)?) }
                }
                Kind::Quantity => json!(string(1)?),
                _ => match &f[1] {
                    Some(v) => serde_json::from_slice(bytes_of(v)?).map_err(|e| err(format!("embedded JSON: {e}")))?,
                    None => json!({}),
                },
            }
        }
        Kind::Message(m) => message(m, bytes_of(raw)?, depth + 1)?,
        Kind::Repeated(_) | Kind::MapOf(_) => return Err(err("nested collections are not used by Kubernetes types")),
    })
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Bool(b) => !b,
        Value::Null => true,
        _ => false,
    }
}

/// Decodes a message into a JSON object.
pub fn message(m: &Msg, bytes: &[u8], depth: usize) -> Result<Value, WireError> {
    if depth > 64 {
        return Err(err("message nesting too deep"));
    }
    let mut out = Map::new();
    let mut r = Reader::new(bytes);
    while let Some((tag, raw)) = r.next_field()? {
        let Some(field) = m.fields.iter().find(|f| f.tag == tag) else {
            return Err(err(format!("unknown field {tag} in {}", m.name)));
        };
        match &field.kind {
            Kind::Repeated(inner) => {
                let list = out.entry(field.name).or_insert_with(|| json!([]));
                let items = list.as_array_mut().ok_or_else(|| err("repeated field"))?;
                match (inner, &raw) {
                    // Packed repeated ints.
                    (Kind::Int, Raw::Bytes(b)) => {
                        let mut pr = Reader::new(b);
                        while pr.pos < b.len() {
                            items.push(json!(pr.varint()? as i64));
                        }
                    }
                    _ => items.push(value(inner, &raw, depth)?),
                }
            }
            Kind::MapOf(inner) => {
                let mut er = Reader::new(bytes_of(&raw)?);
                let (mut k, mut v) = (String::new(), None);
                while let Some((t, ev)) = er.next_field()? {
                    match t {
                        1 => k = String::from_utf8_lossy(bytes_of(&ev)?).into_owned(),
                        2 => v = Some(value(inner, &ev, depth)?),
                        _ => {}
                    }
                }
                let default = match inner {
                    Kind::String | Kind::Quantity => json!(""),
                    _ => json!(null),
                };
                let map = out.entry(field.name).or_insert_with(|| json!({}));
                if let Some(mm) = map.as_object_mut() {
                    mm.insert(k, v.unwrap_or(default));
                }
            }
            Kind::Message(inner) if field.name.is_empty() => {
                if let Value::Object(fields) = message(inner, bytes_of(&raw)?, depth + 1)? {
                    out.extend(fields);
                }
            }
            kind => {
                let v = value(kind, &raw, depth)?;
                if v.is_null() || (is_zero(&v) && !field.keep_zero) {
                    continue;
                }
                out.insert(field.name.to_owned(), v);
            }
        }
    }
    Ok(Value::Object(out))
}
