//! Container benchmark (issue 4), as root, with a private redis-server:
//!
//! 1. `Create(state=running)` of `container.container@1` over the bus until the reply
//!    says `running`, against `runc run --detach` of the same bundle (the `config.json`
//!    the actor generated) with its stdio on an append-mode log file, in the same run,
//!    interleaved iteration by iteration; the root is an existing bind mount, so the
//!    difference is our overhead (bus round trip, spec checks, bundle write, monitor
//!    spawn, record fsync). Teardown is not timed.
//! 2. The full nested chain end to end: one Create defining overlay → squashfs image →
//!    loop attachment inline, running.
//! 3. 100 containers created, listed and deleted over the bus, with this process's
//!    VmRSS/VmHWM (it is the daemon here: attach, mount and container actors and the bus
//!    server run in it, as in `imagebusd`).
//! 4. Concurrency (issue 7): for each N of `--concurrency` (default 1,4,16), N callers each
//!    doing `--rounds` (default 4) `Create(state=running)` over the bus one after another,
//!    as creates/s, next to N threads each doing as many `runc run --detach` of equivalent
//!    bundles (the generated `config.json`, own cgroup each), in the same run. Each phase
//!    also reports its CPU time per create from cgroup accounting (this process and all it
//!    starts: redis, monitors, runc, the containers' inits), which load from elsewhere on
//!    the machine does not skew the way it skews the rates, and the part spent in this
//!    process (daemon, bus, callers). The monitor zygote runs in a cgroup of its own below
//!    this process's, so a further line splits the rest: our monitors with the runc they
//!    start, the containers' cgroups (runc's init stage and the inits), and what is left
//!    (Redis; on the raw side, runc itself). The "CPU ratio" (runc's CPU per create over ours) is
//!    what the rate ratio tends to once the CPUs are the limit. `--trials K` (default 1)
//!    repeats each N, ours first in even trials and runc first in odd ones (so that what
//!    one phase leaves the kernel to finish weighs on both alike), and prints the medians:
//!    the rates swing with other load on the machine, the medians less.
//! 5. With `--hang`: `List` p50/p99 of the three modules over the bus, idle and while 8
//!    creates hang on a black-hole Ceph monitor (overlay → image → RBD attachment through a
//!    listener that never answers; needs ceph-common), and how those creates end.
//!
//! State, bundles and logs go under `--scratch DIR` (default `/tmp`); run directories
//! (runtime roots, the runs' files, mount records) under `--run-scratch DIR` (default
//! `/dev/shm`), a tmpfs as `/run` is on a standard host, for the raw runc as for us.
//!
//! Run: `cargo build --release -p imagebus-container --bins &&
//! cargo run --release -p imagebus-tests --bin bench-container [-- --iters 30 --many 100
//! --concurrency 1,4,16 --rounds 4 --trials 3 --hang]`

use imagebus_attach::{AttachConfig, AttachSys};
use imagebus_bus::{Client, Server};
use imagebus_container::{ContainerConfig, ContainerSys, MONITOR_BINARY};
use imagebus_mount::{MountConfig, MountSys};
use imagebus_schema::attach::{AttachModuleServer, AttachModuleStub};
use imagebus_schema::container::{
    CommandLine, ContainerFilter, ContainerModule, ContainerModuleServer, ContainerModuleStub,
    ContainerSpec, ContainerState, InitialState,
};
use imagebus_schema::mount::{BindMount, MountModule, MountRef, MountSource, MountSpec};
use imagebus_schema::mount::{MountModuleServer, MountModuleStub};
use imagebus_schema::{Holder, Selector};
use imagebus_tests::bench_concurrency::{
    concurrent_creates, concurrent_runc, hang_section, list_flag,
};
use imagebus_tests::blackhole::require_rbd_tools;
use imagebus_tests::cpu_meter::CpuMeter;
use imagebus_tests::redis::RedisFixture;
use imagebus_tests::rootfs::{busybox_squashfs, KernelScratch};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn flag(args: &[String], name: &str, default: usize) -> usize {
    args.windows(2)
        .find(|w| w[0] == name)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64, f64) {
    v.sort();
    let pick = |q: f64| ms(v[((v.len() - 1) as f64 * q).round() as usize]);
    (pick(0.0), pick(0.5), pick(0.9), pick(1.0))
}

fn row(name: &str, v: &[Duration]) -> f64 {
    let (min, med, p90, max) = stats(v.to_vec());
    println!(
        "{name:<44} {:>4} {min:>8.2} {med:>8.2} {p90:>8.2} {max:>8.2}",
        v.len()
    );
    med
}

fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

/// Number and total VmRSS (kB) of the monitors with a file open below `dir` (their
/// `monitor.log`, in the run dir; monitors get their config on stdin, so their command line
/// is just `imagebus-monitor -`).
fn monitors_rss(dir: &Path) -> (usize, u64) {
    let needle = dir.display().to_string();
    let mut n = 0;
    let mut kb = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        let ours = std::fs::read_dir(entry.path().join("fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.starts_with(&needle)));
        if cmd.contains(MONITOR_BINARY) && ours {
            n += 1;
            let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
            kb += status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    (n, kb)
}

fn spec(mount: MountRef, command: &str) -> ContainerSpec {
    ContainerSpec {
        state: InitialState::Running,
        stop_signal: Some("KILL".into()),
        stop_timeout_ms: Some(100),
        ..ContainerSpec::new(mount, CommandLine::Line(command.into()))
    }
}

fn chain(image: &Path) -> MountRef {
    use imagebus_tests::mount_stack::{image_on_loop, inline, overlay};
    inline(overlay(vec![inline(image_on_loop(image))]))
}

use imagebus_tests::bench_concurrency::runc_run;

/// What section 4 and 5 run.
struct Concurrency {
    /// Numbers of concurrent callers.
    callers: Vec<usize>,
    /// Creates per caller.
    rounds: usize,
    /// Trials per number of callers (each: ours, then the raw runc).
    trials: usize,
    /// Whether to run section 5.
    hang: bool,
}

/// A container on the shared bind root.
fn bench_spec() -> ContainerSpec {
    spec(
        MountRef::Existing(Selector::Name("benchroot".into())),
        "sleep 1000",
    )
}

fn runc_delete(root: &Path, id: &str) {
    let _ = Command::new("runc")
        .arg("--root")
        .arg(root)
        .args(["delete", "--force", id])
        .output();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let iters = flag(&args, "--iters", 30);
    let many = flag(&args, "--many", 100);
    let conc = Concurrency {
        callers: list_flag(&args, "--concurrency", &[1, 4, 16]),
        rounds: flag(&args, "--rounds", 4).max(1),
        trials: flag(&args, "--trials", 1).max(1),
        hang: args.iter().any(|a| a == "--hang"),
    };
    if conc.hang {
        require_rbd_tools();
    }
    let monitor = std::env::current_exe()?
        .parent()
        .map(|d| d.join(MONITOR_BINARY))
        .ok_or("exe dir")?;
    if !monitor.is_file() {
        return Err(format!(
            "{monitor:?} missing: cargo build --release -p imagebus-container --bins"
        )
        .into());
    }
    // First, so that redis, the monitors and runc are charged to it (and it goes last).
    let meter = CpuMeter::enter(&format!("ibbench-ctl-{}", std::process::id()));
    let redis = RedisFixture::start();
    // `--scratch DIR`: where state, run dirs and bundles go (default /tmp).
    let parent = args
        .windows(2)
        .find(|w| w[0] == "--scratch")
        .map(|w| PathBuf::from(&w[1]))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let scratch = KernelScratch::new_in(&parent, "ibc-bench-");
    let dir = scratch.path().to_path_buf();
    // Run dirs (runtime roots, mount records) on a tmpfs, as `/run` is on a standard host,
    // for us and for the raw runc alike: `--run-scratch DIR` (default /dev/shm).
    let run_parent = args
        .windows(2)
        .find(|w| w[0] == "--run-scratch")
        .map(|w| PathBuf::from(&w[1]))
        .unwrap_or_else(|| PathBuf::from("/dev/shm"));
    let run_scratch = KernelScratch::new_in(&run_parent, "ibc-bench-run-");
    let run = run_scratch.path().to_path_buf();
    let instance = format!("ibbench-{}", std::process::id());
    let mut ccfg = ContainerConfig::new(
        dir.join("state/container"),
        run.join("container"),
        dir.join("log"),
    );
    ccfg.monitor = vec![monitor.display().to_string()];
    ccfg.instance = instance.clone();
    let result = bench(
        &redis,
        &dir,
        &run,
        &ccfg,
        iters,
        many,
        &conc,
        meter.as_ref(),
    )
    .await;
    // Cleanup whatever is left, also after a failure.
    let root = ccfg.runtime_root();
    if let Ok(out) = Command::new("runc")
        .arg("--root")
        .arg(&root)
        .args(["list", "-q"])
        .output()
    {
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            runc_delete(&root, id);
        }
    }
    let _ = imagebus_sys::cgroup::Cgroups::remove(
        &imagebus_sys::cgroup::LinuxCgroups,
        &format!("/{instance}"),
    );
    drop(scratch);
    drop(run_scratch);
    result
}

#[allow(clippy::too_many_arguments)]
async fn bench(
    redis: &RedisFixture,
    dir: &Path,
    run: &Path,
    ccfg: &ContainerConfig,
    iters: usize,
    many: usize,
    conc: &Concurrency,
    meter: Option<&CpuMeter>,
) -> Result<(), BoxError> {
    // Enough bus workers that no caller of sections 4 and 5 waits for one.
    let workers = 4.max(conc.callers.iter().max().copied().unwrap_or(1) * 2 + 16);
    let attach = imagebus_attach::spawn(
        AttachConfig {
            state_dir: dir.join("state/attach"),
            run_dir: run.join("attach"),
        },
        AttachSys::linux(),
        CancellationToken::new(),
        imagebus_attach::Limits::default(),
    )
    .await?
    .handle;
    let stop = CancellationToken::new();
    let m = imagebus_mount::spawn(
        MountConfig {
            state_dir: dir.join("state/mount"),
            run_dir: run.join("mount"),
        },
        MountSys::linux(),
        Arc::new(attach.clone()),
        stop.clone(),
        imagebus_mount::Limits::default(),
    )
    .await?;
    let mount = m.handle.clone();
    // attach and mount are served too (section 5 lists them over the bus).
    let mut aserver = Server::builder(redis.url(), "attach")
        .workers(workers)
        .build()
        .await?;
    aserver.register(AttachModuleServer::new(Arc::new(attach.clone())))?;
    tokio::spawn(aserver.run(stop.clone()));
    let mut mserver = Server::builder(redis.url(), "mount")
        .workers(workers)
        .build()
        .await?;
    mserver.register(MountModuleServer::new(Arc::new(mount.clone())))?;
    tokio::spawn(mserver.run(stop.clone()));
    let c = imagebus_container::spawn(
        ccfg.clone(),
        ContainerSys::linux(ccfg),
        Arc::new(m.handle),
        stop.clone(),
        imagebus_container::Limits::default(),
    )
    .await?;
    let mut server = Server::builder(redis.url(), "container")
        .workers(workers)
        .build()
        .await?;
    server.register(ContainerModuleServer::new(Arc::new(c.handle.clone())))?;
    tokio::spawn(server.run(stop.clone()));
    let client = Client::connect(redis.url())
        .await?
        .with_timeout(Duration::from_secs(60));
    let stub = ContainerModuleStub::new(client.clone());

    // A busybox root as an existing bind mount (shared by every container), and its image.
    let image = busybox_squashfs(dir, "bench", &[], &[]);
    let rootdir = dir.join("bench.d");
    let root = mount
        .mount(
            MountSpec {
                name: Some("benchroot".into()),
                source: MountSource::Bind(BindMount {
                    path: rootdir,
                    base: None,
                    read_only: false,
                    recursive: false,
                }),
            },
            Some(Holder::User),
        )
        .await?;
    let existing = || MountRef::Existing(Selector::Name("benchroot".into()));
    let (rss0, _) = memory();

    // 1. Create(running) over the bus vs runc run -d of the same bundle.
    let first = stub.create(spec(existing(), "sleep 1000")).await?;
    let generated = ccfg.container_dir(first.id).join("bundle/config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&generated)?)?;
    stub.delete(Selector::Id(first.id), true).await?;
    let raw_root = run.join("raw-runc");
    std::fs::create_dir_all(&raw_root)?;
    let (mut ours, mut raw, mut local, mut acquire) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..iters {
        // Parts of our cost: the call without the bus, and the mount module's share.
        let t = Instant::now();
        let info = c.handle.create(spec(existing(), "sleep 1000")).await?;
        local.push(t.elapsed());
        c.handle.delete(Selector::Id(info.id), true).await?;
        let t = Instant::now();
        mount
            .acquire(
                Selector::Id(root.id),
                Holder::Container(1_000_000 + i as u64),
            )
            .await?;
        acquire.push(t.elapsed());
        mount
            .release(root.id, Holder::Container(1_000_000 + i as u64))
            .await?;

        let t = Instant::now();
        let info = stub.create(spec(existing(), "sleep 1000")).await?;
        ours.push(t.elapsed());
        assert_eq!(info.state, ContainerState::Running);
        stub.delete(Selector::Id(info.id), true).await?;

        let id = format!("{}-raw{i}", ccfg.instance);
        config["linux"]["cgroupsPath"] = serde_json::json!(format!("/{}/{id}", ccfg.instance));
        let bundle = dir.join("raw-bundles").join(&id);
        std::fs::create_dir_all(&bundle)?;
        std::fs::write(bundle.join("config.json"), serde_json::to_vec(&config)?)?;
        raw.push(runc_run(&raw_root, &bundle, &id, &dir.join("raw.log"))?);
        runc_delete(&raw_root, &id);
        let _ = imagebus_sys::cgroup::Cgroups::remove(
            &imagebus_sys::cgroup::LinuxCgroups,
            &format!("/{}/{id}", ccfg.instance),
        );
    }
    println!(
        "{:<44} {:>4} {:>8} {:>8} {:>8} {:>8}",
        "ms", "n", "min", "median", "p90", "max"
    );
    let a = row("Create(state=running) over the bus", &ours);
    let b = row("runc run --detach (same bundle)", &raw);
    println!("median overhead: {:.2} ms (target <= 10 ms)", a - b);
    row("  of which: Create in-process (no bus)", &local);
    row("  of which: mount Acquire (mount module)", &acquire);

    // 2. The nested chain, end to end.
    let mut nested = Vec::new();
    for _ in 0..iters.min(10) {
        let t = Instant::now();
        let info = stub.create(spec(chain(&image), "sleep 1000")).await?;
        nested.push(t.elapsed());
        stub.delete(Selector::Id(info.id), true).await?;
    }
    row("Create: loop + squashfs + overlay + start", &nested);

    // 3. Many containers.
    let t = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..many {
        ids.push(stub.create(spec(existing(), "sleep 1000")).await?.id);
    }
    let created = t.elapsed();
    let (rss1, hwm1) = memory();
    let (monitors, monitors_kb) = monitors_rss(run);
    let t = Instant::now();
    let listed = stub.list(ContainerFilter::default()).await?;
    let list_took = t.elapsed();
    assert_eq!(listed.len(), many);
    let t = Instant::now();
    for id in &ids {
        stub.delete(Selector::Id(*id), true).await?;
    }
    let deleted = t.elapsed();
    let (rss2, hwm2) = memory();
    println!(
        "{many} containers: create {:.0} ms ({:.1} ms each), list {:.1} ms, delete {:.0} ms ({:.1} ms each)",
        ms(created),
        ms(created) / many as f64,
        ms(list_took),
        ms(deleted),
        ms(deleted) / many as f64
    );
    println!(
        "daemon memory (this process): VmRSS {rss0} kB before, {rss1} kB with {many} running, {rss2} kB after delete; VmHWM {hwm1} kB -> {hwm2} kB"
    );
    println!(
        "monitors: {monitors} running with {many} containers, {monitors_kb} kB VmRSS in total ({:.0} kB each)",
        monitors_kb as f64 / monitors.max(1) as f64
    );

    // 4. Concurrent callers.
    concurrency(&stub, ccfg, dir, run, &config, conc, meter).await?;
    // 5. Lists while creates hang.
    if conc.hang {
        let a = AttachModuleStub::new(client.clone());
        let m = MountModuleStub::new(client.clone());
        hang_section(&client, &stub, &m, &a, spec).await?;
    }

    mount.unmount(Selector::Id(root.id), true).await?;
    stop.cancel();
    Ok(())
}

/// Section 4: creates/s of N concurrent callers over the bus vs N concurrent `runc run -d`.
/// One trial of section 4 at `n` callers: ours and the raw runc in the same run, which
/// first alternating between trials.
struct Trial {
    /// Creates per second: ours, raw.
    rate: (f64, f64),
    /// CPU ms per create (cgroup accounting): ours, raw.
    cpu: (f64, f64),
    /// CPU ms per create in this process: ours, raw.
    own: (f64, f64),
    /// CPU ms per create of the monitors and the runtime processes they start: ours.
    monitors: f64,
    /// CPU ms per create in the containers' cgroups (inits, runc's init stage): ours, raw.
    inits: (f64, f64),
}

impl Trial {
    fn ratio(&self) -> f64 {
        self.rate.0 / self.rate.1
    }
    /// What the ratio is bound to when the CPUs are the limit: runc's CPU over ours.
    fn cpu_ratio(&self) -> f64 {
        self.cpu.1 / self.cpu.0
    }
}

/// What one phase of a trial measured: its duration (first create to last reply) and the
/// CPU it cost.
struct Phase {
    took: Duration,
    used: Counters,
}

/// CPU counters: read now with [`Counters::now`], or a phase's share of them.
#[derive(Clone, Copy)]
struct Counters {
    /// This process's cgroup and the containers' (everything the phase ran).
    cpu: Duration,
    /// This process (daemon, bus, callers).
    own: Duration,
    /// The monitors and what they started, outside the containers' cgroups.
    monitors: Duration,
    /// The containers' cgroups.
    inits: Duration,
}

impl Counters {
    fn now(meter: Option<&CpuMeter>, group: &str) -> Self {
        Self {
            cpu: meter.map(|m| m.usage(group)).unwrap_or_default(),
            own: CpuMeter::own_process(),
            monitors: meter
                .map(|m| m.usage_below(MONITORS_CGROUP))
                .unwrap_or_default(),
            inits: meter.map(|m| m.usage_at(group)).unwrap_or_default(),
        }
    }

    /// The phase from `self` until now.
    fn phase(self, took: Duration, meter: Option<&CpuMeter>, group: &str) -> Phase {
        let now = Self::now(meter, group);
        Phase {
            took,
            used: Counters {
                cpu: now.cpu.saturating_sub(self.cpu),
                own: now.own.saturating_sub(self.own),
                monitors: now.monitors.saturating_sub(self.monitors),
                inits: now.inits.saturating_sub(self.inits),
            },
        }
    }
}

/// The cgroup below the bench's own that the monitor zygote (and so every monitor and the
/// runtime processes they start) is moved to before section 4.
const MONITORS_CGROUP: &str = "monitors";

/// Moves the monitor zygote into [`MONITORS_CGROUP`]; whether it was found and moved.
fn split_off_monitors(meter: &CpuMeter) -> bool {
    use imagebus_sys::proc::{LinuxProcesses, Processes};
    let zygotes: Vec<u32> = LinuxProcesses
        .find(MONITOR_BINARY)
        .into_iter()
        .filter(|(_, argv)| {
            argv.last().map(String::as_str) == Some(imagebus_sys::monitor::ZYGOTE_ARG)
        })
        .map(|(pid, _)| pid)
        .collect();
    !zygotes.is_empty()
        && zygotes
            .iter()
            .all(|pid| meter.split_off(MONITORS_CGROUP, *pid))
}

async fn trial(
    stub: &ContainerModuleStub,
    ccfg: &ContainerConfig,
    dir: &Path,
    run: &Path,
    config: &serde_json::Value,
    (n, rounds, t): (usize, usize, usize),
    meter: Option<&CpuMeter>,
) -> Result<Trial, BoxError> {
    // Which phase goes first alternates between trials, so that whatever one phase leaves
    // the kernel to finish (cgroup and mount teardown) weighs on both sides alike.
    let (ours, raw) = if t % 2 == 0 {
        let ours = ours_phase(stub, ccfg, (n, rounds), meter).await?;
        let raw = raw_phase(ccfg, dir, run, config, (n, rounds, t), meter).await?;
        (ours, raw)
    } else {
        let raw = raw_phase(ccfg, dir, run, config, (n, rounds, t), meter).await?;
        let ours = ours_phase(stub, ccfg, (n, rounds), meter).await?;
        (ours, raw)
    };
    let total = n * rounds;
    let each = |d: Duration| d.as_secs_f64() * 1000.0 / total as f64;
    Ok(Trial {
        rate: (
            total as f64 / ours.took.as_secs_f64(),
            total as f64 / raw.took.as_secs_f64(),
        ),
        cpu: (each(ours.used.cpu), each(raw.used.cpu)),
        own: (each(ours.used.own), each(raw.used.own)),
        monitors: each(ours.used.monitors),
        inits: (each(ours.used.inits), each(raw.used.inits)),
    })
}

/// N callers each doing `rounds` creates over the bus; the containers are deleted after.
async fn ours_phase(
    stub: &ContainerModuleStub,
    ccfg: &ContainerConfig,
    (n, rounds): (usize, usize),
    meter: Option<&CpuMeter>,
) -> Result<Phase, BoxError> {
    let group = format!("/{}", ccfg.instance);
    let before = Counters::now(meter, &group);
    let (ids, took) = concurrent_creates(stub, n, rounds, bench_spec).await?;
    let phase = before.phase(took, meter, &group);
    let deletes: Vec<_> = ids
        .iter()
        .map(|id| {
            let (stub, id) = (stub.clone(), *id);
            tokio::spawn(async move { stub.delete(Selector::Id(id), true).await })
        })
        .collect();
    for d in deletes {
        d.await??;
    }
    Ok(phase)
}

/// N threads each doing `rounds` `runc run -d` of their own bundles; deleted after.
async fn raw_phase(
    ccfg: &ContainerConfig,
    dir: &Path,
    run: &Path,
    config: &serde_json::Value,
    (n, rounds, t): (usize, usize, usize),
    meter: Option<&CpuMeter>,
) -> Result<Phase, BoxError> {
    let group = format!("/{}", ccfg.instance);
    let raw_root = run.join("raw-runc");
    let mut work = Vec::new();
    let mut raw_ids = Vec::new();
    for caller in 0..n {
        let mut items = Vec::new();
        for r in 0..rounds {
            let id = format!("{}-n{n}-t{t}-{caller}-{r}", ccfg.instance);
            let mut config = config.clone();
            config["linux"]["cgroupsPath"] = serde_json::json!(format!("/{}/{id}", ccfg.instance));
            let bundle = dir.join("raw-bundles").join(&id);
            std::fs::create_dir_all(&bundle)?;
            std::fs::write(bundle.join("config.json"), serde_json::to_vec(&config)?)?;
            items.push((bundle, id.clone()));
            raw_ids.push(id);
        }
        work.push(items);
    }
    let (root, log) = (raw_root.clone(), dir.join("raw.log"));
    let before = Counters::now(meter, &group);
    let raw = tokio::task::spawn_blocking(move || concurrent_runc(&root, work, &log)).await?;
    let phase = raw.map(|took| before.phase(took, meter, &group));
    for id in &raw_ids {
        runc_delete(&raw_root, id);
        let _ = imagebus_sys::cgroup::Cgroups::remove(
            &imagebus_sys::cgroup::LinuxCgroups,
            &format!("/{}/{id}", ccfg.instance),
        );
    }
    phase
}

/// The median of `v` (sorted here).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn concurrency(
    stub: &ContainerModuleStub,
    ccfg: &ContainerConfig,
    dir: &Path,
    run: &Path,
    config: &serde_json::Value,
    conc: &Concurrency,
    meter: Option<&CpuMeter>,
) -> Result<(), BoxError> {
    println!(
        "\n{:>11} {:>7} {:>16} {:>22} {:>7} {:>17} {:>17} {:>9}",
        "concurrency",
        "creates",
        "ours creates/s",
        "runc run -d creates/s",
        "ratio",
        "ours CPU ms/each",
        "runc CPU ms/each",
        "CPU ratio"
    );
    // The monitors' share is told apart once the zygote runs in a cgroup of its own.
    let split = meter.is_some_and(split_off_monitors);
    for &n in &conc.callers {
        let total = n * conc.rounds;
        let mut trials = Vec::new();
        for t in 0..conc.trials {
            let r = trial(stub, ccfg, dir, run, config, (n, conc.rounds, t), meter).await?;
            println!(
                "{n:>11} {total:>7} {:>16.1} {:>22.1} {:>7.2} {:>17.1} {:>17.1} {:>9.2}",
                r.rate.0,
                r.rate.1,
                r.ratio(),
                r.cpu.0,
                r.cpu.1,
                r.cpu_ratio()
            );
            println!(
                "{:>11} CPU ms/each in this process (daemon, bus, callers): ours {:.1}, raw {:.1}",
                "", r.own.0, r.own.1
            );
            if split {
                println!(
                    "{:>11} CPU ms/each elsewhere: ours monitors + the runc they start {:.1}, \
                     containers' cgroups {:.1}, rest {:.1}; raw: containers' cgroups {:.1}, \
                     runc + rest {:.1}",
                    "",
                    r.monitors,
                    r.inits.0,
                    r.cpu.0 - r.own.0 - r.monitors - r.inits.0,
                    r.inits.1,
                    r.cpu.1 - r.own.1 - r.inits.1
                );
            }
            trials.push(r);
        }
        if trials.len() > 1 {
            println!(
                "{:>11} median of {} trials: ratio {:.2}, CPU ratio {:.2}",
                format!("{n}:"),
                trials.len(),
                median(trials.iter().map(Trial::ratio).collect()),
                median(trials.iter().map(Trial::cpu_ratio).collect())
            );
        }
    }
    Ok(())
}
