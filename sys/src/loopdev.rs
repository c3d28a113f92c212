//! Loop devices: allocation through `/dev/loop-control` (`LOOP_CTL_GET_FREE`), binding with
//! `LOOP_CONFIGURE` (falling back to `LOOP_SET_FD` + `LOOP_SET_STATUS64` on old kernels),
//! moving a read-only device to a new backing file with `LOOP_CHANGE_FD`, release with
//! `LOOP_CLR_FD`, and inspection through `/sys/block/loopN/loop/`.

use crate::error::{SysError, SysResult};
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What to bind to a loop device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopAttach {
    /// The backing regular file.
    pub file: PathBuf,
    /// Bind read-only (`LO_FLAGS_READ_ONLY`, and the file is opened read-only).
    pub read_only: bool,
    /// Set `LO_FLAGS_AUTOCLEAR`: the kernel frees the device on its last close.
    pub autoclear: bool,
    /// Stored in the kernel's `lo_file_name` (at most 63 bytes; `losetup` shows the sysfs
    /// backing file instead), so the owner can recognise its devices after a crash.
    pub tag: String,
}

/// A bound loop device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopDevice {
    /// Device number N of `/dev/loopN`.
    pub number: u32,
    /// `/dev/loopN`.
    pub device: PathBuf,
    /// Backing file as the kernel reports it (`/sys/block/loopN/loop/backing_file`).
    pub backing_file: PathBuf,
    /// Inode of the backing file.
    pub inode: u64,
    /// Device (st_dev) of the backing file.
    pub dev: u64,
    /// Whether the device is read-only.
    pub read_only: bool,
    /// Whether autoclear is set.
    pub autoclear: bool,
    /// The `lo_file_name` given at attach time (see [`LoopAttach::tag`]).
    pub tag: String,
}

/// Loop device control.
pub trait LoopDevices: Send + Sync + 'static {
    /// Binds `req.file` to a free loop device.
    fn attach(&self, req: &LoopAttach) -> SysResult<LoopDevice>;
    /// Binds `req.file` to a free loop device with autoclear on (whatever `req.autoclear`
    /// says), and keeps the device open in the returned [`LoopHold`]: until
    /// [`LoopHold::keep`] turns autoclear off, the kernel frees the device on the hold's
    /// last close, also when this process is killed. An owner that records the device
    /// after binding it calls `keep` once the record is durable, so a crash in between
    /// leaves no device behind, whatever became of its backing file. The default binds
    /// without autoclear (nothing to hold).
    fn attach_held(&self, req: &LoopAttach) -> SysResult<(LoopDevice, LoopHold)> {
        let req = LoopAttach {
            autoclear: false,
            ..req.clone()
        };
        Ok((self.attach(&req)?, LoopHold::none()))
    }
    /// Unbinds `/dev/loopN`. An already free device is not an error. A device still open
    /// elsewhere (mounted) is unbound by the kernel on its last close.
    fn detach(&self, number: u32) -> SysResult<()>;
    /// The device's binding, `None` when it is free or does not exist.
    fn status(&self, number: u32) -> SysResult<Option<LoopDevice>>;
    /// Every bound loop device on the machine.
    fn list(&self) -> SysResult<Vec<LoopDevice>>;
    /// Moves read-only `/dev/loopN` onto `file`, which must have the size of its current
    /// backing file (`LOOP_CHANGE_FD`): the device, its number and whatever is mounted on
    /// it stay; the tag is kept. The kernel refuses (EINVAL) a writable device or another
    /// size.
    fn change_backing(&self, number: u32, file: &Path) -> SysResult<LoopDevice>;
}

/// [`LoopDevices`] for the real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxLoopDevices;

/// An open loop device bound with autoclear ([`LoopDevices::attach_held`]). Dropped
/// without [`LoopHold::keep`], it closes the device and the kernel frees it.
#[derive(Debug)]
pub struct LoopHold {
    held: Option<(File, u32, String)>,
}

impl LoopHold {
    /// A hold of nothing (bindings without autoclear); `keep` does nothing.
    pub fn none() -> Self {
        Self { held: None }
    }

    /// Turns autoclear off (`LOOP_SET_STATUS64` with the same tag, offset and size
    /// limit), so the device stays bound after the hold is closed.
    pub fn keep(mut self) -> SysResult<()> {
        let Some((dev, number, tag)) = self.held.take() else {
            return Ok(());
        };
        let mut info = zeroed_info();
        let name = tag.as_bytes();
        let len = name.len().min(LO_NAME_SIZE - 1);
        info.lo_file_name[..len].copy_from_slice(&name[..len]);
        // SAFETY: LOOP_SET_STATUS64 reads a `struct loop_info64`, mirrored by `LoopInfo64`;
        // the fd is open for the duration of the call. Flags other than autoclear and
        // partscan are kept by the kernel whatever we pass.
        let rc = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_STATUS64 as _, &info) };
        if rc != 0 {
            return Err(SysError::last_os("LOOP_SET_STATUS64", device_path(number)));
        }
        Ok(())
    }
}

const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_CHANGE_FD: libc::c_ulong = 0x4C06;
const LOOP_GET_STATUS64: libc::c_ulong = 0x4C05;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_NAME_SIZE: usize = 64;

/// `struct loop_info64` from `<linux/loop.h>`.
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` from `<linux/loop.h>`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

fn zeroed_info() -> LoopInfo64 {
    LoopInfo64 {
        lo_device: 0,
        lo_inode: 0,
        lo_rdevice: 0,
        lo_offset: 0,
        lo_sizelimit: 0,
        lo_number: 0,
        lo_encrypt_type: 0,
        lo_encrypt_key_size: 0,
        lo_flags: 0,
        lo_file_name: [0; LO_NAME_SIZE],
        lo_crypt_name: [0; LO_NAME_SIZE],
        lo_encrypt_key: [0; 32],
        lo_init: [0; 2],
    }
}

fn device_path(number: u32) -> PathBuf {
    PathBuf::from(format!("/dev/loop{number}"))
}

fn open_device(number: u32, write: bool) -> SysResult<File> {
    let path = device_path(number);
    OpenOptions::new()
        .read(true)
        .write(write)
        .open(&path)
        .map_err(|e| SysError::io("open", path, e))
}

impl LinuxLoopDevices {
    fn get_free(&self) -> SysResult<u32> {
        let ctl = Path::new("/dev/loop-control");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(ctl)
            .map_err(|e| SysError::io("open", ctl, e))?;
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number; the fd
        // is valid for the duration of the call.
        let n = unsafe { libc::ioctl(f.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            return Err(SysError::last_os("LOOP_CTL_GET_FREE", ctl));
        }
        u32::try_from(n).map_err(|_| SysError::Invalid(format!("loop number {n}")))
    }

    /// Binds `backing` to loop device `number`; returns the device, still open (with
    /// autoclear, closing it may free the device).
    fn bind(&self, number: u32, backing: &File, req: &LoopAttach) -> SysResult<File> {
        let dev = open_device(number, !req.read_only)?;
        let mut flags = 0;
        if req.read_only {
            flags |= LO_FLAGS_READ_ONLY;
        }
        if req.autoclear {
            flags |= LO_FLAGS_AUTOCLEAR;
        }
        let mut info = zeroed_info();
        info.lo_flags = flags;
        let name = req.tag.as_bytes();
        let len = name.len().min(LO_NAME_SIZE - 1);
        info.lo_file_name[..len].copy_from_slice(&name[..len]);
        let fd = u32::try_from(backing.as_raw_fd())
            .map_err(|_| SysError::Invalid("negative fd".into()))?;
        let config = LoopConfig {
            fd,
            block_size: 0,
            info,
            reserved: [0; 8],
        };
        // SAFETY: LOOP_CONFIGURE reads a `struct loop_config`, which `LoopConfig` mirrors
        // (repr(C)); both fds are open for the duration of the call.
        let rc = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE as _, &config) };
        if rc == 0 {
            return Ok(dev);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINVAL) && err.raw_os_error() != Some(libc::ENOTTY) {
            return Err(SysError::io("LOOP_CONFIGURE", device_path(number), err));
        }
        // Kernels before 5.8: two-step setup.
        // SAFETY: LOOP_SET_FD takes the backing fd as an integer argument.
        let rc = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_FD as _, backing.as_raw_fd()) };
        if rc != 0 {
            return Err(SysError::last_os("LOOP_SET_FD", device_path(number)));
        }
        // SAFETY: LOOP_SET_STATUS64 reads a `struct loop_info64`, mirrored by `LoopInfo64`.
        let rc = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_STATUS64 as _, &config.info) };
        if rc != 0 {
            let err = SysError::last_os("LOOP_SET_STATUS64", device_path(number));
            // SAFETY: LOOP_CLR_FD takes no argument.
            unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CLR_FD as _) };
            return Err(err);
        }
        Ok(dev)
    }

    /// Binds `req` to a free device; returns it and its open file.
    fn bind_free(&self, req: &LoopAttach) -> SysResult<(LoopDevice, File)> {
        let backing = OpenOptions::new()
            .read(true)
            .write(!req.read_only)
            .open(&req.file)
            .map_err(|e| SysError::io("open", &req.file, e))?;
        // Another process may take the same free device between GET_FREE and CONFIGURE
        // (EBUSY); ask again.
        let mut last = None;
        for _ in 0..16 {
            let number = self.get_free()?;
            match self.bind(number, &backing, req) {
                Ok(dev) => {
                    let bound = self.status(number)?.ok_or_else(|| SysError::Parse {
                        what: format!("/sys/block/loop{number}"),
                        detail: "device unbound right after binding".into(),
                    })?;
                    return Ok((bound, dev));
                }
                Err(e) if e.errno() == Some(libc::EBUSY) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(SysError::Unavailable("a free loop device".into())))
    }
}

fn read_sys(path: &Path) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|s| s.trim_end_matches('\n').to_string())
}

impl LoopDevices for LinuxLoopDevices {
    fn attach(&self, req: &LoopAttach) -> SysResult<LoopDevice> {
        Ok(self.bind_free(req)?.0)
    }

    fn attach_held(&self, req: &LoopAttach) -> SysResult<(LoopDevice, LoopHold)> {
        let req = LoopAttach {
            autoclear: true,
            ..req.clone()
        };
        let (bound, dev) = self.bind_free(&req)?;
        let hold = LoopHold {
            held: Some((dev, bound.number, req.tag.clone())),
        };
        Ok((bound, hold))
    }

    fn detach(&self, number: u32) -> SysResult<()> {
        let dev = match open_device(number, false) {
            Ok(d) => d,
            Err(e) if matches!(e.errno(), Some(libc::ENOENT | libc::ENXIO)) => return Ok(()),
            Err(e) => return Err(e),
        };
        // SAFETY: LOOP_CLR_FD takes no argument; the fd is valid.
        let rc = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CLR_FD as _) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENXIO) {
                return Ok(());
            }
            return Err(SysError::io("LOOP_CLR_FD", device_path(number), err));
        }
        Ok(())
    }

    fn change_backing(&self, number: u32, file: &Path) -> SysResult<LoopDevice> {
        let backing = File::open(file).map_err(|e| SysError::io("open", file, e))?;
        let dev = open_device(number, false)?;
        // SAFETY: LOOP_CHANGE_FD takes the new backing fd as an integer argument; both fds
        // are open for the duration of the call.
        let rc = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CHANGE_FD as _, backing.as_raw_fd()) };
        if rc != 0 {
            return Err(SysError::last_os("LOOP_CHANGE_FD", device_path(number)));
        }
        self.status(number)?.ok_or_else(|| SysError::Parse {
            what: format!("/sys/block/loop{number}"),
            detail: "device unbound right after LOOP_CHANGE_FD".into(),
        })
    }

    fn status(&self, number: u32) -> SysResult<Option<LoopDevice>> {
        let sys = PathBuf::from(format!("/sys/block/loop{number}"));
        let Some(backing) = read_sys(&sys.join("loop/backing_file")) else {
            return Ok(None);
        };
        let autoclear = read_sys(&sys.join("loop/autoclear")).as_deref() == Some("1");
        let read_only = read_sys(&sys.join("ro")).as_deref() == Some("1");
        let dev = match open_device(number, false) {
            Ok(d) => d,
            Err(e) if matches!(e.errno(), Some(libc::ENOENT | libc::ENXIO)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut info = zeroed_info();
        // SAFETY: LOOP_GET_STATUS64 writes a `struct loop_info64` into `info`, which is a
        // properly sized and aligned mirror of it.
        let rc = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_GET_STATUS64 as _, &mut info) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENXIO) {
                return Ok(None);
            }
            // The kernel stats the backing file for this ioctl; a file on a dead FUSE
            // server fails (ENOTCONN). The device is still bound: report what sysfs knows
            // (no inode, no tag) so that owners can still find and free it.
            tracing::debug!(number, error = %err, "LOOP_GET_STATUS64 failed; using sysfs only");
            info = zeroed_info();
        }
        Ok(Some(LoopDevice {
            number,
            device: device_path(number),
            backing_file: PathBuf::from(backing),
            inode: info.lo_inode,
            dev: info.lo_device,
            read_only,
            autoclear,
            tag: c_string(&info.lo_file_name),
        }))
    }

    fn list(&self) -> SysResult<Vec<LoopDevice>> {
        let dir = Path::new("/sys/block");
        let entries = fs::read_dir(dir).map_err(|e| SysError::io("readdir", dir, e))?;
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(n) = name.to_str().and_then(|s| s.strip_prefix("loop")) else {
                continue;
            };
            let Ok(number) = n.parse::<u32>() else {
                continue;
            };
            // One unreadable device must not hide the others.
            match self.status(number) {
                Ok(Some(d)) => out.push(d),
                Ok(None) => {}
                Err(e) => tracing::debug!(number, error = %e, "skipping unreadable loop device"),
            }
        }
        out.sort_by_key(|d| d.number);
        Ok(out)
    }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The (st_dev, st_ino) of a file, as recorded with a loop binding.
pub fn file_identity(path: &Path) -> SysResult<(u64, u64)> {
    let m = fs::metadata(path).map_err(|e| SysError::io("stat", path, e))?;
    Ok((m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_match_the_kernel() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }
}

#[cfg(test)]
mod kernel_tests {
    use super::*;

    /// Real kernel (needs root): a device bound by someone else (`losetup`) is listed with
    /// its backing file, ours with our tag.
    #[test]
    fn list_sees_foreign_and_own_devices() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("img");
        fs::write(&f, vec![0u8; 1 << 20]).unwrap();
        let out = std::process::Command::new("losetup")
            .args(["-r", "-f", "--show"])
            .arg(&f)
            .output()
            .unwrap();
        let foreign = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let ours = LinuxLoopDevices.attach(&LoopAttach {
            file: f.clone(),
            read_only: true,
            autoclear: false,
            tag: "imagebus-test".into(),
        });
        let list = LinuxLoopDevices.list();
        let _ = std::process::Command::new("losetup")
            .args(["-d", &foreign])
            .status();
        let ours = ours.unwrap();
        LinuxLoopDevices.detach(ours.number).unwrap();
        let list = list.unwrap();
        let mine: Vec<_> = list.iter().filter(|d| d.backing_file == f).collect();
        assert_eq!(mine.len(), 2, "{list:?}");
        assert!(
            mine.iter()
                .any(|d| d.device.as_os_str() == foreign.as_str()),
            "{list:?}"
        );
        assert!(
            mine.iter().any(|d| d.tag == "imagebus-test" && d.read_only),
            "{list:?}"
        );
        assert_eq!(LinuxLoopDevices.status(ours.number).unwrap(), None);
    }
}
