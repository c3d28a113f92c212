//! Checking a [`ContainerSpec`] before anything is created, and turning it into the
//! runtime's [`BundleConfig`] once the root filesystem is mounted.

use crate::error::ContainerError;
use imagebus_schema::common::validate_name;
use imagebus_schema::container::{
    ContainerSpec, Network, RestartPolicy, SeccompMode, DEFAULT_PATH, DEFAULT_STOP_TIMEOUT_MS,
};
use imagebus_sys::ns::NetNamespaces;
use imagebus_sys::oci::overlay::{self, Overlay};
use imagebus_sys::oci::{self, BindConfig, BundleConfig, NetworkMode, CPU_PERIOD_US};
use imagebus_sys::runtime::RuntimeError;
use imagebus_sys::signal;
use std::path::{Path, PathBuf};

/// The `container=` value systemd sees.
pub const CONTAINER_ENV: &str = "container=imagebus";

/// A checked spec: everything but the root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// Init argv.
    pub args: Vec<String>,
    /// Environment with `PATH` (and `container=` in systemd mode).
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// Hostname, if given.
    pub hostname: Option<String>,
    /// uid, gid.
    pub user: (u32, u32),
    /// Network.
    pub network: NetworkMode,
    /// Binds.
    pub binds: Vec<BindConfig>,
    /// CFS quota.
    pub cpu_quota_us: Option<i64>,
    /// Memory limit.
    pub memory_limit: Option<i64>,
    /// Task limit.
    pub pids_limit: Option<i64>,
    /// Final capabilities.
    pub capabilities: Vec<String>,
    /// Stop signal number.
    pub stop_signal: i32,
    /// Stop grace period.
    pub stop_timeout_ms: u64,
    /// The checked `oci` document, merged onto the generated spec.
    pub overlay: Option<Overlay>,
}

impl Prepared {
    /// The `PATH` value the init is looked up in.
    pub fn path_env(&self) -> &str {
        self.env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
    }
}

fn invalid(msg: impl Into<String>) -> ContainerError {
    ContainerError::Invalid(msg.into())
}

fn plain_absolute(p: &Path) -> bool {
    imagebus_sys::paths::is_plain_absolute(p)
}

/// Checks `spec` and resolves what it names: (1) names, (2) command, (3) environment,
/// (4) working directory and hostname, (5) network, (6) binds, (7) resource limits,
/// (8) capabilities, (9) stop signal and timeout, (10) the `oci` document, whose args,
/// env, cwd, hostname and user win over the spec's, (11) the restart policy, the health check and the log rotation. Blocking: it looks at bind sources and
/// network namespaces. `bounding` is the daemon's capability bounding set.
pub fn prepare(
    spec: &ContainerSpec,
    netns: &dyn NetNamespaces,
    bounding: u64,
) -> Result<Prepared, ContainerError> {
    check_names(spec)?;
    let overlay = oci_document(spec, bounding)?;
    let o = overlay.as_ref();
    let args = match o.and_then(|o| o.args.clone()) {
        Some(args) => args,
        None => command(spec)?,
    };
    let mut env = environment(spec)?;
    if let Some(extra) = o.and_then(|o| o.env.as_ref()) {
        merge_env(&mut env, extra);
    }
    let cwd = plain_dir(
        o.and_then(|o| o.cwd.clone())
            .or_else(|| spec.working_dir.clone()),
    )?;
    let hostname = o
        .and_then(|o| o.hostname.clone())
        .or_else(|| spec.hostname.clone());
    check_hostname(hostname.as_deref())?;
    let network = network(spec, netns)?;
    let binds = binds(spec)?;
    let (cpu_quota_us, memory_limit, pids_limit) = resources(spec)?;
    let capabilities = capabilities(spec, bounding)?;
    let stop_signal = stop_signal(spec)?;
    check_restart(spec)?;
    if let Some(h) = &spec.health {
        h.check().map_err(ContainerError::Invalid)?;
    }
    if let Some(l) = &spec.log {
        l.check().map_err(ContainerError::Invalid)?;
    }
    let user = o.and_then(|o| o.user).or(spec.user.map(|u| (u.uid, u.gid)));
    Ok(Prepared {
        args,
        env,
        cwd,
        hostname,
        user: user.unwrap_or((0, 0)),
        network,
        binds,
        cpu_quota_us,
        memory_limit,
        pids_limit,
        capabilities,
        stop_signal,
        stop_timeout_ms: spec.stop_timeout_ms.unwrap_or(DEFAULT_STOP_TIMEOUT_MS),
        overlay,
    })
}

/// Step 10: the `oci` document, checked field by field (`InvalidArgument` naming a field
/// that is refused or unknown; `NotFound` for a missing bind source).
fn oci_document(spec: &ContainerSpec, bounding: u64) -> Result<Option<Overlay>, ContainerError> {
    let Some(doc) = &spec.oci else {
        return Ok(None);
    };
    overlay::check(&doc.0, bounding)
        .map(Some)
        .map_err(|e| match e {
            RuntimeError::NotFound(m) => ContainerError::Missing(m),
            other => invalid(other.to_string()),
        })
}

/// Step 11: `max_retries` only with a policy that restarts.
fn check_restart(spec: &ContainerSpec) -> Result<(), ContainerError> {
    let r = spec.restart;
    if r.policy == RestartPolicy::No && r.max_retries.is_some() {
        return Err(invalid(
            "restart: max_retries needs the on-failure or always policy",
        ));
    }
    Ok(())
}

/// The `oci` document's entries replace the spec's of the same key; the rest are added.
fn merge_env(env: &mut Vec<String>, extra: &[String]) {
    for e in extra {
        let key = e.split('=').next().unwrap_or_default();
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
}

/// Step 1: the name and group are valid names (pure: done before the name is reserved).
pub fn check_names(spec: &ContainerSpec) -> Result<(), ContainerError> {
    if let Some(name) = &spec.name {
        validate_name(name).map_err(invalid)?;
    }
    if let Some(group) = &spec.group {
        validate_name(group).map_err(|m| invalid(format!("group: {m}")))?;
    }
    Ok(())
}

/// Step 2: the init's argv, non-empty.
fn command(spec: &ContainerSpec) -> Result<Vec<String>, ContainerError> {
    let args = spec.command.argv().map_err(invalid)?;
    match args.first() {
        None => Err(invalid("the command is missing (empty)")),
        Some(a) if a.is_empty() => Err(invalid("the command's argv[0] is empty")),
        Some(_) => Ok(args),
    }
}

/// Step 3: `KEY=VALUE` entries, a default `PATH`, and `container=` in systemd mode.
fn environment(spec: &ContainerSpec) -> Result<Vec<String>, ContainerError> {
    let mut env = Vec::with_capacity(spec.env.len() + 2);
    for e in &spec.env {
        match e.split_once('=') {
            Some((k, _)) if !k.is_empty() && !k.contains('\0') && !e.contains('\0') => {
                env.push(e.clone())
            }
            _ => return Err(invalid(format!("environment entry {e:?} is not KEY=VALUE"))),
        }
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if spec.systemd && !env.iter().any(|e| e.starts_with("container=")) {
        env.push(CONTAINER_ENV.to_string());
    }
    Ok(env)
}

/// Step 4a: an absolute working directory without `..` (default `/`).
fn plain_dir(dir: Option<String>) -> Result<String, ContainerError> {
    let cwd = dir.unwrap_or_else(|| "/".into());
    if !plain_absolute(Path::new(&cwd)) {
        return Err(invalid(format!(
            "working directory {cwd:?} must be absolute without '..'"
        )));
    }
    Ok(cwd)
}

/// Step 4b: a hostname of 1-64 characters of A-Z a-z 0-9 - . if given.
fn check_hostname(hostname: Option<&str>) -> Result<(), ContainerError> {
    if let Some(h) = hostname {
        let ok = !h.is_empty()
            && h.len() <= 64
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !ok {
            return Err(invalid(format!(
                "hostname {h:?} must be 1-64 characters of A-Z a-z 0-9 - ."
            )));
        }
    }
    Ok(())
}

/// Step 5: the network mode; a named namespace must exist.
fn network(spec: &ContainerSpec, netns: &dyn NetNamespaces) -> Result<NetworkMode, ContainerError> {
    Ok(match &spec.network {
        Network::Host => NetworkMode::Host,
        Network::Private => NetworkMode::Private,
        Network::Namespace(name) => {
            NetworkMode::Join(netns.resolve(name).map_err(|e| match e {
                RuntimeError::NotFound(m) => ContainerError::Missing(m),
                other => invalid(other.to_string()),
            })?)
        }
    })
}

/// Step 6: plain absolute sources that exist and targets other than `/`.
fn binds(spec: &ContainerSpec) -> Result<Vec<BindConfig>, ContainerError> {
    let mut binds = Vec::with_capacity(spec.binds.len());
    for b in &spec.binds {
        if !plain_absolute(&b.source) {
            return Err(invalid(format!(
                "bind source {:?} must be absolute without '..'",
                b.source
            )));
        }
        if !plain_absolute(&b.target) || b.target == Path::new("/") {
            return Err(invalid(format!(
                "bind target {:?} must be absolute, not /, without '..'",
                b.target
            )));
        }
        if !imagebus_sys::paths::exists(&b.source) {
            return Err(ContainerError::Missing(format!(
                "bind source {:?} does not exist",
                b.source
            )));
        }
        binds.push(BindConfig {
            source: b.source.clone(),
            target: b.target.clone(),
            read_only: b.read_only,
        });
    }
    Ok(binds)
}

/// Limits in the bundle: CFS quota, memory, tasks.
type Limits = (Option<i64>, Option<i64>, Option<i64>);

/// Step 7: the CFS quota (at least 10 millicores), the memory limit (at least 4 MiB) and
/// the task limit (at least 1).
fn resources(spec: &ContainerSpec) -> Result<Limits, ContainerError> {
    let cpu_quota_us = match spec.resources.cpu_millis {
        None => None,
        Some(m) if m < 10 => return Err(invalid(format!("cpu_millis {m} is below 10"))),
        Some(m) => Some(i64::from(m) * CPU_PERIOD_US as i64 / 1000),
    };
    let memory_limit = match spec.resources.memory_bytes {
        None => None,
        Some(b) if b < 4 << 20 => return Err(invalid(format!("memory_bytes {b} is below 4 MiB"))),
        Some(b) => Some(i64::try_from(b).map_err(|_| invalid("memory_bytes is too large"))?),
    };
    let pids_limit = match spec.resources.pids {
        None => None,
        Some(0) => return Err(invalid("pids must be at least 1")),
        Some(n) => Some(i64::try_from(n).map_err(|_| invalid("pids is too large"))?),
    };
    Ok((cpu_quota_us, memory_limit, pids_limit))
}

/// Step 8: containerd's defaults plus `add` (and CAP_SYS_ADMIN for systemd) minus `drop`,
/// within the bounding set.
fn capabilities(spec: &ContainerSpec, bounding: u64) -> Result<Vec<String>, ContainerError> {
    let mut add = spec.capabilities.add.clone();
    if spec.systemd {
        add.push("CAP_SYS_ADMIN".into());
    }
    oci::resolve_capabilities(
        &oci::DEFAULT_CAPABILITIES,
        &add,
        &spec.capabilities.drop,
        bounding,
    )
    .map_err(|e| invalid(e.to_string()))
}

/// Step 9: the stop signal (SIGRTMIN+3 for systemd, else SIGTERM by default).
fn stop_signal(spec: &ContainerSpec) -> Result<i32, ContainerError> {
    match &spec.stop_signal {
        Some(s) => signal::parse_signal(s).map_err(|m| invalid(format!("stop signal: {m}"))),
        None if spec.systemd => Ok(signal::sigrtmin_plus_3()),
        None => Ok(signal::SIGTERM),
    }
}

/// The bundle of container `id` on `rootfs`.
pub fn bundle_config(
    p: &Prepared,
    spec: &ContainerSpec,
    id: u64,
    rootfs: PathBuf,
    cgroups_path: String,
) -> BundleConfig {
    let hostname = p
        .hostname
        .clone()
        .or_else(|| spec.name.clone().filter(|n| n.len() <= 64))
        .unwrap_or_else(|| format!("c{id}"));
    BundleConfig {
        rootfs,
        args: p.args.clone(),
        env: p.env.clone(),
        cwd: p.cwd.clone(),
        hostname,
        uid: p.user.0,
        gid: p.user.1,
        systemd: spec.systemd,
        network: p.network.clone(),
        binds: p.binds.clone(),
        cpu_quota_us: p.cpu_quota_us,
        memory_limit: p.memory_limit,
        pids_limit: p.pids_limit,
        capabilities: p.capabilities.clone(),
        seccomp: spec.security.seccomp == SeccompMode::Default,
        no_new_privileges: spec.security.no_new_privileges.unwrap_or(!spec.systemd),
        cgroups_path,
        annotations: vec![("org.imagebus.container.id".into(), id.to_string())],
        overlay: p.overlay.clone(),
        terminal: spec.tty,
    }
}

#[cfg(test)]
mod tests;
