//! The actor host, written once for every module.
//!
//! A module's state `S` (its *engine*: records, reference counts, ids) is owned by one
//! actix actor on a thread of its own. Nothing else touches it: callers reach it through a
//! [`Host<S>`] handle in three ways.
//!
//! - [`Host::read`]: a closure over `&S`, answered at once from the current state. The
//!   actor never awaits anything, so a read never waits for a mutation in flight.
//! - [`Host::apply`]: a closure over `&mut S`, one short synchronous *step*. Steps run one
//!   at a time, so each is atomic with respect to every other step and read.
//! - [`Host::mutate`]: a *job*: an async function that does the slow work (external
//!   commands, blocking kernel calls on the blocking pool, calls to peer modules, waits)
//!   outside the actor and changes the state only through steps. Jobs run concurrently:
//!   - each declares the [`Key`]s of the objects it works on; jobs sharing a key run one
//!     after the other, in arrival order;
//!   - at most `max_mutations` jobs run at once; the others wait in FIFO order;
//!   - a job whose caller's deadline ([`imagebus_bus::deadline`]) passes while it waits is
//!     answered [`HostError::Timeout`] and never started;
//!   - once started, a job runs to its end even if its caller gives up, so the state and
//!     the kernel are never left half-changed by a dropped caller.
//!
//! Shutdown (the stop token is cancelled): new jobs are refused with
//! [`HostError::Stopped`], jobs in flight get up to `shutdown_timeout` to finish, then the
//! actor stops; whatever a job left unfinished is what start-up reconciliation handles.
//!
//! A panic in a step or a job kills the actor: its caller gets [`HostError::Panicked`],
//! every later call [`HostError::Stopped`], and [`Spawned::task`] ends as a panic so the
//! supervisor restarts the module (which reconciles its state with the kernel).

mod access;
mod core;
mod gate;
mod keys;
#[cfg(test)]
mod tests;

pub use crate::access::StateAccess;
pub use crate::core::{start, Host, Spawned};
pub use crate::gate::{default_max_mutations, Limits};
pub use crate::keys::Key;

use std::time::Duration;

/// Why the host could not serve a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The actor is stopping or gone (the module answers `Unavailable`).
    #[error("the {0} actor is not running")]
    Stopped(&'static str),
    /// The caller's deadline passed while the job waited for its turn; it was not started.
    #[error("the deadline passed after {waited:?} waiting for a turn in the {actor} actor; the request was not started")]
    Timeout {
        /// Which actor.
        actor: &'static str,
        /// How long the job waited.
        waited: Duration,
    },
    /// A step or job panicked; the actor is restarting.
    #[error("the {0} actor failed while serving this request and is restarting")]
    Panicked(&'static str),
}
