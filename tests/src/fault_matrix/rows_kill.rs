//! Rows that `kill -9` imagebusd amid concurrent calls, then restart it on the same
//! directories: creates, deletes, rbd attaches.

use super::ledger::{check_cleanup, check_round, commit, Committed, Scope, Tally};
use super::Row;
use crate::bus_node::{BusNode, Stubs};
use crate::crash_creates::{create, kind_of, Kind, Outcome};
use crate::daemon::wait_until;
use crate::kernel_probe::{monitor_zygotes_of, pid_alive};
use imagebus_bus::RemoteError;
use imagebus_schema::attach::{AttachModule, AttachSource, AttachSpec, RbdSource, Secret};
use imagebus_schema::container::ContainerModule;
use imagebus_schema::mount::MountModule;
use imagebus_schema::Selector;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Creates (or deletes) per round.
const BATCH: usize = 10;
/// Bus workers per module: the whole batch in flight at once.
const WORKERS: u32 = 16;
/// Deadline of each call: one the killed daemon had taken is never answered.
pub(super) const CALL: Duration = Duration::from_secs(20);
/// Deadline of an rbd attach (a cluster round trip, maybe rbd-fuse starting).
const RBD_CALL: Duration = Duration::from_secs(60);

/// Runs `calls` concurrently; once `kill_after` answered, SIGKILLs the daemon, restarts
/// it, and returns every call's result. Counts a zygote of the killed daemon that stays.
pub(super) async fn amid<T: Send + 'static>(
    t: &mut Tally,
    node: &mut BusNode,
    kill_after: usize,
    deadline: Duration,
    calls: Vec<std::pin::Pin<Box<dyn Future<Output = T> + Send>>>,
) -> Vec<T> {
    amid_then(t, node, kill_after, deadline, calls, |_| {}).await
}

/// [`amid`], running `while_down` between the kill and the restart.
async fn amid_then<T: Send + 'static>(
    t: &mut Tally,
    node: &mut BusNode,
    kill_after: usize,
    deadline: Duration,
    calls: Vec<std::pin::Pin<Box<dyn Future<Output = T> + Send>>>,
    while_down: impl FnOnce(&mut Tally),
) -> Vec<T> {
    let done = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = calls
        .into_iter()
        .map(|f| {
            let d = done.clone();
            tokio::spawn(async move {
                let out = f.await;
                d.fetch_add(1, Ordering::SeqCst);
                out
            })
        })
        .collect();
    let hit = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(90), || {
            done.load(Ordering::SeqCst) >= kill_after
        })
    });
    assert!(hit, "not {kill_after} calls answered in 90 s");
    let zygotes = monitor_zygotes_of(node.daemon.pid());
    node.daemon.kill9();
    let at_kill = done.load(Ordering::SeqCst);
    tokio::task::block_in_place(|| {
        while_down(t);
        node.daemon.restart()
    });
    let mut out = Vec::new();
    for task in tasks {
        let r = tokio::time::timeout(deadline + Duration::from_secs(30), task)
            .await
            .unwrap_or_else(|_| panic!("a call outlived its own deadline"))
            .unwrap_or_else(|e| panic!("call task: {e}"));
        out.push(r);
    }
    eprintln!("killed with {at_kill}/{} answered", out.len());
    let gone = wait_until(Duration::from_secs(10), || {
        zygotes.iter().all(|p| !pid_alive(*p))
    });
    if !gone {
        t.leaks(vec![format!(
            "monitor zygotes of the killed daemon: {zygotes:?}"
        )]);
    }
    out
}

pub(super) fn creates(
    node: &BusNode,
    s: &Stubs,
    tag: &str,
) -> Vec<std::pin::Pin<Box<dyn Future<Output = Outcome> + Send>>> {
    (0..BATCH)
        .map(|i| {
            let img = node.image_copy(&format!("img-{tag}-{i}.sqsh"));
            let fut = create(s.clone(), kind_of(i), format!("{tag}-{i}"), img);
            Box::pin(fut) as std::pin::Pin<Box<dyn Future<Output = Outcome> + Send>>
        })
        .collect()
}

/// Row 1: kill -9 amid creates; every success listed once, the kernel matches.
pub async fn kill_creates(t: &mut Tally, done: &mut usize, rounds: usize) {
    let scope = Scope::of(Row::KillCreates);
    let mut node = BusNode::start(&scope.names.dir, WORKERS);
    let mut committed = Committed::new();
    for round in 0..rounds {
        let s = node.stubs(CALL).await;
        let calls = creates(&node, &s, &format!("r{round}"));
        let outcomes = amid(t, &mut node, 1 + 2 * (round % 4), CALL, calls).await;
        commit(t, &mut committed, &outcomes);
        check_round(t, &node, &committed, &scope).await;
        *done += 1;
    }
    check_cleanup(t, &node, &scope).await;
}

/// What a delete reported.
type Deleted = (Kind, String, Result<(), RemoteError>);

/// Deletes the object `name` of `kind`.
async fn delete(s: Stubs, kind: Kind, name: String) -> Deleted {
    let sel = Selector::Name(name.clone());
    let r = match kind {
        Kind::Container => s.container.delete(sel, true).await,
        Kind::Mount => s.mount.unmount(sel, false).await,
        Kind::Attachment => s.attach.detach(sel, false).await,
    };
    (kind, name, r)
}

/// Row 2: a batch created, then most of it deleted concurrently and the daemon killed
/// amid the deletes: an acknowledged delete stays done, what was not deleted stays.
pub async fn kill_deletes(t: &mut Tally, done: &mut usize, rounds: usize) {
    let scope = Scope::of(Row::KillDeletes);
    let mut node = BusNode::start(&scope.names.dir, WORKERS);
    for round in 0..rounds {
        let s = node.stubs(CALL).await;
        let mut created = Vec::new();
        for f in creates(&node, &s, &format!("r{round}")) {
            created.push(f.await);
        }
        let mut committed = Committed::new();
        commit(t, &mut committed, &created);
        assert_eq!(
            committed.len(),
            BATCH,
            "creates before the deletes failed: {created:?}"
        );
        let doomed: Vec<(String, Kind)> = committed
            .iter()
            .take(BATCH * 7 / 10)
            .map(|(n, (k, _))| (n.clone(), *k))
            .collect();
        let calls = doomed
            .iter()
            .map(|(n, k)| {
                Box::pin(delete(s.clone(), *k, n.clone()))
                    as std::pin::Pin<Box<dyn Future<Output = Deleted> + Send>>
            })
            .collect();
        let outcomes: Vec<Deleted> = amid(t, &mut node, 1, CALL, calls).await;
        for (kind, name, r) in &outcomes {
            // Done (or in flight): it may be gone; acknowledged: it must be gone.
            let entry = committed.remove(name);
            if r.is_ok() {
                let s = node.stubs(CALL).await;
                let l = node.lists(&s).await;
                if !super::ledger::listed(&l, *kind, name).is_empty() {
                    t.lost(format!(
                        "{kind:?} {name}: delete acknowledged, still listed"
                    ));
                }
            }
            // Unacknowledged: either state is fine; it left the committed set above.
            let _ = entry;
        }
        check_round(t, &node, &committed, &scope).await;
        check_cleanup(t, &node, &scope).await;
        *done += 1;
    }
}

/// Row 3: kill -9 amid rbd attaches (krbd or the rbd-fuse fallback) on the Ceph test
/// cluster, then a restart; every success listed once, no rbd-fuse process, FUSE mount or
/// loop device left over. In every other round the row's rbd-fuse processes are also
/// stopped (SIGTERM: each unmounts its FUSE mount, so a loop device on its file shows
/// `/<image>`) while the daemon is down: the restart must revive the recorded ones and
/// leave nothing of the others.
pub async fn kill_rbd(t: &mut Tally, done: &mut usize, rounds: usize) {
    let ceph = crate::ceph::ceph();
    let scope = Scope::of(Row::KillRbdAttach);
    let mut node = BusNode::start(&scope.names.dir, WORKERS);
    // Dropped before the node: a row that failed half-way leaves no rbd-fuse process.
    let _fuse = RbdFuseGuard(node.root().to_path_buf());
    let mut committed = Committed::new();
    for round in 0..rounds {
        let s = node.stubs(RBD_CALL).await;
        let calls = (0..3)
            .map(|i| {
                let name = format!("rbd-r{round}-{i}");
                // One image per attach: no two attachments map the same image.
                let image = format!("{}{name}", scope.names.images);
                ceph.import(crate::image::busybox_squashfs(), &image);
                let spec = AttachSpec {
                    name: Some(name.clone()),
                    source: AttachSource::Rbd(RbdSource {
                        monitors: vec![ceph.monitor.clone()],
                        pool: ceph.pool.clone(),
                        image,
                        snapshot: None,
                        namespace: None,
                        user: ceph.rw_user.clone(),
                        secret: Secret::new(ceph.rw_secret.clone()),
                        read_only: true,
                        shared: false,
                    }),
                };
                let s = s.clone();
                Box::pin(async move {
                    let r = s.attach.attach(spec, None).await.map(|a| a.id);
                    (Kind::Attachment, name, r)
                }) as std::pin::Pin<Box<dyn Future<Output = Outcome> + Send>>
            })
            .collect();
        let root = node.root().to_path_buf();
        let stop_fuse = round % 2 == 1;
        let outcomes = amid_then(t, &mut node, 1, RBD_CALL, calls, |t| {
            if stop_fuse {
                let n = crate::ceph::term_rbd_fuse_under(&root);
                t.notes
                    .push(format!("round {round}: {n} rbd-fuse stopped while down"));
            }
        })
        .await;
        commit(t, &mut committed, &outcomes);
        check_round(t, &node, &committed, &scope).await;
        *done += 1;
    }
    check_cleanup(t, &node, &scope).await;
}

/// Kills the rbd-fuse processes below its directory when dropped.
struct RbdFuseGuard(std::path::PathBuf);

impl Drop for RbdFuseGuard {
    fn drop(&mut self) {
        crate::ceph::kill_rbd_fuse_under(&self.0);
    }
}
