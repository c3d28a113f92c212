//! Persistence under `<state-dir>/system/` (0700):
//!
//! - `NAME.0/`, `NAME.1/`: the two deployment slots. Each holds `rootfs` (a symlink to the
//!   checkout's mountpoint), the rendered `config.json`, `NAME.yaml` (zinit),
//!   `NAME.service` (systemd form, when the template has one or the host runs systemd), `tmpfiles-NAME.conf`, and `info.json` ([`Info`],
//!   written atomically last: a slot without it is incomplete).
//! - `NAME`: a symlink to the active slot (`NAME.0` or `NAME.1`). Switching deployments
//!   is one `rename(2)` of a fresh symlink over it: the commit point of install, update
//!   and rollback.
//! - `NAME.host`: the journal of every host path the system container put in place (JSON
//!   lines, each appended and synced before the path is made), so an uninstall, or the
//!   undo of an install cut short by a crash, removes exactly those.

use crate::config::SysConfig;
use crate::error::SysError;
use imagebus_schema::container::OciConfig;
use imagebus_schema::syscontainer::{Deployment, Supervisor};
use imagebus_sys::state::{read_optional, write_atomic};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a slot holds, `NAME.<slot>/info.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    /// The public part.
    pub deployment: Deployment,
    /// Who runs it.
    pub supervisor: Supervisor,
    /// The rendered runtime configuration (the container's `oci`).
    pub oci: OciConfig,
    /// The zinit unit.
    pub unit: String,
    /// The systemd unit (`NAME.service`), when the deployment is for a systemd host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The rendered tmpfiles lines.
    pub tmpfiles: Vec<String>,
    /// `hostfs/` entries, relative, parents first.
    pub hostfs: Vec<PathBuf>,
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The slot's record; `None` when the slot is incomplete or absent.
pub fn load_info(cfg: &SysConfig, name: &str, slot: u8) -> Result<Option<Info>, SysError> {
    let path = cfg.slot_dir(name, slot).join("info.json");
    let Some(bytes) = read_optional(&path)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| SysError::Internal(format!("{}: {e}", path.display())))
}

/// Writes the slot's record atomically.
pub fn save_info(cfg: &SysConfig, name: &str, info: &Info) -> Result<(), SysError> {
    let path = cfg.slot_dir(name, info.deployment.slot).join("info.json");
    let bytes = serde_json::to_vec_pretty(info)
        .map_err(|e| SysError::Internal(format!("encoding {}: {e}", path.display())))?;
    Ok(write_atomic(&path, &bytes, 0o600)?)
}

/// The active slot of `name`, if it is installed.
pub fn active(cfg: &SysConfig, name: &str) -> Option<u8> {
    let target = std::fs::read_link(cfg.link(name)).ok()?;
    let file = target.file_name()?.to_str()?.to_string();
    match file.strip_prefix(&format!("{name}."))? {
        "0" => Some(0),
        "1" => Some(1),
        _ => None,
    }
}

/// Points `name` at `slot`: a new symlink renamed over the old one, then the directory
/// synced. Atomic: a crash leaves the old or the new link, never none.
pub fn switch(cfg: &SysConfig, name: &str, slot: u8) -> Result<(), SysError> {
    let dir = &cfg.state_dir;
    let tmp = dir.join(format!(".{name}.link.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("{name}.{slot}"), &tmp)
        .map_err(|e| SysError::io("symlink", &tmp, e))?;
    std::fs::rename(&tmp, cfg.link(name)).map_err(|e| SysError::io("rename", &tmp, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SysError::io("fsync", dir, e))
}

/// Removes the active-slot link.
pub fn unlink(cfg: &SysConfig, name: &str) -> Result<(), SysError> {
    Ok(imagebus_sys::state::remove_file(&cfg.link(name)).map(|_| ())?)
}

/// How a journaled host path is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A file or symlink.
    File,
    /// A directory, removed when empty.
    Dir,
    /// A directory removed with its contents (tmpfiles `D`).
    Tree,
}

/// One journaled host path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// How to remove it.
    pub kind: Kind,
    /// The path.
    pub path: PathBuf,
}

/// The journal of `name`, in the order the paths were made (duplicates dropped).
pub fn journal(cfg: &SysConfig, name: &str) -> Result<Vec<Entry>, SysError> {
    let Some(bytes) = read_optional(&cfg.journal(name))? else {
        return Ok(Vec::new());
    };
    let mut out: Vec<Entry> = Vec::new();
    // A torn last line (a crash while appending) is skipped: its path was not made yet.
    for line in String::from_utf8_lossy(&bytes).lines() {
        if let Ok(e) = serde_json::from_str::<Entry>(line) {
            if !out.iter().any(|o| o.path == e.path) {
                out.push(e);
            }
        }
    }
    Ok(out)
}

/// Appends `entry` to the journal and syncs it, before the path is made.
pub fn journal_add(cfg: &SysConfig, name: &str, entry: &Entry) -> Result<(), SysError> {
    let path = cfg.journal(name);
    let mut line = serde_json::to_string(entry)
        .map_err(|e| SysError::Internal(format!("journal entry: {e}")))?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| SysError::io("open", &path, e))?;
    f.write_all(line.as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| SysError::io("append", &path, e))
}

/// Rewrites the journal to `entries` (atomically); removes it when empty.
pub fn journal_set(cfg: &SysConfig, name: &str, entries: &[Entry]) -> Result<(), SysError> {
    let path = cfg.journal(name);
    if entries.is_empty() {
        imagebus_sys::state::remove_file(&path)?;
        return Ok(());
    }
    let mut text = String::new();
    for e in entries {
        text.push_str(
            &serde_json::to_string(e)
                .map_err(|e| SysError::Internal(format!("journal entry: {e}")))?,
        );
        text.push('\n');
    }
    Ok(write_atomic(&path, text.as_bytes(), 0o600)?)
}

/// The names that have anything under the state directory (a slot, a link, a journal).
pub fn names(cfg: &SysConfig) -> Result<Vec<String>, SysError> {
    let mut out: Vec<String> = Vec::new();
    for entry in imagebus_sys::state::list_names(&cfg.state_dir)? {
        if entry.starts_with('.') {
            continue;
        }
        let name = entry
            .strip_suffix(".0")
            .or_else(|| entry.strip_suffix(".1"))
            .or_else(|| entry.strip_suffix(".host"))
            .unwrap_or(&entry)
            .to_string();
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// Removes a slot directory.
pub fn remove_slot(cfg: &SysConfig, name: &str, slot: u8) -> Result<(), SysError> {
    Ok(imagebus_sys::state::remove_tree(&cfg.slot_dir(name, slot))?)
}

/// Whether `path` is inside `root` (lexically; both absolute, no `..`).
pub fn inside(root: &Path, path: &Path) -> bool {
    path.is_absolute()
        && !path
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        && path.starts_with(root)
}
