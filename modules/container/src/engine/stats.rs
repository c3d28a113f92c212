//! `Stats`: a running container's resource use, from its cgroup files and its network
//! namespace's counters. A read of the state for the id, pid and state, then the file
//! reads off the actor thread: it never waits for a command in flight.

use super::{blocking, Engine};
use crate::error::ContainerError;
use imagebus_schema::container::{ContainerState, ContainerStats};
use imagebus_schema::Selector;
use imagebus_sys::monitor::now_ms;

/// The counters of `target` now; only id, name and state unless it is created, running
/// or stopping (there is no cgroup otherwise).
pub async fn stats(e: &Engine, target: Selector) -> Result<ContainerStats, ContainerError> {
    let (id, name, state, pid) = e
        .host
        .read(move |s| s.get(&target).map(|i| (i.id, i.name, i.state, i.pid)))
        .await??;
    let mut out = ContainerStats {
        id,
        name,
        state,
        at_ms: now_ms(),
        cpu_usage_ns: None,
        memory_usage_bytes: None,
        memory_limit_bytes: None,
        memory_peak_bytes: None,
        oom_kills: None,
        pids_current: None,
        pids_limit: None,
        io_read_bytes: None,
        io_write_bytes: None,
        net_rx_bytes: None,
        net_tx_bytes: None,
    };
    let live = matches!(
        state,
        ContainerState::Created | ContainerState::Running | ContainerState::Stopping
    );
    if !live {
        return Ok(out);
    }
    let (rel, sys) = (e.cfg.cgroup_path(id), e.sys.clone());
    let (cg, net) = blocking(move || {
        let cg = sys.cgroups.stats(&rel);
        let net = pid.and_then(|p| sys.procs.net_dev(p));
        (cg, net)
    })
    .await?;
    out.cpu_usage_ns = cg.cpu_usage_ns;
    out.memory_usage_bytes = cg.memory_usage_bytes;
    out.memory_limit_bytes = cg.memory_limit_bytes;
    out.memory_peak_bytes = cg.memory_peak_bytes;
    out.oom_kills = cg.oom_kills;
    out.pids_current = cg.pids_current;
    out.pids_limit = cg.pids_limit;
    out.io_read_bytes = cg.io_read_bytes;
    out.io_write_bytes = cg.io_write_bytes;
    out.net_rx_bytes = net.map(|n| n.rx_bytes);
    out.net_tx_bytes = net.map(|n| n.tx_bytes);
    Ok(out)
}
