//! OCI bundle generation (pure): the container's `config.json` from a [`BundleConfig`], the
//! capability set, and the init's executable check.
//!
//! The mount table and namespaces follow what ImageAPI and containerd give a container:
//! `/proc`, `/dev` (tmpfs; runc adds the standard nodes null, zero, full, tty, random,
//! urandom and the `/dev/fd`, `stdin`, `stdout`, `stderr`, `ptmx` symlinks), `/dev/pts`,
//! `/dev/shm`, `/dev/mqueue`, `/sys` read-only and the container's own cgroup view at
//! `/sys/fs/cgroup`. systemd mode adds tmpfs `/run` and `/tmp`, a writable cgroup view and
//! `container=` in the environment.
//!
//! The document is written with `serde_json::json!` for readability and then parsed into
//! [`oci_spec::runtime::Spec`], which type-checks every field; the typed spec is what is
//! written to disk.

use crate::runtime::RuntimeError;
use oci_spec::runtime::Spec;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

pub mod overlay;
pub mod seccomp;

/// containerd's default capability set (also zos's).
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// Capability names by bit number (`linux/capability.h`).
const CAP_BITS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Normalises a capability name (`net_admin`, `CAP_NET_ADMIN`) to `CAP_NET_ADMIN`.
pub fn capability_name(s: &str) -> Result<&'static str, RuntimeError> {
    let up = s.trim().to_ascii_uppercase();
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    CAP_BITS
        .iter()
        .find(|c| **c == full)
        .copied()
        .ok_or_else(|| RuntimeError::Invalid(format!("unknown capability {s:?}")))
}

/// The daemon's capability bounding set (`CapBnd` of `/proc/self/status`).
pub fn bounding_set() -> Result<u64, RuntimeError> {
    let path = "/proc/self/status";
    let status = std::fs::read_to_string(path).map_err(|e| RuntimeError::io("read", path, e))?;
    parse_cap_bounding(&status).ok_or_else(|| RuntimeError::Parse {
        what: path.into(),
        detail: "no CapBnd line".into(),
    })
}

/// `CapBnd:` of a `/proc/<pid>/status` text.
pub fn parse_cap_bounding(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapBnd:"))?;
    u64::from_str_radix(line.trim_start_matches("CapBnd:").trim(), 16).ok()
}

/// The container's capabilities: `base` plus `add` minus `drop`, keeping only those in the
/// `bounding` mask (asking runc for a capability the daemon lacks fails the start). Names
/// are validated; the result is sorted.
pub fn resolve_capabilities(
    base: &[&str],
    add: &[String],
    drop: &[String],
    bounding: u64,
) -> Result<Vec<String>, RuntimeError> {
    let mut set: BTreeSet<&'static str> = BTreeSet::new();
    for c in base {
        set.insert(capability_name(c)?);
    }
    for c in add {
        if c.eq_ignore_ascii_case("ALL") {
            set.extend(CAP_BITS);
        } else {
            set.insert(capability_name(c)?);
        }
    }
    for c in drop {
        if c.eq_ignore_ascii_case("ALL") {
            set.clear();
        } else {
            set.remove(capability_name(c)?);
        }
    }
    Ok(set
        .into_iter()
        .filter(|c| {
            CAP_BITS
                .iter()
                .position(|b| b == c)
                .is_some_and(|bit| bounding & (1u64 << bit) != 0)
        })
        .map(str::to_string)
        .collect())
}

/// How the container is networked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// The host's network namespace.
    Host,
    /// A new, empty network namespace (loopback only).
    Private,
    /// Join the namespace at this path (e.g. `/var/run/netns/blue`).
    Join(PathBuf),
}

/// An extra bind mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindConfig {
    /// Host path.
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub target: PathBuf,
    /// Read-only.
    pub read_only: bool,
}

/// Everything the generator needs; validated by the caller (paths absolute, argv non-empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleConfig {
    /// Absolute host path of the root filesystem.
    pub rootfs: PathBuf,
    /// argv of the init.
    pub args: Vec<String>,
    /// `KEY=VALUE` environment.
    pub env: Vec<String>,
    /// Working directory (absolute, inside the container).
    pub cwd: String,
    /// UTS hostname.
    pub hostname: String,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// systemd as init.
    pub systemd: bool,
    /// Network.
    pub network: NetworkMode,
    /// Extra bind mounts, in order.
    pub binds: Vec<BindConfig>,
    /// CPU quota in microseconds per 100 ms period.
    pub cpu_quota_us: Option<i64>,
    /// Memory limit in bytes.
    pub memory_limit: Option<i64>,
    /// Task limit (`linux.resources.pids.limit`).
    pub pids_limit: Option<i64>,
    /// Final capability names (see [`resolve_capabilities`]).
    pub capabilities: Vec<String>,
    /// Apply the default seccomp profile ([`seccomp::profile`] for `capabilities`); an
    /// `oci` document's own `linux.seccomp` replaces it.
    pub seccomp: bool,
    /// `process.noNewPrivileges`: no privilege gain through setuid files or file
    /// capabilities.
    pub no_new_privileges: bool,
    /// Absolute cgroup path, unique per container (e.g. `/imagebus/c-7`).
    pub cgroups_path: String,
    /// Annotations.
    pub annotations: Vec<(String, String)>,
    /// The checked `oci` document of the container spec, merged last
    /// ([`overlay::apply`]).
    pub overlay: Option<overlay::Overlay>,
    /// The init gets a terminal (`process.terminal`; the runtime then needs a console
    /// socket).
    pub terminal: bool,
}

/// CPU period used with [`BundleConfig::cpu_quota_us`].
pub const CPU_PERIOD_US: u64 = 100_000;

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Value {
    json!({"destination": dest, "type": typ, "source": source, "options": options})
}

/// The OCI runtime spec of `cfg`: (1) mounts, (2) namespaces, (3) cgroup resources,
/// (4) annotations, (5) the process, assembled into one document and type-checked.
pub fn build_spec(cfg: &BundleConfig) -> Result<Spec, RuntimeError> {
    let mut doc = json!({
        "ociVersion": "1.0.2",
        "root": {"path": cfg.rootfs, "readonly": false},
        "hostname": cfg.hostname,
        "annotations": annotations(cfg),
        "process": process(cfg),
        "mounts": mounts(cfg),
        "linux": {
            "namespaces": namespaces(cfg),
            "cgroupsPath": cfg.cgroups_path,
            "resources": resources(cfg),
            "rootfsPropagation": "rprivate",
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware",
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    });
    if cfg.seccomp {
        doc["linux"]["seccomp"] = seccomp::profile(&cfg.capabilities)?;
    }
    let spec: Spec =
        serde_json::from_value(doc).map_err(|e| RuntimeError::Invalid(format!("OCI spec: {e}")))?;
    match &cfg.overlay {
        Some(o) => overlay::apply(spec, o),
        None => Ok(spec),
    }
}

/// Step 1: the standard mounts, systemd's tmpfs mounts, then the extra binds in order.
fn mounts(cfg: &BundleConfig) -> Vec<Value> {
    let mut mounts = standard_mounts(cfg.systemd);
    if cfg.systemd {
        mounts.extend(systemd_mounts());
    }
    mounts.extend(cfg.binds.iter().map(bind_mount));
    mounts
}

/// `/proc`, `/dev`, `/dev/pts`, `/dev/shm`, `/dev/mqueue`, `/sys` and the cgroup view
/// (writable in systemd mode).
fn standard_mounts(systemd: bool) -> Vec<Value> {
    let cgroup_opts: &[&str] = if systemd {
        &["nosuid", "noexec", "nodev", "relatime", "rw"]
    } else {
        &["nosuid", "noexec", "nodev", "relatime", "ro"]
    };
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount("/sys/fs/cgroup", "cgroup", "cgroup", cgroup_opts),
    ]
}

/// systemd mode: tmpfs `/run`, `/run/lock` and `/tmp`.
fn systemd_mounts() -> [Value; 3] {
    [
        mount("/run", "tmpfs", "tmpfs", &["nosuid", "nodev", "mode=755"]),
        mount(
            "/run/lock",
            "tmpfs",
            "tmpfs",
            &["nosuid", "nodev", "noexec"],
        ),
        mount("/tmp", "tmpfs", "tmpfs", &["nosuid", "nodev", "mode=1777"]),
    ]
}

/// One extra bind: recursive, private propagation, optionally read-only.
fn bind_mount(b: &BindConfig) -> Value {
    let mut opts = vec!["rbind", "rprivate"];
    if b.read_only {
        opts.push("ro");
    }
    json!({
        "destination": b.target, "type": "bind", "source": b.source, "options": opts,
    })
}

/// Step 2: pid, ipc, uts and mount namespaces, plus the network one unless `host`.
fn namespaces(cfg: &BundleConfig) -> Vec<Value> {
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    match &cfg.network {
        NetworkMode::Host => {}
        NetworkMode::Private => namespaces.push(json!({"type": "network"})),
        NetworkMode::Join(path) => namespaces.push(json!({"type": "network", "path": path})),
    }
    namespaces
}

/// Step 3: devices deny-all, and the memory, CPU and task limits if any.
fn resources(cfg: &BundleConfig) -> Value {
    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if let Some(limit) = cfg.memory_limit {
        resources["memory"] = json!({"limit": limit});
    }
    if let Some(quota) = cfg.cpu_quota_us {
        resources["cpu"] = json!({"quota": quota, "period": CPU_PERIOD_US});
    }
    if let Some(limit) = cfg.pids_limit {
        resources["pids"] = json!({"limit": limit});
    }
    resources
}

/// Step 4: the annotations as a JSON object.
fn annotations(cfg: &BundleConfig) -> serde_json::Map<String, Value> {
    cfg.annotations
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

/// Step 5: the init process: user, argv, environment, capabilities, rlimits.
fn process(cfg: &BundleConfig) -> Value {
    json!({
        "terminal": cfg.terminal,
        "user": {"uid": cfg.uid, "gid": cfg.gid},
        "args": cfg.args,
        "env": cfg.env,
        "cwd": cfg.cwd,
        "capabilities": {
            "bounding": cfg.capabilities,
            "effective": cfg.capabilities,
            "permitted": cfg.capabilities,
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": cfg.no_new_privileges,
    })
}

/// Writes `<dir>/config.json` (mode 0600; `dir` is created or made mode 0700) and returns
/// the bundle directory.
pub fn write_bundle(dir: &Path, spec: &Spec) -> Result<PathBuf, RuntimeError> {
    // The config holds the container's environment (often secrets): 0700 and 0600.
    crate::state::ensure_private_dir(dir).map_err(RuntimeError::from)?;
    let path = dir.join("config.json");
    let text = serde_json::to_vec_pretty(spec)
        .map_err(|e| RuntimeError::Invalid(format!("encoding OCI spec: {e}")))?;
    // Written once per run for the runtime: atomic, but not worth two disk flushes.
    crate::state::write_atomic_with(&path, &text, 0o600, crate::state::Durability::Unsynced)
        .map_err(RuntimeError::from)?;
    Ok(dir.to_path_buf())
}

/// Resolves `path` (absolute, inside the container) under `root` the way the container will
/// see it: symlinks are followed, absolute targets stay inside `root`, `..` stops at it.
pub fn resolve_in_root(root: &Path, path: &Path) -> Result<PathBuf, RuntimeError> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    enum Part {
        Root,
        Parent,
        Name(OsString),
    }
    fn parts(p: &Path) -> impl Iterator<Item = Part> + '_ {
        p.components().filter_map(|c| match c {
            Component::RootDir => Some(Part::Root),
            Component::ParentDir => Some(Part::Parent),
            Component::Normal(n) => Some(Part::Name(n.to_os_string())),
            Component::CurDir | Component::Prefix(_) => None,
        })
    }
    let mut rel = PathBuf::new(); // resolved so far, relative to root
    let mut queue: VecDeque<Part> = parts(path).collect();
    let mut hops = 0;
    while let Some(part) = queue.pop_front() {
        match part {
            Part::Root => rel = PathBuf::new(),
            Part::Parent => {
                rel.pop();
            }
            Part::Name(name) => {
                let host = root.join(&rel).join(&name);
                match std::fs::symlink_metadata(&host) {
                    Ok(md) if md.file_type().is_symlink() => {
                        hops += 1;
                        if hops > 40 {
                            return Err(RuntimeError::Invalid(format!(
                                "too many symlinks resolving {path:?}"
                            )));
                        }
                        let target = std::fs::read_link(&host)
                            .map_err(|e| RuntimeError::io("readlink", &host, e))?;
                        for p in parts(&target).collect::<Vec<_>>().into_iter().rev() {
                            queue.push_front(p);
                        }
                    }
                    _ => rel.push(name),
                }
            }
        }
    }
    Ok(root.join(rel))
}

/// Finds the init `argv0` in `root` as the container will exec it: an absolute path is
/// resolved inside `root`; a bare name is searched in `path_env` (`PATH` value). It must be
/// a regular file with an execute bit. The error says what is wrong.
pub fn find_executable(root: &Path, argv0: &str, path_env: &str) -> Result<PathBuf, RuntimeError> {
    use std::os::unix::fs::PermissionsExt;
    let check = |inside: &Path| -> Result<PathBuf, String> {
        let host = resolve_in_root(root, inside).map_err(|e| e.to_string())?;
        let md = std::fs::metadata(&host).map_err(|_| format!("{inside:?} does not exist"))?;
        if !md.is_file() {
            return Err(format!("{inside:?} is not a regular file"));
        }
        if md.permissions().mode() & 0o111 == 0 {
            return Err(format!("{inside:?} is not executable"));
        }
        Ok(host)
    };
    if argv0.is_empty() {
        return Err(RuntimeError::Invalid("the command is empty".into()));
    }
    if argv0.contains('/') {
        let inside = if argv0.starts_with('/') {
            PathBuf::from(argv0)
        } else {
            Path::new("/").join(argv0)
        };
        return check(&inside).map_err(|m| RuntimeError::Invalid(format!("init {m}")));
    }
    let mut last = format!("{argv0:?} not found in PATH {path_env:?}");
    for dir in path_env.split(':').filter(|d| d.starts_with('/')) {
        match check(&Path::new(dir).join(argv0)) {
            Ok(host) => return Ok(host),
            Err(m) if m.ends_with("does not exist") => {}
            Err(m) => last = m,
        }
    }
    Err(RuntimeError::Invalid(format!("init {last}")))
}

#[cfg(test)]
mod overlay_tests;
#[cfg(test)]
mod tests;
