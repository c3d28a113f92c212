//! Restart policies with real runc: a crashing init under `on-failure:2` is restarted
//! exactly twice with a growing backoff; `always` restarts an init that exits 0 and a
//! `Stop` ends it for good; supervision goes on across a restart of the actor, also for a
//! run that ended while no actor watched.

mod container_common;

use container_common::*;
use imagebus_schema::container::{
    ContainerEvent, ContainerModule, ContainerState, InitialState, RestartSpec,
};
use imagebus_schema::Selector;
use std::time::Duration;

fn restarts(evs: &[ContainerEvent]) -> Vec<&ContainerEvent> {
    evs.iter()
        .filter(|e| {
            e.state == ContainerState::Running
                && e.reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with("restart "))
        })
        .collect()
}

fn exits(evs: &[ContainerEvent]) -> Vec<&ContainerEvent> {
    evs.iter()
        .filter(|e| e.state == ContainerState::Exited && !e.deleted)
        .collect()
}

/// The delay between each exit and the restart after it, in ms.
fn gaps(evs: &[ContainerEvent]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut last_exit = None;
    for e in evs {
        if e.state == ContainerState::Exited && !e.deleted {
            last_exit = Some(e.at_ms);
        } else if restarts(std::slice::from_ref(e)).len() == 1 {
            if let Some(x) = last_exit.take() {
                out.push(e.at_ms.saturating_sub(x));
            }
        }
    }
    out
}

/// Backoff of the n-th restart in a row (250 ms doubling), less a little clock slack.
fn at_least(n: u32) -> u64 {
    250 * (1 << n) - 25
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_2_restarts_a_crashing_init_exactly_twice() {
    let node = Node::start("rp-fail").await;
    let root = node.rootfs("r", &[]);
    let events = node.container.subscribe();
    let mut s = spec(bind_root(&root), "sh -c 'echo run; exit 3'");
    s.state = InitialState::Running;
    s.restart = RestartSpec::parse("on-failure:2").unwrap();
    let info = node.container.create(s).await.expect("create");
    let evs = collect_events(events, Duration::from_secs(30), |e| exits(e).len() >= 3).await;
    assert_eq!(exits(&evs).len(), 3, "{evs:#?}");
    assert!(exits(&evs).iter().all(|e| e.exit_code == Some(3)));
    let r = restarts(&evs);
    assert_eq!(r.len(), 2, "{evs:#?}");
    assert!(r[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("restart 1 by policy on-failure:2"));
    assert!(r[1]
        .reason
        .as_deref()
        .unwrap()
        .contains("exited with code 3"));
    let g = gaps(&evs);
    assert_eq!(g.len(), 2, "{evs:#?}");
    assert!(g[0] >= at_least(0) && g[1] >= at_least(1), "backoff {g:?}");
    assert!(g[0] < 10_000 && g[1] < 10_000, "backoff {g:?}");

    // It stays exited: no third restart within well over the next backoff (1 s).
    let more = collect_events(
        node.container.subscribe(),
        Duration::from_millis(2500),
        |e| !e.is_empty(),
    )
    .await;
    assert!(more.is_empty(), "no more restarts: {more:#?}");
    let now = node.container.get(Selector::Id(info.id)).await.unwrap();
    assert_eq!(now.state, ContainerState::Exited);
    assert_eq!(now.exit_code, Some(3));
    assert_eq!(now.restart_count, 2);
    node.container
        .delete(Selector::Id(info.id), true)
        .await
        .unwrap();
}

/// Exits 0 on its first three runs (counting in /root/n), then stays up.
const THREE_QUICK_EXITS: &str = "sh -c 'n=$(cat /root/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /root/n; echo run$n; [ $n -lt 4 ] && exit 0; exec sleep 1000'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_restarts_an_init_that_exits_0_and_a_stop_ends_it() {
    let node = Node::start("rp-always").await;
    let root = node.rootfs("r", &[]);
    let events = node.container.subscribe();
    let mut s = spec(bind_root(&root), THREE_QUICK_EXITS);
    s.state = InitialState::Running;
    s.stop_signal = Some("KILL".into());
    s.restart = RestartSpec::parse("always").unwrap();
    let info = node.container.create(s).await.expect("create");
    let evs = collect_events(events, Duration::from_secs(30), |e| restarts(e).len() >= 3).await;
    assert_eq!(restarts(&evs).len(), 3, "{evs:#?}");
    assert!(exits(&evs).iter().all(|e| e.exit_code == Some(0)));
    // The backoff grows: 250, 500, 1000 ms at least.
    let g = gaps(&evs);
    assert_eq!(g.len(), 3, "{evs:#?}");
    for (n, gap) in g.iter().enumerate() {
        assert!(*gap >= at_least(n as u32), "backoff {g:?}");
    }
    assert!(g[2] > g[0], "backoff {g:?}");
    node.wait_log(info.id, "run4", Duration::from_secs(10))
        .await;
    let running = node
        .wait_for(info.id, Duration::from_secs(10), |i| {
            i.state == ContainerState::Running && i.restart_count == 3
        })
        .await;

    // An operator's stop: exited, and never restarted.
    let events = node.container.subscribe();
    let stopped = node
        .container
        .stop(Selector::Id(info.id), Some(5000))
        .await
        .unwrap();
    assert_eq!(stopped.state, ContainerState::Exited);
    let after = collect_events(events, Duration::from_millis(2500), |e| {
        e.iter().any(|e| e.state == ContainerState::Running)
    })
    .await;
    assert!(
        restarts(&after).is_empty(),
        "restarted after stop: {after:#?}"
    );
    let now = node.container.get(Selector::Id(info.id)).await.unwrap();
    assert_eq!(now.state, ContainerState::Exited);
    assert_eq!(now.restart_count, running.restart_count);
    node.container
        .delete(Selector::Id(info.id), true)
        .await
        .unwrap();
}

/// Waits for /root/crash, removes it and exits 4; forever.
const CRASH_ON_DEMAND: &str =
    "sh -c 'echo up; while [ ! -e /root/crash ]; do sleep 0.1; done; rm /root/crash; exit 4'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_actor_keeps_supervising_by_the_policy_in_the_record() {
    let mut node = Node::start("rp-actor").await;
    let root = node.rootfs("r", &[]);
    let mut s = spec(bind_root(&root), CRASH_ON_DEMAND);
    s.state = InitialState::Running;
    s.stop_signal = Some("KILL".into());
    s.restart = RestartSpec::parse("on-failure:5").unwrap();
    let info = node.container.create(s).await.expect("create");
    let crash = root.join("root/crash");

    // 1. A new actor re-attaches to the running container; its crash is restarted.
    node.restart_container_actor().await;
    std::fs::write(&crash, "").unwrap();
    let again = node
        .wait_for(info.id, Duration::from_secs(20), |i| {
            i.restart_count == 1 && i.state == ContainerState::Running
        })
        .await;
    assert_eq!(
        again.spec.restart,
        RestartSpec::parse("on-failure:5").unwrap()
    );

    // 2. The crash happens while no actor runs: the next actor finds the exit and
    //    restarts it.
    node.container_stop.cancel();
    let exit_file = node.cfg.run_files_dir(info.id).join("exit.json");
    std::fs::write(&crash, "").unwrap();
    assert!(
        imagebus_tests::daemon::wait_until(Duration::from_secs(10), || exit_file.exists()),
        "the monitor records the exit"
    );
    node.restart_container_actor().await;
    let restarted = node
        .wait_for(info.id, Duration::from_secs(20), |i| {
            i.restart_count == 2 && i.state == ContainerState::Running
        })
        .await;
    assert!(restarted.pid.is_some());
    node.container
        .delete(Selector::Id(info.id), true)
        .await
        .unwrap();
}
