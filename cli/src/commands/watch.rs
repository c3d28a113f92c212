//! `imagebus watch <module> <object@version> <Event>`: one JSON line per event.

use crate::args::{Global, WatchArgs};
use crate::value::msgpack_to_json;
use anyhow::Result;
use futures::StreamExt;
use imagebus_bus::ObjectId;

/// Prints events until Ctrl-C, or until `--count` events were printed.
pub async fn run(g: &Global, a: &WatchArgs) -> Result<()> {
    let client = super::connect(g).await?;
    let object = ObjectId::parse(&a.object);
    let mut events = client.subscribe::<rmpv::Value>(&a.module, &object, &a.event);
    let mut seen = 0u64;
    while a.count.is_none_or(|n| seen < n) {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            ev = events.next() => match ev {
                Some(v) => {
                    crate::output::print_raw_json(&msgpack_to_json(&v), true)?;
                    seen += 1;
                }
                None => anyhow::bail!("the event stream ended"),
            },
        }
    }
    Ok(())
}
