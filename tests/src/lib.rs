//! Placeholder; filled in by its issue.
pub mod ceph;
pub mod daemon;
pub mod image;
pub mod mount_stack;
pub mod redis;
pub mod rootfs;
