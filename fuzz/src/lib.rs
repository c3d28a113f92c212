//! Helpers shared by the fuzz targets: an allocator that measures the peak memory of one
//! step (for the "a decoder stays within its budget" invariants) and round-trip checks.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting the bytes live and the peak since [`peak_during`] began.
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let live = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are only statistics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on to `System`.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result with the most bytes it had allocated at once (beyond
/// what was live before it started). libFuzzer runs one input at a time, on one thread.
pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    (out, peak)
}

/// JSON round trip: a value that parsed, encoded and parsed again, is equal to itself.
pub fn json_round_trip<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let text = serde_json::to_string(value).expect("a parsed value encodes");
    let back: T =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("re-parsing {text} failed: {e}"));
    assert_eq!(&back, value, "JSON round trip changed the value ({text})");
}

/// msgpack round trip through both of our encoders (compact and Go-exact).
pub fn msgpack_round_trip<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    use imagebus_bus::codec;
    let compact = codec::encode(value).expect("a decoded value encodes");
    let back: T = codec::decode(&compact).expect("our encoding decodes");
    assert_eq!(&back, value, "compact msgpack round trip changed the value");
    let go = codec::encode_go(value).expect("a decoded value encodes Go-style");
    let back: T = codec::decode(&go).expect("our Go-style encoding decodes");
    assert_eq!(
        &back, value,
        "Go-style msgpack round trip changed the value"
    );
}

/// Every `secret` field anywhere in `value` (a redacted spec as JSON) is the redaction
/// marker: no key survives `redacted()`.
pub fn assert_redacted(value: &serde_json::Value) {
    use imagebus_schema::attach::Secret;
    match value {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                if k == "secret" {
                    assert_eq!(
                        v.as_str(),
                        Some(Secret::REDACTED),
                        "a secret survived redaction"
                    );
                } else {
                    assert_redacted(v);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(assert_redacted),
        _ => {}
    }
}
