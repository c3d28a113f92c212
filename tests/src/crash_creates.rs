//! The creates that crash tests fire at a [`BusNode`](crate::bus_node::BusNode) while they
//! kill something: containers over a nested overlay → squashfs → loop, bare image mounts
//! and loop attachments, each named, and what each reported. Shared by
//! `tests/tests/concurrency_crash.rs` and the fault matrix.

use crate::bus_node::Stubs;
use crate::mount_stack::{image_on_loop, inline, overlay};
use imagebus_bus::RemoteError;
use imagebus_schema::attach::{AttachModule, AttachSource, AttachSpec, LoopSource};
use imagebus_schema::container::{CommandLine, ContainerModule, ContainerSpec, InitialState};
use imagebus_schema::mount::MountModule;
use std::path::{Path, PathBuf};

/// What a create makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A running container (`sleep 1000`) on overlay → squashfs → loop.
    Container,
    /// A squashfs mount on a loop device.
    Mount,
    /// A read-only loop attachment.
    Attachment,
}

/// What a create reported: the kind, the name asked for, and the id on success.
pub type Outcome = (Kind, String, Result<u64, RemoteError>);

/// The mix of a batch: two containers, two mounts, one attachment in every five.
pub fn kind_of(i: usize) -> Kind {
    match i % 5 {
        0 | 1 => Kind::Container,
        2 | 3 => Kind::Mount,
        _ => Kind::Attachment,
    }
}

/// A running `sleep 1000` named `name` on an overlay over `image` on a loop device; it
/// stops at once (SIGKILL, 500 ms).
pub fn container_spec(name: &str, image: &Path) -> ContainerSpec {
    ContainerSpec {
        name: Some(name.into()),
        state: InitialState::Running,
        stop_signal: Some("KILL".into()),
        stop_timeout_ms: Some(500),
        ..ContainerSpec::new(
            inline(overlay(vec![inline(image_on_loop(image))])),
            CommandLine::Argv(vec!["/bin/sleep".into(), "1000".into()]),
        )
    }
}

/// Creates one object of `kind` named `name` from `image` (a file no other create uses).
pub async fn create(s: Stubs, kind: Kind, name: String, image: PathBuf) -> Outcome {
    let r = match kind {
        Kind::Container => s
            .container
            .create(container_spec(&name, &image))
            .await
            .map(|c| c.id),
        Kind::Mount => {
            let mut spec = image_on_loop(&image);
            spec.name = Some(name.clone());
            s.mount.mount(spec, None).await.map(|m| m.id)
        }
        Kind::Attachment => {
            let spec = AttachSpec {
                name: Some(name.clone()),
                source: AttachSource::Loop(LoopSource {
                    path: image,
                    read_only: true,
                }),
            };
            s.attach.attach(spec, None).await.map(|a| a.id)
        }
    };
    (kind, name, r)
}
