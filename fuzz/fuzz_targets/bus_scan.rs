//! `codec::scan`, the allocation-free walk that bounds a payload before anything decodes
//! it, and `top_level_fields`, which reads `ID`/`ReplyTo` of a payload that does not
//! decode. The first byte picks a small budget so the limits themselves are reached.
//!
//! Invariants: the walk allocates (almost) nothing; a payload it accepts is one complete
//! msgpack value that a generic decoder reads to the last byte, and within the budget's
//! depth and item count; it never accepts within a budget what it refuses in a larger
//! one; `top_level_fields` returns one field per name, texts within `max_len`, and
//! `top_level_text` borrows the same text of one key.
#![no_main]

use imagebus_bus::codec::scan::{self, Budget, Field, ScanError};
use imagebus_fuzz::peak_during;
use libfuzzer_sys::fuzz_target;

/// Depth and item count of a decoded value, counted as the scan counts them.
fn measure(v: &rmpv::Value, depth: usize, items: &mut usize, max_depth: &mut usize) {
    *items += 1;
    let children: Vec<&rmpv::Value> = match v {
        rmpv::Value::Array(a) => a.iter().collect(),
        rmpv::Value::Map(m) => m.iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => return,
    };
    if !children.is_empty() {
        *max_depth = (*max_depth).max(depth + 1);
    }
    for c in children {
        measure(c, depth + 1, items, max_depth);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&knob, bytes)) = data.split_first() else {
        return;
    };
    let small = Budget {
        max_items: usize::from(knob & 0x3f) * 16 + 1,
        max_depth: usize::from(knob >> 6) * 8 + 1,
    };
    let (small_res, peak) = peak_during(|| scan::check(bytes, small));
    assert!(peak <= 4096, "scan::check allocated {peak} bytes");
    let big_res = scan::check(bytes, Budget::REQUEST);
    if small_res.is_ok() {
        assert_eq!(
            big_res,
            Ok(()),
            "accepted within a small budget, refused in a larger"
        );
    }
    if let (Ok(()), false) = (&big_res, bytes.is_empty()) {
        let mut cursor = bytes;
        let value = rmpv::decode::read_value_ref(&mut cursor)
            .unwrap_or_else(|e| panic!("scan accepted what rmpv refuses: {e}"));
        assert!(cursor.is_empty(), "scan accepted trailing bytes");
        let owned = value.to_owned();
        let (mut items, mut depth) = (0, 0);
        measure(&owned, 0, &mut items, &mut depth);
        if small_res.is_ok() {
            assert!(items <= small.max_items, "{items} items within {small:?}");
            assert!(depth <= small.max_depth, "depth {depth} within {small:?}");
        }
    }
    if let Err(ScanError::Trailing(n)) = big_res {
        assert!(n > 0 && n < bytes.len());
    }

    let max_len = usize::from(knob);
    let (fields, peak) =
        peak_during(|| scan::top_level_fields(bytes, &["ID", "ReplyTo", "Output"], max_len));
    assert!(
        peak <= 4096 + 3 * max_len,
        "top_level_fields allocated {peak} bytes"
    );
    assert_eq!(fields.len(), 3);
    for f in &fields {
        if let Field::Text(t) = f {
            assert!(t.len() <= max_len);
        }
    }
    // The borrowed read of one key agrees with the owned one.
    assert_eq!(
        scan::top_level_text(bytes, "ID", max_len),
        fields[0].text().as_deref()
    );
});
