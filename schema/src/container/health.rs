//! Health checks: a command run inside a running container at an interval
//! ([`HealthSpec`]), and what the module reports about it ([`Health`]).

use super::CommandLine;
use serde::{Deserialize, Serialize};

/// Default time between two checks (docker's).
pub const DEFAULT_HEALTH_INTERVAL_MS: u64 = 30_000;
/// Default deadline of one check (docker's).
pub const DEFAULT_HEALTH_TIMEOUT_MS: u64 = 30_000;
/// Default number of failed checks in a row that make a container unhealthy (docker's).
pub const DEFAULT_HEALTH_RETRIES: u32 = 3;
/// The shortest interval or timeout accepted.
pub const MIN_HEALTH_PERIOD_MS: u64 = 100;

/// A health check. Request type.
///
/// msgpack/JSON form: `{"command": ["sh", "-c", "test -e /ready"], "interval_ms": 30000,
/// "timeout_ms": 30000, "retries": 3, "start_period_ms": 0}`; every field but `command`
/// is optional. The command runs like an `Exec` in the running container, first
/// `interval_ms` after the run starts and then `interval_ms` after each check ends; exit
/// code 0 is a success, anything else (and running past `timeout_ms`, when it is killed) a
/// failure. `retries` failures in a row make the container `unhealthy`; a success makes it
/// `healthy`. Failures within `start_period_ms` of the start do not count (a success
/// still does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    /// The check's command (`argv[0]` looked up in the container's `PATH`).
    pub command: CommandLine,
    /// Milliseconds between two checks (default [`DEFAULT_HEALTH_INTERVAL_MS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    /// Milliseconds a check may run before it is killed and counted as failed (default
    /// [`DEFAULT_HEALTH_TIMEOUT_MS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Failures in a row that make the container unhealthy (default
    /// [`DEFAULT_HEALTH_RETRIES`], at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Milliseconds after the start during which failures are not counted (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period_ms: Option<u64>,
}

impl HealthSpec {
    /// The interval in force.
    pub fn interval_ms(&self) -> u64 {
        self.interval_ms.unwrap_or(DEFAULT_HEALTH_INTERVAL_MS)
    }

    /// The timeout in force.
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms.unwrap_or(DEFAULT_HEALTH_TIMEOUT_MS)
    }

    /// The retries in force.
    pub fn retries(&self) -> u32 {
        self.retries.unwrap_or(DEFAULT_HEALTH_RETRIES)
    }

    /// The start period in force.
    pub fn start_period_ms(&self) -> u64 {
        self.start_period_ms.unwrap_or(0)
    }

    /// Checks the values (the command itself is checked like an exec's). The error says
    /// which field is wrong.
    pub fn check(&self) -> Result<(), String> {
        let argv = self.command.argv()?;
        if argv.first().is_none_or(|a| a.is_empty()) {
            return Err("the health command is empty".into());
        }
        for (what, v) in [
            ("health interval", self.interval_ms()),
            ("health timeout", self.timeout_ms()),
        ] {
            if v < MIN_HEALTH_PERIOD_MS {
                return Err(format!(
                    "{what} of {v} ms is below the least accepted, {MIN_HEALTH_PERIOD_MS} ms"
                ));
            }
        }
        if self.retries() == 0 {
            return Err("health retries must be at least 1".into());
        }
        Ok(())
    }
}

/// A container's health, as its checks found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// No check has decided yet (the run is new, or in its start period).
    Starting,
    /// The last check succeeded.
    Healthy,
    /// `retries` checks in a row failed.
    Unhealthy,
}

impl HealthStatus {
    /// `starting`, `healthy` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// What the health checks of a container's current run found. Reply type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// The status.
    pub status: HealthStatus,
    /// Failed checks in a row (counted ones: not those of the start period).
    #[serde(default)]
    pub failing_streak: u32,
    /// When the last check ended, milliseconds since the Unix epoch.
    #[serde(default)]
    pub last_check_ms: Option<u64>,
    /// The last check's exit code (`None`: it timed out or could not run).
    #[serde(default)]
    pub last_exit_code: Option<i32>,
    /// The end of the last check's output (stdout then stderr, at most 4 KiB), or why it
    /// failed to run.
    #[serde(default)]
    pub last_output: String,
}

impl Health {
    /// The health of a run that has just started.
    pub fn starting() -> Self {
        Self {
            status: HealthStatus::Starting,
            failing_streak: 0,
            last_check_ms: None,
            last_exit_code: None,
            last_output: String::new(),
        }
    }
}
