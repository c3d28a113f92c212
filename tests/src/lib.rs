//! Fixtures for the integration tests and benchmarks: real redis-server instances
//! ([`redis`]), a one-node Ceph ([`ceph`]), test images and a busybox rootfs ([`image`],
//! [`rootfs`]), attach + mount stacks on real loop devices ([`mount_stack`]), a running
//! `imagebusd` with its CLI ([`daemon`]), a TCP relay that can go silent ([`relay`]), a
//! Ceph monitor that never answers ([`blackhole`]), a daemon node reached through the bus
//! stubs and compared with the kernel ([`bus_node`], [`kernel_probe`]), pieces of the
//! container benchmark's concurrency sections ([`bench_concurrency`]), and a node's
//! configuration passed to a crash-test child binary on its command line ([`node_args`]),
//! an `imagebusd --imageapi` node driven with the real `curl` ([`imageapi`]), the CPU
//! time a benchmark phase cost, from cgroup accounting ([`cpu_meter`]), and hand-made OCI
//! images, layouts and archives for the image store ([`oci_image`]), the creates crash
//! tests fire ([`crash_creates`]), the fault matrix ([`fault_matrix`]) and a cached
//! systemd root filesystem to boot real systemd from ([`systemd`]).
pub mod bench_concurrency;
pub mod blackhole;
pub mod bus_node;
pub mod ceph;
pub mod cli_node;
pub mod cpu_meter;
pub mod crash_creates;
pub mod daemon;
pub mod doc_text;
pub mod fault_matrix;
pub mod image;
pub mod imageapi;
pub mod kernel_probe;
pub mod mount_stack;
pub mod node_args;
pub mod oci_image;
pub mod redis;
pub mod relay;
pub mod rootfs;
pub mod systemd;
