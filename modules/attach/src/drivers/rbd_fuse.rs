//! The userspace RBD path for kernels without rbd: rbd-fuse exposes the image as a file in
//! a private FUSE mount, and a loop device on that file is the block device.
//!
//! Per attachment, in `<state_dir>/rbd/<id>/` (mode 0700): `ceph.conf` (0600; `mon_host`
//! as `v1:` addresses and the `key`, so the secret never appears on a command line),
//! `rbd-fuse.log`, and the FUSE mountpoint `mnt/`. rbd-fuse has no `--id`: the user goes in
//! `CEPH_ARGS="--id USER"`.
//!
//! Before starting rbd-fuse, `rbd info` with the same credentials turns the common failures
//! into typed errors (unknown image → NotFound, refused key → InvalidArgument, unreachable
//! monitors → Unavailable). rbd-fuse opens images read-write, so it needs a user with
//! `osd 'profile rbd'`; with a read-only user the image file never becomes readable (and
//! rbd-fuse crashes) — that is reported as InvalidArgument and everything is undone.

use super::rbd::image_spec;
use super::Mapped;
use crate::config::AttachSys;
use crate::error::AttachError;
use crate::store::Backing;
use imagebus_schema::attach::RbdSource;
use imagebus_sys::blockdev::FileKind;
use imagebus_sys::cmd::CommandCall;
use imagebus_sys::loopdev::{LoopAttach, LoopHold};
use imagebus_sys::proc::{Reaped, Signal};
use imagebus_sys::state::{ensure_private_dir, remove_tree, write_atomic};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// How long rbd-fuse may take to expose the image.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the `rbd info` probe may take (monitor timeouts are 10 s in the config).
const PROBE_TIMEOUT: Duration = Duration::from_secs(40);

/// The Ceph config file of an attachment directory.
pub fn conf_path(dir: &Path) -> PathBuf {
    dir.join("ceph.conf")
}

/// The FUSE mountpoint of an attachment directory.
pub fn mnt_path(dir: &Path) -> PathBuf {
    dir.join("mnt")
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("rbd-fuse.log")
}

/// `mon_host` for librados: `v1:` addresses (a bare address makes librados try msgr2 first).
pub fn mon_host(mons: &[SocketAddr]) -> String {
    mons.iter()
        .map(|m| format!("v1:{m}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn write_conf(dir: &Path, src: &RbdSource, mons: &[SocketAddr]) -> Result<(), AttachError> {
    ensure_private_dir(dir)?;
    ensure_private_dir(&mnt_path(dir))?;
    let text = format!(
        "[global]\nmon_host = {}\nkey = {}\nclient_mount_timeout = 10\nrados_mon_op_timeout = 20\n\
         rados_osd_op_timeout = 30\nlog_to_stderr = true\nerr_to_stderr = true\n",
        mon_host(mons),
        src.secret.expose()
    );
    write_atomic(&conf_path(dir), text.as_bytes(), 0o600)?;
    Ok(())
}

/// FUSE attribute cache of read-only images, in seconds (a year; see [`rbd_fuse_call`]).
const ATTR_TIMEOUT_SECS: u64 = 365 * 24 * 3600;

/// The rbd-fuse command for an attachment directory (no secret in it).
pub fn rbd_fuse_call(dir: &Path, src: &RbdSource) -> CommandCall {
    let mut args = vec![
        "-f".to_string(),
        "-c".into(),
        conf_path(dir).display().to_string(),
        "-p".into(),
        src.pool.clone(),
    ];
    if let Some(ns) = &src.namespace {
        args.extend(["-s".to_string(), ns.clone()]);
    }
    args.extend(["-r".to_string(), src.image.clone()]);
    if src.read_only {
        // Attributes cached for a year: when this rbd-fuse dies, the kernel must still
        // answer the size of the dead file (LOOP_CHANGE_FD compares old and new sizes
        // through getattr), so the loop device can be moved onto the restarted one.
        args.extend([
            "-o".to_string(),
            format!("ro,attr_timeout={ATTR_TIMEOUT_SECS}"),
        ]);
    }
    args.push(mnt_path(dir).display().to_string());
    CommandCall::new("rbd-fuse", args)
        .env("CEPH_ARGS", &format!("--id {}", src.user))
        .log(log_path(dir))
}

fn probe(sys: &AttachSys, dir: &Path, src: &RbdSource) -> Result<(), AttachError> {
    let spec = image_spec(src);
    let call = CommandCall::new(
        "rbd",
        [
            "-c".to_string(),
            conf_path(dir).display().to_string(),
            "--id".into(),
            src.user.clone(),
            "info".into(),
            spec.clone(),
        ],
    );
    let out = match sys.runner.run(&call, PROBE_TIMEOUT) {
        Ok(out) => out,
        Err(imagebus_sys::SysError::Timeout { .. }) => {
            return Err(AttachError::Unavailable(format!(
                "Ceph monitors did not answer for {spec}"
            )))
        }
        Err(e) => {
            return Err(AttachError::sys(
                "running rbd info (is ceph-common installed?)",
                e,
            ))
        }
    };
    match out.code {
        Some(0) => Ok(()),
        // rbd exits with the errno of the failure.
        Some(2) => Err(AttachError::ImageNotFound(spec)),
        Some(1 | 13) => Err(AttachError::AccessDenied(format!(
            "the cluster rejected client.{} (wrong secret or missing caps)",
            src.user
        ))),
        Some(110 | 111 | 113) => Err(AttachError::Unavailable(format!(
            "Ceph monitors {} unreachable",
            src.monitors.join(",")
        ))),
        Some(22) => Err(AttachError::Invalid(format!(
            "the cluster refused the key of client.{}",
            src.user
        ))),
        code => Err(AttachError::Unavailable(format!(
            "rbd info {spec} failed ({code:?}): {}",
            last_line(&out.stderr)
        ))),
    }
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect()
}

/// Starts rbd-fuse for `dir` and waits until the image file is readable.
pub fn start(sys: &AttachSys, dir: &Path, src: &RbdSource) -> Result<u32, AttachError> {
    let call = rbd_fuse_call(dir, src);
    let pid = sys.runner.spawn(&call).map_err(|e| {
        AttachError::sys("starting rbd-fuse (is the rbd-fuse package installed?)", e)
    })?;
    debug!(pid, dir = %dir.display(), "rbd-fuse started");
    match wait_ready(sys, pid, dir, src) {
        Ok(()) => Ok(pid),
        Err(e) => {
            stop(sys, pid, dir);
            Err(e)
        }
    }
}

fn wait_ready(sys: &AttachSys, pid: u32, dir: &Path, src: &RbdSource) -> Result<(), AttachError> {
    let mnt = mnt_path(dir);
    let file = mnt.join(&src.image);
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Reaped::Exited { code, signal } = sys.procs.reap(pid) {
            return Err(exited_error(src, code, signal));
        }
        if !sys.procs.alive(pid) {
            return Err(exited_error(src, None, None));
        }
        let mounted = sys
            .fuse
            .list()
            .is_ok_and(|l| l.iter().any(|m| m.mountpoint == mnt));
        if mounted {
            return match sys.files.stat(&file) {
                Ok(Some(s)) if s.kind == FileKind::Regular => Ok(()),
                Ok(_) | Err(_) => Err(AttachError::AccessDenied(format!(
                    "rbd-fuse could not open {} as client.{}: the userspace fallback opens images \
                     read-write and needs a user with osd 'profile rbd' caps",
                    image_spec(src),
                    src.user
                ))),
            };
        }
        if Instant::now() >= deadline {
            return Err(AttachError::Unavailable(format!(
                "rbd-fuse did not expose {} within {} s",
                image_spec(src),
                READY_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn exited_error(src: &RbdSource, code: Option<i32>, signal: Option<i32>) -> AttachError {
    AttachError::Unavailable(format!(
        "rbd-fuse for {} exited early (code {code:?}, signal {signal:?}); \
         it needs a user with osd 'profile rbd' caps and reachable monitors",
        image_spec(src)
    ))
}

/// Stops rbd-fuse (TERM, then KILL after 5 s), reaps it if it is our child, and lazily
/// unmounts its FUSE mount (a dead server leaves one behind).
pub fn stop(sys: &AttachSys, pid: u32, dir: &Path) {
    if is_ours(sys, pid, dir) {
        let _ = sys.procs.signal(pid, Signal::Term);
        let deadline = Instant::now() + Duration::from_secs(5);
        while sys.procs.alive(pid) {
            let _ = sys.procs.reap(pid);
            if Instant::now() >= deadline {
                let _ = sys.procs.signal(pid, Signal::Kill);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let _ = sys.procs.reap(pid);
    let mnt = mnt_path(dir);
    if sys
        .fuse
        .list()
        .is_ok_and(|l| l.iter().any(|m| m.mountpoint == mnt))
    {
        if let Err(e) = sys.fuse.unmount(&mnt, true) {
            warn!(error = %e, mnt = %mnt.display(), "lazy unmount of rbd-fuse mount failed");
        }
    }
}

/// Whether `pid` is a live rbd-fuse serving `dir`.
pub fn is_ours(sys: &AttachSys, pid: u32, dir: &Path) -> bool {
    let mnt = mnt_path(dir).display().to_string();
    sys.procs.alive(pid)
        && sys
            .procs
            .cmdline(pid)
            .is_some_and(|c| c.first().is_some_and(|a| a.ends_with("rbd-fuse")) && c.contains(&mnt))
}

/// Whether `/dev/loop<number>` is the loop device of the attachment in `dir`: it carries
/// `tag`, or — when the kernel cannot stat a file on a dead FUSE server and so reports no
/// tag — its backing file is the image file in `dir` (or, once that FUSE mount was lazily
/// unmounted, the bare `/<image>` the kernel shows for a detached mount).
pub fn loop_is_ours(sys: &AttachSys, number: u32, tag: &str, dir: &Path, image: &str) -> bool {
    match sys.loops.status(number) {
        Ok(Some(d)) if d.tag == tag => true,
        Ok(Some(d)) if d.tag.is_empty() => {
            d.backing_file == mnt_path(dir).join(image)
                || d.backing_file == Path::new("/").join(image)
        }
        _ => false,
    }
}

fn loop_request(dir: &Path, src: &RbdSource, tag: String) -> LoopAttach {
    LoopAttach {
        file: mnt_path(dir).join(&src.image),
        read_only: src.read_only,
        autoclear: false,
        tag,
    }
}

/// Binds the FUSE image file to a loop device that the kernel frees when `LoopHold` is
/// closed unkept — also when this process dies before the attachment is recorded. Its tag
/// could not identify such a device once rbd-fuse is gone: the kernel cannot stat a file
/// on a dead FUSE server (no tag is read back), and once that mount is unmounted the
/// backing file shows as `/<image>`, outside our directories.
pub(crate) fn bind_loop_held(
    sys: &AttachSys,
    dir: &Path,
    src: &RbdSource,
    tag: String,
) -> Result<(imagebus_sys::loopdev::LoopDevice, LoopHold), AttachError> {
    let req = loop_request(dir, src, tag);
    sys.loops
        .attach_held(&req)
        .map_err(|e| AttachError::sys(format!("binding {:?} to a loop device", req.file), e))
}

/// Moves read-only loop device `number` onto the image file of a restarted rbd-fuse, so the
/// device path, and whatever is mounted on it, survive the restart.
pub fn rebind_loop(
    sys: &AttachSys,
    dir: &Path,
    src: &RbdSource,
    number: u32,
) -> Result<imagebus_sys::loopdev::LoopDevice, AttachError> {
    let file = mnt_path(dir).join(&src.image);
    sys.loops
        .change_backing(number, &file)
        .map_err(|e| AttachError::sys(format!("moving loop device {number} onto {file:?}"), e))
}

/// The whole fallback attach; on any failure everything created so far is removed.
pub fn attach(
    sys: &AttachSys,
    src: &RbdSource,
    mons: &[SocketAddr],
    dir: &Path,
    tag: String,
) -> Result<Mapped, AttachError> {
    if src.snapshot.is_some() {
        return Err(AttachError::Unsupported(
            "this kernel has no rbd support and rbd-fuse cannot map snapshots".into(),
        ));
    }
    let result = (|| {
        write_conf(dir, src, mons)?;
        probe(sys, dir, src)?;
        let pid = start(sys, dir, src)?;
        match bind_loop_held(sys, dir, src, tag) {
            Ok((dev, hold)) => Ok(Mapped {
                device: dev.device,
                driver: "rbd-fuse",
                read_only: src.read_only,
                backing: Backing::RbdFuse {
                    pid,
                    dir: dir.to_path_buf(),
                    loop_number: dev.number,
                },
                hold,
            }),
            Err(e) => {
                stop(sys, pid, dir);
                Err(e)
            }
        }
    })();
    if result.is_err() {
        let _ = remove_tree(dir);
    }
    result
}
