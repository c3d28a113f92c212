//! What `attach rm -f` and `mount rm -f` check before forcing: no container may hold the
//! object, directly or through mounts and attachments that hold it.

use anyhow::Result;
use imagebus_bus::{Client, ErrorCode, RemoteError};
use imagebus_schema::attach::{AttachModule, AttachModuleStub};
use imagebus_schema::container::{ContainerModule, ContainerModuleStub};
use imagebus_schema::mount::{MountModule, MountModuleStub};
use imagebus_schema::{Holder, Selector};

/// How deep holder chains are followed (mount → overlay → … is short in practice).
const MAX_DEPTH: usize = 16;

/// `Conflict` when a container that still exists holds `what` (whose holders are
/// `holders`) directly or through other holders; containers that are gone do not count.
pub async fn refuse_if_a_container_holds(
    client: &Client,
    what: &str,
    holders: Vec<Holder>,
) -> Result<()> {
    let mut todo: Vec<(Holder, usize)> = holders.into_iter().map(|h| (h, 0)).collect();
    while let Some((holder, depth)) = todo.pop() {
        if depth > MAX_DEPTH {
            continue;
        }
        let next = match holder {
            Holder::User => continue,
            Holder::Container(id) => {
                let c = ContainerModuleStub::new(client.clone());
                match c.get(Selector::Id(id)).await {
                    Ok(info) => {
                        return Err(RemoteError::conflict(format!(
                            "{what} is in use by container {id} ({}); remove the container \
                             first: -f never removes what a container uses",
                            info.state.as_str()
                        ))
                        .into())
                    }
                    Err(e) if e.code == ErrorCode::NotFound => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Holder::Mount(id) => match MountModuleStub::new(client.clone())
                .get(Selector::Id(id))
                .await
            {
                Ok(m) => m.holders,
                Err(e) if e.code == ErrorCode::NotFound => continue,
                Err(e) => return Err(e.into()),
            },
            Holder::Attach(id) => match AttachModuleStub::new(client.clone())
                .get(Selector::Id(id))
                .await
            {
                Ok(a) => a.holders,
                Err(e) if e.code == ErrorCode::NotFound => continue,
                Err(e) => return Err(e.into()),
            },
        };
        todo.extend(next.into_iter().map(|h| (h, depth + 1)));
    }
    Ok(())
}
