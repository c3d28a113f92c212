//! `imagebus run --oci-config FILE` and `--bundle DIR`: an OCI runtime `config.json` as the
//! spec's `oci` field, and a runc bundle's `rootfs/` as the root filesystem.

use crate::args::RunArgs;
use anyhow::Result;
use imagebus_bus::RemoteError;
use imagebus_schema::container::{CommandLine, ContainerSpec, OciConfig};
use imagebus_schema::mount::{BindMount, MountRef, MountSource, MountSpec};
use std::path::Path;

/// Reads `path` as a JSON object.
pub fn read_config(what: &str, path: &Path) -> Result<OciConfig, RemoteError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| RemoteError::invalid_argument(format!("{what}: reading {path:?}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| {
        RemoteError::invalid_argument(format!("{what}: {path:?} is not a JSON object: {e}"))
    })
}

/// The root of bundle `dir`: an inline, recursive bind mount of `dir/rootfs` (made
/// absolute; the daemon resolves it). The config's `root.readonly` is applied by the
/// runtime, not by the bind.
pub fn bundle_root(dir: &Path) -> Result<MountRef, RemoteError> {
    let rootfs = dir.join("rootfs");
    let rootfs = std::fs::canonicalize(&rootfs)
        .map_err(|e| RemoteError::invalid_argument(format!("--bundle: {rootfs:?}: {e}")))?;
    if !rootfs.is_dir() {
        return Err(RemoteError::invalid_argument(format!(
            "--bundle: {rootfs:?} is not a directory"
        )));
    }
    Ok(MountRef::Inline(Box::new(MountSpec {
        name: None,
        source: MountSource::Bind(BindMount {
            path: rootfs,
            base: None,
            read_only: false,
            recursive: true,
        }),
    })))
}

/// Sets `spec.oci` from --oci-config or the bundle's `config.json`, and takes the command
/// from its `process.args` when none was given on the command line.
pub fn apply(spec: &mut ContainerSpec, a: &RunArgs) -> Result<()> {
    let oci = match (&a.oci_config, &a.bundle) {
        (Some(file), _) => read_config("--oci-config", file)?,
        (None, Some(dir)) => read_config("--bundle", &dir.join("config.json"))?,
        (None, None) => return Ok(()),
    };
    if a.command.is_empty() {
        if let Some(args) = oci.args() {
            spec.command = CommandLine::Argv(args);
        }
    }
    spec.oci = Some(oci);
    Ok(())
}
