//! Holder checks: a holder names its owner (a container, a parent mount), and the owner is
//! asked whether the reference is really its own before anyone adds or drops it on the
//! bus:
//! - `Acquire` (and `Mount` with a holder) needs the owner to hold the reference (a create
//!   in flight does): a made-up owner is refused (`InvalidArgument`), nothing changes;
//! - `Release` of a reference the owner still holds is refused (`Conflict`): the owner
//!   stops claiming it (marks itself deleted, or drops its record) before it releases;
//! - an owner that cannot be asked within [`ASK_TIMEOUT`] refuses the call
//!   (`Unavailable`, fail closed).
//!
//! `Container(n)` is asked of the container module (`ContainerModule::holds`, a read that
//! never waits on the container's commands); `Mount(m)` is answered here, from the state.
//! `User` (the operator's own reference) and `Attach` are not checked. The module's own
//! cascade drops `Mount(m)` holders in state steps, not through these checks.

use crate::engine::{Ctx, State};
use crate::error::{MountError, MountId};
use crate::store::MountRecord;
use imagebus_bus::RemoteError;
use imagebus_schema::Holder;
use std::time::Duration;

/// How long the owner of a holder may take to answer.
pub(crate) const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// What the holder is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// Adding it to mount `id` (`None`: a mount being created).
    Add(Option<u64>),
    /// Dropping it from mount `id`.
    Drop(u64),
}

impl Use {
    /// The mount concerned (`None`: one being created).
    pub(crate) fn id(self) -> Option<u64> {
        match self {
            Use::Add(id) => id,
            Use::Drop(id) => Some(id),
        }
    }
}

impl State {
    /// Whether mount `owner` holds a reference to mount `id` (`None`: one being created):
    /// it is being created, or it exists, is not being removed and stands on `id`.
    pub(crate) fn mount_holds(&self, owner: u64, id: Option<u64>) -> bool {
        self.claims(owner, |rec| id.is_some_and(|id| rec.children.contains(&id)))
    }

    /// Whether mount `owner` holds a reference to attachment `att` (`MountModule::holds`):
    /// it is being created, or it exists, is not being removed and stands on `att`.
    pub(crate) fn holds_attachment(&self, owner: u64, att: u64) -> bool {
        self.claims(owner, |rec| rec.attachment == Some(att))
    }

    /// Whether mount `owner` still claims what `stands_on` says: never while it is being
    /// removed or its create is being undone; always while its create is in flight (its
    /// record may not exist yet).
    fn claims(&self, owner: u64, stands_on: impl FnOnce(&MountRecord) -> bool) -> bool {
        if self.removing.contains(&owner) || self.abandoned.contains(&owner) {
            return false;
        }
        if self.pending.contains_key(&owner) {
            return true;
        }
        self.db.mounts.get(&owner).is_some_and(stands_on)
    }
}

/// The answer of the owner of `holder` in another module (`None`: not checked here:
/// `User`, `Attach`, and `Mount`, which the caller answers with [`State::mount_holds`]).
pub(crate) async fn ask_owner(
    ctx: &Ctx,
    holder: &Holder,
    id: Option<u64>,
) -> Result<Option<bool>, MountError> {
    let Holder::Container(n) = holder else {
        return Ok(None);
    };
    // No container module (a library embedding without one): not checked.
    let Some(containers) = ctx.container.clone() else {
        return Ok(None);
    };
    // A mount being created has no id yet: only a container whose create is in flight
    // holds it (no record stands on `u64::MAX`).
    let asked = tokio::time::timeout(ASK_TIMEOUT, containers.holds(*n, id.unwrap_or(u64::MAX)))
        .await
        .unwrap_or_else(|_| {
            Err(RemoteError::unavailable(format!(
                "no answer within {} s",
                ASK_TIMEOUT.as_secs()
            )))
        });
    asked
        .map(Some)
        .map_err(|cause| MountError::OwnerUnavailable {
            holder: holder.clone(),
            cause,
        })
}

/// Refuses `holder` for `what` unless its owner agrees (see the module doc).
pub(crate) fn judge(holder: &Holder, what: Use, holds: Option<bool>) -> Result<(), MountError> {
    match (what, holds) {
        (_, None) => Ok(()),
        (Use::Add(_), Some(true)) | (Use::Drop(_), Some(false)) => Ok(()),
        (Use::Add(id), Some(false)) => Err(MountError::ForgedHolder {
            id: MountId(id),
            holder: holder.clone(),
        }),
        (Use::Drop(id), Some(true)) => Err(MountError::HeldByOwner {
            id,
            holder: holder.clone(),
        }),
    }
}
