#!/usr/bin/env bash
# Installs the peer servers of the benchmark (tests/bench/bench_peers.py),
# each into a venv of its own under build/ (their dependencies conflict:
# MLServer pins uvloop and FastAPI versions the others do not want, and
# none of them may touch the product's Python):
#
#   build/peers-venv-pytriton   nvidia-pytriton (ships Triton's C++ server)
#   build/peers-venv-litserve   litserve
#   build/peers-venv-mlserver   mlserver, with uvloop < 0.22 (MLServer 1.7.1's
#                               parallel worker dies under uvloop 0.22+ with
#                               "There is no current event loop")
#
# Idempotent: a venv whose pinned versions already import is left alone, so a
# second run takes about a second. A peer that fails to install is reported
# and skipped (bench_peers.py then records it as skipped); the script fails
# only if none installs. PYTHON picks the interpreter (default python3).
set -uo pipefail
cd "$(dirname "$0")/../../.."

PY=${PYTHON:-python3}
PYTRITON_VERSION=0.7.0
LITSERVE_VERSION=0.2.19
MLSERVER_VERSION=1.7.1

# venv name, the check that the pinned versions are in place, pip arguments.
install() {
  local name=$1 check=$2
  shift 2
  local venv=build/peers-venv-$name
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
    return 0
  fi
  echo "peers: installing $name into $venv (once)"
  "$PY" -m venv "$venv" &&
    "$venv/bin/pip" install -q --disable-pip-version-check "$@" &&
    "$venv/bin/python" -c "$check" && return 0
  echo "peers: $name failed to install; bench_peers.py will skip it" >&2
  return 1
}

ok=0
install pytriton \
  "import importlib.metadata as m; assert m.version('nvidia-pytriton') == '$PYTRITON_VERSION'" \
  "nvidia-pytriton==$PYTRITON_VERSION" && ok=$((ok + 1))
install litserve \
  "import importlib.metadata as m; assert m.version('litserve') == '$LITSERVE_VERSION'" \
  "litserve==$LITSERVE_VERSION" && ok=$((ok + 1))
install mlserver \
  "import importlib.metadata as m; assert m.version('mlserver') == '$MLSERVER_VERSION'
assert tuple(map(int, m.version('uvloop').split('.')[:2])) < (0, 22)" \
  "mlserver==$MLSERVER_VERSION" "uvloop<0.22" && ok=$((ok + 1))
[ "$ok" -gt 0 ]
