//! Pieces of `bench-container`'s concurrency sections (issue 7): N concurrent callers of
//! `container@1.Create` over the bus next to N concurrent `runc run --detach` processes,
//! and `List` latencies sampled while creates hang on a black-hole Ceph monitor.

use crate::blackhole::{cephx_key, overlay_on_rbd, BlackHole};
use imagebus_bus::{Client, RemoteError};
use imagebus_schema::attach::{AttachModule, AttachModuleStub};
use imagebus_schema::container::{
    ContainerFilter, ContainerModule, ContainerModuleStub, ContainerSpec,
};
use imagebus_schema::mount::{MountModule, MountModuleStub, MountRef};
use imagebus_schema::Selector;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Boxed error of the benchmarks.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Parses `--name 1,4,16` (the default when absent or malformed).
pub fn list_flag(args: &[String], name: &str, default: &[usize]) -> Vec<usize> {
    args.windows(2)
        .find(|w| w[0] == name)
        .and_then(|w| {
            w[1].split(',')
                .map(|n| n.trim().parse::<usize>().ok().filter(|n| *n > 0))
                .collect::<Option<Vec<_>>>()
        })
        .unwrap_or_else(|| default.to_vec())
}

/// The `q` quantile (0.0..=1.0) of `v`, in milliseconds; 0 for no samples.
pub fn quantile_ms(v: &[Duration], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort();
    s[((s.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0
}

/// `n` callers, each creating `rounds` containers one after another from `spec()`;
/// the ids and the wall time from the first call to the last reply.
pub async fn concurrent_creates(
    stub: &ContainerModuleStub,
    n: usize,
    rounds: usize,
    spec: fn() -> ContainerSpec,
) -> Result<(Vec<u64>, Duration), BoxError> {
    let t = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let stub = stub.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for _ in 0..rounds {
                    ids.push(stub.create(spec()).await?.id);
                }
                Ok::<_, RemoteError>(ids)
            })
        })
        .collect();
    let mut ids = Vec::new();
    let mut first_error = None;
    for task in tasks {
        match task.await? {
            Ok(v) => ids.extend(v),
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    let took = t.elapsed();
    match first_error {
        // The caller deletes what was created either way.
        Some(e) => Err(format!("concurrent create: {e} (created {ids:?})").into()),
        None => Ok((ids, took)),
    }
}

/// `runc --root <root> run --detach --bundle <bundle> <id>`, stdio appended to `log`; how
/// long it took.
pub fn runc_run(root: &Path, bundle: &Path, id: &str, log: &Path) -> Result<Duration, BoxError> {
    let out = OpenOptions::new().create(true).append(true).open(log)?;
    let t = Instant::now();
    let status = Command::new("runc")
        .arg("--root")
        .arg(root)
        .args(["run", "--detach", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()?;
    let took = t.elapsed();
    if !status.success() {
        return Err(format!("runc run {id}: {status}").into());
    }
    Ok(took)
}

/// One thread per entry of `work`, each running its (bundle, id) pairs with [`runc_run`]
/// one after another; the wall time of all of them.
pub fn concurrent_runc(
    root: &Path,
    work: Vec<Vec<(PathBuf, String)>>,
    log: &Path,
) -> Result<Duration, BoxError> {
    let t = Instant::now();
    let threads: Vec<_> = work
        .into_iter()
        .map(|items| {
            let (root, log) = (root.to_path_buf(), log.to_path_buf());
            std::thread::spawn(move || -> Result<(), String> {
                for (bundle, id) in items {
                    runc_run(&root, &bundle, &id, &log).map_err(|e| e.to_string())?;
                }
                Ok(())
            })
        })
        .collect();
    let mut result = Ok(());
    for th in threads {
        if let Err(e) = th.join().map_err(|_| "runc thread panicked".to_string())? {
            result = Err(e);
        }
    }
    result?;
    Ok(t.elapsed())
}

/// Latencies of the three `List` calls over the bus.
#[derive(Debug, Default)]
pub struct ListSamples {
    /// `container@1.List`.
    pub container: Vec<Duration>,
    /// `mount@1.List`.
    pub mount: Vec<Duration>,
    /// `attach@1.List`.
    pub attach: Vec<Duration>,
    /// Calls that failed.
    pub errors: Vec<String>,
}

/// Calls the three Lists round-robin, one call at a time, until `stop()` says so or `max`
/// passes (at least `min` rounds, unless a call fails).
pub async fn sample_lists(
    c: &ContainerModuleStub,
    m: &MountModuleStub,
    a: &AttachModuleStub,
    min: usize,
    max: Duration,
    stop: impl Fn() -> bool,
) -> Result<ListSamples, BoxError> {
    let mut s = ListSamples::default();
    let t0 = Instant::now();
    let mut rounds = 0;
    while rounds < min || (!stop() && t0.elapsed() < max) {
        // A failed call (e.g. a Timeout behind a hanging create) is recorded with how long
        // it took, and ends the sampling.
        let t = Instant::now();
        let r = c.list(ContainerFilter::default()).await.map(drop);
        s.container.push(t.elapsed());
        if let Err(e) = r {
            s.errors.push(format!("container@1.List: {e}"));
            break;
        }
        let t = Instant::now();
        let r = m.list().await.map(drop);
        s.mount.push(t.elapsed());
        if let Err(e) = r {
            s.errors.push(format!("mount@1.List: {e}"));
            break;
        }
        let t = Instant::now();
        let r = a.list().await.map(drop);
        s.attach.push(t.elapsed());
        if let Err(e) = r {
            s.errors.push(format!("attach@1.List: {e}"));
            break;
        }
        rounds += 1;
        if t0.elapsed() > max {
            break;
        }
    }
    Ok(s)
}

/// Prints one row per list: idle and under load, p50/p99/max in ms.
pub fn print_list_table(idle: &ListSamples, busy: &ListSamples, busy_label: &str) {
    println!(
        "{:<22} {:>6} {:>8} {:>8} | {:>6} {:>8} {:>8} {:>8}",
        "List (ms)", "idle n", "p50", "p99", "n", "p50", "p99", "max"
    );
    for (name, i, b) in [
        ("container@1.List", &idle.container, &busy.container),
        ("mount@1.List", &idle.mount, &busy.mount),
        ("attach@1.List", &idle.attach, &busy.attach),
    ] {
        println!(
            "{name:<22} {:>6} {:>8.2} {:>8.2} | {:>6} {:>8.2} {:>8.2} {:>8.2}",
            i.len(),
            quantile_ms(i, 0.5),
            quantile_ms(i, 0.99),
            b.len(),
            quantile_ms(b, 0.5),
            quantile_ms(b, 0.99),
            quantile_ms(b, 1.0)
        );
    }
    println!("(right-hand columns: {busy_label}; target p99 <= 20 ms)");
    for e in idle.errors.iter().chain(&busy.errors) {
        println!("failed: {e}");
    }
}

/// Section 5 of bench-container: `List` latencies, idle and while 8 creates hang on a
/// black-hole monitor; `spec(mount, command)` builds a running container spec.
pub async fn hang_section(
    client: &Client,
    stub: &ContainerModuleStub,
    m: &MountModuleStub,
    a: &AttachModuleStub,
    spec: fn(MountRef, &str) -> ContainerSpec,
) -> Result<(), BoxError> {
    const HANGING: usize = 8;
    let hole = BlackHole::start();
    let key = cephx_key();
    let idle = sample_lists(stub, m, a, 200, Duration::from_secs(20), || true).await?;
    let slow = ContainerModuleStub::new(client.with_timeout(Duration::from_secs(150)));
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..HANGING)
        .map(|i| {
            let mut s = spec(
                overlay_on_rbd(&hole.monitor(), &format!("bench-hang-{i}"), &key),
                "sleep 1000",
            );
            s.name = Some(format!("bench-hang-{i}"));
            let slow = slow.clone();
            tokio::spawn(async move { (slow.create(s).await.map(|c| c.id), t0.elapsed()) })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while hole.accepted() == 0 {
        if Instant::now() > deadline {
            return Err("no hanging create reached the black-hole monitor in 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let busy = sample_lists(stub, m, a, 1, Duration::from_secs(60), || {
        tasks.iter().any(|t| t.is_finished())
    })
    .await?;
    let mut ended = Vec::new();
    for t in tasks {
        let (r, took) = t.await?;
        ended.push(match r {
            Ok(id) => {
                stub.delete(Selector::Id(id), true).await?;
                format!("ok?! after {took:.1?}")
            }
            Err(e) => format!("{:?} after {took:.1?}", e.code),
        });
    }
    println!();
    print_list_table(
        &idle,
        &busy,
        &format!("while {HANGING} creates hang on a black-hole monitor"),
    );
    println!("the {HANGING} hanging creates ended: {}", ended.join(", "));
    Ok(())
}
