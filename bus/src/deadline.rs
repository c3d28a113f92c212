//! The deadline of the call being served, carried through a request's task.
//!
//! The bus server sets it from the request's `Deadline` field (our extension; Go callers
//! send none) around the dispatch of each call, so the code that serves the call can
//! refuse to start work whose caller has already given up (the actor host does, see
//! `imagebus-host`), and the calls it makes to other modules inherit it: [`Client`]
//! bounds a call made inside a scope by the scope's deadline as well as its own timeout.
//!
//! [`Client`]: crate::Client

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

tokio::task_local! {
    static DEADLINE: Option<Instant>;
}

/// The deadline of the call this task serves, if it has one.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok().flatten()
}

/// Runs `fut` with no deadline, whatever the surrounding scope says: for clean-up that
/// must go on after the caller gave up (releasing what a failed command took). Calls made
/// in it are still bounded by their own timeouts.
pub async fn unbounded<F: Future>(fut: F) -> F::Output {
    DEADLINE.scope(None, fut).await
}

/// Runs `fut` with `deadline` as its [`current`] deadline (nothing changes for `None`,
/// and a later deadline never widens an earlier one already in force).
pub async fn scope<F: Future>(deadline: Option<Instant>, fut: F) -> F::Output {
    let effective = match (deadline, current()) {
        (Some(d), Some(outer)) => Some(d.min(outer)),
        (d, outer) => d.or(outer),
    };
    match effective {
        Some(d) => DEADLINE.scope(Some(d), fut).await,
        None => fut.await,
    }
}

/// The local `Instant` of a wall-clock deadline in Unix milliseconds (the wire form).
pub fn from_unix_ms(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let now = Instant::now();
    if deadline_ms >= now_ms {
        now + Duration::from_millis(deadline_ms - now_ms)
    } else {
        now.checked_sub(Duration::from_millis(now_ms - deadline_ms))
            .unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scope_sets_the_deadline_and_never_widens_it() {
        assert_eq!(current(), None);
        let near = Instant::now() + Duration::from_secs(1);
        let far = near + Duration::from_secs(10);
        scope(Some(near), async {
            assert_eq!(current(), Some(near));
            scope(Some(far), async { assert_eq!(current(), Some(near)) }).await;
            scope(None, async { assert_eq!(current(), Some(near)) }).await;
            unbounded(async { assert_eq!(current(), None) }).await;
        })
        .await;
        assert_eq!(current(), None);
    }

    #[test]
    fn unix_ms_maps_to_a_local_instant() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let d = from_unix_ms(now_ms + 5_000);
        let left = d.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_millis(4_000) && left <= Duration::from_millis(5_000));
        assert!(from_unix_ms(now_ms.saturating_sub(5_000)) <= Instant::now());
    }
}
