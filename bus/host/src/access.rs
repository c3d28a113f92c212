//! [`StateAccess`]: how a job reaches its module's state — through the running actor's
//! [`Host`], or, during start-up reconciliation before the host runs, a state of its own
//! behind a mutex. Engine code written against it runs unchanged in both.

use crate::{Host, HostError};
use std::sync::{Arc, Mutex};

/// The state a job's steps run on.
pub enum StateAccess<S: Unpin + Send + 'static> {
    /// The running actor: each step is an [`Host::apply`].
    Host(Host<S>),
    /// Start-up reconciliation's own state (no actor yet): each step locks it.
    Local(Arc<Mutex<S>>),
}

impl<S: Unpin + Send + 'static> Clone for StateAccess<S> {
    fn clone(&self) -> Self {
        match self {
            StateAccess::Host(h) => StateAccess::Host(h.clone()),
            StateAccess::Local(s) => StateAccess::Local(s.clone()),
        }
    }
}

impl<S: Unpin + Send + 'static> std::fmt::Debug for StateAccess<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateAccess::Host(h) => f.debug_tuple("Host").field(h).finish(),
            StateAccess::Local(_) => f.write_str("Local"),
        }
    }
}

impl<S: Unpin + Send + 'static> StateAccess<S> {
    /// Runs one short synchronous step on the state (atomic with respect to every other
    /// step and read); a poisoned local lock is taken over, as the state is still whole
    /// between steps.
    pub async fn apply<R, F>(&self, f: F) -> Result<R, HostError>
    where
        R: Send + 'static,
        F: FnOnce(&mut S) -> R + Send + 'static,
    {
        match self {
            StateAccess::Host(host) => host.apply(f).await,
            StateAccess::Local(state) => {
                let mut guard = state.lock().unwrap_or_else(|p| p.into_inner());
                Ok(f(&mut guard))
            }
        }
    }
}
