//! Holder checks: a `mount:N` holder is checked with the mount module
//! (`MountModule::holds`, a read there) before anyone adds or drops it on the bus:
//! - `Attach` (with a holder) and `Acquire` need mount N to hold the attachment (a mount
//!   whose create is in flight does): a made-up mount is refused (`InvalidArgument`);
//! - `Release` while mount N still stands on the attachment is refused (`Conflict`): the
//!   mount module drops its record (or marks its undone create) before it releases;
//! - a mount module that cannot be asked within [`ASK_TIMEOUT`] refuses the call
//!   (`Unavailable`, fail closed).
//!
//! `user`, `container:N` and `attach:N` holders are not checked here. Without a mount
//! module (an embedding that trusts its callers) nothing is checked.

use crate::error::AttachError;
use imagebus_schema::mount::MountModule;
use imagebus_schema::Holder;
use std::sync::Arc;
use std::time::Duration;

/// How long the mount module may take to answer.
pub(crate) const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// What the holder is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// Adding it to attachment `id` (`None`: one being created).
    Add(Option<u64>),
    /// Dropping it from attachment `id`.
    Drop(u64),
}

/// Refuses `holder` for `what` unless its mount agrees (see the module doc).
pub(crate) async fn check(
    mounts: Option<&Arc<dyn MountModule>>,
    holder: &Holder,
    what: Use,
) -> Result<(), AttachError> {
    let (Holder::Mount(mount), Some(mounts)) = (holder, mounts) else {
        return Ok(());
    };
    let id = match what {
        Use::Add(id) => id,
        Use::Drop(id) => Some(id),
    };
    // An attachment being created has no id yet: only a mount whose create is in flight
    // holds it (no mount stands on `u64::MAX`).
    let asked = tokio::time::timeout(ASK_TIMEOUT, mounts.holds(*mount, id.unwrap_or(u64::MAX)))
        .await
        .map_err(|_| {
            AttachError::Unavailable(format!(
                "cannot check holder {holder} with the mount module: no answer within {} s",
                ASK_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| {
            AttachError::Unavailable(format!(
                "cannot check holder {holder} with the mount module: {}",
                e.message
            ))
        })?;
    match (what, asked) {
        (Use::Add(_), true) | (Use::Drop(_), false) => Ok(()),
        (Use::Add(id), false) => Err(AttachError::ForgedHolder {
            id: id.map_or_else(|| "(new)".to_string(), |i| i.to_string()),
            mount: *mount,
        }),
        (Use::Drop(id), true) => Err(AttachError::HeldByOwner { id, mount: *mount }),
    }
}
