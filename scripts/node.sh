#!/usr/bin/env bash
# Runs an imagebus node on this machine the way zinit/ would (redis first, then imagebusd,
# ready when its status object answers), without needing zinit.
#
#   scripts/node.sh up      install what is missing, build (release), start redis and
#                           imagebusd, check them through the bus, print how to look around
#   scripts/node.sh down    stop imagebusd (SIGTERM, graceful) and the redis it started
#   scripts/node.sh status  what is running
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

STATE=/run/imagebus-node          # pid files of this script
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
        wait_for 30 "imagebusd" "${IMAGEBUS[@]}" --timeout 1s status imagebus
        echo "node.sh: imagebusd up (pid $(cat "$STATE/imagebusd.pid"))"
    fi
    echo
    "${IMAGEBUS[@]}" status imagebus
    "${IMAGEBUS[@]}" ping
    "${IMAGEBUS[@]}" call imagebus system@1 Modules
    cat <<MSG

The node is up. Look at it with:
  export PATH=$BIN:\$PATH IMAGEBUS_BROKER=$BROKER
  imagebus status imagebus                       # objects and workers of a module
  imagebus call imagebus system@1 Version        # any method, JSON in and out
  imagebus watch imagebus system@1 Heartbeat     # events, one JSON line each (Ctrl-C)
  tail -f $LOGS/imagebusd.log
Stop it with: scripts/node.sh down
MSG
}

down() {
    if pid_alive "$STATE/imagebusd.pid"; then
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
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) sed -n '2,9p' "$0"; exit 2 ;;
esac
