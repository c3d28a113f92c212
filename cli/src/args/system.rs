//! Arguments of `imagebus system …` (system containers; the bus module is `syscontainer`,
//! since the daemon's own object is `imagebus.system@1`).

use clap::{Args as ClapArgs, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// `imagebus system`.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Install IMAGE as system container NAME (deployment slot 0) and start it.
    Install(SystemInstall),
    /// Check out IMAGE (default: the installed image name) into the other slot, keeping
    /// the --set values, switch to it and restart.
    Update(SystemUpdate),
    /// Switch back to the previous deployment and restart.
    Rollback {
        /// The system container.
        name: String,
    },
    /// Remove the system container: unit, host files, tmpfiles entries, container,
    /// deployments and their mounts.
    Uninstall {
        /// The system container.
        name: String,
    },
    /// Every system container (a table, or JSON with --json).
    #[command(alias = "list")]
    Ls,
    /// One system container as JSON.
    Inspect {
        /// The system container.
        name: String,
    },
}

/// `imagebus system install`.
#[derive(Debug, ClapArgs)]
pub struct SystemInstall {
    /// The system container's name (also its container's and unit's).
    pub name: String,
    /// An image of the store, or an import source (`oci:DIR[:TAG]`, ...) imported first.
    pub image: String,
    /// A template variable, `KEY=VALUE`; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Use this host directory as the root filesystem instead of the image's.
    #[arg(long, value_name = "PATH")]
    pub rootfs: Option<PathBuf>,
    /// How long the install may take (the call's deadline; imports and stops included).
    #[arg(long = "install-timeout", value_name = "DURATION", default_value = "5m", value_parser = super::duration)]
    pub install_timeout: Duration,
}

/// `imagebus system update`.
#[derive(Debug, ClapArgs)]
pub struct SystemUpdate {
    /// The system container.
    pub name: String,
    /// The new image (default: the installed image name again).
    pub image: Option<String>,
    /// A template variable, `KEY=VALUE`, overriding the installed one; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// How long the update may take (the call's deadline).
    #[arg(long = "install-timeout", value_name = "DURATION", default_value = "5m", value_parser = super::duration)]
    pub install_timeout: Duration,
}
