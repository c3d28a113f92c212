//! Mount benchmark (issue 3): attach (loop) + image mount + overlay, nested in ONE
//! `mount.mount@1` Mount call over the bus (private redis-server), against the same three
//! steps done by `losetup` + `mount` + `mount -t overlay`, in the same run, interleaved
//! iteration by iteration. Teardown is not timed.
//!
//! Rows:
//! - `bus`: client → Redis → mount actor → attach actor in-process (the `imagebusd` layout);
//! - `bus, split`: as `bus`, but the mount actor reaches attach over Redis too;
//! - `in-process`: the mount handle called directly (no bus);
//! - `raw commands`: `losetup --find --show --read-only`, `mount -t squashfs -o ro`,
//!   `mount -t overlay` (plus the mkdirs the commands need).
//!
//! Ours includes what the commands do not: state files written atomically with fsync —
//! attach's on the disk (twice per attachment), mount's records on the runtime tmpfs (once
//! per call) and mount's id floor on the disk (once per 256 ids).
//!
//! Run as root: `cargo run --release -p imagebus-tests --bin bench-mount [-- --iters 50 --lowers 1]`

use imagebus_bus::{Client, Server};
use imagebus_mount::MountSys;
use imagebus_schema::attach::{AttachModule, AttachModuleServer, AttachModuleStub, AttachSpec};
use imagebus_schema::mount::{MountModule, MountModuleServer, MountModuleStub, MountSpec};
use imagebus_schema::Selector;
use imagebus_tests::mount_stack::{configs_in, image_on_loop, inline, loop_spec, overlay, Stack};
use imagebus_tests::redis::RedisFixture;
use imagebus_tests::rootfs::{busybox_squashfs, KernelScratch};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn flag(args: &[String], name: &str, default: u64) -> u64 {
    args.windows(2)
        .find(|w| w[0] == name)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(default)
}

fn run(cmd: &str, args: &[&str]) -> Result<String, BoxError> {
    let out = Command::new(cmd).args(args).output()?;
    if !out.status.success() {
        return Err(format!("{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

/// The three (or 2n+1) raw steps; returns the elapsed time, tears down untimed.
fn raw_once(images: &[PathBuf], dir: &Path, i: usize) -> Result<Duration, BoxError> {
    let base = dir.join(format!("raw-{i}"));
    let start = Instant::now();
    let mut devs = Vec::new();
    let mut lowers = Vec::new();
    for (n, image) in images.iter().enumerate() {
        let dev = run("losetup", &["--find", "--show", "--read-only", p(image)])?;
        let mp = base.join(format!("lower{n}"));
        std::fs::create_dir_all(&mp)?;
        run("mount", &["-t", "squashfs", "-o", "ro", &dev, p(&mp)])?;
        devs.push(dev);
        lowers.push(mp);
    }
    let (upper, work, top) = (base.join("upper"), base.join("work"), base.join("top"));
    for d in [&upper, &work, &top] {
        std::fs::create_dir_all(d)?;
    }
    let lowerdir: Vec<&str> = lowers.iter().map(|l| p(l)).collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowerdir.join(":"),
        p(&upper),
        p(&work)
    );
    run("mount", &["-t", "overlay", "overlay", "-o", &opts, p(&top)])?;
    let elapsed = start.elapsed();
    run("umount", &[p(&top)])?;
    for (mp, dev) in lowers.iter().zip(&devs) {
        run("umount", &[p(mp)])?;
        run("losetup", &["-d", dev])?;
    }
    std::fs::remove_dir_all(&base)?;
    Ok(elapsed)
}

async fn ours_once(m: &dyn MountModule, spec: &MountSpec) -> Result<Duration, BoxError> {
    let start = Instant::now();
    let info = m.mount(spec.clone(), None).await?;
    let elapsed = start.elapsed();
    m.unmount(Selector::Id(info.id), false).await?;
    Ok(elapsed)
}

async fn attach_once(stack: &Stack, spec: &AttachSpec) -> Result<Duration, BoxError> {
    let start = Instant::now();
    let info = stack.attach.attach(spec.clone(), None).await?;
    let elapsed = start.elapsed();
    stack.attach.detach(Selector::Id(info.id), false).await?;
    Ok(elapsed)
}

struct Row {
    what: &'static str,
    micros: Vec<u64>,
}

impl Row {
    fn pct(&self, q: f64) -> f64 {
        let mut v = self.micros.clone();
        v.sort_unstable();
        let n = v.len();
        let i = ((n as f64 * q).ceil() as usize).clamp(1, n.max(1)) - 1;
        v.get(i).map_or(f64::NAN, |x| *x as f64 / 1000.0)
    }
}

/// A mount actor in its own directories whose attach module is reached over Redis.
async fn split_stack(
    state_root: &Path,
    run_root: &Path,
    url: &str,
    stop: &CancellationToken,
) -> Result<(Arc<dyn MountModule>, tokio::task::JoinHandle<()>), BoxError> {
    let (acfg, mcfg) = configs_in(state_root, run_root);
    let attach = imagebus_attach::spawn(
        acfg,
        imagebus_attach::AttachSys::linux(),
        CancellationToken::new(),
        imagebus_attach::Limits::default(),
    )
    .await?
    .handle;
    let mut server = Server::builder(url, "attach").workers(2).build().await?;
    server.register(AttachModuleServer::new(Arc::new(attach)))?;
    tokio::spawn(server.run(stop.clone()));
    let stub: Arc<dyn AttachModule> = Arc::new(AttachModuleStub::new(Client::connect(url).await?));
    let spawned = imagebus_mount::spawn(
        mcfg,
        MountSys::linux(),
        stub,
        stop.clone(),
        imagebus_mount::Limits::default(),
    )
    .await?;
    Ok((Arc::new(spawned.handle), spawned.task))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let iters = usize::try_from(flag(&args, "--iters", 50))?;
    let lowers = usize::try_from(flag(&args, "--lowers", 1))?.max(1);
    let scratch = KernelScratch::new("ib-bench-mount-");
    let dir = scratch.path().to_path_buf();
    let images: Vec<PathBuf> = (0..lowers)
        .map(|n| busybox_squashfs(&dir, &format!("layer{n}"), &[("etc/layer", "x\n")], &[]))
        .collect();
    let spec = overlay(images.iter().map(|i| inline(image_on_loop(i))).collect());

    let redis = RedisFixture::try_start(false)?;
    let url = redis.url();
    let stop = CancellationToken::new();
    // Durable state on the disk (/tmp), runtime state on a tmpfs, as /var/lib and /run.
    let shm = KernelScratch::new_in(Path::new("/dev/shm"), "ib-bench-mount-");
    let stack = Stack::start_configs(
        configs_in(&dir.join("combined"), &shm.path().join("combined")),
        |a| Arc::new(a),
    )
    .await?;
    let mut server = Server::builder(url.as_str(), "mount")
        .workers(2)
        .build()
        .await?;
    server.register(MountModuleServer::new(Arc::new(stack.mount.clone())))?;
    let serving = tokio::spawn(server.run(stop.clone()));
    let bus: Arc<dyn MountModule> =
        Arc::new(MountModuleStub::new(Client::connect(url.as_str()).await?));
    let (split, split_task) =
        split_stack(&dir.join("split"), &shm.path().join("split"), &url, &stop).await?;
    let local: Arc<dyn MountModule> = Arc::new(stack.mount.clone());
    // The same in-process stack with all its state on a tmpfs: shows what the fsyncs of
    // the durable state files (attach's, mostly) cost on this disk.
    let tmpfs_stack = Stack::start(&shm.path().join("all")).await?;
    let tmpfs: Arc<dyn MountModule> = Arc::new(tmpfs_stack.mount.clone());
    let attach_spec = loop_spec(&images[0]);

    let mut rows = vec![
        Row {
            what: "bus (attach in-process)",
            micros: vec![],
        },
        Row {
            what: "bus, split (attach over bus)",
            micros: vec![],
        },
        Row {
            what: "in-process handle",
            micros: vec![],
        },
        Row {
            what: "in-process, all state on tmpfs",
            micros: vec![],
        },
        Row {
            what: "attach only (in-process)",
            micros: vec![],
        },
        Row {
            what: "raw losetup+mount+mount",
            micros: vec![],
        },
    ];
    let warmup = 3;
    for i in 0..warmup + iters {
        let times = [
            ours_once(bus.as_ref(), &spec).await?,
            ours_once(split.as_ref(), &spec).await?,
            ours_once(local.as_ref(), &spec).await?,
            ours_once(tmpfs.as_ref(), &spec).await?,
            attach_once(&stack, &attach_spec).await?,
            raw_once(&images, &dir, i)?,
        ];
        if i >= warmup {
            for (row, t) in rows.iter_mut().zip(times) {
                row.micros.push(u64::try_from(t.as_micros())?);
            }
        }
    }
    stop.cancel();
    let _ = serving.await;
    let _ = split_task.await;
    stack.stop().await;
    tmpfs_stack.stop().await;

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "bench-mount: overlay of {lowers} image mount(s) on loop device(s), nested in one call; \
         {iters} iterations (+{warmup} warm-up), interleaved; {} CPUs; durable state under {} \
         (disk), runtime state under {} (tmpfs)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        dir.display(),
        shm.path().display()
    )?;
    writeln!(
        out,
        "| {:<30} | {:>10} | {:>10} | {:>10} |",
        "path", "median ms", "p90 ms", "max ms"
    )?;
    writeln!(out, "|{:-<32}|{:->12}|{:->12}|{:->12}|", "", "", "", "")?;
    for row in &rows {
        writeln!(
            out,
            "| {:<30} | {:>10.3} | {:>10.3} | {:>10.3} |",
            row.what,
            row.pct(0.5),
            row.pct(0.9),
            row.pct(1.0)
        )?;
    }
    let raw_row = &rows[rows.len() - 1];
    let raw = raw_row.pct(0.5);
    for row in &rows[..4] {
        let over = row.pct(0.5) - raw;
        // Same-iteration differences: robust to the machine getting busier over the run.
        let mut diffs: Vec<i64> = row
            .micros
            .iter()
            .zip(&raw_row.micros)
            .map(|(o, r)| i64::try_from(*o).unwrap_or(i64::MAX) - i64::try_from(*r).unwrap_or(0))
            .collect();
        diffs.sort_unstable();
        let paired_median = diffs
            .get(diffs.len() / 2)
            .map_or(f64::NAN, |d| *d as f64 / 1000.0);
        writeln!(
            out,
            "overhead vs raw, {}: {over:+.3} ms between medians, {paired_median:+.3} ms median of \
             paired differences (target <= 2 ms: {})",
            row.what,
            if over <= 2.0 { "met" } else { "MISSED" }
        )?;
    }
    drop(redis);
    Ok(())
}
