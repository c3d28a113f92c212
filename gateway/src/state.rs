//! The state every handler gets.

use crate::ops::Modules;

/// Shared by all handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The modules the gateway calls.
    pub modules: Modules,
}
