//! `imagebus ping`: a round trip through `imagebus.system@1`.

use crate::args::Global;
use anyhow::{bail, Result};
use imagebus_bus::Client;
use imagebus_schema::system::{SystemModule, SystemModuleStub};
use std::io::Write;
use std::time::Instant;

/// Pings the daemon and prints the answering daemon's version and the round-trip time.
pub async fn run(g: &Global) -> Result<()> {
    let client: Client = super::connect(g).await?;
    let system = SystemModuleStub::new(client).with_timeout(g.timeout);
    let nonce = format!("ping-{}-{:?}", std::process::id(), Instant::now());
    let start = Instant::now();
    let echo = system.ping(nonce.clone()).await?;
    let rtt = start.elapsed();
    if echo != nonce {
        bail!("the daemon echoed {echo:?} instead of {nonce:?}");
    }
    let v = system.version().await?;
    if g.json {
        let doc = serde_json::json!({
            "rtt_ms": rtt.as_secs_f64() * 1e3, "daemon": v.daemon, "pid": v.pid,
            "protocol": format!("{}/{}", v.protocol, v.protocol_version), "uptime_secs": v.uptime_secs,
        });
        return crate::output::print_json(&doc, true);
    }
    writeln!(
        std::io::stdout(),
        "pong from imagebusd {} (pid {}, {}/{}, up {}s) in {:.2} ms",
        v.daemon,
        v.pid,
        v.protocol,
        v.protocol_version,
        v.uptime_secs,
        rtt.as_secs_f64() * 1e3
    )?;
    Ok(())
}
