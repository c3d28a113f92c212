//! `imagebus status <module>`: the module's `zbus@1.0` status.

use crate::args::{Global, StatusArgs};
use anyhow::Result;
use imagebus_bus::protocol::Status;
use std::io::Write;
use std::time::SystemTime;

/// Prints the module's objects and workers; fails when it does not answer in time.
pub async fn run(g: &Global, a: &StatusArgs) -> Result<()> {
    let client = super::connect(g).await?;
    let module = a.module();
    let status: Status = client.status(module).await?;
    if g.json {
        return crate::output::print_json(&to_json(module, &status), true);
    }
    let mut out = std::io::stdout().lock();
    let objects: Vec<String> = status.objects.iter().map(ToString::to_string).collect();
    writeln!(out, "module:  {module}")?;
    writeln!(out, "objects: {}", objects.join(", "))?;
    writeln!(out, "workers: {}", status.workers.len())?;
    for (i, w) in status.workers.iter().enumerate() {
        if w.state == "busy" {
            let secs = busy_secs(w.start_time.to_system());
            writeln!(out, "  {i:>3} busy {secs:>6.1}s {}", w.action)?;
        } else {
            writeln!(out, "  {i:>3} {}", w.state)?;
        }
    }
    Ok(())
}

fn busy_secs(since: Option<SystemTime>) -> f64 {
    since
        .and_then(|t| t.elapsed().ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

fn to_json(module: &str, s: &Status) -> serde_json::Value {
    serde_json::json!({
        "module": module,
        "objects": s.objects.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "workers": s.workers.iter().map(|w| serde_json::json!({
            "state": w.state,
            "action": w.action,
            "busy_secs": (w.state == "busy").then(|| busy_secs(w.start_time.to_system())),
        })).collect::<Vec<_>>(),
    })
}
