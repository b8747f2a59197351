//! Leader election on a `coordination.k8s.io` Lease, so two servers never
//! both run controllers (client-go's leaderelection, simplified).

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;
use std::future::Future;
use std::time::Duration;

/// The Lease the controllers hold.
pub const LEASE_NAME: &str = "portico-controller-manager";
/// Where it lives.
pub const LEASE_NAMESPACE: &str = "kube-system";
const LEASE_SECONDS: i64 = 15;
const RENEW_EVERY: Duration = Duration::from_secs(5);
const RETRY_EVERY: Duration = Duration::from_secs(2);

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

fn micro(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Whether a lease held by someone else has expired.
pub fn expired(lease: &Lease, at: jiff::Timestamp) -> bool {
    let spec = lease.spec.clone().unwrap_or_default();
    let Some(renew) = spec.renew_time.map(|t| t.0) else { return true };
    let duration = jiff::SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS as i32)));
    renew + duration < at
}

/// Tries once to acquire or renew; `true` when we hold the lease.
async fn try_acquire(api: &Api<Lease>, me: &str) -> Result<bool, kube::Error> {
    let t = micro(now());
    match api.get_opt(LEASE_NAME).await? {
        None => {
            let lease: Lease = serde_json::from_value(json!({"metadata": {"name": LEASE_NAME, "namespace": LEASE_NAMESPACE},
                "spec": {"holderIdentity": me, "leaseDurationSeconds": LEASE_SECONDS, "acquireTime": t, "renewTime": t, "leaseTransitions": 0}}))
            .map_err(kube::Error::SerdeError)?;
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            let mine = spec.holder_identity.as_deref() == Some(me);
            if !mine && !expired(&lease, now()) {
                return Ok(false);
            }
            let spec = lease.spec.get_or_insert_with(Default::default);
            if !mine {
                spec.holder_identity = Some(me.to_owned());
                spec.acquire_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(now()));
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(now()));
            spec.lease_duration_seconds = Some(LEASE_SECONDS as i32);
            // The resourceVersion makes this a compare-and-swap: one winner.
            match api.replace(LEASE_NAME, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Stops the controllers when leadership (or this future) goes away.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `work` only while this process holds the lease; restarts it after
/// losing and regaining leadership.
pub async fn run_while_leader<F, Fut>(client: Client, identity: String, work: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let api: Api<Lease> = Api::namespaced(client, LEASE_NAMESPACE);
    loop {
        match try_acquire(&api, &identity).await {
            Ok(true) => {}
            Ok(false) => {
                tokio::time::sleep(RETRY_EVERY).await;
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "leader election attempt failed");
                tokio::time::sleep(RETRY_EVERY).await;
                continue;
            }
        }
        tracing::info!(%identity, "became leader; starting controllers");
        let task = AbortOnDrop(tokio::spawn(work()));
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            match try_acquire(&api, &identity).await {
                Ok(true) => {}
                Ok(false) | Err(_) => {
                    tracing::warn!(%identity, "lost leadership; stopping controllers");
                    drop(task);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_expire_after_their_duration() {
        let renewed = jiff::Timestamp::from_second(1_000).expect("ts");
        let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "l"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": micro(renewed)}})).expect("lease");
        assert!(!expired(&lease, renewed + jiff::SignedDuration::from_secs(10)));
        assert!(expired(&lease, renewed + jiff::SignedDuration::from_secs(16)));
        let never: Lease = serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {}})).expect("lease");
        assert!(expired(&never, renewed));
    }
}
