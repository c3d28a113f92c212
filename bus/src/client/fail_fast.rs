//! The presence check of [`Client::with_fail_fast`] (see [`crate::presence`]).

use super::{Client, WITHDRAW_TIMEOUT};
use crate::error::RemoteError;
use std::time::Instant;

impl Client {
    /// [`Self::round_trip`], with the presence check of [`Self::with_fail_fast`].
    pub(super) async fn round_trip_checked(
        &self,
        module: &str,
        queue: &str,
        id: &str,
        payload: &[u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, RemoteError> {
        let Some(known) = &self.fail_fast else {
            return self.round_trip(queue, id, payload, deadline).await;
        };
        let call = self.round_trip(queue, id, payload, deadline);
        tokio::pin!(call);
        tokio::select! {
            r = &mut call => return r,
            () = tokio::time::sleep(crate::presence::GRACE) => {}
        }
        let known = known.iter().any(|m| m == module);
        if self.absent(module, known).await {
            // Take the request back; if a server took it meanwhile, wait for its reply.
            if self.take_back(queue, payload).await {
                return Err(crate::presence::not_served(module));
            }
        }
        call.await
    }

    /// Whether `module` is known to have no server (errors count as "unsure": no).
    async fn absent(&self, module: &str, known: bool) -> bool {
        let deadline = Instant::now() + WITHDRAW_TIMEOUT;
        let Ok(mut c) = self.inner.checkout(deadline).await else {
            return false;
        };
        match tokio::time::timeout(
            WITHDRAW_TIMEOUT,
            crate::presence::absent(&mut c.conn, module, known),
        )
        .await
        {
            Ok(Ok(absent)) => {
                self.inner.checkin(c);
                absent
            }
            _ => false,
        }
    }

    /// Removes a queued request; true when it was still queued (no server has it).
    async fn take_back(&self, queue: &str, payload: &[u8]) -> bool {
        let deadline = Instant::now() + WITHDRAW_TIMEOUT;
        let Ok(mut c) = self.inner.checkout(deadline).await else {
            return false;
        };
        let mut lrem = redis::cmd("LREM");
        lrem.arg(queue).arg(1).arg(payload);
        match tokio::time::timeout(WITHDRAW_TIMEOUT, lrem.query_async::<i64>(&mut c.conn)).await {
            Ok(Ok(removed)) => {
                self.inner.checkin(c);
                removed > 0
            }
            _ => false,
        }
    }
}
