//! Acknowledged writes survive SIGKILL of the writing process.
//!
//! The test re-runs its own binary as a child (selected by an environment
//! variable) that writes objects and prints each acknowledged revision; the
//! parent kills it with SIGKILL mid-stream and checks every acknowledged
//! write on reopen.

use bytes::Bytes;
use portico_store::sqlite::SqliteStore;
use portico_store::{ListOptions, Store};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "PORTICO_STORE_CRASH_CHILD_DB";

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        // Child: write until killed, reporting each acknowledged key.
        let s = SqliteStore::open(std::path::Path::new(&path)).expect("child open");
        for i in 0.. {
            let kv = s.create(&format!("/crash/{i:06}"), Bytes::from(vec![b'x'; 256])).await.expect("child create");
            println!("ack {} {}", kv.key, kv.mod_revision);
        }
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("crash.db");
    let exe = std::env::current_exe().expect("test exe");
    let mut child = Command::new(exe)
        .args(["crash::acknowledged_writes_survive_sigkill", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(rest) = line.strip_prefix("ack ") {
            acked.push(rest.split(' ').next().unwrap_or_default().to_owned());
            if acked.len() == 200 {
                // SIGKILL: no destructor, no flush, no clean close.
                child.kill().expect("kill");
                break;
            }
        }
    }
    let _ = child.wait();
    assert_eq!(acked.len(), 200, "child did not acknowledge enough writes");
    let s = SqliteStore::open(&db).expect("reopen after crash");
    let listed = s.list("/crash/", &ListOptions::default()).await.expect("list");
    let keys: std::collections::HashSet<&str> = listed.items.iter().map(|kv| kv.key.as_str()).collect();
    for k in &acked {
        assert!(keys.contains(k.as_str()), "acknowledged write {k} lost");
    }
    assert!(s.revision().await.expect("rev") >= acked.len() as u64);
}
