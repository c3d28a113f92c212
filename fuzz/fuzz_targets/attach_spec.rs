//! `AttachSpec` with its sources (RBD with its secret, loop file, local device) as the bus,
//! the CLI and the gateway hand it over (JSON; msgpack for the bus).
//!
//! Invariants: a parsed spec round-trips (JSON, and msgpack through both encoders); the
//! redacted spec keeps no secret and nothing else changes kind; the secret never appears
//! in the spec's `Debug` text.
#![no_main]

use imagebus_fuzz::{assert_redacted, json_round_trip, msgpack_round_trip};
use imagebus_schema::attach::{AttachRef, AttachSource, AttachSpec, Secret};
use libfuzzer_sys::fuzz_target;

fn check(spec: &AttachSpec) {
    json_round_trip(spec);
    msgpack_round_trip(spec);
    let r = spec.redacted();
    assert_redacted(&serde_json::to_value(&r).expect("a spec encodes"));
    assert_eq!(r.source.kind(), spec.source.kind());
    if let AttachSource::Rbd(_) = &spec.source {
        let mut other = spec.clone();
        if let AttachSource::Rbd(o) = &mut other.source {
            o.secret = Secret::new("another");
        }
        assert_eq!(
            format!("{spec:?}"),
            format!("{other:?}"),
            "Debug shows the secret"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = serde_json::from_slice::<AttachSpec>(data) {
        check(&spec);
    }
    if let Ok(spec) = imagebus_bus::codec::decode::<AttachSpec>(data) {
        check(&spec);
    }
    if let Ok(r) = serde_json::from_slice::<AttachRef>(data) {
        json_round_trip(&r);
        assert_redacted(&serde_json::to_value(r.redacted()).expect("encodes"));
    }
});
