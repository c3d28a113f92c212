//! The optional parts of a [`super::ContainerSpec`]: the OCI document merged onto the
//! generated runtime configuration, the restart policy, and the security options.

use serde::{Deserialize, Serialize};

/// An OCI runtime-spec `config.json` document (a JSON object, or the same as a msgpack
/// map), merged by the container module onto the configuration it generates. Which fields
/// are honoured and which are refused (`InvalidArgument` naming the field) is listed in
/// `docs/container.md`; `root.path` is always replaced by the container's mount. Its
/// `process.env` is kept and returned like [`ContainerSpec::env`](super::ContainerSpec::env).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OciConfig(pub serde_json::Map<String, serde_json::Value>);

impl OciConfig {
    /// The `process.args` of the document, if it has them as an array of strings.
    pub fn args(&self) -> Option<Vec<String>> {
        let args = self.0.get("process")?.get("args")?.as_array()?;
        args.iter()
            .map(|a| a.as_str().map(str::to_string))
            .collect()
    }
}

/// When a container whose init exited on its own is run again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never (the default).
    #[default]
    No,
    /// When the init failed: a non-zero exit code, death by a signal, or an unknown end.
    OnFailure,
    /// Whatever the exit code.
    Always,
}

impl RestartPolicy {
    /// `no`, `on-failure` or `always`.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Always => "always",
        }
    }
}

/// A restart policy. Request type.
///
/// msgpack/JSON form: `{"policy": "on-failure", "max_retries": 2}`. Restarts are delayed
/// by an exponential backoff with a cap; a run that stays up for a stable period resets
/// the backoff and the retry budget. A `Stop` or `Delete` never leads to a restart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartSpec {
    /// `no` (default), `on-failure` or `always`.
    #[serde(default)]
    pub policy: RestartPolicy,
    /// At most this many restarts in a row (runs shorter than the stable period); `None`:
    /// no limit. Not with `no`.
    #[serde(default)]
    pub max_retries: Option<u32>,
}

impl RestartSpec {
    /// Whether this is `no` with no limit (what an absent field means).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Parses `no`, `always`, `always:N`, `on-failure` or `on-failure:N`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (name, max) = match s.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (s, None),
        };
        let policy = match name {
            "no" => RestartPolicy::No,
            "on-failure" => RestartPolicy::OnFailure,
            "always" => RestartPolicy::Always,
            _ => {
                return Err(format!(
                    "restart policy {s:?}: use no, on-failure[:N] or always[:N]"
                ))
            }
        };
        let max_retries = match max {
            None => None,
            Some(_) if policy == RestartPolicy::No => {
                return Err(format!("restart policy {s:?}: no takes no count"))
            }
            Some(m) => Some(
                m.parse()
                    .map_err(|_| format!("restart policy {s:?}: bad count {m:?}"))?,
            ),
        };
        Ok(Self {
            policy,
            max_retries,
        })
    }
}

/// Which seccomp filter a container gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeccompMode {
    /// The default profile: the system calls container engines block by default, lifted
    /// per capability (see `docs/security.md`). An `oci` document's `linux.seccomp`
    /// replaces it.
    #[default]
    Default,
    /// No filter.
    Unconfined,
}

/// Confinement on top of namespaces and capabilities. Request type.
///
/// msgpack/JSON form: `{"seccomp": "unconfined", "no_new_privileges": false}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySpec {
    /// `default` (the default profile) or `unconfined`.
    #[serde(default)]
    pub seccomp: SeccompMode,
    /// `process.noNewPrivileges`; `None`: on, except in systemd mode (whose units may
    /// need setuid helpers).
    #[serde(default)]
    pub no_new_privileges: Option<bool>,
}

impl SecuritySpec {
    /// Whether this is what an absent field means.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Applies one docker-style `--security-opt` value: `seccomp=unconfined`,
    /// `seccomp=default`, `no-new-privileges`, `no-new-privileges=true|false`.
    pub fn apply_opt(&mut self, opt: &str) -> Result<(), String> {
        match opt.split_once(['=', ':']) {
            Some(("seccomp", "unconfined")) => self.seccomp = SeccompMode::Unconfined,
            Some(("seccomp", "default")) => self.seccomp = SeccompMode::Default,
            None if opt == "no-new-privileges" => self.no_new_privileges = Some(true),
            Some(("no-new-privileges", v)) => {
                self.no_new_privileges = Some(match v {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("security option {opt:?}: expected true or false")),
                })
            }
            _ => {
                return Err(format!(
                    "security option {opt:?}: expected seccomp=unconfined|default or \
                     no-new-privileges[=true|false]"
                ))
            }
        }
        Ok(())
    }
}
