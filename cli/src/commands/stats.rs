//! `imagebus stats`: resource use of containers, once or refreshing.

use crate::args::{Global, StatsArgs};
use crate::commands::container::stub;
use crate::output::print_table;
use anyhow::Result;
use imagebus_schema::container::{
    ContainerFilter, ContainerModule, ContainerModuleStub, ContainerState, ContainerStats,
};
use imagebus_schema::Selector;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

/// Clears the terminal and moves the cursor home (ANSI), before each refresh.
const CLEAR: &str = "\x1b[2J\x1b[H";

/// `imagebus stats [NAME…] [--no-stream]`.
pub async fn run(g: &Global, a: &StatsArgs) -> Result<()> {
    let c = stub(g, Duration::ZERO).await?;
    let mut last: BTreeMap<u64, ContainerStats> = BTreeMap::new();
    let mut tick = tokio::time::interval(a.interval.max(Duration::from_millis(100)));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let round = sample(&c, &a.targets).await?;
        if g.json {
            let mut out = std::io::stdout().lock();
            for s in &round {
                writeln!(out, "{}", serde_json::to_string(s)?)?;
            }
            out.flush()?;
        } else {
            if !a.no_stream {
                print!("{CLEAR}");
            }
            let rows: Vec<Vec<String>> = round.iter().map(|s| row(s, last.get(&s.id))).collect();
            print_table(
                &[
                    "ID",
                    "NAME",
                    "STATE",
                    "CPU%",
                    "CPU",
                    "MEM",
                    "LIMIT",
                    "PEAK",
                    "PIDS",
                    "NET RX/TX",
                    "BLOCK R/W",
                ],
                &rows,
            )?;
        }
        if a.no_stream {
            return Ok(());
        }
        last = round.into_iter().map(|s| (s.id, s)).collect();
    }
}

/// The stats of `targets`, or of every running container.
async fn sample(c: &ContainerModuleStub, targets: &[String]) -> Result<Vec<ContainerStats>> {
    let selectors: Vec<Selector> = if targets.is_empty() {
        let running = c
            .list(ContainerFilter {
                states: vec![ContainerState::Running],
                group: None,
            })
            .await?;
        running.into_iter().map(|i| Selector::Id(i.id)).collect()
    } else {
        targets.iter().map(|t| Selector::parse(t)).collect()
    };
    let mut out = Vec::with_capacity(selectors.len());
    for s in selectors {
        out.push(c.stats(s).await?);
    }
    Ok(out)
}

fn row(s: &ContainerStats, prev: Option<&ContainerStats>) -> Vec<String> {
    let dash = || "-".to_string();
    let bytes = |v: Option<u64>| v.map_or_else(dash, human);
    let pair = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (None, None) => dash(),
        (a, b) => format!("{} / {}", bytes(a), bytes(b)),
    };
    vec![
        s.id.to_string(),
        s.name.clone().unwrap_or_else(dash),
        s.state.as_str().to_string(),
        cpu_percent(s, prev).map_or_else(dash, |p| format!("{p:.1}%")),
        s.cpu_usage_ns
            .map_or_else(dash, |ns| format!("{:.2}s", ns as f64 / 1e9)),
        bytes(s.memory_usage_bytes),
        s.memory_limit_bytes
            .map_or_else(|| "unlimited".into(), human),
        bytes(s.memory_peak_bytes),
        match (s.pids_current, s.pids_limit) {
            (None, _) => dash(),
            (Some(n), None) => n.to_string(),
            (Some(n), Some(m)) => format!("{n} / {m}"),
        },
        pair(s.net_rx_bytes, s.net_tx_bytes),
        pair(s.io_read_bytes, s.io_write_bytes),
    ]
}

/// CPU use between two samples, percent of one CPU.
fn cpu_percent(s: &ContainerStats, prev: Option<&ContainerStats>) -> Option<f64> {
    let p = prev?;
    let dt_ns = s.at_ms.checked_sub(p.at_ms).filter(|d| *d > 0)? as f64 * 1e6;
    let used = s.cpu_usage_ns?.checked_sub(p.cpu_usage_ns?)? as f64;
    Some(used * 100.0 / dt_ns)
}

/// Bytes in binary units (`12.5MiB`).
fn human(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_cpu_percent() {
        assert_eq!(human(512), "512B");
        assert_eq!(human(32 << 20), "32.0MiB");
        let mut a: ContainerStats = serde_json::from_value(serde_json::json!({
            "id": 1, "state": "running", "at_ms": 1000, "cpu_usage_ns": 0
        }))
        .unwrap();
        assert_eq!(cpu_percent(&a, None), None);
        let prev = a.clone();
        a.at_ms = 2000;
        a.cpu_usage_ns = Some(500_000_000);
        assert_eq!(cpu_percent(&a, Some(&prev)), Some(50.0));
    }
}
