//! The daemon's built-in `imagebus.system@1` object and the registry of what it serves.

use futures::StreamExt;
use imagebus_bus::{EventStream, RemoteError};
use imagebus_schema::system::{
    Heartbeat, ModuleInfo, ModuleState, SystemModule, VersionInfo, MAX_PING_LEN,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What this process serves, kept current by the supervisor.
#[derive(Debug, Default)]
pub struct Registry {
    modules: Mutex<BTreeMap<String, ModuleInfo>>,
}

impl Registry {
    /// Records (or replaces) a module's entry.
    pub fn set(&self, info: ModuleInfo) {
        self.lock().insert(info.module.clone(), info);
    }

    /// Changes a module's state, counting restarts.
    pub fn set_state(&self, module: &str, state: ModuleState, restarted: bool) {
        if let Some(m) = self.lock().get_mut(module) {
            m.state = state;
            if restarted {
                m.restarts += 1;
            }
        }
    }

    /// Every module, by name.
    pub fn list(&self) -> Vec<ModuleInfo> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ModuleInfo>> {
        // The map stays consistent even if a holder panicked: every update is one insert.
        self.modules.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Serves `imagebus.system@1`.
#[derive(Debug, Clone)]
pub struct SystemHandle {
    registry: Arc<Registry>,
    started: Instant,
    heartbeat: Duration,
}

impl SystemHandle {
    /// A handle reporting from `registry`, publishing a heartbeat every `heartbeat`.
    pub fn new(registry: Arc<Registry>, heartbeat: Duration) -> Self {
        Self {
            registry,
            started: Instant::now(),
            heartbeat,
        }
    }
}

#[imagebus_bus::async_trait]
impl SystemModule for SystemHandle {
    async fn version(&self) -> Result<VersionInfo, RemoteError> {
        Ok(VersionInfo {
            daemon: env!("CARGO_PKG_VERSION").to_string(),
            protocol: "zbus".to_string(),
            protocol_version: "1".to_string(),
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
        })
    }

    async fn ping(&self, text: String) -> Result<String, RemoteError> {
        if text.len() > MAX_PING_LEN {
            return Err(RemoteError::invalid_argument(format!(
                "ping text is {} bytes, at most {MAX_PING_LEN} are echoed",
                text.len()
            )));
        }
        Ok(text)
    }

    async fn modules(&self) -> Result<Vec<ModuleInfo>, RemoteError> {
        Ok(self.registry.list())
    }

    fn heartbeat(&self) -> EventStream<Heartbeat> {
        let started = self.started;
        let mut interval = tokio::time::interval(self.heartbeat);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        futures::stream::unfold((interval, 0u64), move |(mut interval, seq)| async move {
            interval.tick().await;
            let beat = Heartbeat {
                pid: std::process::id(),
                seq: seq + 1,
                uptime_secs: started.elapsed().as_secs(),
            };
            Some((beat, (interval, seq + 1)))
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagebus_bus::ErrorCode;

    #[tokio::test]
    async fn ping_echoes_and_bounds() {
        let h = SystemHandle::new(Arc::default(), Duration::from_secs(1));
        assert_eq!(h.ping("hi".into()).await.unwrap(), "hi");
        let err = h.ping("x".repeat(MAX_PING_LEN + 1)).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument);
    }

    #[tokio::test]
    async fn modules_reflect_the_registry() {
        let reg = Arc::new(Registry::default());
        let h = SystemHandle::new(reg.clone(), Duration::from_secs(1));
        reg.set(ModuleInfo {
            module: "mount".into(),
            objects: vec!["mount@1".into()],
            workers: 2,
            state: ModuleState::Running,
            restarts: 0,
        });
        reg.set_state("mount", ModuleState::Restarting, true);
        let m = h.modules().await.unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].state, m[0].restarts), (ModuleState::Restarting, 1));
        assert_eq!(h.version().await.unwrap().protocol, "zbus");
    }

    #[tokio::test]
    async fn heartbeats_count_up() {
        let h = SystemHandle::new(Arc::default(), Duration::from_millis(10));
        let beats: Vec<Heartbeat> = h.heartbeat().take(2).collect().await;
        assert_eq!(beats.iter().map(|b| b.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(beats[0].pid, std::process::id());
    }
}
