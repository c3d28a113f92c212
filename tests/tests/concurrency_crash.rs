//! Issue 7, crash safety under concurrency: `kill -9` of imagebusd in the middle of 20
//! concurrent creates (containers over a nested overlay → squashfs → loop, bare image
//! mounts, loop attachments), three rounds, each followed by a restart. After every
//! restart: every create that reported success is listed exactly once, names are unique,
//! every container reported created is running, and the kernel holds exactly what the
//! lists say (mountinfo, loop devices, runc containers under the daemon's root, monitor
//! processes, cgroups), with the killed daemon's monitor zygote gone. At the end everything
//! is deleted and the kernel is clean. Root; needs runc, busybox-static, squashfs-tools.

use imagebus_schema::container::ContainerState;
use imagebus_tests::bus_node::{BusNode, Stubs};
use imagebus_tests::crash_creates::{create, kind_of, Kind, Outcome};
use imagebus_tests::daemon::wait_until;
use imagebus_tests::kernel_probe::{monitor_zygotes_of, pid_alive};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROUNDS: usize = 3;
const CREATES: usize = 20;
/// Bus workers per module: every create can be in flight at once.
const WORKERS: u32 = 32;
/// Deadline of each create: a request the killed daemon had taken is never answered.
const CALL: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_amid_twenty_concurrent_creates_loses_and_leaks_nothing() {
    let mut node = BusNode::start("ibcrash-", WORKERS);
    // Every success of every round: (kind, name) → id.
    let mut committed: BTreeMap<String, (Kind, u64)> = BTreeMap::new();

    for round in 0..ROUNDS {
        let s = node.stubs(CALL).await;
        // One file per create: no two attachments share a backing file.
        let images: Vec<PathBuf> = (0..CREATES)
            .map(|i| node.image_copy(&format!("img-{round}-{i}.sqsh")))
            .collect();
        let done = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let tasks: Vec<_> = (0..CREATES)
            .map(|i| {
                let (s, d, img) = (s.clone(), done.clone(), images[i].clone());
                let name = format!("r{round}-{i}");
                tokio::spawn(async move {
                    let out = create(s, kind_of(i), name, img).await;
                    d.fetch_add(1, Ordering::SeqCst);
                    out
                })
            })
            .collect();
        // Kill once a few creates have answered (more each round), mid-flight for the rest.
        let kill_after = 1 + round * 4;
        let hit = tokio::task::block_in_place(|| {
            wait_until(Duration::from_secs(60), || {
                done.load(Ordering::SeqCst) >= kill_after
            })
        });
        assert!(
            hit,
            "round {round}: not {kill_after} creates answered in 60 s"
        );
        let old_pid = node.daemon.pid();
        let zygotes = monitor_zygotes_of(old_pid);
        node.daemon.kill9();
        let at_kill = done.load(Ordering::SeqCst);
        eprintln!(
            "round {round}: killed after {:?} with {at_kill}/{CREATES} answered",
            started.elapsed()
        );
        tokio::task::block_in_place(|| node.daemon.restart());

        let mut outcomes: Vec<Outcome> = Vec::new();
        for t in tasks {
            let o = tokio::time::timeout(CALL + Duration::from_secs(10), t)
                .await
                .expect("a create outlived its own deadline")
                .expect("create task");
            outcomes.push(o);
        }
        let ok = outcomes.iter().filter(|o| o.2.is_ok()).count();
        eprintln!("round {round}: {ok}/{CREATES} creates reported success");
        for (kind, name, r) in &outcomes {
            if let Ok(id) = r {
                assert!(
                    committed.insert(name.clone(), (*kind, *id)).is_none(),
                    "{name} reported twice"
                );
            }
        }

        // The killed daemon's monitor zygote exits once its pipe closes.
        assert!(
            wait_until(Duration::from_secs(10), || zygotes
                .iter()
                .all(|p| !pid_alive(*p))),
            "round {round}: monitor zygotes of the killed daemon left: {zygotes:?}"
        );
        check(&node, &s, &committed, round).await;
    }

    let s = node.stubs(CALL).await;
    node.delete_all(&s).await;
    node.assert_clean(&s).await;
    // The daemon's Drop has nothing left to do; stop it cleanly.
    node.daemon.signal("TERM");
    assert!(node.daemon.wait_exit(Duration::from_secs(15)).is_some());
    node.assert_kernel_clean();
    // With no container left, the stopped daemon removed its instance cgroup too.
    use imagebus_sys::cgroup::{Cgroups, LinuxCgroups};
    let instance = node.daemon.instance().to_string();
    let left: Vec<_> = LinuxCgroups
        .hierarchies()
        .into_iter()
        .map(|h| h.join(&instance))
        .filter(|p| p.exists())
        .collect();
    assert!(left.is_empty(), "instance cgroups left: {left:?}");
}

/// Every committed object is listed exactly once with its name; containers reported
/// created are running; the kernel matches the lists.
async fn check(node: &BusNode, s: &Stubs, committed: &BTreeMap<String, (Kind, u64)>, round: usize) {
    let l = node.lists(s).await;
    for (name, (kind, id)) in committed {
        let found: Vec<u64> = match kind {
            Kind::Container => l
                .containers
                .iter()
                .filter(|c| c.name.as_deref() == Some(name))
                .map(|c| c.id)
                .collect(),
            Kind::Mount => l
                .mounts
                .iter()
                .filter(|m| m.name.as_deref() == Some(name))
                .map(|m| m.id)
                .collect(),
            Kind::Attachment => l
                .attachments
                .iter()
                .filter(|a| a.name.as_deref() == Some(name))
                .map(|a| a.id)
                .collect(),
        };
        assert_eq!(
            found,
            vec![*id],
            "round {round}: {kind:?} {name} (lost or duplicated)"
        );
    }
    for c in &l.containers {
        let name = c.name.clone().unwrap_or_default();
        if committed.contains_key(&name) {
            assert_eq!(c.state, ContainerState::Running, "round {round}: {c:#?}");
        } else {
            // Its create's answer was lost with the daemon: it may exist, but whole.
            assert!(
                matches!(
                    c.state,
                    ContainerState::Running | ContainerState::Exited | ContainerState::Dead
                ),
                "round {round}: uncommitted container in a half state: {c:#?}"
            );
        }
    }
    node.assert_kernel_matches(&l);
    eprintln!(
        "round {round}: {} containers, {} mounts, {} attachments listed; kernel matches",
        l.containers.len(),
        l.mounts.len(),
        l.attachments.len()
    );
}
