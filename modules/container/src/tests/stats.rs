//! `Stats` and OOM detection on the doubles: the counters come from the cgroup double, a
//! run whose cgroup counted an OOM kill ends with reason `oom` (read before the cgroup is
//! removed), and the next run starts clean.

use super::*;
use imagebus_sys::cgroup_stats::CgroupStats;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_come_from_the_cgroup_and_an_oom_kill_names_the_reason() {
    let s = setup_ok();
    let (h, _task) = spawn(&s, 4).await;
    let mut events = h.subscribe();
    h.create(spec(InitialState::Running)).await.unwrap();
    let rel = s.cfg.cgroup_path(1);
    s.cgroups.set_stats(
        &rel,
        CgroupStats {
            memory_usage_bytes: Some(4096),
            memory_limit_bytes: Some(32 << 20),
            pids_current: Some(2),
            pids_limit: Some(8),
            oom_kills: Some(1),
            ..CgroupStats::default()
        },
    );
    let st = h.stats(Selector::Name("web".into())).await.unwrap();
    assert_eq!(st.state, ContainerState::Running);
    assert_eq!(st.memory_usage_bytes, Some(4096));
    assert_eq!(st.memory_limit_bytes, Some(32 << 20));
    assert_eq!((st.pids_current, st.pids_limit), (Some(2), Some(8)));
    assert_eq!(st.oom_kills, Some(1));
    assert_eq!(st.net_rx_bytes, Some(0), "the netns of a live init is read");

    let ended = h.stop(Selector::Id(1), None).await.unwrap();
    assert_eq!(ended.state, ContainerState::Exited);
    assert_eq!(ended.reason.as_deref(), Some("oom"));
    assert!(s.cgroups.removed().contains(&rel));
    let mut last = None;
    while let Some(Some(ev)) = events.next().now_or_never() {
        last = Some(ev);
    }
    let last = last.unwrap();
    assert_eq!(
        (last.state, last.reason.as_deref()),
        (ContainerState::Exited, Some("oom"))
    );

    // Not running: the state only.
    let st = h.stats(Selector::Id(1)).await.unwrap();
    assert_eq!(st.state, ContainerState::Exited);
    assert_eq!(st.memory_usage_bytes, None);

    // The next run has a fresh cgroup without OOM kills.
    h.start(Selector::Id(1)).await.unwrap();
    let ended = h.stop(Selector::Id(1), None).await.unwrap();
    assert_eq!(ended.reason, None);
    assert!(matches!(
        h.stats(Selector::Id(9)).await,
        Err(e) if e.code == ErrorCode::NotFound
    ));
}
