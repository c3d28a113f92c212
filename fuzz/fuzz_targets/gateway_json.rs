//! The ImageAPI gateway's JSON request bodies, through the same `extract::parse_json` the
//! handlers' extractor runs (serde_path_to_error naming the field, trailing data refused):
//! v0.1 `rbd`, `mount_rbd`, `mount_overlay`; v0.2 `attach`, `mount`, `container`. The
//! first byte picks the body type. Also the v0.1 RBD body's translation into an attach
//! spec, and the `--listen` address parser.
//!
//! Invariants: a body that parses round-trips through JSON; an error is a 400 whose text
//! names the body or a field; the attach spec made from an RBD body keeps its pool, image
//! and monitors; a parsed listen address prints as something that parses to itself.
#![no_main]

use imagebus_fuzz::json_round_trip;
use imagebus_gateway::config::Listen;
use imagebus_gateway::error::ApiError;
use imagebus_gateway::extract::parse_json;
use imagebus_gateway::model::attach::{Attach, Rbd};
use imagebus_gateway::model::container::Container;
use imagebus_gateway::model::mount::{Mount, MountOverlay, MountRbd};
use imagebus_gateway::translate::v1_rbd_spec;
use imagebus_schema::attach::AttachSource;
use libfuzzer_sys::fuzz_target;

fn body<T>(bytes: &[u8]) -> Option<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    match parse_json::<T>(bytes) {
        Ok(v) => {
            json_round_trip(&v);
            Some(v)
        }
        Err(ApiError::BadRequest(text)) => {
            assert!(!text.is_empty());
            None
        }
        Err(other) => panic!("a body error that is not a 400: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 7 {
        0 => {
            if let Some(r) = body::<Rbd>(bytes) {
                if let Ok(spec) = v1_rbd_spec(&r, "rbd") {
                    let AttachSource::Rbd(src) = spec.source else {
                        panic!("an RBD body became another source");
                    };
                    assert_eq!(
                        (src.pool, src.image, src.monitors),
                        (r.pool, r.image, r.monitors)
                    );
                }
            }
        }
        1 => drop(body::<MountRbd>(bytes)),
        2 => drop(body::<MountOverlay>(bytes)),
        3 => drop(body::<Attach>(bytes)),
        4 => drop(body::<Mount>(bytes)),
        5 => drop(body::<Container>(bytes)),
        _ => {
            if let Ok(text) = std::str::from_utf8(bytes) {
                if let Ok(l) = Listen::parse(text) {
                    let again = Listen::parse(&l.to_string()).expect("a listen address reparses");
                    assert_eq!(again, l);
                }
            }
        }
    }
});
