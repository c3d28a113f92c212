//! ImageAPI definitions → our specs (`AttachSpec`, `MountSpec`, `ContainerSpec`), and
//! ImageAPI ids ↔ bus ids.
//!
//! **Ids.** ImageAPI ids are the modules' own ids minus one: the modules number each kind
//! from 1 and never reuse an id (even across restarts), so ImageAPI ids number each kind
//! from 0 (as v0.1 did, so the tutorial's ids work) and are never reused either. No map is
//! kept: an object created with the CLI has an ImageAPI id too.
//!
//! **Nesting.** A definition nested in a parent becomes an inline child of our spec
//! (owned by the parent and collected with it); `{"id": N}` (with or without `kind`)
//! becomes a reference (the parent takes a hold, the child survives it). The one kind the
//! modules cannot nest is a loopback file inside a mount (the attach module does not know
//! mounts): the gateway creates that attachment itself, makes the mount hold it
//! (`Holder::Attach`), and drops its own hold once the parent exists, which gives the
//! same ownership (see [`Build::finish`]).

use crate::error::ApiError;
use crate::model::{
    Attach, AttachKind, AttachLoopback, Base, Container, ContainerState, Lower, Mount, MountKind,
    MountRbd, Rbd, RbdOptions,
};
use crate::ops::Modules;
use futures::future::BoxFuture;
use imagebus_schema::attach::{
    AttachRef, AttachSource, AttachSpec, LocalSource, LoopSource, RbdSource, Secret,
};
use imagebus_schema::container::{CommandLine, ContainerSpec, InitialState};
use imagebus_schema::mount::{
    BindMount, ImageMount, MountRef, MountSource, MountSpec, OverlayMount,
};
use imagebus_schema::{Holder, Selector};
use std::path::{Component, Path, PathBuf};

/// The ImageAPI id of bus id `bus` (bus ids start at 1).
pub fn api_id(bus: u64) -> i64 {
    i64::try_from(bus).map_or(i64::MAX, |b| b - 1)
}

/// The bus id of ImageAPI id `api`; a negative id names nothing (404).
pub fn bus_id(api: i64, what: &str) -> Result<u64, ApiError> {
    u64::try_from(api)
        .ok()
        .and_then(|a| a.checked_add(1))
        .ok_or_else(|| ApiError::NotFound(format!("no {what} with id {api}")))
}

/// The selector of ImageAPI id `api`.
pub fn by_id(api: i64, what: &str) -> Result<Selector, ApiError> {
    bus_id(api, what).map(Selector::Id)
}

/// Checks that a top-level definition does not carry an id (ImageAPI: ids are assigned
/// by the server; 0, the "unset" value, is accepted).
pub fn no_id(id: Option<i64>, what: &str) -> Result<(), ApiError> {
    match id {
        None | Some(0) => Ok(()),
        Some(n) => Err(ApiError::BadRequest(format!(
            "{what}.id: ids are assigned by the server (got {n})"
        ))),
    }
}

/// Whether an attach object is a reference (`id` and no kind object).
fn attach_is_ref(a: &Attach) -> bool {
    a.id.is_some()
        && a.rbd.is_none()
        && a.loopback.is_none()
        && a.local.is_none()
        && a.iscsi.is_none()
}

/// Whether a mount object is a reference (`id` given: as in ImageAPI, a definition given
/// with an id is ignored).
fn mount_is_ref(m: &Mount) -> bool {
    m.id.is_some()
}

/// ImageAPI's kind name of a mount of ours (`image` mounts are `attach`).
pub fn mount_kind(kind: &str) -> MountKind {
    match kind {
        "overlay" => MountKind::Overlay,
        "bind" => MountKind::Bind,
        _ => MountKind::Attach,
    }
}

/// Whether a mount of our kind `ours` answers to ImageAPI kind `theirs`.
fn kind_matches(theirs: MountKind, ours: &str) -> bool {
    matches!(
        (theirs, ours),
        (MountKind::Attach | MountKind::Rbd, "image")
            | (MountKind::Overlay, "overlay")
            | (MountKind::Bind, "bind")
    )
}

/// A relative path that stays inside its base (no `..`), without a leading `/`.
fn relative_inside(path: &str, field: &str) -> Result<PathBuf, ApiError> {
    let p = Path::new(path.trim_start_matches('/'));
    if p.components().any(|c| !matches!(c, Component::Normal(_))) || path.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "{field}: {path:?} must be a path inside the base, without '..'"
        )));
    }
    Ok(p.to_path_buf())
}

/// The RBD source of an ImageAPI RBD definition.
pub fn rbd_source(
    monitors: &[String],
    pool: &str,
    image: &str,
    snapshot: Option<&String>,
    options: Option<&RbdOptions>,
    field: &str,
) -> Result<AttachSource, ApiError> {
    let o = options.cloned().unwrap_or_default();
    let (Some(user), Some(secret)) = (o.name.clone(), o.secret.clone()) else {
        return Err(ApiError::BadRequest(format!(
            "{field}.options: name and secret are required"
        )));
    };
    if monitors.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "{field}.monitors: at least one monitor is required"
        )));
    }
    let read_only = o.ro.unwrap_or(false) || (snapshot.is_some() && o.rw != Some(true));
    Ok(AttachSource::Rbd(RbdSource {
        monitors: monitors.to_vec(),
        pool: pool.to_string(),
        image: image.to_string(),
        snapshot: snapshot.cloned(),
        namespace: o.namespace.clone().filter(|n| !n.is_empty()),
        user,
        secret: Secret::new(secret),
        read_only,
        shared: false,
    }))
}

/// The v0.1 `rbd` object as an attach spec.
pub fn v1_rbd_spec(r: &Rbd, field: &str) -> Result<AttachSpec, ApiError> {
    Ok(AttachSpec {
        name: None,
        source: rbd_source(
            &r.monitors,
            &r.pool,
            &r.image,
            r.snapshot.as_ref(),
            r.options.as_ref(),
            field,
        )?,
    })
}

/// `ro`/`rw` of ImageAPI's mount options become our `read_only`; the rest stay options.
fn mount_options(opts: Option<&Vec<String>>) -> (Vec<String>, bool) {
    let mut read_only = false;
    let mut rest = Vec::new();
    for o in opts.into_iter().flatten() {
        match o.as_str() {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "" => {}
            other => rest.push(other.to_string()),
        }
    }
    (rest, read_only)
}

/// An object the gateway created itself while building a request's specs, holding a
/// `User` reference until the request's top object exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pre {
    Attach(u64),
    Mount(u64),
}

/// Builds our specs from ImageAPI definitions for one request; see the module docs.
#[derive(Debug)]
pub struct Build<'a> {
    m: &'a Modules,
    pre: Vec<Pre>,
}

impl<'a> Build<'a> {
    /// A build against `m`.
    pub fn new(m: &'a Modules) -> Self {
        Self { m, pre: Vec::new() }
    }

    /// Ends the build: when the top object was created (`ok`), drops the gateway's holds
    /// on what it pre-created (the parents hold them now); otherwise removes them.
    pub async fn finish(self, ok: bool) {
        for p in self.pre.into_iter().rev() {
            let res = match (p, ok) {
                (Pre::Attach(id), true) => self.m.attach.release(id, Holder::User).await,
                (Pre::Mount(id), true) => self.m.mount.release(id, Holder::User).await,
                (Pre::Attach(id), false) => self.m.attach.detach(Selector::Id(id), true).await,
                (Pre::Mount(id), false) => self.m.mount.unmount(Selector::Id(id), true).await,
            };
            if let Err(e) = res {
                tracing::warn!(object = ?p, error = %e, "cleaning up a pre-created object");
            }
        }
    }

    /// An attachment for a top-level `POST`: a spec for the attach module, or (loopback
    /// in a mount) the attachment already created here.
    pub async fn attach_top(&mut self, a: &Attach) -> Result<TopAttach, ApiError> {
        no_id(a.id, "attach")?;
        if let (Some(AttachKind::Loopback), Some(lb)) = (a.kind, &a.loopback) {
            if lb.base == Base::Mount {
                let id = self.loop_in_mount(lb, false).await?;
                return Ok(TopAttach::Created(id));
            }
        }
        self.attach_spec(a, "attach").await.map(TopAttach::Spec)
    }

    /// Our attach spec of an ImageAPI definition (not a loopback in a mount).
    async fn attach_spec(&mut self, a: &Attach, field: &str) -> Result<AttachSpec, ApiError> {
        let Some(kind) = a.kind else {
            return Err(ApiError::BadRequest(format!(
                "{field}.kind: required for a definition (rbd, loopback, local)"
            )));
        };
        let missing = || {
            ApiError::BadRequest(format!(
                "{field}.{}: required for kind {}",
                kind.as_str(),
                kind.as_str()
            ))
        };
        let source = match kind {
            AttachKind::Iscsi => {
                return Err(ApiError::NotImplemented(
                    "attach kind iscsi is not implemented".into(),
                ))
            }
            AttachKind::Rbd => {
                let r = a.rbd.as_ref().ok_or_else(missing)?;
                rbd_source(
                    &r.monitors,
                    &r.pool,
                    &r.image,
                    r.snapshot.as_ref(),
                    r.options.as_ref(),
                    &format!("{field}.rbd"),
                )?
            }
            AttachKind::Local => {
                let l = a.local.as_ref().ok_or_else(missing)?;
                AttachSource::Local(LocalSource {
                    path: PathBuf::from("/").join(l.path.trim_start_matches('/')),
                    read_only: false,
                })
            }
            AttachKind::Loopback => {
                let lb = a.loopback.as_ref().ok_or_else(missing)?;
                if lb.base == Base::Mount {
                    return Err(ApiError::Internal(
                        "a loopback in a mount is created by the gateway".into(),
                    ));
                }
                AttachSource::Loop(LoopSource {
                    path: PathBuf::from("/").join(lb.path.trim_start_matches('/')),
                    read_only: false,
                })
            }
        };
        Ok(AttachSpec { name: None, source })
    }

    /// An attachment nested in a mount: a reference, an inline spec, or (loopback in a
    /// mount) one created here and owned by the parent once it exists.
    fn attach_ref<'b>(
        &'b mut self,
        a: &'b Attach,
        field: &'b str,
    ) -> BoxFuture<'b, Result<AttachRef, ApiError>> {
        Box::pin(async move {
            if attach_is_ref(a) {
                let info = self.m.get_attach(a.id.unwrap_or_default()).await?;
                return Ok(AttachRef::Existing(Selector::Id(info.id)));
            }
            if let (Some(AttachKind::Loopback), Some(lb)) = (a.kind, &a.loopback) {
                if lb.base == Base::Mount {
                    let id = self.loop_in_mount(lb, true).await?;
                    return Ok(AttachRef::Existing(Selector::Id(id)));
                }
            }
            Ok(AttachRef::Inline(Box::new(
                self.attach_spec(a, field).await?,
            )))
        })
    }

    /// Creates a loop attachment of a file inside a mount, held by the gateway (`User`)
    /// and, once created, holding the mount (`Holder::Attach`). `nested`: the gateway's
    /// hold is dropped in [`Build::finish`].
    async fn loop_in_mount(&mut self, lb: &AttachLoopback, nested: bool) -> Result<u64, ApiError> {
        let Some(mount) = lb.mount.as_deref() else {
            return Err(ApiError::BadRequest(
                "loopback.mount: required with base mount".into(),
            ));
        };
        let rel = relative_inside(&lb.path, "loopback.path")?;
        let base = match self.mount_ref(mount, "loopback.mount").await? {
            MountRef::Existing(sel) => self.m.mount.get(sel).await?,
            MountRef::Inline(spec) => {
                let info = self.m.mount.mount(*spec, None).await?;
                self.pre.push(Pre::Mount(info.id));
                info
            }
        };
        let spec = AttachSpec {
            name: None,
            source: AttachSource::Loop(LoopSource {
                path: base.mountpoint.join(rel),
                read_only: false,
            }),
        };
        let info = self.m.attach.attach(spec, None).await?;
        if let Err(e) = self
            .m
            .mount
            .acquire(Selector::Id(base.id), Holder::Attach(info.id))
            .await
        {
            let _ = self.m.attach.detach(Selector::Id(info.id), true).await;
            return Err(e.into());
        }
        if nested {
            self.pre.push(Pre::Attach(info.id));
        }
        Ok(info.id)
    }

    /// A mount for a top-level `POST`.
    pub async fn mount_top(&mut self, m: &Mount) -> Result<MountSpec, ApiError> {
        no_id(m.id, "mount")?;
        let stripped = Mount {
            id: None,
            ..m.clone()
        };
        self.mount_spec(&stripped, "mount").await
    }

    /// A mount nested in a parent: a reference (after checking its kind) or an inline spec.
    pub fn mount_ref<'b>(
        &'b mut self,
        m: &'b Mount,
        field: &'b str,
    ) -> BoxFuture<'b, Result<MountRef, ApiError>> {
        Box::pin(async move {
            if mount_is_ref(m) {
                let id = m.id.unwrap_or_default();
                let info = self.m.get_mount(id).await?;
                if let Some(kind) = m.kind {
                    if !kind_matches(kind, &info.kind) {
                        return Err(ApiError::NotFound(format!(
                            "no {} mount with id {id}",
                            kind.as_str()
                        )));
                    }
                }
                return Ok(MountRef::Existing(Selector::Id(info.id)));
            }
            Ok(MountRef::Inline(Box::new(self.mount_spec(m, field).await?)))
        })
    }

    /// Our mount spec of an ImageAPI mount definition.
    pub fn mount_spec<'b>(
        &'b mut self,
        m: &'b Mount,
        field: &'b str,
    ) -> BoxFuture<'b, Result<MountSpec, ApiError>> {
        Box::pin(async move {
            let Some(kind) = m.kind else {
                return Err(ApiError::BadRequest(format!(
                    "{field}.kind: required for a definition (attach, overlay, bind)"
                )));
            };
            let missing = || {
                ApiError::BadRequest(format!(
                    "{field}.{}: required for kind {}",
                    kind.as_str(),
                    kind.as_str()
                ))
            };
            let source = match kind {
                MountKind::Nfs | MountKind::Uri => {
                    return Err(ApiError::NotImplemented(format!(
                        "mount kind {} is not implemented",
                        kind.as_str()
                    )))
                }
                MountKind::Attach => {
                    let a = m.attach.as_ref().ok_or_else(missing)?;
                    let (options, read_only) = mount_options(a.mount_options.as_ref());
                    let sub = format!("{field}.attach.attach");
                    MountSource::Image(ImageMount {
                        attach: self.attach_ref(&a.attach, &sub).await?,
                        fs_type: Some(a.fs_type.clone()).filter(|t| !t.is_empty()),
                        options,
                        read_only,
                    })
                }
                MountKind::Rbd => {
                    let r = m.rbd.as_ref().ok_or_else(missing)?;
                    self.v1_rbd_mount(r, &format!("{field}.rbd")).await?
                }
                MountKind::Overlay => {
                    let o = m.overlay.as_ref().ok_or_else(missing)?;
                    if o.lower.is_empty() {
                        return Err(ApiError::BadRequest(format!(
                            "{field}.overlay.lower: at least one lower mount is required"
                        )));
                    }
                    let mut lowers = Vec::with_capacity(o.lower.len());
                    for (i, l) in o.lower.iter().enumerate() {
                        lowers.push(match l {
                            Lower::Id(id) => {
                                MountRef::Existing(Selector::Id(self.m.get_mount(*id).await?.id))
                            }
                            Lower::Mount(lm) => {
                                let sub = format!("{field}.overlay.lower[{i}]");
                                self.mount_ref(lm, &sub).await?
                            }
                        });
                    }
                    MountSource::Overlay(OverlayMount {
                        lowers,
                        persist_dir: None,
                    })
                }
                MountKind::Bind => {
                    let b = m.bind.as_ref().ok_or_else(missing)?;
                    let (path, base) = match b.base {
                        Base::Root => (
                            PathBuf::from("/").join(b.path.trim_start_matches('/')),
                            None,
                        ),
                        Base::Mount => {
                            let Some(bm) = b.mount.as_deref() else {
                                return Err(ApiError::BadRequest(format!(
                                    "{field}.bind.mount: required with base mount"
                                )));
                            };
                            let rel = if b.path.trim_matches('/').is_empty() {
                                PathBuf::from(".")
                            } else {
                                relative_inside(&b.path, &format!("{field}.bind.path"))?
                            };
                            let sub = format!("{field}.bind.mount");
                            (rel, Some(Box::new(self.mount_ref(bm, &sub).await?)))
                        }
                    };
                    MountSource::Bind(BindMount {
                        path,
                        base,
                        read_only: b.ro.unwrap_or(false),
                        recursive: b.recursive.unwrap_or(false),
                    })
                }
            };
            Ok(MountSpec { name: None, source })
        })
    }

    /// The v0.1 `mount_rbd` (and the `rbd` mount kind): the attachment is `rbd_id`, an
    /// inline `rbd`, or (the v0.1 tutorial's form) `id`.
    pub async fn v1_rbd_mount(&self, r: &MountRbd, field: &str) -> Result<MountSource, ApiError> {
        let attach = match (&r.rbd_id, &r.rbd, &r.id) {
            (Some(id), _, _) => AttachRef::Existing(Selector::Id(self.m.get_attach(*id).await?.id)),
            (None, Some(def), _) => {
                AttachRef::Inline(Box::new(v1_rbd_spec(def, &format!("{field}.rbd"))?))
            }
            (None, None, Some(id)) => {
                AttachRef::Existing(Selector::Id(self.m.get_attach(*id).await?.id))
            }
            (None, None, None) => {
                return Err(ApiError::BadRequest(format!(
                    "{field}: one of rbd_id, rbd or id (the RBD attachment) is required"
                )))
            }
        };
        let (options, read_only) = mount_options(r.mount_options.as_ref());
        Ok(MountSource::Image(ImageMount {
            attach,
            fs_type: Some(r.fs_type.clone()).filter(|t| !t.is_empty()),
            options,
            read_only,
        }))
    }

    /// Our container spec of an ImageAPI container definition.
    pub async fn container(&mut self, c: &Container) -> Result<ContainerSpec, ApiError> {
        no_id(c.id, "container")?;
        let name = match c.name.as_deref() {
            None | Some("") => None,
            Some(n) => {
                imagebus_schema::common::validate_name(n)
                    .map_err(|e| ApiError::BadRequest(format!("name: {e}")))?;
                Some(n.to_string())
            }
        };
        let state = match c.state {
            None | Some(ContainerState::Created) => InitialState::Created,
            Some(ContainerState::Running) => InitialState::Running,
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "state: a container is created in state created or running, not {}",
                    other.as_str()
                )))
            }
        };
        let command = CommandLine::Line(c.command.clone());
        match command.argv() {
            Ok(argv) if !argv.is_empty() => {}
            Ok(_) => return Err(ApiError::BadRequest("command: empty command".into())),
            Err(e) => return Err(ApiError::BadRequest(format!("command: {e}"))),
        }
        let mount = self.mount_ref(&c.mount, "mount").await?;
        Ok(ContainerSpec {
            name,
            systemd: c.systemd.unwrap_or(false),
            state,
            ..ContainerSpec::new(mount, command)
        })
    }
}

/// What a top-level attach `POST` needs done.
#[derive(Debug)]
pub enum TopAttach {
    /// Create this.
    Spec(AttachSpec),
    /// Already created (a loopback in a mount).
    Created(u64),
}
