//! A payload popped from an object queue, as the server's worker handles it: the size
//! limit, the `codec::scan` budget walk, the decode, the `Inputs` budget, and for what
//! does not decode the bounded read of `ID`/`ReplyTo` and the `Decode` answer.
//!
//! Invariants: the request read in place (what every small well-formed one is) is the one
//! the owned parse reads, and a payload it cannot read gets the owned parse's verdict; a
//! served request round-trips (decode → encode → decode, both encoders);
//! its `Inputs` each pass the scan; the answer to a malformed payload decodes as a
//! `Response` with the `Decode` code and the `ID` that was read; parsing never holds more
//! than a fixed multiple of the payload in memory (the scan budget's point).
#![no_main]

use imagebus_bus::codec::{self, scan};
use imagebus_bus::protocol::Response;
use imagebus_bus::server::inspect::{inspect, inspect_owned, Verdict};
use imagebus_fuzz::{msgpack_round_trip, peak_during};
use libfuzzer_sys::fuzz_target;

/// Bytes of memory a parse may hold per payload byte, plus a constant. A `Request` is
/// ~150 bytes and every `Inputs` item takes at least one payload byte; strings are copied.
const PER_BYTE: usize = 64;
const BASE: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let max = 1 << 16;
    let (verdict, peak) = peak_during(|| inspect(data, max));
    assert!(
        peak <= BASE + PER_BYTE * data.len(),
        "parsing {} bytes held {peak} bytes",
        data.len()
    );
    // Read in place or by the owned parse: the same verdict.
    assert_eq!(verdict, inspect_owned(data, max));
    match verdict {
        Verdict::Request(req) => {
            assert!(data.len() <= max);
            msgpack_round_trip(&*req);
            for input in &req.inputs {
                scan::check(input, scan::Budget::REQUEST).expect("served inputs pass the scan");
            }
        }
        Verdict::Malformed {
            id,
            reply_key,
            answer,
        } => {
            // An empty key (no `ReplyTo`, empty `ID`) is refused by the queue check.
            if let (Some(key), Some(rt)) = (&reply_key, &id) {
                assert!(!key.is_empty() || rt.is_empty());
            }
            if let Some(bytes) = answer {
                let resp: Response = codec::decode(&bytes).expect("our answer decodes");
                assert_eq!(resp.code.as_deref(), Some("Decode"));
                assert_eq!(resp.id, id.unwrap_or_default());
                assert!(resp.error.is_some());
            }
        }
    }
});
