//! Timestamps as the CLI shows them: RFC 3339 (UTC) in human output, milliseconds since
//! the Unix epoch in fields ending `_ms` in `--json` output.

use serde_json::Value as Json;

/// Record fields holding seconds since the epoch (attachments' and mounts' `created_at`);
/// `--json` shows them as `<name>_ms`, like every other timestamp.
const SECONDS_FIELDS: &[&str] = &["created_at"];

/// Record fields holding milliseconds since the epoch.
const MILLIS_FIELDS: &[&str] = &["created_at_ms", "started_at_ms", "finished_at_ms", "at_ms"];

/// `secs` + `nanos` since the epoch as RFC 3339 in UTC (`1970-01-01T00:00:00Z`, with
/// `.mmm` when there are milliseconds). Works for any i64 seconds (Go's zero time too).
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let millis = nanos / 1_000_000;
    let frac = if millis == 0 {
        String::new()
    } else {
        format!(".{millis:03}")
    };
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}{frac}Z")
}

/// Milliseconds since the epoch as RFC 3339.
pub fn rfc3339_ms(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    rfc3339(secs, u32::try_from(ms % 1000).unwrap_or(0) * 1_000_000)
}

/// Nanoseconds since the epoch as RFC 3339 with nine fraction digits (log lines).
pub fn rfc3339_ns(ns: u64) -> String {
    let secs = i64::try_from(ns / 1_000_000_000).unwrap_or(i64::MAX);
    let base = rfc3339(secs, 0);
    let nanos = ns % 1_000_000_000;
    format!("{}.{nanos:09}Z", base.trim_end_matches('Z'))
}

/// A `--since`/`--until` value: an RFC 3339 time, or a duration (the CLI's syntax) before
/// now; milliseconds since the epoch.
pub fn time_or_ago(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let at = match humantime::parse_rfc3339_weak(t) {
        Ok(at) => at,
        Err(_) => {
            let ago = crate::args::duration(t).map_err(|e| {
                format!("{t:?} is neither an RFC 3339 time nor a duration before now ({e})")
            })?;
            std::time::SystemTime::now()
                .checked_sub(ago)
                .ok_or_else(|| format!("{t:?} reaches before 1970"))?
        }
    };
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{t:?} is before 1970"))?
        .as_millis();
    u64::try_from(ms).map_err(|_| format!("{t:?} is too far away"))
}

/// Howard Hinnant's days → (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Rewrites the timestamps of a record (recursively) for output: `--json` gets every
/// timestamp in milliseconds under a `_ms` name; human output gets RFC 3339 strings under
/// the name without `_ms`.
pub fn normalize(value: &mut Json, json: bool) {
    match value {
        Json::Array(items) => items.iter_mut().for_each(|v| normalize(v, json)),
        Json::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let Some(v) = map.get_mut(&key) else { continue };
                normalize(v, json);
                let (base, ms) = if SECONDS_FIELDS.contains(&key.as_str()) {
                    (key.clone(), v.as_u64().map(|s| s.saturating_mul(1000)))
                } else if MILLIS_FIELDS.contains(&key.as_str()) {
                    (key.trim_end_matches("_ms").to_string(), v.as_u64())
                } else {
                    continue;
                };
                let Some(ms) = ms else { continue };
                map.remove(&key);
                if json {
                    map.insert(format!("{base}_ms"), Json::from(ms));
                } else {
                    map.insert(base, Json::from(rfc3339_ms(ms)));
                }
            }
        }
        _ => {}
    }
}

/// A msgpack timestamp extension (type -1, Go's `time.Time`) as RFC 3339; `None` when
/// `data` is not one of the three timestamp layouts.
pub fn msgpack_timestamp(data: &[u8]) -> Option<String> {
    let (secs, nanos) = match data.len() {
        4 => (i64::from(u32::from_be_bytes(data.try_into().ok()?)), 0),
        8 => {
            let v = u64::from_be_bytes(data.try_into().ok()?);
            let nanos = u32::try_from(v >> 34).ok()?;
            (i64::try_from(v & 0x3_ffff_ffff).ok()?, nanos)
        }
        12 => {
            let nanos = u32::from_be_bytes(data[..4].try_into().ok()?);
            (i64::from_be_bytes(data[4..].try_into().ok()?), nanos)
        }
        _ => return None,
    };
    Some(rfc3339(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc3339_covers_epoch_go_zero_and_now() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(-62_135_596_800, 0), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339_ms(1_764_672_000_123), "2025-12-02T10:40:00.123Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn msgpack_timestamps_decode() {
        assert_eq!(
            msgpack_timestamp(&1u32.to_be_bytes()).as_deref(),
            Some("1970-01-01T00:00:01Z")
        );
        // Go's zero time: 12-byte form, seconds -62135596800.
        let mut d = 0u32.to_be_bytes().to_vec();
        d.extend_from_slice(&(-62_135_596_800i64).to_be_bytes());
        assert_eq!(
            msgpack_timestamp(&d).as_deref(),
            Some("0001-01-01T00:00:00Z")
        );
        let v: u64 = (500_000_000u64 << 34) | 2;
        assert_eq!(
            msgpack_timestamp(&v.to_be_bytes()).as_deref(),
            Some("1970-01-01T00:00:02.500Z")
        );
        assert_eq!(msgpack_timestamp(&[1, 2, 3]), None);
    }

    #[test]
    fn records_get_one_unit() {
        let mut v = json!([{"created_at": 2, "x": {"started_at_ms": 1500}}]);
        normalize(&mut v, true);
        assert_eq!(
            v,
            json!([{"created_at_ms": 2000, "x": {"started_at_ms": 1500}}])
        );
        let mut v = json!({"created_at_ms": 2000, "finished_at_ms": null});
        normalize(&mut v, false);
        assert_eq!(
            v,
            json!({"created_at": "1970-01-01T00:00:02Z", "finished_at_ms": null})
        );
    }
}
