//! A pseudo-terminal for driving `kubectl ... -it` as a user at a terminal
//! would: the test holds the master (types, reads the screen, resizes), the
//! process gets the slave as stdin, stdout and stderr.

use parking_lot::Mutex;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A process running on a pty.
pub struct PtyProcess {
    master: OwnedFd,
    writer: std::fs::File,
    child: Child,
    screen: Arc<Mutex<Vec<u8>>>,
}

fn winsize(rows: u16, cols: u16) -> rustix::termios::Winsize {
    rustix::termios::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }
}

impl PtyProcess {
    /// Starts `cmd` on a new `rows`×`cols` terminal.
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> PtyProcess {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        rustix::termios::tcsetwinsize(&pty.master, winsize(rows, cols)).expect("set the terminal size");
        cmd.stdin(Stdio::from(pty.slave.try_clone().expect("slave")));
        cmd.stdout(Stdio::from(pty.slave.try_clone().expect("slave")));
        cmd.stderr(Stdio::from(pty.slave));
        let child = cmd.spawn().expect("spawn on the pty");
        // The Command keeps copies of the slave; without them the master reads EIO when the child is gone.
        drop(cmd);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = std::fs::File::from(pty.master.try_clone().expect("master"));
        let sink = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                sink.lock().extend_from_slice(&buf[..n]);
            }
        });
        let writer = std::fs::File::from(pty.master.try_clone().expect("master"));
        PtyProcess { master: pty.master, writer, child, screen }
    }

    /// What the process wrote so far.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock()).into_owned()
    }

    /// Types `text`.
    pub fn type_text(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).expect("type");
    }

    /// Resizes the terminal and tells the process, as the kernel does for a
    /// terminal's foreground process group.
    pub fn resize(&self, rows: u16, cols: u16) {
        rustix::termios::tcsetwinsize(&self.master, winsize(rows, cols)).expect("resize");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGWINCH).expect("SIGWINCH");
    }

    /// Waits until the screen shows `needle`; panics with the screen after `limit`.
    pub fn wait_for(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while !self.screen().contains(needle) {
            assert!(start.elapsed() < limit, "{needle:?} not on the terminal after {limit:?}: {:?}", self.screen());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit (killing it after `limit`): its exit code and the screen.
    pub fn wait(mut self, limit: Duration) -> (Option<i32>, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                break st;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                break self.child.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // Let the reader drain what is left.
        std::thread::sleep(Duration::from_millis(200));
        (status.code(), self.screen())
    }
}

impl Drop for PtyProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
