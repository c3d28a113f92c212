//! zos's `ContainerModule` (`container.container@0.0.1`) on the container actor.
//!
//! Mapping: the tenant namespace `ns` is the container's group and the container is named
//! `<ns>.<Name>` (so ids are unique per namespace, as in containerd namespaces); `RootFS`,
//! a host path, becomes an inline recursive bind mount; `Network.Namespace` is joined
//! (required, as in zos); `Mounts` are rbinds (or, with `Type`/`Options`, exactly the bind asked for, see
//! [`crate::zos_mounts`]); `RootFsPropagation` is honoured; `CPU` (default 1) becomes a CFS quota,
//! `Memory` (default 256 MiB) a memory limit; `Elevated` adds CAP_SYS_ADMIN;
//! `ShutdownTimeout` (default 3 s) is the stop grace period after SIGTERM. Like zos's
//! container module, which restarts a container whose task exited (whatever its exit
//! code) up to 3 times, the container gets the restart policy `always` with
//! `max_retries` [`ZOS_MAX_RESTARTS`]; `Delete` and `SignalDelete` stop it first, so
//! they never lead to a restart. The differences are in docs/container.md.

use crate::actor::ContainerHandle;
use crate::engine;
use crate::error::ContainerError;
use crate::zos_mounts;
use imagebus_bus::protocol::Timestamp;
use imagebus_bus::RemoteError;
use imagebus_schema::container::{
    CapabilityChanges, CommandLine, ContainerFilter, ContainerInfo, ContainerModule, ContainerSpec,
    ContainerState, ExecSpec, InitialState, LogsRequest, Network, Resources, RestartPolicy,
    RestartSpec,
};
use imagebus_schema::mount::{BindMount, MountRef, MountSource, MountSpec};
use imagebus_schema::zos::{ZosContainer, ZosContainerModule, ZosMountInfo, ZosNetworkInfo};
use imagebus_schema::Selector;
use std::collections::BTreeSet;
use std::time::{Duration, UNIX_EPOCH};

/// zos's default memory limit (its `256*1024*1204` is a typo for this).
pub const ZOS_DEFAULT_MEMORY: u64 = 256 << 20;
/// zos's default shutdown timeout.
pub const ZOS_DEFAULT_SHUTDOWN: Duration = Duration::from_secs(3);
/// How many restarts in a row zos's container module allows (it gives up at the 4th exit).
pub const ZOS_MAX_RESTARTS: u32 = 3;

fn name_in(ns: &str, id: &str) -> String {
    if ns.is_empty() {
        id.to_string()
    } else {
        format!("{ns}.{id}")
    }
}

fn invalid(msg: &str) -> RemoteError {
    RemoteError::invalid_argument(msg)
}

/// The imagebus spec of a zos container.
pub fn spec_from_zos(ns: &str, data: &ZosContainer) -> Result<ContainerSpec, RemoteError> {
    if data.name.is_empty() {
        return Err(invalid("container name is required"));
    }
    if data.root_fs.is_empty() {
        return Err(invalid("invalid root filesystem: RootFS is empty"));
    }
    if data.entrypoint.trim().is_empty() {
        return Err(invalid("invalid entrypoint definition"));
    }
    if data.network.namespace.is_empty() {
        return Err(invalid("cannot create container without network namespace"));
    }
    if data.interactive {
        return Err(RemoteError::unsupported(
            "interactive (coreX) containers are not supported",
        ));
    }
    let cpus = data.cpu.max(1);
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1);
    if cpus > ncpu {
        return Err(invalid(&format!(
            "CPU {cpus} is more than the {ncpu} CPUs of this node"
        )));
    }
    let shutdown = if data.shutdown_timeout > 0 {
        Duration::from_nanos(data.shutdown_timeout as u64)
    } else {
        ZOS_DEFAULT_SHUTDOWN
    };
    let root = MountRef::Inline(Box::new(MountSpec {
        name: None,
        source: MountSource::Bind(BindMount {
            path: data.root_fs.clone().into(),
            base: None,
            read_only: false,
            recursive: true,
        }),
    }));
    let (binds, mounts) = zos_mounts::split_mounts(&data.mounts)?;
    let oci = zos_mounts::oci_document(mounts, &data.rootfs_propagation)?;
    Ok(ContainerSpec {
        name: Some(name_in(ns, &data.name)),
        group: (!ns.is_empty()).then(|| ns.to_string()),
        env: data.env.clone(),
        working_dir: (!data.working_dir.is_empty()).then(|| data.working_dir.clone()),
        state: InitialState::Running,
        network: Network::Namespace(data.network.namespace.clone()),
        binds,
        oci,
        resources: Resources {
            cpu_millis: Some(u32::try_from(cpus.saturating_mul(1000)).unwrap_or(u32::MAX)),
            memory_bytes: Some(if data.memory == 0 {
                ZOS_DEFAULT_MEMORY
            } else {
                data.memory
            }),
            pids: None,
        },
        capabilities: CapabilityChanges {
            add: if data.elevated {
                vec!["CAP_SYS_ADMIN".into()]
            } else {
                vec![]
            },
            drop: vec![],
        },
        restart: RestartSpec {
            policy: RestartPolicy::Always,
            max_retries: Some(ZOS_MAX_RESTARTS),
        },
        stop_signal: Some("SIGTERM".into()),
        stop_timeout_ms: Some(u64::try_from(shutdown.as_millis()).unwrap_or(u64::MAX)),
        ..ContainerSpec::new(root, CommandLine::Line(data.entrypoint.clone()))
    })
}

/// The zos view of a container.
pub fn zos_from_info(id: &str, info: &ContainerInfo) -> ZosContainer {
    let spec = &info.spec;
    let root_fs = match &spec.mount {
        MountRef::Inline(m) => match &m.source {
            MountSource::Bind(b) if b.base.is_none() => b.path.display().to_string(),
            _ => info.rootfs.display().to_string(),
        },
        MountRef::Existing(_) => info.rootfs.display().to_string(),
    };
    let created = UNIX_EPOCH + Duration::from_millis(info.created_at_ms);
    let (oci_mounts, rootfs_propagation) = zos_mounts::from_document(spec.oci.as_ref());
    ZosContainer {
        name: id.to_string(),
        root_fs,
        env: spec.env.clone(),
        working_dir: spec.working_dir.clone().unwrap_or_default(),
        network: ZosNetworkInfo {
            namespace: match &spec.network {
                Network::Namespace(n) => n.clone(),
                _ => String::new(),
            },
        },
        mounts: spec
            .binds
            .iter()
            .map(|b| ZosMountInfo {
                source: b.source.display().to_string(),
                target: b.target.display().to_string(),
                ..Default::default()
            })
            .chain(oci_mounts)
            .collect(),
        rootfs_propagation,
        entrypoint: info.command.join(" "),
        created_at: Timestamp::from_system(created),
        ..Default::default()
    }
}

impl ContainerHandle {
    async fn zos_get(&self, ns: &str, id: &str) -> Result<ContainerInfo, RemoteError> {
        ContainerModule::get(self, Selector::Name(name_in(ns, id))).await
    }
}

#[imagebus_bus::async_trait]
impl ZosContainerModule for ContainerHandle {
    async fn run(&self, ns: String, data: ZosContainer) -> Result<String, RemoteError> {
        let spec = spec_from_zos(&ns, &data)?;
        ContainerModule::create(self, spec).await?;
        Ok(data.name)
    }

    async fn inspect(&self, ns: String, id: String) -> Result<ZosContainer, RemoteError> {
        let info = self.zos_get(&ns, &id).await?;
        Ok(zos_from_info(&id, &info))
    }

    async fn delete(&self, ns: String, id: String) -> Result<(), RemoteError> {
        let info = self.zos_get(&ns, &id).await?;
        Ok(engine::remove::delete_gracefully(self.engine(), Selector::Id(info.id)).await?)
    }

    async fn list(&self, ns: String) -> Result<Vec<String>, RemoteError> {
        let group = (!ns.is_empty()).then(|| ns.clone());
        let all = ContainerModule::list(
            self,
            ContainerFilter {
                states: vec![],
                group,
            },
        )
        .await?;
        Ok(all
            .into_iter()
            .filter_map(|c| {
                let name = c.name?;
                match &c.group {
                    Some(g) => name.strip_prefix(&format!("{g}.")).map(str::to_string),
                    None => Some(name),
                }
            })
            .collect())
    }

    async fn list_ns(&self) -> Result<Vec<String>, RemoteError> {
        let all = ContainerModule::list(self, ContainerFilter::default()).await?;
        let groups: BTreeSet<String> = all.into_iter().filter_map(|c| c.group).collect();
        Ok(groups.into_iter().collect())
    }

    async fn exec(
        &self,
        ns: String,
        id: String,
        timeout_ns: i64,
        args: Vec<String>,
    ) -> Result<(), RemoteError> {
        let info = self.zos_get(&ns, &id).await?;
        let timeout_ms = u64::try_from(timeout_ns / 1_000_000).unwrap_or(0).max(1);
        let spec = ExecSpec {
            command: CommandLine::Argv(args),
            env: vec![],
            working_dir: Some("/".into()),
            user: None,
            timeout_ms: Some(timeout_ms),
        };
        let out = match engine::exec::exec(self.engine(), Selector::Id(info.id), spec).await {
            Ok(out) => out,
            Err(ContainerError::ExecTimeout { .. }) => {
                return Err(RemoteError::timeout("execution timed out"))
            }
            Err(e) => return Err(e.into()),
        };
        if out.exit_code != 0 {
            return Err(RemoteError::internal(format!(
                "process exited with code {}",
                out.exit_code
            )));
        }
        Ok(())
    }

    async fn logs(&self, ns: String, id: String) -> Result<String, RemoteError> {
        let info = self.zos_get(&ns, &id).await?;
        let req = LogsRequest {
            tail: Some(100),
            ..Default::default()
        };
        let chunk = engine::logs::logs(self.engine(), Selector::Id(info.id), req).await?;
        Ok(chunk.data)
    }

    async fn signal_delete(&self, ns: String, id: String) -> Result<(), RemoteError> {
        let info = match self.zos_get(&ns, &id).await {
            Ok(i) => i,
            Err(e) if e.code == imagebus_bus::ErrorCode::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        // Running or created: SIGTERM now, the SIGKILL fallback in the background. Exited
        // with a restart pending: the restart is cancelled. Stopping: left to its stop.
        if info.state != ContainerState::Stopping {
            match engine::stop::signal(self.engine(), info.id).await {
                Ok(()) => {}
                Err(ContainerError::NotFound(_)) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zos_defaults_and_required_fields() {
        let data = ZosContainer {
            name: "zdb1".into(),
            root_fs: "/var/cache/zdb".into(),
            entrypoint: "/bin/zdb --port 9900".into(),
            network: ZosNetworkInfo {
                namespace: "n1".into(),
            },
            ..Default::default()
        };
        let s = spec_from_zos("tenant", &data).unwrap();
        assert_eq!(s.name.as_deref(), Some("tenant.zdb1"));
        assert_eq!(s.group.as_deref(), Some("tenant"));
        assert_eq!(s.resources.memory_bytes, Some(256 << 20));
        assert_eq!(s.resources.cpu_millis, Some(1000));
        assert_eq!(s.stop_timeout_ms, Some(3000));
        assert_eq!(s.restart.policy, RestartPolicy::Always);
        assert_eq!(s.restart.max_retries, Some(ZOS_MAX_RESTARTS));
        assert_eq!(s.network, Network::Namespace("n1".into()));
        let no_net = ZosContainer {
            network: ZosNetworkInfo::default(),
            ..data.clone()
        };
        assert!(spec_from_zos("t", &no_net)
            .unwrap_err()
            .message
            .contains("network namespace"));
        let no_entry = ZosContainer {
            entrypoint: " ".into(),
            ..data.clone()
        };
        assert!(spec_from_zos("t", &no_entry)
            .unwrap_err()
            .message
            .contains("entrypoint"));
        let no_root = ZosContainer {
            root_fs: String::new(),
            ..data
        };
        assert_eq!(
            spec_from_zos("t", &no_root).unwrap_err().code,
            imagebus_bus::ErrorCode::InvalidArgument
        );
    }
}
