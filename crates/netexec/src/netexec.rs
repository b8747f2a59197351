//! `netexec`: the HTTP + UDP test server of the upstream networking e2e tests.

use crate::http_server::{self, Body, text};
use clap::Parser;
use hyper::body::Incoming;
use hyper::{Request, Response};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

/// netexec's flags (agnhost names and defaults).
#[derive(Parser, Debug)]
#[command(name = "netexec", about = "HTTP and UDP test server (agnhost netexec)")]
pub struct Flags {
    /// HTTP port.
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// UDP port; -1 disables UDP.
    #[arg(long, default_value_t = 8081, allow_hyphen_values = true)]
    udp_port: i32,
    /// SCTP port (not supported; -1 only).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    sctp_port: i32,
    /// Serve this path (and query) for every request.
    #[arg(long)]
    http_override: Option<String>,
    /// Comma-separated IPs for the UDP server (default: any).
    #[arg(long)]
    udp_listen_addresses: Option<String>,
    /// On SIGTERM keep serving this many seconds (with /readyz failing), then exit 0.
    #[arg(long, default_value_t = 0)]
    delay_shutdown: u64,
}

struct State {
    udp_started: AtomicBool,
    shutting_down: AtomicBool,
    http_override: Option<String>,
}

/// Runs netexec with agnhost-style flags until `/exit`, `/shutdown` or a signal.
pub async fn run(args: Vec<String>) -> Result<i32, crate::Error> {
    let flags = Flags::try_parse_from(std::iter::once("netexec".to_owned()).chain(args))?;
    let state = Arc::new(State {
        udp_started: AtomicBool::new(flags.udp_port < 0 && flags.sctp_port < 0),
        shutting_down: AtomicBool::new(false),
        http_override: flags.http_override.clone(),
    });
    if flags.udp_port >= 0 {
        let port = u16::try_from(flags.udp_port).map_err(|_| crate::Error::Usage("--udp-port must be -1 or a port number"))?;
        let addrs: Vec<String> = match &flags.udp_listen_addresses {
            Some(list) => {
                let mut v: Vec<String> = list.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
                v.dedup();
                v.into_iter().map(|ip| if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") }).collect()
            }
            None => vec![format!("[::]:{port}")],
        };
        for addr in addrs {
            let sock = match UdpSocket::bind(&addr).await {
                Ok(s) => s,
                Err(_) if addr.starts_with("[::]") => {
                    let v4 = format!("0.0.0.0:{port}");
                    UdpSocket::bind(&v4).await.map_err(|source| crate::Error::Listen { addr: v4, source })?
                }
                Err(source) => return Err(crate::Error::Listen { addr, source }),
            };
            tokio::spawn(udp_loop(sock));
        }
        state.udp_started.store(true, Ordering::SeqCst);
    }
    let listener = http_server::bind(flags.http_port).await?;
    let st = state.clone();
    tokio::spawn(http_server::serve(listener, move |req, peer| handle(st.clone(), req, peer)));
    println!("Started HTTP server on port {}", flags.http_port);
    crate::sigterm().await;
    state.shutting_down.store(true, Ordering::SeqCst);
    if flags.delay_shutdown > 0 {
        println!("Sleeping {} seconds before terminating...", flags.delay_shutdown);
        tokio::time::sleep(Duration::from_secs(flags.delay_shutdown)).await;
    }
    Ok(0)
}

async fn udp_loop(sock: UdpSocket) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else { continue };
        let msg = String::from_utf8_lossy(&buf[..n]).trim().to_lowercase();
        if let Some(reply) = udp_reply(&msg, http_server::canonical(peer)) {
            let _ = sock.send_to(reply.as_bytes(), peer).await;
        }
    }
}

/// The UDP protocol: `hostname`, `echo <msg>`, `clientip`; anything else gets no reply.
pub fn udp_reply(msg: &str, peer: SocketAddr) -> Option<String> {
    if msg == "hostname" {
        Some(crate::hostname())
    } else if let Some(rest) = msg.strip_prefix("echo ") {
        Some(rest.to_owned())
    } else if msg == "clientip" {
        Some(peer.to_string())
    } else {
        None
    }
}

fn query(req: &Request<Incoming>) -> BTreeMap<String, String> {
    parse_query(req.uri().query().unwrap_or(""))
}

/// Decodes `a=b&c=d` with percent and `+` decoding; the first value wins.
pub fn parse_query(q: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in parse_query_all(q) {
        out.entry(k).or_insert(v);
    }
    out
}

/// Decodes `a=b&a=c` into every pair, in order.
pub fn parse_query_all(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = || b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex()) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(v)) => {
                out.push(v);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(state: Arc<State>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let (path, q) = match &state.http_override {
        Some(o) => {
            let (p, q) = o.split_once('?').unwrap_or((o, ""));
            (p.to_owned(), parse_query(q))
        }
        None => (req.uri().path().to_owned(), query(&req)),
    };
    match path.as_str() {
        "/" => text(200, format!("NOW: {}", jiff::Zoned::now())),
        "/clientip" => text(200, peer.to_string()),
        "/hostname" | "/hostName" => text(200, crate::hostname()),
        "/echo" => {
            let code = q.get("code").and_then(|c| c.parse::<u16>().ok()).unwrap_or(200);
            text(code, q.get("msg").cloned().unwrap_or_default())
        }
        "/header" => match q.get("key") {
            Some(k) => text(200, req.headers().get(k.as_str()).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()),
            None => {
                let mut all = serde_json::Map::new();
                for (k, v) in req.headers() {
                    let e = all.entry(k.as_str().to_owned()).or_insert_with(|| serde_json::Value::Array(vec![]));
                    if let serde_json::Value::Array(a) = e {
                        a.push(v.to_str().unwrap_or("").into());
                    }
                }
                text(200, serde_json::Value::Object(all).to_string())
            }
        },
        "/healthz" => {
            if state.udp_started.load(Ordering::SeqCst) { text(200, "") } else { text(412, "server not started\n") }
        }
        "/readyz" => {
            if state.shutting_down.load(Ordering::SeqCst) {
                text(503, "shutting down")
            } else if state.udp_started.load(Ordering::SeqCst) {
                text(200, "ok")
            } else {
                text(412, "server not started\n")
            }
        }
        "/exit" => exit(&q).await,
        "/shutdown" => std::process::exit(0),
        "/redirect" => {
            let code = q.get("code").and_then(|c| c.parse::<u16>().ok()).unwrap_or(302);
            let mut r = text(code, "");
            if let Ok(v) = http::HeaderValue::from_str(q.get("location").map(String::as_str).unwrap_or("/")) {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
            r
        }
        "/shell" => {
            let cmd = q.get("shellCommand").or_else(|| q.get("cmd")).cloned().unwrap_or_default();
            let out = tokio::process::Command::new("/bin/sh").arg("-c").arg(&cmd).output().await;
            let body = match out {
                Ok(o) if o.status.success() => serde_json::json!({"output": String::from_utf8_lossy(&o.stdout)}),
                Ok(o) => serde_json::json!({"output": String::from_utf8_lossy(&o.stdout), "error": format!("{}", o.status)}),
                Err(e) => serde_json::json!({"error": e.to_string()}),
            };
            text(200, body.to_string())
        }
        "/dial" => dial(&q).await,
        _ => text(404, "404 page not found\n"),
    }
}

async fn exit(q: &BTreeMap<String, String>) -> Response<Body> {
    let code: i32 = match q.get("code").map(|c| c.parse::<i32>()) {
        None => 0,
        Some(Ok(c)) if (0..=127).contains(&c) => c,
        _ => return text(400, "bad exit code\n"),
    };
    let wait = q.get("wait").and_then(|w| parse_go_duration(w)).unwrap_or_default();
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        std::process::exit(code);
    });
    text(200, "")
}

/// Parses the Go durations agnhost accepts (`5s`, `100ms`, `1m`, plain seconds).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "us" | "µs" => n / 1e6,
        "ns" => n / 1e9,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

async fn dial(q: &BTreeMap<String, String>) -> Response<Body> {
    let Some(request) = q.get("request") else { return text(400, "request parameter not specified\n") };
    let Some(host) = q.get("host").filter(|h| !h.is_empty()) else { return text(400, "host parameter not specified\n") };
    let Some(port) = q.get("port").and_then(|p| p.parse::<u16>().ok()) else { return text(400, "port parameter not specified or invalid\n") };
    let tries = match q.get("tries").map(|t| t.parse::<u32>()) {
        None => 1,
        Some(Ok(t)) => t,
        Some(Err(_)) => return text(400, "tries parameter is invalid\n"),
    };
    let protocol = q.get("protocol").map(String::as_str).unwrap_or("http");
    if !matches!(protocol, "http" | "udp") {
        return text(400, format!("unsupported protocol. {protocol}\n"));
    }
    let mut responses = Vec::new();
    let mut errors = Vec::new();
    let mut last_empty = true;
    for _ in 0..tries {
        let r = if protocol == "udp" { dial_udp(host, port, request).await } else { dial_http(host, port, request).await };
        match r {
            Ok(body) => {
                last_empty = body.is_empty();
                if !body.is_empty() {
                    responses.push(body);
                }
            }
            Err(e) => {
                last_empty = true;
                errors.push(e);
            }
        }
    }
    let mut out = serde_json::Map::new();
    if !responses.is_empty() && !last_empty {
        out.insert("responses".into(), responses.into());
    }
    if !errors.is_empty() {
        out.insert("errors".into(), errors.into());
    }
    text(200, serde_json::Value::Object(out).to_string())
}

fn join_host(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

async fn dial_http(host: &str, port: u16, request: &str) -> Result<String, String> {
    let addr = join_host(host, port);
    let path = if request.starts_with('/') { request.to_owned() } else { format!("/{request}") };
    let work = async {
        let mut s = tokio::net::TcpStream::connect(&addr).await.map_err(|e| format!("dial tcp {addr}: {e}"))?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: Go-http-client/1.1\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| "malformed HTTP response".to_owned())?;
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            return Ok(dechunk(body));
        }
        Ok(body.to_owned())
    };
    tokio::time::timeout(crate::DIAL_TIMEOUT, work).await.unwrap_or_else(|_| Err(format!("Get \"http://{addr}{path}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)")))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

async fn dial_udp(host: &str, port: u16, request: &str) -> Result<String, String> {
    let addr = join_host(host, port);
    let work = async {
        let bind = if addr.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" };
        let s = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
        s.connect(&addr).await.map_err(|e| format!("dial udp {addr}: {e}"))?;
        s.send(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 2048];
        let n = s.recv(&mut buf).await.map_err(|e| format!("reading from udp {addr}: {e}"))?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    tokio::time::timeout(crate::DIAL_TIMEOUT, work).await.unwrap_or_else(|_| Err(format!("reading from udp connection failed. err:'read udp {addr}: i/o timeout'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding_matches_go() {
        let q = parse_query("request=echo%20hi&host=10.0.0.1&x=a+b&x=second");
        assert_eq!(q["request"], "echo hi");
        assert_eq!(q["x"], "a b");
        assert_eq!(parse_query("bad=%zz")["bad"], "%zz");
    }

    #[test]
    fn udp_protocol() {
        let peer: SocketAddr = "10.0.0.9:5555".parse().expect("addr");
        assert_eq!(udp_reply("echo hello", peer).as_deref(), Some("hello"));
        assert_eq!(udp_reply("clientip", peer).as_deref(), Some("10.0.0.9:5555"));
        assert_eq!(udp_reply("nonsense", peer), None);
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_go_duration("x"), None);
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(dechunk("5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n"), "hello!");
    }
}
