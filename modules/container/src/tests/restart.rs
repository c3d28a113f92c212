//! Restart policies on the doubles: a crash is restarted by the policy (counted, with the
//! reason in the event), and a `Stop` of an exited container cancels its pending restart.

use super::*;
use imagebus_schema::container::RestartSpec;

/// Polls `Get` until `pred` holds, for at most [`WAIT`].
async fn get_until(h: &ContainerHandle, pred: impl Fn(&ContainerInfo) -> bool) -> ContainerInfo {
    let deadline = Instant::now() + WAIT;
    loop {
        let info = h.get(Selector::Id(1)).await.unwrap();
        if pred(&info) {
            return info;
        }
        assert!(Instant::now() < deadline, "timed out; last {info:#?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_is_restarted_by_policy_and_a_stop_cancels_a_pending_restart() {
    let s = setup_ok();
    let (h, _task) = spawn(&s, 4).await;
    let mut events = h.subscribe();
    let mut sp = spec(InitialState::Running);
    sp.restart = RestartSpec::parse("always").unwrap();
    let info = h.create(sp).await.unwrap();

    // A crash (SIGKILL from outside): restarted after the first backoff, counted.
    s.kernel.end(&info.runtime_id, 9);
    until("the restart's launch", || s.kernel.launches() == 2).await;
    let again = get_until(&h, |i| i.state == ContainerState::Running).await;
    assert_eq!(again.restart_count, 1);
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let ev = tokio::time::timeout(WAIT, events.next())
            .await
            .unwrap()
            .unwrap();
        seen.push(ev);
    }
    assert_eq!(seen[2].state, ContainerState::Exited);
    assert_eq!(seen[3].state, ContainerState::Running);
    assert_eq!(
        seen[3].reason.as_deref(),
        Some("restart 1 by policy always: the init exited with code 137")
    );

    // A second crash schedules the next restart (500 ms); a stop before it cancels it.
    s.kernel.end(&info.runtime_id, 9);
    get_until(&h, |i| i.state == ContainerState::Exited).await;
    let stopped = h.stop(Selector::Id(1), None).await.unwrap();
    assert_eq!(stopped.state, ContainerState::Exited);
    let on_disk = std::fs::read_to_string(s.cfg.container_dir(1).join("record.json")).unwrap();
    assert!(on_disk.contains("\"restart_due_ms\":null"), "{on_disk}");
    // Well past the backoff: no new run.
    let relaunched = tokio::time::timeout(Duration::from_millis(1500), async {
        while s.kernel.launches() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(relaunched.is_err(), "a stopped container was restarted");
    let now = h.get(Selector::Id(1)).await.unwrap();
    assert_eq!((now.state, now.restart_count), (ContainerState::Exited, 1));
    h.delete(Selector::Id(1), false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zos_signal_delete_cancels_a_pending_restart() {
    use imagebus_schema::zos::ZosContainerModule;
    let s = setup_ok();
    let (h, _task) = spawn(&s, 4).await;
    let mut sp = named("t.app", InitialState::Running);
    sp.group = Some("t".into());
    sp.restart = RestartSpec::parse("always:3").unwrap();
    let info = h.create(sp).await.unwrap();
    s.kernel.end(&info.runtime_id, 9);
    get_until(&h, |i| i.state == ContainerState::Exited).await;
    ZosContainerModule::signal_delete(&h, "t".into(), "app".into())
        .await
        .unwrap();
    let relaunched = tokio::time::timeout(Duration::from_millis(1000), async {
        while s.kernel.launches() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(relaunched.is_err(), "restarted after SignalDelete");
    let now = h.get(Selector::Id(1)).await.unwrap();
    assert_eq!((now.state, now.restart_count), (ContainerState::Exited, 0));
}
