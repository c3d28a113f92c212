//! Unit tests: templates and variables (`tests/render.rs`), the host side and the zinit
//! client (`tests/host.rs`).

mod host;
mod render;
