//! Kernel RBD (krbd) through `/sys/bus/rbd`: keyring secrets, map, unmap, discovery.
//!
//! Add string: `<mon_addrs> <options> <pool> <image> [<snap>]` written to
//! `/sys/bus/rbd/add_single_major` (or `add` when the module was loaded without
//! `single_major`). The secret goes into the kernel keyring as a `ceph` key (the binary
//! form of the base64 cephx key) and the add string names it with `key=`, so it never sits
//! in the device's `config_info`. Discovery scans `/sys/bus/rbd/devices/*/`.

use crate::error::{SysError, SysResult};
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What to map (the secret is passed separately so this type can be logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbdMap {
    /// Monitors, `ip[:port]`.
    pub monitors: Vec<String>,
    /// Pool.
    pub pool: String,
    /// Image.
    pub image: String,
    /// Snapshot (`None` = head).
    pub snapshot: Option<String>,
    /// RADOS namespace.
    pub namespace: Option<String>,
    /// cephx user without `client.`.
    pub user: String,
    /// Map read-only.
    pub read_only: bool,
    /// Description of the keyring key to create (unique per mapping).
    pub key_name: String,
}

/// A mapped krbd device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbdDevice {
    /// Device id (`/dev/rbd<id>`).
    pub id: u32,
    /// Pool.
    pub pool: String,
    /// Namespace (empty = default).
    pub namespace: String,
    /// Image.
    pub image: String,
    /// Snapshot (`-` = head).
    pub snapshot: String,
    /// `/dev/rbd<id>`.
    pub device: PathBuf,
    /// The keyring key named by `key=` in the device's `config_info`, if any.
    pub key: Option<String>,
}

/// krbd control.
pub trait RbdBus: Send + Sync + 'static {
    /// Whether `/sys/bus/rbd` exists (the kernel has rbd support loaded).
    fn available(&self) -> bool;
    /// Maps an image and returns its device.
    fn map(&self, req: &RbdMap, secret: &str) -> SysResult<RbdDevice>;
    /// Unmaps device `id` (`force`: even while open).
    fn unmap(&self, id: u32, force: bool) -> SysResult<()>;
    /// Every mapped device.
    fn list(&self) -> SysResult<Vec<RbdDevice>>;
}

/// [`RbdBus`] for the real kernel.
#[derive(Debug, Clone)]
pub struct LinuxRbdBus {
    root: PathBuf,
}

impl Default for LinuxRbdBus {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/sys/bus/rbd"),
        }
    }
}

/// The krbd add string (without secrets; `key=` names the keyring key).
pub fn add_string(req: &RbdMap) -> String {
    add_string_with(req, &format!("key={}", req.key_name))
}

/// The add string with `auth` (`key=DESC` or, as a fallback, `secret=BASE64`).
fn add_string_with(req: &RbdMap, auth: &str) -> String {
    let mut opts = vec![format!("name={}", req.user), auth.to_string()];
    if req.read_only || req.snapshot.is_some() {
        opts.push("ro".into());
    }
    if let Some(ns) = &req.namespace {
        opts.push(format!("_pool_ns={ns}"));
    }
    format!(
        "{} {} {} {} {}",
        req.monitors.join(","),
        opts.join(","),
        req.pool,
        req.image,
        req.snapshot.as_deref().unwrap_or("-")
    )
}

/// Decodes standard base64 (with or without padding).
pub fn decode_base64(s: &str) -> SysResult<Vec<u8>> {
    let bad = || SysError::Invalid("secret is not valid base64".into());
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.trim().trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(bad()),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

fn add_ceph_key(name: &str, payload: &[u8]) -> SysResult<i64> {
    let ty = CString::new("ceph").map_err(|_| SysError::Invalid("key type".into()))?;
    let desc = CString::new(name).map_err(|_| SysError::Invalid("key name has NUL".into()))?;
    // SAFETY: add_key(2) reads two NUL-terminated strings and `payload.len()` bytes, all
    // valid for the call; KEY_SPEC_PROCESS_KEYRING is the keyring the kernel searches when
    // this process writes the add string.
    let serial = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            ty.as_ptr(),
            desc.as_ptr(),
            payload.as_ptr(),
            payload.len(),
            libc::KEY_SPEC_PROCESS_KEYRING,
        )
    };
    if serial < 0 {
        return Err(SysError::Os {
            op: "add_key",
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(serial)
}

fn drop_key(serial: i64) {
    // SAFETY: KEYCTL_INVALIDATE takes a key serial; an invalid serial only returns an error.
    unsafe { libc::syscall(libc::SYS_keyctl, libc::KEYCTL_INVALIDATE, serial) };
}

/// The `key=` option of a krbd `config_info` line (`<mons> <options> <pool> ...`).
fn key_option(config_info: &str) -> Option<String> {
    let options = config_info.split(' ').nth(1)?;
    options
        .split(',')
        .find_map(|o| o.strip_prefix("key="))
        .map(str::to_string)
}

fn read_attr(dir: &Path, name: &str) -> Option<String> {
    fs::read_to_string(dir.join(name))
        .ok()
        .map(|s| s.trim().to_string())
}

impl LinuxRbdBus {
    /// A bus rooted elsewhere (tests).
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn write(&self, names: [&str; 2], data: &str) -> SysResult<()> {
        let path = if self.root.join(names[0]).exists() {
            self.root.join(names[0])
        } else {
            self.root.join(names[1])
        };
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| SysError::io("open", &path, e))?;
        f.write_all(data.as_bytes())
            .map_err(|e| SysError::io("write sysfs", &path, e))
    }
}

impl RbdBus for LinuxRbdBus {
    fn available(&self) -> bool {
        let present =
            || self.root.join("add").exists() || self.root.join("add_single_major").exists();
        if present() {
            return true;
        }
        // Once per process, try to load the module (a node may have it but not loaded).
        static TRIED: std::sync::Once = std::sync::Once::new();
        if self.root == Path::new("/sys/bus/rbd") {
            TRIED.call_once(|| {
                let loaded = std::process::Command::new("modprobe")
                    .args(["-q", "rbd"])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
                tracing::debug!(?loaded, "modprobe rbd");
            });
        }
        present()
    }

    fn map(&self, req: &RbdMap, secret: &str) -> SysResult<RbdDevice> {
        let payload = decode_base64(secret)?;
        match add_ceph_key(&req.key_name, &payload) {
            Ok(serial) => {
                let result = self.write(["add_single_major", "add"], &add_string(req));
                // The kernel copied the key during the add; it is not needed any more.
                drop_key(serial);
                result?;
            }
            Err(e) => {
                // No keyring (e.g. CONFIG_KEYS off): the secret goes in the add string and
                // ends up in the root-only `config_info`. The string itself is never logged.
                tracing::warn!(error = %e, "kernel keyring unavailable; passing the rbd secret inline");
                let auth = format!("secret={secret}");
                self.write(["add_single_major", "add"], &add_string_with(req, &auth))?;
            }
        }
        let snap = req.snapshot.clone().unwrap_or_else(|| "-".into());
        let ns = req.namespace.clone().unwrap_or_default();
        self.list()?
            .into_iter()
            .filter(|d| d.pool == req.pool && d.image == req.image && d.snapshot == snap)
            .filter(|d| d.namespace == ns)
            .max_by_key(|d| d.id)
            .ok_or_else(|| SysError::Parse {
                what: self.root.join("devices").display().to_string(),
                detail: format!("no device for {}/{} after mapping", req.pool, req.image),
            })
    }

    fn unmap(&self, id: u32, force: bool) -> SysResult<()> {
        let arg = if force {
            format!("{id} force")
        } else {
            id.to_string()
        };
        match self.write(["remove_single_major", "remove"], &arg) {
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(()),
            other => other,
        }
    }

    fn list(&self) -> SysResult<Vec<RbdDevice>> {
        let dir = self.root.join("devices");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(SysError::io("readdir", dir, e)),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let Some(id) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let d = e.path();
            let (Some(pool), Some(image)) = (read_attr(&d, "pool"), read_attr(&d, "name")) else {
                continue;
            };
            out.push(RbdDevice {
                id,
                pool,
                namespace: read_attr(&d, "pool_ns").unwrap_or_default(),
                image,
                snapshot: read_attr(&d, "current_snap").unwrap_or_else(|| "-".into()),
                device: PathBuf::from(format!("/dev/rbd{id}")),
                key: read_attr(&d, "config_info").and_then(|c| key_option(&c)),
            });
        }
        out.sort_by_key(|d| d.id);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> RbdMap {
        RbdMap {
            monitors: vec!["10.0.0.1:6789".into(), "10.0.0.2".into()],
            pool: "rbd".into(),
            image: "img".into(),
            snapshot: None,
            namespace: Some("ns".into()),
            user: "imageapi".into(),
            read_only: true,
            key_name: "imagebus.attach.7".into(),
        }
    }

    #[test]
    fn add_string_has_no_secret_and_names_the_key() {
        assert_eq!(
            add_string(&req()),
            "10.0.0.1:6789,10.0.0.2 name=imageapi,key=imagebus.attach.7,ro,_pool_ns=ns rbd img -"
        );
        let snap = RbdMap {
            snapshot: Some("s1".into()),
            read_only: false,
            namespace: None,
            ..req()
        };
        assert!(
            add_string(&snap).ends_with(",ro rbd img s1"),
            "{}",
            add_string(&snap)
        );
    }

    #[test]
    fn base64() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert!(decode_base64("not base64!").is_err());
    }

    #[test]
    fn discovery_scans_devices() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("devices/3");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("pool"), "rbd\n").unwrap();
        fs::write(d.join("name"), "img\n").unwrap();
        fs::write(d.join("current_snap"), "-\n").unwrap();
        let bus = LinuxRbdBus::with_root(root.path());
        assert!(!bus.available());
        let list = bus.list().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].device, PathBuf::from("/dev/rbd3"));
        assert_eq!(list[0].snapshot, "-");
    }
}
