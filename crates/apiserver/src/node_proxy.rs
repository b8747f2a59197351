//! `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`: the API
//! server finds the pod's node and proxies the request to the node agent's
//! kubelet API — a streamed response for logs, the raw upgraded connection
//! (websocket or SPDY) for exec and port-forward, and for a port-forward
//! tunnelled in a websocket the tunnel's end (`port_forward_tunnel`).

use crate::handler::Body;
use crate::registry::{ObjectRef, Registry};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use portico_api::resources;
use portico_api::status::ApiError;
use serde_json::Value;
use std::convert::Infallible;

/// The annotation a node agent publishes its API token in.
pub const KUBELET_TOKEN_ANNOTATION: &str = "portico.dev/kubelet-token";

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

/// Which container a request means: the `container` parameter, else the
/// `kubectl.kubernetes.io/default-container` annotation, else the only container.
fn pick_container(pod: &Value, name: &str, asked: Option<&str>) -> Result<String, ApiError> {
    let containers: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|c| c["name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    if let Some(c) = asked.filter(|c| !c.is_empty()) {
        if containers.iter().any(|x| x == c) {
            return Ok(c.to_owned());
        }
        return Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}")));
    }
    if let Some(d) = str_at(pod, "/metadata/annotations/kubectl.kubernetes.io~1default-container") {
        return Ok(d.to_owned());
    }
    match containers.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(ApiError::bad_request(format!("a container name must be specified for pod {name}, choose one of: [{}]", containers.join(" ")))),
    }
}

/// Proxies `sub` (`log`, `exec`, `attach`, `portforward`) for a pod to its node.
pub async fn proxy(registry: &Registry, mut req: Request<Incoming>, namespace: &str, name: &str, sub: &str) -> Result<Response<Body>, ApiError> {
    let pods = resources::find("", "v1", "pods").ok_or_else(|| ApiError::internal("pods are not served"))?;
    let nodes = resources::find("", "v1", "nodes").ok_or_else(|| ApiError::internal("nodes are not served"))?;
    let pod = registry.get(&ObjectRef { def: pods, namespace: Some(namespace), name }).await?;
    let params = crate::params::Query::parse(req.uri().query());
    let container = match sub {
        "portforward" => None,
        _ => Some(pick_container(&pod, name, params.get("container"))?),
    };
    let node_name = str_at(&pod, "/spec/nodeName").filter(|n| !n.is_empty()).ok_or_else(|| ApiError::bad_request(format!("pod {name} does not have a host assigned")))?;
    let node = registry.get(&ObjectRef { def: nodes, namespace: None, name: node_name }).await?;
    let ip = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP").and_then(|x| x["address"].as_str()))
        .ok_or_else(|| ApiError::bad_request(format!("node {node_name} has no InternalIP address")))?
        .to_owned();
    let port = node.pointer("/status/daemonEndpoints/kubeletEndpoint/Port").and_then(Value::as_u64).unwrap_or(10250);
    let token = str_at(&node, &format!("/metadata/annotations/{}", KUBELET_TOKEN_ANNOTATION.replace('/', "~1"))).unwrap_or("").to_owned();
    let path = match (sub, container) {
        ("log", Some(container)) => format!("/containerLogs/{namespace}/{name}/{container}"),
        (_, Some(container)) => format!("/{sub}/{namespace}/{name}/{container}"),
        (_, None) => format!("/portForward/{namespace}/{name}"),
    };
    let tunnel = if sub == "portforward" { crate::port_forward_tunnel::requested(req.headers()) } else { None };
    let uri = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let addr = if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") };
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| ApiError::unavailable(format!("error dialing backend: dial tcp {addr}: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| ApiError::unavailable(format!("error dialing backend: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut out = Request::builder().uri(&uri);
    if tunnel.is_some() {
        out = out.method(http::Method::POST);
        for (k, v) in crate::port_forward_tunnel::agent_headers() {
            out = out.header(k, v);
        }
    } else {
        out = out.method(req.method().clone());
        for (k, v) in req.headers() {
            if k != header::AUTHORIZATION && k != header::HOST && k != header::CONTENT_LENGTH {
                out = out.header(k, v);
            }
        }
    }
    out = out.header(header::HOST, &addr).header(header::AUTHORIZATION, format!("Bearer {token}"));
    let out = out.body(Empty::<Bytes>::new()).map_err(|e| ApiError::internal(e.to_string()))?;
    let client_upgrade = hyper::upgrade::on(&mut req);
    let mut resp = sender.send_request(out).await.map_err(|e| ApiError::unavailable(format!("error talking to the node agent: {e}")))?;
    let status = resp.status();
    if status == StatusCode::SWITCHING_PROTOCOLS
        && let Some(key) = tunnel
    {
        let node_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (Ok(client), Ok(agent)) = (client_upgrade.await, node_upgrade.await) else { return };
            crate::port_forward_tunnel::bridge(client, agent).await;
        });
        return Ok(crate::port_forward_tunnel::switching_protocols(&key));
    }
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let mut r = Response::new(http_body_util::Full::new(Bytes::new()).boxed_unsync());
        *r.status_mut() = status;
        for (k, v) in resp.headers() {
            r.headers_mut().insert(k, v.clone());
        }
        let node_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (Ok(a), Ok(b)) = (client_upgrade.await, node_upgrade.await) else { return };
            let mut a = hyper_util::rt::TokioIo::new(a);
            let mut b = hyper_util::rt::TokioIo::new(b);
            let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
        });
        return Ok(r);
    }
    if !status.is_success() {
        let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let text = String::from_utf8_lossy(&body).trim().to_owned();
        return Err(match status.as_u16() {
            404 => ApiError::bad_request(text),
            401 | 403 => ApiError::internal(format!("the node agent refused the API server's credentials: {text}")),
            400 => ApiError::bad_request(text),
            _ => ApiError::internal(text),
        });
    }
    // Stream the body; a transport error just ends it.
    let mut incoming = resp.into_body();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(16);
    tokio::spawn(async move {
        while let Some(frame) = incoming.frame().await {
            let Ok(frame) = frame else { break };
            if let Ok(data) = frame.into_data()
                && tx.send(Ok(Frame::data(data))).await.is_err() {
                    break;
                }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    Ok(r)
}
