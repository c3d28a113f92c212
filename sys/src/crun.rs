//! What only crun needs: detecting the hybrid cgroup layout it refuses to run on, the
//! mount-namespace wrapper script that hides cgroup2 from it, and the environment of its
//! `exec` (crun's `--env` replaces the container's environment instead of adding to it).
//! Used by [`crate::oci_cli::OciCli`] in its crun flavour.

use std::path::{Path, PathBuf};

/// Shell text of the hybrid-cgroup wrapper: `$0` is the runtime binary, `$1` the cgroup2
/// mount to hide, the rest the runtime's arguments (no path is ever part of the script).
pub const HIDE_CGROUP2_SCRIPT: &str = "umount \"$1\" && shift && exec \"$0\" \"$@\"";

/// `process.env` of a bundle's `config.json`.
pub(crate) fn bundle_env(config: &str) -> Result<Vec<String>, String> {
    let v: serde_json::Value = serde_json::from_str(config).map_err(|e| e.to_string())?;
    Ok(v.pointer("/process/env")
        .and_then(|e| e.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default())
}

/// `base` with each `KEY=VALUE` of `extra` replacing the same key (or appended).
pub fn merge_env(base: &[String], extra: &[String]) -> Vec<String> {
    let key = |s: &str| s.split_once('=').map_or(s, |(k, _)| k).to_string();
    let mut out: Vec<String> = base
        .iter()
        .filter(|b| !extra.iter().any(|e| key(e) == key(b)))
        .cloned()
        .collect();
    out.extend(extra.iter().cloned());
    out
}

/// The cgroup2 mount that makes crun refuse to run: on a hybrid host (v1 hierarchies on a
/// tmpfs `/sys/fs/cgroup`, cgroup2 below it, e.g. `/sys/fs/cgroup/unified`) a cgroup2 mount
/// whose `cgroup.controllers` is not empty. `None` on pure v1 or v2 hosts.
pub fn hybrid_cgroup2() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    hybrid_cgroup2_in(&text, |mount| {
        std::fs::read_to_string(mount.join("cgroup.controllers")).ok()
    })
}

/// [`hybrid_cgroup2`] over mountinfo `text`, reading controllers with `controllers`.
pub fn hybrid_cgroup2_in(
    text: &str,
    controllers: impl Fn(&Path) -> Option<String>,
) -> Option<PathBuf> {
    let top = Path::new("/sys/fs/cgroup");
    let entries = crate::mountinfo::parse(text).ok()?;
    entries
        .into_iter()
        .filter(|e| e.fs_type == "cgroup2" && e.mount_point != top)
        .filter(|e| e.mount_point.starts_with(top))
        .find(|e| {
            controllers(&e.mount_point)
                .map(|c| !c.trim().is_empty())
                .unwrap_or(false)
        })
        .map(|e| e.mount_point)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crun_exec_env_keeps_the_container_env_and_overrides_keys() {
        let cfg = r#"{"process":{"env":["PATH=/bin","TERM=xterm","A=0"]}}"#;
        let base = bundle_env(cfg).unwrap();
        assert_eq!(
            merge_env(&base, &["A=1".into(), "B=2".into()]),
            ["PATH=/bin", "TERM=xterm", "A=1", "B=2"]
        );
        assert_eq!(bundle_env("{}").unwrap(), Vec::<String>::new());
        assert!(bundle_env("nope").is_err());
    }

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_layout_with_a_cgroup2_controller_is_detected() {
        let with = |c: &'static str| move |_: &Path| Some(c.to_string());
        assert_eq!(
            hybrid_cgroup2_in(HYBRID, with("hugetlb\n")),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(hybrid_cgroup2_in(HYBRID, with("\n")), None);
        let pure_v2 = "30 23 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(hybrid_cgroup2_in(pure_v2, with("cpu memory")), None);
    }
}
