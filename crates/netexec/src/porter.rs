//! `porter`: serves the values of `SERVE_*_PORT_<n>` environment variables.

use crate::http_server::{self, text};
use clap::Parser;

/// porter's flags.
#[derive(Parser, Debug)]
#[command(name = "porter")]
pub struct Flags {
    /// Reply `{"Method":..,"Body":..}` as JSON instead of the bare value.
    #[arg(long)]
    json_response: bool,
}

/// One listener porter opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listener {
    /// HTTP on this port, answering with the value.
    Http(u16, String),
    /// UDP on this port, answering datagrams with the value.
    Udp(u16, String),
}

/// Reads the listeners from environment variables (TLS and SCTP are not supported).
pub fn listeners(env: impl Iterator<Item = (String, String)>) -> Vec<Listener> {
    let mut out = Vec::new();
    for (k, v) in env {
        let http = k.strip_prefix("SERVE_PORT_").or_else(|| k.strip_prefix("SERVE_TCP_PORT_"));
        if let Some(port) = http.and_then(|p| p.parse().ok()) {
            out.push(Listener::Http(port, v));
        } else if let Some(port) = k.strip_prefix("SERVE_UDP_PORT_").and_then(|p| p.parse().ok()) {
            out.push(Listener::Udp(port, v));
        }
    }
    out.sort_by_key(|l| match l {
        Listener::Http(p, _) | Listener::Udp(p, _) => *p,
    });
    out
}

/// Runs porter until SIGTERM.
pub async fn run(args: Vec<String>) -> Result<i32, crate::Error> {
    let flags = Flags::try_parse_from(std::iter::once("porter".to_owned()).chain(args))?;
    for l in listeners(std::env::vars()) {
        match l {
            Listener::Http(port, value) => {
                let listener = http_server::bind(port).await?;
                let json = flags.json_response;
                tokio::spawn(http_server::serve(listener, move |req, _| {
                    let value = value.clone();
                    async move {
                        if json {
                            let mut r = text(200, serde_json::json!({"Method": req.method().as_str(), "Body": value}).to_string());
                            r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
                            r
                        } else {
                            let mut r = text(200, value.clone());
                            if value.trim_start().starts_with('<') {
                                r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/html; charset=utf-8"));
                            }
                            r
                        }
                    }
                }));
            }
            Listener::Udp(port, value) => {
                let sock = tokio::net::UdpSocket::bind(format!("0.0.0.0:{port}")).await?;
                tokio::spawn(async move {
                    let mut buf = [0u8; 16];
                    loop {
                        if let Ok((_, peer)) = sock.recv_from(&mut buf).await {
                            let _ = sock.send_to(value.as_bytes(), peer).await;
                        }
                    }
                });
            }
        }
    }
    crate::sigterm().await;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_serve_variables() {
        let env = [("SERVE_PORT_80", "foo"), ("SERVE_UDP_PORT_81", "bar"), ("OTHER", "x"), ("SERVE_TCP_PORT_82", "baz")];
        let got = listeners(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(got, vec![Listener::Http(80, "foo".into()), Listener::Udp(81, "bar".into()), Listener::Http(82, "baz".into())]);
    }
}
