//! Reference counts: shared read-only RBD mappings and Acquire.
//!
//! A shared attachment is a record of its own (`Backing::Shared { of }`) that holds
//! `Holder::Attach(self)` on the mapping whose device it uses. It is created in the
//! reservation step of Attach, only on a mapping that is recorded, read-only and not being
//! removed; a mapping still being created or removed is `Conflict` (try again). The job
//! holds the key of the mapping it shares (found when the request was queued), so undoing
//! it (and collecting the mapping when that was its last holder) is ordered with every
//! other command on the mapping.

use super::{now, Engine, ImageId, State};
use crate::drivers::rbd::image_spec;
use crate::error::AttachError;
use crate::store::{Backing, Record, Snapshot};
use imagebus_schema::attach::{AttachInfo, AttachSource, RbdSource};
use imagebus_schema::{Holder, Selector};
use std::collections::BTreeSet;
use tracing::info;

/// A shared attachment recorded by the reservation step, to be made durable.
pub(crate) struct Shared {
    info: AttachInfo,
    snap: Snapshot,
    of: u64,
}

/// Who uses an RBD image now.
enum ImageUse {
    /// A recorded mapping.
    Live { id: u64, read_only: bool },
    /// An attach in flight maps it.
    Creating { id: u64 },
    /// Its mapping is being removed.
    Removing { id: u64 },
}

/// The recorded mapping (not a shared attachment) of `img`, if any.
fn mapping<'a>(s: &'a State, img: &ImageId) -> Option<&'a Record> {
    s.db.records
        .values()
        .find(|r| match (&r.source, &r.backing) {
            (_, Backing::Shared { .. }) => false,
            (AttachSource::Rbd(o), _) => ImageId::of(o) == *img,
            _ => false,
        })
}

fn image_use(s: &State, img: &ImageId) -> Option<ImageUse> {
    if let Some(r) = mapping(s, img) {
        return Some(if s.removing.contains(&r.id) {
            ImageUse::Removing { id: r.id }
        } else {
            ImageUse::Live {
                id: r.id,
                read_only: r.read_only,
            }
        });
    }
    s.pending
        .iter()
        .find(|(_, p)| p.image.as_ref() == Some(img))
        .map(|(id, _)| ImageUse::Creating { id: *id })
}

/// The mapping a shared read-only request would share, for its job's key (none while it
/// is being removed: the request is refused at once then, without waiting for its key).
pub(crate) fn base_for(s: &State, src: &RbdSource) -> Option<u64> {
    (src.shared && src.read_only)
        .then(|| mapping(s, &ImageId::of(src)).map(|r| r.id))
        .flatten()
        .filter(|id| !s.removing.contains(id))
}

/// Part of the reservation step of Attach for an RBD source (`src` redacted): a conflict,
/// a shared attachment recorded on the existing mapping, or `None` (map it anew).
pub(super) fn reserve(
    s: &mut State,
    src: &RbdSource,
    name: &Option<String>,
    holder: &Holder,
    keyed_base: Option<u64>,
) -> Result<Option<Shared>, AttachError> {
    let busy = |id, doing| AttachError::ImageBusy {
        image: image_spec(src),
        id,
        doing,
    };
    match image_use(s, &ImageId::of(src)) {
        None => Ok(None),
        Some(ImageUse::Live { id, read_only }) => {
            if !(src.shared && src.read_only && read_only) {
                return Err(AttachError::AlreadyMapped {
                    image: image_spec(src),
                    id,
                });
            }
            if keyed_base != Some(id) {
                // Mapped after this request was queued: the job does not hold its key.
                return Err(busy(id, "mapped"));
            }
            share(s, id, src, name, holder).map(Some)
        }
        Some(ImageUse::Creating { id }) if src.shared => Err(busy(id, "mapped")),
        Some(ImageUse::Creating { id }) => Err(AttachError::AlreadyMapped {
            image: image_spec(src),
            id,
        }),
        Some(ImageUse::Removing { id }) => Err(busy(id, "unmapped")),
    }
}

/// Records a new attachment sharing mapping `of` (in the reservation step).
fn share(
    s: &mut State,
    of: u64,
    src: &RbdSource,
    name: &Option<String>,
    holder: &Holder,
) -> Result<Shared, AttachError> {
    let id = s.db.next_id;
    let base =
        s.db.records
            .get_mut(&of)
            .ok_or(AttachError::NotFound(Selector::Id(of)))?;
    s.db.next_id += 1;
    base.holders.insert(Holder::Attach(id));
    let record = Record {
        id,
        name: name.clone(),
        source: AttachSource::Rbd(src.clone()),
        device: base.device.clone(),
        driver: base.driver.clone(),
        read_only: true,
        holders: BTreeSet::from([holder.clone()]),
        created_at: now(),
        backing: Backing::Shared { of },
    };
    let info = record.info();
    s.db.records.insert(id, record);
    Ok(Shared {
        info,
        snap: s.snapshot(),
        of,
    })
}

impl Engine {
    /// Makes a shared attachment durable; undoes it when that fails.
    pub(super) async fn commit_shared(&self, shared: Shared) -> Result<AttachInfo, AttachError> {
        let Shared { info, snap, of } = shared;
        if let Err(e) = self.persist(snap).await {
            if let Err(undo) = self.collect_now(info.id).await {
                tracing::warn!(id = info.id, error = %undo, "undoing a shared attach whose record could not be saved");
            }
            return Err(e);
        }
        info!(id = info.id, of, device = %info.device.display(), "attached (shared)");
        Ok(info)
    }

    /// Acquire; see `AttachModule::acquire`. The job holds attachment `id`'s key.
    pub async fn acquire(
        &self,
        id: u64,
        target: Selector,
        holder: Holder,
    ) -> Result<AttachInfo, AttachError> {
        let h = holder.clone();
        let (info, snap) = self
            .step(move |s| -> Result<_, AttachError> {
                s.live(id, &target)?;
                let r =
                    s.db.records
                        .get_mut(&id)
                        .ok_or_else(|| AttachError::NotFound(target.clone()))?;
                let added = r.holders.insert(h);
                let info = r.info();
                Ok((info, added.then(|| s.snapshot())))
            })
            .await??;
        if let Some(snap) = snap {
            if let Err(e) = self.persist(snap).await {
                let undo = self
                    .step(move |s| {
                        if let Some(r) = s.db.records.get_mut(&id) {
                            r.holders.remove(&holder);
                        }
                    })
                    .await;
                if let Err(undo) = undo {
                    tracing::warn!(id, error = %undo, "undoing an acquire");
                }
                return Err(e);
            }
        }
        Ok(info)
    }
}
