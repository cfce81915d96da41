#!/bin/bash
# build-base-image.sh IMAGE -- make IMAGE (e.g. debian:bookworm) available to Docker.
# Uses the local image if present, pulls it if a registry answers, and otherwise builds it
# from Debian's packages (debootstrap + docker import): the path for machines without a
# registry and for air-gapped networks (set DEBIAN_MIRROR to a reachable mirror).
set -euo pipefail

image="${1:-debian:bookworm}"
suite="${image#*:}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if docker image inspect "$image" >/dev/null 2>&1; then
    exit 0
fi
if timeout "${PULL_TIMEOUT:-120}" docker pull "$image" >/dev/null 2>&1; then
    echo "pulled $image"
    exit 0
fi
echo "no registry answered for $image; building it with debootstrap from $mirror" >&2
if ! command -v debootstrap >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
    else
        echo "debootstrap is missing: install it (apt-get install debootstrap) and run again" >&2
        exit 1
    fi
fi
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >/dev/null
tar -C "$rootfs" -c . | docker import --change 'CMD ["bash"]' - "$image" >/dev/null
echo "built $image with debootstrap"
