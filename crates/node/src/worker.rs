//! One pod's life on this node: a single task that owns the pod's sandbox and
//! container processes and reacts to three inputs — the latest Pod object, a
//! container process exiting, a probe transition — then publishes the pod's
//! status when it changed.

use crate::container::{self, StartError};
use crate::env_vars::{self, Entry, Lookup};
use crate::host::Host;
use crate::probe::{self, Kind, Transition};
use crate::sandbox::{self, Sandbox};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::Store;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Capacity of a worker's event queue (exits and probe transitions).
const EVENTS: usize = 64;
/// Kubelet's initial and maximum crash-loop back-off.
const BACKOFF_START: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A container that ran this long has its back-off reset.
const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// Everything a pod worker shares with the agent.
#[derive(Clone)]
pub struct Shared {
    /// Machine settings.
    pub host: Arc<Host>,
    /// API client.
    pub client: kube::Client,
    /// Services (for the Service environment variables).
    pub services: Store<Service>,
}

/// A container's state as the API shows it.
#[derive(Debug, Clone, PartialEq)]
enum State {
    Waiting { reason: String, message: String },
    Running { started_at: jiff::Timestamp },
    Terminated(Term),
}

#[derive(Debug, Clone, PartialEq)]
struct Term {
    exit_code: i32,
    signal: Option<i32>,
    reason: String,
    message: String,
    started_at: Option<jiff::Timestamp>,
    finished_at: jiff::Timestamp,
}

enum Event {
    Exited { container: String, generation: u64, code: Option<i32>, signal: Option<i32> },
}

struct Ctr {
    spec: Container,
    state: State,
    last: Option<Term>,
    restarts: i32,
    runs: i32,
    ready: bool,
    started: bool,
    generation: u64,
    pid: Option<u32>,
    started_instant: Option<Instant>,
    backoff: Duration,
    start_at: Option<Instant>,
    probes: Vec<JoinHandle<()>>,
    env: Vec<(String, String)>,
    image_failures: u32,
}

impl Ctr {
    fn new(spec: Container) -> Self {
        Self {
            spec,
            state: State::Waiting { reason: "ContainerCreating".into(), message: String::new() },
            last: None,
            restarts: 0,
            runs: 0,
            ready: false,
            started: false,
            generation: 0,
            pid: None,
            started_instant: None,
            backoff: Duration::ZERO,
            start_at: Some(Instant::now()),
            probes: vec![],
            env: vec![],
            image_failures: 0,
        }
    }

    fn stop_probes(&mut self) {
        for p in self.probes.drain(..) {
            p.abort();
        }
    }
}

/// Runs one pod until it is deleted and torn down. `pod` carries the latest
/// object; `None` means it is gone from the API.
pub async fn run(shared: Shared, mut pod_rx: watch::Receiver<Option<Arc<Pod>>>) {
    let Some(first) = pod_rx.borrow_and_update().clone() else { return };
    let mut w = Worker::new(shared, first);
    w.run(pod_rx).await;
}

struct Worker {
    s: Shared,
    pod: Arc<Pod>,
    gone: bool,
    sandbox: Option<Sandbox>,
    sandbox_error: Option<String>,
    sandbox_retry: Instant,
    ctrs: Vec<Ctr>,
    events_tx: mpsc::Sender<Event>,
    events_rx: mpsc::Receiver<Event>,
    probe_tx: mpsc::Sender<Transition>,
    probe_rx: mpsc::Receiver<Transition>,
    published: Option<serde_json::Value>,
    conditions: BTreeMap<&'static str, (bool, jiff::Timestamp)>,
    start_time: jiff::Timestamp,
}

impl Worker {
    fn new(s: Shared, pod: Arc<Pod>) -> Self {
        let (events_tx, events_rx) = mpsc::channel(EVENTS);
        let (probe_tx, probe_rx) = mpsc::channel(EVENTS);
        let ctrs = pod.spec.as_ref().map(|sp| sp.containers.iter().cloned().map(Ctr::new).collect()).unwrap_or_default();
        let start_time = pod.status.as_ref().and_then(|st| st.start_time.as_ref()).map(|t| t.0).unwrap_or_else(jiff::Timestamp::now);
        Self {
            s,
            pod,
            gone: false,
            sandbox: None,
            sandbox_error: None,
            sandbox_retry: Instant::now(),
            ctrs,
            events_tx,
            events_rx,
            probe_tx,
            probe_rx,
            published: None,
            conditions: BTreeMap::new(),
            start_time,
        }
    }

    fn name(&self) -> String {
        self.pod.metadata.name.clone().unwrap_or_default()
    }

    fn namespace(&self) -> String {
        self.pod.metadata.namespace.clone().unwrap_or_default()
    }

    fn uid(&self) -> String {
        self.pod.metadata.uid.clone().unwrap_or_default()
    }

    fn restart_policy(&self) -> String {
        self.pod.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Always".into())
    }

    async fn run(&mut self, mut pod_rx: watch::Receiver<Option<Arc<Pod>>>) {
        loop {
            if self.gone || self.pod.metadata.deletion_timestamp.is_some() {
                self.terminate().await;
                return;
            }
            self.ensure_sandbox().await;
            self.start_due().await;
            self.publish().await;
            let wake = self.next_wake();
            tokio::select! {
                changed = pod_rx.changed() => {
                    let latest = if changed.is_ok() { pod_rx.borrow_and_update().clone() } else { None };
                    match latest {
                        Some(p) => self.pod = p,
                        None => self.gone = true,
                    }
                }
                Some(ev) = self.events_rx.recv() => self.on_event(ev),
                Some(t) = self.probe_rx.recv() => self.on_probe(t),
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(30);
        let mut wake = far;
        if self.sandbox.is_none() {
            wake = wake.min(self.sandbox_retry);
        }
        for c in &self.ctrs {
            if let Some(t) = c.start_at {
                wake = wake.min(t);
            }
        }
        wake.max(Instant::now() + Duration::from_millis(5))
    }

    async fn ensure_sandbox(&mut self) {
        if let Some(sb) = &mut self.sandbox {
            if sb.pause_exited() {
                tracing::warn!(pod = %self.name(), "pod sandbox died; recreating it");
                for c in &mut self.ctrs {
                    if let Some(pid) = c.pid {
                        container::signal(pid, nix::sys::signal::Signal::SIGKILL);
                    }
                }
                if let Some(sb) = self.sandbox.take() {
                    sandbox::destroy(&self.s.host, sb).await;
                }
            } else {
                return;
            }
        }
        if Instant::now() < self.sandbox_retry {
            return;
        }
        match sandbox::create(&self.s.host, &self.pod).await {
            Ok(sb) => {
                tracing::info!(pod = %self.name(), namespace = %self.namespace(), ips = ?sb.record.ips, "pod sandbox ready");
                self.sandbox = Some(sb);
                self.sandbox_error = None;
            }
            Err(e) => {
                tracing::warn!(pod = %self.name(), error = %e, "creating pod sandbox failed");
                self.sandbox_error = Some(e.to_string());
                self.sandbox_retry = Instant::now() + Duration::from_secs(5);
            }
        }
    }

    async fn resolve_env(&self, c: &Container) -> Result<Vec<(String, String)>, String> {
        let pod_ip = self.sandbox.as_ref().and_then(|s| s.record.ips.first()).map(ToString::to_string).unwrap_or_default();
        let host_ip = self.s.host.node_ips.first().map(ToString::to_string).unwrap_or_default();
        let mut pod = (*self.pod).clone();
        let st = pod.status.get_or_insert_with(Default::default);
        st.pod_ip = Some(pod_ip.clone());
        st.host_ip = Some(host_ip.clone());
        let mut vars: Vec<(String, String)> = vec![
            ("PATH".into(), container::DEFAULT_PATH.into()),
            ("HOSTNAME".into(), crate::dns_files::pod_hostname(&self.pod)),
        ];
        let services: Vec<Service> = self.s.services.state().iter().map(|s| (**s).clone()).collect();
        vars.extend(env_vars::service_env(&self.pod, &services));
        let ns = self.namespace();
        for from in c.env_from.clone().unwrap_or_default() {
            let prefix = from.prefix.clone().unwrap_or_default();
            if let Some(r) = from.config_map_ref {
                let api: Api<ConfigMap> = Api::namespaced(self.s.client.clone(), &ns);
                match api.get_opt(&r.name).await {
                    Ok(Some(cm)) => vars.extend(cm.data.unwrap_or_default().into_iter().map(|(k, v)| (format!("{prefix}{k}"), v))),
                    _ if r.optional == Some(true) => {}
                    _ => return Err(format!("configmap {:?} not found", r.name)),
                }
            }
            if let Some(r) = from.secret_ref {
                let api: Api<Secret> = Api::namespaced(self.s.client.clone(), &ns);
                match api.get_opt(&r.name).await {
                    Ok(Some(s)) => vars.extend(s.data.unwrap_or_default().into_iter().map(|(k, v)| (format!("{prefix}{k}"), String::from_utf8_lossy(&v.0).into_owned()))),
                    _ if r.optional == Some(true) => {}
                    _ => return Err(format!("secret {:?} not found", r.name)),
                }
            }
        }
        for e in env_vars::container_env(&pod, c, &self.s.host.node_name, &host_ip) {
            match e {
                Entry::Value(k, v) => {
                    let v = env_vars::expand(&v, &vars);
                    vars.push((k, v));
                }
                Entry::Lookup(k, Lookup::ConfigMap { name, key, optional }) => {
                    let api: Api<ConfigMap> = Api::namespaced(self.s.client.clone(), &ns);
                    match api.get_opt(&name).await.ok().flatten().and_then(|cm| cm.data.and_then(|d| d.get(&key).cloned())) {
                        Some(v) => vars.push((k, v)),
                        None if optional => {}
                        None => return Err(format!("couldn't find key {key} in ConfigMap {ns}/{name}")),
                    }
                }
                Entry::Lookup(k, Lookup::Secret { name, key, optional }) => {
                    let api: Api<Secret> = Api::namespaced(self.s.client.clone(), &ns);
                    match api.get_opt(&name).await.ok().flatten().and_then(|s| s.data.and_then(|d| d.get(&key).cloned())) {
                        Some(v) => vars.push((k, String::from_utf8_lossy(&v.0).into_owned())),
                        None if optional => {}
                        None => return Err(format!("couldn't find key {key} in Secret {ns}/{name}")),
                    }
                }
            }
        }
        // Later definitions win, as in a process environment.
        let mut seen = std::collections::HashSet::new();
        let mut out: Vec<(String, String)> = vars.into_iter().rev().filter(|(k, _)| seen.insert(k.clone())).collect();
        out.reverse();
        Ok(out)
    }

    async fn start_due(&mut self) {
        let Some(pause) = self.sandbox.as_ref().map(Sandbox::pause_pid) else { return };
        let now = Instant::now();
        for i in 0..self.ctrs.len() {
            let due = self.ctrs[i].start_at.is_some_and(|t| t <= now);
            if !due {
                continue;
            }
            let spec = self.ctrs[i].spec.clone();
            let env = match self.resolve_env(&spec).await {
                Ok(e) => e,
                Err(msg) => {
                    let c = &mut self.ctrs[i];
                    c.state = State::Waiting { reason: "CreateContainerConfigError".into(), message: msg };
                    c.start_at = Some(now + Duration::from_secs(5));
                    continue;
                }
            };
            let uid = self.uid();
            let pod_desc = format!("{}_{}({uid})", self.name(), self.namespace());
            let policy = self.restart_policy();
            // The exec endpoint gives commands the container's environment.
            let env_dir = self.s.host.pod_dir(&uid).join("env");
            let _ = std::fs::create_dir_all(&env_dir);
            let _ = std::fs::write(env_dir.join(format!("{}.json", spec.name)), serde_json::to_string(&env).unwrap_or_default());
            let c = &mut self.ctrs[i];
            let run_index = c.runs;
            match container::start(&self.s.host, &uid, pause, &spec, &env, run_index) {
                Ok(mut child) => {
                    if c.runs > 0 {
                        c.restarts += 1;
                        if let State::Terminated(t) = &c.state {
                            c.last = Some(t.clone());
                        }
                    }
                    c.runs += 1;
                    c.generation += 1;
                    c.image_failures = 0;
                    let pid = child.id().unwrap_or(0);
                    c.pid = Some(pid);
                    c.state = State::Running { started_at: jiff::Timestamp::now() };
                    c.started_instant = Some(Instant::now());
                    c.start_at = None;
                    c.env = env;
                    c.ready = false;
                    c.started = spec.startup_probe.is_none();
                    let (name, generation, tx) = (spec.name.clone(), c.generation, self.events_tx.clone());
                    let (host, uid) = (self.s.host.clone(), uid.clone());
                    tokio::spawn(async move {
                        let status = child.wait().await;
                        host.attach.exited(&uid, &name, pid);
                        use std::os::unix::process::ExitStatusExt;
                        let (code, signal) = match status {
                            Ok(s) => (s.code(), s.signal()),
                            Err(_) => (Some(-1), None),
                        };
                        let _ = tx.send(Event::Exited { container: name, generation, code, signal }).await;
                    });
                    tracing::info!(pod = %pod_desc, container = %spec.name, pid, "container started");
                    self.spawn_probes(i, true);
                }
                Err(StartError::Image(u)) => {
                    c.image_failures += 1;
                    let reason = if c.image_failures > 1 { "ImagePullBackOff" } else { u.reason };
                    c.state = State::Waiting { reason: reason.into(), message: u.message };
                    c.start_at = Some(now + Duration::from_secs(10));
                }
                Err(e) => {
                    let term = Term {
                        exit_code: 128,
                        signal: None,
                        reason: "StartError".into(),
                        message: e.to_string(),
                        started_at: None,
                        finished_at: jiff::Timestamp::now(),
                    };
                    c.runs += 1;
                    c.state = State::Terminated(term);
                    Self::schedule_restart(c, &policy, 128, &pod_desc);
                }
            }
        }
    }

    fn spawn_probes(&mut self, i: usize, at_start: bool) {
        let Some(sb) = &self.sandbox else { return };
        let pod_ip = sb.record.ips.first().copied().unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        let c = &mut self.ctrs[i];
        let target = probe::Target { pod_ip, pause_pid: sb.record.pause_pid, exe: self.s.host.exe.clone(), env: c.env.clone() };
        let mut spawn = |probe: Option<k8s_openapi::api::core::v1::Probe>, kind: Kind| {
            if let Some(p) = probe {
                c.probes.push(tokio::spawn(probe::run_loop(c.spec.clone(), p, kind, c.generation, target.clone(), self.probe_tx.clone())));
            }
        };
        if at_start && c.spec.startup_probe.is_some() {
            spawn(c.spec.startup_probe.clone(), Kind::Startup);
            return;
        }
        spawn(c.spec.liveness_probe.clone(), Kind::Liveness);
        spawn(c.spec.readiness_probe.clone(), Kind::Readiness);
        if c.spec.readiness_probe.is_none() {
            c.ready = true;
        }
    }

    fn schedule_restart(c: &mut Ctr, policy: &str, code: i32, pod_desc: &str) {
        let restart = policy == "Always" || (policy == "OnFailure" && code != 0);
        if !restart {
            c.start_at = None;
            return;
        }
        if c.started_instant.is_some_and(|t| t.elapsed() > BACKOFF_RESET) {
            c.backoff = Duration::ZERO;
        }
        let delay = c.backoff;
        c.backoff = if delay.is_zero() { BACKOFF_START } else { (delay * 2).min(BACKOFF_MAX) };
        c.start_at = Some(Instant::now() + delay);
        if !delay.is_zero() {
            if let State::Terminated(t) = &c.state {
                c.last = Some(t.clone());
            }
            c.state = State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: format!("back-off {}s restarting failed container={} pod={pod_desc}", delay.as_secs(), c.spec.name),
            };
        }
    }

    fn on_event(&mut self, ev: Event) {
        let Event::Exited { container, generation, code, signal } = ev;
        let policy = self.restart_policy();
        let pod_desc = format!("{}_{}({})", self.name(), self.namespace(), self.uid());
        let Some(c) = self.ctrs.iter_mut().find(|c| c.spec.name == container && c.generation == generation) else { return };
        c.stop_probes();
        c.pid = None;
        c.ready = false;
        c.started = false;
        let exit_code = code.unwrap_or_else(|| 128 + signal.unwrap_or(0));
        let started_at = match &c.state {
            State::Running { started_at } => Some(*started_at),
            _ => None,
        };
        c.state = State::Terminated(Term {
            exit_code,
            signal,
            reason: if exit_code == 0 { "Completed".into() } else { "Error".into() },
            message: String::new(),
            started_at,
            finished_at: jiff::Timestamp::now(),
        });
        tracing::info!(pod = %pod_desc, container = %container, exit_code, "container exited");
        Self::schedule_restart(c, &policy, exit_code, &pod_desc);
    }

    fn on_probe(&mut self, t: Transition) {
        let grace = self.grace();
        let Some(i) = self.ctrs.iter().position(|c| c.spec.name == t.container && c.generation == t.generation) else { return };
        match (t.kind, t.success) {
            (Kind::Startup, true) => {
                self.ctrs[i].started = true;
                self.spawn_probes(i, false);
            }
            (Kind::Readiness, ok) => self.ctrs[i].ready = ok && self.ctrs[i].started,
            (Kind::Liveness, false) | (Kind::Startup, false) => {
                let c = &mut self.ctrs[i];
                tracing::info!(pod = %self.pod.metadata.name.as_deref().unwrap_or(""), container = %c.spec.name, message = %t.message, "probe failed; restarting the container");
                c.ready = false;
                if let Some(pid) = c.pid {
                    container::stop(pid, grace);
                }
            }
            (Kind::Liveness, true) => {}
        }
    }

    fn grace(&self) -> Duration {
        let secs = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| self.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30);
        Duration::from_secs(secs.max(0) as u64)
    }

    async fn terminate(&mut self) {
        let grace = if self.gone { self.grace().min(Duration::from_secs(2)) } else { self.grace() };
        let deadline = Instant::now() + grace;
        for c in &mut self.ctrs {
            c.stop_probes();
            c.start_at = None;
            if let Some(pid) = c.pid {
                container::signal(pid, nix::sys::signal::Signal::SIGTERM);
            }
        }
        while self.ctrs.iter().any(|c| c.pid.is_some()) {
            let now = Instant::now();
            let limit = if now < deadline { deadline } else { now + Duration::from_secs(5) };
            if now >= deadline {
                for c in &self.ctrs {
                    if let Some(pid) = c.pid {
                        container::signal(pid, nix::sys::signal::Signal::SIGKILL);
                    }
                }
            }
            tokio::select! {
                Some(Event::Exited { container, generation, .. }) = self.events_rx.recv() => {
                    if let Some(c) = self.ctrs.iter_mut().find(|c| c.spec.name == container && c.generation == generation) {
                        c.pid = None;
                    }
                }
                _ = tokio::time::sleep_until(limit) => {
                    if now >= deadline { break; }
                }
            }
        }
        if let Some(sb) = self.sandbox.take() {
            sandbox::destroy(&self.s.host, sb).await;
        }
        let _ = std::fs::remove_dir_all(self.s.host.pod_dir(&self.uid()));
        self.s.host.attach.remove_pod(&self.uid());
        if !self.gone {
            let api: Api<Pod> = Api::namespaced(self.s.client.clone(), &self.namespace());
            let dp = DeleteParams { grace_period_seconds: Some(0), preconditions: Some(Preconditions { uid: Some(self.uid()), resource_version: None }), ..Default::default() };
            if let Err(e) = api.delete(&self.name(), &dp).await {
                tracing::debug!(pod = %self.name(), error = %e, "final pod delete");
            }
        }
        tracing::info!(pod = %self.name(), namespace = %self.namespace(), "pod torn down");
    }

    async fn publish(&mut self) {
        let status = self.status();
        if self.published.as_ref() == Some(&status) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.s.client.clone(), &self.namespace());
        match api.patch_status(&self.name(), &PatchParams::default(), &Patch::Merge(serde_json::json!({"status": status}))).await {
            Ok(_) => self.published = Some(status),
            Err(kube::Error::Api(e)) if e.code == 404 => self.gone = true,
            Err(e) => tracing::warn!(pod = %self.name(), error = %e, "updating pod status failed"),
        }
    }

    fn condition(&mut self, kind: &'static str, ok: bool) -> serde_json::Value {
        let now = jiff::Timestamp::now();
        let entry = self.conditions.entry(kind).or_insert((ok, now));
        if entry.0 != ok {
            *entry = (ok, now);
        }
        let t = entry.1;
        let mut c = serde_json::json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": ts(t)});
        if !ok && (kind == "Ready" || kind == "ContainersReady") {
            let unready: Vec<String> = self.ctrs.iter().filter(|c| !c.ready).map(|c| c.spec.name.clone()).collect();
            c["reason"] = "ContainersNotReady".into();
            c["message"] = format!("containers with unready status: [{}]", unready.join(" ")).into();
        }
        c
    }

    fn status(&mut self) -> serde_json::Value {
        let all_ready = !self.ctrs.is_empty() && self.ctrs.iter().all(|c| c.ready && matches!(c.state, State::Running { .. }));
        let phase = self.phase();
        let has_sandbox = self.sandbox.is_some();
        let conditions = vec![
            self.condition("PodReadyToStartContainers", has_sandbox),
            self.condition("Initialized", true),
            self.condition("Ready", all_ready),
            self.condition("ContainersReady", all_ready),
            self.condition("PodScheduled", true),
        ];
        let ips: Vec<String> = self.sandbox.as_ref().map(|s| s.record.ips.iter().map(ToString::to_string).collect()).unwrap_or_default();
        let node_ips: Vec<String> = self.s.host.node_ips.iter().map(ToString::to_string).collect();
        let uid = self.uid();
        let statuses: Vec<serde_json::Value> = self
            .ctrs
            .iter()
            .map(|c| {
                let mut s = serde_json::json!({
                    "name": c.spec.name, "image": c.spec.image.clone().unwrap_or_default(),
                    "imageID": format!("portico://{}", c.spec.image.clone().unwrap_or_default()),
                    "ready": c.ready && matches!(c.state, State::Running { .. }),
                    "restartCount": c.restarts, "started": c.started && matches!(c.state, State::Running { .. }),
                    "state": state_json(&c.state), "lastState": c.last.as_ref().map(|t| serde_json::json!({"terminated": term_json(t)})).unwrap_or_else(|| serde_json::json!({})),
                });
                if c.runs > 0 {
                    s["containerID"] = format!("portico://{uid}-{}-{}", c.spec.name, c.runs).into();
                }
                s
            })
            .collect();
        let mut st = serde_json::json!({
            "phase": phase, "conditions": conditions, "hostIP": node_ips.first(), "hostIPs": node_ips.iter().map(|ip| serde_json::json!({"ip": ip})).collect::<Vec<_>>(),
            "startTime": ts(self.start_time), "qosClass": "BestEffort", "containerStatuses": statuses,
        });
        if !ips.is_empty() {
            st["podIP"] = ips[0].clone().into();
            st["podIPs"] = ips.iter().map(|ip| serde_json::json!({"ip": ip})).collect::<Vec<_>>().into();
        }
        if let Some(e) = &self.sandbox_error {
            st["message"] = e.clone().into();
        }
        st
    }

    fn phase(&self) -> &'static str {
        if self.sandbox.is_none() || self.ctrs.is_empty() {
            return "Pending";
        }
        let running = self.ctrs.iter().any(|c| matches!(c.state, State::Running { .. }));
        let never_ran = self.ctrs.iter().any(|c| c.runs == 0);
        let terminated: Vec<&Term> = self
            .ctrs
            .iter()
            .filter_map(|c| match &c.state {
                State::Terminated(t) if c.start_at.is_none() => Some(t),
                _ => None,
            })
            .collect();
        if terminated.len() == self.ctrs.len() {
            return if terminated.iter().all(|t| t.exit_code == 0) { "Succeeded" } else { "Failed" };
        }
        if never_ran && !running {
            return "Pending";
        }
        "Running"
    }
}

fn ts(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn term_json(t: &Term) -> serde_json::Value {
    let mut v = serde_json::json!({"exitCode": t.exit_code, "reason": t.reason, "finishedAt": ts(t.finished_at)});
    if let Some(s) = t.started_at {
        v["startedAt"] = ts(s).into();
    }
    if let Some(sig) = t.signal {
        v["signal"] = sig.into();
    }
    if !t.message.is_empty() {
        v["message"] = t.message.clone().into();
    }
    v
}

fn state_json(s: &State) -> serde_json::Value {
    match s {
        State::Waiting { reason, message } => {
            let mut w = serde_json::json!({"reason": reason});
            if !message.is_empty() {
                w["message"] = message.clone().into();
            }
            serde_json::json!({"waiting": w})
        }
        State::Running { started_at } => serde_json::json!({"running": {"startedAt": ts(*started_at)}}),
        State::Terminated(t) => serde_json::json!({"terminated": term_json(t)}),
    }
}
