//! A reply as the client reads it from its reply list: the `Response` decode, the mapping
//! to the call's result (`client::reply::into_result`, with codes guessed from Go servers'
//! texts), then the result `Data` decoded as the caller's type. Also the `zbus@1.0`
//! `Status` reply and the timestamp extension.
//!
//! Invariants: every decoded `Response`/`Status` round-trips through both encoders; a
//! result is never an empty `Data` (it is `nil`); a timestamp payload round-trips.
#![no_main]

use imagebus_bus::client::reply::into_result;
use imagebus_bus::codec::{self, NIL};
use imagebus_bus::protocol::{Response, Status, Timestamp};
use imagebus_fuzz::msgpack_round_trip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(resp) = codec::decode::<Response>(data) {
        msgpack_round_trip(&resp);
        match into_result(resp) {
            Ok(bytes) => {
                assert!(!bytes.is_empty());
                if bytes == [NIL] {
                    codec::decode_data::<()>(&bytes).expect("nil is ()");
                }
                let _ = codec::decode_data::<rmpv::Value>(&bytes);
                let _ = codec::decode_data::<Vec<String>>(&bytes);
                let _ = codec::decode_data::<(u64, Option<String>)>(&bytes);
            }
            Err(e) => assert!(!e.code.as_str().is_empty()),
        }
    }
    if let Ok(status) = codec::decode::<Status>(data) {
        msgpack_round_trip(&status);
    }
    if let Some(t) = Timestamp::from_ext_payload(data) {
        if t.nanos < 1_000_000_000 {
            assert_eq!(Timestamp::from_ext_payload(&t.ext_payload()), Some(t));
        }
        let _ = t.to_system();
    }
});
