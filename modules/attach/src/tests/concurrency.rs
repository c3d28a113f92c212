//! The actor under concurrency: commands held in the (fake) kernel by gates, while others
//! run, wait, conflict, time out or shut the actor down.

use super::*;
use crate::store::Backing;
use imagebus_sys::proc::Processes;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_and_loop_attaches_answer_while_an_rbd_attach_hangs() {
    let w = World::new(FakeRbdBus::available());
    let r = w.start().await;
    w.rbd_map.close();
    let h = r.handle.clone();
    let rbd = bg(async move { h.attach_typed(rbd_spec(false), None).await });
    w.rbd_map.reached(1).await;
    // The monitor hangs; everything else goes on.
    let looped = quick(
        r.handle
            .attach_typed(loop_spec(Some("l"), "/img/a.sqsh"), None),
    )
    .await
    .unwrap();
    let listed = quick(r.handle.list_typed()).await.unwrap();
    assert_eq!(
        listed,
        vec![looped.clone()],
        "an attach in flight is not listed"
    );
    let got = quick(r.handle.get_typed(Selector::Name("l".into())))
        .await
        .unwrap();
    assert_eq!(got, looped);
    quick(r.handle.detach_typed(Selector::Id(looped.id), false))
        .await
        .unwrap();
    w.rbd_map.open();
    let mapped = done(rbd).await.unwrap();
    assert_eq!(mapped.driver, "krbd");
    assert_eq!(r.handle.list_typed().await.unwrap(), vec![mapped]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_name_give_one_success_and_one_conflict() {
    let w = World::new(FakeRbdBus::default());
    let r = w.start().await;
    w.loop_attach.close();
    let h = r.handle.clone();
    let first = bg(async move {
        h.attach_typed(loop_spec(Some("web"), "/img/a.sqsh"), None)
            .await
    });
    w.loop_attach.reached(1).await;
    let err = quick(
        r.handle
            .attach_typed(loop_spec(Some("web"), "/img/b.sqsh"), None),
    )
    .await
    .unwrap_err();
    w.loop_attach.open();
    let first = done(first).await.unwrap();
    assert!(
        matches!(err, AttachError::NameTaken { id, .. } if id == first.id),
        "{err}"
    );
    assert_eq!(w.loops.attaches().len(), 1, "the loser touched the kernel");
    assert_eq!(w.loops.bound().len(), 1);
    assert_eq!(r.handle.list_typed().await.unwrap(), vec![first]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_attaches_of_one_rbd_image_give_one_success_and_conflicts() {
    let w = World::new(FakeRbdBus::available());
    let r = w.start().await;
    w.rbd_map.close();
    let h = r.handle.clone();
    let first = bg(async move { h.attach_typed(rbd_spec(false), None).await });
    w.rbd_map.reached(1).await;
    let again = quick(r.handle.attach_typed(rbd_spec(false), None))
        .await
        .unwrap_err();
    assert!(
        matches!(again, AttachError::AlreadyMapped { .. }),
        "{again}"
    );
    // A shared request does not share a mapping that is still being made.
    let shared = quick(r.handle.attach_typed(rbd_spec(true), None))
        .await
        .unwrap_err();
    assert!(
        matches!(
            shared,
            AttachError::ImageBusy {
                doing: "mapped",
                ..
            }
        ),
        "{shared}"
    );
    assert_eq!(shared.code(), ErrorCode::Conflict);
    // Another image maps beside it.
    let h = r.handle.clone();
    let other = bg(async move { h.attach_typed(rbd_image("other", false), None).await });
    w.rbd_map.reached(2).await;
    w.rbd_map.open();
    let first = done(first).await.unwrap();
    done(other).await.unwrap();
    assert_eq!(w.rbd.maps().len(), 2, "the losers touched the kernel");
    // Once recorded, it is shared.
    let shared = r.handle.attach_typed(rbd_spec(true), None).await.unwrap();
    assert_eq!(shared.device, first.device);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commands_on_one_attachment_run_in_order() {
    let w = World::new(FakeRbdBus::default());
    let r = w.start().await;
    let x = r
        .handle
        .attach_typed(loop_spec(Some("x"), "/img/a.sqsh"), None)
        .await
        .unwrap();
    w.loop_detach.close();
    let h = r.handle.clone();
    let detach = bg(async move { h.detach_typed(Selector::Name("x".into()), false).await });
    w.loop_detach.reached(1).await;
    let h = r.handle.clone();
    let mut acquire =
        bg(async move { h.acquire_typed(Selector::Id(x.id), Holder::Mount(1)).await });
    still_waiting(&mut acquire).await;
    // Other attachments and reads go on; the one being removed is still shown.
    let y = quick(r.handle.attach_typed(loop_spec(None, "/img/b.sqsh"), None))
        .await
        .unwrap();
    assert_eq!(quick(r.handle.list_typed()).await.unwrap().len(), 2);
    w.loop_detach.open();
    done(detach).await.unwrap();
    let err = done(acquire).await.unwrap_err();
    assert!(matches!(err, AttachError::NotFound(_)), "{err}");
    assert_eq!(r.handle.list_typed().await.unwrap(), vec![y]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mapping_being_removed_is_neither_acquired_nor_shared() {
    let w = World::new(FakeRbdBus::available());
    let r = w.start().await;
    let a = &r.handle;
    let base = a.attach_typed(rbd_spec(false), None).await.unwrap();
    let sharer = a.attach_typed(rbd_spec(true), None).await.unwrap();
    w.rbd_unmap.close();
    let h = r.handle.clone();
    let detach = bg(async move { h.detach_typed(Selector::Id(base.id), true).await });
    w.rbd_unmap.reached(1).await;
    // The sharer goes with the mapping: it cannot be acquired any more.
    let err = quick(a.acquire_typed(Selector::Id(sharer.id), Holder::Mount(3)))
        .await
        .unwrap_err();
    assert!(matches!(err, AttachError::Removing { .. }), "{err}");
    let err = quick(a.attach_typed(rbd_spec(true), None))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AttachError::ImageBusy {
                doing: "unmapped",
                ..
            }
        ),
        "{err}"
    );
    // A release of the sharer waits for the mapping's removal (it holds its key).
    let h = r.handle.clone();
    let mut release = bg(async move { h.release_typed(sharer.id, Holder::User).await });
    still_waiting(&mut release).await;
    w.rbd_unmap.open();
    done(detach).await.unwrap();
    done(release).await.unwrap();
    assert!(a.list_typed().await.unwrap().is_empty());
    assert!(w.rbd.devices().is_empty());
    assert_eq!(w.rbd.unmaps().len(), 1);
    let state = w.state_text();
    assert!(!state.contains("\"attach\""), "a dangling holder: {state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_command_whose_deadline_passes_while_waiting_is_timeout_and_touches_nothing() {
    let w = World::new(FakeRbdBus::default());
    let r = w.try_start(limits(1)).await.unwrap();
    w.loop_attach.close();
    let h = r.handle.clone();
    let first = bg(async move { h.attach_typed(loop_spec(None, "/img/a.sqsh"), None).await });
    w.loop_attach.reached(1).await;
    let deadline = Instant::now() + HELD;
    let err = imagebus_bus::deadline::scope(
        Some(deadline),
        AttachModule::attach(&r.handle, loop_spec(None, "/img/b.sqsh"), None),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::Timeout, "{err:?}");
    w.loop_attach.open();
    done(first).await.unwrap();
    assert_eq!(w.loops.attaches().len(), 1, "the timed-out attach ran");
    assert_eq!(r.handle.list_typed().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_command_fails_calls_and_ends_the_task_as_a_panic() {
    let w = World::new(FakeRbdBus::default());
    let r = w.start().await;
    let info = r
        .handle
        .attach_typed(loop_spec(None, "/img/a.sqsh"), None)
        .await
        .unwrap();
    assert_eq!(r.handle.list_typed().await.unwrap(), vec![info]);
    let err = tokio::time::timeout(
        WAIT,
        AttachModule::attach(&r.handle, loop_spec(None, "/img/boom"), None),
    )
    .await
    .expect("the call hung")
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable, "{err:?}");
    let err = tokio::time::timeout(WAIT, AttachModule::list(&r.handle))
        .await
        .expect("the call hung")
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable, "{err:?}");
    let end = tokio::time::timeout(WAIT, r.task)
        .await
        .expect("the actor task did not end");
    assert!(
        end.is_err_and(|e| e.is_panic()),
        "the task must end as a panic"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_waits_for_a_command_in_flight() {
    let w = World::new(FakeRbdBus::default());
    let mut r = w.start().await;
    w.loop_attach.close();
    let h = r.handle.clone();
    let inflight = bg(async move { h.attach_typed(loop_spec(None, "/img/a.sqsh"), None).await });
    w.loop_attach.reached(1).await;
    r.stop.cancel();
    let refused = r
        .handle
        .attach_typed(loop_spec(None, "/img/b.sqsh"), None)
        .await
        .unwrap_err();
    assert!(matches!(refused, AttachError::Stopped), "{refused}");
    still_waiting(&mut r.task).await;
    w.loop_attach.open();
    let info = done(inflight).await.unwrap();
    tokio::time::timeout(WAIT, r.task)
        .await
        .expect("the actor did not stop")
        .expect("a clean stop is not a panic");
    assert!(w.state_text().contains(&info.device.display().to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_stops_the_actor_and_ends_the_task() {
    let w = World::new(FakeRbdBus::default());
    let r = w.start().await;
    r.handle
        .attach_typed(loop_spec(None, "/img/a.sqsh"), None)
        .await
        .unwrap();
    let handle = r.handle.clone();
    r.shut().await;
    let err = AttachModule::list(&handle).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropping_every_handle_stops_the_actor() {
    let w = World::new(FakeRbdBus::default());
    let r = w.start().await;
    let other = r.handle.clone();
    assert!(other.list_typed().await.unwrap().is_empty());
    drop(r.handle);
    drop(other);
    tokio::time::timeout(WAIT, r.task)
        .await
        .expect("the actor task did not end")
        .expect("the actor ends normally");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_rbd_attach_in_flight_is_journaled_and_cleaned_at_start() {
    let w = World::new(FakeRbdBus::available());
    let r = w.start().await;
    w.rbd_map.close();
    let (h1, h2) = (r.handle.clone(), r.handle.clone());
    let one = bg(async move { h1.attach_typed(rbd_image("one", false), None).await });
    let two = bg(async move { h2.attach_typed(rbd_image("two", false), None).await });
    w.rbd_map.reached(2).await;
    let journal = intents(&w);
    assert_eq!(journal.len(), 2, "{journal:?}");
    w.rbd_map.open();
    done(one).await.unwrap();
    done(two).await.unwrap();
    assert!(intents(&w).is_empty());
    let ctx = r.handle.engine.ctx.clone();
    r.shut().await;
    // As if killed after the sysfs writes, before recording: both mapped, both journaled.
    let crashed = [7, 8];
    for id in crashed {
        let req = RbdMap {
            monitors: vec!["127.0.0.1:16789".into()],
            pool: "rbd".into(),
            image: format!("crashed{id}"),
            snapshot: None,
            namespace: None,
            user: "u".into(),
            read_only: true,
            key_name: ctx.key_name(id),
        };
        w.rbd.map(&req, "x").unwrap();
    }
    let path = w.cfg().state_dir.join("attach.json");
    let mut v: serde_json::Value = serde_json::from_str(&w.state_text()).unwrap();
    v["data"]["intents"] = serde_json::json!(crashed);
    v["data"]["next_id"] = serde_json::json!(9);
    std::fs::write(&path, v.to_string()).unwrap();
    let r = w.start().await;
    let cleaned: Vec<&String> = r
        .report
        .cleaned
        .iter()
        .filter(|c| c.starts_with("krbd device"))
        .collect();
    assert_eq!(cleaned.len(), 2, "{}", r.report);
    assert_eq!(w.rbd.devices().len(), 2, "the recorded mappings stay");
    assert!(intents(&w).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reaper_restarts_a_dead_rbd_fuse_and_keeps_the_read_only_device() {
    let w = World::new(FakeRbdBus::default());
    w.runner.respond(CommandOutput {
        code: Some(0),
        ..Default::default()
    });
    let r = w.start().await;
    let info = r.handle.attach_typed(rbd_spec(false), None).await.unwrap();
    assert_eq!(info.driver, "rbd-fuse");
    let pid_of = |h: AttachHandle, id: u64| async move {
        h.engine
            .read(move |s| {
                s.db.records.get(&id).and_then(|r| match r.backing {
                    Backing::RbdFuse { pid, .. } => Some(pid),
                    _ => None,
                })
            })
            .await
            .unwrap()
    };
    let old = pid_of(r.handle.clone(), info.id).await.unwrap();
    // rbd-fuse dies.
    w.procs
        .signal(old, imagebus_sys::proc::Signal::Kill)
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let new = loop {
        match pid_of(r.handle.clone(), info.id).await {
            Some(p) if p != old => break p,
            _ => {}
        }
        assert!(Instant::now() < deadline, "rbd-fuse was not restarted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(w.procs.alive(new));
    let now = r.handle.get_typed(Selector::Id(info.id)).await.unwrap();
    assert_eq!(now.device, info.device, "a read-only device is kept");
    assert_eq!(w.loops.bound().len(), 1);
    // The restart is made durable (by the restart job, right after its step).
    let deadline = Instant::now() + WAIT;
    while !w.state_text().contains(&format!("\"pid\": {new}")) {
        assert!(Instant::now() < deadline, "the restart was not saved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r.handle
        .detach_typed(Selector::Id(info.id), false)
        .await
        .unwrap();
    assert!(w.loops.bound().is_empty());
    assert!(!w.procs.alive(new));
}
