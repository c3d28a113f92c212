//! What the pullers share, and the handling of each request: parse, check, run, reply.

use crate::codec::scan::{self, Budget};
use crate::codec::{self, NIL};
use crate::conn::{self, Outage};
use crate::error::ErrorCode;
use crate::object::{DispatchError, Object, Reply};
use crate::protocol::{
    CallError, ObjectId, ObjectIdIn, Output, Request, RequestIn, Response, Status, Timestamp,
    WorkerStatus, READ_ONLY_SUFFIX,
};
use futures::FutureExt;
use redis::aio::MultiplexedConnection;
use serde_bytes::ByteBuf;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tracing::Instrument;

/// Longest reply key accepted (ours and Go's are UUIDs).
const MAX_REPLY_KEY: usize = 256;
/// Bytes of an encoded reply besides its id, data and error texts: the maps, their keys,
/// the value headers and a code.
const REPLY_FRAME: usize = 64;
/// After a payload this large, the puller (or the replier) reopens its connection, so that
/// no buffer sized by the largest request (or reply) outlives it.
pub(super) const LARGE_PAYLOAD: usize = 1 << 20;

/// State shared by all pullers of one server.
pub(super) struct Shared {
    pub(super) objects: HashMap<ObjectId, Arc<dyn Object>>,
    pub(super) ids: Vec<ObjectId>,
    pub(super) queues: Vec<String>,
    pub(super) status_queue: String,
    /// The status object's read-only queue (status is a read).
    pub(super) status_read_only_queue: String,
    pub(super) client: redis::Client,
    pub(super) connect_timeout: Duration,
    pub(super) slots: Vec<WorkerSlot>,
    /// For PUBLISH and CLIENT UNBLOCK (never for a blocking command).
    pub(super) control: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    pub(super) outage: Outage,
    /// Largest payload decoded; larger ones are answered with `Decode` unread.
    pub(super) max_request_bytes: usize,
    /// How requests are pulled (batched while Redis allows it).
    pub(super) pull_mode: super::pull::PullMode,
}

impl Shared {
    /// The shared non-blocking connection, connecting when needed.
    pub(super) async fn control(&self) -> Option<MultiplexedConnection> {
        let mut guard = self.control.lock().await;
        if guard.is_none() {
            match conn::connect(&self.client, self.connect_timeout).await {
                Ok(c) => *guard = Some(c),
                Err(e) => self.outage.failed("server", &e),
            }
        }
        guard.clone()
    }

    /// Whether a reply may be pushed to `key`. Never to a queue this server serves, nor to
    /// any key named like a queue (`module.object@version`, the status queue included): a
    /// reply there would be popped as a request and answered again, forever, and its
    /// `EXPIRE` would put a deadline on a queue.
    pub(super) fn may_reply_to(&self, key: &str) -> bool {
        !key.is_empty()
            && key.len() <= MAX_REPLY_KEY
            && !key.contains('@')
            && key != self.status_queue
            && key != self.status_read_only_queue
            && !self.queues.iter().any(|q| q == key)
    }

    /// The served object `id` names. A module serves a handful of objects: a scan, so that
    /// the name borrowed from the payload needs no owned `ObjectId` to look it up.
    fn object(&self, id: &ObjectIdIn<'_>) -> Option<Arc<dyn Object>> {
        self.objects
            .iter()
            .find(|(served, _)| id.is(served))
            .map(|(_, object)| Arc::clone(object))
    }

    pub(super) async fn reset_control(&self) {
        *self.control.lock().await = None;
    }

    pub(super) async fn unblock(&self, client_id: i64) {
        let Some(mut conn) = self.control().await else {
            return;
        };
        let res: redis::RedisResult<i64> = redis::cmd("CLIENT")
            .arg("UNBLOCK")
            .arg(client_id)
            .query_async(&mut conn)
            .await;
        if let Err(e) = res {
            if conn::is_fatal(&e) {
                self.reset_control().await;
            }
        }
    }

    fn status(&self) -> Status {
        let workers = self
            .slots
            .iter()
            .map(|s| {
                let state = s.state.lock().unwrap_or_else(|p| p.into_inner());
                match &state.action {
                    Some(action) => WorkerStatus {
                        state: "busy".into(),
                        start_time: Timestamp::from_system(state.since),
                        action: action.to_string(),
                    },
                    // As Go zbus v1.0.1: the time the worker became free.
                    None => WorkerStatus {
                        state: "free".into(),
                        start_time: Timestamp::from_system(state.since),
                        action: String::new(),
                    },
                }
            })
            .collect();
        Status {
            objects: self.ids.clone(),
            workers,
        }
    }
}

/// What a worker is doing, for the status object.
#[derive(Debug)]
pub(super) struct WorkerSlot {
    state: Mutex<SlotState>,
}

#[derive(Debug)]
struct SlotState {
    /// The call while busy; `None` when free.
    action: Option<Action>,
    /// When the current call started, or when the worker became free.
    since: SystemTime,
}

impl Default for WorkerSlot {
    fn default() -> Self {
        Self {
            state: Mutex::new(SlotState {
                action: None,
                since: SystemTime::now(),
            }),
        }
    }
}

impl WorkerSlot {
    /// Busy with `action` from now, or free from now (`None`).
    fn set(&self, action: Option<Action>) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = SlotState {
            action,
            since: SystemTime::now(),
        };
    }
}

/// The call a worker is busy with. Kept as the object and the method, and written out as
/// Go's `[name@version].Method()` only when a status asks: every call sets it, few read it.
pub(super) struct Action {
    object: Arc<dyn Object>,
    method: Method,
}

/// A method name: the object's own static one when it has it (every call that dispatches),
/// else a copy (an unknown method, answered with an error).
enum Method {
    Known(&'static str),
    Other(String),
}

impl Action {
    fn new(object: &Arc<dyn Object>, method: &str) -> Self {
        let method = match object.methods().iter().find(|m| **m == method) {
            Some(known) => Method::Known(known),
            None => Method::Other(method.to_string()),
        };
        Self {
            object: Arc::clone(object),
            method,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let method = match &self.method {
            Method::Known(m) => m,
            Method::Other(m) => m.as_str(),
        };
        write!(f, "[{}].{method}()", self.object.id())
    }
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// What a request is served as.
#[derive(Debug, Clone, Copy)]
pub(super) enum Role {
    /// A call on an object queue, on the worker slot of this index.
    Worker(usize),
    /// The reserved `zbus@1.0` queue, on its own so status answers while workers are busy.
    Status,
}

/// A reply waiting to be pushed (see `reply.rs`).
pub(super) struct Pending {
    pub(super) reply_to: String,
    pub(super) bytes: Vec<u8>,
}

/// Which queue a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Caller {
    /// The object's queue: every method.
    Full,
    /// The read-only queue: read methods only.
    ReadOnly,
}

impl Caller {
    /// The caller of a request popped from `key`.
    pub(super) fn of_key(key: &[u8]) -> Self {
        if key.ends_with(READ_ONLY_SUFFIX.as_bytes()) {
            Caller::ReadOnly
        } else {
            Caller::Full
        }
    }
}

/// Handles one popped payload; returns the reply to push, if any. The request's deadline
/// is checked here, when it starts, not when it was pulled.
pub(super) async fn handle(
    shared: &Shared,
    role: Role,
    from: Caller,
    payload: Vec<u8>,
) -> Option<Pending> {
    let max = shared.max_request_bytes;
    let mut owned: Box<Request>;
    let req = match read_in_place(&payload, max) {
        Some(req) => req,
        None => {
            owned = match parse_owned(payload, max).await {
                Parsed::Request(req) => req,
                Parsed::Malformed(m) => return m.answer(shared),
                Parsed::BadInputs { req, why } => {
                    return Malformed::bad_inputs(&req, &why).answer(shared)
                }
            };
            RequestIn::from(&mut *owned)
        }
    };
    serve(shared, role, from, req).await
}

/// A request read in place, its strings borrowed from `payload`: what every small
/// well-formed request is. `None` for anything else (too large for the runtime's threads
/// or for `max`, beyond the budget, not a request, `Inputs` beyond the budget): the owned
/// [`parse`] reads it again and tells what is wrong with it.
pub(super) fn read_in_place(payload: &[u8], max: usize) -> Option<RequestIn<'_>> {
    if payload.len() >= LARGE_PAYLOAD || payload.len() > max {
        return None;
    }
    scan::check(payload, Budget::REQUEST).ok()?;
    let req: RequestIn<'_> = codec::decode_borrowed(payload).ok()?;
    scan::check_all(req.inputs.iter().map(|i| i.as_ref()), Budget::REQUEST).ok()?;
    Some(req)
}

/// [`parse`], off the runtime's threads for a large payload (walking and decoding it
/// takes a while).
async fn parse_owned(payload: Vec<u8>, max: usize) -> Parsed {
    if payload.len() < LARGE_PAYLOAD {
        return parse(&payload, max);
    }
    tokio::task::spawn_blocking(move || parse(&payload, max))
        .await
        .unwrap_or_else(|e| Parsed::Malformed(Malformed::unanswerable(format!("parser task: {e}"))))
}

/// Checks where the reply would go, runs the request and encodes its reply.
async fn serve(shared: &Shared, role: Role, from: Caller, req: RequestIn<'_>) -> Option<Pending> {
    let reply_to = if req.reply_to.is_empty() {
        req.id.to_string()
    } else {
        req.reply_to.to_string()
    };
    if !shared.may_reply_to(&reply_to) {
        tracing::warn!(request_id = %truncated(&req.id), reply_to = %truncated(&reply_to), "refusing to reply to a queue or an invalid key; request dropped");
        return None;
    }
    let span = tracing::info_span!(
        "request",
        request_id = %req.id,
        object = %req.object,
        method = %req.method,
    );
    let response = async move {
        if req.expired_at(SystemTime::now()) {
            tracing::warn!("deadline passed before the call started; not executing it");
            return protocol_error(
                &req.id,
                ErrorCode::Timeout,
                "deadline passed before execution",
            );
        }
        match role {
            Role::Status => status_reply(shared, req.id.into_owned()),
            Role::Worker(slot) => call(shared, slot, from, req).await,
        }
    }
    .instrument(span)
    .await;
    let sized = REPLY_FRAME
        + response.id.len()
        + response.output.data.len()
        + response.error.as_ref().map_or(0, String::len)
        + response
            .output
            .error
            .as_ref()
            .map_or(0, |e| e.message.len());
    match codec::encode_sized(&response, sized) {
        Ok(bytes) => Some(Pending { reply_to, bytes }),
        Err(e) => {
            tracing::error!(request_id = %response.id, error = %e, "cannot encode the reply");
            None
        }
    }
}

async fn call(shared: &Shared, slot: usize, from: Caller, req: RequestIn<'_>) -> Response {
    let RequestIn {
        id,
        inputs,
        object: object_id,
        method,
        deadline,
        ..
    } = req;
    let Some(object) = shared.object(&object_id) else {
        tracing::debug!("unknown object");
        let text = format!("unknown object '{}'", crate::echo(&object_id.to_string()));
        return protocol_error(&id, ErrorCode::UnknownObject, &text);
    };
    if from == Caller::ReadOnly && !object.reads().contains(&&*method) {
        tracing::warn!("a read-only caller asked for a method that is not a read; refused");
        let text = format!(
            "read-only caller: {} may not be called, only {}",
            crate::echo(&method),
            object.reads().join(", ")
        );
        return protocol_error(&id, ErrorCode::PermissionDenied, &text);
    }
    let slot = &shared.slots[slot];
    slot.set(Some(Action::new(&object, &method)));
    let deadline = deadline.map(crate::deadline::from_unix_ms);
    let outcome = AssertUnwindSafe(crate::deadline::scope(
        deadline,
        object.dispatch(&method, inputs),
    ))
    .catch_unwind()
    .await;
    slot.set(None);
    let result = match outcome {
        Ok(r) => r,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            tracing::error!(%message, "handler panicked");
            Err(DispatchError::Panic {
                object: object_id.to_string(),
                method: method.into_owned(),
                message,
            })
        }
    };
    match result {
        Ok(Reply::Value(data)) => response(id.into_owned(), data, None),
        Ok(Reply::Error(e)) => {
            tracing::debug!(code = %e.code, error = %e.message, "call error");
            let err = CallError {
                message: crate::error::bounded_message(e.message),
                code: Some(e.code.as_str().into()),
            };
            response(id.into_owned(), vec![NIL], Some(err))
        }
        Err(e) => {
            tracing::debug!(error = %e, "protocol error");
            protocol_error(&id, e.code(), &e.to_string())
        }
    }
}

fn status_reply(shared: &Shared, id: String) -> Response {
    match codec::encode(&shared.status()) {
        Ok(data) => response(id, data, None),
        Err(e) => protocol_error(&id, ErrorCode::Internal, &e.to_string()),
    }
}

fn response(id: String, data: Vec<u8>, error: Option<CallError>) -> Response {
    let data = if data.is_empty() { vec![NIL] } else { data };
    Response {
        id,
        output: Output {
            data: ByteBuf::from(data),
            error,
        },
        error: None,
        code: None,
    }
}

fn protocol_error(id: &str, code: ErrorCode, text: &str) -> Response {
    Response {
        id: id.to_string(),
        output: Output {
            data: ByteBuf::from(vec![NIL]),
            error: None,
        },
        error: Some(crate::error::bounded_message(text.to_string())),
        code: Some(code.as_str().into()),
    }
}

/// What a popped payload turned out to be.
pub(super) enum Parsed {
    Request(Box<Request>),
    /// A request whose `Inputs` are beyond the budget.
    BadInputs {
        req: Box<Request>,
        why: String,
    },
    Malformed(Malformed),
}

/// Checks the size, walks the structure within [`Budget::REQUEST`] (the request, then its
/// `Inputs`), then decodes. Synchronous: runs on the blocking pool for large payloads.
pub(super) fn parse(payload: &[u8], max: usize) -> Parsed {
    if payload.len() > max {
        let why = format!(
            "request of {} bytes exceeds the limit of {max} bytes",
            payload.len()
        );
        return Parsed::Malformed(Malformed::read(payload, why));
    }
    if let Err(e) = scan::check(payload, Budget::REQUEST) {
        return Parsed::Malformed(Malformed::read(payload, e.to_string()));
    }
    let req: Request = match codec::decode(payload) {
        Ok(r) => r,
        Err(e) => return Parsed::Malformed(Malformed::read(payload, e.to_string())),
    };
    if let Err(e) = scan::check_all(req.inputs.iter().map(|i| i.as_ref()), Budget::REQUEST) {
        return Parsed::BadInputs {
            req: Box::new(req),
            why: e.to_string(),
        };
    }
    Parsed::Request(Box::new(req))
}

/// A payload that is not a servable `Request`, and what could be read of it.
pub(super) struct Malformed {
    pub(super) id: Option<String>,
    pub(super) reply_to: Option<String>,
    /// It has `Output`: a reply, never answered.
    pub(super) is_reply: bool,
    pub(super) why: String,
}

impl Malformed {
    /// Reads `ID`, `ReplyTo` and whether there is an `Output` by a bounded walk, never by
    /// decoding the whole payload.
    fn read(payload: &[u8], why: String) -> Self {
        let fields = scan::top_level_fields(payload, &["ID", "ReplyTo", "Output"], MAX_REPLY_KEY);
        tracing::warn!(request_id = ?fields[0].text(), len = payload.len(), error = %why, "malformed request");
        Self {
            id: fields[0].text(),
            reply_to: fields[1].text(),
            is_reply: fields[2].present(),
            why,
        }
    }

    /// A request that decoded but whose `Inputs` are beyond the budget.
    pub(super) fn bad_inputs(req: &Request, why: &str) -> Self {
        Self {
            id: Some(req.id.clone()),
            reply_to: Some(req.reply_to.clone()),
            is_reply: false,
            why: format!("malformed inputs: {why}"),
        }
    }

    fn unanswerable(why: String) -> Self {
        tracing::error!(error = %why, "request dropped");
        Self {
            id: None,
            reply_to: None,
            is_reply: false,
            why,
        }
    }

    /// A `Decode` protocol error for the reply key, when there is an allowed one.
    fn answer(self, shared: &Shared) -> Option<Pending> {
        if self.is_reply {
            tracing::warn!("the payload is a reply; not answering it");
            return None;
        }
        let reply_to = self.reply_key().filter(|r| shared.may_reply_to(r))?;
        codec::encode(&self.response())
            .ok()
            .map(|bytes| Pending { reply_to, bytes })
    }

    /// Where the answer would go: `ReplyTo`, else the `ID` (not yet checked against the
    /// queues).
    pub(super) fn reply_key(&self) -> Option<String> {
        self.reply_to
            .clone()
            .filter(|r| !r.is_empty())
            .or_else(|| self.id.clone())
    }

    /// The `Decode` protocol error that answers it.
    pub(super) fn response(&self) -> Response {
        protocol_error(
            self.id.as_deref().unwrap_or(""),
            ErrorCode::Decode,
            &format!("malformed request: {}", self.why),
        )
    }
}

/// At most 128 characters of `s`, for logs.
fn truncated(s: &str) -> &str {
    match s.char_indices().nth(128) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
