//! The HTTP front: authentication, routing, content negotiation and the
//! mapping of verbs onto the registry.

use crate::body::{self, BodyFormat, MAX_BODY_BYTES};
use crate::discovery;
use crate::params::{Accept, Query, WriteOptions};
use crate::registry::{DeleteOptions, ListParams, ObjectRef, PatchType, Registry, WatchEvent, WatchParams, WatchStart};
use crate::route::{self, ResourceRoute, Route, RouteError};
use crate::semantics::{self, IncludeObject};
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use portico_api::status::{ApiError, success_status};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The response body type.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Shared state of the HTTP front.
pub struct Api {
    /// The registry.
    pub registry: Registry,
    /// Accepted bearer tokens.
    pub tokens: Vec<String>,
    /// Set once start-up work (bootstrap, repair) is done.
    pub ready: AtomicBool,
    /// Set when draining: `/readyz` fails so load balancers stop sending work.
    pub draining: AtomicBool,
    /// Request metrics.
    pub metrics: crate::metrics::Metrics,
    /// Becomes `true` when the server shuts down: open watches end then.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    let mut resp = Response::new(full(serde_json::to_vec(v).unwrap_or_default()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A `Status` response for an error.
pub fn error_response(e: &ApiError) -> Response<Body> {
    json_response(StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), &e.to_status())
}

fn text(code: StatusCode, s: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(s));
    *resp.status_mut() = code;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

fn header_str(req: &Request<Incoming>, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

impl Api {
    /// Handles one request; never fails (errors become `Status` responses).
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
        let started = std::time::Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let resp = match self.clone().dispatch(req).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        };
        self.metrics.observe(method.as_str(), &path, resp.status().as_u16(), started.elapsed());
        tracing::debug!(%method, %path, code = resp.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
        Ok(resp)
    }

    fn authenticated(&self, req: &Request<Incoming>) -> bool {
        let Some(auth) = header_str(req, header::AUTHORIZATION) else { return false };
        let Some(token) = auth.strip_prefix("Bearer ").map(str::trim) else { return false };
        self.tokens.iter().any(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
    }

    async fn dispatch(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let route = route::parse(req.uri().path());
        // Health and version are public, as with upstream's system:public-info-viewer.
        match &route {
            Ok(Route::Health(kind)) => return Ok(self.health(*kind)),
            Ok(Route::Version) => return Ok(json_response(StatusCode::OK, &discovery::version())),
            _ => {}
        }
        if !self.authenticated(&req) {
            return Err(ApiError::unauthorized());
        }
        let accept = header_str(&req, header::ACCEPT).map(str::to_owned);
        match route {
            Ok(Route::Metrics) => Ok(self.metrics.render()),
            Ok(Route::CoreGroups) if discovery::wants_aggregated(accept.as_deref()) => Ok(aggregated(true)),
            Ok(Route::Groups) if discovery::wants_aggregated(accept.as_deref()) => Ok(aggregated(false)),
            Ok(Route::CoreGroups) => Ok(json_response(StatusCode::OK, &discovery::core_versions())),
            Ok(Route::Groups) => Ok(json_response(StatusCode::OK, &discovery::groups())),
            Ok(Route::Group(g)) => Ok(json_response(StatusCode::OK, &discovery::group(&g))),
            Ok(Route::GroupVersion { group, version }) => Ok(json_response(StatusCode::OK, &discovery::resource_list(&group, &version))),
            Ok(Route::OpenApiV2) => {
                // An empty gnostic Document: kubectl's validation then leaves
                // field checks to the server (it sends fieldValidation=Strict).
                let mut resp = Response::new(full(Bytes::new()));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/com.github.proto-openapi.spec.v2.v1.0+protobuf"),
                );
                Ok(resp)
            }
            Ok(Route::OpenApiV3) => Err(ApiError::path_not_found()),
            Ok(Route::Resource(r)) => self.resource(req, r, accept.as_deref()).await,
            Ok(Route::PodStream(p)) => crate::node_proxy::proxy(&self.registry, req, &p.namespace, &p.name, p.sub).await,
            Ok(Route::Health(_) | Route::Version) => Err(ApiError::path_not_found()),
            Err(RouteError::NotFound) => Err(ApiError::path_not_found()),
            Err(RouteError::UnsupportedSubresource(_)) => Err(ApiError::path_not_found()),
        }
    }

    fn health(&self, kind: route::HealthKind) -> Response<Body> {
        let ok = match kind {
            route::HealthKind::Readyz => self.ready.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire),
            _ => true,
        };
        if ok { text(StatusCode::OK, "ok") } else { text(StatusCode::SERVICE_UNAVAILABLE, "not ready") }
    }

    async fn resource(&self, req: Request<Incoming>, r: ResourceRoute, accept: Option<&str>) -> Result<Response<Body>, ApiError> {
        let q = Query::parse(req.uri().query());
        let method = req.method().clone();
        let user_agent = header_str(&req, header::USER_AGENT).unwrap_or("unknown").to_owned();
        let content_type = header_str(&req, header::CONTENT_TYPE).map(str::to_owned);
        let accept = Accept::from_header(accept)?;
        let ns = if r.def.namespaced { r.namespace.as_deref() } else { None };
        let body = read_body(req).await?;
        match (&method, r.name.as_deref()) {
            (&Method::GET, None) if q.flag("watch") => self.watch(&r, &q, accept).await,
            (&Method::GET, None) => {
                let params = ListParams::from_query(r.def, &q)?;
                let out = self.registry.list(r.def, ns, &params).await?;
                if accept == Accept::Table {
                    let include = include_object(&q)?;
                    return Ok(json_response(StatusCode::OK, &semantics::table(r.def, &out.items, include, out.meta)));
                }
                let list = json!({
                    "kind": format!("{}List", r.def.kind),
                    "apiVersion": r.def.api_version(),
                    "metadata": out.meta,
                    "items": out.items,
                });
                Ok(json_response(StatusCode::OK, &list))
            }
            (&Method::GET, Some(name)) => {
                let obj = self.registry.get(&ObjectRef { def: r.def, namespace: ns, name }).await?;
                let obj = match r.sub {
                    Some(portico_api::resources::Subresource::Scale) => crate::registry::object_to_scale(r.def, &obj),
                    _ => obj,
                };
                if accept == Accept::Table && r.sub.is_none() {
                    let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
                    return Ok(json_response(StatusCode::OK, &semantics::table(r.def, &[obj], include_object(&q)?, meta)));
                }
                Ok(json_response(StatusCode::OK, &obj))
            }
            (&Method::POST, None) => {
                let fmt = BodyFormat::for_object(content_type.as_deref())?;
                let obj = body::decode(fmt, &body)?;
                let opts = WriteOptions::from_query(&q, &user_agent)?;
                let out = self.registry.create(r.def, ns, obj, &opts).await?;
                Ok(with_warnings(json_response(StatusCode::CREATED, &out.object), &out.warnings))
            }
            (&Method::PUT, Some(name)) => {
                let fmt = BodyFormat::for_object(content_type.as_deref())?;
                let obj = body::decode(fmt, &body)?;
                let opts = WriteOptions::from_query(&q, &user_agent)?;
                let out = self.registry.update(&ObjectRef { def: r.def, namespace: ns, name }, r.sub, obj, &opts).await?;
                let code = if out.created { StatusCode::CREATED } else { StatusCode::OK };
                Ok(with_warnings(json_response(code, &out.object), &out.warnings))
            }
            (&Method::PATCH, Some(name)) => {
                let ct = content_type.as_deref().unwrap_or("");
                let ty = PatchType::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
                let fmt = if ty == PatchType::Apply { BodyFormat::Yaml } else { BodyFormat::Json };
                let patch = body::decode(fmt, &body)?;
                let opts = WriteOptions::from_query(&q, &user_agent)?;
                let out = self.registry.patch(&ObjectRef { def: r.def, namespace: ns, name }, r.sub, ty, &patch, &opts).await?;
                let code = if out.created { StatusCode::CREATED } else { StatusCode::OK };
                Ok(with_warnings(json_response(code, &out.object), &out.warnings))
            }
            (&Method::DELETE, Some(name)) => {
                let opts = DeleteOptions::parse(&body, &q)?;
                let out = self.registry.delete(&ObjectRef { def: r.def, namespace: ns, name }, &opts).await?;
                let code = if out.deleted { StatusCode::OK } else { StatusCode::ACCEPTED };
                Ok(json_response(code, &out.object))
            }
            (&Method::DELETE, None) => {
                let opts = DeleteOptions::parse(&body, &q)?;
                let params = ListParams::from_query(r.def, &q)?;
                let out = self.registry.list(r.def, ns, &params).await?;
                for item in &out.items {
                    let name = crate::object::name(item).to_owned();
                    let item_ns = crate::object::namespace(item).to_owned();
                    let target = ObjectRef { def: r.def, namespace: r.def.namespaced.then_some(item_ns.as_str()), name: &name };
                    match self.registry.delete(&target, &opts).await {
                        Ok(_) => {}
                        Err(e) if e.code == 404 => {}
                        Err(e) => return Err(e),
                    }
                }
                let list = json!({"kind": format!("{}List", r.def.kind), "apiVersion": r.def.api_version(), "metadata": out.meta, "items": out.items});
                Ok(json_response(StatusCode::OK, &list))
            }
            _ => {
                let action = match method {
                    Method::POST => "create",
                    Method::PUT => "update",
                    Method::PATCH => "patch",
                    Method::DELETE => "delete",
                    _ => "this request",
                };
                let _ = success_status;
                Err(ApiError::method_not_supported(&r.def.group_resource(), action))
            }
        }
    }

    async fn watch(&self, r: &ResourceRoute, q: &Query, accept: Accept) -> Result<Response<Body>, ApiError> {
        let list = ListParams::from_query(r.def, q)?;
        let start = match q.get("resourceVersion") {
            None | Some("" | "0") => WatchStart::Snapshot,
            Some(rv) => WatchStart::After(rv.parse().map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}")))?),
        };
        let send_initial = q.flag("sendInitialEvents");
        let start = if send_initial { WatchStart::Snapshot } else { start };
        let params = WatchParams {
            list,
            start,
            bookmarks: q.flag("allowWatchBookmarks"),
            initial_events_end: send_initial,
            bookmark_every: Duration::from_secs(15),
        };
        let ns = if r.def.namespaced { r.namespace.as_deref() } else { None };
        let events = self.registry.watch(r.def, ns, params).await?;
        // Upstream ends watches after timeoutSeconds, or a random 30–60 minutes.
        let timeout = q.number("timeoutSeconds")?.unwrap_or(1800 + u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * 7);
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        let def = r.def;
        let include = include_object(q)?;
        let mut shutdown = self.shutdown.clone();
        let stopping = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        let frames = events.take_until(deadline).take_until(stopping).map(move |ev: WatchEvent| {
            let object = if accept == Accept::Table && matches!(ev.kind, "ADDED" | "MODIFIED" | "DELETED") {
                semantics::table(def, std::slice::from_ref(&ev.object), include, json!({"resourceVersion": ev.object["metadata"]["resourceVersion"]}))
            } else {
                ev.object
            };
            let mut line = serde_json::to_vec(&json!({"type": ev.kind, "object": object})).unwrap_or_default();
            line.push(b'\n');
            Ok::<_, Infallible>(Frame::data(Bytes::from(line)))
        });
        let mut resp = Response::new(BodyExt::boxed_unsync(StreamBody::new(frames)));
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
        Ok(resp)
    }
}

fn aggregated(core: bool) -> Response<Body> {
    let mut resp = json_response(StatusCode::OK, &discovery::aggregated(core));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(discovery::AGGREGATED_V2));
    resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept"));
    resp
}

fn include_object(q: &Query) -> Result<IncludeObject, ApiError> {
    q.get("includeObject").unwrap_or("").parse().map_err(|e: <IncludeObject as std::str::FromStr>::Err| ApiError::bad_request(e.to_string()))
}

fn with_warnings(mut resp: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let text = format!("299 - {}", portico_api::status::go_quote(w));
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// Beyond the limit a body is still read (and dropped) up to this size, so
/// the client gets the 413 instead of a reset stream.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::too_large(format!("limit is {MAX_BODY_BYTES}"));
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > DRAIN_LIMIT) {
        return Err(too_large());
    }
    let mut body = req.into_body();
    let mut buf = bytes::BytesMut::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("reading request body: {e}")))?;
        if let Some(data) = frame.data_ref() {
            total += data.len();
            if total <= MAX_BODY_BYTES {
                buf.extend_from_slice(data);
            } else if total > DRAIN_LIMIT {
                break;
            }
        }
    }
    if total > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(buf.freeze())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
