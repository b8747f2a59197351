//! The two tiny single-threaded entry points that put processes into a pod's
//! namespaces without `unsafe` code: `portico sandbox-init` (the pod's pause
//! process: joins the pod network namespace, makes its own UTS and mount
//! namespaces with the pod's hostname, `/etc/hosts` and `/etc/resolv.conf`,
//! then waits) and `portico sandbox-exec` (joins a running sandbox's
//! namespaces and execs a container's program). Both must run before any
//! thread is started: `setns` into a mount namespace and `unshare` of one are
//! refused to multi-threaded processes.

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{SigSet, Signal};
use std::ffi::CString;
use std::io::Write;

/// Why a namespace entry point failed (printed, then the process exits 1).
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    /// Bad command line.
    #[error("usage: {0}")]
    Usage(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// A file could not be opened.
    #[error("{what}: {source}")]
    Io {
        /// What was being opened.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> NsError {
    let what = what.into();
    move |source| NsError::Sys { what, source }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    let eq = format!("{name}=");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            return None;
        }
        if a == name {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix(&eq) {
            return Some(v.to_owned());
        }
    }
    None
}

/// `portico sandbox-init --netns PATH --hostname NAME --hosts FILE --resolv FILE`.
/// Prints `ready` once the namespaces are set up, then waits for SIGTERM/SIGINT.
pub fn sandbox_init(args: &[String]) -> Result<i32, NsError> {
    let netns = flag(args, "--netns").ok_or_else(|| NsError::Usage("sandbox-init --netns PATH --hostname NAME [--hosts FILE] [--resolv FILE]".into()))?;
    let hostname = flag(args, "--hostname").unwrap_or_default();
    // Block the signals we wait for before anything else, so none is lost.
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block().map_err(sys("blocking signals"))?;
    let f = std::fs::File::open(&netns).map_err(|source| NsError::Io { what: format!("opening {netns}"), source })?;
    setns(&f, CloneFlags::CLONE_NEWNET).map_err(sys(format!("joining network namespace {netns}")))?;
    unshare(CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWNS).map_err(sys("creating UTS and mount namespaces"))?;
    // Our bind mounts must not leak back to the host.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>).map_err(sys("making / private"))?;
    for (flag_name, target) in [("--hosts", "/etc/hosts"), ("--resolv", "/etc/resolv.conf"), ("--hostname-file", "/etc/hostname")] {
        if let Some(src) = flag(args, flag_name) {
            mount(Some(src.as_str()), target, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(sys(format!("bind-mounting {src} on {target}")))?;
        }
    }
    if !hostname.is_empty() {
        nix::unistd::sethostname(&hostname).map_err(sys(format!("setting hostname {hostname}")))?;
    }
    let mut out = std::io::stdout();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    let _ = set.wait();
    Ok(0)
}

/// `portico sandbox-exec --pid PID [--workdir DIR] [--tty] -- PROGRAM ARGS...`: joins the
/// network, UTS and mount namespaces of the sandbox whose pause process is PID,
/// changes directory and execs PROGRAM (looked up in `PATH`). With `--tty`,
/// stdin is a pty slave: the process starts a new session and makes it its
/// controlling terminal (a session leader opening a tty without O_NOCTTY gets it).
pub fn sandbox_exec(args: &[String]) -> Result<i32, NsError> {
    let usage = || NsError::Usage("sandbox-exec --pid PID [--workdir DIR] [--tty] -- PROGRAM [ARGS...]".into());
    let pid = flag(args, "--pid").ok_or_else(usage)?;
    let workdir = flag(args, "--workdir");
    let tty = args.iter().take_while(|a| *a != "--").any(|a| a == "--tty");
    let sep = args.iter().position(|a| a == "--").ok_or_else(usage)?;
    let argv = &args[sep + 1..];
    if argv.is_empty() {
        return Err(usage());
    }
    if tty {
        nix::unistd::setsid().map_err(sys("starting a session"))?;
        let name = nix::unistd::ttyname(std::io::stdin()).map_err(sys("naming the terminal on stdin"))?;
        // Opening it is what makes it the controlling terminal; the open file is not needed after.
        std::fs::OpenOptions::new().read(true).write(true).open(&name).map_err(|source| NsError::Io { what: format!("opening {}", name.display()), source })?;
    }
    // Open every namespace before joining any: joining the mount namespace changes what paths mean.
    let mut files = Vec::new();
    for (ns, flag) in [("net", CloneFlags::CLONE_NEWNET), ("uts", CloneFlags::CLONE_NEWUTS), ("mnt", CloneFlags::CLONE_NEWNS)] {
        let path = format!("/proc/{pid}/ns/{ns}");
        let f = std::fs::File::open(&path).map_err(|source| NsError::Io { what: format!("opening {path} (is the pod sandbox running?)"), source })?;
        files.push((f, flag, path));
    }
    for (f, flag, path) in &files {
        setns(f, *flag).map_err(sys(format!("joining {path}")))?;
    }
    let dir = workdir.unwrap_or_else(|| "/".to_owned());
    nix::unistd::chdir(dir.as_str()).map_err(sys(format!("changing directory to {dir}")))?;
    let cargs: Vec<CString> = argv.iter().map(|a| CString::new(a.as_bytes()).unwrap_or_default()).collect();
    let e = nix::unistd::execvp(&cargs[0], &cargs).err().unwrap_or(nix::Error::UnknownErrno);
    Err(NsError::Sys { what: format!("exec {:?}", argv[0]), source: e })
}
