#!/bin/sh
# Builds clipper/devbox:latest, a tiny image (busybox: sh, sleep, nc, ...)
# for the docker tests when the project's images are not built yet:
#   sh tests/manager/devbox.sh && export CLIPPER_TEST_IMAGE=clipper/devbox:latest
# Needs busybox-static (/bin/busybox) and podman; set CONTAINERS_CONF as for
# the engine (images/engine.sh) when /etc/containers has no working setup.
set -eu
busybox=${BUSYBOX:-/bin/busybox}
if ! "$busybox" --list >/dev/null 2>&1 ||
    { command -v file >/dev/null && ! file -L "$busybox" | grep -q 'statically linked'; }; then
    echo "devbox: $busybox is not a static busybox (apt-get install busybox-static)" >&2
    exit 1
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir" "$dir.tar"' EXIT
mkdir -p "$dir/bin" "$dir/tmp" "$dir/etc"
cp "$busybox" "$dir/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$dir/bin/$applet"
done
tar -C "$dir" -cf "$dir.tar" .
podman import --change 'CMD ["/bin/sh"]' "$dir.tar" clipper/devbox:latest
