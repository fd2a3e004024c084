#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, for the Kubernetes
# backend and its tests: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet (with a private containerd) and kube-proxy.
#
#   images/kube/kube.sh build            builds (or reuses) the binaries and the pause image
#   images/kube/kube.sh start            a ready cluster; prints KUBECONFIG=<admin kubeconfig>
#   images/kube/kube.sh stop             stops everything and removes all it made
#   images/kube/kube.sh status           exit 0 and one line when the cluster answers
#   images/kube/kube.sh env              prints KUBECONFIG=... of a running cluster
#   images/kube/kube.sh images [IMG...]  imports podman images into the cluster's containerd
#
# build: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
# kube-proxy and kubectl v1.37.2 and etcd v3.6.16 from the Go module proxy
# (go >= 1.26 needed), and the pause image (gcc -static), into
# $CLIPPER_KUBE_CACHE/v1.37.2 (default /var/cache/clipper-kube); skipped in a
# second when they are there and their stamp matches the recipe.
# start: only the KUBECONFIG=... line goes to stdout, so
#   export "$(images/kube/kube.sh start)"
# works; progress and errors go to stderr. It returns when the API server is
# healthy, the node is Ready, ServiceAccount "default" exists and kube-proxy
# has programmed its rules. A healthy cluster this script started is reused.
# Pods live on the bridge clk8s0 (172.30.0.0/24, host 172.30.0.1); the API
# server answers on https://172.30.0.1:6443 and, in pods, on the
# "kubernetes" Service 10.0.0.1:443; NodePorts on 172.30.0.1.
# State (certs, kubeconfigs, etcd data, containerd, kubelet, logs <name>.log,
# pid files): $CLIPPER_KUBE_DIR (default /tmp/clipper-kube). Kubeconfigs
# there: admin.kubeconfig (token, system:masters), admin-cert.kubeconfig
# (client certificate, system:masters), restricted.kubeconfig (a token
# user with no RBAC rights).
# images: with no argument localhost/clipper/clipper:latest,
# localhost/clipper/python-closure:latest and localhost/clipper/pyspark:latest;
# an image whose ID containerd already has is skipped. Pods must use the
# full localhost/... name and imagePullPolicy: Never.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

K8S_VERSION=v1.37.2
K8S_STAGING_VERSION=v0.37.2
ETCD_VERSION=v3.6.16
PAUSE_TAG=3.10.2
PAUSE_IMAGE=localhost/clipper/kube-pause:$PAUSE_TAG
CACHE=${CLIPPER_KUBE_CACHE:-/var/cache/clipper-kube}/$K8S_VERSION
BIN=$CACHE/bin
PAUSE_ARCHIVE=$CACHE/pause-$PAUSE_TAG.oci.tar
STAMP=$CACHE/stamp
KUBE_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
BUILD_JOBS=${CLIPPER_KUBE_BUILD_JOBS:-2}

DIR=${CLIPPER_KUBE_DIR:-/tmp/clipper-kube}
DIR=${DIR%/}
case $DIR in /?*/?*) ;; *) echo "kube: error: CLIPPER_KUBE_DIR=$DIR must be an absolute path two levels deep or more (stop removes it)" >&2; exit 1 ;; esac
START_TIMEOUT_S=${CLIPPER_KUBE_TIMEOUT_S:-120}

# The network (see README.md): pods on the bridge BRIDGE, the host side
# HOST_IP; the Service range routed onto the bridge.
BRIDGE=clk8s0
HOST_IP=172.30.0.1
POD_CIDR=172.30.0.0/24
POD_RANGE_START=172.30.0.10
POD_RANGE_END=172.30.0.250
SERVICE_CIDR=10.0.0.0/24
KUBERNETES_SVC_IP=10.0.0.1
API_PORT=6443
NODE_NAME=clipper-node
DEFAULT_IMAGES=(localhost/clipper/clipper:latest localhost/clipper/python-closure:latest
                localhost/clipper/pyspark:latest)

say() { echo "kube: $*" >&2; }
die() { echo "kube: error: $*" >&2; exit 1; }

# seconds since $1 (from now_ms), as "12.3s".
now_ms() { date +%s%3N; }
since() { local d=$(( $(now_ms) - $1 )); printf '%d.%ds' $((d / 1000)) $((d % 1000 / 100)); }

# ================================================================== build

need_go() {
  command -v go >/dev/null ||
    die "go is not installed; building Kubernetes $K8S_VERSION needs Go >= $1 (Debian's golang is too old; a Go toolchain in /usr/local/go/bin on PATH does)"
  local have
  have=$(GOTOOLCHAIN=local go env GOVERSION 2>/dev/null) || die "'go env GOVERSION' failed"
  have=${have#go}
  if [ "$(printf '%s\n%s\n' "$1" "$have" | sort -V | head -n1)" != "$1" ]; then
    die "go $have ($(command -v go)) is older than Go $1, which Kubernetes $K8S_VERSION's go.mod needs; put a newer Go first on PATH"
  fi
}

# The recipe the stamp records: versions, the Go toolchain, and the text of
# the functions that build, so a change to any of them rebuilds.
recipe() {
  echo "kubernetes $K8S_VERSION staging $K8S_STAGING_VERSION etcd $ETCD_VERSION pause $PAUSE_TAG"
  echo "commands ${KUBE_CMDS[*]} etcd"
  GOTOOLCHAIN=local go version 2>/dev/null || echo "no go"
  declare -f kube_ldflags build_kube build_etcd build_pause
}

binaries_current() {
  local c
  for c in "${KUBE_CMDS[@]}" etcd; do [ -x "$BIN/$c" ] || return 1; done
  [ -s "$PAUSE_ARCHIVE" ] && [ -f "$STAMP" ] || return 1
  [ "$(cat "$STAMP")" = "$(recipe | sha256sum | cut -d' ' -f1)" ]
}

kube_ldflags() {
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local date p flags="-s -w"
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    flags+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  echo "$flags"
}

# runs "$@" with its output in $LOGF; on failure shows its tail and dies.
run_logged() {
  if ! "$@" >>"$LOGF" 2>&1; then
    echo "kube: last lines of $LOGF:" >&2
    tail -n 25 "$LOGF" | sed 's/^/  | /' >&2
    die "'$*' failed (in $(pwd); full log $LOGF)"
  fi
}

# The Kubernetes commands through a wrapper module: k8s.io/kubernetes'
# go.mod replaces its k8s.io/<staging> modules with ./staging/..., which
# the module zip lacks, so `go install k8s.io/kubernetes/cmd/...@v` is
# refused. This module requires k8s.io/kubernetes and replaces each of those
# with its published tag.
build_kube() {
  local w=$CACHE/src/kubernetes gomod dir min c t0
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  [ -s "$gomod" ] || die "could not download k8s.io/kubernetes@$K8S_VERSION from the Go module proxy ($(go env GOPROXY)); see 'go mod download k8s.io/kubernetes@$K8S_VERSION'"
  min=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")
  need_go "$min"
  rm -rf "$w"; mkdir -p "$w"
  {
    echo "module clipper.local/kube"
    echo
    echo "go $min"
    echo
    grep '^godebug ' "$gomod" || true
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/.*$#\t\1 => \1 '"$K8S_STAGING_VERSION"'#p' "$gomod"
    echo ")"
  } >"$w/go.mod"
  [ "$(grep -c ' => ' "$w/go.mod")" -gt 20 ] ||
    die "found no ./staging replace lines in $gomod; the wrapper module recipe does not fit k8s.io/kubernetes $K8S_VERSION"
  {
    echo "//go:build tools"
    echo
    echo "package tools"
    echo
    echo "import ("
    for c in "${KUBE_CMDS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done
    echo ")"
  } >"$w/tools.go"
  cd "$w"
  say "resolving the modules of k8s.io/kubernetes $K8S_VERSION (go mod tidy; downloads ~1 GB the first time)"
  run_logged go mod tidy
  local ldflags
  ldflags=$(kube_ldflags)
  for c in "${KUBE_CMDS[@]}"; do
    t0=$(now_ms)
    say "building $c ..."
    run_logged go build -p "$BUILD_JOBS" -trimpath -ldflags "$ldflags" -o "$BIN/$c.new" "k8s.io/kubernetes/cmd/$c"
    mv -f "$BIN/$c.new" "$BIN/$c"
    say "built $c in $(since "$t0")"
  done
}

build_etcd() {
  local w=$CACHE/src/etcd t0
  rm -rf "$w"; mkdir -p "$w"
  printf 'module clipper.local/etcd\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >"$w/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$w/tools.go"
  cd "$w"
  run_logged go mod tidy
  t0=$(now_ms)
  say "building etcd ..."
  run_logged go build -p "$BUILD_JOBS" -trimpath -ldflags "-s -w" -o "$BIN/etcd.new" go.etcd.io/etcd/server/v3
  mv -f "$BIN/etcd.new" "$BIN/etcd"
  say "built etcd in $(since "$t0")"
}

# The sandbox ("pause") image: build/pause/linux/pause.c of the k8s module,
# static, in a one-layer OCI image archive that `ctr images import` names
# $PAUSE_IMAGE.
build_pause() {
  local src w=$CACHE/src/pause
  src=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')/build/pause/linux/pause.c
  [ -r "$src" ] || die "$src is missing from the module k8s.io/kubernetes@$K8S_VERSION"
  command -v gcc >/dev/null || die "gcc is not installed (package gcc; run: bash .ci/setup)"
  rm -rf "$w"; mkdir -p "$w/rootfs" "$w/oci/blobs/sha256"
  say "building the pause image $PAUSE_IMAGE ..."
  run_logged gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_TAG-$K8S_VERSION" -o "$w/rootfs/pause" "$src"
  strip "$w/rootfs/pause" 2>/dev/null || true
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$w/rootfs" -cf "$w/layer.tar" pause
  local layer lsize config csize manifest msize
  layer=$(sha256sum "$w/layer.tar" | cut -d' ' -f1); lsize=$(stat -c %s "$w/layer.tar")
  mv "$w/layer.tar" "$w/oci/blobs/sha256/$layer"
  printf '{"architecture":"amd64","os":"linux","config":{"User":"65535:65535","Entrypoint":["/pause"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$layer" >"$w/config.json"
  config=$(sha256sum "$w/config.json" | cut -d' ' -f1); csize=$(stat -c %s "$w/config.json")
  mv "$w/config.json" "$w/oci/blobs/sha256/$config"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config" "$csize" "$layer" "$lsize" >"$w/manifest.json"
  manifest=$(sha256sum "$w/manifest.json" | cut -d' ' -f1); msize=$(stat -c %s "$w/manifest.json")
  mv "$w/manifest.json" "$w/oci/blobs/sha256/$manifest"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest" "$msize" "$PAUSE_IMAGE" "$PAUSE_IMAGE" >"$w/oci/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$w/oci/oci-layout"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$w/oci" -cf "$PAUSE_ARCHIVE.new" oci-layout index.json blobs
  mv -f "$PAUSE_ARCHIVE.new" "$PAUSE_ARCHIVE"
  rm -rf "$w"
}

cmd_build() {
  local t0
  t0=$(now_ms)
  if ! command -v go >/dev/null && [ -s "$STAMP" ] && [ -s "$PAUSE_ARCHIVE" ] &&
     [ "$(for c in "${KUBE_CMDS[@]}" etcd; do [ -x "$BIN/$c" ] || echo missing; done)" = "" ]; then
    say "the binaries in $BIN are there (go is not installed, so they were not checked against the recipe)"
    return 0
  fi
  if binaries_current; then
    say "Kubernetes $K8S_VERSION, etcd $ETCD_VERSION and the pause image are current in $CACHE ($(since "$t0"))"
    return 0
  fi
  mkdir -p "$BIN" || die "cannot create $BIN (set CLIPPER_KUBE_CACHE to a writable directory)"
  exec 9>"$CACHE/.build.lock"
  if ! flock -n 9; then
    say "another build holds $CACHE/.build.lock; waiting for it"
    flock 9
    if binaries_current; then
      say "built by the other build in $CACHE ($(since "$t0"))"
      return 0
    fi
  fi
  need_go 1.26.0
  rm -f "$STAMP"
  LOGF=$CACHE/build.log
  : >"$LOGF"
  say "building Kubernetes $K8S_VERSION and etcd $ETCD_VERSION into $BIN (log $LOGF; ~10 min cold, peak ~2.6 GB memory)"
  # A private Go build cache, deleted after a successful build (4-5 GB);
  # the module cache (go env GOMODCACHE) is kept.
  export GOCACHE=$CACHE/gocache.tmp GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
  build_pause
  build_kube
  build_etcd
  recipe | sha256sum | cut -d' ' -f1 >"$STAMP"
  rm -rf "$CACHE/src" "$GOCACHE"
  say "built Kubernetes $K8S_VERSION ($("$BIN/kube-apiserver" --version 2>&1)), etcd $ETCD_VERSION and $PAUSE_IMAGE in $(since "$t0"); binaries in $BIN"
}

# ================================================================== cluster

PKI=$DIR/pki
CTR_SOCK=$DIR/containerd/containerd.sock
ADMIN_KUBECONFIG=$DIR/admin.kubeconfig
SYSCTLS_SAVED=$DIR/saved-sysctls
ETCD_CLIENT_PORT=12379
ETCD_PEER_PORT=12380
API_URL=https://$HOST_IP:$API_PORT
# One cluster per machine (the bridge and addresses are fixed): start and
# stop take this lock.
LOCK=${CLIPPER_KUBE_CACHE:-/var/cache/clipper-kube}/cluster.lock
# The daemons, in start order; each has $DIR/<name>.pid and $DIR/<name>.log.
DAEMONS=(etcd containerd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
# What kubelet (and this script) change, saved at start, restored at stop.
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
         kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward
         net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
         net.netfilter.nf_conntrack_tcp_timeout_syn_sent)
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

# The pid in $DIR/$1.pid when that process is alive and runs on this
# cluster's files (its command line names $DIR).
daemon_pid() {
  local pid
  [ -f "$DIR/$1.pid" ] || return 1
  pid=$(cat "$DIR/$1.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$DIR/" || return 1
  echo "$pid"
}

log_tail() {
  local f=$DIR/$1.log
  if [ -s "$f" ]; then
    echo "kube: last lines of $f:" >&2
    tail -n "${2:-15}" "$f" | sed 's/^/  | /' >&2
  fi
}

admin_token() { cat "$DIR/admin.token" 2>/dev/null; }

# curl to the API server as the admin: api PATH [curl options...]
api() {
  local path=$1; shift
  curl -sS --max-time 5 -A clipper-kube --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(admin_token)" "$@" "$API_URL$path"
}

api_ready() {
  [ -f "$DIR/admin.token" ] && [ "$(api /readyz 2>/dev/null)" = ok ]
}

ctr_() { ctr --address "$CTR_SOCK" -n k8s.io "$@"; }

# exit 0 when every daemon runs and the API server is ready.
cluster_healthy() {
  local d
  for d in "${DAEMONS[@]}"; do daemon_pid "$d" >/dev/null || return 1; done
  api_ready
}

kubeconfig_line() { echo "KUBECONFIG=$ADMIN_KUBECONFIG"; }

check_tools() {
  local e prog missing=()
  for e in containerd:containerd ctr:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins \
           /usr/lib/cni/host-local:containernetworking-plugins /usr/lib/cni/loopback:containernetworking-plugins \
           nft:nftables conntrack:conntrack openssl:openssl curl:curl ip:iproute2 setsid:util-linux flock:util-linux; do
    prog=${e%%:*}
    if [[ $prog == /* ]]; then [ -x "$prog" ] || missing+=("$prog (package ${e#*:})")
    else command -v "$prog" >/dev/null || missing+=("$prog (package ${e#*:})"); fi
  done
  [ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]} (run: bash .ci/setup, or apt-get install the packages named)"
  [ "$(id -u)" = 0 ] || die "a cluster needs root (network bridge, mounts, cgroups); run as root"
  local c
  for c in "${KUBE_CMDS[@]}" etcd; do
    [ -x "$BIN/$c" ] || die "$BIN/$c is missing; build the binaries first: images/kube/kube.sh build (~10 min cold)"
  done
  [ -s "$PAUSE_ARCHIVE" ] || die "$PAUSE_ARCHIVE is missing; run: images/kube/kube.sh build"
  if command -v go >/dev/null && ! binaries_current; then
    say "warning: the binaries in $BIN do not match this script's recipe (images/kube/kube.sh build rebuilds them); using them"
  fi
}

# ---------------------------------------------------------------- PKI, configs

# key FILE: a new P-256 key.
new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# sign NAME SUBJECT EXTENSIONS: $PKI/NAME.{key,crt} signed by the cluster CA.
sign() {
  new_key "$PKI/$1.key"
  openssl req -new -key "$PKI/$1.key" -subj "$2" 2>/dev/null |
    openssl x509 -req -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -set_serial "0x$(openssl rand -hex 12)" \
      -days 3650 -extfile <(printf '%b\n' "$3") -out "$PKI/$1.crt" 2>/dev/null ||
    die "openssl could not sign the certificate $PKI/$1.crt"
}

make_pki() {
  mkdir -p "$PKI"
  new_key "$PKI/ca.key" || die "openssl genpkey failed"
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=clipper-kube-ca" -days 3650 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/ca.crt" 2>/dev/null || die "openssl could not make the CA"
  local leaf='basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment'
  sign apiserver "/CN=kube-apiserver" \
    "$leaf\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:$HOST_IP,IP:$KUBERNETES_SVC_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$leaf\nextendedKeyUsage=clientAuth"
  sign admin "/O=system:masters/CN=clipper-admin" "$leaf\nextendedKeyUsage=clientAuth"
  new_key "$PKI/sa.key"
  openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null || die "openssl pkey -pubout failed"
  chmod 600 "$PKI"/*.key
}

new_token() { openssl rand -hex 24; }

# kubeconfig FILE USER then the user's lines (indented 4) on stdin.
kubeconfig() {
  local ca
  ca=$(base64 -w0 "$PKI/ca.crt")
  {
    cat <<YAML
apiVersion: v1
kind: Config
clusters:
- name: clipper-kube
  cluster:
    server: $API_URL
    certificate-authority-data: $ca
contexts:
- name: clipper-kube
  context:
    cluster: clipper-kube
    user: $2
    namespace: default
current-context: clipper-kube
users:
- name: $2
  user:
YAML
    cat
  } >"$1"
  chmod 600 "$1"
}

make_auth() {
  local admin restricted cm sched node proxy
  admin=$(new_token) restricted=$(new_token) cm=$(new_token) sched=$(new_token)
  node=$(new_token) proxy=$(new_token)
  # token,user,uid,"groups"
  cat >"$DIR/tokens.csv" <<CSV
$admin,clipper-admin-token,clipper-admin-token,"system:masters"
$restricted,clipper-restricted,clipper-restricted
$cm,system:kube-controller-manager,system:kube-controller-manager,"system:masters"
$sched,system:kube-scheduler,system:kube-scheduler
$node,system:node:$NODE_NAME,system:node:$NODE_NAME,"system:nodes"
$proxy,system:kube-proxy,system:kube-proxy
CSV
  chmod 600 "$DIR/tokens.csv"
  printf '%s\n' "$admin" >"$DIR/admin.token"
  printf '%s\n' "$restricted" >"$DIR/restricted.token"
  chmod 600 "$DIR/admin.token" "$DIR/restricted.token"
  echo "    token: $admin" | kubeconfig "$ADMIN_KUBECONFIG" clipper-admin-token
  printf '    client-certificate-data: %s\n    client-key-data: %s\n' \
    "$(base64 -w0 "$PKI/admin.crt")" "$(base64 -w0 "$PKI/admin.key")" |
    kubeconfig "$DIR/admin-cert.kubeconfig" clipper-admin
  echo "    token: $restricted" | kubeconfig "$DIR/restricted.kubeconfig" clipper-restricted
  echo "    token: $cm" | kubeconfig "$DIR/controller-manager.kubeconfig" system:kube-controller-manager
  echo "    token: $sched" | kubeconfig "$DIR/scheduler.kubeconfig" system:kube-scheduler
  echo "    token: $node" | kubeconfig "$DIR/kubelet.kubeconfig" "system:node:$NODE_NAME"
  echo "    token: $proxy" | kubeconfig "$DIR/kube-proxy.kubeconfig" system:kube-proxy
}

write_configs() {
  mkdir -p "$DIR/containerd" "$DIR/cni/net.d" "$DIR/cni/networks" "$DIR/kubelet" "$DIR/pod-logs"
  cat >"$DIR/containerd/config.toml" <<TOML
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$CTR_SOCK"

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$DIR/containerd/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$PAUSE_IMAGE"
    # root here lacks CAP_SYS_RESOURCE: without this every pod fails with
    # "runc create failed: ... can't get final child's PID from pipe: EOF".
    restrict_oom_score_adj = true
    # network namespaces under state/, not /var/run/netns
    netns_mounts_under_state_dir = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = "$DIR/containerd/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "$DIR/cni/net.d"
      max_conf_num = 1
TOML
  # Pods get a route to the Service range only: no default route, so an
  # outside address is unreachable at once (and the forward rule of
  # net_up rejects it too).
  cat >"$DIR/cni/net.d/10-clipper-kube.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "clipper-kube",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$DIR/cni/networks",
        "ranges": [[{"subnet": "$POD_CIDR", "rangeStart": "$POD_RANGE_START",
                     "rangeEnd": "$POD_RANGE_END", "gateway": "$HOST_IP"}]],
        "routes": [{"dst": "$SERVICE_CIDR"}]
      }
    }
  ]
}
JSON
  cat >"$DIR/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $HOST_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $PKI/ca.crt
authorization:
  mode: Webhook
# these machines have a hybrid cgroup v1 layout; PID 1 is not systemd
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://$CTR_SOCK
protectKernelDefaults: false
makeIPTablesUtilChains: false
rotateCertificates: false
serverTLSBootstrap: false
# no cluster DNS; pods get no outside name server either
resolvConf: ""
podLogsDir: $DIR/pod-logs
volumePluginDir: $DIR/kubelet/volume-plugins
serializeImagePulls: false
# image GC off (imported images cannot be pulled again); low eviction thresholds
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
YAML
  cat >"$DIR/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection:
  kubeconfig: $DIR/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
bindAddress: $HOST_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: $POD_CIDR
nodePortAddresses: ["$HOST_IP/32"]
# leave the host's conntrack settings alone
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
YAML
}

# ---------------------------------------------------------------- host state

save_sysctls() {
  local s
  : >"$SYSCTLS_SAVED"
  for s in "${SYSCTLS[@]}"; do
    [ -e "/proc/sys/${s//.//}" ] && echo "$s=$(sysctl -n "$s")" >>"$SYSCTLS_SAVED"
  done
}

restore_sysctls() {
  [ -f "$SYSCTLS_SAVED" ] || return 0
  local line s v now
  while IFS= read -r line; do
    s=${line%%=*} v=${line#*=}
    now=$(sysctl -n "$s" 2>/dev/null) || continue
    [ "$now" = "$v" ] && continue
    if [ "$s" = net.ipv4.ip_forward ] && [ -n "$(ip -o link show type bridge 2>/dev/null | grep -v " $BRIDGE:")" ]; then
      say "leaving net.ipv4.ip_forward=$now (was $v before start): another bridge (podman's?) may need it"
      continue
    fi
    sysctl -q -w "$s=$v" >/dev/null || say "warning: could not restore $s=$v (now $now)"
  done <"$SYSCTLS_SAVED"
}

# Host paths outside $DIR that kubelet and containerd make whatever their
# configuration says (device-plugins socket dir, container log links, the
# CNI result cache, shim sockets): the ones absent at start are removed at stop.
HOST_PATHS=(/var/lib/kubelet /var/log/containers /var/lib/cni /var/lib/cni/results
            /usr/libexec/kubernetes /run/containerd)

save_host_paths() {
  local p
  : >"$DIR/created-paths"
  for p in "${HOST_PATHS[@]}"; do [ -e "$p" ] || echo "$p" >>"$DIR/created-paths"; done
}

remove_host_paths() {
  local p
  [ -f "$DIR/created-paths" ] || return 0
  while IFS= read -r p; do
    case $p in /var/lib/kubelet|/var/log/containers|/var/lib/cni|/var/lib/cni/results|/usr/libexec/kubernetes|/run/containerd)
      rm -rf "$p" ;;
    esac
  done <"$DIR/created-paths"
}

net_up() {
  ip link add "$BRIDGE" type bridge || start_failed "could not create the bridge $BRIDGE"
  ip addr add "$HOST_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # A Service IP that kube-proxy has not programmed yet goes to the bridge,
  # never out of the machine.
  ip route add "$SERVICE_CIDR" dev "$BRIDGE" src "$HOST_IP" || start_failed "could not route $SERVICE_CIDR onto $BRIDGE"
  sysctl -q -w net.ipv4.ip_forward=1 >/dev/null
  # Pod -> ClusterIP -> pod on the same bridge needs bridged packets to pass
  # netfilter (conntrack undoes the DNAT on the reply).
  [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] ||
    start_failed "/proc/sys/net/bridge is missing: the kernel has no br_netfilter, which pod -> Service -> pod traffic needs"
  sysctl -q -w net.bridge.bridge-nf-call-iptables=1 >/dev/null
  # A SYN to a NodePort whose Service has no ready endpoint yet is refused
  # by kube-proxy's reject rule after conntrack has made an entry for it
  # without DNAT, and that entry stays SYN_SENT for 120 s (Kubernetes
  # issue 48719). A later connection that happens to get the same source
  # port to the same NodePort then matches it, is not DNATed and is refused
  # (seen: 1 query in ~350 refused, 65 s after a start whose readiness
  # probes hit the port early). A short SYN_SENT timeout lets such entries
  # go within seconds; a real connection gets its SYN-ACK in milliseconds,
  # and a retransmitted SYN simply makes a new entry.
  sysctl -q -w net.netfilter.nf_conntrack_tcp_timeout_syn_sent=5 >/dev/null ||
    start_failed "cannot set net.netfilter.nf_conntrack_tcp_timeout_syn_sent"
  # Nothing from a pod leaves through another interface.
  nft -f - <<NFT || start_failed "nft could not add the table inet clipper-kube"
table inet clipper-kube {
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "$BRIDGE" oifname != "$BRIDGE" counter reject with icmpx admin-prohibited
  }
}
NFT
}

# ---------------------------------------------------------------- start

start_daemon() {
  local name=$1; shift
  # setsid: its own session, so it outlives this shell and a Ctrl-C in it.
  # 8>&-: the lock of start/stop must not outlive this script in a daemon.
  setsid "$@" </dev/null >"$DIR/$name.log" 2>&1 8>&- &
  echo $! >"$DIR/$name.pid"
}

# wait_for WHAT CHECK...: polls CHECK until it succeeds; dies when a daemon
# has exited or the start timeout has passed.
wait_for() {
  local what=$1; shift
  local d
  until "$@" >/dev/null 2>&1; do
    for d in "${STARTED[@]}"; do
      if ! daemon_pid "$d" >/dev/null; then
        log_tail "$d" 25
        start_failed "$d exited while waiting for $what (see $DIR/$d.log)"
      fi
    done
    if [ $(( $(now_ms) - T_START )) -ge $((START_TIMEOUT_S * 1000)) ]; then
      start_failed "timed out after ${START_TIMEOUT_S}s waiting for $what"
    fi
    sleep 0.1
  done
  say "$what ($(since "$T_START"))"
}

start_failed() {
  local keep=${DIR%/}-failed
  rm -rf "$keep"; mkdir -p "$keep"
  cp "$DIR"/*.log "$DIR"/*.yaml "$DIR"/containerd/config.toml "$keep"/ 2>/dev/null || true
  echo "kube: error: $*" >&2
  if [ "${CLIPPER_KUBE_KEEP_ON_FAILURE:-0}" = 1 ]; then
    say "left the cluster as it is (CLIPPER_KUBE_KEEP_ON_FAILURE=1); remove it with: images/kube/kube.sh stop"
  else
    say "stopping what was started; the logs are kept in $keep"
    do_stop >/dev/null 2>&1 || true
  fi
  exit 1
}

etcd_healthy() { curl -sS --max-time 2 "http://127.0.0.1:$ETCD_CLIENT_PORT/health" | grep -q '"health":"true"'; }
containerd_up() { ctr --address "$CTR_SOCK" version; }
node_ready() { api "/api/v1/nodes/$NODE_NAME" | grep -q '"type":"Ready","status":"True"'; }
sa_ready() {
  api /api/v1/namespaces/default/serviceaccounts/default -f -o /dev/null &&
    api /api/v1/namespaces/default/configmaps/kube-root-ca.crt -f -o /dev/null
}
proxy_ready() { nft list map ip kube-proxy service-ips 2>/dev/null | grep -qF "$KUBERNETES_SVC_IP . tcp . 443"; }

take_lock() {
  mkdir -p "${LOCK%/*}" && exec 8>"$LOCK" || die "cannot open the lock $LOCK"
  flock -w 300 8 || die "another images/kube/kube.sh start or stop has held $LOCK for 5 min"
}

cmd_start() {
  take_lock
  if cluster_healthy; then
    say "the cluster in $DIR is running ($API_URL)"
    kubeconfig_line
    return 0
  fi
  check_tools
  if [ -d "$DIR" ] || ip link show "$BRIDGE" >/dev/null 2>&1; then
    say "a cluster left in $DIR (or the bridge $BRIDGE) is not healthy: stopping it first"
    do_stop
  fi
  T_START=$(now_ms)
  STARTED=()
  mkdir -p "$DIR"
  chmod 700 "$DIR"
  save_sysctls
  save_host_paths
  make_pki
  make_auth
  write_configs
  net_up

  start_daemon etcd "$BIN/etcd" --name clipper-kube --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "clipper-kube=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "" \
    --unsafe-no-fsync --log-level warn
  STARTED+=(etcd)
  start_daemon containerd containerd --config "$DIR/containerd/config.toml"
  STARTED+=(containerd)
  start_daemon kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address "$HOST_IP" --advertise-address "$HOST_IP" --secure-port "$API_PORT" \
    --cert-dir "$PKI" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" --token-auth-file "$DIR/tokens.csv" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP,Hostname \
    --allow-privileged=true --profiling=false
  STARTED+=(kube-apiserver)
  wait_for "containerd answers" containerd_up
  ctr_ images import "$PAUSE_ARCHIVE" >"$DIR/pause-import.log" 2>&1 ||
    { log_tail pause-import; start_failed "ctr could not import $PAUSE_ARCHIVE"; }
  ctr_ images label "$PAUSE_IMAGE" io.cri-containerd.pinned=pinned >/dev/null 2>&1 || true
  wait_for "etcd is healthy" etcd_healthy
  wait_for "the API server is ready on $API_URL" api_ready

  start_daemon kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig "$DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$DIR/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --cert-dir "$PKI/controller-manager" --leader-elect=false \
    --use-service-account-credentials=false --service-account-private-key-file "$PKI/sa.key" \
    --root-ca-file "$PKI/ca.crt" --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --profiling=false
  STARTED+=(kube-controller-manager)
  start_daemon kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig "$DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig "$DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig "$DIR/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false
  STARTED+=(kube-scheduler)
  start_daemon kubelet "$BIN/kubelet" --config "$DIR/kubelet/config.yaml" \
    --kubeconfig "$DIR/kubelet.kubeconfig" --root-dir "$DIR/kubelet" --cert-dir "$DIR/kubelet/pki" \
    --hostname-override "$NODE_NAME" --node-ip "$HOST_IP"
  STARTED+=(kubelet)
  start_daemon kube-proxy "$BIN/kube-proxy" --config "$DIR/kube-proxy.yaml"
  STARTED+=(kube-proxy)

  wait_for "node $NODE_NAME is Ready" node_ready
  wait_for "kube-proxy has programmed the Service $KUBERNETES_SVC_IP:443" proxy_ready
  wait_for "ServiceAccount default and ConfigMap kube-root-ca.crt exist" sa_ready
  say "cluster ready in $(since "$T_START"): $API_URL, node $NODE_NAME ($HOST_IP); admin kubeconfigs $ADMIN_KUBECONFIG (token), $DIR/admin-cert.kubeconfig (client cert); $DIR/restricted.kubeconfig (no rights)"
  kubeconfig_line
}

# ---------------------------------------------------------------- stop

# stop_pids TENTHS PID...: SIGTERM, then SIGKILL after TENTHS tenths of a
# second (at once when 0); returns when they are gone (at most 2 s more).
stop_pids() {
  local t=$1 p i; shift
  [ $# -gt 0 ] || return 0
  # (a zombie counts as gone: init may take its time to reap it)
  alive() {
    for p in "$@"; do
      [ -r "/proc/$p/stat" ] && [ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" != Z ] && return 0
    done
    return 1
  }
  if [ "$t" -gt 0 ]; then
    kill -TERM "$@" 2>/dev/null || true
    for ((i = 0; i < t; i++)); do alive "$@" || return 0; sleep 0.1; done
  fi
  kill -KILL "$@" 2>/dev/null || true
  for ((i = 0; i < 20; i++)); do alive "$@" || return 0; sleep 0.1; done
}

stop_daemons() {
  local t=$1 d p pids=(); shift
  for d in "$@"; do p=$(daemon_pid "$d") && pids+=("$p"); done
  stop_pids "$t" "${pids[@]}"
}

# Processes of this cluster that its pid files may not name: daemons and
# containerd shims whose command line names $DIR, and everything in the
# kubelet's pod cgroups.
leftover_pids() {
  ps -eo pid=,args= 2>/dev/null | awk -v d="$DIR/" '{
    n = split($2, a, "/")
    if (a[n] ~ /^(etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kube-proxy|containerd|containerd-shim-runc-v2)$/ && index($0, d) > 0) print $1
  }'
  cat /sys/fs/cgroup/*/kubepods/cgroup.procs /sys/fs/cgroup/*/kubepods/*/cgroup.procs \
      /sys/fs/cgroup/*/kubepods/*/*/cgroup.procs /sys/fs/cgroup/*/kubepods/*/*/*/cgroup.procs 2>/dev/null || true
}

# The containerd shims' sockets live in /run/containerd/s/ whatever the
# config says; a killed shim leaves its socket behind.
shim_sockets() {
  local id
  for id in $(ps -eo args= 2>/dev/null | awk -v s="$CTR_SOCK" '$1 ~ /containerd-shim-runc-v2$/ && index($0, s) > 0 {
      for (i = 2; i < NF; i++) if ($i == "-id") print $(i + 1) }'); do
    echo "/run/containerd/s/$(printf '%s' "$CTR_SOCK/k8s.io/$id" | sha256sum | cut -d' ' -f1)"
  done
}

unmount_all() {
  local m pass
  for pass in 1 2 3; do
    # mount points under $DIR, deepest first (mountinfo escapes spaces as \040)
    mapfile -t mounts < <(awk -v d="$DIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-)
    [ ${#mounts[@]} -gt 0 ] || return 0
    for m in "${mounts[@]}"; do
      m=$(printf "%b" "${m//\\/\\0}")   # \040 (space) -> \0040 for %b
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
  done
  [ -z "$(awk -v d="$DIR/" 'index($5, d) == 1' /proc/self/mountinfo)" ] ||
    say "warning: mounts under $DIR remain: $(awk -v d="$DIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | head -3 | tr '\n' ' ')"
}

net_down() {
  local v
  for v in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$v" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  ip route del "$SERVICE_CIDR" 2>/dev/null || true
  for t in "ip kube-proxy" "ip6 kube-proxy" "inet clipper-kube"; do
    nft list table $t >/dev/null 2>&1 && nft delete table $t
  done
  if command -v conntrack >/dev/null; then
    conntrack -D -s "$POD_CIDR" >/dev/null 2>&1 || true
    conntrack -D -d "$POD_CIDR" >/dev/null 2>&1 || true
    conntrack -D -d "$SERVICE_CIDR" >/dev/null 2>&1 || true
  fi
}

remove_cgroups() {
  local c
  for c in /sys/fs/cgroup/*/kubepods; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

do_stop() {
  local t0 n pids socks
  t0=$(now_ms)
  if ! [ -d "$DIR" ] && ! ip link show "$BRIDGE" >/dev/null 2>&1 && [ -z "$(leftover_pids)" ]; then
    say "no cluster is running (nothing in $DIR)"
    return 0
  fi
  if api_ready && daemon_pid kubelet >/dev/null && containerd_up >/dev/null 2>&1; then
    # No controller recreates a pod, no scheduler places one; then every pod
    # goes with a 1 s grace period and the kubelet tears it down (CNI DEL,
    # unmounts) while containerd still runs.
    stop_daemons 0 kube-controller-manager kube-scheduler
    "$BIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" --request-timeout 10s delete pods --all --all-namespaces \
      --grace-period=1 --wait=false >/dev/null 2>&1 || say "warning: deleting the pods failed"
    for ((n = 0; n < 150; n++)); do
      [ -z "$(ctr_ tasks ls -q 2>/dev/null)" ] && break
      sleep 0.1
    done
    [ -z "$(ctr_ tasks ls -q 2>/dev/null)" ] || say "pods still ran 15 s after they were deleted; killing them"
  fi
  # The pods are gone; what the daemons hold is thrown away with $DIR, so
  # they get 1 s to stop, all at once.
  stop_daemons 10 kube-proxy kubelet kube-controller-manager kube-scheduler kube-apiserver containerd etcd
  socks=$(shim_sockets)
  pids=$(leftover_pids | sort -u | tr '\n' ' ')
  if [ -n "${pids// /}" ]; then
    kill -KILL $pids 2>/dev/null || true
    for ((n = 0; n < 50; n++)); do
      pids=$(leftover_pids | sort -u | tr '\n' ' ')
      [ -z "${pids// /}" ] && break
      kill -KILL $pids 2>/dev/null || true
      sleep 0.1
    done
    [ -z "${pids// /}" ] || say "warning: processes survived SIGKILL: $pids"
  fi
  [ -n "$socks" ] && rm -f $socks
  rmdir /run/containerd/s /run/containerd 2>/dev/null || true
  unmount_all
  net_down
  restore_sysctls
  remove_cgroups
  rm -f /var/lib/cni/results/clipper-kube-* 2>/dev/null || true
  [ -d /var/log/containers ] && find /var/log/containers -maxdepth 1 -lname "$DIR/*" -delete 2>/dev/null
  remove_host_paths
  rm -rf "$DIR" || die "could not remove $DIR (is something still mounted there? see: grep $DIR /proc/self/mountinfo)"
  say "stopped the cluster and removed $DIR in $(since "$t0")"
}

cmd_stop() {
  take_lock
  do_stop
}

# ---------------------------------------------------------------- status, env

cmd_status() {
  if api_ready; then
    local ver ready=not d dead=()
    ver=$(api /version | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')
    node_ready && ready=""
    for d in "${DAEMONS[@]}"; do daemon_pid "$d" >/dev/null || dead+=("$d"); done
    if [ ${#dead[@]} -gt 0 ]; then
      echo "kube: cluster $ver answers on $API_URL but ${dead[*]} not running (images/kube/kube.sh start starts it anew)"
      return 1
    fi
    echo "kube: cluster $ver answers on $API_URL (node $NODE_NAME ${ready:+not }Ready), KUBECONFIG=$ADMIN_KUBECONFIG"
    return 0
  fi
  echo "kube: no cluster answers on $API_URL (start one: images/kube/kube.sh start)"
  return 1
}

cmd_env() {
  api_ready || die "no cluster answers on $API_URL (start one: images/kube/kube.sh start)"
  kubeconfig_line
}

# ---------------------------------------------------------------- images

# The config digest of image $1 in containerd's k8s.io namespace, or "".
containerd_config_digest() {
  local manifest
  manifest=$(ctr_ images ls "name==$1" 2>/dev/null | awk 'NR == 2 {print $3}')
  [ -n "$manifest" ] || return 0
  ctr_ content get "$manifest" 2>/dev/null | tr -d ' \n' | grep -o '"config":{[^}]*}' | grep -o 'sha256:[0-9a-f]*' | head -n1
}

cmd_images() {
  local imgs=("$@") img id have t0 t1
  [ ${#imgs[@]} -gt 0 ] || imgs=("${DEFAULT_IMAGES[@]}")
  containerd_up >/dev/null 2>&1 || die "no cluster's containerd answers on $CTR_SOCK (start one: images/kube/kube.sh start)"
  command -v podman >/dev/null || die "podman is not installed (run: bash .ci/setup)"
  export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/../containers.conf}
  t0=$(now_ms)
  for img in "${imgs[@]}"; do
    id=$(podman image inspect --format '{{.Id}}' "$img" 2>/dev/null) ||
      die "podman has no image $img (build the project's images: bash images/build.sh)"
    have=$(containerd_config_digest "$img")
    if [ "$have" = "sha256:$id" ] || grep -qxF "$id $img $have" "$DIR/images.imported" 2>/dev/null; then
      say "$img is current in containerd"
      continue
    fi
    t1=$(now_ms)
    say "importing $img ..."
    podman save --format oci-archive "$img" 2>"$DIR/images.log" | ctr_ images import - >>"$DIR/images.log" 2>&1 ||
      { log_tail images; die "importing $img (podman save | ctr images import) failed (see $DIR/images.log)"; }
    have=$(containerd_config_digest "$img")
    [ -n "$have" ] || die "after importing, containerd has no image named $img (see $DIR/images.log)"
    echo "$id $img $have" >>"$DIR/images.imported"
    say "imported $img in $(since "$t1")"
  done
  say "images done in $(since "$t0")"
}

case ${1:-} in
  build) cmd_build ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  images) shift; cmd_images "$@" ;;
  -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
  '') die "no command given (use build, start, stop, status, env or images; --help tells more)" ;;
  *) die "unknown command '$1' (use build, start, stop, status, env or images; --help tells more)" ;;
esac
