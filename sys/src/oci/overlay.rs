//! The `oci` field of a container spec: an OCI runtime-spec `config.json` document merged
//! onto the one [`super::build_spec`] generates.
//!
//! [`check`] walks the document key by key: a field in [`HONOURED`] is parsed with the
//! `oci-spec` type of that field and then written back, and a key that the type did not
//! keep (a typo, a field of a newer spec) is refused, so nothing is silently dropped. A
//! field in [`REJECTED`], or any other key, is refused with its dotted path. The result is
//! an [`Overlay`]: the process fields the container engine folds into its own checks
//! (args, env, cwd, hostname, user), and the normalised pieces that [`apply`] merges onto
//! the generated spec. `root.path` is accepted and always replaced by the container's mount.

use super::{capability_name, CAP_BITS};
use crate::paths::{exists, is_plain_absolute};
use crate::runtime::RuntimeError;
use oci_spec::runtime::{
    LinuxCapabilities, LinuxNamespace, LinuxResources, LinuxSeccomp, Mount, PosixRlimit, Spec, User,
};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::Path;

mod fields;
pub use fields::refused;
use fields::{invalid, no_nul, object, present, string, strings, typed};

/// Fields that are honoured (dotted paths into the document).
pub const HONOURED: [&str; 21] = [
    "ociVersion",
    "root.path",
    "root.readonly",
    "process.args",
    "process.env",
    "process.cwd",
    "process.user",
    "process.capabilities",
    "process.rlimits",
    "process.noNewPrivileges",
    "process.terminal",
    "hostname",
    "annotations",
    "mounts",
    "linux.resources",
    "linux.namespaces",
    "linux.sysctl",
    "linux.maskedPaths",
    "linux.readonlyPaths",
    "linux.seccomp",
    "linux.rootfsPropagation",
];

/// The values `linux.rootfsPropagation` may take (the root's propagation in the
/// container's mount namespace; the generated spec has `rprivate`).
pub const ROOTFS_PROPAGATION: [&str; 8] = [
    "private",
    "rprivate",
    "slave",
    "rslave",
    "shared",
    "rshared",
    "unbindable",
    "runbindable",
];

/// Fields that are refused (`InvalidArgument` naming the field), with the reason. Any
/// other key not in [`HONOURED`] is refused as unknown.
pub const REJECTED: [(&str, &str); 25] = [
    ("hooks", "hooks would run host commands"),
    ("domainname", "not supported"),
    (
        "process.terminal=true",
        "a terminal needs the console socket that tty sets up: use tty",
    ),
    (
        "process.consoleSize",
        "the terminal's size follows its session",
    ),
    ("process.user.username", "Windows only"),
    ("process.apparmorProfile", "not supported"),
    ("process.selinuxLabel", "not supported"),
    ("process.oomScoreAdj", "not supported"),
    ("process.scheduler", "not supported"),
    ("process.ioPriority", "not supported"),
    ("process.execCPUAffinity", "not supported"),
    ("process.commandLine", "Windows only"),
    (
        "linux.devices",
        "device nodes are not created in containers",
    ),
    (
        "linux.resources.devices",
        "only the default deny-all rule is accepted",
    ),
    ("linux.namespaces.user", "user namespaces are not supported"),
    ("linux.uidMappings", "user namespaces are not supported"),
    ("linux.gidMappings", "user namespaces are not supported"),
    (
        "linux.cgroupsPath",
        "the container's cgroup is managed by the module",
    ),
    ("linux.mountLabel", "not supported"),
    ("linux.intelRdt", "not supported"),
    ("linux.personality", "not supported"),
    ("linux.timeOffsets", "not supported"),
    ("solaris", "not a Linux field"),
    ("windows", "not a Linux field"),
    ("vm", "not a Linux field"),
];

/// A checked `oci` document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlay {
    /// `process.args` (non-empty, `argv[0]` non-empty).
    pub args: Option<Vec<String>>,
    /// `process.env` (`KEY=VALUE` entries).
    pub env: Option<Vec<String>>,
    /// `process.cwd` (not yet checked for being plain absolute).
    pub cwd: Option<String>,
    /// `hostname` (not yet checked).
    pub hostname: Option<String>,
    /// `process.user`'s uid and gid.
    pub user: Option<(u32, u32)>,
    root_readonly: Option<bool>,
    /// Replaced keys of `process` (user, capabilities, noNewPrivileges).
    process: Map<String, Value>,
    rlimits: Vec<Value>,
    /// Replaced keys of `linux.resources`.
    resources: Map<String, Value>,
    /// Replaced keys of `linux` (namespaces, sysctl, maskedPaths, readonlyPaths, seccomp).
    linux: Map<String, Value>,
    mounts: Vec<Value>,
    annotations: Map<String, Value>,
}

/// Checks `doc` (see the module docs). `bounding` is the daemon's capability bounding
/// set: requested capabilities outside it are left out, as for the spec's own. Blocking:
/// it looks at bind sources. Errors: `Invalid` naming the field; `NotFound` for a missing
/// bind source.
pub fn check(doc: &Map<String, Value>, bounding: u64) -> Result<Overlay, RuntimeError> {
    no_nul("oci", &Value::Object(doc.clone()))?;
    let mut o = Overlay::default();
    for (key, value) in present(doc) {
        match key.as_str() {
            "ociVersion" => {
                let v = string(key, value)?;
                if !v.starts_with("1.") {
                    return Err(invalid(format!("oci field ociVersion {v:?}: only 1.x")));
                }
            }
            "root" => {
                for (k, v) in present(object(key, value)?) {
                    match k.as_str() {
                        "path" => drop(string("root.path", v)?),
                        "readonly" => o.root_readonly = Some(typed("root.readonly", v)?.0),
                        other => return Err(refused(&format!("root.{other}"))),
                    }
                }
            }
            "process" => process(&mut o, object(key, value)?, bounding)?,
            "hostname" => o.hostname = Some(string(key, value)?),
            "annotations" => {
                let (_, back) = typed::<HashMap<String, String>>(key, value)?;
                o.annotations = object(key, &back)?.clone();
            }
            "mounts" => o.mounts = mounts(value)?,
            "linux" => linux(&mut o, object(key, value)?)?,
            other => return Err(refused(other)),
        }
    }
    Ok(o)
}

fn process(o: &mut Overlay, p: &Map<String, Value>, bounding: u64) -> Result<(), RuntimeError> {
    for (key, value) in present(p) {
        let path = format!("process.{key}");
        match key.as_str() {
            "args" => {
                let args = strings(&path, value)?;
                if args.first().is_none_or(String::is_empty) {
                    return Err(invalid(format!("oci field {path}: argv[0] is missing")));
                }
                o.args = Some(args);
            }
            "env" => {
                let env = strings(&path, value)?;
                for e in &env {
                    if e.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
                        // Only the key part: the value may be a secret.
                        let k = e.split('=').next().unwrap_or_default();
                        return Err(invalid(format!(
                            "oci field {path}: entry {k:?} is not KEY=VALUE"
                        )));
                    }
                }
                o.env = Some(env);
            }
            "cwd" => o.cwd = Some(string(&path, value)?),
            "user" => {
                if object(&path, value)?.contains_key("username") {
                    return Err(refused("process.user.username"));
                }
                let (user, back) = typed::<User>(&path, value)?;
                o.user = Some((user.uid(), user.gid()));
                o.process.insert(key.clone(), back);
            }
            "capabilities" => {
                let (_, back) = typed::<LinuxCapabilities>(&path, value)?;
                let mut sets = Map::new();
                for (set, names) in present(object(&path, &back)?) {
                    sets.insert(set.clone(), json!(within(&path, names, bounding)?));
                }
                o.process.insert(key.clone(), Value::Object(sets));
            }
            "rlimits" => {
                let (_, back) = typed::<Vec<PosixRlimit>>(&path, value)?;
                o.rlimits = strings_or_values(back);
            }
            "noNewPrivileges" => {
                let (_, back) = typed::<bool>(&path, value)?;
                o.process.insert(key.clone(), back);
            }
            "terminal" => {
                if typed::<bool>(&path, value)?.0 {
                    return Err(refused("process.terminal=true"));
                }
            }
            _ => return Err(refused(&path)),
        }
    }
    Ok(())
}

fn strings_or_values(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        other => vec![other],
    }
}

/// Capability names of one set, known and within `bounding`, sorted.
fn within(path: &str, names: &Value, bounding: u64) -> Result<Vec<&'static str>, RuntimeError> {
    let mut out = Vec::new();
    for n in strings(path, names)? {
        let name = capability_name(&n).map_err(|e| invalid(format!("oci field {path}: {e}")))?;
        let bit = CAP_BITS.iter().position(|b| *b == name).unwrap_or(64);
        if bit < 64 && bounding & (1u64 << bit) != 0 {
            out.push(name);
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Mounts: typed, a plain absolute destination other than `/`, and for binds an absolute
/// source that exists.
fn mounts(value: &Value) -> Result<Vec<Value>, RuntimeError> {
    let (mounts, back) = typed::<Vec<Mount>>("mounts", value)?;
    for m in &mounts {
        let dest = m.destination();
        if !is_plain_absolute(dest) || dest == Path::new("/") {
            return Err(invalid(format!(
                "oci field mounts: destination {dest:?} must be absolute, not /, without '..'"
            )));
        }
        let opts = m.options().clone().unwrap_or_default();
        let bind =
            m.typ().as_deref() == Some("bind") || opts.iter().any(|o| o == "bind" || o == "rbind");
        if bind {
            let Some(src) = m.source() else {
                return Err(invalid(format!(
                    "oci field mounts: bind {dest:?} has no source"
                )));
            };
            if !is_plain_absolute(src) {
                return Err(invalid(format!(
                    "oci field mounts: bind source {src:?} must be absolute without '..'"
                )));
            }
            if !exists(src) {
                return Err(RuntimeError::NotFound(format!(
                    "oci field mounts: bind source {src:?} does not exist"
                )));
            }
        }
    }
    Ok(strings_or_values(back))
}

/// The default device rule runc's own `config.json` template carries.
fn deny_all(v: &Value) -> bool {
    let Some([rule]) = v.as_array().map(Vec::as_slice) else {
        return false;
    };
    rule.get("allow") == Some(&json!(false))
        && rule.get("access").is_none_or(|a| a == "rwm")
        && rule.get("type").is_none_or(|t| t == "a")
        && rule.get("major").is_none_or(Value::is_null)
        && rule.get("minor").is_none_or(Value::is_null)
}

fn linux(o: &mut Overlay, l: &Map<String, Value>) -> Result<(), RuntimeError> {
    for (key, value) in present(l) {
        let path = format!("linux.{key}");
        let back = match key.as_str() {
            "resources" => {
                let mut r = object(&path, value)?.clone();
                if let Some(devices) = r.remove("devices") {
                    if !devices.is_null() && !deny_all(&devices) {
                        return Err(refused("linux.resources.devices"));
                    }
                }
                let (_, back) = typed::<LinuxResources>(&path, &Value::Object(r))?;
                o.resources = object(&path, &back)?.clone();
                continue;
            }
            "namespaces" => {
                let (nss, back) = typed::<Vec<LinuxNamespace>>(&path, value)?;
                for ns in &nss {
                    if ns.typ() == oci_spec::runtime::LinuxNamespaceType::User {
                        return Err(refused("linux.namespaces.user"));
                    }
                    if ns.path().as_ref().is_some_and(|p| !is_plain_absolute(p)) {
                        return Err(invalid(format!(
                            "oci field {path}: a namespace path must be absolute without '..'"
                        )));
                    }
                }
                back
            }
            "sysctl" => typed::<HashMap<String, String>>(&path, value)?.1,
            "maskedPaths" | "readonlyPaths" => {
                let paths = strings(&path, value)?;
                if let Some(p) = paths.iter().find(|p| !is_plain_absolute(Path::new(p))) {
                    return Err(invalid(format!(
                        "oci field {path}: {p:?} must be absolute without '..'"
                    )));
                }
                json!(paths)
            }
            "seccomp" => typed::<LinuxSeccomp>(&path, value)?.1,
            "rootfsPropagation" => {
                let v = string(&path, value)?;
                if !ROOTFS_PROPAGATION.contains(&v.as_str()) {
                    return Err(invalid(format!(
                        "oci field {path}: {v:?} is not one of {}",
                        ROOTFS_PROPAGATION.join(", ")
                    )));
                }
                json!(v)
            }
            _ => return Err(refused(&path)),
        };
        o.linux.insert(key.clone(), back);
    }
    Ok(())
}

/// Merges the spec-level pieces of `o` onto `spec`: `root.readonly`; `process.user`,
/// `capabilities` (per set) and `noNewPrivileges` replaced; rlimits replaced per type;
/// `linux.resources` per key; `linux.namespaces`, `sysctl`, `maskedPaths`,
/// `readonlyPaths` and `seccomp` replaced; mounts appended; annotations added (the
/// generated ones win). The process args, env, cwd and hostname come in through the
/// [`super::BundleConfig`].
pub fn apply(spec: Spec, o: &Overlay) -> Result<Spec, RuntimeError> {
    let mut doc =
        serde_json::to_value(&spec).map_err(|e| invalid(format!("encoding the OCI spec: {e}")))?;
    if let Some(ro) = o.root_readonly {
        doc["root"]["readonly"] = json!(ro);
    }
    for (k, v) in &o.process {
        if k == "capabilities" {
            for (set, names) in object(k, v)? {
                doc["process"]["capabilities"][set] = names.clone();
            }
        } else {
            doc["process"][k] = v.clone();
        }
    }
    if !o.rlimits.is_empty() {
        let mut merged: Vec<Value> = doc["process"]["rlimits"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for r in &o.rlimits {
            merged.retain(|m| m.get("type") != r.get("type"));
            merged.push(r.clone());
        }
        doc["process"]["rlimits"] = Value::Array(merged);
    }
    for (k, v) in &o.resources {
        doc["linux"]["resources"][k] = v.clone();
    }
    for (k, v) in &o.linux {
        doc["linux"][k] = v.clone();
    }
    if !o.mounts.is_empty() {
        if let Some(Value::Array(m)) = doc.get_mut("mounts") {
            m.extend(o.mounts.iter().cloned());
        }
    }
    for (k, v) in &o.annotations {
        if doc["annotations"].get(k).is_none() {
            doc["annotations"][k] = v.clone();
        }
    }
    serde_json::from_value(doc).map_err(|e| invalid(format!("OCI spec after the merge: {e}")))
}
