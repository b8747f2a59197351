//! Test servers compatible with the upstream e2e image `agnhost`.
//!
//! Kubernetes' networking e2e tests talk to pods running `agnhost netexec`,
//! `serve-hostname`, `porter` and `pause`. Portico runs pods as host
//! processes, so the same behaviours ship inside the `portico` binary
//! (`portico netexec ...`) and the node agent's image table maps the agnhost
//! and `portico/netexec` images to it. Paths, flags, defaults and reply bodies
//! follow agnhost so tests written against it keep working.

pub mod http_server;
pub mod netexec;
pub mod porter;
pub mod serve_hostname;

use std::time::Duration;

/// Why a test server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Flags could not be parsed.
    #[error(transparent)]
    Flags(#[from] clap::Error),
    /// A listener could not be opened.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A flag combination agnhost refuses.
    #[error("{0}")]
    Usage(&'static str),
    /// Any other IO failure.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Runs the agnhost subcommand named by `args[0]` (`netexec`, `serve-hostname`,
/// `porter`, `pause`); with no known subcommand first, runs `netexec` with all
/// of `args`. Returns the process exit code.
pub fn main(args: Vec<String>) -> Result<i32, Error> {
    let (cmd, rest) = match args.first().map(String::as_str) {
        Some(c @ ("netexec" | "serve-hostname" | "porter" | "pause")) => (c.to_owned(), args[1..].to_vec()),
        _ => ("netexec".to_owned(), args),
    };
    if cmd == "pause" {
        return Ok(pause());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        match cmd.as_str() {
            "serve-hostname" => serve_hostname::run(rest).await,
            "porter" => porter::run(rest).await,
            _ => netexec::run(rest).await,
        }
    })
}

/// `agnhost pause`: sleeps until SIGTERM/SIGINT, then exits 0.
fn pause() -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(_) => return 1,
    };
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            return 1;
        };
        println!("Paused");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        println!("Shutting down after receiving signal");
        0
    })
}

/// The hostname as `os.Hostname()` reports it (no trailing newline).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// Waits for SIGTERM; returns when it arrives (never, if the handler cannot be installed).
pub(crate) async fn sigterm() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}

/// How long a `/dial` attempt may take, as agnhost's 5 s client timeout.
pub(crate) const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
