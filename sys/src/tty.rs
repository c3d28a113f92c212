//! Terminals: raw mode on the local terminal (restored when the guard drops) and window
//! sizes, for the CLI's interactive sessions and the session helper's resizes.

use nix::sys::termios::{self, SetArg, Termios};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

mod ioctls {
    nix::ioctl_read_bad!(tiocgwinsz, libc::TIOCGWINSZ, libc::winsize);
    nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, libc::winsize);
}
use ioctls::{tiocgwinsz, tiocswinsz};

/// The size of terminal `fd` as (rows, cols); `None` when it is not a terminal.
pub fn window_size(fd: impl AsFd) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws`, which lives for the call.
    unsafe { tiocgwinsz(fd.as_fd().as_raw_fd(), &mut ws) }.ok()?;
    Some((ws.ws_row, ws.ws_col))
}

/// Sets the size of terminal `fd` (a pty master: the kernel signals SIGWINCH to the
/// slave's foreground process group).
pub fn set_window_size(fd: impl AsFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from `ws`, which lives for the call.
    unsafe { tiocswinsz(fd.as_fd().as_raw_fd(), &ws) }?;
    Ok(())
}

/// The local terminal in raw mode (no echo, no line editing, no signals from keys: Ctrl-C
/// and Ctrl-D go to the remote side as bytes) until dropped, when the saved settings come
/// back.
#[derive(Debug)]
pub struct RawMode {
    fd: i32,
    saved: Termios,
}

impl RawMode {
    /// Puts terminal `fd` in raw mode.
    pub fn enter(fd: BorrowedFd<'_>) -> io::Result<Self> {
        let saved = termios::tcgetattr(fd)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw)?;
        Ok(Self {
            fd: fd.as_raw_fd(),
            saved,
        })
    }

    /// Restores the saved settings now (also done on drop).
    pub fn restore(&self) {
        // SAFETY: the descriptor is one of the process's standard ones, open for its life.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(fd, SetArg::TCSADRAIN, &self.saved);
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        self.restore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_raw_mode_on_a_pty() {
        let pty = nix::pty::openpty(None, None).unwrap();
        set_window_size(&pty.master, 33, 101).unwrap();
        assert_eq!(window_size(&pty.slave), Some((33, 101)));
        let before = termios::tcgetattr(&pty.slave).unwrap();
        {
            let _raw = RawMode::enter(pty.slave.as_fd()).unwrap();
            let now = termios::tcgetattr(&pty.slave).unwrap();
            assert!(!now.local_flags.contains(termios::LocalFlags::ECHO));
            assert!(!now.local_flags.contains(termios::LocalFlags::ISIG));
        }
        let after = termios::tcgetattr(&pty.slave).unwrap();
        assert_eq!(before.local_flags, after.local_flags);
        let f = tempfile::tempfile().unwrap();
        assert_eq!(window_size(&f), None);
    }
}
