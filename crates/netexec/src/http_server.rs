//! A minimal HTTP/1.1 server loop shared by the test servers.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A response body.
pub type Body = Full<Bytes>;

/// Builds a plain-text response with a status code.
pub fn text(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// Binds `0.0.0.0:port` (IPv4 and, where possible, IPv6 through `[::]`).
pub async fn bind(port: u16) -> Result<TcpListener, crate::Error> {
    let addr = format!("[::]:{port}");
    match TcpListener::bind(&addr).await {
        Ok(l) => Ok(l),
        Err(_) => {
            let addr = format!("0.0.0.0:{port}");
            TcpListener::bind(&addr).await.map_err(|source| crate::Error::Listen { addr, source })
        }
    }
}

/// Serves HTTP/1.1 on `listener` until the process exits, calling `handle`
/// with each request and the client's address.
pub async fn serve<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let handle = Arc::new(handle);
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        let peer = canonical(peer);
        let handle = handle.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let fut = handle(req, peer);
                async move { Ok::<_, std::convert::Infallible>(fut.await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            // Go's net/http answers a client that half-closed after its request; so does this.
            let _ = hyper::server::conn::http1::Builder::new().half_close(true).serve_connection(io, svc).await;
        });
    }
}

/// An IPv4 client seen through a dual-stack socket, as plain IPv4.
pub fn canonical(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}
