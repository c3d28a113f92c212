//! Creating a container: checks, the root mount (inline or referenced), the bundle and
//! the first run, all or nothing.

use super::{blocking, Containers};
use crate::error::ContainerError;
use crate::prepare::{bundle_config, prepare, Prepared};
use crate::record::Record;
use imagebus_schema::container::{ContainerInfo, ContainerSpec, ContainerState, InitialState};
use imagebus_schema::mount::MountRef;
use imagebus_schema::Holder;
use imagebus_sys::monitor::now_ms;
use imagebus_sys::oci;
use std::path::PathBuf;

impl Containers {
    /// Creates a container; all or nothing.
    pub async fn create(&mut self, spec: ContainerSpec) -> Result<ContainerInfo, ContainerError> {
        let prepared = prepare(&spec, self.sys.netns.as_ref(), self.bounding)?;
        if let Some(name) = &spec.name {
            if self
                .records
                .values()
                .any(|r| r.info.name.as_deref() == Some(name))
            {
                return Err(ContainerError::NameTaken(name.clone()));
            }
        }
        let id = self.alloc_id().await?;
        let holder = Holder::Container(id);
        // An existing mount: look it up, then take the reference while the container is
        // being created (the reference is a synchronous state write in the mount module).
        let (mount, acquire) = match &spec.mount {
            MountRef::Inline(m) => (
                self.mounts.mount((**m).clone(), Some(holder.clone())).await,
                None,
            ),
            MountRef::Existing(sel) => (self.mounts.get(sel.clone()).await, Some(sel.clone())),
        };
        let mount = mount.map_err(ContainerError::Mount)?;
        let mounts = self.mounts.clone();
        let acquired = async move {
            match acquire {
                Some(sel) => mounts.acquire(sel, holder).await.map(drop),
                None => Ok(()),
            }
        };
        let (acquired, built) = tokio::join!(
            acquired,
            self.create_on(id, spec, prepared, mount.id, mount.mountpoint.clone())
        );
        let record = match (acquired, built) {
            (Ok(()), Ok(record)) => record,
            (Ok(()), Err(e)) => {
                self.undo(id, Some(mount.id)).await;
                return Err(e);
            }
            (Err(e), built) => {
                self.undo(id, None).await;
                return Err(built.err().unwrap_or(ContainerError::Mount(e)));
            }
        };
        let start = record.info.state == ContainerState::Running;
        self.records.insert(id, record);
        if let Err(e) = self.save(id).await {
            self.records.remove(&id);
            self.undo(id, Some(mount.id)).await;
            return Err(e);
        }
        let info = self.records[&id].info.clone();
        tracing::info!(id, runtime_id = %info.runtime_id, state = info.state.as_str(), "container created");
        if start {
            let mut created = info.clone();
            created.state = ContainerState::Created;
            self.emit(&created, false);
        }
        self.emit(&info, false);
        Ok(info)
    }

    /// Checks the init, writes the bundle and runs the monitor: the record of a new
    /// container, not yet registered.
    async fn create_on(
        &self,
        id: u64,
        spec: ContainerSpec,
        prepared: Prepared,
        mount_id: u64,
        rootfs: PathBuf,
    ) -> Result<Record, ContainerError> {
        let files = self.files(id);
        let bundle = bundle_config(
            &prepared,
            &spec,
            id,
            rootfs.clone(),
            self.cfg.cgroup_path(id),
        );
        let (argv0, path_env) = (prepared.args[0].clone(), prepared.path_env().to_string());
        let (root, bdir) = (rootfs.clone(), files.bundle.clone());
        blocking(move || -> Result<(), ContainerError> {
            oci::find_executable(&root, &argv0, &path_env)
                .map_err(|e| ContainerError::Invalid(e.to_string()))?;
            let spec = oci::build_spec(&bundle)
                .map_err(|e| ContainerError::runtime("building the OCI spec", e))?;
            oci::write_bundle(&bdir, &spec)
                .map_err(|e| ContainerError::runtime("writing the bundle", e))?;
            Ok(())
        })
        .await??;
        let now = now_ms();
        let start = spec.state == InitialState::Running;
        let mut record = Record {
            info: ContainerInfo {
                id,
                name: spec.name.clone(),
                group: spec.group.clone(),
                state: ContainerState::Created,
                mount: mount_id,
                rootfs,
                command: prepared.args.clone(),
                pid: None,
                exit_code: None,
                exit_signal: None,
                reason: None,
                log_file: files.log.clone(),
                runtime_id: self.cfg.runtime_id(id),
                created_at_ms: now,
                started_at_ms: None,
                finished_at_ms: None,
                spec,
            },
            stop_signal: prepared.stop_signal,
            stop_timeout_ms: prepared.stop_timeout_ms,
            generation: 0,
            watched: None,
        };
        self.launch(&mut record, start).await?;
        Ok(record)
    }
}
