//! What each ImageAPI call does with the modules (shared by the v0.1 and v0.2 handlers):
//! creates through [`crate::translate::Build`], deletes with ImageAPI's rules, state
//! changes, and the sweep of holds that loopback-in-mount attachments leave.

use crate::error::ApiError;
use crate::model::{Attach, Container, ContainerState, Mount};
use crate::render::{self, MountIndex};
use crate::translate::{api_id, bus_id, Build, TopAttach};
use imagebus_schema::attach::{AttachInfo, AttachModule};
use imagebus_schema::container::{
    ContainerFilter, ContainerInfo, ContainerModule, ContainerState as OurState,
};
use imagebus_schema::mount::{MountInfo, MountModule, MountSpec};
use imagebus_schema::{ErrorCode, Holder, Selector};
use std::sync::Arc;

/// The three modules, in-process handles or bus stubs alike.
#[derive(Clone)]
pub struct Modules {
    /// `attach.attach@1`.
    pub attach: Arc<dyn AttachModule>,
    /// `mount.mount@1`.
    pub mount: Arc<dyn MountModule>,
    /// `container.container@1`.
    pub container: Arc<dyn ContainerModule>,
}

impl std::fmt::Debug for Modules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Modules")
    }
}

/// A module's `NotFound` answered with ImageAPI's id (the module names its own).
fn not_found(e: imagebus_schema::RemoteError, what: &str, api: i64) -> ApiError {
    if e.code == ErrorCode::NotFound {
        ApiError::NotFound(format!("no {what} with id {api}"))
    } else {
        e.into()
    }
}

/// Holders in ImageAPI's ids, for messages.
fn holders_text(holders: &[Holder]) -> String {
    holders
        .iter()
        .map(|h| match h {
            Holder::User => "its creator".to_string(),
            Holder::Mount(id) => format!("mount {}", api_id(*id)),
            Holder::Attach(id) => format!("attachment {}", api_id(*id)),
            Holder::Container(id) => format!("container {}", api_id(*id)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A module's `Conflict` on a delete, as ImageAPI's 409 with ImageAPI's ids.
fn in_use(e: imagebus_schema::RemoteError, what: &str, api: i64, holders: &[Holder]) -> ApiError {
    if e.code == ErrorCode::Conflict {
        ApiError::Busy(format!(
            "{what} {api} is in use (refs {}: {}); delete with force=true to remove it anyway",
            holders.len(),
            holders_text(holders)
        ))
    } else {
        e.into()
    }
}

impl Modules {
    /// Whether `m` is an image mount on an RBD attachment (ImageAPI's `rbd` mount kind).
    pub async fn is_rbd_mount(&self, m: &MountInfo) -> bool {
        let Some(a) = m.attachment.filter(|_| m.kind == "image") else {
            return false;
        };
        matches!(
            self.attach.get(Selector::Id(a)).await.map(|a| a.source),
            Ok(imagebus_schema::attach::AttachSource::Rbd(_))
        )
    }

    /// Attachment `api` (404 with ImageAPI's id).
    pub async fn get_attach(&self, api: i64) -> Result<AttachInfo, ApiError> {
        let id = bus_id(api, "attachment")?;
        self.attach
            .get(Selector::Id(id))
            .await
            .map_err(|e| not_found(e, "attachment", api))
    }

    /// Mount `api` (404 with ImageAPI's id).
    pub async fn get_mount(&self, api: i64) -> Result<MountInfo, ApiError> {
        let id = bus_id(api, "mount")?;
        self.mount
            .get(Selector::Id(id))
            .await
            .map_err(|e| not_found(e, "mount", api))
    }

    /// A container by id or name (404 with ImageAPI's id).
    pub async fn get_container(&self, sel: Selector) -> Result<ContainerInfo, ApiError> {
        let res = self.container.get(sel.clone()).await;
        match sel {
            Selector::Id(id) => res.map_err(|e| not_found(e, "container", api_id(id))),
            Selector::Name(n) => res.map_err(|e| {
                if e.code == ErrorCode::NotFound {
                    ApiError::NotFound(format!("no container named {n:?}"))
                } else {
                    e.into()
                }
            }),
        }
    }

    /// Every mount, by id.
    pub async fn mount_index(&self) -> Result<MountIndex, ApiError> {
        Ok(self
            .mount
            .list()
            .await?
            .into_iter()
            .map(|m| (m.id, m))
            .collect())
    }

    /// Creates an attachment from a top-level definition.
    pub async fn create_attach(&self, a: &Attach) -> Result<AttachInfo, ApiError> {
        let mut b = Build::new(self);
        let res = match b.attach_top(a).await {
            Ok(TopAttach::Spec(spec)) => self.attach.attach(spec, None).await.map_err(Into::into),
            Ok(TopAttach::Created(id)) => {
                self.attach.get(Selector::Id(id)).await.map_err(Into::into)
            }
            Err(e) => Err(e),
        };
        b.finish(res.is_ok()).await;
        res
    }

    /// Creates an attachment from an already built spec.
    pub async fn create_attach_spec(
        &self,
        spec: imagebus_schema::attach::AttachSpec,
    ) -> Result<AttachInfo, ApiError> {
        Ok(self.attach.attach(spec, None).await?)
    }

    /// Creates a mount from a top-level definition.
    pub async fn create_mount(&self, m: &Mount) -> Result<MountInfo, ApiError> {
        let mut b = Build::new(self);
        let res = match b.mount_top(m).await {
            Ok(spec) => self.mount.mount(spec, None).await.map_err(Into::into),
            Err(e) => Err(e),
        };
        b.finish(res.is_ok()).await;
        res
    }

    /// Creates a mount from an already built spec.
    pub async fn create_mount_spec(&self, spec: MountSpec) -> Result<MountInfo, ApiError> {
        Ok(self.mount.mount(spec, None).await?)
    }

    /// Creates a container (and what it defines inline).
    pub async fn create_container(&self, c: &Container) -> Result<ContainerInfo, ApiError> {
        let mut b = Build::new(self);
        let res = match b.container(c).await {
            Ok(spec) => self.container.create(spec).await.map_err(Into::into),
            Err(e) => Err(e),
        };
        b.finish(res.is_ok()).await;
        res
    }

    /// Detaches (ImageAPI: 409 while other references remain, unless `force`).
    pub async fn delete_attach(&self, api: i64, force: bool) -> Result<AttachInfo, ApiError> {
        let info = self.get_attach(api).await?;
        self.attach
            .detach(Selector::Id(info.id), force)
            .await
            .map_err(|e| in_use(e, "attachment", api, &info.holders))?;
        self.sweep().await;
        Ok(info)
    }

    /// Unmounts (ImageAPI: 409 while other references remain, unless `force`).
    pub async fn delete_mount(&self, api: i64, force: bool) -> Result<MountInfo, ApiError> {
        let info = self.get_mount(api).await?;
        self.mount
            .unmount(Selector::Id(info.id), force)
            .await
            .map_err(|e| in_use(e, "mount", api, &info.holders))?;
        self.sweep().await;
        Ok(info)
    }

    /// Deletes a container: refused (409) while running or stopping unless `force`
    /// (ImageAPI answers 501 to force; we kill it at once, as `docker rm -f`). A created
    /// container is deleted without being asked twice, as in ImageAPI.
    pub async fn delete_container(
        &self,
        sel: Selector,
        force: bool,
    ) -> Result<ContainerInfo, ApiError> {
        let info = self.get_container(sel).await?;
        if !force && matches!(info.state, OurState::Running | OurState::Stopping) {
            return Err(ApiError::Busy(format!(
                "container {} is {}: request the exited state first (or delete with force=true)",
                crate::translate::api_id(info.id),
                info.state.as_str()
            )));
        }
        let force = force || info.state == OurState::Created;
        self.container
            .delete(Selector::Id(info.id), force)
            .await
            .map_err(|e| in_use(e, "container", api_id(info.id), &[]))?;
        self.sweep().await;
        Ok(info)
    }

    /// Requests a state: `running` starts, `exited` stops (and waits for the init to
    /// exit); `paused` is not implemented (400, as in ImageAPI), the rest are invalid.
    pub async fn set_state(
        &self,
        sel: Selector,
        state: ContainerState,
    ) -> Result<ContainerInfo, ApiError> {
        match state {
            ContainerState::Running => {
                let info = self.get_container(sel).await?;
                if info.state == OurState::Running {
                    return Ok(info);
                }
                Ok(self.container.start(Selector::Id(info.id)).await?)
            }
            ContainerState::Exited => {
                let info = self.get_container(sel).await?;
                if !matches!(info.state, OurState::Running | OurState::Stopping) {
                    return Ok(info);
                }
                Ok(self.container.stop(Selector::Id(info.id), None).await?)
            }
            ContainerState::Paused => Err(ApiError::BadRequest(
                "state: paused is not yet implemented".into(),
            )),
            other => Err(ApiError::BadRequest(format!(
                "state: {} cannot be requested (running or exited)",
                other.as_str()
            ))),
        }
    }

    /// Containers, optionally of one state.
    pub async fn containers(
        &self,
        state: Option<OurState>,
    ) -> Result<Vec<ContainerInfo>, ApiError> {
        let filter = ContainerFilter {
            states: state.into_iter().collect(),
            group: None,
        };
        Ok(self.container.list(filter).await?)
    }

    /// Drops the holds that gone loopback-in-mount attachments left on their mounts (the
    /// mount module cannot know that an attachment went away). Best effort: a failure is
    /// logged and retried by the next delete.
    pub async fn sweep(&self) {
        let Ok(mounts) = self.mount.list().await else {
            return;
        };
        for m in mounts {
            for h in &m.holders {
                let Holder::Attach(aid) = h else { continue };
                match self.attach.get(Selector::Id(*aid)).await {
                    Err(e) if e.code == ErrorCode::NotFound => {
                        if let Err(e) = self.mount.release(m.id, h.clone()).await {
                            tracing::warn!(mount = m.id, attach = aid, error = %e, "releasing a loopback's hold");
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// A container as ImageAPI's object.
    pub async fn render_container(&self, c: &ContainerInfo) -> Result<Container, ApiError> {
        let index = self.mount_index().await?;
        Ok(render::container(c, &index))
    }
}
