//! Our objects (`AttachInfo`, `MountInfo`, `ContainerInfo`) → ImageAPI's JSON objects.
//! Secrets are never rendered: an RBD key is always `"<redacted>"`.

use crate::model::{
    Attach, AttachKind, AttachLocal, AttachLoopback, AttachRbd, Base, Container, ContainerState,
    Lower, Mount, MountAttach, MountBind, MountKind, MountOverlay, MountRbd, Rbd, RbdOptions,
};
use crate::translate::{api_id, mount_kind};
use imagebus_schema::attach::{AttachInfo, AttachSource, RbdSource, Secret};
use imagebus_schema::container::{CommandLine, ContainerInfo, ContainerState as OurState};
use imagebus_schema::mount::MountInfo;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn refs(n: usize) -> Option<i64> {
    Some(i64::try_from(n).unwrap_or(i64::MAX))
}

fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The krbd device number of `/dev/rbdN`.
fn rbd_device_id(device: &Path) -> Option<i64> {
    device
        .file_name()?
        .to_str()?
        .strip_prefix("rbd")?
        .parse()
        .ok()
}

fn rbd_options(r: &RbdSource, read_only: bool) -> RbdOptions {
    RbdOptions {
        ro: Some(read_only),
        name: Some(r.user.clone()),
        secret: Some(Secret::REDACTED.to_string()),
        namespace: r.namespace.clone(),
        ..RbdOptions::default()
    }
}

/// An attachment as a v0.2 `attach`.
pub fn attach(a: &AttachInfo) -> Attach {
    let mut out = Attach {
        id: Some(api_id(a.id)),
        device_file: Some(path_string(&a.device)),
        refs: refs(a.refs()),
        ..Attach::default()
    };
    match &a.source {
        AttachSource::Rbd(r) => {
            out.kind = Some(AttachKind::Rbd);
            out.rbd = Some(AttachRbd {
                monitors: r.monitors.clone(),
                pool: r.pool.clone(),
                image: r.image.clone(),
                snapshot: r.snapshot.clone(),
                device_id: rbd_device_id(&a.device),
                options: Some(rbd_options(r, a.read_only)),
            });
        }
        AttachSource::Loop(l) => {
            out.kind = Some(AttachKind::Loopback);
            out.loopback = Some(AttachLoopback {
                path: path_string(&l.path),
                base: Base::Root,
                mount: None,
                read_partitions: None,
            });
        }
        AttachSource::Local(l) => {
            out.kind = Some(AttachKind::Local);
            out.local = Some(AttachLocal {
                path: path_string(&l.path),
            });
        }
    }
    out
}

/// An RBD attachment as a v0.1 `rbd` (None for other kinds).
pub fn v1_rbd(a: &AttachInfo) -> Option<Rbd> {
    let AttachSource::Rbd(r) = &a.source else {
        return None;
    };
    Some(Rbd {
        id: Some(api_id(a.id)),
        refs: refs(a.refs()),
        device_file: Some(path_string(&a.device)),
        monitors: r.monitors.clone(),
        pool: r.pool.clone(),
        image: r.image.clone(),
        snapshot: r.snapshot.clone(),
        options: Some(rbd_options(r, a.read_only)),
    })
}

/// The mounts of a node by id, to name the kinds of children.
pub type MountIndex = BTreeMap<u64, MountInfo>;

/// `{"id": N, "kind": K}` for mount `id`.
pub fn mount_ref(id: u64, index: &MountIndex) -> Mount {
    Mount {
        id: Some(api_id(id)),
        kind: index.get(&id).map(|m| mount_kind(&m.kind)),
        ..Mount::default()
    }
}

/// The upper and work directories of an overlay, as the mount module reports them.
pub fn overlay_dirs(m: &MountInfo) -> (String, String) {
    let dir = |d: &Option<PathBuf>| d.as_deref().map(path_string).unwrap_or_default();
    (dir(&m.upper_dir), dir(&m.work_dir))
}

/// A bind's path as ImageAPI gives it: relative to its base mount, or the host path.
fn bind_path(m: &MountInfo, base: Option<&MountInfo>) -> String {
    match base {
        Some(b) => m
            .source
            .strip_prefix(&b.mountpoint)
            .map(path_string)
            .unwrap_or_else(|_| path_string(&m.source)),
        None => path_string(&m.source),
    }
}

fn options_of(m: &MountInfo) -> Option<Vec<String>> {
    Some(vec![if m.read_only { "ro" } else { "rw" }.to_string()])
}

/// A mount as a v0.2 `mount`.
pub fn mount(m: &MountInfo, index: &MountIndex) -> Mount {
    let mut out = Mount {
        id: Some(api_id(m.id)),
        kind: Some(mount_kind(&m.kind)),
        mountpoint: Some(path_string(&m.mountpoint)),
        refs: refs(m.refs()),
        ..Mount::default()
    };
    match mount_kind(&m.kind) {
        MountKind::Overlay => {
            let (upper, work) = overlay_dirs(m);
            out.overlay = Some(MountOverlay {
                id: None,
                lower: m
                    .children
                    .iter()
                    .map(|c| Lower::Mount(Box::new(mount_ref(*c, index))))
                    .collect(),
                mountpoint: None,
                upperdir: Some(upper),
                workdir: Some(work),
                refs: None,
            });
        }
        MountKind::Bind => {
            let base_mount = m.children.first();
            out.bind = Some(MountBind {
                path: bind_path(m, base_mount.and_then(|c| index.get(c))),
                base: if base_mount.is_some() {
                    Base::Mount
                } else {
                    Base::Root
                },
                mount: base_mount.map(|c| Box::new(mount_ref(*c, index))),
                recursive: None,
                ro: Some(m.read_only),
            });
        }
        _ => {
            out.attach = Some(MountAttach {
                fs_type: m.fs_type.clone(),
                attach: Box::new(Attach {
                    id: m.attachment.map(api_id),
                    ..Attach::default()
                }),
                mount_options: options_of(m),
            });
        }
    }
    out
}

/// An image mount as a v0.1 `mount_rbd`.
pub fn v1_mount_rbd(m: &MountInfo) -> MountRbd {
    MountRbd {
        id: Some(api_id(m.id)),
        rbd_id: m.attachment.map(api_id),
        rbd: None,
        fs_type: m.fs_type.clone(),
        mount_options: options_of(m),
        mountpoint: Some(path_string(&m.mountpoint)),
        refs: refs(m.refs()),
    }
}

/// An overlay as a v0.1 `mount_overlay`.
pub fn v1_mount_overlay(m: &MountInfo) -> MountOverlay {
    let (upper, work) = overlay_dirs(m);
    MountOverlay {
        id: Some(api_id(m.id)),
        lower: m.children.iter().map(|c| Lower::Id(api_id(*c))).collect(),
        mountpoint: Some(path_string(&m.mountpoint)),
        upperdir: Some(upper),
        workdir: Some(work),
        refs: refs(m.refs()),
    }
}

/// ImageAPI's state of one of ours.
pub fn state(s: OurState) -> ContainerState {
    match s {
        OurState::Created => ContainerState::Created,
        OurState::Running => ContainerState::Running,
        OurState::Stopping => ContainerState::Stopping,
        OurState::Exited => ContainerState::Exited,
        OurState::Dead => ContainerState::Dead,
    }
}

/// A container as ImageAPI's `container`.
pub fn container(c: &ContainerInfo, index: &MountIndex) -> Container {
    let command = match &c.spec.command {
        CommandLine::Line(s) => s.clone(),
        CommandLine::Argv(argv) => shell_words_join(argv),
    };
    Container {
        id: Some(api_id(c.id)),
        name: c.name.clone(),
        mount: mount_ref(c.mount, index),
        command,
        state: Some(state(c.state)),
        systemd: Some(c.spec.systemd),
        logfile: Some(path_string(&c.log_file)),
        namespaces: None,
        refs: None,
    }
}

/// Joins argv into one line that splits back to the same words.
fn shell_words_join(argv: &[String]) -> String {
    argv.iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
