//! `rbd`: a Ceph RBD image. The kernel path (krbd through `/sys/bus/rbd`, the secret in the
//! kernel keyring) when this kernel has rbd; otherwise, automatically, rbd-fuse plus a
//! loop device ([`super::rbd_fuse`]). The chosen driver is recorded and reported.

use super::{rbd_fuse, Mapped};
use crate::config::AttachSys;
use crate::error::AttachError;
use crate::store::Backing;
use imagebus_schema::attach::RbdSource;
use imagebus_sys::rbd::{decode_base64, RbdMap};
use imagebus_sys::SysError;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// Default monitor port (msgr v1).
pub const DEFAULT_MON_PORT: u16 = 6789;

/// `pool/[namespace/]image[@snapshot]`, for messages and conflict checks.
pub fn image_spec(src: &RbdSource) -> String {
    let mut s = src.pool.clone();
    if let Some(ns) = &src.namespace {
        s.push('/');
        s.push_str(ns);
    }
    s.push('/');
    s.push_str(&src.image);
    if let Some(snap) = &src.snapshot {
        s.push('@');
        s.push_str(snap);
    }
    s
}

fn check_token(what: &str, value: &str) -> Result<(), AttachError> {
    let bad = value.is_empty()
        || value.len() > 255
        || value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "/@,=:\\\"'".contains(c));
    if bad {
        return Err(AttachError::Invalid(format!(
            "{what} {value:?} must be 1-255 characters without whitespace or / @ , = : \\ quotes"
        )));
    }
    Ok(())
}

/// Parses one monitor address (`ip` or `ip:port`, IPv6 as `[ip]:port`).
pub fn parse_monitor(m: &str) -> Result<SocketAddr, AttachError> {
    if let Ok(sa) = m.parse::<SocketAddr>() {
        return Ok(sa);
    }
    let ip = m.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, DEFAULT_MON_PORT))
        .map_err(|_| {
            AttachError::Invalid(format!(
                "monitor {m:?} is not an address of the form ip[:port]"
            ))
        })
}

/// Checks every field before anything is touched. The secret must be base64.
pub fn validate(src: &RbdSource) -> Result<Vec<SocketAddr>, AttachError> {
    if src.monitors.is_empty() {
        return Err(AttachError::Invalid(
            "at least one monitor is required".into(),
        ));
    }
    let mons = src
        .monitors
        .iter()
        .map(|m| parse_monitor(m))
        .collect::<Result<Vec<_>, _>>()?;
    check_token("pool", &src.pool)?;
    check_token("image", &src.image)?;
    check_token("user", &src.user)?;
    if src.user.starts_with("client.") {
        return Err(AttachError::Invalid(
            "user must be given without the \"client.\" prefix".into(),
        ));
    }
    if let Some(s) = &src.snapshot {
        check_token("snapshot", s)?;
    }
    if let Some(ns) = &src.namespace {
        check_token("namespace", ns)?;
    }
    if src.shared && !src.read_only {
        return Err(AttachError::Invalid("shared use requires read_only".into()));
    }
    if src.snapshot.is_some() && !src.read_only {
        return Err(AttachError::Invalid(
            "a snapshot can only be mapped read-only".into(),
        ));
    }
    if decode_base64(src.secret.expose()).is_err() {
        return Err(AttachError::Invalid(
            "secret is not a base64 cephx key".into(),
        ));
    }
    Ok(mons)
}

/// Maps the image with krbd when available, else with rbd-fuse + loop.
pub fn attach(
    sys: &AttachSys,
    src: &RbdSource,
    key_name: String,
    dir: &Path,
    tag: String,
) -> Result<Mapped, AttachError> {
    let mons = validate(src)?;
    if sys.rbd.available() {
        attach_krbd(sys, src, &mons, key_name)
    } else {
        rbd_fuse::attach(sys, src, &mons, dir, tag)
    }
}

fn attach_krbd(
    sys: &AttachSys,
    src: &RbdSource,
    mons: &[SocketAddr],
    key_name: String,
) -> Result<Mapped, AttachError> {
    let req = RbdMap {
        monitors: mons.iter().map(ToString::to_string).collect(),
        pool: src.pool.clone(),
        image: src.image.clone(),
        snapshot: src.snapshot.clone(),
        namespace: src.namespace.clone(),
        user: src.user.clone(),
        read_only: src.read_only,
        key_name,
    };
    let dev = sys
        .rbd
        .map(&req, src.secret.expose())
        .map_err(|e| krbd_error(e, &image_spec(src), &src.user))?;
    Ok(Mapped {
        device: dev.device,
        driver: "krbd",
        read_only: src.read_only || src.snapshot.is_some(),
        backing: Backing::Krbd {
            id: dev.id,
            pool: dev.pool,
            image: dev.image,
            snapshot: dev.snapshot,
        },
        hold: imagebus_sys::loopdev::LoopHold::none(),
    })
}

// Linux errno values the kernel returns from an rbd add.
const ENOENT: i32 = 2;
const EPERM: i32 = 1;
const EACCES: i32 = 13;
const EKEYREJECTED: i32 = 129;
const ETIMEDOUT: i32 = 110;
const ECONNREFUSED: i32 = 111;
const EHOSTUNREACH: i32 = 113;

fn krbd_error(e: SysError, spec: &str, user: &str) -> AttachError {
    match e.errno() {
        Some(ENOENT) => AttachError::ImageNotFound(spec.to_string()),
        Some(EPERM | EACCES | EKEYREJECTED) => AttachError::AccessDenied(format!(
            "the cluster rejected client.{user} (wrong secret or missing caps)"
        )),
        Some(ETIMEDOUT | ECONNREFUSED | EHOSTUNREACH) => {
            AttachError::Unavailable(format!("Ceph monitors unreachable while mapping {spec}"))
        }
        _ => AttachError::sys(format!("mapping {spec} through /sys/bus/rbd"), e),
    }
}

/// Unmaps a krbd device (`force`: even while open).
pub fn detach_krbd(sys: &AttachSys, id: u32, force: bool) -> Result<(), AttachError> {
    sys.rbd
        .unmap(id, force)
        .map_err(|e| AttachError::sys(format!("unmapping /dev/rbd{id}"), e))
}

/// Whether krbd device `id` still maps the recorded image.
pub fn krbd_present(sys: &AttachSys, id: u32, pool: &str, image: &str, snapshot: &str) -> bool {
    sys.rbd.list().is_ok_and(|l| {
        l.iter()
            .any(|d| d.id == id && d.pool == pool && d.image == image && d.snapshot == snapshot)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagebus_schema::attach::Secret;

    pub(crate) fn source() -> RbdSource {
        RbdSource {
            monitors: vec!["127.0.0.1:16789".into()],
            pool: "rbd".into(),
            image: "img".into(),
            snapshot: None,
            namespace: None,
            user: "u".into(),
            secret: Secret::new("aGVsbG8="),
            read_only: true,
            shared: false,
        }
    }

    #[test]
    fn validation() {
        assert!(validate(&source()).is_ok());
        let bad = |f: fn(&mut RbdSource)| {
            let mut s = source();
            f(&mut s);
            validate(&s).unwrap_err()
        };
        assert!(matches!(
            bad(|s| s.monitors.clear()),
            AttachError::Invalid(_)
        ));
        assert!(matches!(
            bad(|s| s.monitors = vec!["host name".into()]),
            AttachError::Invalid(_)
        ));
        assert!(matches!(
            bad(|s| s.pool = "a b".into()),
            AttachError::Invalid(_)
        ));
        assert!(matches!(
            bad(|s| s.image = "x,y".into()),
            AttachError::Invalid(_)
        ));
        assert!(matches!(
            bad(|s| s.user = "client.u".into()),
            AttachError::Invalid(_)
        ));
        assert!(matches!(
            bad(|s| s.secret = Secret::new("not base64!")),
            AttachError::Invalid(_)
        ));
        assert!(matches!(
            bad(|s| {
                s.shared = true;
                s.read_only = false
            }),
            AttachError::Invalid(_)
        ));
        assert_eq!(parse_monitor("10.0.0.1").unwrap().port(), 6789);
        assert_eq!(parse_monitor("[::1]:3300").unwrap().port(), 3300);
    }

    #[test]
    fn spec_text() {
        let mut s = source();
        s.namespace = Some("ns".into());
        s.snapshot = Some("s1".into());
        assert_eq!(image_spec(&s), "rbd/ns/img@s1");
    }
}
