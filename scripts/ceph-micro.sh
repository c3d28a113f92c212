#!/usr/bin/env bash
# A one-node Ceph cluster for tests: one mon + one memstore OSD, cephx on, bound to
# 127.0.0.1 only, no mgr. Everything lives in $CEPH_MICRO_DIR (mode 0700).
#
#   scripts/ceph-micro.sh up              start the cluster (idempotent; rebuilds a stale one)
#   scripts/ceph-micro.sh fixture         pool "rbd" + users imagebus-ro / imagebus-rw (idempotent)
#   scripts/ceph-micro.sh import F IMG    import file F as rbd/IMG (layering only; replaces IMG)
#   scripts/ceph-micro.sh env             print CEPH_MICRO_* variables (monitors, users, keys)
#   scripts/ceph-micro.sh status          exit 0 when up, 1 when not
#   scripts/ceph-micro.sh down            stop the daemons and remove the directory (idempotent)
#
# Environment: CEPH_MICRO_DIR (default /tmp/imagebus-ceph), CEPH_MICRO_MON_PORT (v1, 16789),
# CEPH_MICRO_MON_V2_PORT (13300), CEPH_MICRO_OSD_PORT_MIN/MAX (16800/16899).
# Needs: ceph-mon ceph-osd ceph-common (and rbd-fuse for the tests' userspace attach).
# See docs/attach.md (the test cluster: one mon and one memstore OSD on loopback, cephx).
set -Eeuo pipefail

DIR=${CEPH_MICRO_DIR:-/tmp/imagebus-ceph}
V1=${CEPH_MICRO_MON_PORT:-16789}
V2=${CEPH_MICRO_MON_V2_PORT:-13300}
OSD_MIN=${CEPH_MICRO_OSD_PORT_MIN:-16800}
OSD_MAX=${CEPH_MICRO_OSD_PORT_MAX:-16899}
CONF=$DIR/ceph.conf
POOL=rbd
RO_USER=imagebus-ro
RW_USER=imagebus-rw

log() { echo "ceph-micro: $*" >&2; }

# What the daemons said, for an error message: the start logs whole, the last lines of the
# daemon logs. Keys never appear in these logs.
show_logs() {
    [ -d "$DIR/log" ] || return 0
    local f
    for f in "$DIR"/log/*.start.log; do
        [ -s "$f" ] && { echo "--- $f"; cat "$f"; }
    done
    for f in "$DIR"/log/mon.a.log "$DIR"/log/osd.0.log; do
        [ -s "$f" ] && { echo "--- last lines of $f"; grep -E ' -1 |error|fail' "$f" | tail -n 15; }
    done
    return 0
} >&2

die() { log "$*"; show_logs; exit 1; }

# Any command that fails under `set -e` says which it was and what the daemons logged, so a
# failing start is never silent (the daemons' own stderr goes to $DIR/log).
on_err() {
    local rc=$? line=$1 cmd=$2
    log "failed (exit $rc) at line $line: $cmd"
    show_logs
    exit "$rc"
}
trap 'on_err "$LINENO" "$BASH_COMMAND"' ERR

need() {
    local missing=()
    for b in ceph-mon ceph-osd ceph ceph-authtool monmaptool rbd rados uuidgen; do
        command -v "$b" >/dev/null || missing+=("$b")
    done
    [ ${#missing[@]} -eq 0 ] || die "missing ${missing[*]}; install: apt-get install -y --no-install-recommends ceph-mon ceph-osd ceph-common rbd-fuse"
}

ceph_() { ceph -c "$CONF" --connect-timeout 10 "$@"; }

# Alive = /proc/PID/stat exists and its state is not Z/X (init may reap orphans late), and
# /proc/PID/comm is the expected program.
alive() {
    local pid=$1 comm=$2 stat state
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    state=$(echo "${stat##*) }" | cut -d' ' -f1)
    [ "$state" != Z ] && [ "$state" != X ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]
}

pid_of() { cat "$DIR/run/$1.pid" 2>/dev/null || true; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local secs=$1 what=$2; shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || die "timed out after ${secs}s waiting for $what (logs in $DIR/log)"
        sleep 0.1
    done
}

is_up() {
    [ -f "$CONF" ] && alive "$(pid_of mon.a)" ceph-mon && alive "$(pid_of osd.0)" ceph-osd \
        && ceph_ osd dump 2>/dev/null | grep -q '^osd.0 up'
}

stop_daemon() { # stop_daemon NAME COMM
    local pid; pid=$(pid_of "$1")
    alive "$pid" "$2" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while alive "$pid" "$2"; do
        if [ $SECONDS -ge $deadline ]; then kill -KILL "$pid" 2>/dev/null || true; fi
        sleep 0.05
    done
}

down() {
    if [ ! -d "$DIR" ]; then log "nothing to tear down"; return 0; fi
    stop_daemon osd.0 ceph-osd
    stop_daemon mon.a ceph-mon
    rm -rf "$DIR"
    log "down"
}

write_conf() {
    cat >"$CONF" <<CONF
[global]
fsid = $1
mon_initial_members = a
mon_host = [v2:127.0.0.1:$V2,v1:127.0.0.1:$V1]
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv6 = false
ms_bind_port_min = $OSD_MIN
ms_bind_port_max = $OSD_MAX
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
pid_file = $DIR/run/\$name.pid
run_dir = $DIR/run
admin_socket = $DIR/run/\$name.asok
log_file = $DIR/log/\$name.log
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_data_avail_crit = 0
mon_warn_on_pool_no_redundancy = false
# The OSD is placed in CRUSH by this script, never by the host name: a machine whose name is
# not a valid CRUSH name ("(none)" on a VM nobody named) would otherwise stop osd.0 at start.
osd_crush_update_on_start = false
crush_location = root=default host=localhost

[mon]
mon_data = $DIR/mon
keyring = $DIR/mon/keyring

[osd]
osd_data = $DIR/osd
keyring = $DIR/keys/osd.0.keyring
osd_objectstore = memstore
memstore_device_bytes = 1073741824

[client]
keyring = $DIR/ceph.\$name.keyring
CONF
}

up() {
    need
    if is_up; then log "already up"; return 0; fi
    if [ -d "$DIR" ]; then log "stale cluster in $DIR, rebuilding"; down; fi
    mkdir -p "$DIR"/{mon,osd,run,log,keys}
    chmod 0700 "$DIR"
    local fsid; fsid=$(uuidgen)
    write_conf "$fsid"
    local seed=$DIR/keys/seed.keyring
    ceph-authtool --create-keyring "$seed" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-authtool --create-keyring "$DIR/ceph.client.admin.keyring" --gen-key -n client.admin \
        --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
    ceph-authtool --create-keyring "$DIR/keys/osd.0.keyring" --gen-key -n osd.0 \
        --cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null
    ceph-authtool "$seed" --import-keyring "$DIR/ceph.client.admin.keyring" >/dev/null
    ceph-authtool "$seed" --import-keyring "$DIR/keys/osd.0.keyring" >/dev/null
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$V2,v1:127.0.0.1:$V1]" \
        "$DIR/keys/monmap" >/dev/null
    ceph-mon -c "$CONF" -i a --mkfs --monmap "$DIR/keys/monmap" --keyring "$seed"
    ceph-mon -c "$CONF" -i a 2>>"$DIR/log/mon.a.start.log"
    wait_for 30 "the monitor" ceph_ mon stat
    local uuid; uuid=$(uuidgen)
    local id; id=$(ceph_ osd create "$uuid")
    [ "$id" = 0 ] || die "expected osd id 0, got $id"
    ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$uuid" >/dev/null 2>&1 \
        || die "ceph-osd --mkfs failed (see $DIR/log/osd.0.log)"
    local out
    out=$(ceph_ osd crush add osd.0 1 root=default host=localhost 2>&1) \
        || die "ceph osd crush add failed: $out"
    ceph-osd -c "$CONF" -i 0 2>>"$DIR/log/osd.0.start.log"
    wait_for 60 "osd.0 up" sh -c "ceph -c '$CONF' --connect-timeout 5 osd dump | grep -q '^osd.0 up'"
    log "up (mon 127.0.0.1:$V1, dir $DIR)"
}

fixture() {
    is_up || die "cluster is not up (run: $0 up)"
    if ! ceph_ osd pool ls | grep -qx "$POOL"; then
        ceph_ osd pool create "$POOL" 8 8 >/dev/null 2>&1
        rbd -c "$CONF" pool init "$POOL"
    fi
    # Without a mgr there are no PG states to wait on: probe with a real write.
    echo probe >"$DIR/probe"
    wait_for 60 "a writable pool" timeout 10 rados -c "$CONF" -p "$POOL" put probe "$DIR/probe"
    ceph_ auth get-or-create "client.$RO_USER" mon 'profile rbd' \
        osd "profile rbd-read-only pool=$POOL" >/dev/null
    ceph_ auth get-or-create "client.$RW_USER" mon 'profile rbd' osd "profile rbd pool=$POOL" >/dev/null
    log "fixture ready (pool $POOL, users $RO_USER $RW_USER)"
}

import() {
    local file=${1:?usage: import FILE IMAGE} image=${2:?usage: import FILE IMAGE}
    is_up || die "cluster is not up (run: $0 up)"
    rbd -c "$CONF" rm "$POOL/$image" >/dev/null 2>&1 || true
    rbd -c "$CONF" import --no-progress --image-feature layering "$file" "$POOL/$image" >/dev/null
    log "imported $file as $POOL/$image"
}

print_env() {
    is_up || die "cluster is not up (run: $0 up)"
    cat <<ENV
CEPH_MICRO_DIR=$DIR
CEPH_MICRO_CONF=$CONF
CEPH_MICRO_MONITORS=127.0.0.1:$V1
CEPH_MICRO_POOL=$POOL
CEPH_MICRO_RO_USER=$RO_USER
CEPH_MICRO_RO_SECRET=$(ceph_ auth get-key "client.$RO_USER")
CEPH_MICRO_RW_USER=$RW_USER
CEPH_MICRO_RW_SECRET=$(ceph_ auth get-key "client.$RW_USER")
ENV
}

case "${1:-}" in
    up) up ;;
    fixture) fixture ;;
    import) shift; import "$@" ;;
    env) print_env ;;
    status) if is_up; then echo up; else echo down; exit 1; fi ;;
    down) down ;;
    *) sed -n '2,14p' "$0"; exit 2 ;;
esac
