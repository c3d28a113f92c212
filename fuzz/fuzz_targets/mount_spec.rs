//! `MountSpec` with its sources (image on an attachment, overlay of lowers, bind, stored
//! image), `MountRef`, `Selector` and `Holder` as the bus, the CLI and the gateway hand
//! them over (JSON; msgpack for the bus), and the mount option allow-list.
//!
//! Invariants: every parsed value round-trips (JSON, and msgpack through both encoders);
//! the redacted spec keeps no secret, and redacting is idempotent.
#![no_main]

use imagebus_fuzz::{assert_redacted, json_round_trip, msgpack_round_trip};
use imagebus_schema::common::{Holder, Selector};
use imagebus_schema::mount::{MountRef, MountSource, MountSpec};
use libfuzzer_sys::fuzz_target;

fn options(spec: &MountSpec) {
    match &spec.source {
        MountSource::Image(m) => {
            for o in &m.options {
                let _ = imagebus_mount::option_allowed(o);
            }
        }
        MountSource::Overlay(o) => {
            for l in &o.lowers {
                if let MountRef::Inline(s) = l {
                    options(s);
                }
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = serde_json::from_slice::<MountSpec>(data) {
        json_round_trip(&spec);
        msgpack_round_trip(&spec);
        let r = spec.redacted();
        assert_redacted(&serde_json::to_value(&r).expect("a spec encodes"));
        assert_eq!(r.redacted(), r);
        assert_eq!(r.source.kind(), spec.source.kind());
        options(&spec);
    }
    if let Ok(m) = imagebus_bus::codec::decode::<MountSpec>(data) {
        msgpack_round_trip(&m);
    }
    if let Ok(r) = serde_json::from_slice::<MountRef>(data) {
        json_round_trip(&r);
        assert_redacted(&serde_json::to_value(r.redacted()).expect("encodes"));
    }
    if let Ok(s) = serde_json::from_slice::<Selector>(data) {
        json_round_trip(&s);
        msgpack_round_trip(&s);
    }
    if let Ok(h) = serde_json::from_slice::<Holder>(data) {
        json_round_trip(&h);
        msgpack_round_trip(&h);
    }
});
