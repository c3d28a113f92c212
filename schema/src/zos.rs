//! zos compatibility: `container.container@0.0.1`, zos's `ContainerModule` (contd), with
//! the Go types' field names as msgpack keys, served beside `container.container@1`.
//!
//! Go's `Exec(ns, id string, timeout time.Duration, args ...string)` is variadic: zbus
//! flattens the variadic part into one input per element, which `#[object]` cannot express,
//! so this object's dispatcher ([`ZosContainerModuleServer`]) and stub
//! ([`ZosContainerModuleStub`]) are written by hand against `imagebus_bus::Object` and
//! `Client::call`, and so is its forwarding trait ([`ZosContainerModuleForward`]).

use imagebus_bus::codec::{decode_arg, encode_arg, encode_reply};
use imagebus_bus::protocol::Timestamp;
use imagebus_bus::{Client, DispatchError, Object, ObjectId, RemoteError, Reply};
use serde::{Deserialize, Deserializer, Serialize};
use serde_bytes::ByteBuf;
use std::sync::Arc;
use std::time::Duration;

mod forward;
pub use forward::ZosContainerModuleForward;

/// Object name.
pub const NAME: &str = "container";
/// Object version (zos's).
pub const VERSION: &str = "0.0.1";

/// Wire method names, in zos's interface order.
pub const METHODS: &[&str] = &[
    "Run",
    "Inspect",
    "Delete",
    "List",
    "ListNS",
    "Exec",
    "Logs",
    "SignalDelete",
];

/// The methods that change nothing: what a read-only caller may call.
pub const READS: &[&str] = &["Inspect", "List", "ListNS", "Logs"];

/// Go `nil` slices decode as empty.
fn nil_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// Go's zero `time.Time`, the default of `CreatedAt`.
fn go_zero_time() -> Timestamp {
    Timestamp::GO_ZERO
}

/// `pkg.NetworkInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZosNetworkInfo {
    /// Name of the network namespace under `/var/run/netns`.
    #[serde(rename = "Namespace", default)]
    pub namespace: String,
}

/// `pkg.MountInfo`: an rbind with private propagation, unless `Type`/`Options` (fields
/// of zos's `MountInfo` before 2019-11, still sent by older callers) ask otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZosMountInfo {
    /// Host path.
    #[serde(rename = "Source", default)]
    pub source: String,
    /// Path in the container.
    #[serde(rename = "Target", default)]
    pub target: String,
    /// Mount type: empty, `bind` or `rbind` (anything else is refused). Left off the wire
    /// when empty, as today's zos sends it.
    #[serde(rename = "Type", default, skip_serializing_if = "String::is_empty")]
    pub typ: String,
    /// Mount options (`ro`, `bind`, propagation, ...); see `ZOS_MOUNT_OPTIONS` in the
    /// container module. Left off the wire when empty.
    #[serde(rename = "Options", default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// `logger.LogsRedis`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZosLogsRedis {
    /// `redis://host/channel` for stdout.
    #[serde(rename = "Stdout", default)]
    pub stdout: String,
    /// For stderr.
    #[serde(rename = "Stderr", default)]
    pub stderr: String,
}

/// `logger.Logs` (accepted and kept; imagebus logs to a file only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZosLogs {
    /// `redis`, `file` or `console`.
    #[serde(rename = "Type", default)]
    pub kind: String,
    /// Backend data.
    #[serde(rename = "Data", default)]
    pub data: ZosLogsRedis,
}

/// `pkg.Stats` (accepted and ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZosStats {
    /// `redis`.
    #[serde(rename = "Type", default)]
    pub kind: String,
    /// Endpoint URL.
    #[serde(rename = "Endpoint", default)]
    pub endpoint: String,
}

/// `pkg.Container`, field for field in Go's order (msgpack keys are the Go names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZosContainer {
    /// Container name; zos's container id.
    #[serde(rename = "Name", default)]
    pub name: String,
    /// Host path of the root filesystem (required).
    #[serde(rename = "RootFS", default)]
    pub root_fs: String,
    /// `KEY=VALUE` pairs.
    #[serde(rename = "Env", default, deserialize_with = "nil_as_empty")]
    pub env: Vec<String>,
    /// Working directory.
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: String,
    /// Network namespace (required).
    #[serde(rename = "Network", default)]
    pub network: ZosNetworkInfo,
    /// Extra bind mounts.
    #[serde(rename = "Mounts", default, deserialize_with = "nil_as_empty")]
    pub mounts: Vec<ZosMountInfo>,
    /// Command line, split like a shell (required).
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: String,
    /// coreX as PID 1 (unsupported: refused when true).
    #[serde(rename = "Interactive", default)]
    pub interactive: bool,
    /// CPU count limit (Go `uint`; 0 = 1).
    #[serde(rename = "CPU", default)]
    pub cpu: u64,
    /// Memory limit in bytes (Go `gridtypes.Unit`; 0 = 256 MiB).
    #[serde(rename = "Memory", default)]
    pub memory: u64,
    /// Log backends (kept, not used).
    #[serde(rename = "Logs", default, deserialize_with = "nil_as_empty")]
    pub logs: Vec<ZosLogs>,
    /// Stats backends (kept, not used).
    #[serde(rename = "Stats", default, deserialize_with = "nil_as_empty")]
    pub stats: Vec<ZosStats>,
    /// CAP_SYS_ADMIN (for FUSE inside).
    #[serde(rename = "Elevated", default)]
    pub elevated: bool,
    /// Creation time (Go `time.Time`, msgpack timestamp extension).
    #[serde(rename = "CreatedAt", default = "go_zero_time")]
    pub created_at: Timestamp,
    /// Root propagation: empty (`rprivate`), or one of `private`, `rprivate`, `slave`,
    /// `rslave`, `shared`, `rshared` (anything else is refused).
    #[serde(rename = "RootFsPropagation", default)]
    pub rootfs_propagation: String,
    /// Grace period before SIGKILL, in nanoseconds (Go `time.Duration`; 0 = 3 s).
    #[serde(rename = "ShutdownTimeout", default)]
    pub shutdown_timeout: i64,
}

impl Default for ZosContainer {
    fn default() -> Self {
        Self {
            name: String::new(),
            root_fs: String::new(),
            env: Vec::new(),
            working_dir: String::new(),
            network: ZosNetworkInfo::default(),
            mounts: Vec::new(),
            entrypoint: String::new(),
            interactive: false,
            cpu: 0,
            memory: 0,
            logs: Vec::new(),
            stats: Vec::new(),
            elevated: false,
            created_at: Timestamp::GO_ZERO,
            rootfs_propagation: String::new(),
            shutdown_timeout: 0,
        }
    }
}

/// zos's `ContainerModule`. `ns` is the tenant namespace (imagebus's container group).
#[imagebus_bus::async_trait]
pub trait ZosContainerModule: Send + Sync {
    /// Creates and starts a container; returns its id (= `data.Name`).
    async fn run(&self, ns: String, data: ZosContainer) -> Result<String, RemoteError>;
    /// The container as zos describes it.
    async fn inspect(&self, ns: String, id: String) -> Result<ZosContainer, RemoteError>;
    /// Stops (stop signal, SIGKILL after the shutdown timeout) and deletes.
    async fn delete(&self, ns: String, id: String) -> Result<(), RemoteError>;
    /// Container ids in `ns` (every namespace when empty).
    async fn list(&self, ns: String) -> Result<Vec<String>, RemoteError>;
    /// Namespaces that have containers.
    async fn list_ns(&self) -> Result<Vec<String>, RemoteError>;
    /// Runs `args` in the container; a non-zero exit or the timeout is an error.
    async fn exec(
        &self,
        ns: String,
        id: String,
        timeout_ns: i64,
        args: Vec<String>,
    ) -> Result<(), RemoteError>;
    /// The last 100 lines of the log.
    async fn logs(&self, ns: String, id: String) -> Result<String, RemoteError>;
    /// Sends SIGTERM and returns at once; an unknown id is not an error.
    async fn signal_delete(&self, ns: String, id: String) -> Result<(), RemoteError>;
}

/// Serves a [`ZosContainerModule`] as `container@0.0.1`.
pub struct ZosContainerModuleServer<T: ZosContainerModule + ?Sized> {
    inner: Arc<T>,
}

impl<T: ZosContainerModule + ?Sized> ZosContainerModuleServer<T> {
    /// Wraps an implementation.
    pub fn new(inner: Arc<T>) -> Self {
        Self { inner }
    }
}

impl<T: ZosContainerModule + ?Sized> std::fmt::Debug for ZosContainerModuleServer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ZosContainerModuleServer")
    }
}

fn arity(inputs: &[ByteBuf], expected: usize) -> Result<(), DispatchError> {
    if inputs.len() == expected {
        Ok(())
    } else {
        Err(DispatchError::Arity {
            expected,
            got: inputs.len(),
        })
    }
}

#[imagebus_bus::async_trait]
impl<T: ZosContainerModule + ?Sized + 'static> Object for ZosContainerModuleServer<T> {
    fn id(&self) -> ObjectId {
        ObjectId::new(NAME, VERSION)
    }

    fn methods(&self) -> &'static [&'static str] {
        METHODS
    }

    fn reads(&self) -> &'static [&'static str] {
        READS
    }

    async fn dispatch(&self, method: &str, inputs: Vec<ByteBuf>) -> Result<Reply, DispatchError> {
        let s = |i| decode_arg::<String>(&inputs, i);
        let i = &self.inner;
        Ok(match method {
            "Run" => {
                arity(&inputs, 2)?;
                encode_reply(i.run(s(0)?, decode_arg(&inputs, 1)?).await)
            }
            "Inspect" => {
                arity(&inputs, 2)?;
                encode_reply(i.inspect(s(0)?, s(1)?).await)
            }
            "Delete" => {
                arity(&inputs, 2)?;
                encode_reply(i.delete(s(0)?, s(1)?).await)
            }
            "List" => {
                arity(&inputs, 1)?;
                encode_reply(i.list(s(0)?).await)
            }
            "ListNS" => {
                arity(&inputs, 0)?;
                encode_reply(i.list_ns().await)
            }
            "Exec" => {
                // Variadic: ns, id, timeout, then one input per argument.
                if inputs.len() < 3 {
                    return Err(DispatchError::Arity {
                        expected: 3,
                        got: inputs.len(),
                    });
                }
                let args = (3..inputs.len()).map(s).collect::<Result<Vec<_>, _>>()?;
                encode_reply(i.exec(s(0)?, s(1)?, decode_arg(&inputs, 2)?, args).await)
            }
            "Logs" => {
                arity(&inputs, 2)?;
                encode_reply(i.logs(s(0)?, s(1)?).await)
            }
            "SignalDelete" => {
                arity(&inputs, 2)?;
                encode_reply(i.signal_delete(s(0)?, s(1)?).await)
            }
            other => return Err(DispatchError::UnknownMethod(other.to_string())),
        })
    }
}

/// Calls a `container@0.0.1` over the bus; implements [`ZosContainerModule`].
#[derive(Debug, Clone)]
pub struct ZosContainerModuleStub {
    client: Client,
    module: String,
}

impl ZosContainerModuleStub {
    /// Module `container`.
    pub fn new(client: Client) -> Self {
        Self::with_module(client, crate::container::MODULE)
    }

    /// Another module name.
    pub fn with_module(client: Client, module: impl Into<String>) -> Self {
        Self {
            client,
            module: module.into(),
        }
    }

    /// Per-call deadline.
    pub fn with_timeout(mut self, d: Duration) -> Self {
        self.client = self.client.with_timeout(d);
        self
    }

    /// `container@0.0.1`.
    pub fn object_id() -> ObjectId {
        ObjectId::new(NAME, VERSION)
    }

    async fn call<R: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        inputs: Vec<ByteBuf>,
    ) -> Result<R, RemoteError> {
        self.client
            .call(&self.module, &Self::object_id(), method, inputs)
            .await
    }
}

#[imagebus_bus::async_trait]
impl ZosContainerModule for ZosContainerModuleStub {
    async fn run(&self, ns: String, data: ZosContainer) -> Result<String, RemoteError> {
        self.call("Run", vec![encode_arg(&ns)?, encode_arg(&data)?])
            .await
    }
    async fn inspect(&self, ns: String, id: String) -> Result<ZosContainer, RemoteError> {
        self.call("Inspect", vec![encode_arg(&ns)?, encode_arg(&id)?])
            .await
    }
    async fn delete(&self, ns: String, id: String) -> Result<(), RemoteError> {
        self.call("Delete", vec![encode_arg(&ns)?, encode_arg(&id)?])
            .await
    }
    async fn list(&self, ns: String) -> Result<Vec<String>, RemoteError> {
        let v: Option<Vec<String>> = self.call("List", vec![encode_arg(&ns)?]).await?;
        Ok(v.unwrap_or_default())
    }
    async fn list_ns(&self) -> Result<Vec<String>, RemoteError> {
        let v: Option<Vec<String>> = self.call("ListNS", vec![]).await?;
        Ok(v.unwrap_or_default())
    }
    async fn exec(
        &self,
        ns: String,
        id: String,
        timeout_ns: i64,
        args: Vec<String>,
    ) -> Result<(), RemoteError> {
        let mut inputs = vec![encode_arg(&ns)?, encode_arg(&id)?, encode_arg(&timeout_ns)?];
        for a in &args {
            inputs.push(encode_arg(a)?);
        }
        self.call("Exec", inputs).await
    }
    async fn logs(&self, ns: String, id: String) -> Result<String, RemoteError> {
        self.call("Logs", vec![encode_arg(&ns)?, encode_arg(&id)?])
            .await
    }
    async fn signal_delete(&self, ns: String, id: String) -> Result<(), RemoteError> {
        self.call("SignalDelete", vec![encode_arg(&ns)?, encode_arg(&id)?])
            .await
    }
}

#[cfg(test)]
mod tests;
