//! The zos compatibility object `container@0.0.1`: its Go-shaped types decoded from
//! msgpack (Go vmihailenco/msgpack v4 bytes and ours), the hand-written dispatcher with the
//! variadic `Exec`, and the conversion of a zos container into an imagebus spec.
//!
//! The first byte picks the mode: a `ZosContainer` value; or a method (by index) and its
//! `Inputs` (the rest as a msgpack array of bins), dispatched to a no-op implementation.
//!
//! Invariants: a decoded `ZosContainer` round-trips through both encoders; a spec made from
//! it round-trips (JSON and msgpack) and carries its namespace and name; dispatch answers
//! every method with a value or a typed error, never a panic.
#![no_main]

use imagebus_bus::codec;
use imagebus_bus::{Object, RemoteError};
use imagebus_fuzz::{json_round_trip, msgpack_round_trip};
use imagebus_schema::zos::{ZosContainer, ZosContainerModule, ZosContainerModuleServer, METHODS};
use libfuzzer_sys::fuzz_target;
use serde_bytes::ByteBuf;
use std::sync::Arc;

struct Nop;

#[imagebus_bus::async_trait]
impl ZosContainerModule for Nop {
    async fn run(&self, ns: String, data: ZosContainer) -> Result<String, RemoteError> {
        check_container(&ns, &data);
        Ok(data.name)
    }
    async fn inspect(&self, _ns: String, id: String) -> Result<ZosContainer, RemoteError> {
        Ok(ZosContainer {
            name: id,
            ..Default::default()
        })
    }
    async fn delete(&self, _ns: String, _id: String) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn list(&self, ns: String) -> Result<Vec<String>, RemoteError> {
        Ok(vec![ns])
    }
    async fn list_ns(&self) -> Result<Vec<String>, RemoteError> {
        Ok(vec![])
    }
    async fn exec(&self, _: String, _: String, _: i64, _: Vec<String>) -> Result<(), RemoteError> {
        Ok(())
    }
    async fn logs(&self, _ns: String, id: String) -> Result<String, RemoteError> {
        Ok(id)
    }
    async fn signal_delete(&self, _ns: String, _id: String) -> Result<(), RemoteError> {
        Ok(())
    }
}

fn check_container(ns: &str, data: &ZosContainer) {
    msgpack_round_trip(data);
    if let Ok(spec) = imagebus_container::spec_from_zos(ns, data) {
        json_round_trip(&spec);
        msgpack_round_trip(&spec);
        let name = spec.name.as_deref().expect("a zos spec is named");
        assert!(name.ends_with(data.name.as_str()));
        assert_eq!(spec.group.as_deref().unwrap_or(""), ns);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Ok(c) = codec::decode::<ZosContainer>(rest) {
            check_container("ns", &c);
        }
        return;
    }
    let method = METHODS[usize::from(mode >> 1) % METHODS.len()];
    let Ok(inputs) = codec::decode::<Vec<ByteBuf>>(rest) else {
        return;
    };
    let server = ZosContainerModuleServer::new(Arc::new(Nop));
    let _ = futures::executor::block_on(server.dispatch(method, inputs));
});
