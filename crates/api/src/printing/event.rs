//! The core/v1 Event printer (what `kubectl get events` shows).

use super::descriptions as d;
use super::duration::{parse_timestamp, since};
use super::{Column, NAME, Printer, int_at, name, no_conditions, str_at};
use jiff::Timestamp;
use serde_json::{Value, json};

/// Event: Last Seen, Type, Reason, Object, Message; wide Subobject, Source,
/// First Seen, Count, Name (in upstream's column order).
pub(super) const EVENT: Printer = Printer {
    columns: &[
        Column::string("Last Seen", d::EVENT_LAST_TIMESTAMP),
        Column::string("Type", d::EVENT_TYPE),
        Column::string("Reason", d::EVENT_REASON),
        Column::string("Object", d::EVENT_INVOLVED_OBJECT),
        Column::wide("Subobject", d::OBJECT_REFERENCE_FIELD_PATH),
        Column::wide("Source", d::EVENT_SOURCE),
        Column::string("Message", d::EVENT_MESSAGE),
        Column::wide("First Seen", d::EVENT_FIRST_TIMESTAMP),
        Column::wide("Count", d::EVENT_COUNT),
        Column { priority: 1, ..NAME },
    ],
    cells: event_cells,
    conditions: no_conditions,
};

/// `formatEventSource`: component (or reporting controller), then `, host` (or instance).
fn event_source(ev: &Value) -> String {
    let first_non_empty = |a: &'static str, b: &'static str| -> String {
        let v = str_at(ev, a);
        if v.is_empty() { str_at(ev, b).to_owned() } else { v.to_owned() }
    };
    let component = first_non_empty("/source/component", "/reportingComponent");
    let instance = first_non_empty("/source/host", "/reportingInstance");
    if instance.is_empty() { component } else { format!("{component}, {instance}") }
}

fn event_cells(ev: &Value, now: Timestamp) -> Vec<Value> {
    let first = match parse_timestamp(ev.get("firstTimestamp")) {
        Some(t) => since(Some(t), now),
        None => since(parse_timestamp(ev.get("eventTime")), now),
    };
    let mut last = match parse_timestamp(ev.get("lastTimestamp")) {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = int_at(ev, "/count");
    match ev.get("series").filter(|s| s.is_object()) {
        Some(series) => {
            last = since(parse_timestamp(series.get("lastObservedTime")), now);
            count = int_at(series, "/count");
        }
        // Singleton events of the events.k8s.io API leave count unset.
        None if count == 0 => count = 1,
        None => {}
    }
    let kind = str_at(ev, "/involvedObject/kind").to_lowercase();
    let target = match str_at(ev, "/involvedObject/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    vec![
        json!(last),
        json!(str_at(ev, "/type")),
        json!(str_at(ev, "/reason")),
        json!(target),
        json!(str_at(ev, "/involvedObject/fieldPath")),
        json!(event_source(ev)),
        json!(str_at(ev, "/message").trim()),
        json!(first),
        json!(count),
        json!(name(ev)),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cells, names, priorities};
    use serde_json::json;

    #[test]
    fn event_columns_match_upstream_order() {
        assert_eq!(
            names("Event"),
            ["Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message", "First Seen", "Count", "Name"]
        );
        assert_eq!(priorities("Event"), [0, 0, 0, 0, 1, 1, 0, 1, 1, 1]);
    }

    #[test]
    fn classic_event() {
        let ev = json!({
            "metadata": {"name": "web-7d4b9c8f6d-x2x5k.17c8a3f1b2c3d4e5", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-7d4b9c8f6d-x2x5k", "fieldPath": "spec.containers{web}"},
            "reason": "Pulled", "message": "Container image \"nginx\" already present on machine\n",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2024-05-01T11:50:00Z", "lastTimestamp": "2024-05-01T11:58:00Z",
            "count": 3, "type": "Normal"
        });
        assert_eq!(
            cells("Event", &ev),
            json!([
                "2m",
                "Normal",
                "Pulled",
                "pod/web-7d4b9c8f6d-x2x5k",
                "spec.containers{web}",
                "kubelet, node-1",
                "Container image \"nginx\" already present on machine",
                "10m",
                3,
                "web-7d4b9c8f6d-x2x5k.17c8a3f1b2c3d4e5"
            ])
        );
    }

    #[test]
    fn new_style_event_uses_event_time_series_and_reporting_controller() {
        let ev = json!({
            "metadata": {"name": "e1"},
            "involvedObject": {"kind": "Node"},
            "reason": "RegisteredNode", "message": "registered", "type": "Normal",
            "eventTime": "2024-05-01T11:00:00.000000Z",
            "reportingComponent": "node-controller", "reportingInstance": "",
        });
        assert_eq!(
            cells("Event", &ev),
            json!(["60m", "Normal", "RegisteredNode", "node", "", "node-controller", "registered", "60m", 1, "e1"])
        );
        let mut series = ev.clone();
        series["series"] = json!({"count": 7, "lastObservedTime": "2024-05-01T11:59:30.123456Z"});
        let c = cells("Event", &series);
        // 29.877s truncates to whole seconds.
        assert_eq!((c[0].clone(), c[8].clone()), (json!("29s"), json!(7)));
    }

    #[test]
    fn event_without_times_is_unknown() {
        let ev = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Service", "name": "web"}});
        let c = cells("Event", &ev);
        assert_eq!(
            (c[0].clone(), c[3].clone(), c[7].clone()),
            (json!("<unknown>"), json!("service/web"), json!("<unknown>"))
        );
    }
}
