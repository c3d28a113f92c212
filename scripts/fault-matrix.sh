#!/usr/bin/env bash
# The full fault matrix (issue 10; docs/security.md, "Fault matrix"): every row, the Ceph
# row included, on real parts, 3 rounds each unless told otherwise. Builds the binaries,
# then runs `fault-matrix`, which starts the one-node Ceph test cluster with
# scripts/ceph-micro.sh (through tests/src/ceph.rs) and tears it down when it exits.
# Prints the table fault | rounds | lost | duplicated | leaked | notes; exits non-zero if
# any cell is non-zero or a row could not run (a missing Ceph is a failure, never a skip).
#
#   scripts/fault-matrix.sh [--rounds N] [--rows kill-creates,disk-full,...]
#
# Root; needs runc, redis-server, busybox-static, squashfs-tools, ceph-mon, ceph-osd,
# ceph-common, rbd-fuse (scripts/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

missing=()
for tool in ceph-mon ceph-osd ceph rbd-fuse; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "fault-matrix: CEPH IS NOT AVAILABLE (missing: ${missing[*]});" \
        "the kill-rbd-attach row will fail. Install: scripts/setup.sh" >&2
fi

cargo build --workspace --bins --quiet
bin_dir="${CARGO_TARGET_DIR:-target}/debug"
IMAGEBUS_BIN_DIR="$(cd "$bin_dir" && pwd)" exec "$bin_dir/fault-matrix" "$@"
