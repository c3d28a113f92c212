//! ImageAPI v0.1's paths (the tutorial's): `/attach/rbd`, `/mount/rbd`, `/mount/overlay`
//! with `/{id}`, and the container paths by id and by name with `/{state}`. The paths
//! v0.1 shares with v0.2 (`/container`, `/mount`) are served in [`crate::v2`].

pub mod attach;
pub mod container;
pub mod mount;
