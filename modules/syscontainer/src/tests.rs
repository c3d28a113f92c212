//! Unit tests: templates, variables and units (`tests/render.rs`), the host side
//! (`tests/host.rs`), the zinit client against socket peers of both zinit protocols
//! (`tests/zinit.rs`) and the systemctl command lines (`tests/systemd.rs`).

mod host;
mod render;
mod systemd;
mod zinit;
