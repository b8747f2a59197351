//! Shared helpers for the printer tests, and tests of the Table envelope.

use super::*;
use crate::resources::{CATALOGUE, find_kind};

/// The instant every printer test is evaluated at.
pub(super) const NOW: &str = "2024-05-01T12:00:00Z";

pub(super) fn now() -> Timestamp {
    NOW.parse().expect("valid timestamp")
}

fn def(kind: &str) -> &'static ResourceDef {
    CATALOGUE.iter().find(|r| r.kind == kind).expect("kind in the catalogue")
}

/// The cells of one object of `kind` at [`NOW`].
pub(super) fn cells(kind: &str, obj: &Value) -> Value {
    Value::Array(row_cells(def(kind), obj, now()))
}

/// The row of one object of `kind` at [`NOW`].
pub(super) fn row_of(kind: &str, obj: &Value, include: IncludeObject) -> Value {
    row(def(kind), obj, include, now())
}

/// Column names of `kind`.
pub(super) fn names(kind: &str) -> Vec<String> {
    column_definitions(def(kind)).iter().map(|c| c["name"].as_str().unwrap_or_default().to_owned()).collect()
}

/// Column priorities of `kind`.
pub(super) fn priorities(kind: &str) -> Vec<i64> {
    column_definitions(def(kind)).iter().map(|c| c["priority"].as_i64().unwrap_or(-1)).collect()
}

/// Column types of `kind`.
pub(super) fn types(kind: &str) -> Vec<String> {
    column_definitions(def(kind)).iter().map(|c| c["type"].as_str().unwrap_or_default().to_owned()).collect()
}

#[test]
fn every_catalogue_kind_has_a_printer_with_matching_cells() {
    let empty = json!({"metadata": {"name": "x"}});
    for rd in CATALOGUE {
        assert!(!std::ptr::eq(printer(rd), &DEFAULT), "{} has no printer", rd.kind);
        let columns = column_definitions(rd);
        assert_eq!(row_cells(rd, &empty, now()).len(), columns.len(), "{}", rd.kind);
        for c in &columns {
            let keys: Vec<&str> = c.as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
            assert_eq!(keys, ["name", "type", "format", "description", "priority"], "{}", rd.kind);
            assert!(!c["description"].as_str().unwrap_or_default().is_empty(), "{} {}", rd.kind, c["name"]);
        }
    }
}

#[test]
fn name_column_is_formatted_as_name() {
    let svc = find_kind("", "Service").expect("services");
    assert_eq!(
        column_definitions(svc)[0],
        json!({"name": "Name", "type": "string", "format": "name", "description": descriptions::OBJECT_META_NAME, "priority": 0})
    );
    assert_eq!(column_definitions(svc)[5]["description"], json!(descriptions::OBJECT_META_CREATION_TIMESTAMP));
}

fn service() -> Value {
    json!({
        "kind": "Service", "apiVersion": "v1",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "resourceVersion": "42",
            "labels": {"app": "web"}, "creationTimestamp": "2024-05-01T11:00:00Z"},
        "spec": {"type": "ClusterIP", "clusterIPs": ["10.96.0.7"], "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "web"}},
        "status": {"loadBalancer": {}}
    })
}

#[test]
fn table_with_partial_object_metadata() {
    let svc = find_kind("", "Service").expect("services");
    let t = table(svc, &[service()], IncludeObject::Metadata, json!({"resourceVersion": "57"}), now());
    let keys: Vec<&str> = t.as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
    assert_eq!(keys, ["kind", "apiVersion", "metadata", "columnDefinitions", "rows"]);
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["metadata"], json!({"resourceVersion": "57"}));
    assert_eq!(t["columnDefinitions"].as_array().map(Vec::len), Some(7));
    assert_eq!(
        t["rows"],
        json!([{
            "cells": ["web", "ClusterIP", "10.96.0.7", "<none>", "80/TCP", "60m", "app=web"],
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": service()["metadata"]}
        }])
    );
}

#[test]
fn table_include_none_and_object() {
    let svc = find_kind("", "Service").expect("services");
    let none = table(svc, &[service()], IncludeObject::None, json!({}), now());
    assert!(none["rows"][0].get("object").is_none());
    let mut bare = service();
    bare.as_object_mut().map(|m| m.remove("kind"));
    let full = table(svc, &[bare], IncludeObject::Object, json!({}), now());
    assert_eq!(full["rows"][0]["object"], service());
}

#[test]
fn empty_table_has_empty_rows() {
    let pods = find_kind("", "Pod").expect("pods");
    let t = table(pods, &[], IncludeObject::Metadata, json!({"resourceVersion": "1"}), now());
    assert_eq!(t["rows"], json!([]));
    assert_eq!(t["columnDefinitions"].as_array().map(Vec::len), Some(9));
}

#[test]
fn include_object_parameter() {
    assert_eq!("".parse::<IncludeObject>(), Ok(IncludeObject::Metadata));
    assert_eq!("Metadata".parse::<IncludeObject>(), Ok(IncludeObject::Metadata));
    assert_eq!("None".parse::<IncludeObject>(), Ok(IncludeObject::None));
    assert_eq!("Object".parse::<IncludeObject>(), Ok(IncludeObject::Object));
    assert_eq!(
        "object".parse::<IncludeObject>().map_err(|e| e.to_string()),
        Err("unrecognized includeObject value: \"object\"".to_owned())
    );
}

#[test]
fn unknown_kinds_get_the_default_table() {
    let rd = ResourceDef { kind: "Widget", group: "example.com", ..CATALOGUE[0].clone() };
    let cols: Vec<Value> = column_definitions(&rd).iter().map(|c| c["name"].clone()).collect();
    assert_eq!(cols, [json!("Name"), json!("Created At")]);
    let obj = json!({"metadata": {"name": "w", "creationTimestamp": "2024-05-01T11:00:00Z"}});
    assert_eq!(row_cells(&rd, &obj, now()), [json!("w"), json!("2024-05-01T11:00:00Z")]);
}
