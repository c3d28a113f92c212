//! A Ceph monitor that hangs: a TCP listener on 127.0.0.1 that accepts connections, reads
//! and discards what clients send, and never answers. librados (`rbd info`, rbd-fuse) and
//! krbd wait on it until their own mount timeout. Also: RBD specs that point at it, and a
//! valid-format cephx key from `ceph-authtool --gen-print-key`.

use imagebus_schema::attach::{AttachRef, AttachSource, AttachSpec, RbdSource, Secret};
use imagebus_schema::mount::{ImageMount, MountRef, MountSource, MountSpec};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// See the module docs. Dropping it closes every connection and stops the listener.
#[derive(Debug)]
pub struct BlackHole {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl BlackHole {
    /// Listens on a free port of 127.0.0.1.
    pub fn start() -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("black hole bind");
        let addr = listener.local_addr().expect("black hole address");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (st, acc) = (stop.clone(), accepted.clone());
        let thread = std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                acc.fetch_add(1, Ordering::SeqCst);
                // Drain what the client sends (so it never blocks on a full buffer) and
                // say nothing; the connection closes when either side gives up.
                if let Ok(mut reader) = conn.try_clone() {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 4096];
                        while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
                    });
                }
                held.push(conn);
            }
            for c in held {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        });
        Self {
            addr,
            stop,
            accepted,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:<port>`, as a monitor address.
    pub fn monitor(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A fresh cephx key (`ceph-authtool --gen-print-key`); fails with the package to install.
pub fn cephx_key() -> String {
    let out = Command::new("ceph-authtool")
        .arg("--gen-print-key")
        .output()
        .unwrap_or_else(|e| panic!("running ceph-authtool ({e}): apt-get install ceph-common"));
    assert!(
        out.status.success(),
        "ceph-authtool --gen-print-key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Fails with the package to install unless the `rbd` tool (used by the rbd-fuse path's
/// probe) is there.
pub fn require_rbd_tools() {
    let ok = Command::new("rbd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "the rbd tool is missing: apt-get install ceph-common");
}

/// An RBD attachment of `pool/image` through `monitor` with `key` (read-only).
pub fn rbd_spec(monitor: &str, image: &str, key: &str) -> AttachSpec {
    AttachSpec {
        name: None,
        source: AttachSource::Rbd(RbdSource {
            monitors: vec![monitor.to_string()],
            pool: "rbd".into(),
            image: image.into(),
            snapshot: None,
            namespace: None,
            user: "hang".into(),
            secret: Secret::new(key),
            read_only: true,
            shared: false,
        }),
    }
}

/// overlay → image mount (squashfs) → RBD attachment through `monitor`, all inline.
pub fn overlay_on_rbd(monitor: &str, image: &str, key: &str) -> MountRef {
    use crate::mount_stack::{inline, overlay};
    inline(overlay(vec![inline(MountSpec {
        name: None,
        source: MountSource::Image(ImageMount {
            attach: AttachRef::Inline(Box::new(rbd_spec(monitor, image, key))),
            fs_type: Some("squashfs".into()),
            options: vec![],
            read_only: true,
        }),
    })]))
}
