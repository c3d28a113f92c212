//! Rows around a running daemon: the broker killed under load, a container's monitor
//! killed, a full state directory, a record cut in half while the daemon is down.

use super::ledger::{check_cleanup, check_round, commit, Committed, Scope, Tally};
use super::rows_kill::{creates, CALL};
use super::Row;
use crate::bus_node::{BusNode, Stubs};
use crate::crash_creates::{create, Kind, Outcome};
use crate::daemon::wait_until;
use crate::kernel_probe::{monitors_under, pid_alive};
use imagebus_bus::ErrorCode;
use imagebus_schema::container::{ContainerModule, ContainerState};
use imagebus_schema::mount::MountModule;
use imagebus_schema::{Holder, Selector};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Row 4: redis-server killed with creates in flight and started again (empty); the
/// daemon serves again, every success is listed once, the kernel matches.
pub async fn redis_kill(t: &mut Tally, done: &mut usize, rounds: usize) {
    let scope = Scope::of(Row::RedisKill);
    let mut node = BusNode::start(&scope.names.dir, 16);
    let mut committed = Committed::new();
    let mut orphans = 0;
    for round in 0..rounds {
        let s = node.stubs(CALL).await;
        let answered = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = creates(&node, &s, &format!("r{round}"))
            .into_iter()
            .map(|f| {
                let d = answered.clone();
                tokio::spawn(async move {
                    let o = f.await;
                    d.fetch_add(1, Ordering::SeqCst);
                    o
                })
            })
            .collect();
        let after = 1 + round % 3;
        let hit = tokio::task::block_in_place(|| {
            wait_until(Duration::from_secs(90), || {
                answered.load(Ordering::SeqCst) >= after
            })
        });
        assert!(hit, "not {after} creates answered in 90 s");
        tokio::task::block_in_place(|| node.redis.restart());
        let mut outcomes: Vec<Outcome> = Vec::new();
        for task in tasks {
            let o = tokio::time::timeout(CALL + Duration::from_secs(30), task)
                .await
                .unwrap_or_else(|_| panic!("a create outlived its own deadline"))
                .unwrap_or_else(|e| panic!("create task: {e}"));
            outcomes.push(o);
        }
        commit(t, &mut committed, &outcomes);
        tokio::task::block_in_place(|| node.daemon.wait_serving());
        // Calls the daemon made to itself through the lost broker end at their deadlines.
        match super::ledger::settle(&node, &scope, Duration::from_secs(120)).await {
            Some(d) => t
                .notes
                .push(format!("round {round}: settled after {d:.1?}")),
            None => t
                .notes
                .push(format!("round {round}: did not settle in 120 s")),
        }
        let l = check_round(t, &node, &committed, &scope).await;
        // A failed create whose object exists: the daemon did it, the answer was lost
        // with the broker. It is whole (checked above) and counted here.
        orphans += outcomes
            .iter()
            .filter(|(k, n, r)| r.is_err() && !super::ledger::listed(&l, *k, n).is_empty())
            .count();
        *done += 1;
    }
    if orphans > 0 {
        t.notes.push(format!(
            "{orphans} failed creates exist whole (done, answer lost with the broker)"
        ));
    }
    check_cleanup(t, &node, &scope).await;
}

/// The live monitor of container `id` (runtime id `rid`).
fn monitor_of(node: &BusNode, id: u64, rid: &str) -> Option<u32> {
    let dir = format!("/container/{id}/");
    monitors_under(node.daemon.dir())
        .into_iter()
        .find(|(_, files)| {
            files.iter().any(|f| {
                let f = f.to_string_lossy();
                f.contains(&dir) || f.contains(&format!("{rid}.log"))
            })
        })
        .map(|(pid, _)| pid)
}

fn kill9(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}

async fn state_of(s: &Stubs, name: &str) -> Option<(ContainerState, Option<u32>)> {
    let c = s.container.get(Selector::Name(name.into())).await.ok()?;
    Some((c.state, c.pid))
}

/// Row 5: the monitors of two containers killed; the one whose init is killed too is
/// reported exited or dead, the other still running with its pid, and it stops.
pub async fn monitor_kill(t: &mut Tally, done: &mut usize, rounds: usize) {
    let scope = Scope::of(Row::MonitorKill);
    let node = BusNode::start(&scope.names.dir, 4);
    for round in 0..rounds {
        let s = node.stubs(CALL).await;
        let mut ids = Vec::new();
        for x in ["a", "b"] {
            let name = format!("r{round}-{x}");
            let img = node.image_copy(&format!("mk-{name}.sqsh"));
            let (_, _, r) = create(s.clone(), Kind::Container, name.clone(), img).await;
            let id = r.unwrap_or_else(|e| panic!("creating {name}: {e:?}"));
            let c = s
                .container
                .get(Selector::Id(id))
                .await
                .unwrap_or_else(|e| panic!("{e:?}"));
            let pid = c.pid.unwrap_or_else(|| panic!("{name} has no pid"));
            let mon = monitor_of(&node, id, &c.runtime_id)
                .unwrap_or_else(|| panic!("no monitor found for {name}"));
            ids.push((name, id, pid, mon));
        }
        for (_, _, _, mon) in &ids {
            kill9(*mon);
        }
        let (a, b) = (&ids[0], &ids[1]);
        kill9(a.2);
        let ended = wait_async(Duration::from_secs(30), || async {
            matches!(
                state_of(&s, &a.0).await,
                Some((ContainerState::Exited | ContainerState::Dead, _))
            )
        })
        .await;
        if !ended {
            let last = state_of(&s, &a.0).await;
            t.lost(format!(
                "{}: init and monitor killed, reported {last:?}",
                a.0
            ));
        }
        let now = state_of(&s, &b.0).await;
        if now != Some((ContainerState::Running, Some(b.2))) || !pid_alive(b.2) {
            t.lost(format!(
                "{}: monitor killed, init alive, reported {now:?}",
                b.0
            ));
        }
        let stopped = s.container.stop(Selector::Id(b.1), Some(2000)).await;
        let state = stopped.as_ref().map(|c| c.state);
        if !matches!(state, Ok(ContainerState::Exited | ContainerState::Dead)) || pid_alive(b.2) {
            t.lost(format!("{}: stop without its monitor gave {state:?}", b.0));
        }
        let committed: Committed = ids
            .iter()
            .map(|(n, id, _, _)| (n.clone(), (Kind::Container, *id)))
            .collect();
        check_round(t, &node, &committed, &scope).await;
        check_cleanup(t, &node, &scope).await;
        *done += 1;
    }
}

/// Polls an async condition every 50 ms until `timeout`.
async fn wait_async<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The (kind, id) of every listed object.
fn ids(l: &crate::bus_node::Lists) -> Vec<(&'static str, u64)> {
    let mut v: Vec<(&'static str, u64)> =
        l.containers.iter().map(|c| ("container", c.id)).collect();
    v.extend(l.mounts.iter().map(|m| ("mount", m.id)));
    v.extend(l.attachments.iter().map(|a| ("attachment", a.id)));
    v
}

/// Fills the filesystem of `dir` with `dir/filler` until ENOSPC.
fn fill(dir: &Path) -> PathBuf {
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).unwrap_or_else(|e| panic!("creating {p:?}: {e}"));
    for chunk in [1 << 20, 4096, 512, 1] {
        let buf = vec![0u8; chunk];
        while f.write_all(&buf).is_ok() {}
    }
    p
}

/// Row 6: the state directory is a small tmpfs, filled up: creates fail within their
/// deadline with `Unavailable` naming the full file system, and change nothing (lists and
/// kernel as before); freed, creates work and survive a restart.
pub async fn disk_full(t: &mut Tally, done: &mut usize, rounds: usize) {
    let scope = Scope::of(Row::DiskFull);
    let mut node = BusNode::start_prepared(&scope.names.dir, 4, |state| {
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=16m,mode=0700",
                "imagebus-fm",
                &state.to_string_lossy(),
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mounting a tmpfs on {state:?}");
    });
    let state = node.daemon.dir().join("state");
    let scope = scope.ignoring(state.clone());
    let mut committed = Committed::new();
    let mut codes = Vec::new();
    for round in 0..rounds {
        let s = node.stubs(CALL).await;
        let listed_before = ids(&node.lists(&s).await);
        let filler = fill(&state);
        for (i, kind) in [Kind::Container, Kind::Mount, Kind::Attachment]
            .into_iter()
            .enumerate()
        {
            let name = format!("full-r{round}-{i}");
            let img = node.image_copy(&format!("df-{name}.sqsh"));
            let (k, n, r) = create(s.clone(), kind, name, img).await;
            match r {
                Ok(id) => {
                    t.notes.push(format!("{k:?} created on a full disk"));
                    committed.insert(n, (k, id));
                }
                // The typed answer: the resource may come back, nothing was changed.
                Err(e)
                    if e.code == ErrorCode::Unavailable
                        && e.message.contains("No space left on device") =>
                {
                    codes.push(format!("{k:?}→{:?}", e.code))
                }
                Err(e) => t.lost(format!(
                    "{k:?} on a full disk: {:?}, not Unavailable (no space left) ({})",
                    e.code, e.message
                )),
            }
        }
        // Nothing changed: the same objects listed as before the failed creates.
        let listed_after = ids(&node.lists(&s).await);
        if committed.keys().all(|n| !n.starts_with("full-")) && listed_after != listed_before {
            t.leaks(vec![format!(
                "failed creates on a full disk changed the lists: {listed_before:?} → {listed_after:?}"
            )]);
        }
        check_round(t, &node, &committed, &scope).await;
        std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("removing {filler:?}: {e}"));
        for (i, kind) in [Kind::Container, Kind::Mount, Kind::Attachment]
            .into_iter()
            .enumerate()
        {
            let name = format!("freed-r{round}-{i}");
            let img = node.image_copy(&format!("df-{name}.sqsh"));
            let o = create(s.clone(), kind, name, img).await;
            if let Err(e) = &o.2 {
                t.lost(format!("{kind:?} after freeing space failed: {e:?}"));
            }
            commit(t, &mut committed, &[o]);
        }
        node.daemon.kill9();
        tokio::task::block_in_place(|| node.daemon.restart());
        check_round(t, &node, &committed, &scope).await;
        *done += 1;
    }
    codes.sort();
    codes.dedup();
    t.notes
        .push(format!("full disk errors: {}", codes.join(", ")));
    check_cleanup(t, &node, &scope).await;
}

/// Row 7: a container's record.json cut in half while the daemon is down; the restart
/// reconciles, the others stay, the container is either listed whole or removed with
/// everything it held.
pub async fn truncated(t: &mut Tally, done: &mut usize, rounds: usize) {
    let scope = Scope::of(Row::TruncatedState);
    let mut node = BusNode::start(&scope.names.dir, 4);
    for round in 0..rounds {
        let s = node.stubs(CALL).await;
        let mut committed = Committed::new();
        let mut outcomes = Vec::new();
        for f in creates(&node, &s, &format!("r{round}")).into_iter().take(5) {
            outcomes.push(f.await);
        }
        commit(t, &mut committed, &outcomes);
        assert_eq!(committed.len(), 5, "creates failed: {outcomes:?}");
        let (victim, (_, id)) = committed
            .iter()
            .find(|(_, (k, _))| *k == Kind::Container)
            .map(|(n, v)| (n.clone(), *v))
            .unwrap_or_else(|| panic!("no container created"));
        node.daemon.kill9();
        let record = node
            .daemon
            .dir()
            .join(format!("state/container/{id}/record.json"));
        let body = std::fs::read(&record).unwrap_or_else(|e| panic!("{record:?}: {e}"));
        std::fs::write(&record, &body[..body.len() / 2]).unwrap_or_else(|e| panic!("{e}"));
        tokio::task::block_in_place(|| node.daemon.restart());
        committed.remove(&victim);
        let l = check_round(t, &node, &committed, &scope).await;
        let listed = super::ledger::listed(&l, Kind::Container, &victim);
        // Its mount holds are released once both modules serve (a follow-up of start-up).
        let s = node.stubs(CALL).await;
        let started = std::time::Instant::now();
        let released = wait_async(Duration::from_secs(30), || async {
            let mounts = s.mount.list().await;
            let mounts = mounts.unwrap_or_else(|e| panic!("mount List: {e:?}"));
            !mounts
                .iter()
                .any(|m| m.holders.contains(&Holder::Container(id)))
        })
        .await;
        if !released {
            t.leaks(vec![format!(
                "{victim}: its mounts still held 30 s after the restart"
            )]);
        }
        let fate = if listed.is_empty() {
            "removed"
        } else {
            "still listed"
        };
        t.notes.push(format!(
            "round {round}: truncated container {fate}, its mounts released after {:.1?}",
            started.elapsed()
        ));
        check_cleanup(t, &node, &scope).await;
        *done += 1;
    }
}
