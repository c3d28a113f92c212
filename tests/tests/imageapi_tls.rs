//! The ImageAPI gateway over TLS (rustls), with certificates made by the `openssl` CLI:
//! server-only TLS (`--tls-certificate`, `--tls-key`), and mutual TLS (`--tls-ca`) where
//! a client without a certificate, or with one from another CA, is refused during the
//! handshake and one signed by the CA gets through. Needs root and openssl.

use imagebus_tests::imageapi::{free_port, Endpoint, ImageApiNode};
use imagebus_tests::rootfs::KernelScratch;
use std::path::{Path, PathBuf};
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl (apt-get install openssl)");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA (`<name>.crt`, `<name>.key`) in `dir`.
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A leaf certificate `<name>.crt`/`<name>.key` signed by CA `ca`, for `usage`
/// (`serverAuth` with a 127.0.0.1 SAN, or `clientAuth`).
fn leaf(dir: &Path, ca: &str, name: &str, usage: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    let ext = format!(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.crt"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn make(dir: &Path) -> Self {
        ca(dir, "ca");
        ca(dir, "other-ca");
        leaf(dir, "ca", "server", "serverAuth");
        leaf(dir, "ca", "client", "clientAuth");
        leaf(dir, "other-ca", "stranger", "clientAuth");
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, f: &str) -> String {
        self.dir.join(f).display().to_string()
    }

    fn endpoint(&self, port: u16, client: Option<&str>) -> Endpoint {
        let mut args = vec!["--cacert".to_string(), self.path("ca.crt")];
        if let Some(c) = client {
            args.extend([
                "--cert".into(),
                self.path(&format!("{c}.crt")),
                "--key".into(),
                self.path(&format!("{c}.key")),
            ]);
        }
        Endpoint {
            base: format!("https://127.0.0.1:{port}/imageapi/v1"),
            args,
        }
    }
}

#[test]
fn tls_without_client_certificates() {
    let scratch = KernelScratch::new("iatls");
    let pki = Pki::make(scratch.path());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (cert, key) = (pki.path("server.crt"), pki.path("server.key"));
    let node = ImageApiNode::start_in(
        scratch,
        &listen,
        &["--tls-certificate", &cert, "--tls-key", &key],
        pki.endpoint(port, None),
    );
    let r = node.api.get("/container");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json, serde_json::json!([]));
    // Plain HTTP on the TLS port gets no ImageAPI answer.
    let plain = Endpoint {
        base: format!("http://127.0.0.1:{port}/imageapi/v1"),
        args: vec![],
    };
    assert_ne!(plain.get("/container").status, 200);
    // A client that does not trust the server's CA refuses it.
    let untrusting = Endpoint {
        base: format!("https://127.0.0.1:{port}/imageapi/v1"),
        args: vec!["--cacert".into(), pki.path("other-ca.crt")],
    };
    let r = untrusting.get("/container");
    assert_eq!(r.status, 0, "{r:?}");
}

#[test]
fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let scratch = KernelScratch::new("iamtls");
    let pki = Pki::make(scratch.path());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (cert, key, ca) = (
        pki.path("server.crt"),
        pki.path("server.key"),
        pki.path("ca.crt"),
    );
    let node = ImageApiNode::start_in(
        scratch,
        &listen,
        &[
            "--tls-certificate",
            &cert,
            "--tls-key",
            &key,
            "--tls-ca",
            &ca,
        ],
        pki.endpoint(port, Some("client")),
    );
    let r = node.api.get("/swagger.json");
    assert_eq!(r.status, 200, "{r:?}");
    for who in [None, Some("stranger")] {
        let r = pki.endpoint(port, who).get("/container");
        assert_eq!(r.status, 0, "{who:?} got an answer: {r:?}");
        assert!(!r.stderr.is_empty(), "{r:?}");
    }
    assert!(node.daemon.log().contains("TLS handshake failed"));
}

#[test]
fn bad_tls_flags_stop_the_daemon_with_a_message() {
    let scratch = KernelScratch::new("iabadtls");
    let redis = imagebus_tests::redis::RedisFixture::start();
    let missing = scratch.path().join("missing.crt").display().to_string();
    let mut d = imagebus_tests::daemon::Daemon::spawn_in(
        scratch.path(),
        Some(&redis.url()),
        &[
            "--imageapi",
            &format!("127.0.0.1:{}", free_port()),
            "--tls-certificate",
            &missing,
            "--tls-key",
            &missing,
        ],
    );
    let (status, _) = d
        .wait_exit(std::time::Duration::from_secs(30))
        .expect("imagebusd exits");
    assert!(!status.success());
    assert!(d.log().contains("TLS"), "{}", d.log());
}
