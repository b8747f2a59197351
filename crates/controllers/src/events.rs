//! Events for what the controllers do, as `kubectl describe` shows them.

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

/// Records an event about `obj` (failures are logged, never fatal).
pub async fn record<K: Resource<DynamicType = ()>>(client: &kube::Client, obj: &K, type_: &str, reason: &str, message: &str) {
    let ns = obj.namespace().unwrap_or_else(|| "default".into());
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let event = json!({
        // Upstream's recorder names events <object>.<unix nanos in hex>.
        "metadata": {"name": format!("{}.{:x}", obj.name_any(), jiff::Timestamp::now().as_nanosecond()), "namespace": ns},
        "involvedObject": {"apiVersion": K::api_version(&()), "kind": K::kind(&()), "name": obj.name_any(),
                           "namespace": obj.namespace(), "uid": obj.uid(), "resourceVersion": obj.resource_version()},
        "reason": reason, "message": message, "type": type_,
        "source": {"component": component(K::kind(&()).as_ref())},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        "reportingComponent": component(K::kind(&()).as_ref()), "reportingInstance": "portico",
    });
    let event = match serde_json::from_value::<Event>(event) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, reason, "could not build event");
            return;
        }
    };
    if let Err(e) = Api::<Event>::namespaced(client.clone(), &ns).create(&PostParams::default(), &event).await {
        tracing::warn!(error = %e, reason, "could not record event");
    }
}

fn component(kind: &str) -> &'static str {
    match kind {
        "ReplicaSet" => "replicaset-controller",
        "Deployment" => "deployment-controller",
        "Pod" => "default-scheduler",
        _ => "portico-controller-manager",
    }
}
