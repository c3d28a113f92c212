//! The default seccomp profile: the system calls that container engines refuse to a
//! container by default, kept as data in `seccomp_default.json` (its `about` names the
//! source) and turned into the `linux.seccomp` of a container's OCI spec by [`profile`].
//!
//! The filter allows by default and lists what it blocks, so a call the data does not name
//! behaves as without a filter. A rule with `unless_capabilities` is left out when the
//! container holds one of them (a container given CAP_SYS_ADMIN may mount, as with
//! Docker); `clone_flags` blocks `clone` only with one of those namespace flags.

use crate::runtime::RuntimeError;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::OnceLock;

/// The profile's data (see the module docs).
pub const DATA: &str = include_str!("seccomp_default.json");

/// One rule of [`DATA`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Why these calls are blocked.
    pub why: String,
    /// The system calls (names unknown to the running kernel's libseccomp are ignored by
    /// the runtime).
    pub names: Vec<String>,
    /// Lifted when the container holds any of these.
    #[serde(default)]
    pub unless_capabilities: Vec<String>,
    /// `clone` flags that make the call blocked (otherwise the whole call is).
    #[serde(default)]
    pub clone_flags: Vec<String>,
    /// `EPERM` (default) or `ENOSYS`.
    #[serde(default)]
    pub errno: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Data {
    #[allow(dead_code)]
    about: String,
    rules: Vec<Rule>,
}

/// The rules of [`DATA`], parsed once per process (every create builds a profile).
pub fn rules() -> Result<&'static [Rule], RuntimeError> {
    static RULES: OnceLock<Result<Vec<Rule>, String>> = OnceLock::new();
    RULES
        .get_or_init(|| {
            serde_json::from_str::<Data>(DATA)
                .map(|d| d.rules)
                .map_err(|e| format!("default seccomp profile: {e}"))
        })
        .as_deref()
        .map_err(|e| RuntimeError::Invalid(e.clone()))
}

/// Every system call some rule names, sorted (for the docs and their drift test).
pub fn blocked_names() -> Result<Vec<String>, RuntimeError> {
    let mut names: Vec<String> = rules()?.iter().flat_map(|r| r.names.clone()).collect();
    names.sort();
    names.dedup();
    Ok(names)
}

fn clone_flag(name: &str) -> Result<u64, RuntimeError> {
    let bit = match name {
        "CLONE_NEWNS" => libc::CLONE_NEWNS,
        "CLONE_NEWUTS" => libc::CLONE_NEWUTS,
        "CLONE_NEWIPC" => libc::CLONE_NEWIPC,
        "CLONE_NEWUSER" => libc::CLONE_NEWUSER,
        "CLONE_NEWPID" => libc::CLONE_NEWPID,
        "CLONE_NEWNET" => libc::CLONE_NEWNET,
        "CLONE_NEWCGROUP" => libc::CLONE_NEWCGROUP,
        other => {
            return Err(RuntimeError::Invalid(format!(
                "default seccomp profile: unknown clone flag {other}"
            )))
        }
    };
    Ok(u64::from(bit.unsigned_abs()))
}

fn errno(name: Option<&str>) -> Result<u32, RuntimeError> {
    match name {
        None | Some("EPERM") => Ok(libc::EPERM.unsigned_abs()),
        Some("ENOSYS") => Ok(libc::ENOSYS.unsigned_abs()),
        Some(other) => Err(RuntimeError::Invalid(format!(
            "default seccomp profile: unknown errno {other}"
        ))),
    }
}

/// The seccomp architectures of this build: the native one and those its kernel also runs
/// (so a 32-bit binary meets the same filter).
fn architectures() -> &'static [&'static str] {
    if cfg!(target_arch = "x86_64") {
        &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    } else if cfg!(target_arch = "aarch64") {
        &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    } else {
        &[]
    }
}

/// The `linux.seccomp` object for a container holding `capabilities` (`CAP_…` names).
pub fn profile(capabilities: &[String]) -> Result<Value, RuntimeError> {
    let mut syscalls = Vec::new();
    for rule in rules()? {
        if rule
            .unless_capabilities
            .iter()
            .any(|c| capabilities.iter().any(|h| h == c))
        {
            continue;
        }
        let errno_ret = errno(rule.errno.as_deref())?;
        if rule.clone_flags.is_empty() {
            syscalls.push(json!({
                "names": rule.names,
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": errno_ret,
            }));
            continue;
        }
        // One entry per flag: the conditions of one entry are ANDed, and each flag alone
        // must block the call.
        for flag in &rule.clone_flags {
            let bit = clone_flag(flag)?;
            syscalls.push(json!({
                "names": rule.names,
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": errno_ret,
                "args": [{"index": 0, "value": bit, "valueTwo": bit, "op": "SCMP_CMP_MASKED_EQ"}],
            }));
        }
    }
    Ok(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": architectures(),
        "syscalls": syscalls,
    }))
}
