//! ImageAPI's wire types: the JSON objects of both API generations, with ImageAPI's field
//! names. One type serves as request and reply (as in ImageAPI); fields marked read-only
//! are filled by the server and ignored (or checked) on input. Requests reject unknown
//! fields. The OpenAPI document is generated from these types.

pub mod attach;
pub mod container;
pub mod error;
pub mod mount;

pub use attach::{
    Attach, AttachIscsi, AttachKind, AttachLocal, AttachLoopback, AttachRbd, Base, Rbd, RbdOptions,
};
pub use container::{Container, ContainerState, Namespace};
pub use error::ErrorBody;
pub use mount::{
    Lower, Mount, MountAttach, MountBind, MountKind, MountNfs, MountOverlay, MountRbd,
};
