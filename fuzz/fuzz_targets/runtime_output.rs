//! What runc and crun print that we parse: `state ID` (one JSON object), `list --format
//! json` (`null` or an array), and the stderr of a failed command (JSON log lines or plain
//! text, `oci_cli::error_message`), with the "cannot exec" classifier on top.
//!
//! Invariants: no panic on any output; a parsed state round-trips through JSON; the error
//! message is at most `MESSAGE_MAX` bytes (a valid string, so cut at a character
//! boundary) and is a part of the input's text.
#![no_main]

use imagebus_fuzz::json_round_trip;
use imagebus_sys::oci_cli::{cannot_exec, error_message, MESSAGE_MAX};
use imagebus_sys::runtime::RuntimeState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(state) = serde_json::from_slice::<RuntimeState>(data) {
        json_round_trip(&state);
    }
    if let Ok(Some(list)) = serde_json::from_slice::<Option<Vec<RuntimeState>>>(data) {
        for state in &list {
            json_round_trip(state);
        }
    }
    let text = String::from_utf8_lossy(data);
    let msg = error_message(&text);
    assert!(msg.len() <= MESSAGE_MAX, "{} bytes", msg.len());
    if !msg.is_empty() && !text.contains('\\') {
        // Without JSON escapes the message is the input's own text.
        assert!(text.contains(msg.as_str()), "{msg:?} is not from the input");
    }
    let _ = cannot_exec(&msg);
});
