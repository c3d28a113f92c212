//! `Create`, all or nothing:
//! 1. in a step, before anything else, reserve the name and allocate the id, so a second
//!    create of the name answers `Conflict` at once; the reservation is released if the
//!    job never runs (deadline passed in the queue, shutdown, caller gone);
//! 2. as a job on the name's and the id's keys: wait until the id's block is durable and
//!    check the spec (outside the actor: it looks at bind sources and namespaces);
//! 3. outside the actor, mount the root (inline) or look it up and take a reference
//!    (existing), check the init, write the bundle and run the monitor;
//! 4. in a step, register the record; the reply waits until it is durable.
//!
//! A failure after step 1 gives the reservation up in a step (from then on the container
//! no longer claims its mount), then removes the runtime state, cgroups and files and
//! releases the mount reference. A reserved container is invisible
//! (`Get`, `List` and commands do not find it) until step 4.

use super::launch::{launch, undo};
use super::prepare::{bundle_config, check_names, prepare, Prepared};
use super::{blocking, event, key, watch, Containers, Engine, KIND};
use crate::error::ContainerError;
use crate::store::{Durable, Record};
use imagebus_host::{Host, Key};
use imagebus_schema::container::{ContainerInfo, ContainerSpec, ContainerState, InitialState};
use imagebus_schema::mount::MountRef;
use imagebus_schema::Holder;
use imagebus_sys::monitor::now_ms;
use imagebus_sys::{oci, state};
use std::path::PathBuf;
use std::sync::Arc;

/// A reserved name and id. Dropped without [`Reservation::keep`] or
/// [`Reservation::release`] (the job never ran), it releases itself in the background.
struct Reservation {
    host: Host<Containers>,
    id: u64,
    settled: bool,
}

impl Reservation {
    /// The container is registered: nothing to release.
    fn keep(mut self) {
        self.settled = true;
    }

    /// Gives the name and id up now.
    async fn release(mut self) {
        self.settled = true;
        let id = self.id;
        let _ = self.host.apply(move |s| s.unreserve(id)).await;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (host, id) = (self.host.clone(), self.id);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = host.apply(move |s| s.unreserve(id)).await;
            });
        }
    }
}

/// Creates a container from `spec`.
pub async fn create(e: &Arc<Engine>, spec: ContainerSpec) -> Result<ContainerInfo, ContainerError> {
    // 1.
    super::nul::check_spec(&spec)?;
    check_names(&spec)?;
    let name = spec.name.clone();
    let (id, floor) = e.host.apply(move |s| s.reserve(name)).await??;
    let reservation = Reservation {
        host: e.host.clone(),
        id,
        settled: false,
    };
    let mut keys = vec![key(id)];
    keys.extend(spec.name.iter().map(|n| Key::name(KIND, n)));
    let me = e.clone();
    let done = e
        .host
        .mutate(keys, move |_| async move {
            create_job(&me, id, floor, spec, reservation).await
        })
        .await;
    match done {
        Ok(result) => result,
        Err(err) => {
            // The job did not run (or died): the reservation goes now, not in the background.
            let _ = e.host.apply(move |s| s.unreserve(id)).await;
            Err(err.into())
        }
    }
}

async fn create_job(
    e: &Engine,
    id: u64,
    floor: Durable,
    spec: ContainerSpec,
    reservation: Reservation,
) -> Result<ContainerInfo, ContainerError> {
    // 2.
    let (netns, bounding, checked) = (e.sys.netns.clone(), e.bounding, spec.clone());
    let checked = async move {
        floor.wait().await?;
        blocking(move || prepare(&checked, netns.as_ref(), bounding)).await?
    };
    let prepared = match checked.await {
        Ok(prepared) => prepared,
        Err(err) => {
            reservation.release().await;
            return Err(err);
        }
    };
    // 3.
    let record = match build(e, id, spec, prepared).await {
        Ok(record) => record,
        Err((err, mount)) => {
            // The reservation goes first: while it stands, the container claims its mount
            // (`Containers::holds`) and the mount module would refuse the release.
            reservation.release().await;
            undo(e, id, mount).await;
            return Err(err);
        }
    };
    // 4.
    let (mount, watched, generation) = (record.info.mount, record.watched, record.generation);
    let info = record.info.clone();
    let mut events = Vec::with_capacity(2);
    if info.state == ContainerState::Running {
        let mut created = info.clone();
        created.state = ContainerState::Created;
        events.push(event(&created, false));
    }
    events.push(event(&info, false));
    let durable = e.host.apply(move |s| s.register(record, events)).await?;
    reservation.keep();
    if let Err(err) = durable.wait().await {
        let _ = e.host.apply(move |s| s.unregister(id)).await;
        undo(e, id, Some(mount)).await;
        return Err(err);
    }
    tracing::info!(id, runtime_id = %info.runtime_id, state = info.state.as_str(), "container created");
    if let Some(w) = watched {
        watch::watch(e, w, id, generation);
        super::health::arm(e, id, generation);
    }
    Ok(info)
}

/// Step 3: the root mount, the bundle and the first run. On failure, the error and the
/// mount whose reference this create holds (to release).
async fn build(
    e: &Engine,
    id: u64,
    spec: ContainerSpec,
    prepared: Prepared,
) -> Result<Record, (ContainerError, Option<u64>)> {
    let holder = Holder::Container(id);
    // An existing mount: look it up, then take the reference while the container is
    // being created (the reference is a synchronous state write in the mount module).
    let (mount, acquire) = match &spec.mount {
        MountRef::Inline(m) => (
            e.mounts.mount((**m).clone(), Some(holder.clone())).await,
            None,
        ),
        MountRef::Existing(sel) => (e.mounts.get(sel.clone()).await, Some(sel.clone())),
    };
    let mount = mount.map_err(|err| (ContainerError::Mount(err), None))?;
    let mounts = e.mounts.clone();
    let acquired = async move {
        match acquire {
            Some(sel) => mounts.acquire(sel, holder).await.map(drop),
            None => Ok(()),
        }
    };
    let (acquired, built) = tokio::join!(
        acquired,
        on_root(e, id, spec, prepared, mount.id, mount.mountpoint.clone())
    );
    match (acquired, built) {
        (Ok(()), Ok(record)) => Ok(record),
        (Ok(()), Err(err)) => Err((err, Some(mount.id))),
        (Err(err), built) => Err((built.err().unwrap_or(ContainerError::Mount(err)), None)),
    }
}

/// Checks the init, writes the bundle and runs the monitor: the record of a new
/// container, not yet registered.
async fn on_root(
    e: &Engine,
    id: u64,
    spec: ContainerSpec,
    prepared: Prepared,
    mount_id: u64,
    rootfs: PathBuf,
) -> Result<Record, ContainerError> {
    let files = e.files(id);
    let bundle = bundle_config(&prepared, &spec, id, rootfs.clone(), e.cfg.cgroup_path(id));
    let (argv0, path_env) = (prepared.args[0].clone(), prepared.path_env().to_string());
    let (root, bdir, cdir) = (rootfs.clone(), files.bundle.clone(), files.dir.clone());
    blocking(move || -> Result<(), ContainerError> {
        oci::find_executable(&root, &argv0, &path_env)
            .map_err(|err| ContainerError::Invalid(err.to_string()))?;
        // The record and the bundle hold the environment: 0700 down to the files.
        state::ensure_private_dir(&cdir).map_err(|err| {
            ContainerError::state(format!("creating {cdir:?}"), std::io::Error::other(err))
        })?;
        let spec = oci::build_spec(&bundle)
            .map_err(|err| ContainerError::runtime("building the OCI spec", err))?;
        oci::write_bundle(&bdir, &spec)
            .map_err(|err| ContainerError::runtime("writing the bundle", err))?;
        Ok(())
    })
    .await??;
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
            runtime_id: e.cfg.runtime_id(id),
            created_at_ms: now_ms(),
            started_at_ms: None,
            finished_at_ms: None,
            restart_count: 0,
            health: None,
            spec: spec.redacted(),
        },
        stop_signal: prepared.stop_signal,
        stop_timeout_ms: prepared.stop_timeout_ms,
        generation: 0,
        watched: None,
        restart_due_ms: None,
        restart_streak: 0,
        health_kill: false,
    };
    let launched = launch(e, &record, start).await?;
    launched.apply(&mut record);
    Ok(record)
}
