//! Pod cells against what `kubectl get pods -o wide` prints for the same objects.

use super::super::tests::{cells, names, now, priorities, row_of};
use crate::printing::IncludeObject;
use serde_json::{Value, json};

fn pod(spec: Value, status: Value) -> Value {
    json!({"metadata": {"name": "web-0", "namespace": "default", "creationTimestamp": "2024-05-01T11:58:00Z"},
        "spec": spec, "status": status})
}

fn one_container() -> Value {
    json!({"containers": [{"name": "web", "image": "nginx"}], "nodeName": "node-1"})
}

fn running(name: &str, ready: bool, restarts: i64) -> Value {
    json!({"name": name, "ready": ready, "restartCount": restarts, "state": {"running": {"startedAt": "2024-05-01T11:58:30Z"}}})
}

/// READY, STATUS, RESTARTS.
fn rsr(p: &Value) -> (String, String, String) {
    let c = cells("Pod", p);
    let s = |i: usize| c[i].as_str().unwrap_or_default().to_owned();
    (s(1), s(2), s(3))
}

fn rsr_of(ready: &str, status: &str, restarts: &str) -> (String, String, String) {
    (ready.to_owned(), status.to_owned(), restarts.to_owned())
}

#[test]
fn pod_columns_match_upstream() {
    assert_eq!(
        names("Pod"),
        ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]
    );
    assert_eq!(priorities("Pod"), [0, 0, 0, 0, 0, 1, 1, 1, 1]);
}

#[test]
fn running_pod_wide() {
    let p = pod(
        one_container(),
        json!({"phase": "Running", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}, {"ip": "fd00::5"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [running("web", true, 0)]}),
    );
    assert_eq!(
        cells("Pod", &p),
        json!(["web-0", "1/1", "Running", "0", "2m", "10.244.0.5", "node-1", "<none>", "<none>"])
    );
}

#[test]
fn pending_unscheduled_pod() {
    let p = pod(json!({"containers": [{"name": "web"}, {"name": "log"}]}), json!({"phase": "Pending"}));
    assert_eq!(cells("Pod", &p), json!(["web-0", "0/2", "Pending", "0", "2m", "<none>", "<none>", "<none>", "<none>"]));
}

#[test]
fn waiting_reasons_win() {
    let p = pod(
        one_container(),
        json!({"phase": "Pending", "containerStatuses": [{"name": "web", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
    );
    assert_eq!(rsr(&p), rsr_of("0/1", "ContainerCreating", "0"));
}

#[test]
fn crash_loop_with_last_restart_age() {
    let p = pod(
        one_container(),
        json!({"phase": "Running", "containerStatuses": [{"name": "web", "ready": false, "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting failed container"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2024-05-01T11:59:15Z"}}}]}),
    );
    assert_eq!(rsr(&p), rsr_of("0/1", "CrashLoopBackOff", "4 (45s ago)"));
}

#[test]
fn restarts_of_a_running_pod_show_the_latest_termination() {
    let mut c1 = running("web", true, 1);
    c1["lastState"] = json!({"terminated": {"exitCode": 137, "finishedAt": "2024-05-01T11:30:00Z"}});
    let mut c2 = running("log", true, 2);
    c2["lastState"] = json!({"terminated": {"exitCode": 2, "finishedAt": "2024-05-01T11:50:00Z"}});
    let p = pod(
        json!({"containers": [{"name": "web"}, {"name": "log"}]}),
        json!({"phase": "Running", "containerStatuses": [c1, c2]}),
    );
    assert_eq!(rsr(&p), rsr_of("2/2", "Running", "3 (10m ago)"));
}

#[test]
fn completed_and_failed_pods() {
    let done = pod(
        one_container(),
        json!({"phase": "Succeeded", "containerStatuses": [{"name": "web", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
    );
    assert_eq!(rsr(&done), rsr_of("0/1", "Completed", "0"));
    let row = row_of("Pod", &done, IncludeObject::None);
    assert_eq!(
        row["conditions"],
        json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}])
    );
    let failed = pod(
        one_container(),
        json!({"phase": "Failed", "containerStatuses": [{"name": "web", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
    );
    assert_eq!(rsr(&failed), rsr_of("0/1", "Error", "0"));
    assert_eq!(row_of("Pod", &failed, IncludeObject::None)["conditions"][0]["reason"], json!("Failed"));
    let signalled = pod(
        one_container(),
        json!({"phase": "Failed", "containerStatuses": [{"name": "web", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}),
    );
    assert_eq!(rsr(&signalled).1, "Signal:9");
    let exited = pod(
        one_container(),
        json!({"phase": "Failed", "containerStatuses": [{"name": "web", "state": {"terminated": {"exitCode": 3}}}]}),
    );
    assert_eq!(rsr(&exited).1, "ExitCode:3");
    assert!(
        row_of("Pod", &pod(one_container(), json!({"phase": "Running"})), IncludeObject::None)
            .get("conditions")
            .is_none()
    );
}

#[test]
fn completed_container_next_to_a_running_one() {
    let p = |ready_condition: bool| {
        pod(
            json!({"containers": [{"name": "job"}, {"name": "web"}]}),
            json!({"phase": "Running",
            "conditions": [{"type": "Ready", "status": if ready_condition { "True" } else { "False" }}],
            "containerStatuses": [
                {"name": "job", "ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                running("web", true, 0)
            ]}),
        )
    };
    assert_eq!(rsr(&p(true)), rsr_of("1/2", "Running", "0"));
    assert_eq!(rsr(&p(false)), rsr_of("1/2", "NotReady", "0"));
}

#[test]
fn terminating_and_node_lost() {
    let mut p = pod(one_container(), json!({"phase": "Running", "containerStatuses": [running("web", true, 0)]}));
    p["metadata"]["deletionTimestamp"] = json!("2024-05-01T12:00:30Z");
    assert_eq!(rsr(&p), rsr_of("1/1", "Terminating", "0"));
    p["status"]["reason"] = json!("NodeLost");
    assert_eq!(rsr(&p).1, "Unknown");
    let mut done = pod(one_container(), json!({"phase": "Succeeded"}));
    done["metadata"]["deletionTimestamp"] = json!("2024-05-01T12:00:30Z");
    assert_eq!(rsr(&done).1, "Succeeded");
}

#[test]
fn status_reason_and_scheduling_gates() {
    let evicted = pod(one_container(), json!({"phase": "Failed", "reason": "Evicted"}));
    assert_eq!(rsr(&evicted).1, "Evicted");
    let gated = pod(
        one_container(),
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
    );
    assert_eq!(rsr(&gated).1, "SchedulingGated");
}

fn init_pod(init_statuses: Value, conditions: Value) -> Value {
    pod(
        json!({"initContainers": [{"name": "setup"}, {"name": "migrate"}], "containers": [{"name": "web"}]}),
        json!({"phase": "Pending", "conditions": conditions, "initContainerStatuses": init_statuses,
            "containerStatuses": [{"name": "web", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]}),
    )
}

#[test]
fn init_container_progress() {
    let p = init_pod(
        json!([
            {"name": "setup", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "migrate", "state": {"running": {}}}
        ]),
        json!([]),
    );
    assert_eq!(rsr(&p), rsr_of("0/1", "Init:1/2", "0"));
    let waiting = init_pod(json!([{"name": "setup", "state": {"waiting": {"reason": "PodInitializing"}}}]), json!([]));
    assert_eq!(rsr(&waiting).1, "Init:0/2");
}

#[test]
fn init_container_failures() {
    let crash = init_pod(
        json!([{"name": "setup", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:59:00Z"}}}]),
        json!([]),
    );
    assert_eq!(rsr(&crash), rsr_of("0/1", "Init:CrashLoopBackOff", "3 (60s ago)"));
    let error =
        init_pod(json!([{"name": "setup", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]), json!([]));
    assert_eq!(rsr(&error).1, "Init:Error");
    let code = init_pod(json!([{"name": "setup", "state": {"terminated": {"exitCode": 2}}}]), json!([]));
    assert_eq!(rsr(&code).1, "Init:ExitCode:2");
    let signal =
        init_pod(json!([{"name": "setup", "state": {"terminated": {"exitCode": 143, "signal": 15}}}]), json!([]));
    assert_eq!(rsr(&signal).1, "Init:Signal:15");
}

#[test]
fn sidecars_count_towards_ready_and_restarts() {
    let p = pod(
        json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "web"}]}),
        json!({"phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "restartCount": 2,
                "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:55:00Z"}}}],
            "containerStatuses": [running("web", true, 0)]}),
    );
    assert_eq!(rsr(&p), rsr_of("2/2", "Running", "2 (5m ago)"));
}

#[test]
fn readiness_gates_and_nominated_node() {
    let p = pod(
        json!({"containers": [{"name": "web"}], "readinessGates": [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]}),
        json!({"phase": "Pending", "nominatedNodeName": "node-2", "podIP": "10.244.1.7",
            "conditions": [{"type": "example.com/lb", "status": "True"}, {"type": "example.com/dns", "status": "False"}]}),
    );
    let c = cells("Pod", &p);
    assert_eq!(
        c.as_array().map(|c| c[5..].to_vec()),
        Some(vec![json!("10.244.1.7"), json!("<none>"), json!("node-2"), json!("1/2")])
    );
}

#[test]
fn restart_age_uses_now() {
    let mut c = running("web", true, 1);
    c["lastState"] = json!({"terminated": {"exitCode": 1, "finishedAt": "2024-04-30T12:00:00Z"}});
    let p = pod(one_container(), json!({"phase": "Running", "containerStatuses": [c]}));
    assert_eq!(
        crate::printing::row_cells(crate::resources::find("", "v1", "pods").expect("pods"), &p, now())[3],
        json!("1 (24h ago)")
    );
}
