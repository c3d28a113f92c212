//! `imagebus logs|exec|events`.

use crate::args::{EventsArgs, ExecArgs, Global, LogsArgs};
use crate::commands::container::stub;
use anyhow::Result;
use futures::StreamExt;
use imagebus_bus::{ObjectId, RemoteError};
use imagebus_schema::container::{
    CommandLine, ContainerEvent, ContainerModule, ContainerModuleStub, ExecSpec, LogChunk,
    LogStream, LogsRequest, SessionRequest, UserSpec,
};
use imagebus_schema::Selector;
use std::io::Write;
use std::time::Duration;

/// How long one follow request waits for new output on the server.
const FOLLOW_WAIT: Duration = Duration::from_secs(5);

/// `imagebus logs [-f]`: the lines as text (both streams on stdout, in the order they
/// were read; `--stdout-only`/`--stderr-only` pick one), with `-t` each after its time,
/// or with --json one JSON document per line, `{"time":"…","stream":"stdout","line":"…"}`
/// (`time` and `stream` are null for lines from before logs had them). Reads until the
/// end of the log; with -f, goes on until the container stops (or --until has passed, or
/// Ctrl-C).
pub async fn logs(g: &Global, a: &LogsArgs) -> Result<()> {
    let c = stub(g, FOLLOW_WAIT).await?;
    let target = Selector::parse(&a.target);
    let stream = match (a.stdout_only, a.stderr_only) {
        (true, _) => Some(LogStream::Stdout),
        (_, true) => Some(LogStream::Stderr),
        _ => None,
    };
    let rich = g.json || a.timestamps;
    let filters = LogsRequest {
        since_ms: a.since,
        until_ms: a.until,
        stream,
        entries: rich,
        ..LogsRequest::default()
    };
    let mut req = LogsRequest {
        tail: a.tail,
        ..filters.clone()
    };
    let mut last: Option<u64> = None;
    loop {
        let chunk = tokio::select! {
            r = c.logs(target.clone(), req.clone()) => r?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        print_chunk(g.json, &chunk)?;
        let empty = chunk.data.is_empty() && chunk.entries.is_empty();
        let stalled = empty && last == Some(chunk.offset);
        let until_passed = a.until.is_some_and(|u| now_ms() > u);
        let done = if a.follow {
            empty && (until_passed || (!chunk.running && stalled))
        } else {
            stalled
        };
        if done {
            return Ok(());
        }
        last = Some(chunk.offset);
        req = LogsRequest {
            offset: Some(chunk.offset),
            wait_ms: a.follow.then_some(FOLLOW_WAIT.as_millis() as u64),
            ..filters.clone()
        };
    }
}

/// `imagebus start --attach`: starts the container unless it runs, prints its output
/// from then on until it stops, and exits with its exit code. SIGTERM or SIGINT stops it
/// (its stop signal, then SIGKILL after its stop timeout) and waits for the end. This is
/// the foreground `exec` of a system container's unit.
pub async fn start_attached(g: &Global, target: &str) -> Result<()> {
    use imagebus_schema::container::ContainerState;
    use tokio::signal::unix::{signal, SignalKind};
    let c = stub(g, FOLLOW_WAIT).await?;
    let sel = Selector::parse(target);
    // Output from here on: the end of the log as it is now.
    let mark = c
        .logs(
            sel.clone(),
            LogsRequest {
                tail: Some(0),
                ..LogsRequest::default()
            },
        )
        .await?;
    let info = c.get(sel.clone()).await?;
    let id = Selector::Id(info.id);
    if info.state != ContainerState::Running {
        c.start(id.clone()).await?;
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut offset = mark.offset;
    let mut stopping = false;
    loop {
        let req = LogsRequest {
            offset: Some(offset),
            wait_ms: Some(FOLLOW_WAIT.as_millis() as u64),
            ..LogsRequest::default()
        };
        let chunk = tokio::select! {
            r = c.logs(id.clone(), req) => r?,
            _ = term.recv(), if !stopping => { stopping = true; stop_bg(g, &id).await?; continue }
            _ = int.recv(), if !stopping => { stopping = true; stop_bg(g, &id).await?; continue }
        };
        offset = chunk.offset;
        let mut out = std::io::stdout().lock();
        out.write_all(chunk.data.as_bytes())?;
        out.flush()?;
        if !chunk.running && chunk.data.is_empty() {
            break;
        }
    }
    let end = c.get(id).await?;
    let code = end.exit_code.unwrap_or(1);
    if code != 0 {
        std::process::exit(code.clamp(1, 255));
    }
    Ok(())
}

/// Stops the container (its own stop timeout) for `start --attach`.
async fn stop_bg(g: &Global, id: &Selector) -> Result<()> {
    let grace = Duration::from_millis(imagebus_schema::container::DEFAULT_STOP_TIMEOUT_MS);
    let c = stub(g, grace.saturating_mul(4)).await?;
    match c.stop(id.clone(), None).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == imagebus_bus::ErrorCode::Conflict => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Prints a chunk: its text, or its entries with their times (as JSON lines with `json`).
fn print_chunk(json: bool, chunk: &LogChunk) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(chunk.data.as_bytes())?;
    for e in &chunk.entries {
        let time = e.time_ns.map(crate::time::rfc3339_ns);
        if json {
            let doc = serde_json::json!({
                "time": time,
                "stream": e.stream.map(LogStream::as_str),
                "line": e.line,
            });
            writeln!(out, "{doc}")?;
        } else {
            writeln!(out, "{} {}", time.as_deref().unwrap_or("-"), e.line)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// `imagebus exec`: prints the process's stdout and stderr and exits with its code; with
/// `-i`/`-t`, relays an interactive session instead (see `session.rs`).
pub async fn exec(g: &Global, a: &ExecArgs) -> Result<()> {
    let kill_after = a.kill_after.unwrap_or(Duration::from_secs(30));
    if (a.tty || a.interactive) && a.kill_after.is_some() {
        return Err(RemoteError::invalid_argument(
            "--kill-after is for exec without -i/-t (a session ends with its process)",
        )
        .into());
    }
    let c: ContainerModuleStub = stub(g, kill_after).await?;
    let spec = ExecSpec {
        command: CommandLine::Argv(a.command.clone()),
        env: if a.tty {
            super::session::with_term(a.env.clone())
        } else {
            a.env.clone()
        },
        working_dir: a.workdir.clone(),
        user: a
            .user
            .as_deref()
            .map(UserSpec::parse)
            .transpose()
            .map_err(RemoteError::invalid_argument)?,
        timeout_ms: Some(u64::try_from(kill_after.as_millis()).unwrap_or(u64::MAX)),
    };
    if a.tty || a.interactive {
        let req = SessionRequest {
            exec: Some(ExecSpec {
                timeout_ms: None,
                ..spec
            }),
            tty: a.tty,
            stdin: a.interactive,
            uid: super::session::my_uid(),
        };
        let ended =
            super::session::attach(&c, Selector::parse(&a.target), req, || async { Ok(()) })
                .await?;
        match ended {
            super::session::Ended::Exit(0) => return Ok(()),
            super::session::Ended::Exit(code) => std::process::exit(code.clamp(1, 255)),
            super::session::Ended::Closed => {
                anyhow::bail!("the process's exit status is unknown")
            }
        }
    }
    let r = c.exec(Selector::parse(&a.target), spec).await?;
    if g.json {
        crate::output::print_value(&r, true)?;
    } else {
        std::io::stdout().lock().write_all(r.stdout.as_bytes())?;
        std::io::stderr().lock().write_all(r.stderr.as_bytes())?;
    }
    if r.exit_code != 0 {
        std::process::exit(r.exit_code.clamp(1, 255));
    }
    Ok(())
}

/// `imagebus events`: one line per state change (JSON with --json).
pub async fn events(g: &Global, a: &EventsArgs) -> Result<()> {
    let client = super::connect(g).await?;
    let object = ObjectId::new("container", "1");
    let mut events = client.subscribe::<ContainerEvent>("container", &object, "Events");
    let mut seen = 0u64;
    while a.count.is_none_or(|n| seen < n) {
        let ev = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            ev = events.next() => ev,
        };
        let Some(ev) = ev else {
            anyhow::bail!("the event stream ended")
        };
        if g.json {
            crate::output::print_value(&ev, true)?;
        } else {
            let mut out = std::io::stdout().lock();
            let name = ev.name.as_deref().unwrap_or("-");
            let mut line = format!(
                "{} {} {name} {}",
                crate::time::rfc3339_ms(ev.at_ms),
                ev.id,
                if ev.deleted {
                    "deleted"
                } else {
                    ev.state.as_str()
                }
            );
            if let Some(code) = ev.exit_code {
                line.push_str(&format!(" exit={code}"));
            }
            if let Some(health) = ev.health {
                line.push_str(&format!(" health={}", health.as_str()));
            }
            if let Some(reason) = &ev.reason {
                line.push_str(&format!(" reason={reason:?}"));
            }
            writeln!(out, "{line}")?;
            out.flush()?;
        }
        seen += 1;
    }
    Ok(())
}
