//! TODO(bus helper): server (being written)
#![allow(missing_docs, missing_debug_implementations)]
pub struct Server;
pub struct ServerBuilder;
