//! ImageAPI gateway benchmark (issue 9), as root, with a private redis-server and a real
//! `imagebusd --imageapi`: the attach → mount → overlay → container chain created and
//! deleted over REST (HTTP/1.1 keep-alive on 127.0.0.1, from this process) next to the
//! same eight calls over the bus (the generated stubs, from this process, to the same
//! daemon), interleaved iteration by iteration in one run. Prints per-call medians and
//! the REST overhead per call (target: at most 1 ms at the median).
//!
//! Run: `cargo build --release --workspace --bins &&
//! cargo run --release -p imagebus-tests --bin bench-imageapi [-- --iters 20]`

use imagebus_bus::Client;
use imagebus_schema::attach::{
    AttachModule, AttachModuleStub, AttachRef, AttachSource, AttachSpec, LoopSource,
};
use imagebus_schema::container::{
    CommandLine, ContainerModule, ContainerModuleStub, ContainerSpec,
};
use imagebus_schema::mount::{
    ImageMount, MountModule, MountModuleStub, MountRef, MountSource, MountSpec, OverlayMount,
};
use imagebus_schema::Selector;
use imagebus_tests::daemon::Daemon;
use imagebus_tests::imageapi::free_port;
use imagebus_tests::redis::RedisFixture;
use imagebus_tests::rootfs::KernelScratch;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

const STEPS: [&str; 8] = [
    "create attachment (loopback)",
    "create mount (squashfs)",
    "create overlay",
    "create container",
    "delete container",
    "delete overlay",
    "delete mount",
    "delete attachment",
];

/// A minimal HTTP/1.1 keep-alive client (so that the figures are the gateway's, not a
/// client library's or a process spawn's).
struct Http {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Http {
    fn connect(addr: &str) -> Self {
        let s = TcpStream::connect(addr).expect("connecting to the gateway");
        s.set_nodelay(true).expect("nodelay");
        Self {
            reader: BufReader::new(s.try_clone().expect("clone")),
            writer: s,
        }
    }

    fn call(&mut self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(Value::to_string).unwrap_or_default();
        write!(
            self.writer,
            "{method} /imageapi/v1{path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("writing the request");
        let mut status = String::new();
        self.reader.read_line(&mut status).expect("status line");
        let code: u16 = status
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("header");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut buf = vec![0; len];
        self.reader.read_exact(&mut buf).expect("body");
        (code, serde_json::from_slice(&buf).unwrap_or(Value::Null))
    }

    fn ok(&mut self, method: &str, path: &str, body: Option<&Value>, want: u16) -> Value {
        let (code, v) = self.call(method, path, body);
        assert_eq!(code, want, "{method} {path}: {v}");
        v
    }
}

fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

fn rest_chain(http: &mut Http, image: &Path, t: &mut [Vec<Duration>; 8]) {
    let mut step = 0;
    let mut timed = |http: &mut Http, m: &str, p: &str, b: Option<&Value>, want: u16| {
        let start = Instant::now();
        let v = http.ok(m, p, b, want);
        t[step].push(start.elapsed());
        step += 1;
        v
    };
    let a = timed(
        http,
        "POST",
        "/attach",
        Some(&json!({"kind": "loopback",
        "loopback": {"path": image.display().to_string(), "base": "root"}})),
        201,
    );
    let m = timed(
        http,
        "POST",
        "/mount",
        Some(&json!({"kind": "attach", "attach": {
        "fs_type": "squashfs", "attach": {"id": a["id"]}, "mount_options": ["ro"]}})),
        201,
    );
    let o = timed(
        http,
        "POST",
        "/mount",
        Some(&json!({"kind": "overlay",
        "overlay": {"lower": [{"id": m["id"]}]}})),
        201,
    );
    let c = timed(
        http,
        "POST",
        "/container",
        Some(&json!({"mount": {"id": o["id"]},
        "command": "/bin/sh -c 'sleep 1000'"})),
        201,
    );
    timed(
        http,
        "DELETE",
        &format!("/container?id={}", c["id"]),
        None,
        200,
    );
    timed(http, "DELETE", &format!("/mount?id={}", o["id"]), None, 200);
    timed(http, "DELETE", &format!("/mount?id={}", m["id"]), None, 200);
    timed(
        http,
        "DELETE",
        &format!("/attach?id={}", a["id"]),
        None,
        200,
    );
}

async fn bus_chain(
    a: &AttachModuleStub,
    m: &MountModuleStub,
    c: &ContainerModuleStub,
    image: &Path,
    t: &mut [Vec<Duration>; 8],
) {
    let s = Instant::now();
    let att = a
        .attach(
            AttachSpec {
                name: None,
                source: AttachSource::Loop(LoopSource {
                    path: image.to_path_buf(),
                    read_only: false,
                }),
            },
            None,
        )
        .await
        .expect("attach");
    t[0].push(s.elapsed());
    let s = Instant::now();
    let img = m
        .mount(
            MountSpec {
                name: None,
                source: MountSource::Image(ImageMount {
                    attach: AttachRef::Existing(Selector::Id(att.id)),
                    fs_type: Some("squashfs".into()),
                    options: vec![],
                    read_only: true,
                }),
            },
            None,
        )
        .await
        .expect("mount");
    t[1].push(s.elapsed());
    let s = Instant::now();
    let ov = m
        .mount(
            MountSpec {
                name: None,
                source: MountSource::Overlay(OverlayMount {
                    lowers: vec![MountRef::Existing(Selector::Id(img.id))],
                    persist_dir: None,
                }),
            },
            None,
        )
        .await
        .expect("overlay");
    t[2].push(s.elapsed());
    let s = Instant::now();
    let ct = c
        .create(ContainerSpec::new(
            MountRef::Existing(Selector::Id(ov.id)),
            CommandLine::Line("/bin/sh -c 'sleep 1000'".into()),
        ))
        .await
        .expect("container");
    t[3].push(s.elapsed());
    let s = Instant::now();
    c.delete(Selector::Id(ct.id), true)
        .await
        .expect("delete container");
    t[4].push(s.elapsed());
    let s = Instant::now();
    m.unmount(Selector::Id(ov.id), false)
        .await
        .expect("unmount overlay");
    t[5].push(s.elapsed());
    let s = Instant::now();
    m.unmount(Selector::Id(img.id), false)
        .await
        .expect("unmount");
    t[6].push(s.elapsed());
    let s = Instant::now();
    a.detach(Selector::Id(att.id), false).await.expect("detach");
    t[7].push(s.elapsed());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let iters: usize = args
        .windows(2)
        .find(|w| w[0] == "--iters")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(20);
    if std::env::var_os("IMAGEBUS_BIN_DIR").is_none() {
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            std::env::set_var("IMAGEBUS_BIN_DIR", dir);
        }
    }
    imagebus_tests::bus_node::require_container_tools();
    let scratch = KernelScratch::new("ibench-ia");
    let redis = RedisFixture::start();
    let addr = format!("127.0.0.1:{}", free_port());
    let daemon = Daemon::spawn_in(
        scratch.path(),
        Some(&redis.url()),
        &["--imageapi", &addr, "--workers", "8"],
    );
    daemon.wait_ready();
    std::env::set_var("IMAGEBUS_LOG", "warn");
    let image = scratch.path().join("bb.sqsh");
    std::fs::copy(imagebus_tests::image::busybox_squashfs(), &image).expect("image");
    let ok = imagebus_tests::daemon::wait_until(Duration::from_secs(20), || {
        TcpStream::connect(&addr).is_ok()
    });
    assert!(ok, "the gateway did not listen");
    let mut http = Http::connect(&addr);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (a, m, c) = rt.block_on(async {
        let client = Client::connect(redis.url()).await.expect("bus client");
        (
            AttachModuleStub::new(client.clone()).with_timeout(Duration::from_secs(60)),
            MountModuleStub::new(client.clone()).with_timeout(Duration::from_secs(60)),
            ContainerModuleStub::new(client).with_timeout(Duration::from_secs(60)),
        )
    });
    // Warm-up, untimed.
    let mut scratch_t: [Vec<Duration>; 8] = Default::default();
    rest_chain(&mut http, &image, &mut scratch_t);
    rt.block_on(bus_chain(&a, &m, &c, &image, &mut scratch_t));

    let mut rest: [Vec<Duration>; 8] = Default::default();
    let mut bus: [Vec<Duration>; 8] = Default::default();
    let (mut rest_total, mut bus_total) = (Vec::new(), Vec::new());
    for _ in 0..iters {
        let s = Instant::now();
        rest_chain(&mut http, &image, &mut rest);
        rest_total.push(s.elapsed());
        let s = Instant::now();
        rt.block_on(bus_chain(&a, &m, &c, &image, &mut bus));
        bus_total.push(s.elapsed());
    }
    println!("bench-imageapi: {iters} chains each way, interleaved; medians in ms");
    println!(
        "{:<32} {:>9} {:>9} {:>9}",
        "call", "REST", "bus", "REST-bus"
    );
    let mut worst: f64 = f64::MIN;
    for (i, name) in STEPS.iter().enumerate() {
        let (r, b) = (median_ms(rest[i].clone()), median_ms(bus[i].clone()));
        worst = worst.max(r - b);
        println!("{name:<32} {r:>9.2} {b:>9.2} {:>+9.2}", r - b);
    }
    let (r, b) = (median_ms(rest_total), median_ms(bus_total));
    println!(
        "{:<32} {r:>9.2} {b:>9.2} {:>+9.2}",
        "whole chain (8 calls)",
        r - b
    );
    println!("largest per-call median difference: {worst:+.2} ms (target <= 1 ms)");
    drop(http);
    drop(daemon);
}
