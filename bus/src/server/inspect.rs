//! The worker's handling of one popped payload, without Redis: what the fuzz targets
//! (`fuzz/`) drive, so that they exercise the very parse and malformed-payload path a
//! puller runs (size limit, [`crate::codec::scan`] budget, decode, `Inputs` budget, the
//! bounded read of `ID`/`ReplyTo`, the `Decode` answer). Not a stable API.

use super::worker::{self, Malformed, Parsed};
use crate::codec;
use crate::protocol::Request;

/// What a worker makes of a payload.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// A request it would serve.
    Request(Box<Request>),
    /// Not servable; `reply_key` is where the `Decode` answer would go (before the check
    /// against the served queues), `answer` its encoded bytes. A payload that carries an
    /// `Output` (a reply) is never answered: `answer` is `None`.
    Malformed {
        /// `ID`, when it could be read.
        id: Option<String>,
        /// `ReplyTo`, else `ID`.
        reply_key: Option<String>,
        /// The encoded `Response` with the `Decode` error.
        answer: Option<Vec<u8>>,
    },
}

/// Parses `payload` as a worker with a `max`-byte request limit does: in place when it
/// can, else by the owned parse.
pub fn inspect(payload: &[u8], max: usize) -> Verdict {
    match worker::read_in_place(payload, max) {
        Some(req) => Verdict::Request(Box::new(req.into_owned())),
        None => inspect_owned(payload, max),
    }
}

/// Parses `payload` by the owned parse alone, which must come to the same verdict as
/// [`inspect`] (the `bus_request` fuzz target checks that they do).
pub fn inspect_owned(payload: &[u8], max: usize) -> Verdict {
    let malformed = |m: Malformed| {
        let answer = if m.is_reply {
            None
        } else {
            codec::encode(&m.response()).ok()
        };
        Verdict::Malformed {
            id: m.id.clone(),
            reply_key: m.reply_key(),
            answer,
        }
    };
    match worker::parse(payload, max) {
        Parsed::Request(req) => Verdict::Request(req),
        Parsed::Malformed(m) => malformed(m),
        Parsed::BadInputs { req, why } => malformed(Malformed::bad_inputs(&req, &why)),
    }
}
