//! The attach module's logic, synchronous and single-owner: the actor holds one
//! [`Attachments`] and runs each command on a blocking thread. Every method either
//! completes (kernel and state file agree) or fails leaving both as they were.

use crate::drivers::{self, rbd::image_spec, rbd_fuse, Mapped};
use crate::error::AttachError;
use crate::reconcile::ReconcileReport;
use crate::store::{Backing, Db, Intent, Record, Store};
use crate::{AttachConfig, AttachSys};
use imagebus_schema::attach::{AttachInfo, AttachSource, AttachSpec, RbdSource};
use imagebus_schema::common::validate_name;
use imagebus_schema::{Holder, Selector};
use imagebus_sys::proc::Reaped;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::{info, warn};

/// All attachments of one state directory.
#[derive(Debug)]
pub struct Attachments {
    pub(crate) cfg: AttachConfig,
    pub(crate) sys: AttachSys,
    pub(crate) store: Store,
    pub(crate) db: Db,
    /// When a failed rbd-fuse restart may be tried again, by attachment id.
    pub(crate) retry_after: BTreeMap<u64, Instant>,
}

/// How long to wait before restarting an rbd-fuse whose restart failed.
const RETRY_BACKOFF: Duration = Duration::from_secs(30);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_token() -> String {
    // 64 bits from the clock and the pid are enough to tell state directories apart.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{:016x}",
        (nanos as u64) ^ (u64::from(std::process::id()) << 40)
    )
}

impl Attachments {
    /// Opens (or creates) the state in `cfg.state_dir` and reconciles it with the kernel.
    pub fn open(cfg: AttachConfig, sys: AttachSys) -> Result<(Self, ReconcileReport), AttachError> {
        imagebus_sys::state::ensure_private_dir(&cfg.state_dir)?;
        imagebus_sys::state::ensure_private_dir(&cfg.rbd_dir())?;
        let store = Store::new(&cfg.state_dir);
        let db = match store.load()? {
            Some(db) => db,
            None => {
                let db = Db::new(random_token());
                store.save(&db)?;
                db
            }
        };
        let mut this = Self {
            cfg,
            sys,
            store,
            db,
            retry_after: BTreeMap::new(),
        };
        let report = this.reconcile()?;
        Ok((this, report))
    }

    /// Attach; see `AttachModule::attach`.
    pub fn attach(
        &mut self,
        spec: AttachSpec,
        holder: Option<Holder>,
    ) -> Result<AttachInfo, AttachError> {
        let holder = holder.unwrap_or(Holder::User);
        if let Some(name) = &spec.name {
            validate_name(name).map_err(AttachError::Invalid)?;
            if let Some(r) = self
                .db
                .records
                .values()
                .find(|r| r.name.as_ref() == Some(name))
            {
                return Err(AttachError::NameTaken {
                    name: name.clone(),
                    id: r.id,
                });
            }
        }
        if let AttachSource::Rbd(src) = &spec.source {
            drivers::rbd::validate(src)?;
            if let Some(existing) = self.mapping_of(src) {
                let (id, ro) = (existing.id, existing.read_only);
                if !(src.shared && src.read_only && ro) {
                    return Err(AttachError::AlreadyMapped {
                        image: image_spec(src),
                        id,
                    });
                }
                return self.attach_shared(spec, holder, id);
            }
        }
        let id = self.db.next_id;
        // Only RBD needs the intent on disk before the kernel is touched: a crashed loop
        // attach leaves a device tagged with the id, found by the tag at start-up (before
        // the unrecorded id can be handed out again), and a local attach creates nothing.
        // Skipping it saves one synchronous state write on the loop fast path.
        let journal = matches!(spec.source, AttachSource::Rbd(_));
        if journal {
            self.db.next_id += 1;
            self.db.intent = Some(Intent { id });
            self.store.save(&self.db)?;
        }
        let mapped = match self.map(id, &spec.source) {
            Ok(m) => m,
            Err(e) => {
                if journal {
                    self.db.intent = None;
                    self.store.save(&self.db)?;
                }
                return Err(e);
            }
        };
        self.db.next_id = id + 1;
        let record = Record {
            id,
            name: spec.name,
            source: spec.source.redacted(),
            device: mapped.device,
            driver: mapped.driver.to_string(),
            read_only: mapped.read_only,
            holders: BTreeSet::from([holder]),
            created_at: now(),
            backing: mapped.backing,
        };
        let info = record.info();
        self.db.records.insert(id, record);
        self.db.intent = None;
        if let Err(e) = self.store.save(&self.db) {
            if let Some(r) = self.db.records.remove(&id) {
                let _ = self.teardown(&r, true);
            }
            return Err(e);
        }
        info!(id, device = %info.device.display(), driver = %info.driver, kind = info.source.kind(), "attached");
        Ok(info)
    }

    fn map(&self, id: u64, source: &AttachSource) -> Result<Mapped, AttachError> {
        let tag = self.db.loop_tag(id);
        match source {
            AttachSource::Loop(src) => drivers::loopdev::attach(&self.sys, src, tag),
            AttachSource::Local(src) => drivers::local::attach(&self.sys, src),
            AttachSource::Rbd(src) => {
                let key = format!("imagebus-attach.{}.{id}", self.db.instance);
                drivers::rbd::attach(
                    &self.sys,
                    src,
                    key,
                    &self.cfg.rbd_dir().join(id.to_string()),
                    tag,
                )
            }
        }
    }

    /// The attachment that maps the same pool/namespace/image/snapshot, if any.
    fn mapping_of(&self, src: &RbdSource) -> Option<&Record> {
        self.db
            .records
            .values()
            .find(|r| match (&r.source, &r.backing) {
                (_, Backing::Shared { .. }) => false,
                (AttachSource::Rbd(o), _) => {
                    o.pool == src.pool
                        && o.image == src.image
                        && o.namespace == src.namespace
                        && o.snapshot == src.snapshot
                }
                _ => false,
            })
    }

    fn attach_shared(
        &mut self,
        spec: AttachSpec,
        holder: Holder,
        of: u64,
    ) -> Result<AttachInfo, AttachError> {
        let id = self.db.next_id;
        self.db.next_id += 1;
        let base = self
            .db
            .records
            .get_mut(&of)
            .ok_or(AttachError::NotFound(Selector::Id(of)))?;
        base.holders.insert(Holder::Attach(id));
        let record = Record {
            id,
            name: spec.name,
            source: spec.source.redacted(),
            device: base.device.clone(),
            driver: base.driver.clone(),
            read_only: true,
            holders: BTreeSet::from([holder]),
            created_at: now(),
            backing: Backing::Shared { of },
        };
        let info = record.info();
        self.db.records.insert(id, record);
        if let Err(e) = self.store.save(&self.db) {
            self.db.records.remove(&id);
            if let Some(b) = self.db.records.get_mut(&of) {
                b.holders.remove(&Holder::Attach(id));
            }
            return Err(e);
        }
        info!(id, of, device = %info.device.display(), "attached (shared)");
        Ok(info)
    }

    /// Detach; see `AttachModule::detach`.
    pub fn detach(&mut self, target: &Selector, force: bool) -> Result<(), AttachError> {
        let record = self.db.find(target)?;
        let others: Vec<&Holder> = record
            .holders
            .iter()
            .filter(|h| **h != Holder::User)
            .collect();
        if !others.is_empty() && !force {
            return Err(AttachError::InUse {
                id: record.id,
                holders: record.holders_text(),
            });
        }
        let id = record.id;
        self.collect(id, force)
    }

    /// Get; see `AttachModule::get`.
    pub fn get(&self, target: &Selector) -> Result<AttachInfo, AttachError> {
        Ok(self.db.find(target)?.info())
    }

    /// List; see `AttachModule::list`.
    pub fn list(&self) -> Vec<AttachInfo> {
        self.db.records.values().map(Record::info).collect()
    }

    /// Acquire; see `AttachModule::acquire`.
    pub fn acquire(
        &mut self,
        target: &Selector,
        holder: Holder,
    ) -> Result<AttachInfo, AttachError> {
        let id = self.db.find(target)?.id;
        let record = self
            .db
            .records
            .get_mut(&id)
            .ok_or(AttachError::NotFound(Selector::Id(id)))?;
        if record.holders.insert(holder.clone()) {
            if let Err(e) = self.store.save(&self.db) {
                if let Some(r) = self.db.records.get_mut(&id) {
                    r.holders.remove(&holder);
                }
                return Err(e);
            }
        }
        Ok(self.db.find(&Selector::Id(id))?.info())
    }

    /// Release; see `AttachModule::release`.
    pub fn release(&mut self, id: u64, holder: &Holder) -> Result<(), AttachError> {
        let Some(record) = self.db.records.get(&id) else {
            return Ok(());
        };
        if !record.holders.contains(holder) {
            return Ok(());
        }
        if record.holders.len() == 1 {
            return self.collect(id, false);
        }
        if let Some(r) = self.db.records.get_mut(&id) {
            r.holders.remove(holder);
        }
        if let Err(e) = self.store.save(&self.db) {
            if let Some(r) = self.db.records.get_mut(&id) {
                r.holders.insert(holder.clone());
            }
            return Err(e);
        }
        Ok(())
    }

    /// Removes attachment `id` from the kernel and the state, with the attachments that
    /// share its device, and releases its hold on the one it shares.
    fn collect(&mut self, id: u64, force: bool) -> Result<(), AttachError> {
        let sharers: Vec<u64> = self
            .db
            .records
            .values()
            .filter(|r| r.backing == Backing::Shared { of: id })
            .map(|r| r.id)
            .collect();
        let Some(record) = self.db.records.get(&id).cloned() else {
            return Ok(());
        };
        self.teardown(&record, force)?;
        self.db.records.remove(&id);
        for s in &sharers {
            self.db.records.remove(s);
        }
        self.store.save(&self.db)?;
        info!(id, device = %record.device.display(), "detached");
        if let Backing::Shared { of } = record.backing {
            self.release(of, &Holder::Attach(id))?;
        }
        Ok(())
    }

    /// Undoes a record's kernel objects. A device that is already gone is not an error.
    pub(crate) fn teardown(&self, record: &Record, force: bool) -> Result<(), AttachError> {
        match &record.backing {
            Backing::Loop { number, .. } => {
                if drivers::loopdev::present(
                    &self.sys,
                    *number,
                    &self.db.loop_tag(record.id),
                    &PathBuf::new(),
                    None,
                ) {
                    drivers::loopdev::detach(&self.sys, *number)?;
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
                if drivers::rbd::krbd_present(&self.sys, *id, pool, image, snapshot) {
                    drivers::rbd::detach_krbd(&self.sys, *id, force)?;
                }
                Ok(())
            }
            Backing::RbdFuse {
                pid,
                dir,
                loop_number,
            } => {
                let tag = self.db.loop_tag(record.id);
                let image = match &record.source {
                    AttachSource::Rbd(src) => src.image.as_str(),
                    _ => "",
                };
                if rbd_fuse::loop_is_ours(&self.sys, *loop_number, &tag, dir, image) {
                    drivers::loopdev::detach(&self.sys, *loop_number)?;
                }
                rbd_fuse::stop(&self.sys, *pid, dir);
                imagebus_sys::state::remove_tree(dir)?;
                Ok(())
            }
        }
    }

    /// Reaps exited rbd-fuse children and restarts them (called periodically).
    pub fn reap(&mut self) {
        let dead: Vec<u64> = self
            .db
            .records
            .values()
            .filter_map(|r| match &r.backing {
                Backing::RbdFuse { pid, dir, .. } => {
                    let exited = matches!(self.sys.procs.reap(*pid), Reaped::Exited { .. });
                    (exited || !rbd_fuse::is_ours(&self.sys, *pid, dir)).then_some(r.id)
                }
                _ => None,
            })
            .collect();
        let now = Instant::now();
        for id in dead {
            if self.retry_after.get(&id).is_some_and(|t| now < *t) {
                continue;
            }
            warn!(id, "rbd-fuse of attachment exited; restarting it");
            match self.revive_fuse(id) {
                Ok(()) => {
                    self.retry_after.remove(&id);
                    if let Err(e) = self.store.save(&self.db) {
                        warn!(error = %e, "saving attach state");
                    }
                }
                Err(e) => {
                    warn!(id, error = %e, "could not restart rbd-fuse; retrying in 30 s");
                    self.retry_after.insert(id, now + RETRY_BACKOFF);
                }
            }
        }
        self.retry_after
            .retain(|id, _| self.db.records.contains_key(id));
    }
}
