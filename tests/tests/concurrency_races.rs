//! Issue 7, races between concurrent mutations of one actor, over the bus against a real
//! imagebusd (real loop devices, squashfs, overlayfs, runc). Root; needs runc,
//! busybox-static, squashfs-tools.
//!
//! (a) N concurrent creates with one name, for attachments, mounts and containers: exactly
//!     one succeeds, every other fails with `Conflict`, and the kernel holds exactly one
//!     object (the losers' half-made devices and mounts are undone).
//! (b) `mount@1.Acquire` of an overlay's inline lower against the cascading `Unmount` of
//!     the overlay, many rounds: an Acquire that succeeded keeps the lower mounted (held by
//!     its holder only); one that failed (`NotFound`) finds it gone from the list and the
//!     kernel; no dangling holder, no leaked mount or loop device either way.

use imagebus_bus::{ErrorCode, RemoteError};
use imagebus_schema::attach::{AttachModule, AttachSource, AttachSpec, LoopSource};
use imagebus_schema::container::{
    CommandLine, ContainerModule, ContainerSpec, ContainerState, InitialState,
};
use imagebus_schema::mount::{MountModule, MountRef, MountSpec};
use imagebus_schema::{Holder, Selector};
use imagebus_tests::bus_node::{BusNode, Stubs};
use imagebus_tests::kernel_probe::{cgroups_of, runc_list};
use imagebus_tests::mount_stack::{image_on_loop, inline, overlay};
use imagebus_tests::rootfs::{loops_under, mounts_under};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;

/// Concurrent callers per race.
const N: usize = 8;
/// Rounds of each same-name race.
const NAME_ROUNDS: usize = 2;
/// Rounds of Acquire against cascade delete.
const ACQUIRE_ROUNDS: usize = 30;
/// Bus workers per module: more than the concurrent calls.
const WORKERS: u32 = 32;
/// Deadline of every call.
const CALL: Duration = Duration::from_secs(60);

/// Runs `f(0..N)` at once (released together by a barrier); the results in caller order.
async fn race<T, Fut>(f: impl Fn(usize) -> Fut) -> Vec<Result<T, RemoteError>>
where
    T: Send + 'static,
    Fut: Future<Output = Result<T, RemoteError>> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let (b, fut) = (barrier.clone(), f(i));
            tokio::spawn(async move {
                b.wait().await;
                fut.await
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("racing task"));
    }
    out
}

/// Exactly one success, every other result `Conflict`; the winner.
fn one_winner<T: std::fmt::Debug>(what: &str, results: Vec<Result<T, RemoteError>>) -> T {
    let codes: Vec<String> = results
        .iter()
        .map(|r| match r {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("{:?}", e.code),
        })
        .collect();
    let mut winners = Vec::new();
    for r in results {
        match r {
            Ok(v) => winners.push(v),
            Err(e) => assert_eq!(e.code, ErrorCode::Conflict, "{what}: a loser got {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{what}: {codes:?}");
    winners.pop().unwrap()
}

fn copies(node: &BusNode, tag: &str) -> Vec<PathBuf> {
    (0..N)
        .map(|i| node.image_copy(&format!("{tag}-{i}.sqsh")))
        .collect()
}

fn container_spec(name: &str, mount: MountRef) -> ContainerSpec {
    ContainerSpec {
        name: Some(name.into()),
        state: InitialState::Running,
        stop_signal: Some("KILL".into()),
        stop_timeout_ms: Some(500),
        ..ContainerSpec::new(
            mount,
            CommandLine::Argv(vec!["/bin/sleep".into(), "1000".into()]),
        )
    }
}

/// The kernel holds `mounts` mounts and `loops` loop devices below the scratch directory,
/// and agrees with the lists.
async fn assert_kernel(node: &BusNode, s: &Stubs, mounts: usize, loops: usize) {
    let l = node.lists(s).await;
    node.assert_kernel_matches(&l);
    assert_eq!(mounts_under(node.root()).len(), mounts, "{:#?}", l.mounts);
    assert_eq!(
        loops_under(node.root()).len(),
        loops,
        "{:#?}",
        l.attachments
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_with_one_name_make_exactly_one_object() {
    let node = BusNode::start("ibrace-name-", WORKERS);
    let s = node.stubs(CALL).await;
    for round in 0..NAME_ROUNDS {
        // Attachments.
        let files = copies(&node, &format!("a{round}"));
        let a = s.attach.clone();
        let won = one_winner(
            "attach",
            race(|i| {
                let (a, path) = (a.clone(), files[i].clone());
                async move {
                    let spec = AttachSpec {
                        name: Some("dup".into()),
                        source: AttachSource::Loop(LoopSource {
                            path,
                            read_only: true,
                        }),
                    };
                    a.attach(spec, None).await
                }
            })
            .await,
        );
        assert_eq!(won.name.as_deref(), Some("dup"));
        assert_kernel(&node, &s, 0, 1).await;
        s.attach.detach(Selector::Id(won.id), false).await.unwrap();
        node.assert_clean(&s).await;

        // Mounts (image mounts, each on its own inline loop attachment).
        let files = copies(&node, &format!("m{round}"));
        let m = s.mount.clone();
        let won = one_winner(
            "mount",
            race(|i| {
                let (m, mut spec) = (m.clone(), image_on_loop(&files[i]));
                spec.name = Some("dup".into());
                async move { m.mount(spec, None).await }
            })
            .await,
        );
        assert_eq!(won.name.as_deref(), Some("dup"));
        assert_kernel(&node, &s, 1, 1).await;
        s.mount.unmount(Selector::Id(won.id), false).await.unwrap();
        node.assert_clean(&s).await;

        // Containers (overlay → squashfs → loop, inline).
        let files = copies(&node, &format!("c{round}"));
        let c = s.container.clone();
        let won = one_winner(
            "container",
            race(|i| {
                let c = c.clone();
                let mount = inline(overlay(vec![inline(image_on_loop(&files[i]))]));
                async move { c.create(container_spec("dup", mount)).await }
            })
            .await,
        );
        assert_eq!(won.state, ContainerState::Running);
        assert_kernel(&node, &s, 2, 1).await;
        assert_eq!(runc_list(&node.daemon.runtime_root()).len(), 1);
        assert_eq!(cgroups_of(node.daemon.instance()).len(), 1);
        s.container
            .delete(Selector::Id(won.id), true)
            .await
            .unwrap();
        node.assert_clean(&s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acquire_racing_a_cascade_delete_never_leaves_a_dangling_holder() {
    let node = BusNode::start("ibrace-acq-", WORKERS);
    let s = node.stubs(CALL).await;
    let lower_image = node.image_copy("lower.sqsh");
    // A user-held image mount shared by every round's overlay: the cascade must release
    // the overlay's reference and leave it mounted.
    let mut shared_spec: MountSpec = image_on_loop(&node.image_copy("shared.sqsh"));
    shared_spec.name = Some("shared".into());
    let shared = s.mount.mount(shared_spec, None).await.unwrap();
    let (mut won, mut lost) = (0, 0);
    for round in 0..ACQUIRE_ROUNDS {
        let upper = s
            .mount
            .mount(
                overlay(vec![
                    inline(image_on_loop(&lower_image)),
                    MountRef::Existing(Selector::Id(shared.id)),
                ]),
                None,
            )
            .await
            .unwrap();
        let lower = upper.children[0];
        let lower_info = s.mount.get(Selector::Id(lower)).await.unwrap();
        // The operator's own reference: a `container:N` holder is checked with its owner
        // now (issue 10, defect 9), and no container stands on this mount.
        let holder = Holder::User;
        // Vary the interleaving: one side starts up to 6 ms after the other.
        let skew = Duration::from_millis((round % 4) as u64 * 2);
        let (acq_delay, del_delay) = if round % 2 == 0 {
            (skew, Duration::ZERO)
        } else {
            (Duration::ZERO, skew)
        };
        let barrier = Arc::new(Barrier::new(2));
        let (m1, b1, h1) = (s.mount.clone(), barrier.clone(), holder.clone());
        let acquire = tokio::spawn(async move {
            b1.wait().await;
            tokio::time::sleep(acq_delay).await;
            m1.acquire(Selector::Id(lower), h1).await
        });
        let (m2, b2) = (s.mount.clone(), barrier.clone());
        let unmount = tokio::spawn(async move {
            b2.wait().await;
            tokio::time::sleep(del_delay).await;
            m2.unmount(Selector::Id(upper.id), false).await
        });
        let acquired = acquire.await.unwrap();
        unmount
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("round {round}: unmounting the overlay: {e:?}"));

        let l = node.lists(&s).await;
        node.assert_kernel_matches(&l);
        let kernel: Vec<PathBuf> = mounts_under(node.root())
            .into_iter()
            .map(|e| e.mount_point)
            .collect();
        assert!(!l.mounts.iter().any(|m| m.id == upper.id), "round {round}");
        assert!(!kernel.contains(&upper.mountpoint), "round {round}");
        let sh = l.mounts.iter().find(|m| m.id == shared.id).expect("shared");
        assert_eq!(
            sh.holders,
            vec![Holder::User],
            "round {round}: shared mount"
        );
        assert!(kernel.contains(&sh.mountpoint), "round {round}");
        let listed = l.mounts.iter().find(|m| m.id == lower);
        match acquired {
            Ok(_) => {
                won += 1;
                let info = listed.unwrap_or_else(|| {
                    panic!("round {round}: Acquire succeeded but the lower is gone: {l:#?}")
                });
                assert_eq!(info.holders, vec![holder.clone()], "round {round}");
                assert!(
                    kernel.contains(&lower_info.mountpoint),
                    "round {round}: acquired lower not mounted"
                );
                let att = info.attachment.expect("an image mount has an attachment");
                let a = l
                    .attachments
                    .iter()
                    .find(|a| a.id == att)
                    .expect("attachment");
                assert_eq!(a.holders, vec![Holder::Mount(lower)], "round {round}");
                s.mount.release(lower, holder).await.unwrap();
            }
            Err(e) => {
                lost += 1;
                assert_eq!(e.code, ErrorCode::NotFound, "round {round}: {e:?}");
                assert!(
                    listed.is_none(),
                    "round {round}: lower still listed: {listed:#?}"
                );
                assert!(
                    !kernel.contains(&lower_info.mountpoint),
                    "round {round}: lower still mounted"
                );
            }
        }
        // Either way the lower and its loop device are gone now; only the shared mount is
        // left.
        let l = node.lists(&s).await;
        assert_eq!(l.mounts.len(), 1, "round {round}: {:#?}", l.mounts);
        assert_eq!(
            l.attachments.len(),
            1,
            "round {round}: {:#?}",
            l.attachments
        );
        node.assert_kernel_matches(&l);
    }
    eprintln!("{ACQUIRE_ROUNDS} rounds: Acquire won {won}, lost {lost}");
    s.mount
        .unmount(Selector::Id(shared.id), false)
        .await
        .unwrap();
    node.assert_clean(&s).await;
}
