#!/usr/bin/env bash
# Runs an imagebus node on this machine the way zinit/ would (redis first, then imagebusd,
# ready when its status object answers), without needing zinit.
#
#   scripts/node.sh up      install what is missing, build (release), start redis and
#                           imagebusd (attach, image, mount, container, syscontainer),
#                           run a demo container from a busybox squashfs (loop ->
#                           squashfs -> overlay, nested in one call), and print how to
#                           look at it
#   scripts/node.sh down    remove the demo container, stop imagebusd (SIGTERM, graceful)
#                           and the redis it started
#   scripts/node.sh status  what is running
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

STATE=/run/imagebus-node          # pid files of this script
DEMO=/var/lib/imagebus-demo       # the demo image
LOGS=/var/log/imagebus
SOCK=/var/run/redis.sock
BROKER="unix://$SOCK"
BIN="$ROOT/target/release"
IMAGEBUS=("$BIN/imagebus" --broker "$BROKER")

redis_up() { redis-cli -s "$SOCK" ping >/dev/null 2>&1; }
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() { # wait_for SECONDS DESCRIPTION CMD...
    local secs="$1" what="$2"; shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "node.sh: $what did not come up within ${secs}s" >&2
            return 1
        fi
        sleep 0.2
    done
}

up() {
    scripts/setup.sh
    mkdir -p "$STATE" "$LOGS"
    if redis_up; then
        echo "node.sh: redis already answers on $SOCK"
    else
        redis-server --port 0 --unixsocket "$SOCK" --save "" --appendonly no \
            --daemonize yes --pidfile "$STATE/redis.pid" --logfile "$LOGS/redis.log"
        wait_for 10 "redis" redis_up
        echo "node.sh: redis up on $SOCK"
    fi
    if pid_alive "$STATE/imagebusd.pid"; then
        echo "node.sh: imagebusd already running (pid $(cat "$STATE/imagebusd.pid"))"
    else
        nohup "$BIN/imagebusd" --broker "$BROKER" >>"$LOGS/imagebusd.log" 2>&1 </dev/null &
        echo $! >"$STATE/imagebusd.pid"
        wait_for 60 "imagebusd" "${IMAGEBUS[@]}" --timeout 1s status container
        echo "node.sh: imagebusd up (pid $(cat "$STATE/imagebusd.pid"))"
    fi
    demo_image
    if "${IMAGEBUS[@]}" inspect demo >/dev/null 2>&1; then
        echo "node.sh: demo container exists"
        "${IMAGEBUS[@]}" start demo >/dev/null
    else
        "${IMAGEBUS[@]}" run --name demo --hostname demo --image "$DEMO/busybox.sqsh" -- \
            sh -c 'echo "hello from the imagebus demo container ($(hostname))"; trap "exit 0" TERM; while :; do sleep 1; done' >/dev/null
        echo "node.sh: demo container started"
    fi
    echo
    "${IMAGEBUS[@]}" ping
    "${IMAGEBUS[@]}" ps
    cat <<MSG

The node is up, with a demo container running busybox from $DEMO/busybox.sqsh
(loop device -> squashfs mount -> overlay, created inline by one 'imagebus run').
Look at it with:
  export PATH=$BIN:\$PATH IMAGEBUS_BROKER=$BROKER
  imagebus ps                                   # containers
  imagebus logs demo                            # its output (-f to follow)
  imagebus exec demo -- ps                      # a process inside it
  imagebus inspect demo                         # everything about it, as JSON
  imagebus mount list; imagebus attach list     # the overlay, the squashfs, the loop device
  imagebus events                               # state changes as they happen (Ctrl-C)
  imagebus status container                     # the module's objects and workers
  imagebus call imagebus system@1 Modules       # any method, JSON in and out
  tail -f $LOGS/imagebusd.log
Stop it with: scripts/node.sh down
MSG
}

# Builds the demo image once: busybox-static and its applets, packed with mksquashfs.
demo_image() {
    [ -f "$DEMO/busybox.sqsh" ] && return 0
    local root="$DEMO/rootfs"
    rm -rf "$root"
    mkdir -p "$root"/{bin,etc,proc,sys,dev,tmp,root,run}
    cp /bin/busybox "$root/bin/busybox"
    for applet in sh ls cat echo sleep true id hostname ps mount kill env grep mkdir uname top; do
        ln -sf busybox "$root/bin/$applet"
    done
    echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
    mksquashfs "$root" "$DEMO/busybox.sqsh.tmp" -noappend -quiet -no-progress -all-root
    mv "$DEMO/busybox.sqsh.tmp" "$DEMO/busybox.sqsh"
    rm -rf "$root"
    echo "node.sh: built $DEMO/busybox.sqsh"
}

down() {
    if pid_alive "$STATE/imagebusd.pid"; then
        # Containers outlive the daemon by design; the demo goes with the node.
        "${IMAGEBUS[@]}" --timeout 30s rm --force demo >/dev/null 2>&1 && echo "node.sh: demo container removed"
        local pid; pid="$(cat "$STATE/imagebusd.pid")"
        kill -TERM "$pid"
        wait_for 30 "imagebusd shutdown" sh -c "! kill -0 $pid" || kill -KILL "$pid"
        echo "node.sh: imagebusd stopped"
    fi
    rm -f "$STATE/imagebusd.pid"
    if pid_alive "$STATE/redis.pid"; then
        redis-cli -s "$SOCK" shutdown nosave >/dev/null 2>&1 || kill -TERM "$(cat "$STATE/redis.pid")"
        echo "node.sh: redis stopped"
    fi
    rm -f "$STATE/redis.pid"
}

status() {
    if pid_alive "$STATE/imagebusd.pid"; then echo "imagebusd: running (pid $(cat "$STATE/imagebusd.pid"))"; else echo "imagebusd: stopped"; fi
    if redis_up; then echo "redis: answers on $SOCK"; else echo "redis: not answering on $SOCK"; fi
    if pid_alive "$STATE/imagebusd.pid"; then "${IMAGEBUS[@]}" ps; fi
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
esac
