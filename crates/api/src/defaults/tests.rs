use super::*;
use crate::resources::find;

fn defaulted(group: &str, plural: &str, mut obj: Value) -> Value {
    apply_defaults(find(group, "v1", plural).expect("served"), &mut obj);
    obj
}

#[test]
fn service_defaults() {
    let s = defaulted("", "services", json!({"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}}));
    assert_eq!(
        s["spec"],
        json!({"type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
               "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]})
    );
    assert_eq!(s["status"], json!({"loadBalancer": {}}));
}

#[test]
fn service_session_affinity_defaults() {
    let s = defaulted("", "services", json!({"spec": {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {}}}}));
    assert_eq!(s["spec"]["sessionAffinityConfig"], json!({"clientIP": {"timeoutSeconds": 10800}}));
    let kept = defaulted("", "services", json!({"spec": {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}}));
    assert_eq!(kept["spec"]["sessionAffinityConfig"], json!({"clientIP": {"timeoutSeconds": 60}}));
    let none = defaulted("", "services", json!({"spec": {"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}}));
    assert!(none["spec"].get("sessionAffinityConfig").is_none());
}

#[test]
fn service_type_dependent_defaults() {
    let lb = defaulted("", "services", json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
                                              "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}, {"hostname": "x"}]}}}));
    assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(lb["spec"]["internalTrafficPolicy"], "Cluster");
    assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_eq!(lb["status"]["loadBalancer"]["ingress"], json!([{"ip": "1.2.3.4", "ipMode": "VIP"}, {"hostname": "x"}]));
    let np = defaulted("", "services", json!({"spec": {"type": "NodePort"}}));
    assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
    assert!(np["spec"].get("allocateLoadBalancerNodePorts").is_none());
    let eips = defaulted("", "services", json!({"spec": {"externalIPs": ["1.2.3.4"]}}));
    assert_eq!(eips["spec"]["externalTrafficPolicy"], "Cluster");
    let en = defaulted("", "services", json!({"spec": {"type": "ExternalName", "externalName": "x.example"}}));
    assert!(en["spec"].get("internalTrafficPolicy").is_none());
    assert!(en["spec"].get("externalTrafficPolicy").is_none());
    assert!(en["spec"].get("clusterIP").is_none(), "the allocator owns cluster IPs");
}

#[test]
fn image_pull_policy_follows_the_tag() {
    for (image, tag) in [("nginx", "latest"), ("nginx:1.25", "1.25"), ("reg:5000/nginx", "latest"), ("reg:5000/nginx:v1", "v1"), ("nginx@sha256:abc", ""), ("nginx:latest", "latest")] {
        assert_eq!(pod::image_tag(image), tag, "{image}");
    }
}

#[test]
fn pod_defaults() {
    let p = defaulted("", "pods", json!({"spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
        "resources": {"limits": {"cpu": "1"}},
        "readinessProbe": {"httpGet": {"port": 80}}, "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}],
        "volumes": [{"name": "v"}, {"name": "s", "secret": {"secretName": "x"}}]}}));
    let spec = &p["spec"];
    for (k, v) in [("restartPolicy", json!("Always")), ("dnsPolicy", json!("ClusterFirst")), ("schedulerName", json!("default-scheduler")),
                   ("terminationGracePeriodSeconds", json!(30)), ("securityContext", json!({})), ("enableServiceLinks", json!(true)),
                   ("priority", json!(0)), ("preemptionPolicy", json!("PreemptLowerPriority"))] {
        assert_eq!(spec[k], v, "{k}");
    }
    let c = &spec["containers"][0];
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(c["resources"]["requests"], json!({"cpu": "1"}));
    assert_eq!(c["readinessProbe"], json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}));
    assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
    assert_eq!(spec["volumes"], json!([{"name": "v", "emptyDir": {}}, {"name": "s", "secret": {"secretName": "x", "defaultMode": 420}}]));
}

#[test]
fn deployment_and_replica_set_defaults() {
    let d = defaulted("apps", "deployments", json!({"spec": {"template": {"spec": {"containers": [{"name": "n", "image": "nginx:1.25"}]}}}}));
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(d["spec"]["strategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}));
    let tpl = &d["spec"]["template"]["spec"];
    assert_eq!(tpl["restartPolicy"], "Always");
    assert_eq!(tpl["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert!(tpl.get("enableServiceLinks").is_none(), "SetDefaults_Pod is for Pods only");
    let recreate = defaulted("apps", "deployments", json!({"spec": {"strategy": {"type": "Recreate"}}}));
    assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));
    let rs = defaulted("apps", "replicasets", json!({"spec": {"replicas": 0, "template": {"spec": {"containers": []}}}}));
    assert_eq!(rs["spec"]["replicas"], 0);
    assert_eq!(rs["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
}

#[test]
fn namespace_secret_and_endpoint_defaults() {
    let n = defaulted("", "namespaces", json!({"metadata": {"name": "team"}}));
    assert_eq!(n["status"]["phase"], "Active");
    assert_eq!(n["metadata"]["labels"]["kubernetes.io/metadata.name"], "team");
    assert_eq!(n["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(defaulted("", "secrets", json!({}))["type"], "Opaque");
    let ep = defaulted("", "endpoints", json!({"subsets": [{"ports": [{"port": 80}]}]}));
    assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
    let es = defaulted("discovery.k8s.io", "endpointslices", json!({"ports": [{"port": 80}]}));
    assert_eq!(es["ports"][0], json!({"port": 80, "name": "", "protocol": "TCP"}));
}
