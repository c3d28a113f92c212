//! Fixtures for the integration tests and benchmarks: real redis-server instances
//! ([`redis`]), a one-node Ceph ([`ceph`]), test images and a busybox rootfs ([`image`],
//! [`rootfs`]), attach + mount stacks on real loop devices ([`mount_stack`]), a running
//! `imagebusd` with its CLI ([`daemon`]), and a TCP relay that can go silent ([`relay`]).
pub mod ceph;
pub mod daemon;
pub mod image;
pub mod mount_stack;
pub mod redis;
pub mod relay;
pub mod rootfs;
