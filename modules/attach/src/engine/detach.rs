//! Detach, Release, and the removal of an attachment.
//!
//! Removal is three parts:
//! 1. A step decides (holders, `force`) and marks the attachment — with every attachment
//!    sharing its device — as `removing`; from then on Acquire, attach-shared and another
//!    Detach refuse it (`Conflict`), while Get/List still show it.
//! 2. The kernel objects are torn down on the blocking pool. On failure a step clears the
//!    marks and nothing else changed.
//! 3. A step forgets the records; a shared attachment also drops its hold on the mapping it
//!    shared, and when that was the mapping's last holder the mapping is marked in that same
//!    step and removed next (the job holds the mapping's key too). The snapshot is made
//!    durable before the reply.

use super::{blocking, Ctx, Engine, State};
use crate::drivers::{self, rbd_fuse};
use crate::error::AttachError;
use crate::store::{Backing, Record};
use imagebus_schema::attach::AttachSource;
use imagebus_schema::{Holder, Selector};
use std::path::PathBuf;
use tracing::info;

/// What one removal takes away: a record and the attachments sharing its device.
#[derive(Debug)]
pub(crate) struct Removal {
    record: Record,
    sharers: Vec<u64>,
}

/// (In a step) marks attachment `id` and its sharers as being removed.
fn mark(s: &mut State, id: u64) -> Option<Removal> {
    let record = s.db.records.get(&id)?.clone();
    let sharers: Vec<u64> =
        s.db.records
            .values()
            .filter(|r| r.shared_of() == Some(id))
            .map(|r| r.id)
            .collect();
    s.removing.insert(id);
    s.removing.extend(sharers.iter().copied());
    Some(Removal { record, sharers })
}

/// (In a step) attachment `id` drops its hold on `of`; when that was the last holder,
/// `of` is marked for removal.
fn release_hold(s: &mut State, of: u64, id: u64) -> Option<Removal> {
    if s.removing.contains(&of) {
        return None;
    }
    let base = s.db.records.get_mut(&of)?;
    base.holders.remove(&Holder::Attach(id));
    if base.holders.is_empty() {
        mark(s, of)
    } else {
        None
    }
}

/// What a Release does after its step.
enum Next {
    Done,
    Persist(crate::store::Snapshot),
    Remove(Box<Removal>),
}

impl Engine {
    /// Detach; see `AttachModule::detach`. The job holds the keys of attachment `id` and,
    /// for a shared one, of the mapping it shares.
    pub async fn detach(&self, id: u64, target: Selector, force: bool) -> Result<(), AttachError> {
        let removal = self
            .step(move |s| -> Result<Removal, AttachError> {
                let r = s.live(id, &target)?;
                let others = r.holders.iter().any(|h| *h != Holder::User);
                if others && !force {
                    return Err(AttachError::InUse {
                        id,
                        holders: r.holders_text(),
                    });
                }
                mark(s, id).ok_or(AttachError::NotFound(target))
            })
            .await??;
        self.remove(removal, force).await
    }

    /// Release; see `AttachModule::release`. Keys as for [`Engine::detach`].
    pub async fn release(&self, id: u64, holder: Holder) -> Result<(), AttachError> {
        let h = holder.clone();
        let next = self
            .step(move |s| {
                if s.removing.contains(&id) {
                    return Next::Done;
                }
                let Some(r) = s.db.records.get_mut(&id) else {
                    return Next::Done;
                };
                if !r.holders.contains(&h) {
                    Next::Done
                } else if r.holders.len() == 1 {
                    mark(s, id).map_or(Next::Done, |r| Next::Remove(Box::new(r)))
                } else {
                    r.holders.remove(&h);
                    Next::Persist(s.snapshot())
                }
            })
            .await?;
        match next {
            Next::Done => Ok(()),
            Next::Remove(removal) => self.remove(*removal, false).await,
            Next::Persist(snap) => {
                if let Err(e) = self.persist(snap).await {
                    let undo = self
                        .step(move |s| {
                            if let Some(r) = s.db.records.get_mut(&id) {
                                r.holders.insert(holder);
                            }
                        })
                        .await;
                    if let Err(undo) = undo {
                        tracing::warn!(id, error = %undo, "undoing a release");
                    }
                    return Err(e);
                }
                Ok(())
            }
        }
    }

    /// Removes attachment `id` whatever holds it (undoing an attach whose record could not
    /// be saved). One that is being removed already is left to that removal.
    pub(super) async fn collect_now(&self, id: u64) -> Result<(), AttachError> {
        let removal = self
            .step(move |s| {
                if s.removing.contains(&id) {
                    None
                } else {
                    mark(s, id)
                }
            })
            .await?;
        match removal {
            Some(removal) => self.remove(removal, true).await,
            None => Ok(()),
        }
    }

    /// Parts 2 and 3 of a removal marked by `mark`, then of the mapping it released last.
    async fn remove(&self, removal: Removal, force: bool) -> Result<(), AttachError> {
        let mut next = Some((removal, force));
        while let Some((removal, force)) = next.take() {
            next = self.remove_one(removal, force).await?.map(|r| (r, false));
        }
        Ok(())
    }

    async fn remove_one(
        &self,
        removal: Removal,
        force: bool,
    ) -> Result<Option<Removal>, AttachError> {
        let (ctx, record) = (self.ctx.clone(), removal.record.clone());
        if let Err(e) = blocking(move || teardown(&ctx, &record, force)).await {
            let undo = self
                .step(move |s| {
                    s.removing.remove(&removal.record.id);
                    for x in &removal.sharers {
                        s.removing.remove(x);
                    }
                })
                .await;
            if let Err(undo) = undo {
                tracing::warn!(error = %undo, "clearing removal marks");
            }
            return Err(e);
        }
        let Removal { record, sharers } = removal;
        let (id, of, device) = (record.id, record.shared_of(), record.device);
        let (snap, next) = self
            .step(move |s| {
                for x in std::iter::once(&id).chain(&sharers) {
                    s.db.records.remove(x);
                    s.removing.remove(x);
                    s.retry_after.remove(x);
                }
                let next = of.and_then(|of| release_hold(s, of, id));
                (s.snapshot(), next)
            })
            .await?;
        self.persist(snap).await?;
        info!(id, device = %device.display(), "detached");
        Ok(next)
    }
}

/// Undoes a record's kernel objects (blocking). A device that is already gone is not an
/// error.
pub(crate) fn teardown(ctx: &Ctx, record: &Record, force: bool) -> Result<(), AttachError> {
    let sys = &ctx.sys;
    match &record.backing {
        Backing::Loop { number, .. } => {
            let tag = ctx.loop_tag(record.id);
            if drivers::loopdev::present(sys, *number, &tag, &PathBuf::new(), None) {
                drivers::loopdev::detach(sys, *number)?;
            }
            Ok(())
        }
        Backing::Local { .. } | Backing::Shared { .. } => Ok(()),
        Backing::Krbd {
            id,
            pool,
            image,
            snapshot,
        } => {
            if drivers::rbd::krbd_present(sys, *id, pool, image, snapshot) {
                drivers::rbd::detach_krbd(sys, *id, force)?;
            }
            Ok(())
        }
        Backing::RbdFuse {
            pid,
            dir,
            loop_number,
        } => {
            let tag = ctx.loop_tag(record.id);
            let image = match &record.source {
                AttachSource::Rbd(src) => src.image.as_str(),
                _ => "",
            };
            if rbd_fuse::loop_is_ours(sys, *loop_number, &tag, dir, image) {
                drivers::loopdev::detach(sys, *loop_number)?;
            }
            rbd_fuse::stop(sys, *pid, dir);
            imagebus_sys::state::remove_tree(dir)?;
            Ok(())
        }
    }
}
