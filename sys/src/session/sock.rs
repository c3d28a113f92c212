//! The unix sockets of a session: the stream socket (one connection, from the allowed uid
//! or root, within a deadline) and the console socket on which the runtime sends a
//! terminal's master (`SCM_RIGHTS`).

use nix::sys::socket::{getsockopt, recvmsg, sockopt, ControlMessageOwned, MsgFlags};
use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// Binds a listening socket at `path`, mode 0600, owned by `uid` (its group unchanged).
pub fn listen_private(path: &Path, uid: u32) -> io::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    if uid != 0 {
        std::os::unix::fs::chown(path, Some(uid), None)?;
    }
    Ok(l)
}

/// The uid of the process at the other end of `s` (`SO_PEERCRED`).
pub fn peer_uid(s: &impl AsFd) -> io::Result<u32> {
    Ok(getsockopt(s, sockopt::PeerCredentials)?.uid())
}

/// Whether `peer` may use a session opened for `allowed`: root or that uid.
pub fn peer_allowed(peer: u32, allowed: u32) -> bool {
    peer == 0 || peer == allowed
}

/// Waits until `fd` is readable or `timeout` passes; true when readable.
pub fn wait_readable(fd: &impl AsFd, timeout: Duration) -> io::Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(n) => Ok(n > 0),
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Accepts the first connection from `allowed` (or root) before `deadline`. Connections
/// from anyone else are closed at once (and logged through `refused`) and do not use the
/// one chance. Errors: `TimedOut` at the deadline.
pub fn accept_from(
    l: &UnixListener,
    allowed: u32,
    deadline: Instant,
    refused: &mut dyn FnMut(u32),
) -> io::Result<UnixStream> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "nobody connected to the session socket in time",
            ));
        }
        if !wait_readable(l, left.min(Duration::from_millis(500)))? {
            continue;
        }
        let (s, _) = l.accept()?;
        let uid = peer_uid(&s)?;
        if peer_allowed(uid, allowed) {
            return Ok(s);
        }
        refused(uid);
    }
}

/// Receives one file descriptor sent with `SCM_RIGHTS` on `s` (what runc sends on its
/// `--console-socket`: the terminal's master).
pub fn recv_fd(s: &UnixStream) -> io::Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = recvmsg::<()>(
        s.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut got: Option<OwnedFd> = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel just installed `fd` in this process for us; nothing
                // else owns it.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                if got.is_none() {
                    got = Some(owned);
                }
            }
        }
    }
    got.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no descriptor received"))
}

/// For tests and diagnostics: connects to `path` as `uid` from a child process and reads: exit status 0 when the
/// socket was closed on it (EOF), 1 when the connect failed, 2 when data came.
pub fn connect_as(uid: u32, path: &Path) -> io::Result<i32> {
    use std::os::unix::process::CommandExt;
    let addr = nix::sys::socket::UnixAddr::new(path)?;
    let mut cmd = std::process::Command::new("/bin/true");
    // SAFETY: only async-signal-safe calls (setresuid, socket, connect, read, _exit)
    // run in the forked child, on values prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let code = if libc::setresgid(uid, uid, uid) != 0 || libc::setresuid(uid, uid, uid) != 0
            {
                3
            } else {
                let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                let sa = nix::sys::socket::SockaddrLike::as_ptr(&addr);
                let len = nix::sys::socket::SockaddrLike::len(&addr);
                if libc::connect(fd, sa, len) != 0 {
                    1
                } else {
                    let mut b = [0u8; 8];
                    if libc::read(fd, b.as_mut_ptr().cast(), 8) == 0 {
                        0
                    } else {
                        2
                    }
                }
            };
            libc::_exit(code)
        });
    }
    Ok(cmd.status()?.code().unwrap_or(-1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{sendmsg, ControlMessage};
    use std::io::{IoSlice, Read, Write};

    #[test]
    fn a_descriptor_passes_over_a_socket() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut r, mut w) = UnixStream::pair().unwrap();
        let fds = [w.as_raw_fd()];
        sendmsg::<()>(
            a.as_raw_fd(),
            &[IoSlice::new(b"x")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        let got = recv_fd(&b).unwrap();
        let mut got = std::fs::File::from(got);
        got.write_all(b"hi").unwrap();
        drop(got);
        w.write_all(b"!").unwrap();
        drop(w);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hi!");
    }

    #[test]
    fn only_root_or_the_allowed_uid_is_accepted_and_others_do_not_use_the_chance() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("s.sock");
        let l = listen_private(&path, 0).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Open the socket file so that uid 65534 can reach it: only SO_PEERCRED stops it.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
        let p = path.clone();
        let other = std::thread::spawn(move || connect_as(65534, &p).unwrap());
        let mut refused = Vec::new();
        // uid 65534 connects first: refused (closed at once), and the wait goes on.
        let first = accept_from(
            &l,
            1234,
            Instant::now() + Duration::from_secs(2),
            &mut |u| refused.push(u),
        );
        assert!(first.is_err(), "only the refused uid connected");
        assert_eq!(refused, vec![65534]);
        assert_eq!(
            other.join().unwrap(),
            0,
            "the refused peer was connected, then closed"
        );
        let p = path.clone();
        let t = std::thread::spawn(move || UnixStream::connect(p).unwrap());
        let s = accept_from(
            &l,
            1234,
            Instant::now() + Duration::from_secs(5),
            &mut |_| {},
        )
        .unwrap();
        assert!(peer_allowed(peer_uid(&s).unwrap(), 1234));
        drop(t.join().unwrap());
        assert!(!peer_allowed(65534, 1234));
        assert!(peer_allowed(1234, 1234));
    }
}
