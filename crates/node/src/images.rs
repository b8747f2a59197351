//! The image table: what program a container `image` stands for. Portico has
//! no container engine; an image names a program on this host. Built-in
//! entries cover the test images (agnhost, `portico/netexec`, pause) and
//! busybox-style shells; users add their own in a YAML file of
//! `image: [program, args...]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What an image resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The image's ENTRYPOINT (replaced by the container's `command`).
    pub entrypoint: Vec<String>,
    /// The image's CMD (replaced by the container's `args`).
    pub cmd: Vec<String>,
}

/// A container image that resolves to nothing: the Waiting reason and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Unresolved {
    /// The container status reason (`ErrImagePull`).
    pub reason: &'static str,
    /// What to do about it.
    pub message: String,
}

/// The image table: built-in entries plus the user's mapping file.
#[derive(Debug, Clone)]
pub struct ImageTable {
    portico: PathBuf,
    user: BTreeMap<String, Vec<String>>,
    user_file: PathBuf,
}

/// Strips the registry-independent parts: the tag and digest.
fn without_tag(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => &image[..i],
        _ => image,
    }
}

/// The last path component without tag (`registry.k8s.io/e2e-test-images/agnhost:2.53` → `agnhost`).
fn short_name(image: &str) -> &str {
    let repo = without_tag(image);
    repo.rsplit('/').next().unwrap_or(repo)
}

impl ImageTable {
    /// A table whose built-in test images run `portico` at `portico_exe`, with
    /// user mappings from `user_file` (read on every resolve, so edits apply
    /// to the next container start).
    pub fn new(portico_exe: PathBuf, user_file: PathBuf) -> Self {
        Self { portico: portico_exe, user: BTreeMap::new(), user_file }
    }

    fn load_user(&self) -> BTreeMap<String, Vec<String>> {
        let mut map = self.user.clone();
        if let Ok(text) = std::fs::read_to_string(&self.user_file)
            && let Ok(m) = serde_saphyr::from_str::<BTreeMap<String, Vec<String>>>(&text) {
                map.extend(m);
            }
        map
    }

    /// Resolves `image` for a container with `command` (which overrides any entrypoint).
    pub fn resolve(&self, image: &str, has_command: bool) -> Result<Resolved, Unresolved> {
        let user = self.load_user();
        for key in [image, without_tag(image), short_name(image)] {
            if let Some(argv) = user.get(key) {
                return Ok(Resolved { entrypoint: argv.clone(), cmd: vec![] });
            }
        }
        let exe = self.portico.display().to_string();
        let shell = || Resolved { entrypoint: vec![], cmd: vec!["sh".into()] };
        let resolved = match short_name(image) {
            "agnhost" => Some(Resolved { entrypoint: vec![exe.clone(), "netexec".into()], cmd: vec!["pause".into()] }),
            "netexec" => Some(Resolved { entrypoint: vec![exe.clone(), "netexec".into()], cmd: vec![] }),
            "serve-hostname" | "serve_hostname" => Some(Resolved { entrypoint: vec![exe.clone(), "netexec".into(), "serve-hostname".into()], cmd: vec![] }),
            "porter" => Some(Resolved { entrypoint: vec![exe.clone(), "netexec".into(), "porter".into()], cmd: vec![] }),
            "pause" => Some(Resolved { entrypoint: vec![exe.clone(), "netexec".into(), "pause".into()], cmd: vec![] }),
            "busybox" | "alpine" | "debian" | "ubuntu" => Some(shell()),
            _ => None,
        };
        match resolved {
            Some(r) => Ok(r),
            // A container with a command runs that command on the host, whatever the image.
            None if has_command => Ok(Resolved { entrypoint: vec![], cmd: vec![] }),
            None => Err(Unresolved {
                reason: "ErrImagePull",
                message: format!(
                    "Portico runs containers as local programs and has no mapping for image {image:?}: add a line `{}: [\"/path/to/program\", \"arg\"]` to {} or give the container a command",
                    without_tag(image),
                    self.user_file.display()
                ),
            }),
        }
    }

    /// The user mapping file.
    pub fn user_file(&self) -> &Path {
        &self.user_file
    }
}

/// The program and arguments a container runs, by the Kubernetes rules:
/// `command` replaces the entrypoint (and drops the image CMD); `args` replace CMD.
pub fn argv(resolved: &Resolved, command: &[String], args: &[String]) -> Vec<String> {
    let mut out = if command.is_empty() { resolved.entrypoint.clone() } else { command.to_vec() };
    if !args.is_empty() {
        out.extend_from_slice(args);
    } else if command.is_empty() {
        out.extend_from_slice(&resolved.cmd);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(dir: &Path) -> ImageTable {
        ImageTable::new("/usr/bin/portico".into(), dir.join("images.yaml"))
    }

    #[test]
    fn agnhost_and_netexec_map_to_portico() {
        let d = tempfile::tempdir().expect("tmp");
        let t = table(d.path());
        let r = t.resolve("registry.k8s.io/e2e-test-images/agnhost:2.53", false).expect("agnhost");
        assert_eq!(argv(&r, &[], &["netexec".into(), "--http-port=8080".into()]), ["/usr/bin/portico", "netexec", "netexec", "--http-port=8080"]);
        assert_eq!(argv(&r, &[], &[]), ["/usr/bin/portico", "netexec", "pause"]);
        let r = t.resolve("portico/netexec", false).expect("netexec");
        assert_eq!(argv(&r, &[], &[]), ["/usr/bin/portico", "netexec"]);
        let r = t.resolve("busybox:1.36", false).expect("busybox");
        assert_eq!(argv(&r, &["sh".into(), "-c".into(), "echo hi".into()], &[]), ["sh", "-c", "echo hi"]);
        assert_eq!(argv(&r, &[], &[]), ["sh"]);
    }

    #[test]
    fn unknown_images_say_what_to_do_and_user_mappings_apply() {
        let d = tempfile::tempdir().expect("tmp");
        let t = table(d.path());
        let e = t.resolve("nginx:1.25", false).expect_err("unknown");
        assert_eq!(e.reason, "ErrImagePull");
        assert!(e.message.contains("no mapping for image \"nginx:1.25\""), "{}", e.message);
        assert!(e.message.contains("images.yaml"), "{}", e.message);
        assert!(t.resolve("nginx:1.25", true).is_ok(), "a command runs without a mapping");
        std::fs::write(d.path().join("images.yaml"), "nginx: [\"/usr/sbin/nginx\", \"-g\", \"daemon off;\"]\n").expect("write");
        let r = t.resolve("nginx:1.25", false).expect("mapped");
        assert_eq!(argv(&r, &[], &[]), ["/usr/sbin/nginx", "-g", "daemon off;"]);
    }
}
