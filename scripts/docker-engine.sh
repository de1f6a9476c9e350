#!/usr/bin/env bash
# Make a Docker engine available, or stop the one this harness started.
#   docker-engine.sh start   use a running engine; else install docker.io and start dockerd (root, Debian/Ubuntu)
#   docker-engine.sh stop    stop dockerd only if `start` launched it
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

PIDFILE="$STACKOPS_STATE/dockerd.pid"

engine_up() { docker info >/dev/null 2>&1; }

start() {
  if engine_up; then
    log "docker engine already running: using it"
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    die "no Docker engine answers and this is not root: start Docker (or add your user to the docker group) and re-run"
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "no Docker engine and no apt-get to install docker.io: install Docker and re-run"
    log "installing Debian's docker.io"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq docker.io >/dev/null || die "apt-get install docker.io failed: see apt output above"
  fi
  command -v docker >/dev/null 2>&1 || die "docker CLI missing after installing docker.io"
  log "starting dockerd in the background (log: $STACKOPS_STATE/dockerd.log)"
  nohup dockerd >"$STACKOPS_STATE/dockerd.log" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 60); do
    engine_up && { log "dockerd is up (pid $(cat "$PIDFILE"))"; return 0; }
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
    sleep 1
  done
  tail -n 20 "$STACKOPS_STATE/dockerd.log" >&2 || true
  die "dockerd did not come up within 60 s: see $STACKOPS_STATE/dockerd.log"
}

stop() {
  [ -f "$PIDFILE" ] || { log "dockerd was not started by this harness: leaving it alone"; return 0; }
  local pid; pid=$(cat "$PIDFILE")
  # Only a dockerd we launched: the pid must still be a dockerd process.
  if kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
    log "stopping dockerd (pid $pid) started by this harness"
    kill "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) die "usage: $0 start|stop" ;;
esac
