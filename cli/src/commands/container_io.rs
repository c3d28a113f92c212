//! `imagebus logs|exec|events`.

use crate::args::{EventsArgs, ExecArgs, Global, LogsArgs};
use crate::commands::container::stub;
use anyhow::Result;
use futures::StreamExt;
use imagebus_bus::{ObjectId, RemoteError};
use imagebus_schema::container::{
    CommandLine, ContainerEvent, ContainerModule, ContainerModuleStub, ExecSpec, LogsRequest,
    UserSpec,
};
use imagebus_schema::Selector;
use std::io::Write;
use std::time::Duration;

/// How long one follow request waits for new output on the server.
const FOLLOW_WAIT: Duration = Duration::from_secs(5);

/// `imagebus logs [-f]`: the text as it is, or with --json one JSON document per log
/// line, `{"line":"…"}` (without its newline; a last line without one is printed when the
/// output ends).
pub async fn logs(g: &Global, a: &LogsArgs) -> Result<()> {
    let c = stub(g, FOLLOW_WAIT).await?;
    let target = Selector::parse(&a.target);
    let mut req = LogsRequest {
        tail: a.tail,
        ..LogsRequest::default()
    };
    let mut partial = String::new();
    loop {
        let chunk = tokio::select! {
            r = c.logs(target.clone(), req.clone()) => r?,
            _ = tokio::signal::ctrl_c() => return json_lines(&mut partial, "", true),
        };
        let done = !a.follow || (!chunk.running && chunk.data.is_empty());
        if g.json {
            json_lines(&mut partial, &chunk.data, done)?;
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(chunk.data.as_bytes())?;
            out.flush()?;
        }
        if done {
            return Ok(());
        }
        req = LogsRequest {
            offset: Some(chunk.offset),
            wait_ms: Some(FOLLOW_WAIT.as_millis() as u64),
            ..LogsRequest::default()
        };
    }
}

/// Prints each complete line of `partial` + `data` as `{"line":"…"}`; keeps an unfinished
/// last line in `partial`, or prints it too when `end`.
fn json_lines(partial: &mut String, data: &str, end: bool) -> Result<()> {
    partial.push_str(data);
    let mut out = std::io::stdout().lock();
    while let Some(i) = partial.find('\n') {
        let line: String = partial.drain(..=i).collect();
        let doc = serde_json::json!({ "line": line.trim_end_matches('\n') });
        writeln!(out, "{doc}")?;
    }
    if end && !partial.is_empty() {
        writeln!(
            out,
            "{}",
            serde_json::json!({ "line": std::mem::take(partial) })
        )?;
    }
    out.flush()?;
    Ok(())
}

/// `imagebus exec`: prints the process's stdout and stderr and exits with its code.
pub async fn exec(g: &Global, a: &ExecArgs) -> Result<()> {
    let kill_after = a.kill_after.unwrap_or(Duration::from_secs(30));
    let c: ContainerModuleStub = stub(g, kill_after).await?;
    let spec = ExecSpec {
        command: CommandLine::Argv(a.command.clone()),
        env: a.env.clone(),
        working_dir: a.workdir.clone(),
        user: a
            .user
            .as_deref()
            .map(UserSpec::parse)
            .transpose()
            .map_err(RemoteError::invalid_argument)?,
        timeout_ms: Some(u64::try_from(kill_after.as_millis()).unwrap_or(u64::MAX)),
    };
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
