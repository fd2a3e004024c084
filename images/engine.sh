#!/usr/bin/env bash
# The container engine the Docker backend and the tests talk to: a Docker
# Engine API on a unix socket. No Docker daemon runs on these machines, so
# podman serves the API (`podman system service`).
#
#   images/engine.sh [start]   an engine that answers; prints DOCKER_HOST=unix://...
#   images/engine.sh stop      stops the service this script started
#   images/engine.sh status    says whether an engine answers (exit 0 if so)
#
# start: $DOCKER_HOST (unix://) is used when it answers GET /v1.41/_ping;
# else the service at $SOCK when one answers there already (this script's
# or anyone's); else this script starts
#   podman system service --time=0 unix://$SOCK
# detached (its log and pid file beside the socket) with
# CONTAINERS_CONF=images/containers.conf (unless CONTAINERS_CONF is set),
# and waits until it answers. Only the DOCKER_HOST=... line goes to stdout,
# so `export "$(images/engine.sh)"` works; progress and errors go to stderr.
#
# SOCK is $CLIPPER_ENGINE_DIR/podman.sock, by default
# ${XDG_RUNTIME_DIR:-/tmp}/clipper-engine/podman.sock.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
DIR=${CLIPPER_ENGINE_DIR:-${XDG_RUNTIME_DIR:-/tmp}/clipper-engine}
SOCK=$DIR/podman.sock
LOG=$DIR/service.log
PIDFILE=$DIR/podman.pid
API=v1.41
START_TIMEOUT_S=${CLIPPER_ENGINE_TIMEOUT_S:-60}

say() { echo "engine: $*" >&2; }
die() { echo "engine: error: $*" >&2; exit 1; }

# pings unix socket path $1; exit 0 when the engine answers OK.
ping_sock() {
  [ -S "$1" ] || return 1
  command -v curl >/dev/null || die "curl is not installed (run: bash .ci/setup)"
  [ "$(curl -sS --max-time 3 --unix-socket "$1" "http://d/$API/_ping" 2>/dev/null)" = OK ]
}

# the socket path of DOCKER_HOST, or "" when unset; dies on a non-unix URL.
docker_host_sock() {
  local h=${DOCKER_HOST:-}
  [ -n "$h" ] || return 0
  case $h in
    unix://*) echo "${h#unix://}" ;;
    *) die "DOCKER_HOST=$h is not a unix:// socket URL; this project talks to the engine over a unix socket only" ;;
  esac
}

# the pid in PIDFILE when that process is alive and is a podman service.
started_pid() {
  local pid
  [ -f "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "system service" || return 1
  echo "$pid"
}

log_tail() {
  if [ -s "$LOG" ]; then
    echo "engine: last lines of $LOG:" >&2
    tail -n 20 "$LOG" | sed 's/^/  | /' >&2
  fi
}

cmd_start() {
  local sock
  sock=$(docker_host_sock)
  if [ -n "$sock" ]; then
    if ping_sock "$sock"; then
      echo "DOCKER_HOST=unix://$sock"
      return 0
    fi
    say "DOCKER_HOST=$DOCKER_HOST does not answer GET /$API/_ping; using this project's podman service at $SOCK"
  fi
  if ping_sock "$SOCK"; then
    echo "DOCKER_HOST=unix://$SOCK"
    return 0
  fi

  command -v podman >/dev/null ||
    die "podman is not installed, so no Docker Engine API can be started (run: bash .ci/setup, which installs podman and runc)"
  mkdir -p "$DIR"
  local pid
  if pid=$(started_pid); then
    # Ours, but not answering yet (just started by someone else?): give it
    # the same time as a fresh start before replacing it.
    say "waiting for the podman service (pid $pid) started earlier"
  else
    [ -S "$SOCK" ] && rm -f "$SOCK"   # stale: nobody answers on it
    export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
    [ -r "$CONTAINERS_CONF" ] || die "CONTAINERS_CONF=$CONTAINERS_CONF cannot be read"
    say "starting podman system service on $SOCK (CONTAINERS_CONF=$CONTAINERS_CONF, log $LOG)"
    # setsid: its own session, so it outlives this shell and a Ctrl-C in it.
    setsid podman system service --time=0 "unix://$SOCK" </dev/null >"$LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$PIDFILE"
  fi
  local t0=$SECONDS
  until ping_sock "$SOCK"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      log_tail
      die "the podman service exited before it answered on $SOCK (see $LOG)"
    fi
    if [ $((SECONDS - t0)) -ge "$START_TIMEOUT_S" ]; then
      log_tail
      die "the podman service (pid $pid) did not answer GET /$API/_ping on $SOCK within ${START_TIMEOUT_S}s (see $LOG; it is left running: images/engine.sh stop)"
    fi
    sleep 0.2
  done
  say "podman service (pid $pid) answers on $SOCK after $((SECONDS - t0))s"
  echo "DOCKER_HOST=unix://$SOCK"
}

cmd_stop() {
  local pid
  if ! pid=$(started_pid); then
    rm -f "$PIDFILE"
    if ping_sock "$SOCK"; then
      say "the engine on $SOCK was not started by images/engine.sh (no live pid in $PIDFILE); leaving it running"
    else
      say "no engine started by images/engine.sh is running"
    fi
    return 0
  fi
  kill -TERM "$pid"
  local i
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "the podman service (pid $pid) did not stop within 5s of SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE" "$SOCK"
  say "stopped the podman service (pid $pid) on $SOCK"
}

cmd_status() {
  local sock pid
  sock=$(docker_host_sock)
  if [ -n "$sock" ] && ping_sock "$sock"; then
    echo "engine: DOCKER_HOST=unix://$sock answers"
    return 0
  fi
  [ -n "$sock" ] && echo "engine: DOCKER_HOST=$DOCKER_HOST does not answer"
  if ping_sock "$SOCK"; then
    if pid=$(started_pid); then
      echo "engine: unix://$SOCK answers (podman service pid $pid, started by images/engine.sh)"
    else
      echo "engine: unix://$SOCK answers (not started by images/engine.sh)"
    fi
    return 0
  fi
  echo "engine: no engine answers on unix://$SOCK (start one: images/engine.sh start)"
  return 1
}

case ${1:-start} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  -h|--help|help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$1' (use start, stop or status)" ;;
esac
