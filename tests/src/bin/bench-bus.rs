//! Bus benchmark: calls/s, latency and Redis CPU per call of a trivial method at 1, 16 and
//! 64 concurrent callers, for the client's two reply modes (one reply list per client, the
//! default, and one per call), next to a raw non-pipelined Redis RPUSH/BLPOP ping-pong
//! baseline on the same connection type, on a private redis-server (unix socket and
//! loopback TCP).
//!
//! Run: `cargo run --release -p imagebus-tests --bin bench-bus [-- --secs 5 --workers 16]`
//! (`--help` lists the flags and runs nothing);
//! `--callers N`, `--conn unix|tcp` and `--only ping-pong|floor|per-call|per-client` run a
//! part of the table only (to profile it). `--trials N` runs each column's rows N times in
//! turn and adds each row's medians; `× ping-pong` is a row's calls/s over the ping-pong's
//! of the same trial (its median, on a median line), since this VM's speed drifts by tens
//! of percent within minutes.

use futures::future::join_all;
use imagebus_bus::codec::{decode_arg, encode_arg, encode_reply};
use imagebus_bus::{Client, DispatchError, Object, ObjectId, Reply, Server};
use imagebus_tests::redis::RedisFixture;
use serde_bytes::ByteBuf;
use std::io::Write;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const MODULE: &str = "bench";

const USAGE: &str = "bench-bus [--secs N] [--workers N] [--trials N] [--callers 1|16|64] \
[--conn unix|tcp] [--only ping-pong|floor|per-call|per-client]

Calls/s, p50/p99, bench and redis-server CPU of a trivial bus method at 1, 16 and 64
callers, next to a raw RPUSH/BLPOP ping-pong and a batched floor, on a private
redis-server over a unix socket and over loopback TCP.";

struct Calc;

#[async_trait::async_trait]
impl Object for Calc {
    fn id(&self) -> ObjectId {
        ObjectId::new("calculator", "1.0")
    }
    fn methods(&self) -> &'static [&'static str] {
        &["Add"]
    }
    async fn dispatch(&self, method: &str, inputs: Vec<ByteBuf>) -> Result<Reply, DispatchError> {
        match method {
            "Add" => {
                let a: f64 = decode_arg(&inputs, 0)?;
                let b: f64 = decode_arg(&inputs, 1)?;
                Ok(encode_reply(Ok(a + b)))
            }
            other => Err(DispatchError::UnknownMethod(other.into())),
        }
    }
}

/// Latencies of one run, in microseconds.
struct Run {
    what: String,
    transport: &'static str,
    callers: usize,
    elapsed: Duration,
    micros: Vec<u32>,
    errors: usize,
    /// CPU seconds used meanwhile by this process (client and server) and by redis-server.
    cpu: (f64, f64),
}

/// What one row reports.
#[derive(Clone, Copy)]
struct Stats {
    rate: f64,
    p50: f64,
    p99: f64,
    errors: usize,
    /// Percent of one CPU used by this process and by redis-server.
    bench_pct: f64,
    redis_pct: f64,
    /// redis-server CPU per call, in µs.
    redis_us: f64,
}

impl Run {
    fn stats(&mut self) -> Stats {
        self.micros.sort_unstable();
        let pct = |p: f64| {
            let n = self.micros.len();
            if n == 0 {
                return f64::NAN;
            }
            let i = ((n as f64 * p).ceil() as usize).clamp(1, n) - 1;
            f64::from(self.micros[i]) / 1000.0
        };
        let secs = self.elapsed.as_secs_f64();
        Stats {
            rate: self.micros.len() as f64 / secs,
            p50: pct(0.50),
            p99: pct(0.99),
            errors: self.errors,
            bench_pct: 100.0 * self.cpu.0 / secs,
            redis_pct: 100.0 * self.cpu.1 / secs,
            redis_us: if self.micros.is_empty() {
                f64::NAN
            } else {
                1e6 * self.cpu.1 / self.micros.len() as f64
            },
        }
    }
}

/// One line of the table; `ratio` is calls/s ÷ the ping-pong's of the same trial.
fn line(run: &Run, trial: &str, s: &Stats, ratio: f64) -> String {
    format!(
        "| {:<6} | {:<28} | {:>7} | {:>6} | {:>9.0} | {:>8.3} | {:>8.3} | {:>6} | {:>9.0}% | {:>9.0}% | {:>13.1} | {:>11.2} |",
        run.transport,
        run.what,
        run.callers,
        trial,
        s.rate,
        s.p50,
        s.p99,
        s.errors,
        s.bench_pct,
        s.redis_pct,
        s.redis_us,
        ratio,
    )
}

/// The median of `v` (NaN when empty).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Each field's median over the trials of one row.
fn medians(all: &[Stats]) -> Stats {
    let m = |f: fn(&Stats) -> f64| median(all.iter().map(f).collect());
    Stats {
        rate: m(|s| s.rate),
        p50: m(|s| s.p50),
        p99: m(|s| s.p99),
        errors: all.iter().map(|s| s.errors).sum(),
        bench_pct: m(|s| s.bench_pct),
        redis_pct: m(|s| s.redis_pct),
        redis_us: m(|s| s.redis_us),
    }
}

/// Runs `callers` loops of `op` for `secs`, after a short warm-up; CPU is counted over the
/// measured part only.
async fn measure<F, Fut>(
    what: &str,
    transport: &'static str,
    callers: usize,
    secs: Duration,
    op: F,
) -> Run
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let warm_until = Instant::now() + Duration::from_millis(300);
    let tasks = (0..callers).map(|i| {
        let op = op.clone();
        tokio::spawn(async move {
            while Instant::now() < warm_until {
                op(i).await;
            }
            let end = Instant::now() + secs;
            let mut micros = Vec::with_capacity(100_000);
            let mut errors = 0;
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                if op(i).await {
                    micros.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                } else {
                    errors += 1;
                }
            }
            (micros, errors)
        })
    });
    let tasks: Vec<_> = tasks.collect();
    tokio::time::sleep_until(warm_until.into()).await;
    let started = Instant::now();
    let c0 = cpu_now();
    let results = join_all(tasks).await;
    let elapsed = started.elapsed();
    let c1 = cpu_now();
    let mut micros = Vec::new();
    let mut errors = 0;
    for (m, e) in results.into_iter().flatten() {
        micros.extend(m);
        errors += e;
    }
    Run {
        what: what.into(),
        transport,
        callers,
        elapsed,
        micros,
        errors,
        cpu: (c1.0 - c0.0, c1.1 - c0.1),
    }
}

/// utime + stime of a process, in seconds (from `/proc/<pid>/stat`, 100 ticks/s).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ")" that closes the command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// The pid of the private redis-server, for [`cpu_now`].
static REDIS_PID: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// CPU seconds of (this process, redis-server) at this moment.
fn cpu_now() -> (f64, f64) {
    let redis = REDIS_PID.get().map_or(0.0, |pid| cpu_seconds(pid));
    (cpu_seconds("self"), redis)
}

async fn connect(url: &str) -> Result<redis::aio::MultiplexedConnection, BoxError> {
    let info = imagebus_bus::broker::Broker::parse(url)?
        .connection_info()
        .clone();
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    Ok(redis::Client::open(info)?
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

/// Raw baseline: `workers` echo loops (BLPOP request, RPUSH reply) and callers that
/// pipeline RPUSH + BLPOP, each on its own connection: the bus's command pattern with no
/// encoding, dispatch or EXPIRE.
async fn baseline(
    url: &str,
    transport: &'static str,
    callers: usize,
    workers: usize,
    secs: Duration,
) -> Result<Run, BoxError> {
    let stop = CancellationToken::new();
    let mut echoes = Vec::new();
    for _ in 0..workers {
        let mut conn = connect(url).await?;
        let stop = stop.clone();
        echoes.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let popped: Option<(String, Vec<u8>)> = match redis::cmd("BLPOP")
                    .arg("raw.echo")
                    .arg(1)
                    .query_async(&mut conn)
                    .await
                {
                    Ok(v) => v,
                    Err(_) => return,
                };
                if let Some((_, reply_to)) = popped {
                    let _: Result<(), _> = redis::cmd("RPUSH")
                        .arg(reply_to)
                        .arg("x")
                        .query_async(&mut conn)
                        .await;
                }
            }
        }));
    }
    let mut conns = Vec::new();
    for _ in 0..callers {
        conns.push(connect(url).await?);
    }
    let run = measure(
        "redis RPUSH/BLPOP ping-pong",
        transport,
        callers,
        secs,
        move |i| {
            let mut conn = conns[i].clone();
            async move {
                let key = format!("raw.reply.{i}");
                let mut pipe = redis::pipe();
                pipe.cmd("RPUSH").arg("raw.echo").arg(&key).ignore();
                pipe.cmd("BLPOP").arg(&key).arg(5);
                matches!(
                    pipe.query_async::<(Option<(String, String)>,)>(&mut conn)
                        .await,
                    Ok((Some(_),))
                )
            }
        },
    )
    .await;
    stop.cancel();
    join_all(echoes).await;
    Ok(run)
}

/// The floor of the batched design, with redis-rs and nothing else: callers hand a
/// request id to one pusher task, which sends all that are waiting in one `RPUSH`; one
/// server loop pops up to 256 with `BLMPOP … COUNT` and pushes them back in one `RPUSH` onto
/// one reply list; one reader pops that list the same way and wakes each caller by id.
/// No encoding, dispatch, worker tasks, deadlines, `EXPIRE` or failure handling: what the
/// bus's default mode could reach at best on this machine, next to the ping-pong.
async fn floor(
    url: &str,
    transport: &'static str,
    callers: usize,
    secs: Duration,
) -> Result<Run, BoxError> {
    type Waiters =
        std::sync::Mutex<std::collections::HashMap<u64, tokio::sync::oneshot::Sender<()>>>;
    let stop = CancellationToken::new();
    let mut loops = Vec::new();
    let mut conn = connect(url).await?;
    let server_stop = stop.clone();
    loops.push(tokio::spawn(async move {
        while !server_stop.is_cancelled() {
            let Some(ids) = pop_all(&mut conn, "raw.floor").await else {
                return;
            };
            if !ids.is_empty() {
                push_all(&mut conn, "raw.floor.replies", ids).await;
            }
        }
    }));
    let waiters = std::sync::Arc::new(Waiters::default());
    let mut conn = connect(url).await?;
    let (reader_stop, reader_waiters) = (stop.clone(), waiters.clone());
    loops.push(tokio::spawn(async move {
        while !reader_stop.is_cancelled() {
            let Some(ids) = pop_all(&mut conn, "raw.floor.replies").await else {
                return;
            };
            for id in ids {
                let id = std::str::from_utf8(&id).ok().and_then(|s| s.parse().ok());
                let waiter = id.and_then(|id| {
                    reader_waiters
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(&id)
                });
                if let Some(w) = waiter {
                    let _ = w.send(());
                }
            }
        }
    }));
    let (push, mut queued) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let mut conn = connect(url).await?;
    loops.push(tokio::spawn(async move {
        while let Some(first) = queued.recv().await {
            let mut ids = vec![first];
            while let Ok(id) = queued.try_recv() {
                ids.push(id);
            }
            push_all(&mut conn, "raw.floor", ids).await;
        }
    }));
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let caller_waiters = waiters.clone();
    let run = measure("redis batched floor", transport, callers, secs, move |_| {
        let (push, waiters, next) = (push.clone(), caller_waiters.clone(), next.clone());
        async move {
            let id = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (tx, rx) = tokio::sync::oneshot::channel();
            waiters
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(id, tx);
            push.send(id).is_ok()
                && tokio::time::timeout(Duration::from_secs(5), rx)
                    .await
                    .is_ok_and(|r| r.is_ok())
        }
    })
    .await;
    // The pusher ends with the callers' senders, the other two loops within a pop.
    stop.cancel();
    join_all(loops).await;
    Ok(run)
}

/// `BLMPOP 1 1 <list> LEFT COUNT 256`: what was waiting (nothing after 1 s), or `None`
/// once the connection failed.
async fn pop_all(conn: &mut redis::aio::MultiplexedConnection, list: &str) -> Option<Vec<Vec<u8>>> {
    let popped: Option<(String, Vec<Vec<u8>>)> = redis::cmd("BLMPOP")
        .arg(1)
        .arg(1)
        .arg(list)
        .arg("LEFT")
        .arg("COUNT")
        .arg(256)
        .query_async(conn)
        .await
        .ok()?;
    Some(popped.map(|(_, items)| items).unwrap_or_default())
}

/// One `RPUSH <list> <item>…`; an error only costs the calls their answers.
async fn push_all<T: redis::ToRedisArgs>(
    conn: &mut redis::aio::MultiplexedConnection,
    list: &str,
    items: T,
) {
    let _: Result<(), _> = redis::cmd("RPUSH")
        .arg(list)
        .arg(items)
        .query_async(conn)
        .await;
}

/// The client's reply mode.
#[derive(Clone, Copy)]
enum Mode {
    /// One reply list per client (the default).
    Shared,
    /// One reply list per call (`per_call_replies`).
    PerCall,
}

async fn bus(
    url: &str,
    transport: &'static str,
    callers: usize,
    workers: usize,
    secs: Duration,
    mode: Mode,
) -> Result<Run, BoxError> {
    let mut server = Server::builder(url, MODULE)
        .workers(workers)
        .build()
        .await?;
    server.register(Calc)?;
    let stop = CancellationToken::new();
    let serving = tokio::spawn(server.run(stop.clone()));
    let client = Client::builder(url)
        .per_call_replies(matches!(mode, Mode::PerCall))
        .build()
        .await?;
    // Shared, so that a call costs the harness no copy of the id (the arguments are
    // copied, as a caller encodes its own each time).
    let id = std::sync::Arc::new(ObjectId::new("calculator", "1.0"));
    let args = vec![encode_arg(&1.0f64)?, encode_arg(&2.0f64)?];
    let what = match mode {
        Mode::Shared => "imagebus, list per client",
        Mode::PerCall => "imagebus, list per call",
    };
    let run =
        measure(what, transport, callers, secs, move |_| {
            let (client, id, args) = (client.clone(), id.clone(), args.clone());
            async move {
                matches!(client.call::<f64>(MODULE, &id, "Add", args).await, Ok(v) if v == 3.0)
            }
        })
        .await;
    stop.cancel();
    serving.await??;
    Ok(run)
}

fn flag(args: &[String], name: &str, default: u64) -> u64 {
    args.windows(2)
        .find(|w| w[0] == name)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let secs = Duration::from_secs(flag(&args, "--secs", 5));
    let workers = usize::try_from(flag(&args, "--workers", 16))?;
    let redis = RedisFixture::try_start(true)?;
    let tcp = redis.tcp_url().ok_or("no tcp url")?;
    let redis_pid = redis
        .pid()
        .ok_or("redis-server is not running")?
        .to_string();
    REDIS_PID.get_or_init(|| redis_pid);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "bench-bus: {secs:?} per row, server workers {workers}, {} CPUs, redis-server private (unix {}, tcp {tcp})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        redis.socket().display()
    )?;
    writeln!(out, "| conn   | what                         | callers |  trial |   calls/s | p50 (ms) | p99 (ms) | errors | bench CPU | redis CPU | redis µs/call | × ping-pong |")?;
    writeln!(out, "|--------|------------------------------|---------|--------|-----------|----------|----------|--------|-----------|-----------|---------------|-------------|")?;
    let only_callers = flag(&args, "--callers", 0);
    let only_conn = args
        .windows(2)
        .find(|w| w[0] == "--conn")
        .map(|w| w[1].clone());
    let only = args
        .windows(2)
        .find(|w| w[0] == "--only")
        .map(|w| w[1].clone());
    let trials = flag(&args, "--trials", 1).max(1);
    let row = |name: &str| only.as_deref().is_none_or(|o| o == name);
    for (transport, url) in [("unix", redis.url()), ("tcp", tcp.clone())] {
        if only_conn.as_deref().is_some_and(|c| c != transport) {
            continue;
        }
        for callers in [1, 16, 64] {
            if only_callers != 0 && only_callers != callers as u64 {
                continue;
            }
            // Per row, in table order: the run of the first trial (for its labels), and
            // each trial's stats and ratio to that trial's ping-pong.
            let mut rows: Vec<(Run, Vec<(Stats, f64)>)> = Vec::new();
            for trial in 1..=trials {
                let mut runs = Vec::new();
                if row("ping-pong") {
                    runs.push(baseline(&url, transport, callers, workers, secs).await?);
                }
                if row("floor") {
                    runs.push(floor(&url, transport, callers, secs).await?);
                }
                for (mode, name) in [(Mode::PerCall, "per-call"), (Mode::Shared, "per-client")] {
                    if row(name) {
                        runs.push(bus(&url, transport, callers, workers, secs, mode).await?);
                    }
                }
                let stats: Vec<Stats> = runs.iter_mut().map(Run::stats).collect();
                let ping_pong = row("ping-pong").then(|| stats[0].rate);
                for (i, (run, s)) in runs.into_iter().zip(stats).enumerate() {
                    let ratio = ping_pong.map_or(f64::NAN, |p| s.rate / p);
                    writeln!(out, "{}", line(&run, &trial.to_string(), &s, ratio))?;
                    match rows.get_mut(i) {
                        Some((_, all)) => all.push((s, ratio)),
                        None => rows.push((run, vec![(s, ratio)])),
                    }
                }
                out.flush()?;
            }
            if trials > 1 {
                for (run, all) in &rows {
                    let stats: Vec<Stats> = all.iter().map(|(s, _)| *s).collect();
                    let ratio = median(all.iter().map(|(_, r)| *r).collect());
                    writeln!(out, "{}", line(run, "median", &medians(&stats), ratio))?;
                }
                out.flush()?;
            }
        }
    }
    Ok(())
}
