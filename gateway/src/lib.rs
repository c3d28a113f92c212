//! imagebus-gateway: kraken-hpc ImageAPI's REST API (v0.1 and v0.2 paths, under
//! `/imageapi/v1`) served over the attach, mount and container modules through their
//! schema traits, so it runs in-process in imagebusd or against bus stubs alike.
//!
//! Rooms: [`config`] (listen address, TLS, limits), [`error`] (statuses and ImageAPI's
//! error body), [`model`] (ImageAPI's JSON objects), [`translate`] (ImageAPI definitions →
//! our specs, ids), [`render`] (our objects → ImageAPI's), [`ops`] (what each call does),
//! [`v1`] and [`v2`] (the handlers of each generation's paths), [`openapi`] (router and
//! generated document), [`extract`] (400s that name the field), [`log`] (request log and
//! time limit), [`tls`] (rustls), [`server`] (accept loop). See docs/imageapi.md.

pub mod config;
pub mod error;
pub mod extract;
pub mod log;
pub mod model;
pub mod openapi;
pub mod ops;
pub mod render;
pub mod server;
pub mod state;
pub mod tls;
pub mod translate;
pub mod v1;
pub mod v2;

#[cfg(test)]
mod tests;

pub use config::{GatewayConfig, Listen, TlsConfig};
pub use error::{ApiError, GatewayError};
pub use ops::Modules;
pub use server::{app, start};
