//! Server-side printing: objects as `meta.k8s.io/v1` Tables, cell for cell
//! what kube-apiserver 1.32 sends (`pkg/printers/internalversion/printers.go`).
//!
//! kubectl asks for `as=Table` on `get` and prints the columns and cells it
//! receives verbatim (upper-casing the column names and hiding `priority > 0`
//! columns unless `-o wide`). The apiserver always generates the wide form, so
//! every column and cell is present here and load-balancer addresses are never
//! clipped.

mod apps;
mod core;
mod descriptions;
pub mod duration;
mod event;
mod networking;
mod node;
mod pod;
mod service;

pub use duration::human_duration;

use crate::resources::ResourceDef;
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use std::str::FromStr;

/// What each Table row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

/// An `includeObject` query value upstream does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unrecognized includeObject value: {}", crate::status::go_quote(.0))]
pub struct UnrecognizedIncludeObject(pub String);

impl FromStr for IncludeObject {
    type Err = UnrecognizedIncludeObject;

    /// Parses the `includeObject` parameter; the empty string means `Metadata`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "None" => Ok(Self::None),
            "Metadata" | "" => Ok(Self::Metadata),
            "Object" => Ok(Self::Object),
            other => Err(UnrecognizedIncludeObject(other.to_owned())),
        }
    }
}

/// One `TableColumnDefinition`.
#[derive(Debug, Clone, Copy)]
struct Column {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    description: &'static str,
    priority: i32,
}

impl Column {
    /// A `string` column shown by default.
    const fn string(name: &'static str, description: &'static str) -> Self {
        Self { name, ty: "string", format: "", description, priority: 0 }
    }
    /// An `integer` column shown by default.
    const fn integer(name: &'static str, description: &'static str) -> Self {
        Self { name, ty: "integer", format: "", description, priority: 0 }
    }
    /// A `string` column shown only with `-o wide`.
    const fn wide(name: &'static str, description: &'static str) -> Self {
        Self { name, ty: "string", format: "", description, priority: 1 }
    }

    fn to_json(self) -> Value {
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// The object's name, the first column of nearly every kind.
const NAME: Column =
    Column { name: "Name", ty: "string", format: "name", description: descriptions::OBJECT_META_NAME, priority: 0 };
/// The object's age.
const AGE: Column = Column::string("Age", descriptions::OBJECT_META_CREATION_TIMESTAMP);

/// How one kind is printed.
struct Printer {
    columns: &'static [Column],
    cells: fn(&Value, Timestamp) -> Vec<Value>,
    /// `TableRow.conditions`, for kinds that report them (pods).
    conditions: fn(&Value) -> Option<Value>,
}

fn no_conditions(_: &Value) -> Option<Value> {
    None
}

/// Upstream's default table for kinds without a printer: name and creation time.
const DEFAULT: Printer = Printer {
    columns: &[
        NAME,
        Column {
            name: "Created At",
            ty: "date",
            format: "",
            description: descriptions::OBJECT_META_CREATION_TIMESTAMP,
            priority: 0,
        },
    ],
    cells: default_cells,
    conditions: no_conditions,
};

fn default_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let created = duration::parse_timestamp(obj.pointer("/metadata/creationTimestamp"))
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_owned());
    vec![json!(name(obj)), json!(created)]
}

fn printer(rd: &ResourceDef) -> &'static Printer {
    match (rd.group, rd.kind) {
        ("", "ConfigMap") => &core::CONFIG_MAP,
        ("", "Endpoints") => &service::ENDPOINTS,
        ("", "Event") => &event::EVENT,
        ("", "Namespace") => &core::NAMESPACE,
        ("", "Node") => &node::NODE,
        ("", "Pod") => &pod::POD,
        ("", "Secret") => &core::SECRET,
        ("", "Service") => &service::SERVICE,
        ("apps", "Deployment") => &apps::DEPLOYMENT,
        ("apps", "ReplicaSet") => &apps::REPLICA_SET,
        ("coordination.k8s.io", "Lease") => &core::LEASE,
        ("discovery.k8s.io", "EndpointSlice") => &service::ENDPOINT_SLICE,
        ("networking.k8s.io", "Ingress") => &networking::INGRESS,
        ("networking.k8s.io", "IngressClass") => &networking::INGRESS_CLASS,
        _ => &DEFAULT,
    }
}

/// The `columnDefinitions` of a kind's Table, in upstream order, wide columns included.
pub fn column_definitions(rd: &ResourceDef) -> Vec<Value> {
    printer(rd).columns.iter().map(|c| c.to_json()).collect()
}

/// The cells of one object's row, one per column of [`column_definitions`].
/// Cells are JSON strings or integers, as upstream emits them.
pub fn row_cells(rd: &ResourceDef, obj: &Value, now: Timestamp) -> Vec<Value> {
    (printer(rd).cells)(obj, now)
}

/// One `TableRow`: cells, conditions (pods only) and the object as `include` asks.
pub fn row(rd: &ResourceDef, obj: &Value, include: IncludeObject, now: Timestamp) -> Value {
    let p = printer(rd);
    let mut row = Map::new();
    row.insert("cells".to_owned(), Value::Array((p.cells)(obj, now)));
    if let Some(conditions) = (p.conditions)(obj) {
        row.insert("conditions".to_owned(), conditions);
    }
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            let metadata = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
            row.insert(
                "object".to_owned(),
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}),
            );
        }
        IncludeObject::Object => {
            let mut full = obj.clone();
            if let Value::Object(m) = &mut full {
                m.entry("kind").or_insert_with(|| json!(rd.kind));
                m.entry("apiVersion").or_insert_with(|| json!(rd.api_version()));
            }
            row.insert("object".to_owned(), full);
        }
    }
    Value::Object(row)
}

/// A whole `meta.k8s.io/v1` Table of `objects`.
///
/// `list_meta` becomes the Table's `metadata`: the list's `resourceVersion`,
/// `continue` and `remainingItemCount`, or for a single-object GET just the
/// object's `resourceVersion`. A watch event's object is a one-row Table.
pub fn table(rd: &ResourceDef, objects: &[Value], include: IncludeObject, list_meta: Value, now: Timestamp) -> Value {
    let rows: Vec<Value> = objects.iter().map(|o| row(rd, o, include, now)).collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": column_definitions(rd),
        "rows": rows,
    })
}

// ---- reading fields of an object as Go's zero-valued structs would ----

/// The string at a JSON pointer, or `""`.
fn str_at<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The integer at a JSON pointer, or `0`.
fn int_at(obj: &Value, ptr: &str) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

/// The array at a JSON pointer, or an empty slice.
fn array_at<'a>(obj: &'a Value, ptr: &str) -> &'a [Value] {
    obj.pointer(ptr).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// The number of entries of the map at a JSON pointer.
fn map_len(obj: &Value, ptr: &str) -> usize {
    obj.pointer(ptr).and_then(Value::as_object).map_or(0, Map::len)
}

/// `metadata.name`.
fn name(obj: &Value) -> &str {
    str_at(obj, "/metadata/name")
}

/// The Age cell: `translateTimestampSince(creationTimestamp)`.
fn age(obj: &Value, now: Timestamp) -> String {
    duration::since_value(obj.pointer("/metadata/creationTimestamp"), now)
}

/// `labels.FormatLabels`: `k=v,k2=v2` sorted by key, or `<none>`.
fn format_labels(map: Option<&Value>) -> String {
    let mut pairs: Vec<(&str, &str)> = map
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    pairs.sort_unstable();
    let s: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if s.is_empty() { "<none>".to_owned() } else { s.join(",") }
}

/// `layoutContainerCells`: container names and images, comma-joined.
fn container_cells(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// `listWithMoreString`: the first entries, then ` + N more...`; `<unset>` when empty.
fn list_with_more(list: &[String], more: bool, count: usize, max: usize) -> String {
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", count - max);
    }
    if ret.is_empty() { "<unset>".to_owned() } else { ret }
}

/// `loadBalancerStatusStringer` in its wide form: sorted unique IPs (or hostnames).
fn load_balancer_ingress(ingress: &[Value]) -> String {
    let mut set: Vec<&str> = ingress
        .iter()
        .filter_map(|i| {
            let ip = str_at(i, "/ip");
            let host = str_at(i, "/hostname");
            if !ip.is_empty() {
                Some(ip)
            } else if !host.is_empty() {
                Some(host)
            } else {
                None
            }
        })
        .collect();
    set.sort_unstable();
    set.dedup();
    set.join(",")
}

#[cfg(test)]
mod tests;
