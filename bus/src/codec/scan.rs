//! A bounded walk over msgpack bytes that allocates nothing: it checks that a payload's
//! structure stays within limits before anything decodes it (a decoder turns each item into
//! a value of 24 bytes or more, so a payload of tiny items would otherwise grow ~40× in
//! memory), and reads a request's `ID` and `ReplyTo` out of a payload that does not decode.

use rmp::Marker;

/// How large a structure may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Values in all (every array element, map key and map value counts).
    pub max_items: usize,
    /// Nesting of arrays, maps.
    pub max_depth: usize,
}

impl Budget {
    /// What requests get: enough for any argument we define, bounded in memory.
    pub const REQUEST: Budget = Budget {
        max_items: 1 << 20,
        max_depth: 64,
    };
}

/// Why a walk stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// The bytes end inside a value, or claim more bytes than there are.
    #[error("truncated msgpack")]
    Truncated,
    /// A byte that starts no msgpack value.
    #[error("invalid msgpack marker 0x{0:02x}")]
    Invalid(u8),
    /// More values than the budget allows.
    #[error("more than {0} msgpack values")]
    TooMany(usize),
    /// Nested deeper than the budget allows.
    #[error("msgpack nested deeper than {0}")]
    TooDeep(usize),
    /// Bytes left after the value.
    #[error("{0} bytes after the msgpack value")]
    Trailing(usize),
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ScanError> {
        let end = self.pos.checked_add(n).ok_or(ScanError::Truncated)?;
        let s = self.bytes.get(self.pos..end).ok_or(ScanError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, ScanError> {
        Ok(self.take(1)?[0])
    }

    fn len(&mut self, width: usize) -> Result<usize, ScanError> {
        let b = self.take(width)?;
        let mut n: u64 = 0;
        for x in b {
            n = (n << 8) | u64::from(*x);
        }
        usize::try_from(n).map_err(|_| ScanError::Truncated)
    }
}

/// What one value is, once its header is read.
enum Head<'a> {
    /// A scalar, string or bin (its bytes already consumed); `Some` for strings.
    Leaf(Option<&'a [u8]>),
    /// A container of this many child values.
    Container(usize),
}

fn head<'a>(r: &mut Reader<'a>) -> Result<Head<'a>, ScanError> {
    let m = Marker::from_u8(r.byte()?);
    let skip = |r: &mut Reader<'a>, n: usize| r.take(n).map(|_| Head::Leaf(None));
    match m {
        Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
            Ok(Head::Leaf(None))
        }
        Marker::U8 | Marker::I8 => skip(r, 1),
        Marker::U16 | Marker::I16 => skip(r, 2),
        Marker::U32 | Marker::I32 | Marker::F32 => skip(r, 4),
        Marker::U64 | Marker::I64 | Marker::F64 => skip(r, 8),
        Marker::FixStr(n) => Ok(Head::Leaf(Some(r.take(usize::from(n))?))),
        Marker::Str8 | Marker::Str16 | Marker::Str32 => {
            let w = match m {
                Marker::Str8 => 1,
                Marker::Str16 => 2,
                _ => 4,
            };
            let n = r.len(w)?;
            Ok(Head::Leaf(Some(r.take(n)?)))
        }
        Marker::Bin8 => {
            let n = r.len(1)?;
            skip(r, n)
        }
        Marker::Bin16 => {
            let n = r.len(2)?;
            skip(r, n)
        }
        Marker::Bin32 => {
            let n = r.len(4)?;
            skip(r, n)
        }
        Marker::FixArray(n) => Ok(Head::Container(usize::from(n))),
        Marker::Array16 => Ok(Head::Container(r.len(2)?)),
        Marker::Array32 => Ok(Head::Container(r.len(4)?)),
        Marker::FixMap(n) => Ok(Head::Container(usize::from(n) * 2)),
        Marker::Map16 => Ok(Head::Container(r.len(2)?.saturating_mul(2))),
        Marker::Map32 => Ok(Head::Container(r.len(4)?.saturating_mul(2))),
        Marker::FixExt1 => skip(r, 2),
        Marker::FixExt2 => skip(r, 3),
        Marker::FixExt4 => skip(r, 5),
        Marker::FixExt8 => skip(r, 9),
        Marker::FixExt16 => skip(r, 17),
        Marker::Ext8 | Marker::Ext16 | Marker::Ext32 => {
            let w = match m {
                Marker::Ext8 => 1,
                Marker::Ext16 => 2,
                _ => 4,
            };
            let n = r.len(w)?;
            skip(r, n.saturating_add(1))
        }
        Marker::Reserved => Err(ScanError::Invalid(0xc1)),
    }
}

/// Walks one value from the reader, within `budget` (`items` counts across calls).
fn walk(r: &mut Reader<'_>, budget: Budget, items: &mut usize) -> Result<(), ScanError> {
    // Children still to read, per open container.
    let mut open: Vec<usize> = Vec::new();
    let mut pending = 1usize;
    loop {
        if pending == 0 {
            match open.pop() {
                Some(p) => {
                    pending = p;
                    continue;
                }
                None => return Ok(()),
            }
        }
        pending -= 1;
        *items += 1;
        if *items > budget.max_items {
            return Err(ScanError::TooMany(budget.max_items));
        }
        if let Head::Container(n) = head(r)? {
            // Every child takes at least one byte: a count beyond the bytes left is a lie.
            if n > r.bytes.len().saturating_sub(r.pos) {
                return Err(ScanError::Truncated);
            }
            if n > 0 {
                if open.len() + 1 > budget.max_depth {
                    return Err(ScanError::TooDeep(budget.max_depth));
                }
                open.push(pending);
                pending = n;
            }
        }
    }
}

/// Checks that `bytes` hold exactly one msgpack value within `budget`. Empty is fine (it
/// decodes as nil).
pub fn check(bytes: &[u8], budget: Budget) -> Result<(), ScanError> {
    check_all(std::iter::once(bytes), budget)
}

/// Like [`check`] for several values sharing one budget (a request's `Inputs`).
pub fn check_all<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    budget: Budget,
) -> Result<(), ScanError> {
    let mut items = 0usize;
    for bytes in values {
        if bytes.is_empty() {
            continue;
        }
        let mut r = Reader { bytes, pos: 0 };
        walk(&mut r, budget, &mut items)?;
        if r.pos != bytes.len() {
            return Err(ScanError::Trailing(bytes.len() - r.pos));
        }
    }
    Ok(())
}

/// One top-level field found by [`top_level_fields`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Field {
    /// No such key.
    #[default]
    Absent,
    /// A string value (at most `max_len` bytes, valid UTF-8).
    Text(String),
    /// Any other value, or a string too long or not UTF-8.
    Other,
}

impl Field {
    /// The string value, if it is one.
    pub fn text(&self) -> Option<String> {
        match self {
            Field::Text(t) => Some(t.clone()),
            _ => None,
        }
    }

    /// Whether the key is there at all.
    pub fn present(&self) -> bool {
        !matches!(self, Field::Absent)
    }
}

/// Skips one value of any nesting. It keeps only a count of the values still to skip (no
/// stack), so depth costs no memory, and every value read consumes at least one byte, so
/// the work is bounded by the length of `bytes`.
fn skip(r: &mut Reader<'_>) -> Result<(), ScanError> {
    let mut pending = 1usize;
    while pending > 0 {
        pending -= 1;
        if let Head::Container(n) = head(r)? {
            if n > r.bytes.len().saturating_sub(r.pos) {
                return Err(ScanError::Truncated);
            }
            pending = pending.checked_add(n).ok_or(ScanError::Truncated)?;
        }
    }
    Ok(())
}

/// The top-level map keys `names` of `bytes`, read without decoding the rest. Values that
/// are containers are skipped, however many items they hold and however deeply they nest
/// (with a counter, not a stack): a field after a value too deep to decode is still read.
/// For answering a payload that does not decode as a request: what was read before the
/// walk failed (a truncated payload) is kept.
pub fn top_level_fields(bytes: &[u8], names: &[&str], max_len: usize) -> Vec<Field> {
    let mut found = vec![Field::Absent; names.len()];
    top_level(bytes, names, max_len, |i, value| {
        found[i] = match value {
            Some(t) => Field::Text(t.to_string()),
            None => Field::Other,
        };
    });
    found
}

/// The string value of the top-level map key `name` of `bytes`, borrowed from it (at most
/// `max_len` bytes, valid UTF-8): what [`top_level_fields`] gives as `Field::text` for
/// `name`, without copying it. How a reply is routed to its caller by its `ID`.
pub fn top_level_text<'a>(bytes: &'a [u8], name: &str, max_len: usize) -> Option<&'a str> {
    let mut text = None;
    top_level(bytes, &[name], max_len, |_, value| text = value);
    text
}

/// Walks the top-level map of `bytes` and calls `found(i, value)` for each key that is
/// `names[i]` (a later duplicate again): `Some` for a string of at most `max_len` bytes,
/// `None` for any other value. Stops at the end of the map or where the walk fails.
fn top_level<'a>(
    bytes: &'a [u8],
    names: &[&str],
    max_len: usize,
    mut found: impl FnMut(usize, Option<&'a str>),
) {
    let is_map = bytes.first().is_some_and(|b| {
        matches!(
            Marker::from_u8(*b),
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32
        )
    });
    if !is_map {
        return;
    }
    let mut r = Reader { bytes, pos: 0 };
    let Ok(Head::Container(n)) = head(&mut r) else {
        return;
    };
    for _ in 0..n / 2 {
        let key = match head(&mut r) {
            Ok(Head::Leaf(k)) => k,
            Ok(Head::Container(_)) | Err(_) => return,
        };
        let wanted = key.and_then(|k| names.iter().position(|n| n.as_bytes() == k));
        let at = r.pos;
        let value = match head(&mut r) {
            Ok(Head::Leaf(v)) => v.and_then(|v| match std::str::from_utf8(v) {
                Ok(t) if v.len() <= max_len => Some(t),
                _ => None,
            }),
            Ok(Head::Container(_)) => {
                // Skip the container: from its start.
                r.pos = at;
                if skip(&mut r).is_err() {
                    if let Some(i) = wanted {
                        found(i, None);
                    }
                    return;
                }
                None
            }
            Err(_) => return,
        };
        if let Some(i) = wanted {
            found(i, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode;

    #[test]
    fn accepts_what_we_encode() {
        #[derive(serde::Serialize)]
        struct S {
            a: Vec<u32>,
            b: std::collections::BTreeMap<String, (f64, Option<String>)>,
            c: serde_bytes::ByteBuf,
        }
        let v = S {
            a: vec![1, 300, 70_000, u32::MAX],
            b: [("x".to_string(), (1.5, Some("y".into())))].into(),
            c: serde_bytes::ByteBuf::from(vec![0u8; 300]),
        };
        check(&encode(&v).unwrap(), Budget::REQUEST).unwrap();
        check(&[], Budget::REQUEST).unwrap();
    }

    #[test]
    fn refuses_too_many_items_too_deep_truncated_and_trailing() {
        let many = encode(&vec![0u8; 2000]).unwrap();
        let small = Budget {
            max_items: 1000,
            max_depth: 4,
        };
        assert_eq!(check(&many, small), Err(ScanError::TooMany(1000)));
        let deep = encode(&vec![vec![vec![vec![vec![1u8]]]]]).unwrap();
        assert_eq!(check(&deep, small), Err(ScanError::TooDeep(4)));
        // An array that claims 2^32-1 elements in 5 bytes.
        assert_eq!(
            check(&[0xdd, 0xff, 0xff, 0xff, 0xff], Budget::REQUEST),
            Err(ScanError::Truncated)
        );
        // A str that claims more bytes than there are.
        assert_eq!(
            check(&[0xd9, 10, b'a'], Budget::REQUEST),
            Err(ScanError::Truncated)
        );
        assert_eq!(
            check(&[0xc0, 0xc0], Budget::REQUEST),
            Err(ScanError::Trailing(1))
        );
        assert_eq!(
            check(&[0xc1], Budget::REQUEST),
            Err(ScanError::Invalid(0xc1))
        );
    }

    #[test]
    fn inputs_share_one_budget() {
        let one = encode(&vec![0u8; 600]).unwrap();
        let b = Budget {
            max_items: 1000,
            max_depth: 4,
        };
        check(&one, b).unwrap();
        assert!(check_all([&one[..], &one[..]], b).is_err());
    }

    /// Issue 10: a request too deep to decode, or cut short, is answered with `Decode`
    /// whenever its `ID` (and `ReplyTo`) can be read: a field after a value nested far
    /// beyond the decoding budget is still found.
    #[test]
    fn fields_after_a_value_too_deep_or_before_a_cut_are_read() {
        // {"ID": "d1", "Inputs": [[[[...1000 deep...]]]], "ReplyTo": "r1"}
        let mut deep = vec![0x83, 0xa2, b'I', b'D', 0xa2, b'd', b'1'];
        deep.extend_from_slice(&[0xa6, b'I', b'n', b'p', b'u', b't', b's']);
        deep.extend(std::iter::repeat_n(0x91, 1000));
        deep.push(0xc0);
        deep.extend_from_slice(&[
            0xa7, b'R', b'e', b'p', b'l', b'y', b'T', b'o', 0xa2, b'r', b'1',
        ]);
        assert_eq!(check(&deep, Budget::REQUEST), Err(ScanError::TooDeep(64)));
        let got = top_level_fields(&deep, &["ID", "ReplyTo"], 64);
        assert_eq!(
            got,
            vec![Field::Text("d1".into()), Field::Text("r1".into())]
        );
        // Cut inside the deep value: the ID before it is kept.
        let got = top_level_fields(&deep[..500], &["ID", "ReplyTo"], 64);
        assert_eq!(got, vec![Field::Text("d1".into()), Field::Absent]);
    }

    #[test]
    fn reads_id_and_reply_to_without_decoding_the_rest() {
        #[derive(serde::Serialize)]
        struct Broken {
            #[serde(rename = "Inputs")]
            inputs: Vec<Vec<u8>>,
            #[serde(rename = "ID")]
            id: &'static str,
            #[serde(rename = "ReplyTo")]
            reply_to: &'static str,
        }
        let bytes = encode(&Broken {
            inputs: vec![vec![1, 2], vec![3]],
            id: "abc",
            reply_to: "r",
        })
        .unwrap();
        let got = top_level_fields(&bytes, &["ID", "ReplyTo", "Nope", "Inputs"], 64);
        assert_eq!(
            got,
            vec![
                Field::Text("abc".into()),
                Field::Text("r".into()),
                Field::Absent,
                Field::Other
            ]
        );
        // Not a map, truncated, or an over-long value: nothing usable.
        assert_eq!(
            top_level_fields(&[0x91, 0x01], &["ID"], 64),
            vec![Field::Absent]
        );
        assert_eq!(top_level_fields(&bytes[..4], &["ID"], 64)[0].text(), None);
        assert_eq!(top_level_fields(&bytes, &["ID"], 2), vec![Field::Other]);
        // The borrowed read of one key gives the same.
        assert_eq!(top_level_text(&bytes, "ID", 64), Some("abc"));
        assert_eq!(top_level_text(&bytes, "ReplyTo", 64), Some("r"));
        assert_eq!(top_level_text(&bytes, "Nope", 64), None);
        assert_eq!(top_level_text(&bytes, "Inputs", 64), None);
        assert_eq!(top_level_text(&[0x91, 0x01], "ID", 64), None);
        assert_eq!(top_level_text(&bytes[..4], "ID", 64), None);
        assert_eq!(top_level_text(&bytes, "ID", 2), None);
    }

    #[test]
    fn a_duplicate_key_reads_as_its_last_value_both_ways() {
        // {"ID": "first", "ID": "second"}
        let mut bytes = vec![0x82];
        for v in ["first", "second"] {
            bytes.extend_from_slice(&[0xa2, b'I', b'D', 0xa0 | v.len() as u8]);
            bytes.extend_from_slice(v.as_bytes());
        }
        assert_eq!(top_level_text(&bytes, "ID", 64), Some("second"));
        assert_eq!(
            top_level_fields(&bytes, &["ID"], 64)[0].text().as_deref(),
            Some("second")
        );
    }
}
