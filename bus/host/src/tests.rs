use crate::{start, Host, HostError, Key, Limits};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct State {
    log: Vec<String>,
    n: u64,
}

fn limits(max: usize) -> Limits {
    Limits {
        max_mutations: max,
        shutdown_timeout: Duration::from_secs(5),
    }
}

async fn host(max: usize) -> (Host<State>, tokio::task::JoinHandle<()>, CancellationToken) {
    let stop = CancellationToken::new();
    let s = start("test", State::default(), limits(max), stop.clone())
        .await
        .unwrap();
    (s.host, s.task, stop)
}

/// Starts a job on `key` that logs `name` and then waits for `go`; returns once it runs.
async fn parked(
    h: &Host<State>,
    key: &str,
    name: &str,
) -> (Arc<Notify>, tokio::task::JoinHandle<Result<(), HostError>>) {
    let go = Arc::new(Notify::new());
    let (started_tx, started_rx) = oneshot::channel();
    let (h2, g, name, key) = (h.clone(), go.clone(), name.to_string(), key.to_string());
    let call = tokio::spawn(async move {
        h2.mutate(vec![Key::other(key)], move |h| async move {
            h.apply(move |s: &mut State| s.log.push(name))
                .await
                .unwrap();
            let _ = started_tx.send(());
            g.notified().await;
        })
        .await
    });
    tokio::time::timeout(WAIT, started_rx)
        .await
        .unwrap()
        .unwrap();
    (go, call)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_steps_answer_while_a_job_is_in_flight() {
    let (h, _task, _stop) = host(4).await;
    let (go, call) = parked(&h, "a", "slow").await;
    let t = Instant::now();
    let log = h.read(|s: &State| s.log.clone()).await.unwrap();
    assert_eq!(log, vec!["slow".to_string()]);
    h.apply(|s: &mut State| s.n += 1).await.unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "a read waited for a job"
    );
    go.notify_one();
    call.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_on_one_key_run_in_order_and_other_keys_run_beside_them() {
    let (h, _task, _stop) = host(4).await;
    let (go_a, first) = parked(&h, "a", "a1").await;
    // Another key starts while "a" is busy.
    let (go_b, other) = parked(&h, "b", "b1").await;
    // The same key waits.
    let h2 = h.clone();
    let second = tokio::spawn(async move {
        h2.mutate(vec![Key::other("a")], |h| async move {
            h.apply(|s: &mut State| s.log.push("a2".into()))
                .await
                .unwrap();
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await; // give it the chance to run wrongly
    assert_eq!(
        h.read(|s: &State| s.log.clone()).await.unwrap(),
        ["a1", "b1"]
    );
    go_a.notify_one();
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    assert_eq!(
        h.read(|s: &State| s.log.clone()).await.unwrap(),
        ["a1", "b1", "a2"]
    );
    go_b.notify_one();
    other.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_jobs_run_and_the_rest_start_in_arrival_order() {
    let (h, _task, _stop) = host(1).await;
    let (go, first) = parked(&h, "x", "first").await;
    let mut waiting = Vec::new();
    for i in 0..5 {
        let h2 = h.clone();
        waiting.push(tokio::spawn(async move {
            h2.mutate(vec![Key::id("k", i)], move |h| async move {
                h.apply(move |s: &mut State| s.log.push(format!("w{i}")))
                    .await
                    .unwrap();
            })
            .await
        }));
        // Arrival order is the order of the calls.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.running(), 1);
    assert_eq!(h.read(|s: &State| s.log.len()).await.unwrap(), 1);
    go.notify_one();
    first.await.unwrap().unwrap();
    for w in waiting {
        w.await.unwrap().unwrap();
    }
    assert_eq!(
        h.read(|s: &State| s.log.clone()).await.unwrap(),
        ["first", "w0", "w1", "w2", "w3", "w4"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_deadline_passes_while_waiting_is_never_started() {
    let (h, _task, _stop) = host(1).await;
    let (go, first) = parked(&h, "x", "first").await;
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let deadline = Instant::now() + Duration::from_millis(200);
    let err = imagebus_bus::deadline::scope(
        Some(deadline),
        h.mutate(vec![Key::other("y")], move |_| async move {
            r.fetch_add(1, Ordering::SeqCst);
        }),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, HostError::Timeout { .. }), "{err:?}");
    assert!(Instant::now() < deadline + Duration::from_secs(1));
    go.notify_one();
    first.await.unwrap().unwrap();
    // The slot is free now; the timed-out job did not sneak in.
    h.mutate(vec![], |_| async {}).await.unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_to_its_end_when_its_caller_gives_up() {
    let (h, _task, _stop) = host(2).await;
    let (go, call) = parked(&h, "a", "abandoned").await;
    call.abort();
    go.notify_one();
    // The job finishes: the key is free again and its step after the wait ran.
    let h2 = h.clone();
    tokio::time::timeout(WAIT, h2.mutate(vec![Key::other("a")], |_| async {}))
        .await
        .expect("the abandoned job still holds its key")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_step_kills_the_actor_and_its_task_is_a_panic() {
    let (h, task, _stop) = host(2).await;
    let err = h
        .apply(|_: &mut State| -> () { panic!("step panics") })
        .await
        .unwrap_err();
    assert_eq!(err, HostError::Panicked("test"));
    let ended = tokio::time::timeout(WAIT, task).await.unwrap();
    assert!(ended.unwrap_err().is_panic());
    assert!(h.read(|s: &State| s.n).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_job_kills_the_actor_and_its_task_is_a_panic() {
    let (h, task, _stop) = host(2).await;
    let err = h
        .mutate(vec![], |_| async { panic!("job panics") })
        .await
        .unwrap_err();
    assert_eq!(err, HostError::Panicked("test"));
    let ended = tokio::time::timeout(WAIT, task).await.unwrap();
    assert!(ended.unwrap_err().is_panic());
    let later = h.mutate(vec![], |_| async {}).await.unwrap_err();
    assert!(matches!(
        later,
        HostError::Stopped(_) | HostError::Panicked(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_jobs_in_flight_finish_and_refuses_new_ones() {
    let (h, task, stop) = host(2).await;
    let (go, call) = parked(&h, "a", "inflight").await;
    stop.cancel();
    // New work is refused at once.
    let refused = h.mutate(vec![], |_| async {}).await.unwrap_err();
    assert_eq!(refused, HostError::Stopped("test"));
    // Reads still answer while the job runs.
    assert_eq!(h.read(|s: &State| s.log.len()).await.unwrap(), 1);
    go.notify_one();
    call.await.unwrap().unwrap();
    tokio::time::timeout(WAIT, task)
        .await
        .expect("the actor stopped once the job ended")
        .expect("a clean stop is not a panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_after_the_timeout_when_a_job_hangs() {
    let stop = CancellationToken::new();
    let s = start(
        "test",
        State::default(),
        Limits {
            max_mutations: 2,
            shutdown_timeout: Duration::from_millis(300),
        },
        stop.clone(),
    )
    .await
    .unwrap();
    let (_go, _call) = parked(&s.host, "a", "hangs").await;
    let t = Instant::now();
    stop.cancel();
    tokio::time::timeout(WAIT, s.task).await.unwrap().unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_locks_are_forgotten_when_free() {
    let locks = crate::keys::KeyLocks::default();
    {
        let _a = locks.lock(vec![Key::id("m", 1), Key::name("m", "x")]).await;
        assert_eq!(locks.len(), 2);
    }
    assert_eq!(locks.len(), 0);
}
