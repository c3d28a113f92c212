//! zos's `MountInfo.Type`/`Options` and `RootFsPropagation`, honoured or refused.
//!
//! A mount without type and options is what zos does today: an rbind with private
//! propagation, read-write ([`BindSpec`]). One with them (zos's `MountInfo` had `Type` and
//! `Options` until 2019-11, and older callers still send them) becomes an OCI bind mount in
//! the spec's `oci` document with exactly those options, checked here first: a type other
//! than `bind`/`rbind`, or an option outside [`ZOS_MOUNT_OPTIONS`], is `InvalidArgument`
//! naming it, so that a tenant who asks for `ro` never silently gets a writable mount.
//! `RootFsPropagation` goes to the document's `linux.rootfsPropagation`.

use imagebus_bus::RemoteError;
use imagebus_schema::container::{BindSpec, OciConfig};
use imagebus_schema::zos::ZosMountInfo;
use serde_json::{json, Map, Value};

/// The options a zos mount may carry: recursion, read-only, propagation, and the
/// per-mount flags a bind can change.
pub const ZOS_MOUNT_OPTIONS: [&str; 20] = [
    "bind",
    "rbind",
    "ro",
    "rw",
    "private",
    "rprivate",
    "slave",
    "rslave",
    "shared",
    "rshared",
    "unbindable",
    "runbindable",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "noatime",
    "relatime",
];

/// The values `RootFsPropagation` may take (zos's list).
pub const ZOS_ROOTFS_PROPAGATION: [&str; 6] = [
    "private", "rprivate", "slave", "rslave", "shared", "rshared",
];

/// Every propagation a mount may have: the values the spec's `linux.rootfsPropagation`
/// takes, which are the mount propagation flags.
const PROPAGATION: [&str; 8] = imagebus_sys::oci::overlay::ROOTFS_PROPAGATION;

/// The mounts of a zos container: the plain ones as binds, the others as OCI mounts for
/// the `oci` document (both in the caller's order within their kind).
pub fn split_mounts(mounts: &[ZosMountInfo]) -> Result<(Vec<BindSpec>, Vec<Value>), RemoteError> {
    let mut binds = Vec::new();
    let mut oci = Vec::new();
    for m in mounts {
        if m.typ.is_empty() && m.options.is_empty() {
            binds.push(BindSpec {
                source: m.source.clone().into(),
                target: m.target.clone().into(),
                read_only: false,
            });
            continue;
        }
        oci.push(oci_mount(m)?);
    }
    Ok((binds, oci))
}

fn oci_mount(m: &ZosMountInfo) -> Result<Value, RemoteError> {
    let invalid = |what: String| {
        RemoteError::invalid_argument(format!("mount {:?}: {what}", imagebus_bus::echo(&m.target)))
    };
    if !matches!(m.typ.as_str(), "" | "bind" | "rbind") {
        return Err(invalid(format!(
            "type {:?} is not supported (only bind mounts)",
            imagebus_bus::echo(&m.typ)
        )));
    }
    if let Some(bad) = m
        .options
        .iter()
        .find(|o| !ZOS_MOUNT_OPTIONS.contains(&o.as_str()))
    {
        return Err(invalid(format!(
            "option {:?} is not supported (supported: {})",
            imagebus_bus::echo(bad),
            ZOS_MOUNT_OPTIONS.join(", ")
        )));
    }
    let has = |o: &str| m.options.iter().any(|x| x == o);
    if has("ro") && has("rw") {
        return Err(invalid("options ro and rw together".into()));
    }
    if m.options
        .iter()
        .filter(|o| PROPAGATION.contains(&o.as_str()))
        .count()
        > 1
    {
        return Err(invalid("more than one propagation option".into()));
    }
    // Recursive unless `bind` (or type `bind` without `rbind`) asks for one level only,
    // and private unless a propagation is given: zos's defaults.
    let mut options: Vec<String> = Vec::new();
    let single = has("bind") || (m.typ == "bind" && !has("rbind"));
    options.push(if single { "bind" } else { "rbind" }.into());
    if !m.options.iter().any(|o| PROPAGATION.contains(&o.as_str())) {
        options.push("rprivate".into());
    }
    options.extend(
        m.options
            .iter()
            .filter(|o| !matches!(o.as_str(), "bind" | "rbind"))
            .cloned(),
    );
    Ok(json!({
        "destination": m.target,
        "type": "bind",
        "source": m.source,
        "options": options,
    }))
}

/// The `oci` document carrying `mounts` and `propagation` (`None` when there is neither).
pub fn oci_document(
    mounts: Vec<Value>,
    propagation: &str,
) -> Result<Option<OciConfig>, RemoteError> {
    let mut doc = Map::new();
    if !propagation.is_empty() {
        if !ZOS_ROOTFS_PROPAGATION.contains(&propagation) {
            return Err(RemoteError::invalid_argument(format!(
                "RootFsPropagation {:?} is not one of {}",
                imagebus_bus::echo(propagation),
                ZOS_ROOTFS_PROPAGATION.join(", ")
            )));
        }
        doc.insert("linux".into(), json!({"rootfsPropagation": propagation}));
    }
    if !mounts.is_empty() {
        doc.insert("mounts".into(), Value::Array(mounts));
    }
    Ok((!doc.is_empty()).then_some(OciConfig(doc)))
}

/// The zos mounts and propagation back from a spec's `oci` document.
pub fn from_document(oci: Option<&OciConfig>) -> (Vec<ZosMountInfo>, String) {
    let Some(doc) = oci else {
        return (Vec::new(), String::new());
    };
    let mounts = doc
        .0
        .get("mounts")
        .and_then(Value::as_array)
        .map(|ms| {
            ms.iter()
                .filter(|m| m.get("type").and_then(Value::as_str) == Some("bind"))
                .map(|m| ZosMountInfo {
                    source: str_of(m, "source"),
                    target: str_of(m, "destination"),
                    typ: "bind".into(),
                    options: m
                        .get("options")
                        .and_then(Value::as_array)
                        .map(|o| {
                            o.iter()
                                .filter_map(|x| x.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let propagation = doc
        .0
        .get("linux")
        .and_then(|l| l.get("rootfsPropagation"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    (mounts, propagation)
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(typ: &str, options: &[&str]) -> ZosMountInfo {
        ZosMountInfo {
            source: "/srv/data".into(),
            target: "/data".into(),
            typ: typ.into(),
            options: options.iter().map(|o| o.to_string()).collect(),
        }
    }

    #[test]
    fn plain_mounts_stay_binds_and_options_become_oci_mounts() {
        let (binds, oci) = split_mounts(&[mount("", &[]), mount("bind", &["ro"])]).unwrap();
        assert_eq!(binds.len(), 1);
        assert!(!binds[0].read_only);
        assert_eq!(
            oci,
            vec![
                json!({"destination": "/data", "type": "bind", "source": "/srv/data",
                        "options": ["bind", "rprivate", "ro"]})
            ]
        );
        let (_, oci) = split_mounts(&[mount("", &["rbind", "rslave", "nosuid"])]).unwrap();
        assert_eq!(oci[0]["options"], json!(["rbind", "rslave", "nosuid"]));
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_by_name() {
        for (m, needle) in [
            (mount("tmpfs", &[]), "type \"tmpfs\""),
            (mount("", &["size=10m"]), "option \"size=10m\""),
            (mount("", &["ro", "rw"]), "ro and rw"),
            (mount("", &["shared", "slave"]), "propagation"),
        ] {
            let e = split_mounts(&[m]).unwrap_err();
            assert_eq!(e.code, imagebus_bus::ErrorCode::InvalidArgument);
            assert!(e.message.contains(needle), "{e}");
        }
        let e = oci_document(Vec::new(), "rwhatever").unwrap_err();
        assert!(e.message.contains("RootFsPropagation"), "{e}");
    }

    /// docs/container.md lists every accepted option and propagation.
    #[test]
    fn container_md_lists_the_zos_mount_options_and_propagations() {
        let md = include_str!("../../../docs/container.md");
        let start = md.find("## zos compatibility").unwrap();
        let section = &md[start..];
        let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
        for o in ZOS_MOUNT_OPTIONS
            .iter()
            .chain(ZOS_ROOTFS_PROPAGATION.iter())
        {
            assert!(
                section.contains(&format!("`{o}`")),
                "docs/container.md's zos section does not list `{o}`"
            );
        }
    }

    #[test]
    fn the_document_round_trips_to_zos_fields() {
        let (_, oci) = split_mounts(&[mount("bind", &["ro"])]).unwrap();
        let doc = oci_document(oci, "rslave").unwrap().unwrap();
        let (mounts, propagation) = from_document(Some(&doc));
        assert_eq!(propagation, "rslave");
        assert_eq!(mounts[0].options, ["bind", "rprivate", "ro"]);
        assert_eq!(oci_document(Vec::new(), "").unwrap(), None);
    }
}
