//! `Acquire`: adding a holder to a visible mount (reference counting; releases and the
//! collection they trigger are in `remove.rs`). The reads (`Get`, `List`) are
//! [`State::get`] and [`State::list`], answered from the current state.

use crate::engine::{Job, State};
use crate::error::MountError;
use imagebus_schema::mount::MountInfo;
use imagebus_schema::{Holder, Selector};

impl State {
    /// Adds `holder` to mount `id` if `target` still points at it and it is visible (not
    /// pending, not being removed). Returns the mount and whether the holder is new.
    pub(crate) fn acquire(
        &mut self,
        target: &Selector,
        id: u64,
        holder: Holder,
    ) -> Result<(MountInfo, bool), MountError> {
        if self.find(target) != Some(id) {
            return Err(MountError::NotFound(target.clone()));
        }
        let rec = self
            .db
            .mounts
            .get_mut(&id)
            .ok_or_else(|| MountError::NotFound(target.clone()))?;
        let added = rec.holders.insert(holder);
        Ok((rec.info(), added))
    }
}

/// The `Acquire` command on mount `id` (what `target` resolved to).
pub(crate) async fn acquire(
    job: &Job,
    target: Selector,
    id: u64,
    holder: Holder,
) -> Result<MountInfo, MountError> {
    let (info, added) = job
        .step(move |st: &mut State| st.acquire(&target, id, holder))
        .await??;
    if added {
        job.save().await?;
    }
    Ok(info)
}
