//! A running `imagebusd --imageapi` (private redis on a unix socket, directories under a
//! [`KernelScratch`]) driven with the real `curl` binary, as an ImageAPI user would.
//! Everything is cleaned on drop, passed or failed: containers force-deleted, the daemon
//! stopped, leftover mounts and loop devices swept.

use crate::daemon::{wait_until, Daemon};
use crate::redis::RedisFixture;
use crate::rootfs::KernelScratch;
use serde_json::Value;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A free TCP port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A curl answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status (0: no HTTP answer; see `stderr`).
    pub status: u16,
    /// The body as JSON (`Null` when empty or not JSON).
    pub json: Value,
    /// The body as text.
    pub text: String,
    /// curl's stderr.
    pub stderr: String,
}

/// How curl reaches the gateway.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `http://127.0.0.1:PORT/imageapi/v1` (or https, or http://localhost with a socket).
    pub base: String,
    /// Extra curl arguments (`--unix-socket`, `--cacert`, `--cert`, `--key`).
    pub args: Vec<String>,
}

impl Endpoint {
    /// Runs `curl -X method base+path` with `body` on stdin (never in argv: it may hold a key).
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "150", "-X", method])
            .args(&self.args)
            .args(["-w", "\n%{http_code}"]);
        if body.is_some() {
            cmd.args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                "@-",
            ]);
        }
        cmd.arg(format!("{}{}", self.base, path))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("running curl (apt-get install curl)");
        if let Some(b) = body {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(b.as_bytes())
                .expect("writing the body to curl");
        } else {
            drop(child.stdin.take());
        }
        let out = child.wait_with_output().expect("curl output");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let (text, code) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
        Reply {
            status: code.trim().parse().unwrap_or(0),
            json: serde_json::from_str(text).unwrap_or(Value::Null),
            text: text.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `GET`.
    pub fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None)
    }

    /// `POST` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.call("POST", path, Some(&body.to_string()))
    }

    /// `DELETE`.
    pub fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, None)
    }

    /// Calls and asserts the status, returning the JSON.
    pub fn expect(&self, method: &str, path: &str, body: Option<&Value>, status: u16) -> Value {
        let b = body.map(Value::to_string);
        let r = self.call(method, path, b.as_deref());
        assert_eq!(
            r.status,
            status,
            "{method} {path} {}: expected {status}, got {r:?}",
            b.unwrap_or_default()
        );
        r.json
    }
}

/// Asserts ImageAPI's error body with `code` and a message containing `needle`.
pub fn assert_error(r: &Reply, code: u16, needle: &str) {
    assert_eq!(r.status, code, "{r:?}");
    assert_eq!(r.json["code"], u64::from(code), "{r:?}");
    let msg = r.json["message"].as_str().unwrap_or_default();
    assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
}

/// A node with the gateway on.
#[derive(Debug)]
pub struct ImageApiNode {
    /// The daemon (dropped before the scratch directory).
    pub daemon: Daemon,
    /// The private broker.
    pub redis: RedisFixture,
    /// How to reach the gateway.
    pub api: Endpoint,
    /// Scratch directory: daemon dirs, images, certificates.
    pub scratch: KernelScratch,
}

impl ImageApiNode {
    /// Starts `imagebusd --imageapi 127.0.0.1:<free port> <extra>` (plain HTTP).
    pub fn start(prefix: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let api = Endpoint {
            base: format!("http://{addr}/imageapi/v1"),
            args: vec![],
        };
        Self::start_with(prefix, &addr, extra, api)
    }

    /// Starts with `--imageapi listen` and reaches it through `api`.
    pub fn start_with(prefix: &str, listen: &str, extra: &[&str], api: Endpoint) -> Self {
        let scratch = KernelScratch::new(prefix);
        Self::start_in(scratch, listen, extra, api)
    }

    /// [`ImageApiNode::start_with`] in an existing scratch directory (for certificates).
    pub fn start_in(scratch: KernelScratch, listen: &str, extra: &[&str], api: Endpoint) -> Self {
        let redis = RedisFixture::start();
        let mut args = vec!["--imageapi", listen];
        args.extend_from_slice(extra);
        let daemon = Daemon::spawn_in(scratch.path(), Some(&redis.url()), &args);
        daemon.wait_ready();
        let node = Self {
            daemon,
            redis,
            api,
            scratch,
        };
        let up = wait_until(Duration::from_secs(20), || {
            node.api.get("/swagger.json").status == 200
        });
        assert!(
            up,
            "the gateway did not answer; log:\n{}",
            node.daemon.log()
        );
        node
    }

    /// The scratch directory.
    pub fn dir(&self) -> &Path {
        self.scratch.path()
    }

    /// A copy of the shared busybox squashfs in the scratch directory.
    pub fn busybox_image(&self, name: &str) -> PathBuf {
        let p = self.dir().join(name);
        std::fs::copy(crate::image::busybox_squashfs(), &p).expect("copying the busybox image");
        p
    }

    /// Asserts that nothing is mounted or loop-attached below the scratch directory.
    pub fn assert_kernel_clean(&self) {
        let mounts = crate::rootfs::mounts_under(self.dir());
        assert!(mounts.is_empty(), "mounts left: {mounts:?}");
        let loops = crate::rootfs::loops_under(self.dir());
        assert!(loops.is_empty(), "loop devices left: {loops:?}");
    }

    /// Asserts that the gateway lists no attachment, mount or container.
    pub fn assert_empty(&self) {
        for p in ["/attach", "/mount", "/container"] {
            let v = self.api.expect("GET", p, None, 200);
            assert_eq!(v, Value::Array(vec![]), "{p} is not empty");
        }
    }
}

/// A busybox squashfs whose `/usr/lib/systemd/systemd` is a stand-in init: it checks the
/// systemd-mode environment, says `booted`, and exits 0 on SIGRTMIN+3 (signal 37).
pub fn stand_in_systemd_image(work: &Path, name: &str) -> PathBuf {
    let root = work.join(format!("{name}.d"));
    crate::image::busybox_rootfs(&root);
    let init = "#!/bin/sh\n\
        [ \"$container\" = imagebus ] || { echo no-container-env; exit 3; }\n\
        grep -q ' /run tmpfs ' /proc/mounts || { echo no-run-tmpfs; exit 4; }\n\
        trap 'echo got-rtmin3; exit 0' 37\n\
        echo booted\n\
        while :; do sleep 1 & wait $!; done\n";
    let p = root.join("usr/lib/systemd/systemd");
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, init).expect("writing the stand-in init");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let image = work.join(format!("{name}.sqsh"));
    crate::image::mksquashfs(&root, &image);
    image
}

impl Drop for ImageApiNode {
    fn drop(&mut self) {
        // Containers by REST first (force), so a failed test leaves nothing running.
        let list = self.api.get("/container");
        if let Some(arr) = list.json.as_array() {
            for c in arr {
                if let Some(id) = c["id"].as_i64() {
                    let _ = self.api.delete(&format!("/container?id={id}&force=true"));
                }
            }
        }
    }
}
