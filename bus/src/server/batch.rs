//! A pulled batch on one task: its requests are handled concurrently, and the replies that
//! are ready together go to the replier in one hand-over.
//!
//! One task per batch rather than one per request: a batch of `k` quick calls costs one
//! spawn and one hand-over instead of `k` of each, and its replies reach the replier
//! together, so they leave in one pipeline. A slow call does not hold the others back: the
//! batch's calls are polled concurrently and every reply is handed over as soon as it is
//! ready. The calls of a batch share one thread, which suits the bus's handlers: they
//! decode, hand the work to an actor and wait (a large payload is parsed on the blocking
//! pool, see `worker::handle`).

use super::reply::Replies;
use super::worker::{self, Caller, Role, Shared};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use tokio::sync::mpsc;

/// One pulled request and the worker slot it holds until it is answered.
pub(super) struct Call {
    pub(super) role: Role,
    pub(super) from: Caller,
    pub(super) payload: Vec<u8>,
    pub(super) slot: SlotBack,
}

/// Gives a worker slot back when its call ends, however it ends.
pub(super) struct SlotBack {
    pub(super) slot: usize,
    pub(super) done: mpsc::UnboundedSender<usize>,
}

impl Drop for SlotBack {
    fn drop(&mut self) {
        // The puller is gone when this fails: nobody needs the slot any more.
        let _ = self.done.send(self.slot);
    }
}

/// Handles `calls` concurrently; hands the replies to `replies`, those that are ready
/// together in one hand-over. Returns when every call has ended.
pub(super) async fn run(shared: Arc<Shared>, replies: Replies, calls: Vec<Call>) {
    let shared = &shared;
    let mut running: FuturesUnordered<_> = calls
        .into_iter()
        .map(|call| {
            let Call {
                role,
                from,
                payload,
                slot,
            } = call;
            // A panic outside the handler's own guard (a handler's panic is answered,
            // code `Internal`) ends this call alone, never the rest of its batch; its
            // slot is given back as the future is dropped.
            AssertUnwindSafe(async move {
                let reply = worker::handle(shared, role, from, payload).await;
                drop(slot);
                reply
            })
            .catch_unwind()
        })
        .collect();
    let mut ready = Vec::new();
    std::future::poll_fn(|cx| loop {
        match running.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(reply))) => ready.extend(reply),
            Poll::Ready(Some(Err(_))) => {
                tracing::error!("a call panicked outside its handler; it goes unanswered");
            }
            Poll::Ready(None) => {
                replies.send_all(std::mem::take(&mut ready));
                return Poll::Ready(());
            }
            Poll::Pending => {
                replies.send_all(std::mem::take(&mut ready));
                return Poll::Pending;
            }
        }
    })
    .await
}
