//! Event subscriptions: a background task per subscription owns a pub/sub connection,
//! resubscribes after Redis restarts, and is aborted when the [`Subscription`] is dropped.

use crate::codec;
use crate::conn::{Backoff, Outage};
use crate::error::RemoteError;
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

/// Events buffered between the pub/sub connection and the consumer.
const BUFFER: usize = 256;
/// Bound on connecting and subscribing.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A stream of events of type `T`. Dropping it unsubscribes at once: its task is aborted
/// and its Redis connection closed.
pub struct Subscription<T> {
    rx: mpsc::Receiver<Vec<u8>>,
    subscribed: watch::Receiver<bool>,
    task: Option<AbortHandle>,
    channel: String,
    _item: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl<T> Drop for Subscription<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl<T> Subscription<T> {
    pub(crate) fn start(client: redis::Client, channel: String) -> Self {
        let (tx, rx) = mpsc::channel(BUFFER);
        let (ready_tx, subscribed) = watch::channel(false);
        let task = match tokio::runtime::Handle::try_current() {
            Ok(rt) => Some(
                rt.spawn(pump(client, channel.clone(), tx, ready_tx))
                    .abort_handle(),
            ),
            Err(_) => {
                tracing::error!(%channel, "subscribe called outside a tokio runtime; the stream ends at once");
                None
            }
        };
        Self {
            rx,
            subscribed,
            task,
            channel,
            _item: PhantomData,
        }
    }

    /// The pub/sub channel, `<module>.<object>@<version>.<event>`.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Waits until the subscription is active in Redis (events published before that are
    /// not seen). Errors with `Unavailable` when the subscription task has ended.
    pub async fn ready(&mut self) -> Result<(), RemoteError> {
        self.subscribed
            .wait_for(|s| *s)
            .await
            .map(|_| ())
            .map_err(|_| {
                RemoteError::unavailable(format!("subscription to {} ended", self.channel))
            })
    }

    /// `true` while subscribed (false while reconnecting after a Redis restart).
    pub fn is_subscribed(&self) -> bool {
        *self.subscribed.borrow()
    }
}

impl<T: DeserializeOwned> Stream for Subscription<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(bytes)) => match codec::decode::<T>(&bytes) {
                    Ok(v) => return Poll::Ready(Some(v)),
                    Err(e) => {
                        tracing::warn!(channel = %self.channel, error = %e, "skipping an undecodable event");
                    }
                },
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T> Unpin for Subscription<T> {}

/// Connects, subscribes and forwards messages until the receiver is gone; reconnects with
/// backoff when the connection drops.
async fn pump(
    client: redis::Client,
    channel: String,
    tx: mpsc::Sender<Vec<u8>>,
    ready: watch::Sender<bool>,
) {
    let outage = Outage::default();
    let mut backoff = Backoff::new(Duration::from_secs(1));
    loop {
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match connected {
            Ok(Ok(mut pubsub)) => {
                outage.recovered("subscription");
                backoff.reset();
                ready.send_replace(true);
                tracing::debug!(%channel, "subscribed");
                let mut messages = pubsub.on_message();
                loop {
                    tokio::select! {
                        msg = messages.next() => match msg {
                            Some(m) => {
                                if tx.send(m.get_payload_bytes().to_vec()).await.is_err() {
                                    return;
                                }
                            }
                            None => break,
                        },
                        _ = tx.closed() => return,
                    }
                }
                ready.send_replace(false);
                tracing::warn!(%channel, "pub/sub connection lost; resubscribing");
            }
            Ok(Err(e)) => outage.failed("subscription", &e),
            Err(_) => outage.failed("subscription", &"connect timed out"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.step()) => {}
            _ = tx.closed() => return,
        }
    }
}
