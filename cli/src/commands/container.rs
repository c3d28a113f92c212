//! `imagebus run|ps|inspect|start|stop|rm`.

use crate::args::{Global, PsArgs, RmArgs, RunArgs, StartArgs, StopArgs, TargetArgs};
use crate::commands::mount::image_file;
use crate::output::{parse_spec, print_table, print_value};
use anyhow::Result;
use imagebus_bus::RemoteError;
use imagebus_schema::container::{
    BindSpec, CapabilityChanges, CommandLine, ContainerFilter, ContainerInfo, ContainerModule,
    ContainerModuleStub, ContainerSpec, ContainerState, HealthSpec, InitialState, LogSpec, Network,
    Resources, UserSpec,
};
use imagebus_schema::image::{ImageModule, ImageModuleStub};
use imagebus_schema::mount::{MountRef, MountSource, MountSpec, OverlayMount, StoredMount};
use imagebus_schema::Selector;
use std::io::Write;
use std::time::Duration;

/// A container stub whose deadline also covers `extra` (stop timeouts, log waits).
pub async fn stub(g: &Global, extra: Duration) -> Result<ContainerModuleStub> {
    Ok(ContainerModuleStub::new(super::connect(g).await?)
        .with_timeout(g.timeout.saturating_add(extra)))
}

/// `imagebus run`: create (running unless --created) and print the container.
pub async fn run(g: &Global, a: &RunArgs) -> Result<()> {
    let mut spec = spec(a)?;
    if a.interactive && !a.tty {
        return Err(RemoteError::invalid_argument(
            "run -i needs -t: without a terminal the init's stdin is not attached",
        )
        .into());
    }
    if a.tty {
        spec.tty = true;
        spec.env = super::session::with_term(std::mem::take(&mut spec.env));
    }
    let client = super::connect(g).await?;
    if let Some(name) = super::container_image::stored_image(a) {
        let images = ImageModuleStub::new(client.clone()).with_timeout(g.timeout);
        let config = images.get(name).await?.config;
        super::container_image::apply(&mut spec, a, &config)?;
    }
    let c = ContainerModuleStub::new(client).with_timeout(g.timeout);
    if a.tty && !a.created {
        return run_attached(&c, spec, a.interactive).await;
    }
    let info = c.create(spec).await?;
    if g.json {
        return print_value(&info, true);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", info.id)?;
    Ok(())
}

/// `run -t`: create (not started), open the init's terminal, start, relay until the
/// terminal closes, then exit with the init's exit code.
async fn run_attached(c: &ContainerModuleStub, mut spec: ContainerSpec, stdin: bool) -> Result<()> {
    spec.state = InitialState::Created;
    let info = c.create(spec).await?;
    let id = Selector::Id(info.id);
    let req = imagebus_schema::container::SessionRequest {
        exec: None,
        tty: true,
        stdin,
        uid: super::session::my_uid(),
    };
    super::session::attach(c, id.clone(), req, || async {
        c.start(id.clone()).await?;
        Ok(())
    })
    .await?;
    // The terminal closed: the init has ended, or is about to; its code is in the record.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = c.get(id.clone()).await?;
        match now.state {
            ContainerState::Exited | ContainerState::Dead => {
                let code = now.exit_code.unwrap_or(1);
                if code != 0 {
                    std::process::exit(code.clamp(1, 255));
                }
                return Ok(());
            }
            _ if std::time::Instant::now() >= deadline => {
                anyhow::bail!(
                    "container {} is still {} after its terminal closed",
                    info.id,
                    now.state.as_str()
                )
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The spec from flags or JSON.
pub fn spec(a: &RunArgs) -> Result<ContainerSpec> {
    if let Some(text) = &a.spec {
        return Ok(parse_spec("--spec", text)?);
    }
    let mount = match (&a.image, &a.mount) {
        (Some(path), _) => {
            // An existing file, or a path (absolute, `./`, `../`), is an image file;
            // anything else names an image of the image store.
            let source = if !super::container_image::names_stored(path) {
                image_file(path, None, true)?
            } else {
                MountSource::Stored(StoredMount {
                    image: path.to_string_lossy().into_owned(),
                    options: Vec::new(),
                })
            };
            let image = MountSpec { name: None, source };
            if a.read_only {
                MountRef::Inline(Box::new(image))
            } else {
                let overlay = OverlayMount {
                    lowers: vec![MountRef::Inline(Box::new(image))],
                    persist_dir: None,
                };
                MountRef::Inline(Box::new(MountSpec {
                    name: None,
                    source: MountSource::Overlay(overlay),
                }))
            }
        }
        (None, Some(m)) => MountRef::Existing(Selector::parse(m)),
        (None, None) => match &a.bundle {
            Some(dir) => super::container_oci::bundle_root(dir)?,
            None => anyhow::bail!("one of --image, --mount, --bundle or --spec is required"),
        },
    };
    let user = a
        .user
        .as_deref()
        .map(UserSpec::parse)
        .transpose()
        .map_err(RemoteError::invalid_argument)?;
    let network = match a.net.as_str() {
        "host" => Network::Host,
        "private" => Network::Private,
        ns => Network::Namespace(ns.to_string()),
    };
    let binds = a
        .binds
        .iter()
        .map(|b| parse_bind(b))
        .collect::<Result<Vec<_>, _>>()?;
    let mut spec = ContainerSpec {
        name: a.name.clone(),
        group: a.group.clone(),
        mount,
        command: CommandLine::Argv(a.command.clone()),
        env: a.env.clone(),
        working_dir: a.workdir.clone(),
        hostname: a.hostname.clone(),
        user,
        systemd: a.systemd,
        state: if a.created {
            InitialState::Created
        } else {
            InitialState::Running
        },
        network,
        binds,
        resources: Resources {
            cpu_millis: a.cpu_millis,
            memory_bytes: a.memory,
            pids: a.pids,
        },
        capabilities: CapabilityChanges {
            add: a.cap_add.clone(),
            drop: a.cap_drop.clone(),
        },
        stop_signal: a.stop_signal.clone(),
        stop_timeout_ms: a.stop_timeout.map(millis),
        oci: None,
        restart: a.restart.unwrap_or_default(),
        security: Default::default(),
        tty: false,
        health: a.health_cmd.as_ref().map(|cmd| HealthSpec {
            command: CommandLine::Line(cmd.clone()),
            interval_ms: a.health_interval.map(millis),
            timeout_ms: a.health_timeout.map(millis),
            retries: a.health_retries,
            start_period_ms: a.health_start_period.map(millis),
        }),
        log: (a.log_max_bytes.is_some() || a.log_max_files.is_some()).then_some(LogSpec {
            max_bytes: a.log_max_bytes,
            max_files: a.log_max_files,
        }),
    };
    for opt in &a.security_opt {
        spec.security
            .apply_opt(opt)
            .map_err(RemoteError::invalid_argument)?;
    }
    super::container_oci::apply(&mut spec, a)?;
    Ok(spec)
}

/// A duration flag in milliseconds (flags are at most a week: no overflow).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn parse_bind(s: &str) -> Result<BindSpec, RemoteError> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, ro) = match parts.as_slice() {
        [src, dst] => (src, dst, false),
        [src, dst, "ro"] => (src, dst, true),
        [src, dst, "rw"] => (src, dst, false),
        _ => {
            return Err(RemoteError::invalid_argument(format!(
                "--bind {s:?}: use SOURCE:TARGET[:ro]"
            )))
        }
    };
    Ok(BindSpec {
        source: (*src).into(),
        target: (*dst).into(),
        read_only: ro,
    })
}

/// `imagebus ps`.
pub async fn ps(g: &Global, a: &PsArgs) -> Result<()> {
    let states = a
        .states
        .iter()
        .map(|s| {
            serde_json::from_value::<ContainerState>(serde_json::Value::from(s.as_str()))
                .map_err(|_| RemoteError::invalid_argument(format!("--state {s:?}: no such state")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let c = stub(g, Duration::ZERO).await?;
    let list = c
        .list(ContainerFilter {
            states,
            group: a.group.clone(),
        })
        .await?;
    if g.json {
        return print_value(&list, true);
    }
    print_table(
        &["ID", "NAME", "STATE", "HEALTH", "PID", "EXIT", "COMMAND"],
        &list.iter().map(row).collect::<Vec<_>>(),
    )
}

fn row(c: &ContainerInfo) -> Vec<String> {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    vec![
        c.id.to_string(),
        opt(c.name.clone()),
        c.state.as_str().to_string(),
        opt(c.health.as_ref().map(|h| h.status.as_str().to_string())),
        opt(c.pid.map(|p| p.to_string())),
        opt(c.exit_code.map(|p| p.to_string())),
        c.command.join(" "),
    ]
}

/// `imagebus inspect`.
pub async fn inspect(g: &Global, a: &TargetArgs) -> Result<()> {
    let c = stub(g, Duration::ZERO).await?;
    print_value(&c.get(Selector::parse(&a.target)).await?, g.json)
}

/// `imagebus start`.
pub async fn start(g: &Global, a: &StartArgs) -> Result<()> {
    if a.attach {
        return super::container_io::start_attached(g, &a.target).await;
    }
    let c = stub(g, Duration::ZERO).await?;
    state_line(g, &c.start(Selector::parse(&a.target)).await?)
}

/// `imagebus stop`.
pub async fn stop(g: &Global, a: &StopArgs) -> Result<()> {
    let grace = a.grace.unwrap_or(Duration::from_millis(
        imagebus_schema::container::DEFAULT_STOP_TIMEOUT_MS,
    ));
    let c = stub(g, grace).await?;
    let ms = a
        .grace
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    state_line(g, &c.stop(Selector::parse(&a.target), ms).await?)
}

/// `imagebus rm`: with `-f` a running container is killed at once (SIGKILL), as by
/// `docker rm -f`. Prints the removed container's id (`{"removed":[id]}` with --json).
pub async fn rm(g: &Global, a: &RmArgs) -> Result<()> {
    let c = stub(g, Duration::ZERO).await?;
    let id = c.get(Selector::parse(&a.target)).await?.id;
    c.delete(Selector::parse(&id.to_string()), a.force).await?;
    print_removed(g, id)
}

/// What every `rm` prints: the id, or `{"removed":[id]}` with --json.
pub fn print_removed(g: &Global, id: impl std::fmt::Display + serde::Serialize) -> Result<()> {
    if g.json {
        return crate::output::print_json(&serde_json::json!({ "removed": [id] }), true);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{id}")?;
    Ok(())
}

fn state_line(g: &Global, info: &ContainerInfo) -> Result<()> {
    if g.json {
        return print_value(info, true);
    }
    let mut out = std::io::stdout().lock();
    match info.exit_code {
        Some(code) => writeln!(out, "{} {} (exit {code})", info.id, info.state.as_str())?,
        None => writeln!(out, "{} {}", info.id, info.state.as_str())?,
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;

    /// The `RunArgs` of an `imagebus run …` command line (also used by
    /// `container_image`'s tests).
    pub(crate) fn run_args(argv: &[&str]) -> RunArgs {
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(a) => *a,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn run_from_flags_nests_overlay_image_loop() {
        let a = run_args(&[
            "imagebus",
            "run",
            "--name",
            "web",
            "--image",
            "/srv/bb.sqsh",
            "-e",
            "A=1",
            "--bind",
            "/data:/data:ro",
            "--",
            "sh",
            "-c",
            "sleep 1000",
        ]);
        let s = spec(&a).unwrap();
        assert_eq!(
            s.command,
            CommandLine::Argv(vec!["sh".into(), "-c".into(), "sleep 1000".into()])
        );
        assert_eq!(s.state, InitialState::Running);
        assert_eq!(
            s.binds,
            vec![BindSpec {
                source: "/data".into(),
                target: "/data".into(),
                read_only: true
            }]
        );
        let json = serde_json::to_value(&s.mount).unwrap();
        assert_eq!(json["inline"]["source"]["kind"], "overlay");
        let image = &json["inline"]["source"]["lowers"][0]["inline"]["source"];
        assert_eq!(image["kind"], "image");
        assert_eq!(image["attach"]["inline"]["source"]["path"], "/srv/bb.sqsh");
        assert_eq!(image["attach"]["inline"]["source"]["kind"], "loop");
    }

    #[test]
    fn run_image_takes_a_stored_image_name_when_not_a_path() {
        let a = run_args(&[
            "imagebus",
            "run",
            "--image",
            "busybox:1",
            "--read-only",
            "true",
        ]);
        let json = serde_json::to_value(spec(&a).unwrap().mount).unwrap();
        assert_eq!(json["inline"]["source"]["kind"], "stored");
        assert_eq!(json["inline"]["source"]["image"], "busybox:1");
        let a = run_args(&["imagebus", "run", "--image", "./missing.sqsh", "true"]);
        let json = serde_json::to_value(spec(&a).unwrap().mount).unwrap();
        let lower = &json["inline"]["source"]["lowers"][0]["inline"]["source"];
        assert_eq!(lower["kind"], "image");
    }

    #[test]
    fn run_rejects_bad_binds_and_needs_a_rootfs() {
        let a = run_args(&[
            "imagebus", "run", "--image", "/x", "--bind", "nocolon", "true",
        ]);
        assert!(spec(&a).is_err());
        assert!(Cli::try_parse_from(["imagebus", "run", "true"]).is_err());
        assert!(
            Cli::try_parse_from(["imagebus", "run", "--image", "/x", "--mount", "3", "true"])
                .is_err()
        );
    }
}
