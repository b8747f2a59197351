//! The CNI runtime side (what libcni does for containerd): loads the network
//! configuration list, runs each plugin with the spec's environment and stdin,
//! threads `prevResult`, caches the final ADD result for CHECK and DEL, and
//! garbage-collects attachments that no longer exist.

use super::CniError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

/// Why a CNI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A plugin reported an error.
    #[error("CNI plugin {plugin} failed ({command}): {error}")]
    Plugin {
        /// Plugin type.
        plugin: String,
        /// CNI_COMMAND.
        command: &'static str,
        /// The plugin's error document.
        error: CniError,
    },
    /// A plugin binary could not be found or started.
    #[error("CNI plugin {plugin} could not be run: {reason}")]
    Exec {
        /// Plugin type.
        plugin: String,
        /// What went wrong.
        reason: String,
    },
    /// The network configuration is unusable.
    #[error("CNI network configuration {path}: {reason}")]
    Config {
        /// Where it came from.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Where the runtime finds configuration, plugins and its cache.
#[derive(Debug, Clone)]
pub struct CniRuntime {
    /// Directory of `*.conflist` files (`/etc/cni/net.d`).
    pub conf_dir: PathBuf,
    /// Plugin search path (`CNI_PATH`).
    pub bin_dirs: Vec<PathBuf>,
    /// Result cache directory (libcni's `/var/lib/cni`).
    pub cache_dir: PathBuf,
    /// The `portico` binary, which implements plugin type `portico` as `portico cni`.
    pub self_exe: PathBuf,
    /// The configuration list used when `conf_dir` has none.
    pub default_conflist: serde_json::Value,
}

/// One pod's attachment to the network.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// CNI_CONTAINERID.
    pub container_id: String,
    /// CNI_NETNS.
    pub netns: String,
    /// CNI_IFNAME.
    pub ifname: String,
    /// CNI_ARGS pairs.
    pub args: Vec<(String, String)>,
    /// `portMappings` capability arguments.
    pub port_mappings: Vec<serde_json::Value>,
}

/// The built-in configuration list for a node's pod CIDRs (one address per
/// range, so a dual-stack node gives each pod an IPv4 and an IPv6 address);
/// `cluster_cidr` is the comma-separated list of cluster ranges not masqueraded.
pub fn default_conflist(pod_cidrs: &[String], cluster_cidr: &str, lease_dir: &Path) -> serde_json::Value {
    let ranges: Vec<serde_json::Value> = pod_cidrs.iter().map(|c| serde_json::json!([{"subnet": c}])).collect();
    serde_json::json!({
        "cniVersion": super::CURRENT_VERSION,
        "name": "portico",
        "plugins": [{
            "type": "portico",
            "bridge": super::plugin::DEFAULT_BRIDGE,
            "isGateway": true,
            "isDefaultGateway": true,
            "hairpinMode": true,
            "ipMasq": true,
            "clusterCIDR": cluster_cidr,
            "ipam": {"type": "host-local", "ranges": ranges, "dataDir": lease_dir},
            "capabilities": {"portMappings": true}
        }]
    })
}

impl CniRuntime {
    /// The configuration list in effect: the first `*.conflist` (by name) in
    /// `conf_dir`, else the built-in default. Returns it with where it came from.
    pub fn conflist(&self) -> Result<(serde_json::Value, String), RuntimeError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.conf_dir)
            .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "conflist")).collect())
            .unwrap_or_default();
        files.sort();
        let Some(path) = files.first() else { return Ok((self.default_conflist.clone(), "built-in".to_owned())) };
        let shown = path.display().to_string();
        let text = std::fs::read(path).map_err(|e| RuntimeError::Config { path: shown.clone(), reason: e.to_string() })?;
        let v: serde_json::Value = serde_json::from_slice(&text).map_err(|e| RuntimeError::Config { path: shown.clone(), reason: e.to_string() })?;
        if !v.get("plugins").is_some_and(|p| p.is_array()) {
            return Err(RuntimeError::Config { path: shown, reason: "no \"plugins\" list".into() });
        }
        Ok((v, shown))
    }

    fn cache_path(&self, net: &str, att: &Attachment) -> PathBuf {
        self.cache_dir.join("results").join(format!("{net}-{}-{}", att.container_id, att.ifname))
    }

    /// Runs ADD through the chain and caches the result. On failure the chain is DELeted.
    pub async fn add(&self, att: &Attachment) -> Result<serde_json::Value, RuntimeError> {
        let (list, _) = self.conflist()?;
        let net = list["name"].as_str().unwrap_or("").to_owned();
        let mut prev: Option<serde_json::Value> = None;
        for plugin in plugins(&list) {
            match self.exec("ADD", &list, plugin, att, prev.as_ref()).await {
                Ok(out) => {
                    prev = Some(serde_json::from_str(&out).map_err(|e| RuntimeError::Exec {
                        plugin: plugin_type(plugin),
                        reason: format!("bad ADD result: {e}"),
                    })?);
                }
                Err(e) => {
                    let _ = self.del(att).await;
                    return Err(e);
                }
            }
        }
        let result = prev.unwrap_or_else(|| serde_json::json!({"cniVersion": list["cniVersion"]}));
        let cache = serde_json::json!({"kind": "cniCacheV1", "containerId": att.container_id, "ifName": att.ifname,
            "networkName": net, "netns": att.netns, "config": list, "result": result,
            "capabilityArgs": {"portMappings": att.port_mappings}});
        let path = self.cache_path(&net, att);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&path, cache.to_string());
        Ok(result)
    }

    /// Runs DEL through the chain in reverse with the cached result. Idempotent.
    pub async fn del(&self, att: &Attachment) -> Result<(), RuntimeError> {
        let (current, _) = self.conflist()?;
        let net = current["name"].as_str().unwrap_or("").to_owned();
        let path = self.cache_path(&net, att);
        let cached: Option<serde_json::Value> = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok());
        // DEL with the configuration the ADD used, when known.
        let list = cached.as_ref().map(|c| c["config"].clone()).filter(|c| c.is_object()).unwrap_or(current);
        let prev = cached.as_ref().map(|c| c["result"].clone());
        // DEL gets the capability arguments ADD had, as libcni does (portmap needs them).
        let mut att = att.clone();
        if att.port_mappings.is_empty()
            && let Some(pm) = cached.as_ref().and_then(|c| c["capabilityArgs"]["portMappings"].as_array()) {
                att.port_mappings = pm.clone();
            }
        let mut first_err = None;
        for plugin in plugins(&list).into_iter().rev() {
            if let Err(e) = self.exec("DEL", &list, plugin, &att, prev.as_ref()).await {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => {
                let _ = std::fs::remove_file(&path);
                Ok(())
            }
        }
    }

    /// Runs CHECK through the chain with the cached result.
    pub async fn check(&self, att: &Attachment) -> Result<(), RuntimeError> {
        let (list, shown) = self.conflist()?;
        if list["disableCheck"].as_bool() == Some(true) {
            return Ok(());
        }
        let net = list["name"].as_str().unwrap_or("").to_owned();
        let cached: serde_json::Value = std::fs::read(self.cache_path(&net, att))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| RuntimeError::Config { path: shown, reason: format!("no cached result for {}", att.container_id) })?;
        for plugin in plugins(&list) {
            self.exec("CHECK", &list, plugin, att, Some(&cached["result"])).await?;
        }
        Ok(())
    }

    /// The attachments with a cached result (what this node has ADDed).
    pub fn cached_attachments(&self) -> Vec<Attachment> {
        let Ok(rd) = std::fs::read_dir(self.cache_dir.join("results")) else { return vec![] };
        rd.flatten()
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map(|c| Attachment {
                container_id: c["containerId"].as_str().unwrap_or("").to_owned(),
                netns: c["netns"].as_str().unwrap_or("").to_owned(),
                ifname: c["ifName"].as_str().unwrap_or("eth0").to_owned(),
                args: vec![],
                port_mappings: vec![],
            })
            .collect()
    }

    /// Runs GC with the attachments that should exist; plugins free the rest.
    pub async fn gc(&self, valid: &[Attachment]) -> Result<(), RuntimeError> {
        let (mut list, _) = self.conflist()?;
        if list["disableGC"].as_bool() == Some(true) {
            return Ok(());
        }
        let atts: Vec<serde_json::Value> = valid.iter().map(|a| serde_json::json!({"containerID": a.container_id, "ifname": a.ifname})).collect();
        list["cni.dev/valid-attachments"] = atts.clone().into();
        list["cni.dev/attachments"] = atts.into();
        let dummy = Attachment { container_id: String::new(), netns: String::new(), ifname: String::new(), args: vec![], port_mappings: vec![] };
        for plugin in plugins(&list) {
            // Only plugins that speak 1.1.0 know GC.
            if plugin_type(plugin) == "portico" {
                self.exec("GC", &list, plugin, &dummy, None).await?;
            }
        }
        Ok(())
    }

    async fn exec(
        &self,
        command: &'static str,
        list: &serde_json::Value,
        plugin: &serde_json::Value,
        att: &Attachment,
        prev: Option<&serde_json::Value>,
    ) -> Result<String, RuntimeError> {
        let kind = plugin_type(plugin);
        let stdin = plugin_input(list, plugin, att, prev);
        let (program, pre_args) = self.find(&kind)?;
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(pre_args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()))
            .env("CNI_COMMAND", command)
            .env("CNI_PATH", std::env::join_paths(&self.bin_dirs).unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if command != "GC" {
            cmd.env("CNI_CONTAINERID", &att.container_id).env("CNI_IFNAME", &att.ifname);
            if !att.netns.is_empty() {
                cmd.env("CNI_NETNS", &att.netns);
            }
            if !att.args.is_empty() {
                cmd.env("CNI_ARGS", att.args.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";"));
            }
        }
        let mut child = cmd.spawn().map_err(|e| RuntimeError::Exec { plugin: kind.clone(), reason: format!("{}: {e}", program.display()) })?;
        if let Some(mut si) = child.stdin.take() {
            let _ = si.write_all(stdin.to_string().as_bytes()).await;
        }
        let out = child.wait_with_output().await.map_err(|e| RuntimeError::Exec { plugin: kind.clone(), reason: e.to_string() })?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            let error = serde_json::from_str::<CniError>(&stdout).unwrap_or_else(|_| {
                CniError::new(super::code::PLUGIN_FAILURE, format!("exited with {}", out.status), String::from_utf8_lossy(&out.stderr).trim().to_owned())
            });
            return Err(RuntimeError::Plugin { plugin: kind, command, error });
        }
        Ok(stdout)
    }

    fn find(&self, kind: &str) -> Result<(PathBuf, Vec<&'static str>), RuntimeError> {
        if kind == "portico" {
            return Ok((self.self_exe.clone(), vec!["cni"]));
        }
        if kind.is_empty() || kind.contains('/') {
            return Err(RuntimeError::Exec { plugin: kind.to_owned(), reason: "invalid plugin type".into() });
        }
        for dir in &self.bin_dirs {
            let p = dir.join(kind);
            if p.is_file() {
                return Ok((p, vec![]));
            }
        }
        Err(RuntimeError::Exec {
            plugin: kind.to_owned(),
            reason: format!("failed to find plugin {kind:?} in path {:?}", self.bin_dirs),
        })
    }
}

fn plugins(list: &serde_json::Value) -> Vec<&serde_json::Value> {
    list["plugins"].as_array().map(|a| a.iter().collect()).unwrap_or_default()
}

fn plugin_type(plugin: &serde_json::Value) -> String {
    plugin["type"].as_str().unwrap_or("").to_owned()
}

/// Builds a plugin's stdin: its own section plus `cniVersion`, `name`,
/// `runtimeConfig` (only the capabilities it declared) and `prevResult`.
pub fn plugin_input(list: &serde_json::Value, plugin: &serde_json::Value, att: &Attachment, prev: Option<&serde_json::Value>) -> serde_json::Value {
    let mut conf = plugin.clone();
    let Some(obj) = conf.as_object_mut() else { return conf };
    obj.insert("cniVersion".into(), list["cniVersion"].clone());
    obj.insert("name".into(), list["name"].clone());
    let caps = obj.remove("capabilities");
    if caps.as_ref().and_then(|c| c.get("portMappings")).and_then(|b| b.as_bool()) == Some(true) && !att.port_mappings.is_empty() {
        obj.insert("runtimeConfig".into(), serde_json::json!({"portMappings": att.port_mappings}));
    }
    if let Some(p) = prev {
        obj.insert("prevResult".into(), p.clone());
    }
    for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
        if let Some(v) = list.get(key) {
            obj.insert(key.into(), v.clone());
        }
    }
    conf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_input_follows_the_spec() {
        let list = serde_json::json!({"cniVersion": "1.0.0", "name": "net", "plugins": []});
        let plugin = serde_json::json!({"type": "portmap", "capabilities": {"portMappings": true}});
        let att = Attachment {
            container_id: "c".into(),
            netns: "/run/netns/x".into(),
            ifname: "eth0".into(),
            args: vec![],
            port_mappings: vec![serde_json::json!({"hostPort": 8080, "containerPort": 80, "protocol": "tcp"})],
        };
        let prev = serde_json::json!({"cniVersion": "1.0.0", "ips": []});
        let got = plugin_input(&list, &plugin, &att, Some(&prev));
        assert_eq!(
            got,
            serde_json::json!({"type": "portmap", "cniVersion": "1.0.0", "name": "net",
                "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
                "prevResult": {"cniVersion": "1.0.0", "ips": []}})
        );
        // A plugin that did not declare the capability gets no runtimeConfig.
        let bridge = serde_json::json!({"type": "bridge"});
        assert_eq!(plugin_input(&list, &bridge, &att, None), serde_json::json!({"type": "bridge", "cniVersion": "1.0.0", "name": "net"}));
        let undeclared = serde_json::json!({"type": "portmap", "capabilities": {"bandwidth": true}});
        assert_eq!(plugin_input(&list, &undeclared, &att, None), serde_json::json!({"type": "portmap", "cniVersion": "1.0.0", "name": "net"}));
    }

    #[tokio::test]
    async fn del_gets_the_port_mappings_add_had() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let (bin, conf) = (dir.path().join("bin"), dir.path().join("net.d"));
        std::fs::create_dir_all(&bin).expect("bin");
        std::fs::create_dir_all(&conf).expect("conf");
        // A plugin that records the stdin of each command.
        let plugin = bin.join("record");
        let log = dir.path().display().to_string();
        std::fs::write(&plugin, format!("#!/bin/sh\ncat > {log}/$CNI_COMMAND.json\n[ \"$CNI_COMMAND\" = ADD ] && echo '{{\"cniVersion\":\"1.0.0\"}}'\nexit 0\n"))
            .expect("plugin");
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(conf.join("10-net.conflist"), r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"record","capabilities":{"portMappings":true}}]}"#)
            .expect("conflist");
        let rt = CniRuntime {
            conf_dir: conf,
            bin_dirs: vec![bin],
            cache_dir: dir.path().join("cache"),
            self_exe: "/nonexistent".into(),
            default_conflist: serde_json::json!({}),
        };
        let mapping = serde_json::json!({"hostPort": 54321, "containerPort": 8080, "protocol": "tcp", "hostIP": ""});
        let mut att = Attachment { container_id: "c1".into(), netns: "/run/netns/x".into(), ifname: "eth0".into(), args: vec![], port_mappings: vec![mapping.clone()] };
        rt.add(&att).await.expect("ADD");
        // The pod's record on disk has no mappings; the runtime's cache does.
        att.port_mappings.clear();
        rt.del(&att).await.expect("DEL");
        let del: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("DEL.json")).expect("DEL stdin")).expect("json");
        assert_eq!(del["runtimeConfig"]["portMappings"], serde_json::json!([mapping]));
        assert_eq!(del["prevResult"], serde_json::json!({"cniVersion": "1.0.0"}));
    }
}
