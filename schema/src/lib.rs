//! imagebus-schema: the versioned object types and interface traits that imagebus modules
//! serve and call. Every trait here is an `#[imagebus_bus::object]`, so it comes with a
//! server dispatcher (`XServer<T>`) and a typed client stub (`XStub`); actors implement the
//! trait on their in-process handles, so a caller holds an `Arc<dyn XModule>` and does not
//! care whether the peer is in the same process or behind Redis.
//!
//! Wire ids: `attach.attach@1`, `mount.mount@1`, `image.image@1`, `container.container@1`,
//! `syscontainer.syscontainer@1` and zos's `container.container@0.0.1`. Request types reject unknown fields; reply types tolerate
//! them (see `docs/objects.md`).
#![warn(missing_docs)]

pub mod attach;
pub mod common;
pub mod container;
pub mod image;
pub mod mount;
pub mod syscontainer;
pub mod system;
pub mod zos;

pub use common::{Holder, Selector};
pub use imagebus_bus::{ErrorCode, RemoteError};
