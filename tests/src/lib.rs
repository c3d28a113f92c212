//! Placeholder; filled in by its issue.
pub mod redis;
pub mod rootfs;
