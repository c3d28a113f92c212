//! Attach (create).
//!
//! 1. Validate the request (pure).
//! 2. Reserve, in one step: the name, the RBD image (pool/namespace/image/snapshot) and a
//!    fresh id; an RBD attach also adds its id to the journal (`intents`). A request that
//!    shares an existing read-only mapping is completed in this step instead
//!    ([`super::shared`]).
//! 3. Make the journal durable (RBD only: a crashed loop attach is found by its device tag,
//!    and a local attach creates nothing).
//! 4. Map on the blocking pool (loop ioctls, krbd sysfs writes, `rbd info`, rbd-fuse).
//! 5. Record, in one step (the reservation and intent go), persist, reply. An rbd-fuse loop
//!    device is bound with autoclear and held open until the record is durable (then
//!    kept): a crash before that leaves no device for reconciliation to find.
//!
//! A failure after 2 releases the reservation in a step; one after 4 also undoes the
//! kernel work.

use super::shared::Shared;
use super::{blocking, now, Ctx, Engine, ImageId, Pending, State};
use crate::drivers::{self, Mapped};
use crate::error::AttachError;
use crate::store::{Record, Snapshot};
use imagebus_schema::attach::{AttachInfo, AttachSource, AttachSpec};
use imagebus_schema::common::validate_name;
use imagebus_schema::Holder;
use imagebus_sys::loopdev::LoopHold;
use std::collections::BTreeSet;
use tracing::info;

/// What the reservation step decided.
enum Reserved {
    /// A new mapping gets this id; the journal snapshot (RBD) must be durable first.
    New { id: u64, journal: Option<Snapshot> },
    /// The request shares an existing mapping; recorded already.
    Shared(Box<Shared>),
}

/// The record of a new mapping, before the driver made it.
struct Draft {
    id: u64,
    name: Option<String>,
    /// Redacted.
    source: AttachSource,
    holder: Holder,
}

impl Draft {
    fn record(self, mapped: Mapped) -> Record {
        Record {
            id: self.id,
            name: self.name,
            source: self.source,
            device: mapped.device,
            driver: mapped.driver.to_string(),
            read_only: mapped.read_only,
            holders: BTreeSet::from([self.holder]),
            created_at: now(),
            backing: mapped.backing,
        }
    }
}

/// Step 1: everything that can be checked without the state or the kernel.
fn validate(spec: &AttachSpec) -> Result<(), AttachError> {
    if let Some(name) = &spec.name {
        validate_name(name).map_err(AttachError::Invalid)?;
    }
    match &spec.source {
        AttachSource::Rbd(src) => {
            drivers::rbd::validate(src)?;
        }
        AttachSource::Loop(src) => drivers::loopdev::validate(src)?,
        AttachSource::Local(src) => drivers::check_path("device", &src.path)?,
    }
    Ok(())
}

/// Step 2 (a step): reserve the name, the image and an id. `source` is redacted.
fn reserve(
    s: &mut State,
    name: Option<String>,
    source: &AttachSource,
    holder: Holder,
    keyed_base: Option<u64>,
) -> Result<Reserved, AttachError> {
    if let Some(name) = &name {
        if let Some(id) = s.name_owner(name) {
            return Err(AttachError::NameTaken {
                name: name.clone(),
                id,
            });
        }
    }
    let image = match source {
        AttachSource::Rbd(src) => {
            if let Some(shared) = super::shared::reserve(s, src, &name, &holder, keyed_base)? {
                return Ok(Reserved::Shared(Box::new(shared)));
            }
            Some(ImageId::of(src))
        }
        _ => None,
    };
    let id = s.db.next_id;
    s.db.next_id += 1;
    let journal = image.is_some();
    s.pending.insert(id, Pending { name, image });
    let journal = journal.then(|| {
        s.db.intents.insert(id);
        s.snapshot()
    });
    Ok(Reserved::New { id, journal })
}

/// Step 4: the kernel work (on the blocking pool).
fn map(ctx: &Ctx, id: u64, source: &AttachSource) -> Result<Mapped, AttachError> {
    let tag = ctx.loop_tag(id);
    match source {
        AttachSource::Loop(src) => drivers::loopdev::attach(&ctx.sys, src, tag),
        AttachSource::Local(src) => drivers::local::attach(&ctx.sys, src),
        AttachSource::Rbd(src) => {
            drivers::rbd::attach(&ctx.sys, src, ctx.key_name(id), &ctx.fuse_dir(id), tag)
        }
    }
}

impl Engine {
    /// Attach; see `AttachModule::attach`. `keyed_base` is the mapping a shared RBD
    /// request found when it was queued (the job holds its key).
    pub async fn attach(
        &self,
        spec: AttachSpec,
        holder: Option<Holder>,
        keyed_base: Option<u64>,
    ) -> Result<AttachInfo, AttachError> {
        let holder = holder.unwrap_or(Holder::User);
        validate(&spec)?;
        let redacted = spec.source.redacted();
        let AttachSpec { name, source } = spec;
        let (n, r, h) = (name.clone(), redacted.clone(), holder.clone());
        let reserved = self
            .step(move |s| reserve(s, n, &r, h, keyed_base))
            .await??;
        match reserved {
            Reserved::Shared(shared) => self.commit_shared(*shared).await,
            Reserved::New { id, journal } => {
                let draft = Draft {
                    id,
                    name,
                    source: redacted,
                    holder,
                };
                self.attach_new(draft, source, journal).await
            }
        }
    }

    /// Steps 3 to 5 for a new mapping.
    async fn attach_new(
        &self,
        draft: Draft,
        source: AttachSource,
        journal: Option<Snapshot>,
    ) -> Result<AttachInfo, AttachError> {
        let id = draft.id;
        if let Some(snap) = journal {
            if let Err(e) = self.persist(snap).await {
                self.unreserve(id).await;
                return Err(e);
            }
        }
        let ctx = self.ctx.clone();
        let mapped = match blocking(move || map(&ctx, id, &source)).await {
            Ok(m) => m,
            Err(e) => {
                self.unreserve(id).await;
                return Err(e);
            }
        };
        let mut mapped = mapped;
        let hold = std::mem::replace(&mut mapped.hold, LoopHold::none());
        let record = draft.record(mapped);
        let info = record.info();
        let snap = self
            .step(move |s| {
                s.pending.remove(&id);
                s.db.intents.remove(&id);
                s.db.records.insert(id, record);
                s.snapshot()
            })
            .await?;
        let kept = match self.persist(snap).await {
            // Recorded: the loop device (rbd-fuse) is ours to free from now on.
            Ok(()) => {
                blocking(move || {
                    hold.keep().map_err(|e| {
                        AttachError::sys("keeping the loop device of a recorded attach", e)
                    })
                })
                .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = kept {
            // Undo it like a forced detach (it may have been acquired or shared meanwhile).
            if let Err(undo) = self.collect_now(id).await {
                tracing::warn!(id, error = %undo, "undoing an attach whose record could not be saved");
            }
            return Err(e);
        }
        info!(id, device = %info.device.display(), driver = %info.driver, kind = info.source.kind(), "attached");
        Ok(info)
    }

    /// Releases the reservation (and intent) of an attach that failed before recording.
    async fn unreserve(&self, id: u64) {
        let snap = self
            .step(move |s| {
                s.pending.remove(&id);
                s.db.intents.remove(&id).then(|| s.snapshot())
            })
            .await;
        self.persist_quietly(snap.ok().flatten()).await;
    }
}
