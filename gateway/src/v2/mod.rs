//! ImageAPI v0.2's paths: `GET`/`POST`/`DELETE` on `/attach`, `/mount` and `/container`
//! with query arguments, and `PATCH /container?state=`. v0.1's `GET`/`POST /container`
//! and `GET`/`POST /mount` are the same calls.

pub mod attach;
pub mod container;
pub mod mount;
