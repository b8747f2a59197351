//! Starts an API server on a free loopback port for one test.

use kube::Client;
use std::sync::Arc;

/// A running test server and a client for it.
pub struct TestServer {
    pub running: Option<portico_apiserver::Running>,
    pub client: Client,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = portico_store::memory::MemoryStore::new();
        let cfg = portico_apiserver::Config {
            data_dir: dir.path().to_owned(),
            bind: "127.0.0.1:0".parse().expect("addr"),
            ..Default::default()
        };
        let running = portico_apiserver::start(cfg, Arc::new(store)).await.expect("server starts");
        let client = client_with_token(&running, Some(&running.token)).await;
        Self { running: Some(running), client, _dir: dir }
    }

    pub fn running(&self) -> &portico_apiserver::Running {
        self.running.as_ref().expect("server running")
    }
}

/// A kube-rs client for the server, with the given bearer token (or none).
pub async fn client_with_token(running: &portico_apiserver::Running, token: Option<&str>) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&running.kubeconfig).expect("kubeconfig readable");
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.expect("kubeconfig valid");
    config.auth_info.token = token.map(|t| t.to_owned().into());
    Client::try_from(config).expect("client")
}

/// Sends a raw request; returns (status, body as JSON or string value).
pub async fn raw(client: &Client, method: &str, path: &str, content_type: Option<&str>, body: Vec<u8>) -> (u16, serde_json::Value) {
    let mut req = http::Request::builder().method(method).uri(path);
    if let Some(ct) = content_type {
        req = req.header(http::header::CONTENT_TYPE, ct);
    }
    let req = req.body(kube::client::Body::from(body)).expect("request");
    let resp = client.send(req).await.expect("response");
    let status = resp.status().as_u16();
    use http_body_util::BodyExt;
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, v)
}
