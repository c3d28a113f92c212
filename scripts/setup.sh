#!/usr/bin/env bash
# Prepares a Debian 12 machine (as root) to build, run and test imagebus. Idempotent:
# installs only the packages that are missing (one `apt-get update` first, only then), then
# builds the workspace's binaries in release mode.
#
#   scripts/setup.sh                  packages + `cargo build --release --workspace --bins`
#   scripts/setup.sh --packages-only  packages only (scripts/test.sh builds what it tests)
set -euo pipefail
cd "$(dirname "$0")/.."

# One package per line, so that a module can add what it needs with a one-line edit.
PACKAGES=(
    redis-server      # the bus (tests start private instances)
    runc              # container runtime
    crun              # alternative container runtime (imagebusd --runtime crun)
    busybox-static    # demo and test rootfs
    squashfs-tools    # mksquashfs for images
    erofs-utils       # mkfs.erofs for images
    e2fsprogs         # mkfs.ext4 for images
    xfsprogs          # mkfs.xfs for mount tests
    iproute2          # ip netns
    util-linux        # losetup, mount, nsenter, unshare
    procps            # ps, pgrep for tests
    psmisc            # fuser
    kmod              # modprobe loop/overlay/rbd
    uuid-runtime      # uuidgen
    ceph-mon          # one-node test cluster
    ceph-osd
    ceph-common       # rbd, ceph CLIs
    rbd-fuse          # userspace RBD fallback
    ca-certificates
    curl              # ImageAPI gateway tests drive it with curl
    openssl           # certificates for the gateway's TLS tests
    mmdebstrap        # scripts/systemd-rootfs.sh: a Debian rootfs with systemd for the real-systemd tests
    pkg-config
    build-essential   # cc/linker for cargo
    g++               # libFuzzer, which the fuzz targets (fuzz/, scripts/fuzz.sh) build from C++
)

packages_only=false
for arg in "$@"; do
    case "$arg" in
        --packages-only) packages_only=true ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: run as root (it installs packages)" >&2
    exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "setup.sh: all ${#PACKAGES[@]} packages present"
fi

# Debian's redis-server package starts a system instance; imagebus does not use it (the node
# runs its own on /var/run/redis.sock), so leave it alone but do not depend on it.

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup.sh: cargo not found; install a stable Rust toolchain >= 1.85 (rustup) first" >&2
    exit 1
fi

if [ "$packages_only" = false ]; then
    echo "setup.sh: building release binaries"
    cargo build --release --workspace --bins
    echo "setup.sh: built target/release/imagebusd and target/release/imagebus"
fi
