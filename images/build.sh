#!/usr/bin/env bash
# Builds the project's container images locally (no registry is reachable):
#
#   clipper/base            Debian bookworm rootfs by mmdebstrap (runtime libraries,
#                           python3.11, nats-server), imported
#   clipper/builder         the same plus compilers and -dev packages (build only)
#   clipper/clipper         base + the clipper program compiled inside builder
#   clipper/python-closure  clipper + cloudpickle/numpy at the host python3's versions
#   clipper/base-jre        the base rootfs plus a Java runtime (default-jre-headless)
#   clipper/pyspark         base-jre + what python-closure adds + pyspark/py4j at the
#                           host python3's versions
#
#   images/build.sh           build what is not current (prints "current" for the rest)
#   images/build.sh --check   exit 0 when every image is current, 1 if not; builds nothing
#   images/build.sh --force   rebuild all six
#
# Each image carries the label ai.clipper.image.hash, a sha256 of its inputs
# (package lists and mmdebstrap options; Containerfile; for clipper/clipper
# the source files; for clipper/python-closure and clipper/pyspark the
# versions; and the hashes of the images it is built from). An image whose
# label matches is skipped.
# Uses the podman CLI (the same storage as the podman service of
# images/engine.sh) with CONTAINERS_CONF=images/containers.conf.
# Environment: PYTHON (default python3): the deployer's Python;
# CLIPPER_IMAGES_LOG_DIR (default /tmp/clipper-images): full logs of each step.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
LABEL=ai.clipper.image.hash
PY=${PYTHON:-python3}
LOG_DIR=${CLIPPER_IMAGES_LOG_DIR:-/tmp/clipper-images}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}

# ---------------------------------------------------------------- recipe
# Bump when the way an image is made changes in a way its inputs below do
# not show (it is part of every hash).
RECIPE=1
SUITE=bookworm
MIRRORS=("deb http://deb.debian.org/debian bookworm main"
         "deb http://deb.debian.org/debian bookworm-updates main"
         "deb http://deb.debian.org/debian-security bookworm-security main")
# What the actors, the replica's embedded Python and nats-server need at run
# time; libstdc++6 for numpy's wheels (they bring their own BLAS, not it).
BASE_DEBS=(python3-minimal libpython3.11 libnats3.4 libcjson1 libcurl4 libmicrohttpd12
           libxxhash0 libssl3 libyaml-0-2 nats-server ca-certificates libstdc++6)
# What compiling the clipper program needs (keep in step with .ci/setup's
# DEBS and meson.build; tests are not built, so no cmocka).
BUILDER_DEBS=(meson ninja-build pkg-config gcc libc6-dev binutils libnats-dev libcjson-dev
              libcurl4-openssl-dev libmicrohttpd-dev libssl-dev libxxhash-dev libyaml-dev
              python3-dev)
MMDEBSTRAP_OPTS=(--variant=essential --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/info/*')
# clipper/base-jre: BASE_DEBS plus the Java runtime PySpark starts Spark on
# (and ps, which Spark's launch scripts call).
# openjdk's postinst makes a man page link in /usr/share/man/man1 with
# update-alternatives, which fails when that directory is path-excluded
# away; the setup hook makes it (it stays empty).
JRE_DEBS=(default-jre-headless procps)
JRE_MMDEBSTRAP_OPTS=(--setup-hook='mkdir -p "$1/usr/share/man/man1"')
# The source files of clipper/clipper: the repository's files (tracked and
# untracked, less .gitignore'd), less these (not needed to build the program).
SRC_EXCLUDE='^(docs|images|tests|\.ci)/|(^|/)[^/]*\.md$|(^|/)\.git'
IMAGE_PY=3.11   # Debian bookworm's python3
# The image config given to the imported rootfs images.
IMPORT_CHANGES=('ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
                'ENV LANG=C.UTF-8' 'CMD ["/bin/bash"]')

# ---------------------------------------------------------------- output
t_start=$(date +%s.%N)
say() { echo "images: $*"; }
die() { echo "images: error: $*" >&2; exit 1; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }'; }

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }
check=0 force=0
for a in "$@"; do
  case $a in
    --check) check=1 ;;
    --force) force=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$a' (use --check, --force or --help)" ;;
  esac
done

command -v podman >/dev/null || die "podman is not installed (run: bash .ci/setup)"
[ -r "$CONTAINERS_CONF" ] || die "CONTAINERS_CONF=$CONTAINERS_CONF cannot be read"
sha() { sha256sum | cut -c1-64; }

# ---------------------------------------------------------------- inputs
mmdebstrap_version() { mmdebstrap --version 2>/dev/null || echo "mmdebstrap missing"; }

host_versions() {
  command -v "$PY" >/dev/null || die "no $PY on PATH (the deployer's Python; set PYTHON)"
  local out
  out=$("$PY" -c 'import sys, cloudpickle, numpy, pip
print("%d.%d" % sys.version_info[:2], cloudpickle.__version__, numpy.__version__, pip.__version__)' 2>&1) ||
    die "$PY cannot import cloudpickle, numpy and pip, whose versions clipper/python-closure copies: $(tail -n 1 <<<"$out") (run: bash .ci/setup)"
  read -r HOST_PY CLOUDPICKLE_V NUMPY_V PIP_V <<<"$out"
  [ "$HOST_PY" = "$IMAGE_PY" ] ||
    die "the deployer's $PY is Python $HOST_PY but the images' Python (Debian $SUITE) is $IMAGE_PY: closures pickled by one do not load in the other; use a Python $IMAGE_PY (set PYTHON)"
}

# The deployer's pyspark and py4j versions, which clipper/pyspark copies (a
# model saved by one pyspark version is loaded by the replica's). Found and
# read without importing pyspark (which takes a quarter of a second).
pyspark_versions() {
  local out
  out=$("$PY" -c 'import importlib.util as u, importlib.metadata as m
for n in ("pyspark", "py4j"):
    if u.find_spec(n) is None:
        raise SystemExit("No module named %r" % n)
print(m.version("pyspark"), m.version("py4j"))' 2>&1) ||
    die "$PY cannot import pyspark and py4j, whose versions clipper/pyspark copies: $(tail -n 1 <<<"$out") (run: bash .ci/setup)"
  read -r PYSPARK_V PY4J_V <<<"$out"
}

# Lists the source files (relative to root), NUL-separated.
source_files() {
  if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$root" ls-files -z -c -o --exclude-standard
  else
    (cd "$root" && find . -path ./.git -prune -o -path './build*' -prune -o -type f -print0 |
       sed -z 's|^\./||')
  fi | grep -zEv "$SRC_EXCLUDE" | (cd "$root" && while IFS= read -r -d '' f; do
      [ -f "$f" ] && printf '%s\0' "$f"; done) | sort -z
}

CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

compute_hashes() {
  local mmv
  mmv=$(mmdebstrap_version)
  H_BASE=$( { echo "recipe $RECIPE base"; echo "$mmv"; echo "$SUITE";
              printf '%s\n' "${MIRRORS[@]}" "${MMDEBSTRAP_OPTS[@]}" "${IMPORT_CHANGES[@]}" \
                "${BASE_DEBS[@]}"; } | sha)
  H_BUILDER=$( { echo "recipe $RECIPE builder"; echo "$mmv"; echo "$SUITE";
                 printf '%s\n' "${MIRRORS[@]}" "${MMDEBSTRAP_OPTS[@]}" "${IMPORT_CHANGES[@]}" \
                   "${BASE_DEBS[@]}" "${BUILDER_DEBS[@]}"; } | sha)
  H_SRC=$(cd "$root" && source_files | xargs -0 -r sha256sum | sha)
  H_CLIPPER=$( { echo "recipe $RECIPE clipper"; echo "$H_BASE $H_BUILDER $H_SRC";
                 cat "$here/clipper.Containerfile"; } | sha)
  host_versions
  local ca="no CA bundle"
  [ -r "$CA_BUNDLE" ] && ca=$(sha <"$CA_BUNDLE")
  H_CLOSURE=$( { echo "recipe $RECIPE python-closure"; echo "$H_CLIPPER";
                 echo "python $IMAGE_PY cloudpickle $CLOUDPICKLE_V numpy $NUMPY_V pip $PIP_V";
                 echo "$(uname -m) ca $ca"; cat "$here/python-closure.Containerfile"; } | sha)
  H_BASEJRE=$( { echo "recipe $RECIPE base-jre"; echo "$mmv"; echo "$SUITE";
                 printf '%s\n' "${MIRRORS[@]}" "${MMDEBSTRAP_OPTS[@]}" "${JRE_MMDEBSTRAP_OPTS[@]}" \
                   "${IMPORT_CHANGES[@]}" "${BASE_DEBS[@]}" "${JRE_DEBS[@]}"; } | sha)
  pyspark_versions
  H_PYSPARK=$( { echo "recipe $RECIPE pyspark"; echo "$H_BASEJRE $H_CLOSURE";
                 echo "python $IMAGE_PY pyspark $PYSPARK_V py4j $PY4J_V";
                 cat "$here/pyspark.Containerfile"; } | sha)
}

label_of() {
  podman image inspect --format "{{index .Labels \"$LABEL\"}}" "$1" 2>/dev/null || true
}
id_of() { podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

# ---------------------------------------------------------------- steps
work=""
OLD_IDS=()
cleanup() {
  [ -n "$work" ] && rm -rf "$work"
  # The images these tags named before, if nothing else uses them now.
  local i
  for ((i = ${#OLD_IDS[@]} - 1; i >= 0; i--)); do
    podman rmi "${OLD_IDS[i]}" >/dev/null 2>&1 || true
  done
}

# run LOG PATTERN CMD...: runs CMD with its output in LOG, showing the lines
# that match PATTERN; on failure shows LOG's tail and exits.
run() {
  local log=$1 pat=$2
  shift 2
  echo "\$ $*" >>"$log"
  if ! "$@" 2>&1 | tee -a "$log" | { grep --line-buffered -E "$pat" || true; } |
         sed -u -e 's/^\(.\{100\}\).\{4,\}$/\1 .../' -e 's/^/      /'; then
    echo "images: error: '$1 $2' failed (full log: $log); its last lines:" >&2
    tail -n 25 "$log" | sed 's/^/  | /' >&2
    exit 1
  fi
}

n_step=0
begin() {
  n_step=$((n_step + 1))
  local name=$1 hash=$2 cur
  cur=$(label_of "$name")
  if [ "$force" = 0 ] && [ "$cur" = "$hash" ]; then
    say "[$n_step/6] $name: current (${hash:0:12})"
    return 1
  fi
  local old
  old=$(id_of "$name")
  [ -n "$old" ] && OLD_IDS+=("$old")
  say "[$n_step/6] $name: building (${hash:0:12}${cur:+, was ${cur:0:12}})"
  t_step=$(date +%s.%N)
  LOG=$LOG_DIR/${name#clipper/}.log
  : >"$LOG"
  return 0
}

finish() {
  local size
  size=$(podman image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.0f MB", $1 / 1e6 }')
  say "[$n_step/6] $1: built in $(elapsed "$t_step") ($size)"
}

# rootfs NAME HASH [--OPTION]... DEBS...: an mmdebstrap rootfs tarball
# imported as NAME; the --options are given to mmdebstrap after MMDEBSTRAP_OPTS.
rootfs_image() {
  local name=$1 hash=$2 opts=()
  shift 2
  while [ $# -gt 0 ] && [ "${1#--}" != "$1" ]; do opts+=("$1"); shift; done
  command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed (run: bash .ci/setup)"
  local tar=$work/${name#clipper/}.tar pkgs
  pkgs=$(IFS=,; echo "$*")
  echo "    mmdebstrap $SUITE: $*"
  run "$LOG" '^I: (downloading|installing|creating|success)' \
    mmdebstrap "${MMDEBSTRAP_OPTS[@]}" "${opts[@]}" --include="$pkgs" "$SUITE" "$tar" "${MIRRORS[@]}"
  echo "    podman import ($(du -m "$tar" | cut -f1) MB)"
  local changes=(--change "LABEL $LABEL=$hash") c
  for c in "${IMPORT_CHANGES[@]}"; do changes+=(--change "$c"); done
  run "$LOG" '^$' podman import "${changes[@]}" "$tar" "$name:latest"
  rm -f "$tar"
}

# podman_build NAME HASH CONTAINERFILE CONTEXT [ARGS...]
podman_build() {
  local name=$1 hash=$2 file=$3 ctx=$4
  shift 4
  run "$LOG" '^(\[[0-9]+/[0-9]+\] )?(STEP [0-9]+/[0-9]+: (FROM|COPY|RUN)|COMMIT)|Linking target' \
    podman build --pull=never --network=none --layers=false -f "$file" \
      --label "$LABEL=$hash" "$@" -t "$name:latest" "$ctx"
}

build_clipper() {
  local ctx=$work/clipper
  mkdir -p "$ctx/src"
  (cd "$root" && source_files | tar --null -T - -cf - | tar -xf - -C "$ctx/src")
  echo "    source: $(cd "$ctx/src" && find . -type f | wc -l) files copied; compiling inside clipper/builder"
  podman_build clipper/clipper "$H_CLIPPER" "$here/clipper.Containerfile" "$ctx" \
    --label "ai.clipper.python.version=$IMAGE_PY"
}

build_closure() {
  local ctx=$work/python-closure arch
  arch=$(uname -m)
  mkdir -p "$ctx"
  local plats=(--platform "manylinux2014_$arch")
  local v
  for v in $(seq 17 36); do plats+=(--platform "manylinux_2_${v}_$arch"); done
  echo "    pip: cloudpickle==$CLOUDPICKLE_V numpy==$NUMPY_V pip==$PIP_V for cp${IMAGE_PY/./}"
  run "$LOG" '^(Collecting|Successfully)' \
    "$PY" -m pip install --disable-pip-version-check --no-input --no-deps \
      --only-binary=:all: --implementation cp --python-version "$IMAGE_PY" \
      --abi "cp${IMAGE_PY/./}" "${plats[@]}" --target "$ctx/site-packages" \
      "cloudpickle==$CLOUDPICKLE_V" "numpy==$NUMPY_V" "pip==$PIP_V"
  # pip's (and numpy's) commands, with the image's python3 in their #! line
  # instead of the host's, so `RUN pip install ...` works in images built
  # FROM this one.
  mkdir -p "$ctx/bin"
  local f
  for f in "$ctx/site-packages/bin"/*; do
    [ -f "$f" ] || continue
    sed '1s|^#!.*python.*$|#!/usr/bin/python3|' "$f" >"$ctx/bin/${f##*/}"
    chmod 755 "$ctx/bin/${f##*/}"
  done
  rm -rf "$ctx/site-packages/bin"
  if [ -r "$CA_BUNDLE" ]; then cp "$CA_BUNDLE" "$ctx/ca-certificates.crt"
  else : >"$ctx/ca-certificates.crt"; fi
  podman_build clipper/python-closure "$H_CLOSURE" "$here/python-closure.Containerfile" "$ctx" \
    --build-arg "CLOUDPICKLE_VERSION=$CLOUDPICKLE_V" --build-arg "NUMPY_VERSION=$NUMPY_V" \
    --label "ai.clipper.python.version=$IMAGE_PY" \
    --label "ai.clipper.cloudpickle.version=$CLOUDPICKLE_V" \
    --label "ai.clipper.numpy.version=$NUMPY_V"
}

build_pyspark() {
  local ctx=$work/pyspark
  mkdir -p "$ctx"
  # pyspark and py4j are pure Python: the host's pip installs them as for itself.
  echo "    pip: pyspark==$PYSPARK_V py4j==$PY4J_V"
  run "$LOG" '^(Collecting|Successfully)' \
    "$PY" -m pip install --disable-pip-version-check --no-input --no-deps \
      --target "$ctx/site-packages" "pyspark==$PYSPARK_V" "py4j==$PY4J_V"
  # Scripts whose #! names the host's python (pyspark/bin, which Spark runs,
  # stays), and py4j's jar in share/, which only py4j's own launcher uses
  # (pyspark brings its own in pyspark/jars).
  rm -rf "$ctx/site-packages/bin" "$ctx/site-packages/share"
  podman_build clipper/pyspark "$H_PYSPARK" "$here/pyspark.Containerfile" "$ctx" \
    --build-arg "PYSPARK_VERSION=$PYSPARK_V" --build-arg "PY4J_VERSION=$PY4J_V" \
    --label "ai.clipper.python.version=$IMAGE_PY" \
    --label "ai.clipper.pyspark.version=$PYSPARK_V"
}

# ---------------------------------------------------------------- main
compute_hashes

if [ "$check" = 1 ]; then
  stale=0
  for pair in "clipper/base $H_BASE" "clipper/builder $H_BUILDER" "clipper/clipper $H_CLIPPER" \
              "clipper/python-closure $H_CLOSURE" "clipper/base-jre $H_BASEJRE" \
              "clipper/pyspark $H_PYSPARK"; do
    set -- $pair
    if [ "$(label_of "$1")" = "$2" ]; then say "$1: current"
    else say "$1: not current"; stale=1; fi
  done
  exit $stale
fi

mkdir -p "$LOG_DIR"
# One build at a time on this machine (the images are shared).
exec 9>"$LOG_DIR/.lock"
if ! flock -n 9; then
  say "another images/build.sh is running; waiting for it"
  flock 9
fi
trap cleanup EXIT
work=$(mktemp -d "${TMPDIR:-/var/tmp}/clipper-images.XXXXXX")

if begin clipper/base "$H_BASE"; then
  rootfs_image clipper/base "$H_BASE" "${BASE_DEBS[@]}"; finish clipper/base
fi
if begin clipper/builder "$H_BUILDER"; then
  rootfs_image clipper/builder "$H_BUILDER" "${BASE_DEBS[@]}" "${BUILDER_DEBS[@]}"
  finish clipper/builder
fi
if begin clipper/clipper "$H_CLIPPER"; then
  build_clipper; finish clipper/clipper
fi
if begin clipper/python-closure "$H_CLOSURE"; then
  build_closure; finish clipper/python-closure
fi
if begin clipper/base-jre "$H_BASEJRE"; then
  rootfs_image clipper/base-jre "$H_BASEJRE" "${JRE_MMDEBSTRAP_OPTS[@]}" \
    "${BASE_DEBS[@]}" "${JRE_DEBS[@]}"
  finish clipper/base-jre
fi
if begin clipper/pyspark "$H_PYSPARK"; then
  build_pyspark; finish clipper/pyspark
fi
say "all images current ($(elapsed "$t_start"))"
