//! `serve-hostname`: answers every request with the hostname.

use crate::http_server::{self, text};
use clap::Parser;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// serve-hostname's flags (agnhost names and defaults).
#[derive(Parser, Debug)]
#[command(name = "serve-hostname")]
pub struct Flags {
    /// Port to serve on.
    #[arg(long, default_value_t = 9376)]
    port: u16,
    /// Serve HTTP (cannot be combined with --tcp or --udp).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    http: bool,
    /// Serve raw TCP: write the hostname and close.
    #[arg(long)]
    tcp: bool,
    /// Serve UDP: reply with the hostname to any datagram.
    #[arg(long)]
    udp: bool,
    /// Add `Connection: close` to HTTP replies.
    #[arg(long)]
    close: bool,
}

/// Runs serve-hostname until SIGTERM (then sleeps 60 s as agnhost does).
pub async fn run(args: Vec<String>) -> Result<i32, crate::Error> {
    let mut flags = Flags::try_parse_from(std::iter::once("serve-hostname".to_owned()).chain(args))?;
    if flags.tcp || flags.udp {
        if flags.http && std::env::args().any(|a| a == "--http" || a == "--http=true") {
            return Err(crate::Error::Usage("can't combine --http with --tcp or --udp"));
        }
        flags.http = false;
    }
    let name = crate::hostname();
    if flags.http {
        let listener = http_server::bind(flags.port).await?;
        let close = flags.close;
        let n = name.clone();
        tokio::spawn(http_server::serve(listener, move |_req, _peer| {
            let n = n.clone();
            async move {
                let mut r = text(200, n);
                if close {
                    r.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
                }
                r
            }
        }));
    }
    if flags.tcp {
        let listener = http_server::bind(flags.port).await?;
        let n = name.clone();
        tokio::spawn(async move {
            loop {
                if let Ok((mut s, _)) = listener.accept().await {
                    let n = n.clone();
                    tokio::spawn(async move {
                        let _ = s.write_all(n.as_bytes()).await;
                    });
                }
            }
        });
    }
    if flags.udp {
        let sock = match tokio::net::UdpSocket::bind(format!("[::]:{}", flags.port)).await {
            Ok(s) => s,
            Err(_) => tokio::net::UdpSocket::bind(format!("0.0.0.0:{}", flags.port)).await?,
        };
        let n = name.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 16];
            loop {
                if let Ok((_, peer)) = sock.recv_from(&mut buf).await {
                    let _ = sock.send_to(n.as_bytes(), peer).await;
                }
            }
        });
    }
    println!("Serving on port {}.", flags.port);
    crate::sigterm().await;
    println!("Received SIGTERM, sleeping 60 seconds before exit");
    tokio::time::sleep(Duration::from_secs(60)).await;
    Ok(0)
}
