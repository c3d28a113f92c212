//! The wire structures of zbus v1: `Request`, `Response` and the `zbus@1.0` `Status`.
//!
//! Every struct is a msgpack MAP keyed by the exact Go field names (vmihailenco/msgpack v4
//! `Marshal`). Our extension keys (`Deadline`, `Code`) are omitted when they are `None`, so
//! Go-produced bytes round-trip unchanged; Go's decoder skips them when present. Decoding
//! also accepts structs encoded as arrays, `nil` for `Inputs`, and `Data` as `nil`, an empty
//! bin, a bin or a str. See `docs/protocol.md`.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_bytes::ByteBuf;
use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The reserved object every module serves with its [`Status`] (Go zbus `zbus@1.0`).
pub const STATUS_OBJECT: &str = "zbus@1.0";

/// Seconds a reply list lives in Redis (Go `redisResponseTTL`).
pub const RESPONSE_TTL_SECS: u64 = 300;

/// An object's identity: `name@version`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectId {
    /// Object name, e.g. `attach`.
    #[serde(rename = "Name")]
    pub name: String,
    /// Version, e.g. `1`; may be empty.
    #[serde(rename = "Version")]
    pub version: String,
}

impl ObjectId {
    /// An id from its parts.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
        }
    }

    /// Parses `name@version`, splitting on the first `@` (Go `ObjectIDFromString`); a string
    /// without `@` is a name with an empty version.
    pub fn parse(s: &str) -> Self {
        match s.split_once('@') {
            Some((name, version)) => Self::new(name, version),
            None => Self::new(s, ""),
        }
    }

    /// The Redis list this object is served on: `<module>.<name@version>`.
    pub fn queue(&self, module: &str) -> String {
        self.key(module, &[])
    }

    /// The Redis list of its read-only callers: `<module>.<name@version>:ro`. Requests
    /// popped from it may call only the object's read methods (`Object::reads`); a Redis
    /// ACL that lets a user push only to `*:ro` keys makes that user a read-only caller.
    pub fn read_only_queue(&self, module: &str) -> String {
        self.key(module, &[READ_ONLY_SUFFIX])
    }

    /// The pub/sub channel of one of its events: `<module>.<name@version>.<event>`.
    pub fn channel(&self, module: &str, event: &str) -> String {
        self.key(module, &[".", event])
    }

    /// `<module>.<name@version>` and then `tail`, joined without `format!` (a caller
    /// builds one per call, and the formatting machinery costs more than the copies).
    fn key(&self, module: &str, tail: &[&str]) -> String {
        let version = if self.version.is_empty() {
            0
        } else {
            1 + self.version.len()
        };
        let tail_len: usize = tail.iter().map(|t| t.len()).sum();
        let mut key =
            String::with_capacity(module.len() + 1 + self.name.len() + version + tail_len);
        key.push_str(module);
        key.push('.');
        key.push_str(&self.name);
        if !self.version.is_empty() {
            key.push('@');
            key.push_str(&self.version);
        }
        for t in tail {
            key.push_str(t);
        }
        key
    }
}

/// What ends a read-only queue's name (see [`ObjectId::read_only_queue`]).
pub const READ_ONLY_SUFFIX: &str = ":ro";

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_object_id(f, &self.name, &self.version)
    }
}

/// `name@version`, or `name` alone when the version is empty.
fn write_object_id(f: &mut fmt::Formatter<'_>, name: &str, version: &str) -> fmt::Result {
    if version.is_empty() {
        f.write_str(name)
    } else {
        write!(f, "{name}@{version}")
    }
}

impl std::str::FromStr for ObjectId {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(s))
    }
}

/// A call. Go: `Request{ID, Inputs, Object, ReplyTo, Method}` plus our optional `Deadline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Unique id (UUIDv4 string).
    #[serde(rename = "ID")]
    pub id: String,
    /// Each argument msgpack-encoded on its own, one bin per argument.
    #[serde(rename = "Inputs", deserialize_with = "nil_as_empty", default)]
    pub inputs: Vec<ByteBuf>,
    /// The addressed object.
    #[serde(rename = "Object")]
    pub object: ObjectId,
    /// The list the response is pushed to.
    #[serde(rename = "ReplyTo")]
    pub reply_to: String,
    /// Wire method name.
    #[serde(rename = "Method")]
    pub method: String,
    /// Extension: unix time in milliseconds after which the caller no longer waits. Absent
    /// in Go requests; servers skip a request whose deadline has passed.
    #[serde(rename = "Deadline", default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<u64>,
}

/// A [`Request`] by reference, for encoding only: the same fields in the same order, so
/// the bytes are the same, without copying the caller's strings and arguments into an
/// owned `Request` on every call.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RequestRef<'a> {
    /// See [`Request::id`].
    #[serde(rename = "ID")]
    pub id: &'a str,
    /// See [`Request::inputs`].
    #[serde(rename = "Inputs")]
    pub inputs: &'a [ByteBuf],
    /// See [`Request::object`].
    #[serde(rename = "Object")]
    pub object: &'a ObjectId,
    /// See [`Request::reply_to`].
    #[serde(rename = "ReplyTo")]
    pub reply_to: &'a str,
    /// See [`Request::method`].
    #[serde(rename = "Method")]
    pub method: &'a str,
    /// See [`Request::deadline`].
    #[serde(rename = "Deadline", skip_serializing_if = "Option::is_none")]
    pub deadline: Option<u64>,
}

impl<'a> From<&'a Request> for RequestRef<'a> {
    fn from(r: &'a Request) -> Self {
        Self {
            id: &r.id,
            inputs: &r.inputs,
            object: &r.object,
            reply_to: &r.reply_to,
            method: &r.method,
            deadline: r.deadline,
        }
    }
}

/// A [`Request`] as a server decodes it: its strings borrowed from the payload (the reply
/// copies only the two it needs), its arguments owned (they go to the handler). It reads
/// what `Request` reads, field for field (`Cow`: borrowed where the bytes allow it, as
/// from a slice they always do).
#[derive(Debug, Deserialize)]
pub struct RequestIn<'a> {
    /// See [`Request::id`].
    #[serde(rename = "ID", borrow)]
    pub id: Cow<'a, str>,
    /// See [`Request::inputs`].
    #[serde(rename = "Inputs", deserialize_with = "nil_as_empty", default)]
    pub inputs: Vec<ByteBuf>,
    /// See [`Request::object`].
    #[serde(rename = "Object", borrow)]
    pub object: ObjectIdIn<'a>,
    /// See [`Request::reply_to`].
    #[serde(rename = "ReplyTo", borrow)]
    pub reply_to: Cow<'a, str>,
    /// See [`Request::method`].
    #[serde(rename = "Method", borrow)]
    pub method: Cow<'a, str>,
    /// See [`Request::deadline`].
    #[serde(rename = "Deadline", default)]
    pub deadline: Option<u64>,
}

/// An [`ObjectId`] borrowed from a payload (see [`RequestIn`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ObjectIdIn<'a> {
    /// See [`ObjectId::name`].
    #[serde(rename = "Name", borrow)]
    pub name: Cow<'a, str>,
    /// See [`ObjectId::version`].
    #[serde(rename = "Version", borrow)]
    pub version: Cow<'a, str>,
}

impl ObjectIdIn<'_> {
    /// Whether it names `id`.
    pub fn is(&self, id: &ObjectId) -> bool {
        self.name == id.name && self.version == id.version
    }
}

impl fmt::Display for ObjectIdIn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_object_id(f, &self.name, &self.version)
    }
}

impl RequestIn<'_> {
    /// `true` when the request carries a deadline that lies before `now`.
    pub fn expired_at(&self, now: SystemTime) -> bool {
        expired(self.deadline, now)
    }

    /// The owned request.
    pub fn into_owned(self) -> Request {
        Request {
            id: self.id.into_owned(),
            inputs: self.inputs,
            object: ObjectId::new(self.object.name, self.object.version),
            reply_to: self.reply_to.into_owned(),
            method: self.method.into_owned(),
            deadline: self.deadline,
        }
    }
}

impl<'a> From<&'a mut Request> for RequestIn<'a> {
    /// A view of an owned request; its arguments are taken out of it.
    fn from(r: &'a mut Request) -> Self {
        Self {
            id: Cow::Borrowed(&r.id),
            inputs: std::mem::take(&mut r.inputs),
            object: ObjectIdIn {
                name: Cow::Borrowed(&r.object.name),
                version: Cow::Borrowed(&r.object.version),
            },
            reply_to: Cow::Borrowed(&r.reply_to),
            method: Cow::Borrowed(&r.method),
            deadline: r.deadline,
        }
    }
}

impl Request {
    /// `true` when the request carries a deadline that lies before `now`.
    pub fn expired_at(&self, now: SystemTime) -> bool {
        expired(self.deadline, now)
    }
}

/// Whether a request's `Deadline` (unix ms) lies before `now`.
fn expired(deadline: Option<u64>, now: SystemTime) -> bool {
    deadline.is_some_and(|d| d < unix_ms(now))
}

/// Milliseconds since the unix epoch (0 for times before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A method's call error. Go: `CallError{Message}` plus our optional `Code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallError {
    /// Human-readable message.
    #[serde(rename = "Message", default)]
    pub message: String,
    /// Extension: the [`crate::ErrorCode`] name.
    #[serde(rename = "Code", default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// A method's result. Go: `Output{Data, Error}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// msgpack bytes of the return value(s). We always send a bin (`c4 01 c0` for none);
    /// decoding accepts nil, an empty bin, a bin or a str.
    #[serde(rename = "Data", deserialize_with = "lenient_bytes", default)]
    pub data: ByteBuf,
    /// The method's error, if it returned one.
    #[serde(rename = "Error", default)]
    pub error: Option<CallError>,
}

/// A reply. Go: `Response{ID, Output, Error}` plus our optional `Code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    #[serde(rename = "ID")]
    pub id: String,
    /// The method's result.
    #[serde(rename = "Output")]
    pub output: Output,
    /// Protocol error: unknown object or method, bad arguments, a panic.
    #[serde(rename = "Error", default)]
    pub error: Option<String>,
    /// Extension: the [`crate::ErrorCode`] name of the protocol error.
    #[serde(rename = "Code", default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// Reply of the reserved `zbus@1.0` object. Go: `Status{Objects, Workers}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Registered objects (without `zbus@1.0`).
    #[serde(rename = "Objects", deserialize_with = "nil_as_empty", default)]
    pub objects: Vec<ObjectId>,
    /// One entry per worker.
    #[serde(rename = "Workers", deserialize_with = "nil_as_empty", default)]
    pub workers: Vec<WorkerStatus>,
}

/// One worker in a [`Status`]. Go: `WorkerStatus{State, StartTime, Action}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// `free` or `busy`.
    #[serde(rename = "State")]
    pub state: String,
    /// When the current call started, or when the worker became free (as Go does).
    #[serde(rename = "StartTime")]
    pub start_time: Timestamp,
    /// `[name@version].Method()` while busy, empty when free.
    #[serde(rename = "Action")]
    pub action: String,
}

/// A point in time encoded as the msgpack timestamp extension (type -1), which is how Go's
/// msgpack v4 encodes `time.Time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Seconds since the unix epoch (negative before it).
    pub seconds: i64,
    /// Nanoseconds within the second, < 1e9.
    pub nanos: u32,
}

impl Timestamp {
    /// Go's zero `time.Time` (0001-01-01 00:00:00 UTC).
    pub const GO_ZERO: Timestamp = Timestamp {
        seconds: -62_135_596_800,
        nanos: 0,
    };

    /// From a system time.
    pub fn from_system(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self {
                seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                let mut seconds = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                let mut nanos = d.subsec_nanos();
                if nanos > 0 {
                    seconds -= 1;
                    nanos = 1_000_000_000 - nanos;
                }
                Self { seconds, nanos }
            }
        }
    }

    /// As a system time, when it is after the unix epoch.
    pub fn to_system(self) -> Option<SystemTime> {
        let secs = u64::try_from(self.seconds).ok()?;
        UNIX_EPOCH.checked_add(Duration::new(secs, self.nanos))
    }

    /// The extension payload (4, 8 or 12 bytes, as Go v4 and the msgpack spec write it).
    pub fn ext_payload(self) -> Vec<u8> {
        if self.seconds >= 0 && (self.seconds >> 34) == 0 {
            let data = (u64::from(self.nanos) << 34) | self.seconds.unsigned_abs();
            if data & 0xffff_ffff_0000_0000 == 0 {
                return u32::try_from(data)
                    .unwrap_or(u32::MAX)
                    .to_be_bytes()
                    .to_vec();
            }
            return data.to_be_bytes().to_vec();
        }
        let mut b = self.nanos.to_be_bytes().to_vec();
        b.extend_from_slice(&self.seconds.to_be_bytes());
        b
    }

    /// Parses an extension payload. Nanoseconds of a second or more (the 8- and 12-byte
    /// forms can carry them) carry into the seconds, as Go's `time.Unix` does, so that a
    /// decoded timestamp always has `nanos < 1e9` and encodes back to the same time.
    pub fn from_ext_payload(b: &[u8]) -> Option<Self> {
        let t = Self::raw_from_ext_payload(b)?;
        let carry = i64::from(t.nanos / 1_000_000_000);
        Some(Self {
            seconds: t.seconds.checked_add(carry)?,
            nanos: t.nanos % 1_000_000_000,
        })
    }

    fn raw_from_ext_payload(b: &[u8]) -> Option<Self> {
        match b.len() {
            4 => Some(Self {
                seconds: i64::from(u32::from_be_bytes(b.try_into().ok()?)),
                nanos: 0,
            }),
            8 => {
                let data = u64::from_be_bytes(b.try_into().ok()?);
                let nanos = u32::try_from(data >> 34).ok()?;
                let seconds = i64::try_from(data & 0x3_ffff_ffff).ok()?;
                Some(Self { seconds, nanos })
            }
            12 => {
                let nanos = u32::from_be_bytes(b[..4].try_into().ok()?);
                let seconds = i64::from_be_bytes(b[4..].try_into().ok()?);
                Some(Self { seconds, nanos })
            }
            _ => None,
        }
    }
}

/// Ext type of the msgpack timestamp extension.
pub const TIMESTAMP_EXT: i8 = -1;

#[derive(Serialize, Deserialize)]
#[serde(rename = "_ExtStruct")]
struct ExtStruct((i8, ByteBuf));

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ExtStruct((TIMESTAMP_EXT, ByteBuf::from(self.ext_payload()))).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ExtStruct((kind, payload)) = ExtStruct::deserialize(d)?;
        if kind != TIMESTAMP_EXT {
            return Err(de::Error::custom(format!(
                "ext type {kind} is not a timestamp"
            )));
        }
        Timestamp::from_ext_payload(&payload)
            .ok_or_else(|| de::Error::custom("bad timestamp extension length"))
    }
}

/// `nil` decodes as an empty list (Go encodes a nil slice as `c0`).
fn nil_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// `Data`: nil, bin, str, or (leniently) an array of byte values.
fn lenient_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<ByteBuf, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = ByteBuf;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("bin, str or nil")
        }
        fn visit_unit<E: de::Error>(self) -> Result<ByteBuf, E> {
            Ok(ByteBuf::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<ByteBuf, E> {
            Ok(ByteBuf::new())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<ByteBuf, D::Error> {
            d.deserialize_any(V)
        }
        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
            Ok(ByteBuf::from(v))
        }
        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
            Ok(ByteBuf::from(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteBuf, E> {
            Ok(ByteBuf::from(v.as_bytes()))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(ByteBuf::from(out))
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_id_parses_on_first_at() {
        let id = ObjectId::parse("calculator@1.0@x");
        assert_eq!(id, ObjectId::new("calculator", "1.0@x"));
        assert_eq!(ObjectId::parse("zbus@1.0").to_string(), "zbus@1.0");
        assert_eq!(ObjectId::parse("plain").to_string(), "plain");
        assert_eq!(ObjectId::new("a", "1").queue("m"), "m.a@1");
        assert_eq!(ObjectId::new("a", "1").channel("m", "Ev"), "m.a@1.Ev");
        assert_eq!(ObjectId::new("a", "1").read_only_queue("m"), "m.a@1:ro");
        assert_eq!(ObjectId::new("a", "").queue("m"), "m.a");
        assert_eq!(ObjectId::new("a", "").channel("m", "Ev"), "m.a.Ev");
    }

    /// A request with every field set.
    fn full_request() -> Request {
        Request {
            id: "c0ffee".into(),
            inputs: vec![ByteBuf::from(vec![1u8]), ByteBuf::from(vec![0xc0])],
            object: ObjectId::new("calculator", "1.0"),
            reply_to: "imagebus.replies.x".into(),
            method: "Add".into(),
            deadline: Some(1_700_000_000_123),
        }
    }

    #[test]
    fn a_request_by_reference_encodes_to_the_same_bytes() {
        let requests = [
            full_request(),
            Request {
                id: String::new(),
                inputs: Vec::new(),
                object: ObjectId::new("plain", ""),
                reply_to: String::new(),
                method: String::new(),
                deadline: None,
            },
        ];
        for r in &requests {
            let by_ref = RequestRef::from(r);
            assert_eq!(
                crate::codec::encode(&by_ref).unwrap(),
                crate::codec::encode(r).unwrap()
            );
            assert_eq!(
                crate::codec::encode_go(&by_ref).unwrap(),
                crate::codec::encode_go(r).unwrap()
            );
        }
    }

    #[test]
    fn a_request_read_in_place_is_the_request_read_owned() {
        let request = full_request();
        let without_deadline = Request {
            deadline: None,
            ..request.clone()
        };
        let mut payloads = vec![
            crate::codec::encode(&request).unwrap(),
            crate::codec::encode_go(&request).unwrap(),
            crate::codec::encode_go(&without_deadline).unwrap(),
            // Structs as arrays.
            rmp_serde::to_vec(&request).unwrap(),
            // `Inputs` nil, and a key neither knows.
            [
                &[0x86, 0xa2, b'I', b'D', 0xa1, b'x', 0xa6][..],
                b"Inputs",
                &[0xc0, 0xa6],
                b"Object",
                &[0x82, 0xa4],
                b"Name",
                &[0xa1, b'a', 0xa7],
                b"Version",
                &[0xa0, 0xa7],
                b"ReplyTo",
                &[0xa1, b'r', 0xa6],
                b"Method",
                &[0xa1, b'M', 0xa5],
                b"Extra",
                &[0x01],
            ]
            .concat(),
        ];
        // Malformed: truncated, a missing key, a number for a string.
        let good = payloads[0].clone();
        payloads.push(good[..good.len() - 3].to_vec());
        payloads.push([&[0x81, 0xa2, b'I', b'D', 0xa1, b'x'][..]].concat());
        payloads.push([&[0x81, 0xa2, b'I', b'D', 0x07][..]].concat());
        for (i, bytes) in payloads.iter().enumerate() {
            let owned: Result<Request, _> = crate::codec::decode(bytes);
            let in_place: Result<RequestIn<'_>, _> = crate::codec::decode_borrowed(bytes);
            match (owned, in_place) {
                (Ok(owned), Ok(in_place)) => {
                    assert!(matches!(in_place.id, Cow::Borrowed(_)), "payload {i}");
                    assert!(in_place.object.is(&owned.object), "payload {i}");
                    assert_eq!(in_place.object.to_string(), owned.object.to_string());
                    assert_eq!(in_place.into_owned(), owned, "payload {i}");
                }
                (Err(_), Err(_)) => assert!(i >= 5, "payload {i} should decode"),
                (owned, in_place) => panic!("payload {i}: {owned:?} against {in_place:?}"),
            }
        }
        let mut owned = request.clone();
        assert_eq!(RequestIn::from(&mut owned).into_owned(), request);
    }

    #[test]
    fn timestamps_round_trip_all_payload_sizes() {
        for t in [
            Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            },
            Timestamp {
                seconds: 1_700_000_000,
                nanos: 123_456_789,
            },
            Timestamp::GO_ZERO,
        ] {
            assert_eq!(Timestamp::from_ext_payload(&t.ext_payload()), Some(t));
        }
        assert_eq!(
            Timestamp {
                seconds: 5,
                nanos: 0
            }
            .ext_payload()
            .len(),
            4
        );
        assert_eq!(
            Timestamp {
                seconds: 5,
                nanos: 1
            }
            .ext_payload()
            .len(),
            8
        );
        assert_eq!(Timestamp::GO_ZERO.ext_payload().len(), 12);
        let now = SystemTime::now();
        assert_eq!(Timestamp::from_system(now).to_system(), Some(now));
    }

    /// Found by the `zos_types` fuzz target: a 12-byte payload with nanoseconds beyond a
    /// second decoded as is, and encoded back (8-byte form, 30 bits of nanoseconds) as
    /// another time. They now carry into the seconds, as Go does.
    #[test]
    fn nanoseconds_beyond_a_second_carry_into_the_seconds() {
        let mut b = 2_147_483_678u32.to_be_bytes().to_vec();
        b.extend_from_slice(&0i64.to_be_bytes());
        let t = Timestamp::from_ext_payload(&b).unwrap();
        assert_eq!(
            t,
            Timestamp {
                seconds: 2,
                nanos: 147_483_678
            }
        );
        assert_eq!(Timestamp::from_ext_payload(&t.ext_payload()), Some(t));
        // The 8-byte form carries up to 2^30 - 1 ns.
        let data = ((1_073_741_823u64) << 34) | 5;
        let t = Timestamp::from_ext_payload(&data.to_be_bytes()).unwrap();
        assert_eq!((t.seconds, t.nanos), (6, 73_741_823));
        // A carry past the largest second is refused.
        let mut b = u32::MAX.to_be_bytes().to_vec();
        b.extend_from_slice(&i64::MAX.to_be_bytes());
        assert_eq!(Timestamp::from_ext_payload(&b), None);
    }
}
