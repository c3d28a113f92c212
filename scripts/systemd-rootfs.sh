#!/usr/bin/env bash
# Builds, once per machine, a Debian 12 (bookworm) root filesystem with systemd, packed as
# a squashfs, for the tests that boot real systemd in a container; prints its path.
#
#   scripts/systemd-rootfs.sh            print the image path, building it when missing
#   scripts/systemd-rootfs.sh --rebuild  build it again
#
# The image is /var/cache/imagebus/systemd-bookworm.sqsh (IMAGEBUS_CACHE_DIR overrides the
# directory). It is made with mmdebstrap (minbase + systemd + dbus) from Debian's packages,
# so it needs the network the first time; later runs only print the path. Concurrent
# callers wait for one build (flock). Needs root, mmdebstrap and squashfs-tools.
set -euo pipefail

cache=${IMAGEBUS_CACHE_DIR:-/var/cache/imagebus}
out="$cache/systemd-bookworm.sqsh"
mirror=${IMAGEBUS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
rebuild=false
for arg in "$@"; do
    case "$arg" in
        --rebuild) rebuild=true ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "systemd-rootfs.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

mkdir -p "$cache"
exec 9>"$cache/.systemd-rootfs.lock"
flock 9
if [ -f "$out" ] && [ "$rebuild" = false ]; then
    echo "$out"
    exit 0
fi
for tool in mmdebstrap mksquashfs; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "systemd-rootfs.sh: $tool is missing: apt-get install mmdebstrap squashfs-tools" >&2
        exit 1
    fi
done

work=$(mktemp -d "$cache/systemd-rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "systemd-rootfs.sh: building $out (mmdebstrap bookworm, a few minutes)" >&2
# The customize hook empties machine-id (systemd makes one at boot), masks what cannot
# work in a container without devices or a network of its own, and drops apt's caches.
mmdebstrap --variant=minbase --mode=root --format=directory \
    --include=systemd,systemd-sysv,dbus \
    --customize-hook='truncate -s 0 "$1/etc/machine-id"' \
    --customize-hook='chroot "$1" systemctl mask getty@tty1.service serial-getty@.service systemd-networkd-wait-online.service' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
    bookworm "$work/root" "deb $mirror bookworm main" >&2
mksquashfs "$work/root" "$work/image.sqsh" -noappend -quiet >&2
mv "$work/image.sqsh" "$out"
echo "$out"
