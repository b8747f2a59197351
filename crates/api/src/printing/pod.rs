//! The Pod printer: READY, STATUS and RESTARTS as `kubectl get pods` shows them.

use super::descriptions as d;
use super::duration::{parse_timestamp, since};
use super::{AGE, Column, NAME, Printer, age, array_at, name, str_at};
use jiff::Timestamp;
use serde_json::{Value, json};

/// Pod: Name, Ready, Status, Restarts, Age; wide IP, Node, Nominated Node, Readiness Gates.
pub(super) const POD: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Ready", "The aggregate readiness state of this pod for accepting traffic."),
        Column::string("Status", "The aggregate status of the containers in this pod."),
        Column::string(
            "Restarts",
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        AGE,
        Column::wide("IP", d::POD_STATUS_POD_IP),
        Column::wide("Node", d::POD_SPEC_NODE_NAME),
        Column::wide("Nominated Node", d::POD_STATUS_NOMINATED_NODE_NAME),
        Column::wide("Readiness Gates", d::POD_SPEC_READINESS_GATES),
    ],
    cells: pod_cells,
    conditions: pod_conditions,
};

/// The reason a node controller gives pods on a lost node (`NodeUnreachablePodReason`).
const NODE_LOST: &str = "NodeLost";

/// `TableRow.conditions` for finished pods.
fn pod_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match str_at(pod, "/status/phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

fn has_condition(pod: &Value, ty: &str) -> bool {
    array_at(pod, "/status/conditions").iter().any(|c| str_at(c, "/type") == ty && str_at(c, "/status") == "True")
}

/// `isPodInitializedConditionTrue`: the first Initialized condition decides.
fn initialized(pod: &Value) -> bool {
    array_at(pod, "/status/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == "Initialized")
        .is_some_and(|c| str_at(c, "/status") == "True")
}

/// A sidecar: an init container with `restartPolicy: Always`.
fn is_restartable(container: Option<&Value>) -> bool {
    container.is_some_and(|c| str_at(c, "/restartPolicy") == "Always")
}

/// The latest `lastState.terminated.finishedAt` seen so far.
fn later(current: Option<Timestamp>, status: &Value) -> Option<Timestamp> {
    if status.pointer("/lastState/terminated").is_none_or(Value::is_null) {
        return current;
    }
    match (current, parse_timestamp(status.pointer("/lastState/terminated/finishedAt"))) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn exit_reason(terminated: &Value, prefix: &str) -> String {
    match str_at(terminated, "/reason") {
        "" => match terminated.get("signal").and_then(Value::as_i64).unwrap_or(0) {
            0 => format!("{prefix}ExitCode:{}", terminated.get("exitCode").and_then(Value::as_i64).unwrap_or(0)),
            signal => format!("{prefix}Signal:{signal}"),
        },
        reason => format!("{prefix}{reason}"),
    }
}

/// The state object of a container status, if that state is set.
fn state<'a>(status: &'a Value, which: &str) -> Option<&'a Value> {
    status.get("state").and_then(|s| s.get(which)).filter(|v| v.is_object())
}

/// READY, STATUS and RESTARTS exactly as `printPod` derives them.
fn ready_status_restarts(pod: &Value, now: Timestamp) -> (String, String, String) {
    let phase = str_at(pod, "/status/phase");
    let mut reason = match str_at(pod, "/status/reason") {
        "" => phase.to_owned(),
        r => r.to_owned(),
    };
    if array_at(pod, "/status/conditions")
        .iter()
        .any(|c| str_at(c, "/type") == "PodScheduled" && str_at(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_owned();
    }

    let init_specs = array_at(pod, "/spec/initContainers");
    let init_spec = |n: &str| init_specs.iter().find(|c| str_at(c, "/name") == n);
    let mut total = array_at(pod, "/spec/containers").len();
    total += init_specs.iter().filter(|c| is_restartable(Some(c))).count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;

    let mut initializing = false;
    let init_statuses = array_at(pod, "/status/initContainerStatuses");
    for (i, c) in init_statuses.iter().enumerate() {
        let count = c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        restarts += count;
        last_restart = later(last_restart, c);
        let sidecar = is_restartable(init_spec(str_at(c, "/name")));
        if sidecar {
            sidecar_restarts += count;
            last_sidecar_restart = later(last_sidecar_restart, c);
        }
        let terminated = state(c, "terminated");
        let waiting = state(c, "waiting");
        if terminated.is_some_and(|t| t.get("exitCode").and_then(Value::as_i64).unwrap_or(0) == 0) {
            continue;
        }
        if sidecar && c.get("started").and_then(Value::as_bool).unwrap_or(false) {
            if c.get("ready").and_then(Value::as_bool).unwrap_or(false) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            exit_reason(t, "Init:")
        } else if let Some(w) = waiting.filter(|w| !matches!(str_at(w, "/reason"), "" | "PodInitializing")) {
            format!("Init:{}", str_at(w, "/reason"))
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || initialized(pod) {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in array_at(pod, "/status/containerStatuses").iter().rev() {
            restarts += c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
            last_restart = later(last_restart, c);
            let waiting_reason = state(c, "waiting").map(|w| str_at(w, "/reason")).unwrap_or("");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_owned();
            } else if let Some(t) = state(c, "terminated") {
                reason = exit_reason(t, "");
            } else if c.get("ready").and_then(Value::as_bool).unwrap_or(false) && state(c, "running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose last container completed while another still runs is not "Completed".
        if reason == "Completed" && has_running {
            reason = if has_condition(pod, "Ready") { "Running" } else { "NotReady" }.to_owned();
        }
    }

    let deleting = pod.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
    if deleting && str_at(pod, "/status/reason") == NODE_LOST {
        reason = "Unknown".to_owned();
    } else if deleting && !matches!(phase, "Succeeded" | "Failed") {
        reason = "Terminating".to_owned();
    }

    let restarts_text = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };
    (format!("{ready}/{total}"), reason, restarts_text)
}

fn none_if_empty(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

/// Readiness gates as `true/total`, or `<none>`.
fn readiness_gates(pod: &Value) -> String {
    let gates = array_at(pod, "/spec/readinessGates");
    if gates.is_empty() {
        return "<none>".to_owned();
    }
    let conditions = array_at(pod, "/status/conditions");
    let true_count = gates
        .iter()
        .filter(|g| {
            let ty = str_at(g, "/conditionType");
            conditions.iter().find(|c| str_at(c, "/type") == ty).is_some_and(|c| str_at(c, "/status") == "True")
        })
        .count();
    format!("{true_count}/{}", gates.len())
}

fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let (ready, status, restarts) = ready_status_restarts(pod, now);
    // The internal type only has `podIPs`; conversion fills it from `podIP` when absent.
    let ip = array_at(pod, "/status/podIPs")
        .first()
        .map(|p| str_at(p, "/ip"))
        .unwrap_or_else(|| str_at(pod, "/status/podIP"));
    vec![
        json!(name(pod)),
        json!(ready),
        json!(status),
        json!(restarts),
        json!(age(pod, now)),
        json!(none_if_empty(ip)),
        json!(none_if_empty(str_at(pod, "/spec/nodeName"))),
        json!(none_if_empty(str_at(pod, "/status/nominatedNodeName"))),
        json!(readiness_gates(pod)),
    ]
}

#[cfg(test)]
mod tests;
