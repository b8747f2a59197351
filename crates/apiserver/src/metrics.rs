//! Prometheus metrics of the API server (kube-apiserver's names where the concept is the same).

use crate::handler::Body;
use http::{HeaderValue, Response, header};
use http_body_util::{BodyExt, Full};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerbLabels {
    verb: String,
}

/// Request counters and latency histograms.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<VerbLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<VerbLabels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16)));
        registry.register("apiserver_request", "Counter of apiserver requests broken out by verb and HTTP response code", requests.clone());
        registry.register("apiserver_request_duration_seconds", "Response latency distribution in seconds for each verb", latency.clone());
        Self { registry, requests, latency }
    }
}

impl Metrics {
    /// Records one request.
    pub fn observe(&self, method: &str, _path: &str, code: u16, elapsed: Duration) {
        let verb = method.to_ascii_uppercase();
        self.requests.get_or_create(&RequestLabels { verb: verb.clone(), code: code.to_string() }).inc();
        self.latency.get_or_create(&VerbLabels { verb }).observe(elapsed.as_secs_f64());
    }

    /// The text exposition.
    pub fn render(&self) -> Response<Body> {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        let mut resp = Response::new(Full::new(bytes::Bytes::from(out)).boxed_unsync());
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
        resp
    }
}
