//! Doubles of the block-device seams: [`Files`], [`LoopDevices`], [`RbdBus`].

use super::lock;
use crate::blockdev::{FileKind, FileStat, Files};
use crate::error::{SysError, SysResult};
use crate::loopdev::{LoopAttach, LoopDevice, LoopDevices};
use crate::rbd::{RbdBus, RbdDevice, RbdMap};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Files with declared kinds; anything undeclared does not exist.
#[derive(Debug, Clone, Default)]
pub struct FakeFiles {
    files: Arc<Mutex<BTreeMap<PathBuf, FileStat>>>,
}

impl FakeFiles {
    /// Declares `path` as a file of `kind` with inode `ino`.
    pub fn add(&self, path: impl Into<PathBuf>, kind: FileKind, ino: u64) {
        let stat = FileStat {
            kind,
            dev: 1,
            ino,
            rdev: 0,
            size: 4096,
        };
        lock(&self.files).insert(path.into(), stat);
    }
    /// Removes a declared file.
    pub fn remove(&self, path: &Path) {
        lock(&self.files).remove(path);
    }
}

impl Files for FakeFiles {
    fn stat(&self, path: &Path) -> SysResult<Option<FileStat>> {
        Ok(lock(&self.files).get(path).copied())
    }
}

/// Loop devices in memory; records every call.
#[derive(Debug, Clone, Default)]
pub struct FakeLoopDevices {
    state: Arc<Mutex<FakeLoopState>>,
}

#[derive(Debug, Default)]
struct FakeLoopState {
    bound: BTreeMap<u32, LoopDevice>,
    attaches: Vec<LoopAttach>,
    detaches: Vec<u32>,
    fail_next: Option<i32>,
}

impl FakeLoopDevices {
    /// Every attach request so far.
    pub fn attaches(&self) -> Vec<LoopAttach> {
        lock(&self.state).attaches.clone()
    }
    /// Every detached device number so far.
    pub fn detaches(&self) -> Vec<u32> {
        lock(&self.state).detaches.clone()
    }
    /// Currently bound devices.
    pub fn bound(&self) -> Vec<LoopDevice> {
        lock(&self.state).bound.values().cloned().collect()
    }
    /// Binds a device behind the actor's back (an orphan), or replaces one.
    pub fn insert(&self, dev: LoopDevice) {
        lock(&self.state).bound.insert(dev.number, dev);
    }
    /// Unbinds a device behind the actor's back (it vanished).
    pub fn vanish(&self, number: u32) {
        lock(&self.state).bound.remove(&number);
    }
    /// Makes the next attach fail with `errno`.
    pub fn fail_next_attach(&self, errno: i32) {
        lock(&self.state).fail_next = Some(errno);
    }
}

impl LoopDevices for FakeLoopDevices {
    fn attach(&self, req: &LoopAttach) -> SysResult<LoopDevice> {
        let mut s = lock(&self.state);
        s.attaches.push(req.clone());
        if let Some(errno) = s.fail_next.take() {
            return Err(SysError::io(
                "LOOP_CONFIGURE",
                "/dev/loop-fake",
                std::io::Error::from_raw_os_error(errno),
            ));
        }
        let number = (0..).find(|n| !s.bound.contains_key(n)).unwrap_or(0);
        let dev = LoopDevice {
            number,
            device: PathBuf::from(format!("/dev/loop{number}")),
            backing_file: req.file.clone(),
            inode: 100 + u64::from(number),
            dev: 1,
            read_only: req.read_only,
            autoclear: req.autoclear,
            tag: req.tag.clone(),
        };
        s.bound.insert(number, dev.clone());
        Ok(dev)
    }
    fn detach(&self, number: u32) -> SysResult<()> {
        let mut s = lock(&self.state);
        s.detaches.push(number);
        s.bound.remove(&number);
        Ok(())
    }
    fn status(&self, number: u32) -> SysResult<Option<LoopDevice>> {
        Ok(lock(&self.state).bound.get(&number).cloned())
    }
    fn list(&self) -> SysResult<Vec<LoopDevice>> {
        Ok(self.bound())
    }
    fn change_backing(&self, number: u32, file: &Path) -> SysResult<LoopDevice> {
        let mut s = lock(&self.state);
        let einval = || {
            SysError::io(
                "LOOP_CHANGE_FD",
                format!("/dev/loop{number}"),
                std::io::Error::from_raw_os_error(libc::EINVAL),
            )
        };
        let dev = s.bound.get_mut(&number).ok_or_else(einval)?;
        if !dev.read_only {
            return Err(einval());
        }
        dev.backing_file = file.to_path_buf();
        dev.inode += 1000;
        Ok(dev.clone())
    }
}

/// krbd in memory.
#[derive(Debug, Clone, Default)]
pub struct FakeRbdBus {
    state: Arc<Mutex<FakeRbdState>>,
}

#[derive(Debug, Default)]
struct FakeRbdState {
    available: bool,
    devices: BTreeMap<u32, RbdDevice>,
    maps: Vec<RbdMap>,
    secrets: Vec<String>,
    unmaps: Vec<(u32, bool)>,
}

impl FakeRbdBus {
    /// A bus that claims `/sys/bus/rbd` exists.
    pub fn available() -> Self {
        let f = Self::default();
        lock(&f.state).available = true;
        f
    }
    /// Every map request so far.
    pub fn maps(&self) -> Vec<RbdMap> {
        lock(&self.state).maps.clone()
    }
    /// Every secret handed to `map` (to check it reached the kernel and nothing else).
    pub fn secrets(&self) -> Vec<String> {
        lock(&self.state).secrets.clone()
    }
    /// Every unmap so far.
    pub fn unmaps(&self) -> Vec<(u32, bool)> {
        lock(&self.state).unmaps.clone()
    }
    /// Mapped devices.
    pub fn devices(&self) -> Vec<RbdDevice> {
        lock(&self.state).devices.values().cloned().collect()
    }
}

impl RbdBus for FakeRbdBus {
    fn available(&self) -> bool {
        lock(&self.state).available
    }
    fn map(&self, req: &RbdMap, secret: &str) -> SysResult<RbdDevice> {
        let mut s = lock(&self.state);
        s.maps.push(req.clone());
        s.secrets.push(secret.to_string());
        let id = (0..).find(|n| !s.devices.contains_key(n)).unwrap_or(0);
        let dev = RbdDevice {
            id,
            pool: req.pool.clone(),
            namespace: req.namespace.clone().unwrap_or_default(),
            image: req.image.clone(),
            snapshot: req.snapshot.clone().unwrap_or_else(|| "-".into()),
            device: PathBuf::from(format!("/dev/rbd{id}")),
            key: Some(req.key_name.clone()),
        };
        s.devices.insert(id, dev.clone());
        Ok(dev)
    }
    fn unmap(&self, id: u32, force: bool) -> SysResult<()> {
        let mut s = lock(&self.state);
        s.unmaps.push((id, force));
        s.devices.remove(&id);
        Ok(())
    }
    fn list(&self) -> SysResult<Vec<RbdDevice>> {
        Ok(self.devices())
    }
}
