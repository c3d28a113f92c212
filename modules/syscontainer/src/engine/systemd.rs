//! The host's systemd, reached through `systemctl` (or the configured prefix, e.g.
//! `nsenter -t PID -m -p systemctl` for a systemd in another namespace): `daemon-reload`,
//! `enable --now`, `restart`, `stop`, `disable --now` of `NAME.service`. Every call has a
//! deadline and runs on the blocking pool; a non-zero exit is [`SysError::Systemctl`] with
//! what systemctl printed, a deadline passed is [`SysError::Timeout`].

use crate::config::SysConfig;
use crate::engine::blocking;
use crate::error::SysError;
use imagebus_sys::cmd::{CommandCall, Runner};
use std::sync::Arc;
use std::time::Duration;

/// Deadline of `daemon-reload`.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of a start, stop or restart: systemd's default `TimeoutStopSec` (90 s) and some.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(120);

/// `systemctl` of one host.
#[derive(Clone)]
pub struct Systemd {
    prefix: Vec<String>,
    runner: Arc<dyn Runner>,
}

impl std::fmt::Debug for Systemd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Systemd")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Systemd {
    /// systemctl as `cfg.systemctl` names it, run by `runner`.
    pub fn new(cfg: &SysConfig, runner: Arc<dyn Runner>) -> Self {
        Self {
            prefix: cfg.systemctl.clone(),
            runner,
        }
    }

    /// `systemctl daemon-reload`: systemd reads the unit files again.
    pub async fn daemon_reload(&self) -> Result<(), SysError> {
        self.run(&["daemon-reload"], RELOAD_TIMEOUT).await
    }

    /// `systemctl enable --now NAME.service`.
    pub async fn enable_now(&self, name: &str) -> Result<(), SysError> {
        let unit = SysConfig::service_name(name);
        self.run(&["enable", "--now", &unit], JOB_TIMEOUT).await
    }

    /// `systemctl restart NAME.service` (starts it when it is stopped).
    pub async fn restart(&self, name: &str) -> Result<(), SysError> {
        let unit = SysConfig::service_name(name);
        self.run(&["restart", &unit], JOB_TIMEOUT).await
    }

    /// `systemctl stop NAME.service`.
    pub async fn stop(&self, name: &str) -> Result<(), SysError> {
        let unit = SysConfig::service_name(name);
        self.run(&["stop", &unit], JOB_TIMEOUT).await
    }

    /// `systemctl disable --now NAME.service`.
    pub async fn disable_now(&self, name: &str) -> Result<(), SysError> {
        let unit = SysConfig::service_name(name);
        self.run(&["disable", "--now", &unit], JOB_TIMEOUT).await
    }

    /// Runs the prefix with `args` (and `--no-ask-password`: nobody answers a prompt).
    async fn run(&self, args: &[&str], timeout: Duration) -> Result<(), SysError> {
        let Some((program, rest)) = self.prefix.split_first() else {
            return Err(SysError::Internal("no systemctl command".into()));
        };
        let mut argv: Vec<String> = rest.to_vec();
        argv.push("--no-ask-password".into());
        argv.extend(args.iter().map(|a| a.to_string()));
        let call = CommandCall::new(program, argv);
        let runner = self.runner.clone();
        let shown = format!("{} {}", program, call.args.join(" "));
        let out = match blocking(move || Ok(runner.run(&call, timeout))).await? {
            Ok(out) => out,
            Err(imagebus_sys::SysError::Timeout { .. }) => {
                return Err(SysError::Timeout(format!(
                    "{shown} did not finish within {timeout:?}"
                )))
            }
            Err(e) => {
                return Err(SysError::Systemctl {
                    command: shown,
                    detail: e.to_string(),
                })
            }
        };
        if out.success() {
            tracing::debug!(command = %shown, "systemctl done");
            return Ok(());
        }
        let said = format!("{} {}", out.stderr.trim(), out.stdout.trim());
        Err(SysError::Systemctl {
            command: shown,
            detail: format!(
                "exit {}: {}",
                out.code
                    .map_or_else(|| "by a signal".to_string(), |c| c.to_string()),
                said.trim()
            ),
        })
    }
}
